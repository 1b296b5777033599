#!/usr/bin/python3
"""Reproduce the claims of Kumar & Haupt (arXiv 2403.08121, 2402.09226) with ncflab.

    /usr/bin/python3 experiments/paper/reproduce.py CLAIM [CLAIM ...] [--ncflab build/ncflab]
    /usr/bin/python3 experiments/paper/reproduce.py all

Each claim runs its ncflab commands into runs/paper/<claim>/, draws the figures with
`ncflab report`, and copies the figures and numbers into experiments/paper/results/<claim>/
(the copy experiments/README.md shows). Every claim also checks its measured numbers against
the bands the theory predicts (experiments/paper/checks.py; results/<claim>/checks.md) and the
script exits 1 when one falls outside. Claims:

  escape_L3   escape-time law and directional convergence, depth-3 Leaky ReLU (L = 3)
  escape_L4   escape-time law, two-layer polynomial Leaky ReLU p = 3 (L = 4)
  escape_L4_flow  the same law with train.integrator=flow down to δ = 1e-7, next to escape_L4's
              gradient descent (run escape_L4 first for the side-by-side table)
  escape_L7_flow  the law at L = 7 (depth 3, p = 2) with the gradient flow down to δ = 1e-6,
              where gradient descent would need ~10^12 steps at δ = 1e-2 already
  escape_logistic  the law with the logistic loss (ȳ = y/2), L = 4, gradient flow down to δ = 1e-6
  collapse    the other branch: weights whose NCF flow collapses (N* < 0) shrink instead of escaping
  kkt         rank-one structure of KKT points: Leaky ReLU α ∈ {0, 0.1, 0.5}, polynomial
              p ∈ {2, 3}, depth 3 and 4, synthetic and breast-cancer data, 100 starts each
  kinks       smooth against kink-aware KKT residual along training (needs kkt's table too)
  two_homogeneous  2402.09226 figure 1: single-layer ReLU² on 50 points of the circle (L = 2)
  two_homogeneous_off_teacher  L = 2 with the NCF's peak between the teacher's neurons: angles at escape
  saddle      the plateau after the first escape: small neurons against the residual NCF's KKT points
"""
import argparse
import os
import sys
import time

from checks import Checks
from claim_tools import RESULTS, ROOT, Runner, config, publish
from claims_escape import collapse, escape_L3, escape_L4, escape_L4_flow, escape_L7_flow, escape_logistic
from claims_kkt import kinks, kkt


def run_and_kkt(runner, claim, config_name):
    """A claim's run (with its report) and KKT search, and its results directory."""
    run = runner.directory(claim, "run")
    runner.ncflab_command("run", config(config_name), "--out", run)
    runner.ncflab_command("report", run)
    kkt_dir = runner.directory(claim, "kkt")
    runner.ncflab_command("kkt", config(config_name), "--out", kkt_dir)
    out = os.path.join(RESULTS, claim)
    os.makedirs(out, exist_ok=True)
    return run, kkt_dir, out


def two_homogeneous(runner, checks):
    # Imported here: torch and matplotlib load only for the claims that draw their own figures.
    from claims_two_homogeneous import two_homogeneous_results

    claim, config_name = "two_homogeneous", "two_homogeneous_relu2.yaml"
    sweep = runner.directory(claim, "sweep")
    deltas = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    runner.ncflab_command("sweep", config(config_name), "init.scale=" + ",".join(f"{d:g}" for d in deltas),
                          "train.stop_at_escape=true", "train.snapshot_every=0", "--out", sweep)
    run, kkt_dir, out = run_and_kkt(runner, claim, config_name)
    numbers = two_homogeneous_results(sweep, run, kkt_dir, out)
    checks.band("best KKT point's N over max g (single-neuron problem on the circle)",
                numbers["best_ncf"] / numbers["n_star"], 1 - 1e-9, 1 + 1e-9,
                "L = 2: the constrained NCF's maximum is the single-neuron maximum")
    slopes = numbers["neighbour_slope_ratios"]
    checks.band("slope of t_esc against ln(1/δ) between the two smallest δ, times 2N*", slopes[-1], 1.0, 1.03,
                "L = 2: t_esc = ln(1/δ)/(2N*) + const as δ → 0; GD's growth 1 + 2ηN* per step adds 0.5%")
    checks.band("that slope's change from the largest pair of δ to the smallest", slopes[-1] - slopes[0], -1.0, -1e-3,
                "the slope approaches 1/(2N*) from above as δ → 0")
    publish(os.path.join(run, "report"), claim, "run")


def two_homogeneous_off_teacher(runner, checks):
    """L = 2 with the NCF's peak (0°) between the teacher's neurons (±40°): the neurons' angles at
    escape, against the end of training."""
    from claims_two_homogeneous import off_teacher_results

    claim, config_name = "two_homogeneous_off_teacher", "two_homogeneous_off_teacher.yaml"
    run, kkt_dir, out = run_and_kkt(runner, claim, config_name)
    numbers = off_teacher_results(run, kkt_dir, [40.0, -40.0], out)
    publish(os.path.join(run, "report"), claim, "run")
    escape, end = numbers["escape"], numbers["end"]
    checks.band("at escape: mass-weighted angle of the neurons to the nearest NCF KKT direction (°)",
                escape["to_ncf"], 0.0, 15.0,
                "early alignment: at escape the neurons point near the NCF's KKT directions (δ = 1e-4: not yet exactly)")
    checks.band("at escape: to the nearest teacher neuron (°)", escape["to_teacher"], 25.0, 180.0,
                "the NCF's peak is 40° from the teacher's neurons: escape is not the fit")
    checks.band("at the end: to the nearest teacher neuron (°)", end["to_teacher"], 0.0, 10.0,
                "after the escape gradient descent fits the teacher")
    checks.band("at the end: to the nearest NCF KKT direction (°)", end["to_ncf"], 30.0, 180.0,
                "… and leaves the NCF's peak")


def saddle(runner, checks):
    """The plateau after the first escape: split the neurons into large and small at its start,
    search the KKT points of the residual NCF N_r(u) = (y − H_n(X))ᵀ H_z(X; u) (for square
    loss the NCF of one small neuron on labels y − H_n, so `ncflab kkt` with widths [1] on
    them), and follow each small neuron's cosine to the nearest of those points."""
    # Imported here: torch and matplotlib load only for the claims that draw their own figures.
    from claims_two_homogeneous import find_plateau, write_residual_csv, saddle_results

    claim, config_name = "saddle", "saddle_relu2.yaml"
    run = runner.directory(claim, "run")
    runner.ncflab_command("run", config(config_name), "--out", run)
    runner.ncflab_command("report", run)
    plateau = find_plateau(run)
    residual_csv = runner.directory(claim, "residual.csv")
    write_residual_csv(plateau, residual_csv)
    kkt_dir = runner.directory(claim, "kkt_residual")
    runner.ncflab_command("kkt", config(config_name), f"data.path={residual_csv}", "data.label=r", "model.widths=[1]",
                          "--out", kkt_dir)
    out = os.path.join(RESULTS, claim)
    os.makedirs(out, exist_ok=True)
    numbers = saddle_results(plateau, kkt_dir, out)
    checks.band("mass-weighted cos of the small neurons to the residual NCF's KKT points, plateau end",
                numbers["weighted_cos_end"], 0.99, 1.0,
                "SPEC §1: at a saddle the small neurons align with KKT points of the residual NCF")
    checks.band("largest small neuron at the plateau's end", numbers["largest_small_end"], 0.0, 0.05,
                "the small neurons stay small while the loss plateaus")
    publish(os.path.join(run, "report"), claim, "run")


CLAIMS = {"escape_L3": escape_L3, "escape_L4": escape_L4, "escape_L4_flow": escape_L4_flow,
          "escape_L7_flow": escape_L7_flow, "escape_logistic": escape_logistic, "collapse": collapse,
          "kkt": kkt, "kinks": kinks,
          "two_homogeneous": two_homogeneous, "two_homogeneous_off_teacher": two_homogeneous_off_teacher,
          "saddle": saddle}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("claims", nargs="+", choices=[*CLAIMS, "all"])
    parser.add_argument("--ncflab", default=os.path.join(ROOT, "build", "ncflab"), help="the ncflab executable")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "paper"), help="where the runs go")
    parser.add_argument("--resume", action="store_true",
                        help="kkt: keep the searches whose kkt.json is already there (an interrupted claim)")
    args = parser.parse_args()
    runner = Runner(args.ncflab, args.out, args.resume)
    failed = []
    for claim in CLAIMS if "all" in args.claims else args.claims:
        started = time.monotonic()
        print(f"== {claim}", flush=True)
        checks = Checks(claim)
        CLAIMS[claim](runner, checks)
        checks.write(os.path.join(RESULTS, claim))
        failures = checks.failures()
        failed += [f"{claim}: {what}" for what, *_ in failures]
        print(f"== {claim}: {time.monotonic() - started:.0f} s; {len(checks.rows) - len(failures)} of "
              f"{len(checks.rows)} checks inside their bands; results in {os.path.join(RESULTS, claim)}", flush=True)
    if failed:
        print("reproduce: numbers outside the bands the theory predicts:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
