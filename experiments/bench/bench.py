#!/usr/bin/python3
"""Steps per second of `ncflab run` next to a plain PyTorch eager loop, side by side.

Both train the same model from the same initial weights (ncflab's weights_init.pt) on the
same data (a CSV file written here), for the same number of gradient-descent steps, on
the same threads; the final weights are compared too, so the speed is for the same work.

    /usr/bin/python3 experiments/bench/bench.py --ncflab build/ncflab [--markdown bench.md]

Run with Debian's /usr/bin/python3 (python3-torch). Prints a Markdown table.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
QUICKSTART = os.path.join(HERE, "..", "quickstart.yaml")


def write_data(path, n, d, seed):
    """Gaussian inputs, labels from a random Leaky ReLU neuron: a regular regression task."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    y = torch.nn.functional.leaky_relu(x @ (b / b.norm()), 0.2)
    with open(path, "w") as f:
        f.write(",".join([f"x{i + 1}" for i in range(d)] + ["y"]) + "\n")
        for row, label in zip(x.tolist(), y.tolist()):
            f.write(",".join(repr(v) for v in row + [label]) + "\n")
    return x, y


def activation(z, alpha, p):
    """σ(z) = max(z,0)^p − α·max(−z,0)^p, written the way a PyTorch user would."""
    if p == 1:
        return torch.nn.functional.leaky_relu(z, alpha)
    return torch.clamp(z, min=0) ** p - alpha * torch.clamp(-z, min=0) ** p


def eager_run(weights, x, y, alpha, p, step, steps):
    """Plain eager gradient descent on one weight set: autograd, in-place update."""
    ws = [w.clone().requires_grad_(True) for w in weights]
    for _ in range(steps):
        h = x
        for w in ws[:-1]:
            h = activation(h @ w.t(), alpha, p)
        out = (h @ ws[-1].t()).squeeze(1)
        loss = 0.5 * ((out - y) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            for w in ws:
                w -= step * w.grad
                w.grad = None
    return [w.detach() for w in ws]


def run_ncflab(ncflab, directory, data, case, seeds, steps, hooks):
    overrides = [
        "data.source=csv", f"data.path={data}", f"model.widths=[{','.join(map(str, case['widths']))}]",
        f"model.activation={{alpha: {case['alpha']}, p: {case['p']}}}", f"init.scale={case['delta']}",
        f"train.step={case['step']}", f"train.max_steps={steps}", "train.stop_at_escape=false",
        "train.escape_radius=1e300", f"ensemble.seeds={seeds}", "hooks.progress=false",
        "train.checkpoint_every=0",
    ]
    # The NCF flow is computed before training and is not part of the loop's steps/s.
    overrides += ["flow.enabled=false"]
    if not hooks:
        overrides += ["hooks.kkt=false", "hooks.layers=false", f"train.log_every={steps}"]
    subprocess.run([ncflab, "run", QUICKSTART, *overrides, "--out", directory],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(directory, "summary.json")) as f:
        summary = json.load(f)
    init = torch.load(os.path.join(directory, "weights_init.pt"))
    final = torch.load(os.path.join(directory, "weights_final.pt"))
    return summary, init, final


def measure(ncflab, work, case, seeds, steps, python_steps):
    data = os.path.join(work, f"data_{case['name']}.csv")
    x, y = write_data(data, case["n"], case["d"], seed=1)
    tag = f"{case['name']}_{seeds}"
    summary, init, final = run_ncflab(ncflab, os.path.join(work, tag), data, case, seeds, steps, False)
    ncflab_rate = summary["steps_per_second"]  # ensemble steps: each advances all members
    hooked, _, _ = run_ncflab(ncflab, os.path.join(work, tag + "_hooks"), data, case, seeds, steps, True)
    # The baseline loops over the members (a researcher's for-seed loop), python_steps each.
    start = time.perf_counter()
    worst = 0.0
    for s in range(seeds):
        weights = [w[s] for w in init.values()]
        out = eager_run(weights, x, y, case["alpha"], case["p"], case["step"], python_steps)
        if python_steps == steps:
            for a, b in zip(out, final.values()):
                worst = max(worst, ((a - b[s]).abs().max() / b[s].abs().max()).item())
    seconds = time.perf_counter() - start
    python_rate = python_steps / seconds  # ensemble steps: all members advanced once
    return {"case": case, "seeds": seeds, "ncflab": ncflab_rate, "ncflab_hooks": hooked["steps_per_second"],
            "engine": summary["engine"], "python": python_rate,
            "agreement": worst if python_steps == steps else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ncflab", default="build/ncflab", help="the ncflab executable")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    scale = 0.1 if args.quick else 1.0
    small = {"name": "3-layer 12,12 (n=40, d=8)", "widths": [12, 12], "n": 40, "d": 8,
             "alpha": 0.2, "p": 1, "delta": 1e-2, "step": 1e-2}
    quick = {"name": "quickstart 20 (n=100, d=10, p=2)", "widths": [20], "n": 100, "d": 10,
             "alpha": 0.2, "p": 2, "delta": 1e-3, "step": 1e-2}
    wide = {"name": "wide 100,100 (n=1000, d=10)", "widths": [100, 100], "n": 1000, "d": 10,
            "alpha": 0.2, "p": 1, "delta": 1e-2, "step": 1e-4}
    plan = [  # (case, seeds, ncflab steps, baseline steps per member)
        (small, 1, 20000, 20000), (quick, 1, 20000, 20000), (wide, 1, 500, 500),
        (small, 64, 5000, 1000), (quick, 64, 5000, 1000), (wide, 64, 50, 10),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for case, seeds, steps, python_steps in plan:
            steps, python_steps = max(10, int(steps * scale)), max(10, int(python_steps * scale))
            rows.append(measure(args.ncflab, work, case, seeds, steps, python_steps))
            r = rows[-1]
            print(f"{r['case']['name']}, S = {seeds}: ncflab {r['ncflab']:.0f}, PyTorch {r['python']:.0f} steps/s",
                  file=sys.stderr)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} threads, "
        f"PyTorch {torch.__version__}; float64; steps/s of the whole ensemble (one step advances all S members).",
        "",
        "| model | S | ncflab engine | ncflab steps/s | ncflab with hooks | PyTorch eager steps/s | ratio |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['case']['name']} | {r['seeds']} | {r['engine']} | {r['ncflab']:,.0f} | "
                     f"{r['ncflab_hooks']:,.0f} | {r['python']:,.1f} | {r['ncflab'] / r['python']:.1f}× |")
    checked = [r["agreement"] for r in rows if r["agreement"] is not None]
    if checked:
        lines += ["", f"Final weights of ncflab and the eager loop after the same steps agree to "
                      f"{max(checked):.1e} (max relative difference)."]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
