#!/usr/bin/python3
"""Steps per second of `ncflab run` against PyTorch and JAX anchors, measured side by side.

    /usr/bin/python3 experiments/bench/bench.py [--ncflab build/ncflab] [--markdown FILE] [--quick]
        [--models quickstart,wide,heldout] [--extras flow,loaded]

For each model every implementation trains from the same weights_init.pt on the same data
(the ncflab run's data.pt) for a fixed number of gradient-descent steps, in float64, on all
cores, with the per-row hooks and the NCF flow off (the flow is computed before training
and is not part of a step): a single run (S = 1) and a 64-seed ensemble (S = 64), for the
held-out net also S = 1024, which ncflab trains as one batched computation. The anchors:

  - PyTorch baseline, torch 1.13: experiments/pytorch/baseline.py under Debian's
    /usr/bin/python3, autograd, member after member as a for-seed loop would;
  - PyTorch baseline, torch 2.x: the same script under .deps/torch2/bin/python
    (cmake/install-torch2.sh);
  - batched eager, torch 1.13: torch_gd.py --mode eager under /usr/bin/python3, whose matmuls
    run on Debian's OpenBLAS (the batched anchor with OpenBLAS on both sides);
  - batched eager / batched compile: torch_gd.py under torch 2.x, all members in one
    [S, k_l, k_{l-1}] tensor per layer, batched matmuls, a hand-written backward, in-place
    updates, no host sync in the loop; eager, and with torch.compile (compile time excluded
    from the steps/s, reported below the table);
  - JAX: jax_gd.py under .deps/jax/bin/python (experiments/bench/install-jax.sh): jit, vmap
    over members, lax.scan over the steps (compile time likewise excluded and reported).

An anchor whose interpreter is not installed is skipped with a note in its column. Steps/s
counts ensemble steps (one advances all S members). Each cell holds the anchor's steps/s,
ncflab's steps/s divided by it, and the largest relative difference of a member's layer
from ncflab's weights after the same number of steps (ncflab runs those steps again,
untimed, when an anchor times fewer), so the speed is for the same work. Prints the
machine and versions line and a Markdown table (and writes them with --markdown).

The machine's float64 peak is measured too, before and after the table: ncflab-fma-peak
(built beside ncflab) runs chains of fused multiply-adds in registers on every core, so the
share of peak in the table is of what this host gives at the time, turbo and neighbours
included; the peak computed from the nominal clock is printed beside it.

Below the table (--extras): the NCF flow of 8 held-out members from the same w0, ncflab
against the torch 1.13 baseline (wall-clock of each whole process, and how far their T*
differ), and ncflab's held-out S = 64 throughput with a spinning process on one core, as a
share of the idle figure in the table.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import torch
import yaml

from bench_extras import EXTRAS, LOADED_MODEL, LOADED_SEEDS, extras_lines, measure_flow, measure_loaded
from bench_runs import (JAX_GD, JAX_PYTHON, MODELS, TORCH2_PYTHON, TORCH_GD, AnchorFailed, last_line, run_baseline,
                        run_json, run_ncflab)

AGREEMENT = 1e-10  # float64 with other summation orders: a larger difference is a different computation
ESCAPE_RADIUS = 0.1  # quickstart.yaml's train.escape_radius, which the timed runs switch off

# (model, S, ncflab steps, baseline steps): the baseline's ensemble loop gets fewer steps,
# its rate is steps of the whole ensemble per second all the same. The batched anchors
# (torch_gd.py, jax_gd.py) take ncflab's steps.
PLAN = [("quickstart", 1, 20000, 20000), ("quickstart", 64, 5000, 500),
        ("wide", 1, 400, 400), ("wide", 64, 40, 8),
        ("heldout", 1, 20000, 20000), ("heldout", 64, 5000, 500), ("heldout", 1024, 500, 5)]
ANCHORS = ["baseline", "eager113", "baseline2", "eager", "compile", "jax"]
TORCH2_MISSING = "not installed: run cmake/install-torch2.sh"
JAX_MISSING = "not installed: run experiments/bench/install-jax.sh"


def publish(text, markdown):
    """Prints the table and writes it to `markdown` when given."""
    print(text)
    if markdown:
        with open(markdown, "w") as f:
            f.write(text + "\n")



def model_parameters(run_dir):
    """σ's α and p, the loss and η, from the run's resolved config.yaml."""
    with open(os.path.join(run_dir, "config.yaml")) as f:
        config = yaml.safe_load(f)
    if config["model"].get("kind", "feedforward") != "feedforward":
        sys.exit("bench: the batched anchors train feed-forward models only")
    activation = config["model"]["activation"]
    return ["--alpha", repr(float(activation["alpha"])), "--p", str(int(activation["p"])), "--loss", config["loss"],
            "--step", repr(float(config["train"]["step"]))]


def flops_per_member_step(run_dir):
    """Floating-point operations of one gradient-descent step of one member, from the run's
    config.yaml: per layer of P_l = rows·cols weights, 2nP_l for the forward sums, 2nP_l for the
    gradient and (above the first layer) 2nP_l for the deltas; activations and loss not counted."""
    with open(os.path.join(run_dir, "config.yaml")) as f:
        config = yaml.safe_load(f)
    n, d = int(config["data"]["n"]), int(config["data"]["d"])
    widths = [int(w) for w in config["model"]["widths"]]
    sizes = [a * b for a, b in zip(widths + [1], [d] + widths)]
    return 2 * n * (3 * sum(sizes) - sizes[0])


FLOPS_PER_CYCLE = {"avx512": 32, "avx2": 16, "generic": 4}  # float64, per core, two FMA units


def peak_gflops(ncflab_line):
    """The machine's float64 peak from the instruction set ncflab's kernels use (its --version
    line) and the clock /proc/cpuinfo reports, or None: cores × GHz × flops per cycle."""
    isa = next((name for name in FLOPS_PER_CYCLE if f"kernels {name}" in ncflab_line), None)
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            mhz = next((float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz")), None)
    except OSError:
        pass
    if isa is None or mhz is None:
        return None, isa, mhz
    return os.cpu_count() * mhz / 1000 * FLOPS_PER_CYCLE[isa], isa, mhz


def measured_peak(ncflab, seconds=2):
    """ncflab-fma-peak's JSON (float64 GFLOP/s of FMA chains on all cores, now), or None when the
    probe is not built beside ncflab."""
    probe = os.path.join(os.path.dirname(os.path.abspath(ncflab)), "ncflab-fma-peak")
    if not os.access(probe, os.X_OK):
        return None
    done = subprocess.run([probe, "--seconds", str(seconds)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def pooled_trials(measured):
    """The probe's trials (GFLOP/s) of its runs before and after the table, ascending."""
    return sorted(t for m in measured if m for t in m["trials"])


def peak_line(computed, isa, mhz, measured):
    """The sentence on the peaks below the table; measured: the probe's runs before and after."""
    runs = [m for m in measured if m]
    trials = pooled_trials(measured)
    if runs:
        text = (f"Peak measured by ncflab-fma-peak ({runs[0]['isa']} FMA chains in registers on all "
                f"{runs[0]['threads']} cores, {len(trials)} trials of ~0.2 s before and after the table): median "
                f"{np.median(trials):.0f} GFLOP/s (before {runs[0]['median_gflops']:.0f}, after "
                f"{runs[-1]['median_gflops']:.0f}, best {trials[-1]:.0f}); the shares are of that median. ")
    else:
        text = "Peak not measured (no ncflab-fma-peak beside ncflab: build it); the shares are of the computed one. "
    if computed:
        text += (f"Computed: {os.cpu_count()} cores × {mhz / 1000:.2f} GHz (cpu MHz in /proc/cpuinfo) × "
                 f"{FLOPS_PER_CYCLE[isa]} float64 flops per cycle for {isa} with two FMA units = {computed:.0f} "
                 "GFLOP/s (turbo, one FMA unit or a shared host change it).")
    else:
        text += "Computed: unknown (no instruction set in ncflab --version or no clock in /proc/cpuinfo)."
    return text


def load_weights(path):
    if path.endswith(".npz"):
        with np.load(path) as saved:
            return {k: torch.from_numpy(saved[k]) for k in saved.files}
    return torch.load(path, map_location="cpu")


def largest_difference(reference, other):
    """Largest ‖a − b‖/‖a‖ over members and layers; the run directories' weights_final.pt or files."""
    def weights(where):
        return load_weights(os.path.join(where, "weights_final.pt") if os.path.isdir(where) else where)

    a, b = weights(reference), weights(other)
    if sorted(a) != sorted(b):
        raise AnchorFailed(f"layers {sorted(b)} instead of {sorted(a)}")
    return max(float(((a[k] - b[k].to(a[k])).flatten(1).norm(dim=1) / a[k].flatten(1).norm(dim=1)).max())
               for k in a)


def largest_norm(summary):
    """Largest final ‖w‖ and ‖w‖/δ over the members (the timed steps must stay before escape)."""
    members = summary.get("members") or [summary]
    norms = [(m["final"]["norm"], m["final"]["norm"] / m["delta"]) for m in members]
    return max(n for n, _ in norms), max(r for _, r in norms)


def smallest_motion(run_dir):
    """Smallest ‖w_final − w_init‖/‖w_init‖ over the members: how far the timed steps moved the
    weights, the scale against which the agreement is small."""
    a = load_weights(os.path.join(run_dir, "weights_init.pt"))
    b = load_weights(os.path.join(run_dir, "weights_final.pt"))
    start = torch.cat([a[k].flatten(1) for k in sorted(a)], 1)
    end = torch.cat([b[k].flatten(1) for k in sorted(a)], 1)
    return float(((end - start).norm(dim=1) / start.norm(dim=1)).min())


def write_npz(run_dir, path):
    """weights_init.pt and data.pt as one .npz, for the JAX venv (which has no torch)."""
    weights = torch.load(os.path.join(run_dir, "weights_init.pt"), map_location="cpu")
    data = torch.load(os.path.join(run_dir, "data.pt"), map_location="cpu")
    arrays = {k: w.to(torch.float64).numpy() for k, w in weights.items()}
    arrays["inputs"] = data["inputs"].to(torch.float64).numpy()
    arrays["labels"] = data["labels"].to(torch.float64).numpy()
    np.savez(path, **arrays)


def measure(ncflab, work, model, seeds, steps, baseline_steps):
    overrides = MODELS[model]["overrides"] + [f"ensemble.seeds={seeds}"]
    tag = f"{model}_{seeds}"
    ours = os.path.join(work, tag)
    timed = run_ncflab(ncflab, ours, overrides, steps)
    init, data = os.path.join(ours, "weights_init.pt"), os.path.join(ours, "data.pt")
    parameters = model_parameters(ours)
    reference = {steps: ours}  # ncflab's final weights after that many steps

    def ncflab_after(count):
        if count not in reference:  # the same work for the weight check: ncflab again, untimed
            reference[count] = os.path.join(work, f"{tag}_check{count}")
            run_ncflab(ncflab, reference[count], overrides, count)
        return reference[count]

    row = {"model": model, "seeds": seeds, "engine": timed["engine"], "ncflab": timed["steps_per_second"],
           "gflops": timed["steps_per_second"] * seeds * flops_per_member_step(ours) / 1e9,
           "steps": steps, "baseline_steps": baseline_steps, "norm": largest_norm(timed),
           "motion": smallest_motion(ours), "anchors": {}}

    def anchor(name, run):
        try:
            row["anchors"][name] = run()
        except AnchorFailed as e:
            row["anchors"][name] = {"note": f"failed: {e}"}

    def baseline(python, name):
        theirs = os.path.join(work, f"{tag}_{name}")
        summary = run_baseline(python, theirs, init, overrides, baseline_steps)
        return {"steps_per_second": summary["steps_per_second"], "steps": baseline_steps,
                "agreement": largest_difference(ncflab_after(baseline_steps), theirs)}

    def torch_gd(mode, python=TORCH2_PYTHON, name=None):
        out = os.path.join(work, f"{tag}_{name or mode}.pt")
        result = run_json([python, TORCH_GD, "--init", init, "--data", data, "--steps", str(steps),
                           "--mode", mode, *parameters, "--out", out], f"torch_gd.py --mode {mode}")
        result["agreement"] = largest_difference(ours, out)
        return result

    def jax_gd():
        npz, out = os.path.join(work, f"{tag}_jax_in.npz"), os.path.join(work, f"{tag}_jax.npz")
        write_npz(ours, npz)
        result = run_json([JAX_PYTHON, JAX_GD, npz, "--steps", str(steps), *parameters, "--out", out], "jax_gd.py")
        result["agreement"] = largest_difference(ours, out)
        return result

    anchor("baseline", lambda: baseline(sys.executable, "baseline"))
    anchor("eager113", lambda: torch_gd("eager", sys.executable, "eager113"))
    if os.path.exists(TORCH2_PYTHON):
        anchor("baseline2", lambda: baseline(TORCH2_PYTHON, "baseline2"))
        anchor("eager", lambda: torch_gd("eager"))
        anchor("compile", lambda: torch_gd("compile"))
    else:
        for name in ("baseline2", "eager", "compile"):
            row["anchors"][name] = {"note": TORCH2_MISSING}
    if os.path.exists(JAX_PYTHON):
        anchor("jax", jax_gd)
    else:
        row["anchors"]["jax"] = {"note": JAX_MISSING}
    return row


def version_of(python, package):
    """A package's version in another interpreter (from its metadata: no import), or None."""
    if not os.path.exists(python):
        return None
    done = subprocess.run([python, "-c", f"from importlib.metadata import version; print(version('{package}'))"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ncflab_version(ncflab):
    done = subprocess.run([ncflab, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return last_line(done.stdout) if done.returncode == 0 else "ncflab (version unknown)"


def cell(row, name):
    a = row["anchors"][name]
    if "note" in a:
        return a["note"]
    flag = " (DISAGREES)" if not a["agreement"] <= AGREEMENT else ""
    return (f"{a['steps_per_second']:,.1f} · {row['ncflab'] / a['steps_per_second']:.1f}× · "
            f"{a['agreement']:.0e}{flag}")


def short(model):
    return MODELS[model]["label"].split(":")[0]


def table(rows, versions, load_before, load_after, ncflab, flow=None, loaded=None, measured=()):
    torch2 = versions["torch2"] or "2.x"
    titles = {"baseline": f"PyTorch {torch.__version__} baseline",
              "eager113": f"PyTorch {torch.__version__} batched eager", "baseline2": f"PyTorch {torch2} baseline",
              "eager": f"PyTorch {torch2} batched eager", "compile": f"PyTorch {torch2} batched torch.compile",
              "jax": f"JAX {versions['jax'] or ''} jit+vmap+scan".replace("  ", " ")}
    loads = ", ".join(f"{x:.2f}" for x in load_before)
    torch2_line = (f"PyTorch {versions['torch2']} (.deps/torch2, CPU)" if versions["torch2"]
                   else f"PyTorch 2.x {TORCH2_MISSING}")
    jax_line = f"JAX {versions['jax']} (.deps/jax, CPU)" if versions["jax"] else f"JAX {JAX_MISSING}"
    lines = [
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; "
        f"load average before the bench {loads} (1, 5, 15 min), after {load_after[0]:.2f} (1 min). "
        f"Versions: {ncflab}; PyTorch {torch.__version__} ({sys.executable}); {torch2_line}; {jax_line}. "
        "Every implementation runs float64 on all cores. Steps/s of the whole ensemble: one step advances all "
        "S members.",
        "",
        "| model | S | ncflab engine | ncflab steps/s | ncflab GFLOP/s (% of "
        + ("measured" if any(measured) else "computed") + " peak) | "
        + " | ".join(titles[a] for a in ANCHORS) + " |",
        "| --- | ---: | --- | ---: | ---: | " + " | ".join("---:" for _ in ANCHORS) + " |",
    ]
    computed, isa, mhz = peak_gflops(ncflab)
    trials = pooled_trials(measured)
    peak = float(np.median(trials)) if trials else computed
    for r in rows:
        share = f" ({100 * r['gflops'] / peak:.0f} %)" if peak else ""
        lines.append(f"| {MODELS[r['model']]['label']} | {r['seeds']} | {r['engine']} | {r['ncflab']:,.1f} | "
                     f"{r['gflops']:.1f}{share} | " + " | ".join(cell(r, a) for a in ANCHORS) + " |")
    lines += [
        "",
        "Cells: steps/s · ncflab's steps/s ÷ the anchor's · largest relative difference "
        "‖w − w_ncflab‖/‖w_ncflab‖ of a member's layer after the same number of steps, all from ncflab's "
        f"weights_init.pt and data.pt (above {AGREEMENT:.0e}: marked DISAGREES).",
        "",
        "GFLOP/s: the multiply-adds of the forward sums, the gradients and the deltas (2nP per layer of P "
        "weights each, activations and loss not counted) × members × steps/s. "
        + peak_line(computed, isa, mhz, measured),
        "",
        "Steps timed: " + "; ".join(f"{short(r['model'])} S={r['seeds']}: ncflab and the batched anchors "
                                    f"{r['steps']}, baselines {r['baseline_steps']}" for r in rows) + ".",
    ]
    compiles = []
    for r in rows:
        parts = []
        a = r["anchors"]["compile"]
        if "compile_seconds" in a:
            parts.append(f"torch.compile {a['compile_seconds']:.1f} s (Inductor cache {a.get('inductor_cache', '?')})")
        a = r["anchors"]["jax"]
        if "compile_seconds" in a:
            parts.append(f"JAX {a['compile_seconds']:.1f} s")
        if parts:
            compiles.append(f"{short(r['model'])} S={r['seeds']}: " + ", ".join(parts))
    if compiles:
        lines += ["", "Compile time, not in the steps/s: " + "; ".join(compiles) + "."]
    lines += ["", "At the end of ncflab's timed steps, largest ‖w‖/δ over the members (O(1): no member has "
              f"escaped, ‖w‖ < {ESCAPE_RADIUS}, nor diverged) and smallest relative change ‖w − w0‖/‖w0‖ "
              "(what the agreement is measured against): "
              + "; ".join(f"{short(r['model'])} S={r['seeds']}: {r['norm'][1]:.3g}, {r['motion']:.1e}" for r in rows)
              + "."]
    lines += extras_lines(flow, loaded)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ncflab", default="build/ncflab", help="the ncflab executable")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps (a smoke test)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--extras", default=",".join(EXTRAS),
                        help="comma-separated subset of " + ", ".join(EXTRAS) + " (or none): the NCF flow against "
                        f"the baseline's, throughput with one core busy (needs the {LOADED_MODEL} model)")
    args = parser.parse_args()
    models = args.models.split(",")
    extras = [] if args.extras in ("", "none") else args.extras.split(",")
    for extra in extras:
        if extra not in EXTRAS:
            sys.exit(f"bench: unknown extra '{extra}' (extras: {', '.join(EXTRAS)})")
    for model in models:
        if model not in MODELS:
            sys.exit(f"bench: unknown model '{model}' (models: {', '.join(MODELS)})")
    if not os.access(args.ncflab, os.X_OK):
        sys.exit(f"bench: no ncflab executable at {args.ncflab} (build it, or pass --ncflab PATH)")
    load_before = os.getloadavg()
    versions = {"torch2": version_of(TORCH2_PYTHON, "torch"), "jax": version_of(JAX_PYTHON, "jax")}
    print(f"bench: load average before starting {load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f}; "
          f"PyTorch {torch.__version__}, PyTorch 2.x {versions['torch2'] or TORCH2_MISSING}, "
          f"JAX {versions['jax'] or JAX_MISSING}", file=sys.stderr)
    scale = 0.1 if args.quick else 1.0
    peak_before = measured_peak(args.ncflab)
    if peak_before:
        print(f"bench: measured float64 peak {peak_before['median_gflops']:.0f} GFLOP/s "
              f"({peak_before['isa']}, {peak_before['threads']} cores)", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model, seeds, steps, baseline_steps in PLAN:
            if model not in models:
                continue
            steps, baseline_steps = max(4, int(steps * scale)), max(2, int(baseline_steps * scale))
            r = measure(args.ncflab, work, model, seeds, steps, baseline_steps)
            rows.append(r)
            if r["norm"][0] >= ESCAPE_RADIUS:
                print(f"bench: warning: {model} S = {seeds}: a member reached ||w|| = {r['norm'][0]:.3g} "
                      f">= {ESCAPE_RADIUS} (escaped) within the timed steps", file=sys.stderr)
            for name, a in r["anchors"].items():
                if "agreement" in a and not a["agreement"] <= AGREEMENT:
                    print(f"bench: warning: {model} S = {seeds}: {name} differs from ncflab by "
                          f"{a['agreement']:.1e} > {AGREEMENT:.0e} relative", file=sys.stderr)
            print(f"{MODELS[model]['label']}, S = {seeds}: ncflab {r['ncflab']:,.1f} steps/s; "
                  + "; ".join(f"{a} {cell(r, a)}" for a in ANCHORS), file=sys.stderr)
        flow = measure_flow(args.ncflab, work) if "flow" in extras else None
        if flow:
            print(f"NCF flow: {extras_lines(flow, None)[-1]}", file=sys.stderr)
        idle = [r["ncflab"] for r in rows if (r["model"], r["seeds"]) == (LOADED_MODEL, LOADED_SEEDS)]
        loaded = None
        if "loaded" in extras:
            if idle:
                loaded = measure_loaded(args.ncflab, work, idle[0])
                print(extras_lines(None, loaded)[-1], file=sys.stderr)
            else:
                print(f"bench: the loaded run needs {LOADED_MODEL} S = {LOADED_SEEDS} in the table: skipped",
                      file=sys.stderr)
    load_after = os.getloadavg()
    peak_after = measured_peak(args.ncflab)
    text = table(rows, versions, load_before, load_after, ncflab_version(args.ncflab), flow, loaded,
                 (peak_before, peak_after))
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
