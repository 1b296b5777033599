"""Gradient descent on one member's weights (autograd, in-place updates) and its metrics.csv rows;
the loop checks divergence, escape and the step budget in ncflab's order, so both stop alike.
"""
import math
import time

import torch

from .model import flatten, forward, layer_degrees, loss_value


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
        # ncflab's budget: the step count, and the time when train.max_time > 0.
        if status is None and (step >= train["max_steps"] or 0 < float(train["max_time"]) <= t):
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
