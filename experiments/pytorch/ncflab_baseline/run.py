"""One run from the parsed command line to its files, in `ncflab run`'s order: set-up, the members
(NCF flow, then gradient descent) one after another, the outputs; baseline.py only parses and exits.
"""
import os
import sys
import time
from types import SimpleNamespace

import torch

from .config import InputError, load_config, write_config
from .data import load_data
from .flow import MAX_FLOW_SAMPLES, integrate_flow
from .kkt import Ncf
from .model import flatten, layer_degrees, layer_shapes, split
from .output import member_summary, run_summary, save_weights, write_metrics, write_summary, write_trajectory
from .train import train_member


def pick_device(choice):
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda, but this PyTorch has no CUDA device")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def initial_weights(args, config, shapes, device, dtype):
    members = config["ensemble"]["seeds"]
    if args.init is not None:
        saved = torch.load(args.init, map_location="cpu")
        keys = [f"W{l + 1}" for l in range(len(shapes))]
        if sorted(saved) != sorted(keys):
            raise InputError(f"{args.init}: expected layers {', '.join(keys)}, found {', '.join(sorted(saved))}")
        for key, shape in zip(keys, shapes):
            if tuple(saved[key].shape) != (members, *shape):
                raise InputError(f"{args.init}: {key} is {list(saved[key].shape)}, the config needs "
                                 f"{[members, *shape]}")
        return [[saved[key][s].to(device, dtype) for key in keys] for s in range(members)]
    result = []  # w0 Gaussian over all weights, normalised, times δ (not ncflab's draw)
    init_scale = float(config["init"]["scale"])
    for s in range(members):
        g = torch.Generator().manual_seed(config["seed"] + s)
        flat = torch.randn(sum(r * c for r, c in shapes), generator=g, dtype=torch.float64)
        flat = init_scale * flat / flat.norm()
        result.append([w.to(device, dtype) for w in split(flat, shapes)])
    return result


def prepare(args):
    """The config, threads, device, data, starting weights and the NCF: everything checked
    before the first file is written."""
    config = load_config(args.config, args.overrides)
    threads = config["threads"] or os.cpu_count() or 1
    torch.set_num_threads(threads)
    device = pick_device(config["device"])
    dtype = torch.float64 if config["dtype"] == "float64" else torch.float32
    init_scale = float(config["init"]["scale"])
    alpha, p = float(config["model"]["activation"]["alpha"]), config["model"]["activation"]["p"]
    inputs, labels = load_data(config, args.data, args.init)
    widths, kind = config["model"]["widths"], config["model"]["kind"]
    shapes = layer_shapes(inputs.shape[1], widths, kind)
    degrees = layer_degrees(widths, p, kind)
    degree = sum(degrees)
    if dtype == torch.float32 and init_scale ** degree < 1e-30:
        print(f"baseline: warning: float32 with delta^L = {init_scale ** degree:.1e} underflows; use dtype: float64",
              file=sys.stderr)
    initial = initial_weights(args, config, shapes, device, dtype)
    inputs, labels = inputs.to(device, dtype), labels.to(device, dtype)
    ybar = labels if config["loss"] == "square" else 0.5 * labels
    # The NCF and its flow in float64, as ncflab computes them.
    ncf = Ncf(inputs.to(torch.float64), ybar.to(torch.float64), widths, kind, alpha, p)
    kink_switch = str(config["hooks"]["kink_residual"]).lower()
    kink_tol = float(config["kkt"]["kink_tol"]) if kink_switch == "true" or (kink_switch == "auto" and p == 1) else 0.0
    if config["hooks"]["kkt_search"]:
        print("baseline: hooks.kkt_search is not part of the baseline: no cos_to_kkt column", file=sys.stderr)
    return SimpleNamespace(config=config, device=device, dtype=dtype, inputs=inputs, labels=labels, shapes=shapes,
                           degrees=degrees, initial=initial, ncf=ncf, kink_tol=kink_tol)


def member_flow(setup, w0, delta):
    """The NCF flow from member w0's direction: (ncf_flow result, final direction, u at the
    logged steps' rescaled times), or Nones with flow.enabled off."""
    config = setup.config
    if not config["flow"]["enabled"]:
        return None, None, None
    log_every, max_steps = config["train"]["log_every"], config["train"]["max_steps"]
    step_size, degree = float(config["train"]["step"]), sum(setup.degrees)
    w0 = flatten(w0).to(torch.float64)
    w0 = w0 / w0.norm()
    times = [j * log_every * step_size * delta ** (degree - 2)
             for j in range(min(MAX_FLOW_SAMPLES, max_steps // log_every + 1))]
    flow_result, flow_direction, flow_samples = integrate_flow(setup.ncf, w0, config["flow"], times)
    return flow_result, flow_direction.to(setup.dtype), flow_samples


def train_members(setup):
    """Member after member, as a for-seed loop would: its flow, then gradient descent. None when
    interrupted (Ctrl-C)."""
    config = setup.config
    done = SimpleNamespace(summaries=[], rows=[], finals=[], outcomes=[], training_seconds=0.0, iterations=0)
    progress = str(config["hooks"]["progress"]).lower() != "false"
    for s in range(config["ensemble"]["seeds"]):
        delta = float(config["init"]["scale"])  # member s's δ: every member starts at init.scale
        flow_result, flow_direction, flow_samples = member_flow(setup, setup.initial[s], delta)
        report = (lambda step, loss, ratio, s=s: print(
            f"baseline: member {s}: step {step}  loss {loss:.6g}  ||w||/delta {ratio:.4g}", file=sys.stderr)) \
            if progress else None
        started = time.perf_counter()
        try:
            final, rows, outcome = train_member(setup.initial[s], setup.inputs, setup.labels, setup.ncf, config,
                                                delta, flow_direction, flow_samples, setup.kink_tol, report)
        except KeyboardInterrupt:
            print("baseline: interrupted", file=sys.stderr)
            return None
        done.training_seconds += time.perf_counter() - started
        done.iterations = max(done.iterations, outcome["steps"])
        for row in rows:
            row["member"] = s
        done.rows += rows
        done.finals.append(final)
        done.summaries.append(member_summary(outcome, rows, delta, flow_result, setup.degrees))
        done.outcomes.append(outcome)
        if progress:
            print(f"baseline: member {s}: {outcome['status']} after {outcome['steps']} steps", file=sys.stderr)
    return done


def run(args):
    """The whole run; returns the exit code (InputError: bad input, for the caller's exit 2)."""
    setup = prepare(args)
    out = args.out
    os.makedirs(out, exist_ok=True)
    write_config(setup.config, os.path.join(out, "config.yaml"))
    save_weights(os.path.join(out, "weights_init.pt"), setup.initial)
    done = train_members(setup)
    if done is None:
        return 130
    names = [key for key in done.rows[0] if key not in ("member", "step", "time")]
    write_metrics(os.path.join(out, "metrics.csv"), names, done.rows)
    save_weights(os.path.join(out, "weights_final.pt"), done.finals)
    every = setup.config["train"]["snapshot_every"]
    if every > 0:
        write_trajectory(os.path.join(out, "weights_trajectory.pt"), done.outcomes, every, len(setup.shapes),
                         float(setup.config["train"]["step"]))
    summary = run_summary(done.summaries, setup.degrees, setup.device, done.training_seconds, done.iterations)
    write_summary(os.path.join(out, "summary.json"), summary)
    print(f"baseline: {summary['status']} ({done.iterations} steps, {summary['steps_per_second']:.0f} steps/s, "
          f"{done.training_seconds:.2f} s); wrote {out}")
    return 0
