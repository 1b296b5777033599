#!/usr/bin/python3
"""ncflab's PyTorch baseline: the same gradient descent, metrics and files, in plain PyTorch.

    /usr/bin/python3 experiments/pytorch/baseline.py CONFIG.yaml [key.path=value ...] \\
        [--init RUN_DIR/weights_init.pt] [--data RUN_DIR/data.pt] --out DIR

It reads the same YAML config and overrides as `ncflab run`, trains the same model (the
feed-forward net, or with model.kind: single_layer H = σ(X W1ᵀ).sum(1)) by gradient descent with autograd (one weight tensor per layer, in-place updates under
no_grad), integrates the NCF gradient flow from the same w0 (Dormand–Prince 5(4), the
same step-size control) and writes what a ncflab run writes: config.yaml, metrics.csv
(same columns), summary.json (same keys), weights_init.pt and weights_final.pt.

Starting weights: --init (a weights_init.pt a ncflab run wrote) makes the two runs start
from the same w0; without it the baseline draws its own Gaussian w0. Data: CSV data is read
from the CSV file; synthetic data comes from the data.pt a ncflab run writes (found next
to --init, or given with --data), since LibTorch's generators are not PyTorch's.

An ensemble (ensemble.seeds = S) is trained member after member, the way a for-seed loop
would. Not covered: hooks.kkt_search (no cos_to_kkt column), --resume.

Runs with Debian's /usr/bin/python3 (python3-torch 1.13, python3-yaml) or any Python with
torch >= 1.13 and PyYAML; device: cuda (or auto) uses the GPU when PyTorch has one.
Exit codes as ncflab's: 0 success, 2 bad input, 1 runtime failure.

The parts live in ncflab_baseline/ next to this file (config, data, model, kkt, flow, train,
output, run); this file parses the command line and turns bad input into exit code 2.
"""
import argparse
import os
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # also when loaded by path (importlib), not run as a script
    sys.path.insert(0, HERE)

from ncflab_baseline.config import DEFAULTS, InputError, load_config  # noqa: E402
from ncflab_baseline.run import run  # noqa: E402

__all__ = ["DEFAULTS", "InputError", "load_config", "main"]  # for code that imports baseline.py


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="ncflab YAML config")
    parser.add_argument("overrides", nargs="*", help="key.path=value, as for ncflab")
    parser.add_argument("--init", help="weights_init.pt of a ncflab run: start from the same weights")
    parser.add_argument("--data", help="data.pt of a ncflab run (needed for synthetic data without --init)")
    parser.add_argument("--out", required=True, help="directory to write the run into")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        print(f"baseline: {e}", file=sys.stderr)
        sys.exit(2)
