"""Claims about the escape-time law (SPEC §1: t_esc·δ^(L−2) → T*, cos(w, u(T*)) → 1) with gradient
descent and with the gradient flow, at L = 3, 4 and 7, with the logistic loss, and the other branch:
weights whose NCF flow collapses."""
import csv
import json
import os
import time

from checks import check_escape_law
from claim_tools import RESULTS, config, escape_members, publish, run_members, sweep_rows


def escape(runner, checks, claim, config_name, deltas, sample_run):
    sweep = runner.directory(claim)
    runner.ncflab_command("sweep", config(config_name), "init.scale=" + ",".join(deltas), "--out", sweep)
    check_escape_law(checks, escape_members(sweep), "gd")
    runner.ncflab_command("report", sweep)
    publish(os.path.join(sweep, "report"), claim)
    # One run of the sweep on its own: per-layer σ₂/σ₁ over time (rank one before escape).
    run = os.path.join(sweep, sample_run)
    runner.ncflab_command("report", run)
    publish(os.path.join(run, "report"), claim, "run_" + sample_run.split("=")[-1])


def escape_L3(runner, checks):
    escape(runner, checks, "escape_L3", "escape_L3_leaky_relu.yaml", ["3e-2", "1e-2", "3e-3", "1e-3", "3e-4", "1e-4"],
           "003_init.scale=1e-3")


def escape_L4(runner, checks):
    escape(runner, checks, "escape_L4", "escape_L4_two_layer_p3.yaml", ["5e-2", "2e-2", "1e-2", "5e-3", "2e-3", "1e-3"],
           "003_init.scale=5e-3")
    # Gradient descent's lag behind the flow grows with η: the same δ = 5e-2 at η = 0.05.
    lag_runs = {}
    for step in ("0.01", "0.05"):
        run = runner.directory("escape_L4", f"step_{step}")
        runner.ncflab_command("run", config("escape_L4_two_layer_p3.yaml"), "init.scale=5e-2", f"train.step={step}",
                              "--out", run)
        with open(os.path.join(run, "summary.json")) as f:
            lag_runs[step] = [m["escape"]["rescaled_time_over_blowup_time"] for m in json.load(f)["members"]]
    lines = ["# escape_L4: gradient descent's lag against η at δ = 5e-2", "",
             "t_esc·δ²/T* per member (the flow's finite-radius prediction lies below 1 here).", "",
             "| η | " + " | ".join(f"member {s}" for s in range(len(lag_runs["0.01"]))) + " |",
             "| ---: |" + " ---: |" * len(lag_runs["0.01"])]
    lines += [f"| {step} | " + " | ".join(f"{r:.5f}" for r in ratios) + " |" for step, ratios in lag_runs.items()]
    with open(os.path.join(RESULTS, "escape_L4", "step_size_lag.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    checks.band("largest t_esc·δ²/T* − 1 at η = 0.05, δ = 5e-2", max(lag_runs["0.05"]) - 1, 0.01, 0.1,
                "gradient descent trails the flow by O(η) in rescaled time at fixed δ: five times η, a lag of "
                "percents")
    checks.band("that lag over the one at η = 0.01", (max(lag_runs["0.05"]) - 1) / max(max(lag_runs["0.01"]) - 1, 1e-12),
                2.0, 100.0, "the lag grows with η")


def flow_table(flow_sweep, gd_sweep):
    """Markdown: per δ the worst |t_esc·δ^(L−2)/T* − 1| over the members and each member's
    cos_to_flow, for the flow and (where it ran) gradient descent, with the steps of each."""
    gd = {row["init.scale"]: row for row in sweep_rows(gd_sweep)}
    lines = ["| δ | flow: max abs(ratio − 1) | flow: cos_to_flow of each member | flow: steps (gradient evaluations) "
             "| GD: max abs(ratio − 1) | GD: steps |",
             "| --- | --- | --- | --- | --- | --- |"]
    def worst_error(members):
        ratios = [m["ratio"] for m in members if m["ratio"] is not None]
        return max(abs(r - 1) for r in ratios) if ratios else float("nan")

    for row in sweep_rows(flow_sweep):
        summary, members = run_members(os.path.join(flow_sweep, row["directory"]))
        error = worst_error(members)
        cosines = [m["cos"] for m in members if m["cos"] is not None]
        gd_cells = ["not run", ""]
        if row["init.scale"] in gd:
            gd_summary, gd_members = run_members(os.path.join(gd_sweep, gd[row["init.scale"]]["directory"]))
            gd_cells = [f"{worst_error(gd_members):.2e}", f"{gd_summary['steps']}"]
        cosine = ", ".join(f"{c:.6f}" for c in cosines) if cosines else "n/a"
        lines.append(f"| {row['init.scale']} | {error:.2e} | {cosine} "
                     f"| {summary['steps']} ({summary['gradient_evaluations']}) | {gd_cells[0]} | {gd_cells[1]} |")
    return "\n".join(lines) + "\n"


def escape_flow(runner, checks, claim, config_name, deltas, sample_run, gd_claim=None, overrides=()):
    sweep = runner.directory(claim)
    started = time.monotonic()
    runner.ncflab_command("sweep", config(config_name), "train.integrator=flow", *overrides,
                          "init.scale=" + ",".join(deltas), "--out", sweep)
    wall = time.monotonic() - started
    check_escape_law(checks, escape_members(sweep), "flow")
    runner.ncflab_command("report", sweep)
    target = publish(os.path.join(sweep, "report"), claim)
    run = os.path.join(sweep, sample_run)
    runner.ncflab_command("report", run)
    publish(os.path.join(run, "report"), claim, "run_" + sample_run.split("=")[-1])
    gd_sweep = runner.directory(gd_claim) if gd_claim else ""
    with open(os.path.join(target, "flow_vs_gd.md"), "w") as f:
        f.write(f"# {claim}: gradient flow against gradient descent\n\n"
                f"The whole flow sweep ({len(deltas)} values of δ × the config's seeds, one ensemble) "
                f"took {wall:.1f} s of wall time.\n\n" + flow_table(sweep, gd_sweep))


def escape_L4_flow(runner, checks):
    escape_flow(runner, checks, "escape_L4_flow", "escape_L4_two_layer_p3.yaml",
                ["5e-2", "2e-2", "1e-2", "5e-3", "2e-3", "1e-3", "1e-4", "1e-5", "1e-6", "1e-7"],
                "008_init.scale=1e-6", gd_claim="escape_L4")


def escape_L7_flow(runner, checks):
    escape_flow(runner, checks, "escape_L7_flow", "escape_L7_depth3_p2.yaml",
                ["3e-2", "1e-2", "1e-3", "1e-4", "1e-5", "1e-6", "1e-7"], "004_init.scale=1e-5")


def escape_logistic(runner, checks):
    """The escape law with the logistic loss: ȳ = y/2 in the NCF (SPEC §1), same L = 4 net."""
    escape_flow(runner, checks, "escape_logistic", "escape_L4_two_layer_p3.yaml",
                ["5e-2", "1e-2", "1e-3", "1e-4", "1e-5", "1e-6"], "003_init.scale=1e-4",
                overrides=("loss=logistic", "data.sign_labels=true"))


def collapse(runner, checks):
    """The paper's other branch: from directions whose NCF flow collapses (N* < 0), training's
    weights shrink with it instead of escaping; the other members of the same ensemble escape."""
    claim = "collapse"
    run = runner.directory(claim)
    runner.ncflab_command("run", config("collapse_L3_cubic.yaml"), "--out", run)
    runner.ncflab_command("report", run)
    publish(os.path.join(run, "report"), claim)
    with open(os.path.join(run, "summary.json")) as f:
        members = json.load(f)["members"]
    with open(os.path.join(run, "metrics.csv")) as f:
        last = {}
        for row in csv.DictReader(f):
            last[int(row["member"])] = row
    branches = {"collapsed": 0, "blew_up": 0}
    for s, m in enumerate(members):
        outcome = m["ncf_flow"]["outcome"]
        branches[outcome] = branches.get(outcome, 0) + 1
        if outcome == "collapsed":
            checks.band(f"member {s} (flow collapses): N* of the flow", m["ncf_flow"]["ncf"], -0.5 - 1e-9, -0.5 + 1e-9,
                        "the flow ends at the negative KKT point w = (1, 0), N* = −1/2")
            checks.band(f"member {s}: escaped (1) or not (0)", 1.0 if m["escape"] else 0.0, 0.0, 0.0,
                        "weights whose NCF flow collapses never escape")
            checks.band(f"member {s}: final ‖w‖/δ", m["final"]["norm_over_delta"], 0.0, 0.1,
                        "they shrink: ‖w(t)‖ ≈ δ·‖u(δ·t)‖ → 0 (SPEC §1)")
            checks.band(f"member {s}: cos(w/‖w‖, u(δ·t)) at the last step", float(last[s]["cos_to_flow_now"]),
                        0.9999, 1.0, "training follows the collapsing flow")
        else:
            checks.band(f"member {s} (flow blows up): cos_to_flow at escape", m["final"]["cos_to_flow"], 0.999, 1.0,
                        "the same ensemble's other members escape along their flow's direction")
    checks.band("members whose flow collapses", float(branches["collapsed"]), 1.0, 8.0,
                "the ensemble holds both branches (directions with w1 > 0 collapse)")
    checks.band("members whose flow blows up", float(branches["blew_up"]), 1.0, 8.0,
                "… and directions with w1 < 0 blow up")
