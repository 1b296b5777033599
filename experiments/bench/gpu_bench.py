#!/usr/bin/env python3
"""Ensembles of 1 to 4096 members on a CUDA GPU: ncflab against PyTorch and JAX, side by side.

    python3 experiments/bench/gpu_bench.py --ncflab build-gpu/ncflab [--markdown gpu.md] [--quick]
        [--device cuda]

Run by experiments/bench/gpu.sh on a GPU machine; `--device cpu --quick` checks the script
anywhere. For each ensemble size S, the quickstart net (widths 20, n = 100, d = 10, p = 2)
trains a fixed number of gradient-descent steps from the same weights_init.pt on the same
data (hooks and the flow off):
- ncflab three ways: a host copy every step (train.sync_every=1), device steps
  (sync_every=256: the checks on the GPU), and device steps replayed from a CUDA graph;
- PyTorch: experiments/bench/torch_gd.py (batched over members, eager), in this Python;
- JAX: experiments/bench/jax_gd.py (vmap, jit, lax.scan), where this Python has jax.
Member-steps/s = S × steps/s; every anchor's final weights are compared with ncflab's.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import largest_difference, publish, write_npz  # noqa: E402
from bench_runs import QUICKSTART, fixed_steps, summary_of  # noqa: E402

SIZES = [1, 16, 64, 256, 1024, 4096]
NCFLAB_MODES = {  # column → extra overrides
    "ncflab, sync every step": ["train.sync_every=1"],
    "ncflab, device steps": ["train.sync_every=256", "train.cuda_graph=false"],
    "ncflab, CUDA graph": ["train.sync_every=256", "train.cuda_graph=true"],
}
# δ = 1e-4: no member escapes or diverges within the timed steps.
MODEL = ["init.scale=1e-4", "hooks.kkt=false", "hooks.layers=false"]
ETA, ALPHA, P = "0.01", "0.2", "2"


def run_ncflab(ncflab, out, device, seeds, steps, extra):
    subprocess.run([ncflab, "run", QUICKSTART, *MODEL, f"device={device}", f"ensemble.seeds={seeds}",
                    *fixed_steps(steps), *extra, "--out", out], check=True, stdout=subprocess.DEVNULL)
    summary = summary_of(out)
    if summary["status"] != "max_steps" or summary["iterations"] != steps:
        sys.exit(f"gpu_bench: ncflab ended with {summary['status']} after {summary['iterations']} steps")
    return summary["steps_per_second"]


def run_json(command):
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ncflab", default="build-gpu/ncflab")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--markdown", help="also write the table here")
    parser.add_argument("--quick", action="store_true", help="fewer steps, S up to 256")
    args = parser.parse_args()
    steps = 200 if args.quick else 2000
    sizes = [s for s in SIZES if s <= (256 if args.quick else SIZES[-1])]
    has_jax = importlib.util.find_spec("jax") is not None
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seeds in sizes:
            row = {"S": seeds}
            for column, extra in NCFLAB_MODES.items():
                out = os.path.join(work, f"{seeds}_{len(row)}")
                row[column] = run_ncflab(args.ncflab, out, args.device, seeds, steps, extra)
            # The last ncflab run's weights are the reference (all three modes take the same steps).
            reference = os.path.join(out, "weights_final.pt")
            anchor = os.path.join(work, f"{seeds}_torch.pt")
            result = run_json([sys.executable, os.path.join(HERE, "torch_gd.py"), "--init",
                               os.path.join(out, "weights_init.pt"), "--data", os.path.join(out, "data.pt"),
                               "--steps", str(steps), "--step", ETA, "--alpha", ALPHA, "--p", P,
                               "--device", args.device, "--out", anchor])
            row["PyTorch (batched, eager)"] = result.get("steps_per_second", result.get("error"))
            row["PyTorch agrees to"] = largest_difference(reference, anchor) if "error" not in result else None
            if has_jax:
                npz, final = os.path.join(work, f"{seeds}_in.npz"), os.path.join(work, f"{seeds}_jax.npz")
                write_npz(out, npz)
                result = run_json([sys.executable, os.path.join(HERE, "jax_gd.py"), npz, "--steps", str(steps),
                                   "--step", ETA, "--alpha", ALPHA, "--p", P, "--out", final])
                row["JAX (vmap, jit, scan)"] = result.get("steps_per_second", result.get("error"))
                row["JAX agrees to"] = largest_difference(reference, final) if "error" not in result else None
            rows.append(row)
            print(f"S = {seeds}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items()
                                                if isinstance(v, float) and "agrees" not in k), file=sys.stderr)
    columns = [c for c in rows[0] if c != "S"]
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    lines = [f"{name}, PyTorch {torch.__version__}, float64, quickstart net, {steps} steps; "
             "member-steps/s (S × ensemble steps/s), and each anchor's largest relative weight difference "
             "from ncflab's after the same steps.", "",
             "| S | " + " | ".join(columns) + " |", "| ---: |" + " ---: |" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            if isinstance(v, float) and "agrees" in c:
                cells.append(f"{v:.0e}")
            elif isinstance(v, float):
                cells.append(f"{v * row['S']:,.0f}")
            else:
                cells.append(str(v))
        lines.append(f"| {row['S']} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
