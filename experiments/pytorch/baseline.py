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
"""
import argparse
import copy
import csv
import difflib
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("baseline: PyYAML is missing (Debian: apt-get install python3-yaml)")


class InputError(Exception):
    """Bad config, data or arguments: exit code 2."""


# ---------------------------------------------------------------------------------------
# Config: ncflab's keys and defaults (framework/include/ncflab/config.h), merged with the
# file and the overrides. A copy, so the baseline runs without the binary; the test
# tests/baseline_defaults.py ties it to ncflab (every key, value, type and the order, against
# `ncflab validate --print-config`): change a default there, change it here.

DEFAULTS = {
    "name": "quickstart", "seed": 0, "device": "auto", "dtype": "float64", "threads": 0,
    "data": {"source": "synthetic", "n": 100, "d": 10, "inputs": "gaussian", "teacher": "neuron",
             "teacher_width": 2, "label_noise": 0.0, "sign_labels": False, "path": "", "label": "",
             "normalize": "none"},
    "model": {"kind": "feedforward", "widths": [20], "activation": {"alpha": 0.2, "p": 2}},
    "loss": "square",
    "init": {"scale": 1.0e-3},
    "train": {"step": 1.0e-2, "max_steps": 100000, "escape_radius": 0.1, "stop_at_escape": True,
              "log_every": 100, "engine": "auto", "checkpoint_every": 10000, "snapshot_every": 0},
    "ensemble": {"seeds": 1},
    "hooks": {"kkt": True, "kkt_search": False, "kink_residual": "auto", "layers": True,
              "progress": "auto", "progress_seconds": 2.0},
    "kkt": {"restarts": 32, "tol": 1.0e-10, "max_iterations": 20000, "kink_tol": 1.0e-6,
            "rank_one_tol": 1.0e-4},
    "flow": {"max_norm": 1.0e4, "rtol": 1.0e-10, "atol": 1.0e-14, "max_steps": 1000000,
             "max_time": 1.0e6, "record_every": 10, "enabled": True, "kink_step": 1.0e-4},
}
MAX_FLOW_SAMPLES = 4096  # as ncflab: u(δ^(L−2)·t) is kept for at most this many logged steps


def merge(base, update, prefix, where):
    for key, value in update.items():
        path = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise InputError(f"{where}: unknown key '{path}'{hint}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError(f"{where}: key '{path}' expects a mapping, got {value!r}")
            merge(base[key], value, path + ".", where)
        else:
            base[key] = typed_like(base[key], value, path, where)


def typed_like(default, value, path, where):
    """`value` as the default's type. YAML 1.1 (PyYAML) reads 1.0e4 as a string; ncflab's
    yaml-cpp reads it as a number, so numbers are parsed here."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if isinstance(default, int):
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            if not isinstance(value, list):
                raise ValueError
            return [typed_like(default[0], v, path, where) for v in value]
        # Strings (and switches such as hooks.progress: true|false|auto).
        return str(value).lower() if isinstance(value, bool) else str(value)
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise InputError(f"{where}: key '{path}' expects {kind}, got {value!r}") from None


def load_config(path, overrides):
    try:
        with open(path) as f:
            text = yaml.safe_load(f) or {}
    except OSError as e:
        raise InputError(f"{path}: cannot read the config ({e.strerror})")
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})")
    config = copy.deepcopy(DEFAULTS)
    merge(config, text, "", path)
    data_path_from_file = bool(config["data"]["path"])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"override '{item}': expected key.path=value")
        nested = yaml.safe_load(value) if value else ""
        for part in reversed(key.split(".")):
            nested = {part: nested}
        merge(config, nested, "", f"override '{item}'")
        if key in ("data.path", "data"):
            data_path_from_file = False
    # As ncflab: a relative data path in the file is relative to the file's folder.
    data_path = config["data"]["path"]
    if data_path and not os.path.isabs(data_path):
        base = os.path.dirname(os.path.abspath(path)) if data_path_from_file else os.getcwd()
        config["data"]["path"] = os.path.normpath(os.path.join(base, data_path))
    model = config["model"]
    if model["kind"] not in ("feedforward", "single_layer"):
        raise InputError(f"{path}: model.kind must be feedforward or single_layer, got {model['kind']!r}")
    if model["kind"] == "single_layer" and len(model["widths"]) != 1:
        raise InputError(f"{path}: model.widths must be one hidden width [k] for model.kind: single_layer, "
                         f"got {model['widths']!r}")
    activation = model["activation"]
    if not (isinstance(activation["p"], int) and activation["p"] >= 1):
        raise InputError(f"{path}: model.activation.p must be an integer >= 1, got {activation['p']!r}")
    if not -1.0 <= float(activation["alpha"]) <= 1.0:
        raise InputError(f"{path}: model.activation.alpha must lie in [-1, 1], got {activation['alpha']!r}")
    return config


# ---------------------------------------------------------------------------------------
# Data

def read_csv_data(path, label):
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except OSError as e:
        raise InputError(f"data.path: cannot read '{path}' ({e.strerror})")
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header row and at least one data row")
    header = [cell.strip() for cell in rows[0]]
    column = len(header) - 1 if not label else header.index(label) if label in header else None
    if column is None:
        raise InputError(f"{path}: data.label '{label}' is not a column (columns: {', '.join(header)})")
    try:
        table = torch.tensor([[float(cell) for cell in row] for row in rows[1:]], dtype=torch.float64)
    except ValueError as e:
        raise InputError(f"{path}: a cell is not a number ({e})")
    features = [j for j in range(len(header)) if j != column]
    return table[:, features].contiguous(), table[:, column].contiguous()


def normalize(inputs, how):
    if how == "standardize":
        centred = inputs - inputs.mean(0, keepdim=True)
        spread = centred.std(0, unbiased=False, keepdim=True)
        return centred / torch.where(spread > 0, spread, torch.ones_like(spread))
    if how == "sphere":
        return inputs / inputs.norm(dim=1, keepdim=True)
    return inputs


def load_data(config, data_file, init_file):
    data = config["data"]
    if data["source"] == "csv":
        inputs, labels = read_csv_data(data["path"], data["label"])
        inputs = normalize(inputs, data["normalize"])
    else:
        if data_file is None and init_file is not None:
            beside = os.path.join(os.path.dirname(os.path.abspath(init_file)), "data.pt")
            data_file = beside if os.path.exists(beside) else None
        if data_file is None:
            raise InputError("data.source is synthetic: pass --data RUN_DIR/data.pt (or --init from a run "
                             "directory that has data.pt); LibTorch's generator is not PyTorch's")
        saved = torch.load(data_file, map_location="cpu")
        inputs, labels = saved["inputs"].to(torch.float64), saved["labels"].to(torch.float64)
    if config["loss"] == "logistic" and not bool(((labels == 1) | (labels == -1)).all()):
        raise InputError("loss: logistic needs labels in {-1, +1}")
    return inputs, labels


# ---------------------------------------------------------------------------------------
# The network, the loss and the NCF

def activation(z, alpha, p):
    """Polynomial Leaky ReLU σ(z) = max(z,0)^p − α·max(−z,0)^p (p = 1: Leaky ReLU)."""
    if p == 1:
        return F.leaky_relu(z, alpha)
    return torch.clamp(z, min=0) ** p - alpha * torch.clamp(-z, min=0) ** p


def split_model(weights, kind):
    """The layers followed by σ, and the output row W_K (None for single_layer: H sums the units)."""
    return (weights, None) if kind == "single_layer" else (weights[:-1], weights[-1])


def output(h, out):
    """H from the last hidden activations h [n, k]: W_K h, or Σ_j h_j without output weights."""
    return h.sum(1) if out is None else (h @ out.t()).squeeze(1)


def forward(weights, x, alpha, p, kind):
    """H(X) for weights [W1, ..., WK] (W1 alone for single_layer), Wl of shape [k_l, k_{l−1}];
    returns [n]."""
    hidden, out = split_model(weights, kind)
    h = x
    for w in hidden:
        h = activation(h @ w.t(), alpha, p)
    return output(h, out)


def loss_value(outputs, labels, kind):
    if kind == "square":
        return 0.5 * ((outputs - labels) ** 2).sum()
    return F.softplus(-labels * outputs).sum()


def layer_degrees(widths, p, kind):
    """q_l = p^(K−l): W1 enters H with degree p^(K−1), WK with 1; single_layer: [p] (L = p)."""
    if kind == "single_layer":
        return [p]
    depth = len(widths) + 1
    return [p ** (depth - 1 - l) for l in range(depth)]


def layer_shapes(d, widths, kind):
    """[k_l, k_{l−1}] of W1, ..., WK (no output row for single_layer)."""
    dims = [d, *widths] + ([] if kind == "single_layer" else [1])
    return [(dims[l + 1], dims[l]) for l in range(len(dims) - 1)]


def split(flat, shapes):
    out, offset = [], 0
    for rows, cols in shapes:
        out.append(flat[offset:offset + rows * cols].view(rows, cols))
        offset += rows * cols
    return out


def flatten(weights):
    return torch.cat([w.reshape(-1) for w in weights])


class Ncf:
    """N(u) = ȳᵀH(X; u) on flattened weights u, its gradient by autograd, KKT residuals."""

    def __init__(self, inputs, ybar, widths, kind, alpha, p):
        self.inputs, self.ybar, self.kind, self.alpha, self.p = inputs, ybar, kind, alpha, p
        self.shapes = layer_shapes(inputs.shape[1], widths, kind)
        self.total_degree = sum(layer_degrees(widths, p, kind))

    def value(self, u):
        with torch.no_grad():
            return float(self.ybar @ forward(split(u, self.shapes), self.inputs, self.alpha, self.p, self.kind))

    def value_and_gradient(self, u, slopes=None):
        """N(u) and ∇N(u); `slopes` (per hidden layer, [n, k_l]) replace σ'(z) in the backward pass."""
        u = u.detach().requires_grad_(True)
        h = self.inputs
        hidden, out = split_model(split(u, self.shapes), self.kind)
        for l, w in enumerate(hidden):
            z = h @ w.t()
            if slopes is None:
                h = activation(z, self.alpha, self.p)
            else:  # value σ(z), derivative `slopes`: a Clarke gradient at kinks
                h = activation(z, self.alpha, self.p).detach() + slopes[l] * (z - z.detach())
        value = self.ybar @ output(h, out)
        (gradient,) = torch.autograd.grad(value, u)
        return float(value), gradient

    def smooth_residual(self, unit):
        _, g = self.value_and_gradient(unit)
        return float(project_out(g, unit).norm() / g.norm().clamp_min(1e-300))

    def kink_residual(self, unit, kink_tol):
        """Smallest projected-gradient residual over slopes in [min(α,1), max(α,1)] at the
        preactivations within `kink_tol` of a kink (SPEC §1), found as ncflab does: bounded
        least squares per kinked layer (the gradient is affine in one layer's slopes),
        layer after layer in rounds, from σ'(z) and from the middle of the interval."""
        weights, zs, hs = self.hidden(unit)
        kinked = self.kinks(weights, zs, hs, kink_tol)
        if not any(bool(k.any()) for k in kinked):
            return self.smooth_residual(unit)
        low, high = min(self.alpha, 1.0), max(self.alpha, 1.0)
        derivative = [torch.where(z > 0, torch.ones_like(z), torch.full_like(z, self.alpha)) for z in zs]
        layers_with_kinks = sum(1 for k in kinked if bool(k.any()))
        rounds = 1 if layers_with_kinks == 1 else 100

        def gradient(slopes):
            return self.value_and_gradient(unit, slopes)[1]

        def descend(current):
            previous = math.inf
            for round_ in range(rounds):
                if round_ > 0:
                    g = gradient(current)
                    tangent = float(project_out(g, unit).norm())
                    if tangent <= 1e-15 * float(g.norm()) or tangent > 0.999 * previous:
                        break
                    previous = tangent
                for l, mask in enumerate(kinked):
                    where = mask.nonzero()
                    if len(where) == 0:
                        continue
                    base_slopes = [s.clone() for s in current]
                    base_slopes[l][mask] = low
                    base = gradient(base_slopes)
                    columns = []
                    for i, j in where.tolist():  # kink f at its high slope: one column each
                        slopes = [s.clone() for s in base_slopes]
                        slopes[l][i, j] = high
                        columns.append(gradient(slopes) - base)
                    matrix = project_out(torch.stack(columns), unit).t()
                    target = -project_out(base, unit)
                    t = bounded_least_squares(matrix.cpu(), target.cpu(), 0.0, 1.0).to(unit)
                    current[l][mask] = low + (high - low) * t
            g = gradient(current)
            return float(project_out(g, unit).norm() / g.norm().clamp_min(1e-300))

        best = descend([d.clone() for d in derivative])
        if layers_with_kinks > 1:  # not convex: also start from the middle of the interval
            middle = [torch.where(k, torch.full_like(d, 0.5 * (low + high)), d) for d, k in zip(derivative, kinked)]
            best = min(best, descend(middle))
        return best

    def hidden(self, unit):
        with torch.no_grad():
            weights = split(unit, self.shapes)
            zs, hs, h = [], [], self.inputs
            for w in split_model(weights, self.kind)[0]:
                z = h @ w.t()
                h = activation(z, self.alpha, self.p)
                zs.append(z)
                hs.append(h)
            return weights, zs, hs

    def kinks(self, weights, zs, hs, kink_tol):
        """Per hidden layer, [n, k_l] masks of preactivations at a kink: |z| ≤ kink_tol·‖w_j‖·‖a_i‖."""
        if self.p != 1 or self.alpha == 1.0:
            return [torch.zeros_like(z, dtype=torch.bool) for z in zs]
        masks, silent = [], None
        for l, z in enumerate(zs):
            row_norms = weights[l].norm(dim=1)[None, :]  # [1, k_l]
            sample_norms = (self.inputs if l == 0 else hs[l - 1]).norm(dim=1, keepdim=True)  # [n, 1]
            alive = row_norms > 0  # a removed unit (zero row) has no kinks
            near = (z.abs() <= kink_tol * row_norms * sample_norms) & alive
            if l > 0:  # every unit feeding sample i at a kink: count its zs as kinks directly
                near = near | (silent[:, None] & alive)
            silent = (near | ~alive).all(1)
            masks.append(near)
        return masks


def project_out(v, unit):
    """v − ⟨v, û⟩û, for a vector or the rows of a matrix."""
    return v - (v @ unit).unsqueeze(-1) * unit


def least_squares(matrix, target):
    return torch.linalg.lstsq(matrix, target.unsqueeze(1), driver="gelsd").solution.squeeze(1)


def bounded_least_squares(m, b, lower, upper):
    """argmin ‖m t − b‖ over lower ≤ t ≤ upper: Lawson–Hanson active set with two bounds."""
    count = m.shape[1]
    state = [-1] * count  # −1 at the lower bound, +1 at the upper, 0 free
    t = torch.full((count,), lower, dtype=m.dtype)
    scale = float(m.norm() * b.norm()) + 1e-300
    slack = 1e-12 * (upper - lower)
    for _ in range(3 * count + 20):
        w = m.t() @ (b - m @ t)
        gains = [float(w[f]) if state[f] == -1 else -float(w[f]) if state[f] == 1 else 0.0 for f in range(count)]
        release = max(range(count), key=lambda f: gains[f])
        if gains[release] <= 1e-13 * scale:
            break
        state[release] = 0
        for _ in range(count + 1):
            free = [f for f in range(count) if state[f] == 0]
            if not free:
                break
            held = t.clone()
            held[free] = 0.0
            candidate = least_squares(m[:, free], b - m @ held)
            current = t[free]
            if bool(((candidate >= lower - slack) & (candidate <= upper + slack)).all()):
                t[free] = candidate.clamp(lower, upper)
                break
            step = candidate - current
            to_lower = torch.where(candidate < lower, (lower - current) / step, torch.ones_like(step))
            to_upper = torch.where(candidate > upper, (upper - current) / step, torch.ones_like(step))
            alpha = min(max(float(torch.minimum(to_lower, to_upper).min()), 0.0), 1.0)
            t[free] = (current + alpha * step).clamp(lower, upper)
            for f in free:
                if t[f] <= lower + slack:
                    state[f], t[f] = -1, lower
                elif t[f] >= upper - slack:
                    state[f], t[f] = 1, upper
    return t


# ---------------------------------------------------------------------------------------
# NCF gradient flow du/dt = ∇N(u): Dormand–Prince 5(4), FSAL, ncflab's step-size control.

DP_STAGES = [
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
DP_ERROR = [71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]


def hermite(u0, k0, u1, k1, h, s):
    """u at fraction s of a step of length h from u0 (slope k0) to u1 (slope k1): cubic Hermite."""
    c = 1 - s
    return (1 + 2 * s) * c * c * u0 + s * c * c * h * k0 + s * s * (3 - 2 * s) * u1 - s * s * c * h * k1


def crossing_time(degree, t0, r0, n0, t1, r1, n1, target):
    """t where ‖u‖ = target inside a step: cubic Hermite in t with d‖u‖/dt = L·N(u)/‖u‖."""
    h = t1 - t0
    d0, d1 = h * degree * n0 / r0, h * degree * n1 / r1

    def radius(s):
        c = 1 - s
        return (1 + 2 * s) * c * c * r0 + s * c * c * d0 + s * s * (3 - 2 * s) * r1 - s * s * c * d1

    low, high = 0.0, 1.0
    for _ in range(64):
        mid = 0.5 * (low + high)
        if radius(mid) < target:
            low = mid
        else:
            high = mid
    return t0 + high * h


def integrate_flow(ncf, u0, options, sample_times):
    """The flow from u0 to blow-up (‖u‖ ≥ max_norm), collapse, max_time or max_steps.
    Returns the outcome as summary.json's ncf_flow, the final direction and u at sample_times."""
    max_norm, rtol, atol = options["max_norm"], options["rtol"], options["atol"]
    kink_step = options["kink_step"] if ncf.p == 1 else 0.0
    degree = float(ncf.total_degree)
    samples = torch.full((len(sample_times), u0.numel()), math.nan, dtype=torch.float64)
    u = u0.clone()
    value, slope = ncf.value_and_gradient(u)
    t, norm, speed = 0.0, float(u.norm()), float(slope.norm())
    initial_norm, accepted, rejected, next_sample = norm, 0, 0, 0
    h_next = 1e-3 * norm / speed if speed > 0 else 1.0  # the controller's next step size
    previous = None

    def take_samples(t0, u0, k0, h):
        """u at the sample times the last step (of size h) passed, interpolated inside it:
        sampling never changes the steps the flow takes."""
        nonlocal next_sample
        while next_sample < len(sample_times) and sample_times[next_sample] <= t:
            s = 0.0 if h == 0 else (sample_times[next_sample] - t0) / (t - t0)
            samples[next_sample] = (u if h == 0 else hermite(u0, k0, u, slope, h, s)).cpu()
            next_sample += 1

    def stop_reason():
        if norm >= max_norm:
            return "blew_up"
        if norm < 1e-3 * initial_norm or (value <= 0 and speed <= 1e-12 * norm):
            return "collapsed"
        if t >= options["max_time"]:
            return "max_time"
        if accepted + rejected >= options["max_steps"] or not h_next >= sys.float_info.min:
            return "max_steps"
        return None

    take_samples(t, u, slope, 0.0)  # times at or before 0: u0 itself
    status = stop_reason()
    while status is None:
        target = options["max_time"]  # landed on exactly, not overshot
        h = min(h_next, target - t)  # this step's size
        stages = [slope]
        for row in DP_STAGES:
            increment = row[0] * stages[0]
            for a, k in zip(row[1:], stages[1:]):
                if a != 0:
                    increment = increment + a * k
            point = u + h * increment
            new_value, new_slope = ncf.value_and_gradient(point)
            stages.append(new_slope)
        error = DP_ERROR[0] * stages[0]
        for e, k in zip(DP_ERROR[1:], stages[1:]):
            if e != 0:
                error = error + e * k
        error_norm, new_norm, new_speed = float((h * error).norm()), float(point.norm()), float(new_slope.norm())
        ratio = error_norm / (atol + rtol * max(norm, new_norm))
        finite = all(math.isfinite(x) for x in (ratio, new_norm, new_value, new_speed))
        factor = 0.2 if not finite else 5.0 if ratio == 0 else min(max(0.9 * ratio ** -0.2, 0.2), 5.0)
        # p = 1: ∇N jumps across kinks; a step moving u by ≤ kink_step·‖u‖ is taken anyway.
        h_floor = kink_step * norm / speed if speed > 0 else 0.0
        if finite and (ratio <= 1 or h <= h_floor):
            previous = (t, norm, value)
            before = (u, slope, h)
            landed = h >= target - t
            t = target if landed else t + h
            u, slope, norm, value, speed = point, new_slope, new_norm, new_value, new_speed
            h_next = max(h_next, h * factor) if landed else h * factor
            if kink_step > 0 and speed > 0:
                h_next = max(h_next, kink_step * norm / speed)
            accepted += 1
            take_samples(previous[0], *before)
        else:
            h_next = max(h * min(1.0, factor), h_floor)
            rejected += 1
        status = stop_reason()

    if status == "blew_up" and accepted > 0:
        # The reference direction is û where ‖u‖ crossed max_norm (cubic Hermite inside the
        # last step), not at the step's end: how far that overshot depends on the step sizes.
        crossing = crossing_time(degree, *previous, t, norm, value, max_norm)
        u0, k0, h = before
        fraction = (crossing - previous[0]) / (t - previous[0])
        t, u = crossing, hermite(u0, k0, u, slope, h, fraction)
        norm = float(u.norm())
    direction = u / u.norm()
    result = {"status": status, "blowup_time": None, "escape_time": None, "collapsed": status == "collapsed",
              "ncf": ncf.value(direction), "residual": ncf.smooth_residual(direction)}
    if status == "blew_up":
        result["escape_time"] = t
        if degree > 2 and result["ncf"] > 0:  # SPEC §1: T* ≈ t + ‖u‖^(2−L)/((L−2)·L·N(û))
            result["blowup_time"] = t + norm ** (2 - degree) / ((degree - 2) * degree * result["ncf"])
    return result, direction, samples


# ---------------------------------------------------------------------------------------
# Training

def train_member(weights, inputs, labels, ybar_ncf, config, delta, flow, flow_samples, kink_tol, report):
    """Gradient descent on one weight set (delta: its δ); returns (final weights, metrics rows, outcome)."""
    model = config["model"]
    alpha, p, kind = float(model["activation"]["alpha"]), model["activation"]["p"], model["kind"]
    train, hooks = config["train"], config["hooks"]
    step_size, log_every, radius = float(train["step"]), train["log_every"], float(train["escape_radius"])
    shapes = [tuple(w.shape) for w in weights]
    degree = sum(layer_degrees(model["widths"], p, kind))
    ws = [w.clone().requires_grad_(True) for w in weights]
    rows, escape, status, step = [], None, None, 0
    snapshot_every, snapshots = train["snapshot_every"], {}
    last_progress = time.monotonic()
    while True:
        loss = loss_value(forward(ws, inputs, alpha, p, kind), labels, config["loss"])
        gradients = torch.autograd.grad(loss, ws)
        with torch.no_grad():
            norm2 = sum(w.square().sum() for w in ws)
            gradient2 = sum(g.square().sum() for g in gradients)
            loss_now, norm, gradient_norm = torch.stack([loss.detach(), norm2.sqrt(), gradient2.sqrt()]).tolist()
        t = step * step_size
        # ncflab's checks, in its order: divergence, escape, step budget.
        if not math.isfinite(loss_now) or not math.isfinite(norm + step_size * gradient_norm):
            status = "diverged"
        if status is None and escape is None and norm >= radius:
            escape = {"step": step, "time": t, "rescaled_time": t * delta ** (degree - 2), "norm": norm}
            if train["stop_at_escape"]:
                status = "escaped"
        if status is None and step >= train["max_steps"]:
            status = "max_steps"
        if step % log_every == 0 or status is not None:
            rows.append(metrics_row(ws, step, t, delta, degree, loss_now, norm, gradient_norm, config,
                                    ybar_ncf, inputs, shapes, flow, flow_samples, kink_tol))
        if report is not None and time.monotonic() - last_progress >= hooks["progress_seconds"]:
            report(step, loss_now, norm / delta)
            last_progress = time.monotonic()
        if snapshot_every > 0 and (step % snapshot_every == 0 or status is not None):
            snapshots[step] = [w.detach().to("cpu", torch.float64).clone() for w in ws]
        if status is not None:
            break
        with torch.no_grad():
            for w, g in zip(ws, gradients):
                w.sub_(step_size * g)
        step += 1
    outcome = {"status": status, "steps": step, "time": step * step_size, "escape": escape,
               "loss": loss_now, "norm": norm, "gradient_norm": gradient_norm, "snapshots": snapshots}
    return [w.detach() for w in ws], rows, outcome


def metrics_row(ws, step, t, delta, degree, loss, norm, gradient_norm, config, ncf, inputs, shapes,
                flow, flow_samples, kink_tol):
    """One metrics.csv row, the columns in ncflab's order."""
    hooks = config["hooks"]
    row = {"step": step, "time": t, "rescaled_time": t * delta ** (degree - 2), "loss": loss, "norm": norm,
           "norm_over_delta": norm / delta, "gradient_norm": gradient_norm}
    with torch.no_grad():
        if hooks["layers"]:
            norms2 = [float(w.square().sum()) for w in ws]
            total = sum(norms2)
            for l, w in enumerate(ws):
                row[f"layer{l + 1}_norm"] = math.sqrt(norms2[l])
                row[f"layer{l + 1}_share"] = norms2[l] / total
                if l < len(config["model"]["widths"]):  # hidden layers (W1 of single_layer too)
                    sv = torch.linalg.svdvals(w)
                    row[f"layer{l + 1}_sv_ratio"] = float(sv[1] / sv[0]) if sv.numel() >= 2 else 0.0
        flat = flatten([w.detach() for w in ws])
        unit = flat / flat.norm()
    if hooks["kkt"]:
        row["ncf"] = ncf.value(unit)
        row["kkt_residual"] = ncf.smooth_residual(unit)
        if kink_tol > 0:
            row["kink_residual"] = ncf.kink_residual(unit, kink_tol)
        if flow is not None:
            row["cos_to_flow"] = float(unit @ flow)
            sample = step // config["train"]["log_every"]
            cosine = math.nan
            if step % config["train"]["log_every"] == 0 and sample < len(flow_samples):
                u = flow_samples[sample].to(unit)
                cosine = float(unit @ u / u.norm())
            row["cos_to_flow_now"] = cosine
    return row


def number(x):
    """As ncflab writes a double: shortest round-trip digits, integral values without '.0'."""
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def json_number(x):
    return x if x is None or math.isfinite(x) else None


def member_summary(outcome, rows, delta, flow_result, degrees):
    degree = sum(degrees)
    last = rows[-1]
    summary = {"status": outcome["status"], "delta": delta, "steps": outcome["steps"], "time": outcome["time"]}
    blowup = None
    if flow_result is not None:
        summary["ncf_flow"] = flow_result
        blowup = flow_result["blowup_time"]
        if blowup is not None and degree > 2:
            summary["predicted_escape_time"] = blowup / delta ** (degree - 2)
    else:
        summary["ncf_flow"] = None
    escape = outcome["escape"]
    if escape is not None:
        ratio = escape["rescaled_time"] / blowup if blowup else math.nan
        summary["escape"] = dict(escape, rescaled_time_over_blowup_time=json_number(ratio))
    else:
        summary["escape"] = None
    summary["final"] = {"loss": outcome["loss"], "norm": outcome["norm"], "norm_over_delta": outcome["norm"] / delta,
                        "gradient_norm": outcome["gradient_norm"], "cos_to_kkt": None}
    for key in ("ncf", "kkt_residual", "kink_residual", "cos_to_flow"):
        summary["final"][key] = json_number(last.get(key, math.nan))
    summary["layers"] = [{"norm": json_number(last.get(f"layer{l + 1}_norm", math.nan)),
                          "share": json_number(last.get(f"layer{l + 1}_share", math.nan)),
                          "kkt_share": q / degree,
                          "sv_ratio": json_number(last.get(f"layer{l + 1}_sv_ratio", math.nan))}
                         for l, q in enumerate(degrees)]
    return summary


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


def write_metrics(path, names, rows):
    rows = sorted(rows, key=lambda r: (r["step"], r["member"]))  # ncflab's order: by step, then member
    with open(path, "w") as f:
        f.write(",".join(["member", "step", "time"] + names) + "\n")
        for r in rows:
            f.write(",".join([str(r["member"]), str(r["step"]), number(r["time"])] +
                             [number(r[name]) for name in names]) + "\n")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="ncflab YAML config")
    parser.add_argument("overrides", nargs="*", help="key.path=value, as for ncflab")
    parser.add_argument("--init", help="weights_init.pt of a ncflab run: start from the same weights")
    parser.add_argument("--data", help="data.pt of a ncflab run (needed for synthetic data without --init)")
    parser.add_argument("--out", required=True, help="directory to write the run into")
    args = parser.parse_args(argv)

    config = load_config(args.config, args.overrides)
    threads = config["threads"] or os.cpu_count() or 1
    torch.set_num_threads(threads)
    device = pick_device(config["device"])
    dtype = torch.float64 if config["dtype"] == "float64" else torch.float32
    init_scale, step_size = float(config["init"]["scale"]), float(config["train"]["step"])
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

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    members = config["ensemble"]["seeds"]
    torch.save({f"W{l + 1}": torch.stack([m[l] for m in initial]).to("cpu", torch.float64)
                for l in range(len(shapes))}, os.path.join(args.out, "weights_init.pt"))

    log_every, max_steps = config["train"]["log_every"], config["train"]["max_steps"]
    summaries, all_rows, finals, outcomes = [], [], [], []
    training_seconds, iterations = 0.0, 0
    progress = str(config["hooks"]["progress"]).lower() != "false"
    for s in range(members):
        delta = init_scale  # member s's δ: every member starts at init.scale
        w0 = flatten(initial[s]).to(torch.float64)
        w0 = w0 / w0.norm()
        flow_result, flow_direction, flow_samples = None, None, None
        if config["flow"]["enabled"]:
            times = [j * log_every * step_size * delta ** (degree - 2)
                     for j in range(min(MAX_FLOW_SAMPLES, max_steps // log_every + 1))]
            flow_result, flow_direction, flow_samples = integrate_flow(ncf, w0, config["flow"], times)
            flow_direction = flow_direction.to(dtype)
        report = (lambda step, loss, ratio, s=s: print(
            f"baseline: member {s}: step {step}  loss {loss:.6g}  ||w||/delta {ratio:.4g}", file=sys.stderr)) \
            if progress else None
        started = time.perf_counter()
        try:
            final, rows, outcome = train_member(initial[s], inputs, labels, ncf, config, delta, flow_direction,
                                                flow_samples, kink_tol, report)
        except KeyboardInterrupt:
            print("baseline: interrupted", file=sys.stderr)
            return 130
        training_seconds += time.perf_counter() - started
        iterations = max(iterations, outcome["steps"])
        for row in rows:
            row["member"] = s
        all_rows += rows
        finals.append(final)
        summaries.append(member_summary(outcome, rows, delta, flow_result, degrees))
        outcomes.append(outcome)
        if progress:
            print(f"baseline: member {s}: {outcome['status']} after {outcome['steps']} steps", file=sys.stderr)

    names = [key for key in all_rows[0] if key not in ("member", "step", "time")]
    write_metrics(os.path.join(args.out, "metrics.csv"), names, all_rows)
    torch.save({f"W{l + 1}": torch.stack([f[l] for f in finals]).to("cpu", torch.float64)
                for l in range(len(shapes))}, os.path.join(args.out, "weights_final.pt"))
    every = config["train"]["snapshot_every"]
    if every > 0:
        # As ncflab's ensemble: snapshots at 0, N, 2N, … and the last step of any member; a
        # member that finished earlier keeps its final weights.
        snapshots = [s.pop("snapshots") for s in outcomes]
        last = max(o["steps"] for o in outcomes)
        steps = list(range(0, last + 1, every)) + ([] if last % every == 0 else [last])
        trajectory = {"step": torch.tensor(steps, dtype=torch.int64)}
        for l in range(len(shapes)):
            trajectory[f"W{l + 1}"] = torch.stack([
                torch.stack([snapshots[m][min(t, outcomes[m]["steps"])][l] for m in range(members)])
                for t in steps])
        torch.save(trajectory, os.path.join(args.out, "weights_trajectory.pt"))
    summary = dict(summaries[0])
    statuses = [m["status"] for m in summaries]
    summary["status"] = ("diverged" if "diverged" in statuses else
                         "escaped" if all(x == "escaped" for x in statuses) else "max_steps")
    summary["homogeneity"] = {"total": degree, "layers": degrees}
    if members > 1:
        summary["members"] = summaries
    summary.update({"engine": "pytorch", "device": str(device), "wall_seconds": training_seconds,
                    "steps_per_second": iterations / training_seconds if training_seconds > 0 else 0.0,
                    "iterations": iterations})
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"baseline: {summary['status']} ({iterations} steps, {summary['steps_per_second']:.0f} steps/s, "
          f"{training_seconds:.2f} s); wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        print(f"baseline: {e}", file=sys.stderr)
        sys.exit(2)
