"""bench.py's lines below the table: the NCF flow of a few members against the baseline's
(wall-clock and T*), and ncflab's ensemble throughput with one core kept busy."""
import os
import subprocess
import sys
import time

import torch

from bench_runs import BASELINE, MODELS, QUICKSTART, AnchorFailed, run_checked, run_ncflab, summary_of

# Beyond the table (--extras): the NCF flow every run integrates first, timed against the
# baseline's, and ncflab's ensemble throughput with one core busy.
EXTRAS = ["flow", "loaded"]
FLOW_MODEL, FLOW_SEEDS = "heldout", 8
LOADED_MODEL, LOADED_SEEDS, LOADED_STEPS = "heldout", 64, 5000


def flow_blowup_times(summary):
    return [m["ncf_flow"]["blowup_time"] for m in summary["members"]]


def timed(command, who):
    """Wall-clock seconds of a command (start-up included: every side pays its own)."""
    started = time.perf_counter()
    run_checked(command, who)
    return time.perf_counter() - started


def measure_flow(ncflab, work):
    """The NCF flow of FLOW_SEEDS members of FLOW_MODEL from the same w0: `ncflab run` and the
    baseline for one training step each (the flow comes first), wall-clock, and T* compared."""
    overrides = MODELS[FLOW_MODEL]["overrides"] + [f"ensemble.seeds={FLOW_SEEDS}", "train.max_steps=1",
                                                    "hooks.progress=false", "train.checkpoint_every=0"]
    ours, theirs = os.path.join(work, "flow_ncflab"), os.path.join(work, "flow_baseline")
    row = {"ncflab": timed([ncflab, "run", QUICKSTART, *overrides, "--out", ours], "ncflab")}
    ncflab_times = flow_blowup_times(summary_of(ours))
    try:
        row["baseline"] = timed([sys.executable, BASELINE, QUICKSTART, *overrides, "--init",
                                 os.path.join(ours, "weights_init.pt"), "--out", theirs], "the baseline")
        row["agreement"] = max(abs(a - b) / abs(b) for a, b in zip(ncflab_times, flow_blowup_times(summary_of(theirs))))
    except AnchorFailed as e:
        row["note"] = f"failed: {e}"
    return row


def measure_loaded(ncflab, work, idle):
    """LOADED_MODEL S = LOADED_SEEDS with a spinning process on one core, against `idle` (the
    same run's steps/s on the idle machine, from the table), so the ratio is the lost share."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        summary = run_ncflab(ncflab, os.path.join(work, "loaded"),
                             MODELS[LOADED_MODEL]["overrides"] + [f"ensemble.seeds={LOADED_SEEDS}"], LOADED_STEPS)
    finally:
        busy.kill()
        busy.wait()
    return {"loaded": summary["steps_per_second"], "idle": idle}


def extras_lines(flow, loaded):
    lines = []
    if flow:
        label = f"{MODELS[FLOW_MODEL]['label']}, {FLOW_SEEDS} members"
        if "note" in flow:
            lines.append(f"NCF flow ({label}): ncflab {flow['ncflab']:.1f} s; PyTorch {torch.__version__} "
                         f"baseline {flow['note']}.")
        else:
            lines.append(f"NCF flow ({label}), wall-clock of the whole process with start-up: ncflab {flow['ncflab']:.1f} s, "
                         f"PyTorch {torch.__version__} baseline {flow['baseline']:.1f} s "
                         f"({flow['baseline'] / flow['ncflab']:.1f}×); largest relative difference of T* "
                         f"{flow['agreement']:.0e}.")
    if loaded:
        lines.append(f"One core busy (a spinning process): {MODELS[LOADED_MODEL]['label']}, S = {LOADED_SEEDS}, "
                     f"{LOADED_STEPS} steps: ncflab {loaded['loaded']:,.1f} steps/s = "
                     f"{100 * loaded['loaded'] / loaded['idle']:.0f} % of the idle machine's {loaded['idle']:,.1f}.")
    return ["", *lines] if lines else []

