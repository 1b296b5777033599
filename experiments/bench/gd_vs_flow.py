#!/usr/bin/python3
"""Gradient descent against the adaptive gradient flow (train.integrator), side by side.

    /usr/bin/python3 experiments/bench/gd_vs_flow.py [--ncflab build/ncflab] [--markdown FILE]

Both integrators train the same config (escape_L4_two_layer_p3.yaml, 4 seeds, L = 4) from
the same w0 to the escape, one run per δ; gradient descent only where it finishes in minutes
(its step count grows like δ^−(L−2)). Per δ: the steps and wall time of each (training
only, from summary.json; the reference NCF flow is the same for both and not counted), the
speed-up, the escape times' relative difference (gradient descent lags the flow by O(η))
and each integrator's worst |t_esc·δ^(L−2)/T* − 1| over the members. Prints a Markdown
table (and writes it with --markdown).
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "paper", "escape_L4_two_layer_p3.yaml")
GD_DELTAS = ["1e-2", "3e-3", "1e-3"]
FLOW_ONLY_DELTAS = ["1e-4", "1e-6", "1e-8"]


def run(ncflab, out, overrides):
    subprocess.run([ncflab, "run", CONFIG, *overrides, "hooks.progress=false", "--out", out, "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def escape_times(summary):
    return [m["escape"]["time"] for m in summary["members"]]


def worst_ratio_error(summary):
    return max(abs(m["escape"]["rescaled_time_over_blowup_time"] - 1) for m in summary["members"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ncflab", default=os.path.join(HERE, "..", "..", "build", "ncflab"))
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    rows = ["| δ | GD steps | GD s | flow steps (gradient evaluations) | flow s | speed-up "
            "| t_esc: GD/flow − 1 | GD: max abs(ratio − 1) | flow: max abs(ratio − 1) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as tmp:
        for delta in GD_DELTAS + FLOW_ONLY_DELTAS:
            flow = run(args.ncflab, os.path.join(tmp, "flow" + delta), ["train.integrator=flow", "init.scale=" + delta])
            flow_cells = [f"{flow['steps']} ({flow['gradient_evaluations']})", f"{flow['wall_seconds']:.2f}"]
            if delta in GD_DELTAS:
                gd = run(args.ncflab, os.path.join(tmp, "gd" + delta),
                         ["init.scale=" + delta, "train.max_steps=100000000"])
                lag = max(g / f - 1 for g, f in zip(escape_times(gd), escape_times(flow)))
                gd_cells = [f"{gd['steps']}", f"{gd['wall_seconds']:.2f}", *flow_cells,
                            f"{gd['wall_seconds'] / flow['wall_seconds']:.0f}×", f"{lag:.1e}",
                            f"{worst_ratio_error(gd):.1e}"]
            else:
                gd_cells = ["—", "—", *flow_cells, "—", "—", "—"]
            rows.append(f"| {delta} | " + " | ".join(gd_cells) + f" | {worst_ratio_error(flow):.1e} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    header = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
              "steps of member 0, wall time of the whole 4-member ensemble\n\n")
    print("\n" + header + table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + table)


if __name__ == "__main__":
    main()
