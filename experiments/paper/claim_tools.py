"""What every claim of reproduce.py shares: where things are, running ncflab, publishing a report
into results/, and reading a run's or a sweep's per-member escape numbers."""
import csv
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
RESULTS = os.path.join(HERE, "results")

sys.path.insert(0, os.path.join(ROOT, "experiments", "report"))
from ncflab_report.common import escape_radius  # noqa: E402  (train.escape_radius, as the report reads it)


def config(name):
    return os.path.join(HERE, name)


class Runner:
    def __init__(self, ncflab, out, resume):
        self.ncflab, self.out, self.resume = ncflab, out, resume

    def ncflab_command(self, *arguments):
        command = [self.ncflab, *arguments, "--overwrite"] if arguments[0] != "report" else [self.ncflab, *arguments]
        print("$ " + " ".join(command), flush=True)
        started = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)

    def directory(self, *parts):
        return os.path.join(self.out, *parts)


def publish(report_dir, claim, name=None):
    """Copies a report directory (PNGs and report.md) into experiments/paper/results/."""
    target = os.path.join(RESULTS, claim, name) if name else os.path.join(RESULTS, claim)
    if os.path.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(report_dir, target)
    # Paths in report.md relative to the repository, as a reader of the copy sees them.
    markdown = os.path.join(target, "report.md")
    with open(markdown) as f:
        text = f.read()
    with open(markdown, "w") as f:
        f.write(text.replace(ROOT + os.sep, ""))
    return target


def sweep_rows(sweep):
    """sweep.csv of a sweep directory as dicts (empty when the sweep was not run)."""
    path = os.path.join(sweep, "sweep.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def number(x, digits=3):
    return "" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def run_members(run_dir):
    """A run's summary.json and, per member: δ, L, t_esc·δ^(L−2)/T*, the ratio the flow predicts
    at the finite escape radius, 1 − (δ/r_esc)^(L−2)/((L−2)·L·N*·T*), T*, cos_to_flow and the
    last cos_to_flow_now before the escape (ratio and prediction None where the member did not
    escape or its flow has no T*)."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    radius = escape_radius(run_dir)
    degree = summary["homogeneity"]["total"]
    members = []
    for s, m in enumerate(summary.get("members", [summary])):
        flow = m.get("ncf_flow") or {}
        t_star, n_star = flow.get("blowup_time"), flow.get("ncf")
        ratio = predicted = None
        if m.get("escape") and t_star:
            ratio = m["escape"]["rescaled_time"] / t_star
            predicted = 1 - (m["delta"] / radius) ** (degree - 2) / ((degree - 2) * degree * n_star * t_star)
        members.append({"delta": m["delta"], "member": s, "L": degree, "ratio": ratio, "predicted": predicted,
                        "t_star": t_star, "cos": (m.get("final") or {}).get("cos_to_flow"),
                        "cos_now": last_cos_to_flow_now(run_dir, s)})
    return summary, members


def last_cos_to_flow_now(run_dir, member):
    """cos(w/‖w‖, u(δ^(L−2)·t)) at member's last logged step that has one (the flow on the log grid), or None."""
    last = None
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        for row in csv.DictReader(f):
            if int(row["member"]) == member and row.get("cos_to_flow_now") not in (None, "", "nan"):
                last = float(row["cos_to_flow_now"])
    return last


def escape_members(sweep):
    """run_members of every run of a sweep, one list."""
    return [m for row in sweep_rows(sweep) for m in run_members(os.path.join(sweep, row["directory"]))[1]]
