#!/usr/bin/python3
"""Steps per second of `ncflab run` and of the PyTorch baseline, measured side by side.

    /usr/bin/python3 experiments/bench/bench.py [--ncflab build/ncflab] [--markdown FILE] [--quick]

For each model both train from the same weights_init.pt on the same data (the run's
data.pt) for a fixed number of gradient-descent steps, on the same threads, with the
per-row hooks and the NCF flow off on both sides (the flow is computed before training and
is not part of a step): a single run, and a 64-seed ensemble, which ncflab trains as one
batched computation and the baseline (experiments/pytorch/baseline.py) member after
member, as a for-seed loop would. Steps/s counts ensemble steps (one advances all S
members). Final weights after the same number of steps are compared too, so the speed is
for the same work. Prints a Markdown table (and writes it with --markdown).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
QUICKSTART = os.path.join(HERE, "..", "quickstart.yaml")
BASELINE = os.path.join(HERE, "..", "pytorch", "baseline.py")

MODELS = {
    # δ = 1e-4: every member stays before its escape (near step 37 800 for member 0)
    # for all timed steps; past escape this step size makes GD diverge.
    "quickstart": {"label": "quickstart: widths 20, n=100, d=10, p=2", "overrides": ["init.scale=1e-4"]},
    "wide": {"label": "wide: widths 100,100, n=1000, d=10, Leaky ReLU",
             "overrides": ["model.widths=[100,100]", "data.n=1000", "model.activation.alpha=0.2",
                           "model.activation.p=1", "init.scale=1e-2", "train.step=1e-4"]},
}
# (model, S, ncflab steps, baseline steps): the baseline's ensemble loop gets fewer steps,
# its rate is steps of the whole ensemble per second all the same.
PLAN = [("quickstart", 1, 20000, 20000), ("quickstart", 64, 5000, 500),
        ("wide", 1, 400, 400), ("wide", 64, 40, 8)]


def fixed_steps(steps):
    """Train exactly `steps` steps, log only the first and last, no hooks, no flow."""
    return [f"train.max_steps={steps}", "train.stop_at_escape=false", "train.escape_radius=1e300",
            f"train.log_every={steps}", "hooks.kkt=false", "hooks.layers=false", "hooks.progress=false",
            "flow.enabled=false", "train.checkpoint_every=0"]


def summary_of(directory):
    with open(os.path.join(directory, "summary.json")) as f:
        return json.load(f)


def checked(summary, steps, who):
    if summary["status"] != "max_steps" or summary["iterations"] != steps:
        sys.exit(f"bench: {who} ended with {summary['status']} after {summary['iterations']} of {steps} steps")
    return summary


def run_ncflab(ncflab, directory, overrides, steps):
    subprocess.run([ncflab, "run", QUICKSTART, *overrides, *fixed_steps(steps), "--out", directory], check=True,
                   stdout=subprocess.DEVNULL)
    return checked(summary_of(directory), steps, "ncflab")


def run_baseline(directory, init, overrides, steps):
    subprocess.run([sys.executable, BASELINE, QUICKSTART, *overrides, *fixed_steps(steps), "--init", init,
                    "--out", directory], check=True, stdout=subprocess.DEVNULL)
    return checked(summary_of(directory), steps, "the baseline")


def largest_difference(a_dir, b_dir):
    a = torch.load(os.path.join(a_dir, "weights_final.pt"))
    b = torch.load(os.path.join(b_dir, "weights_final.pt"))
    return max(float(((a[k] - b[k]).flatten(1).norm(dim=1) / a[k].flatten(1).norm(dim=1)).max()) for k in a)


def measure(ncflab, work, model, seeds, steps, baseline_steps):
    overrides = MODELS[model]["overrides"] + [f"ensemble.seeds={seeds}"]
    tag = f"{model}_{seeds}"
    ours = os.path.join(work, tag)
    timed = run_ncflab(ncflab, ours, overrides, steps)
    init = os.path.join(ours, "weights_init.pt")
    theirs = os.path.join(work, tag + "_pytorch")
    baseline = run_baseline(theirs, init, overrides, baseline_steps)
    if baseline_steps != steps:  # the same work for the weight check: ncflab again, untimed
        ours = os.path.join(work, tag + "_check")
        run_ncflab(ncflab, ours, overrides, baseline_steps)
    return {"model": model, "seeds": seeds, "engine": timed["engine"], "ncflab": timed["steps_per_second"],
            "baseline": baseline["steps_per_second"], "steps": (steps, baseline_steps),
            "agreement": largest_difference(ours, theirs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ncflab", default="build/ncflab", help="the ncflab executable")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps (a smoke test)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model, seeds, steps, baseline_steps in PLAN:
            steps, baseline_steps = max(4, int(steps * scale)), max(2, int(baseline_steps * scale))
            rows.append(measure(args.ncflab, work, model, seeds, steps, baseline_steps))
            r = rows[-1]
            print(f"{MODELS[model]['label']}, S = {seeds}: ncflab {r['ncflab']:,.1f}, "
                  f"PyTorch baseline {r['baseline']:,.1f} steps/s", file=sys.stderr)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores "
        f"(both sides use all of them), PyTorch {torch.__version__}, float64. Steps/s of the whole "
        "ensemble: one step advances all S members.",
        "",
        "| model | S | ncflab engine | ncflab steps/s | PyTorch baseline steps/s | ratio | weights agree to |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {MODELS[r['model']]['label']} | {r['seeds']} | {r['engine']} | {r['ncflab']:,.1f} | "
                     f"{r['baseline']:,.1f} | {r['ncflab'] / r['baseline']:.1f}× | {r['agreement']:.0e} |")
    lines += ["", "Steps timed: " + "; ".join(f"{MODELS[r['model']]['label'].split(':')[0]} S={r['seeds']}: "
                                                  f"ncflab {r['steps'][0]}, baseline {r['steps'][1]}" for r in rows)
              + ". Weights: largest relative difference of a member's layer after the baseline's steps."]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
