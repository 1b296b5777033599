#!/usr/bin/python3
"""Parity of `ncflab run` and the PyTorch baseline (experiments/pytorch/baseline.py).

    /usr/bin/python3 tests/pytorch_parity.py NCFLAB CASE

Both train CASE from the same weights_init.pt on the same data and must agree: final
weights after >= 1000 gradient-descent steps to 1e-10 relative (float64; 1e-9 past the
escape), the same status and escape step per member, every metrics.csv column to 1e-9
relative (the cosines to the flow to 1e-8, as T*) and the NCF flow's T* to 1e-8 (for L = 2, which has no T*, the flow's escape time at flow.max_norm); at the
default flow.rtol (1e-12) two correct Dormand–Prince runs whose step sequences part by
rounding differ by their global error, about 1e-9; p = 1 flows too, since both locate every
kink crossing (flow_kinks.py), and their kink counts must agree.
Exit 77 (skipped) where this Python has no torch.
"""
import csv
import json
import math
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print(f"skipped: {sys.executable} cannot import torch (Debian: apt-get install python3-torch)")
    sys.exit(77)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
QUICKSTART = os.path.join(ROOT, "experiments", "quickstart.yaml")
BASELINE = os.path.join(ROOT, "experiments", "pytorch", "baseline.py")
COMMON = ["hooks.progress=false"]
# Columns that compare w with the NCF flow's solution, which each side integrates itself to
# rtol 1e-12: they agree as T* does, to 1e-8 (1.2e-9 seen under PyTorch 2.x), the others to 1e-9.
FLOW_COLUMNS = {"cos_to_flow", "cos_to_flow_now"}
FLOW_COLUMN_TOLERANCE = 1e-8

CASES = {
    # The quickstart as it is (synthetic data: the baseline reads the run's data.pt).
    "quickstart": {"overrides": [], "min_steps": 3000, "status": "escaped"},
    # Logistic loss, two-layer polynomial Leaky ReLU p = 3 (L = 4), sign labels.
    "logistic_p3": {"overrides": ["loss=logistic", "data.sign_labels=true", "model.activation.alpha=0.5",
                                  "model.activation.p=3", "init.scale=0.05"],
                    "min_steps": 4000, "status": "escaped"},
    # Depth 3 Leaky ReLU (kinks: the kink-aware residual column, and a flow that crosses ~580
    # kinks and slides along some), data from a CSV file, standardised.
    "leaky_relu_depth3": {"overrides": ["model.widths=[10,10]", "model.activation.alpha=0.1",
                                        "model.activation.p=1", "init.scale=5e-3", "data.source=csv",
                                        "data.normalize=standardize"],
                          "csv": True, "min_steps": 1000, "status": "escaped"},
    # An ensemble whose members escape at different steps.
    "escape_ensemble": {"overrides": ["init.scale=3e-3", "ensemble.seeds=3", "train.max_steps=2000",
                                      "train.log_every=50"],
                        "min_steps": 1000, "status": "escaped"},
    # stop_at_escape off: training goes on past the escape until the step size is too large
    # for the grown weights and the loss overflows; both stop at the last finite weights.
    # Past the escape the iterates grow until the loss overflows, and rounding grows with them:
    # ncflab's loops and the baseline's BLAS (MKL in PyTorch 2.x) sum in different orders, so
    # the weights agree to 1.2e-10 there (bit for bit with Debian's 1.13 and reference BLAS).
    "past_escape_to_divergence": {"overrides": ["init.scale=3e-3", "train.stop_at_escape=false",
                                                "train.max_steps=3000", "train.escape_radius=0.01"],
                                  "min_steps": 1000, "status": "diverged", "weights_tolerance": 1e-9},
    # The single-layer ReLU² model H = Σ_j max(w_jᵀx, 0)² (L = 2: no finite blow-up; the
    # flow's escape time at flow.max_norm stands in for T*), on standardised CSV data.
    "single_layer_relu2": {"overrides": ["model.kind=single_layer", "model.widths=[8]",
                                         "model.activation.alpha=0", "model.activation.p=2",
                                         "init.scale=1e-3", "train.step=2.5e-5", "data.source=csv",
                                         "data.normalize=standardize"],
                           "csv": True, "min_steps": 1000, "status": "escaped"},
}


def write_csv(path):
    """Gaussian inputs; labels of a two-neuron teacher, so the data is not a rank-one toy."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(60, 6, generator=g, dtype=torch.float64) * 2 + 0.5
    y = torch.relu(x @ torch.randn(6, generator=g, dtype=torch.float64)) - 0.5 * torch.relu(-x[:, 0])
    with open(path, "w") as f:
        f.write(",".join([f"f{j}" for j in range(6)] + ["target"]) + "\n")
        for row, label in zip(x.tolist(), y.tolist()):
            f.write(",".join(repr(v) for v in row + [label]) + "\n")


def read_metrics(path):
    with open(path) as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [[float(v) for v in row] for row in reader]


def close(a, b, rtol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def main():
    ncflab, case_name = sys.argv[1], sys.argv[2]
    case = CASES[case_name]
    failures = []
    with tempfile.TemporaryDirectory() as work:
        overrides = case["overrides"] + COMMON
        if case.get("csv"):
            data = os.path.join(work, "data.csv")
            write_csv(data)
            overrides += [f"data.path={data}", "data.label=target"]
        ours, theirs = os.path.join(work, "ncflab"), os.path.join(work, "pytorch")
        subprocess.run([ncflab, "run", QUICKSTART, *overrides, "--out", ours], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, BASELINE, QUICKSTART, *overrides, "--init",
                        os.path.join(ours, "weights_init.pt"), "--out", theirs], check=True, stdout=subprocess.DEVNULL)

        a, b = (json.load(open(os.path.join(d, "summary.json"))) for d in (ours, theirs))
        members_a, members_b = a.get("members", [a]), b.get("members", [b])
        if a["status"] != case["status"] or b["status"] != case["status"]:
            failures.append(f"status: ncflab {a['status']}, baseline {b['status']}, expected {case['status']}")
        for s, (ma, mb) in enumerate(zip(members_a, members_b)):
            if ma["status"] != mb["status"] or ma["steps"] != mb["steps"]:
                failures.append(f"member {s}: ncflab {ma['status']} after {ma['steps']} steps, "
                                f"baseline {mb['status']} after {mb['steps']}")
            step_a = ma["escape"] and ma["escape"]["step"]
            step_b = mb["escape"] and mb["escape"]["step"]
            if step_a != step_b:
                failures.append(f"member {s}: escape step ncflab {step_a}, baseline {step_b}")
            ta, tb = ma["ncf_flow"]["blowup_time"], mb["ncf_flow"]["blowup_time"]
            if a["homogeneity"]["total"] == 2:  # no T*: where ‖u‖ reaches flow.max_norm instead
                ta, tb = ma["ncf_flow"]["escape_time"], mb["ncf_flow"]["escape_time"]
            if ta is None or tb is None or not close(ta, tb, 1e-8):
                failures.append(f"member {s}: flow T* (L = 2: escape time) ncflab {ta}, baseline {tb}")
            ka, kb = ma["ncf_flow"].get("kinks"), mb["ncf_flow"].get("kinks")
            if ka != kb:
                failures.append(f"member {s}: the flows met kinks differently: ncflab {ka}, baseline {kb}")
        steps = max(m["steps"] for m in members_a)
        if steps < case["min_steps"]:
            failures.append(f"only {steps} steps; the case needs >= {case['min_steps']}")

        final_a = torch.load(os.path.join(ours, "weights_final.pt"))
        final_b = torch.load(os.path.join(theirs, "weights_final.pt"))
        if list(final_a) != list(final_b):
            failures.append(f"weight keys: {list(final_a)} vs {list(final_b)}")
        worst_weights = 0.0
        for key in final_a:
            for s in range(final_a[key].shape[0]):
                wa, wb = final_a[key][s], final_b[key][s]
                worst_weights = max(worst_weights, float((wa - wb).norm() / wa.norm()))
        weights_tolerance = case.get("weights_tolerance", 1e-10)
        if not worst_weights <= weights_tolerance:
            failures.append(f"final weights differ by {worst_weights:.2e} relative (> {weights_tolerance:g})")

        header_a, rows_a = read_metrics(os.path.join(ours, "metrics.csv"))
        header_b, rows_b = read_metrics(os.path.join(theirs, "metrics.csv"))
        if header_a != header_b:
            failures.append(f"metrics columns differ:\n  ncflab   {header_a}\n  baseline {header_b}")
        elif len(rows_a) != len(rows_b):
            failures.append(f"metrics rows: ncflab {len(rows_a)}, baseline {len(rows_b)}")
        else:
            worst = {}
            for ra, rb in zip(rows_a, rows_b):
                if ra[:2] != rb[:2]:
                    failures.append(f"row order: ncflab member/step {ra[:2]}, baseline {rb[:2]}")
                    break
                for name, x, y in zip(header_a, ra, rb):
                    if not close(x, y, FLOW_COLUMN_TOLERANCE if name in FLOW_COLUMNS else 1e-9):
                        failures.append(f"{name} at member {int(ra[0])} step {int(ra[1])}: ncflab {x!r}, "
                                        f"baseline {y!r}")
                    elif math.isfinite(x) and x != 0:
                        worst[name] = max(worst.get(name, 0.0), abs(x - y) / abs(x))
            print("largest relative difference per column: " +
                  ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    print(f"{case_name}: {steps} steps; final weights agree to {worst_weights:.1e} relative")
    if failures:
        print("\n".join(["FAILED:"] + failures[:20]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
