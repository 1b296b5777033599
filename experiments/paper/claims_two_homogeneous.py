"""Claims two_homogeneous and saddle of reproduce.py (single-layer ReLU², L = 2): reading their runs, the
numbers, the figures and summary.md; apart so reproduce.py keeps to the ncflab commands each claim runs.
"""
import csv
import json
import math
import os
import sys
from dataclasses import dataclass

import matplotlib
import torch

matplotlib.use("Agg")  # figures go to files; no display is needed (or present) where the claims run
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "report"))
from ncflab_report.common import escape_radius  # noqa: E402  (train.escape_radius, as the report reads it)


def single_neuron_directions(inputs, labels, grid=3600):
    """Angles (degrees) of the local maxima of g(θ) = Σ_i y_i·max(0, bᵀx_i)², b = (cos θ, sin θ):
    the KKT directions of the single-neuron problem a 2-D single-layer ReLU² unit turns to."""
    theta = torch.arange(grid, dtype=torch.float64) * (2 * math.pi / grid)
    b = torch.stack([theta.cos(), theta.sin()], 1)
    g = (torch.relu(b @ inputs.t()) ** 2 @ labels)
    peaks = ((g > g.roll(1)) & (g >= g.roll(-1)) & (g > 0)).nonzero().flatten()
    return [(math.degrees(float(theta[i])) + 180) % 360 - 180 for i in peaks], [float(g[i]) for i in peaks]


# ---- two_homogeneous: 2402.09226 figure 1 --------------------------------------------------------------

@dataclass
class TwoHomogeneousRun:
    steps: object        # snapshot steps of weights_trajectory.pt
    angles: object       # [T, k] angle of each neuron's weight vector, degrees (member 0)
    angles_star: list    # single-neuron KKT directions, degrees
    values: list         # g at those directions
    n_star: float        # N* = max g
    best: dict           # the best point of `ncflab kkt`
    rows: list           # metrics.csv
    escape_step: int
    eta: float           # the step size, time / steps


def read_two_homogeneous_run(run, kkt_dir):
    data = torch.load(os.path.join(run, "data.pt"))
    angles_star, values = single_neuron_directions(data["inputs"], data["labels"])
    with open(os.path.join(kkt_dir, "kkt.json")) as f:
        best = json.load(f)["points"][0]
    trajectory = torch.load(os.path.join(run, "weights_trajectory.pt"))
    steps, w = trajectory["step"].numpy(), trajectory["W1"][:, 0]  # member 0: [T, k, 2]
    angles = torch.rad2deg(torch.atan2(w[..., 1], w[..., 0])).numpy()
    with open(os.path.join(run, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    return TwoHomogeneousRun(steps, angles, angles_star, values, max(values), best, rows,
                             summary["escape"]["step"], summary["time"] / summary["steps"])


def read_escape_times(sweep):
    """(δ, t_esc) of each run of the sweep, largest δ first."""
    escapes = []
    for run_dir in sorted(os.listdir(sweep)):
        path = os.path.join(sweep, run_dir, "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                s = json.load(f)
            escapes.append((s["delta"], s["escape"]["time"]))
    escapes.sort(reverse=True)
    return escapes


def escape_time_slope(escapes):
    """ln(1/δ), t_esc and the least-squares slope of t_esc against ln(1/δ)."""
    logs = [math.log(1 / d) for d, _ in escapes]
    times = [t for _, t in escapes]
    mean_x, mean_y = sum(logs) / len(logs), sum(times) / len(times)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(logs, times)) / sum((x - mean_x) ** 2 for x in logs)
    return logs, times, slope


def draw_neurons(r, out):
    """neurons.png: each neuron's angle against the KKT directions, loss and weight norm."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for j in range(r.angles.shape[1]):
        axes[0].plot(r.steps[1:], r.angles[1:, j], linewidth=1.2)
    for a in r.angles_star:
        for shown in ((a, 180.0) if abs(abs(a) - 180) < 0.5 else (a,)):  # ±180° are one direction
            axes[0].axhline(shown if shown != 180.0 else 180.0, color="black", linestyle="--", linewidth=0.8)
    axes[0].set_ylabel("angle of neuron j's weight vector (degrees)")
    axes[0].set_title("neurons turn to the single-neuron KKT directions (dashed)", fontsize="medium")
    log_steps = [int(row["step"]) for row in r.rows]
    axes[1].plot(log_steps, [float(row["loss"]) for row in r.rows])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("loss")
    axes[2].plot(log_steps, [float(row["norm"]) for row in r.rows])
    axes[2].set_yscale("log")
    axes[2].set_ylabel("‖w‖")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("iteration")
        ax.axvline(r.escape_step, color="gray", linestyle=":", linewidth=1)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_title("loss (dotted: escape, ‖w‖ = r_esc)", fontsize="medium")
    axes[2].set_title("weight norm", fontsize="medium")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "neurons.png"), dpi=110)
    plt.close(fig)


def draw_escape_log(logs, times, n_star, out):
    """escape_log.png: measured t_esc against ln(1/δ), beside the line of slope 1/(2N*)."""
    mean_x, mean_y = sum(logs) / len(logs), sum(times) / len(times)
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    ax.plot(logs, times, "o", label="t_esc measured")
    ax.plot(logs, [mean_y + (x - mean_x) / (2 * n_star) for x in logs], "--",
            label=f"slope 1/(2N*) = {1 / (2 * n_star):.5f}")
    ax.set_xlabel("ln(1/δ)")
    ax.set_ylabel("escape time t_esc")
    ax.set_title("L = 2: escape time grows like log(1/δ)", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "escape_log.png"), dpi=110)
    plt.close(fig)


def write_two_homogeneous_summary(r, escapes, logs, times, slope, out):
    n_star, best, eta = r.n_star, r.best, r.eta
    lines = ["# Two-homogeneous case (L = 2)", "",
             "Single-neuron KKT directions (local maxima of g(θ)): "
             + ", ".join(f"{a:.2f}° (g = {v:.4f})" for a, v in zip(r.angles_star, r.values)),
             f"`ncflab kkt` best point: N = {best['ncf']:.6f}, input direction "
             f"({best['input_direction'][0]:.6f}, {best['input_direction'][1]:.6f}), rank one {best['rank_one']}", "",
             f"Run (member 0): escape at step {r.escape_step}; final loss {float(r.rows[-1]['loss']):.3g}; "
             "final neuron angles (degrees): " + ", ".join(f"{a:.2f}" for a in sorted(r.angles[-1])), "",
             "| δ | ln(1/δ) | t_esc |", "| ---: | ---: | ---: |"]
    lines += [f"| {d:g} | {math.log(1 / d):.4f} | {t:.6g} |" for d, t in escapes]
    lines += ["", f"Least-squares slope of t_esc against ln(1/δ): {slope:.6f}; 1/(2N*) = {1 / (2 * n_star):.6f} "
              f"(N* = max g = {n_star:.6f}); ratio {slope * 2 * n_star:.4f}. Slope between neighbouring δ, "
              "times 2N*: " + ", ".join(f"{(times[i + 1] - times[i]) / (logs[i + 1] - logs[i]) * 2 * n_star:.4f}"
                                        for i in range(len(times) - 1))
              + f" (gradient descent's per-step growth 1 + 2ηN* against e^(2ηN*) alone gives "
              f"{2 * eta * n_star / math.log(1 + 2 * eta * n_star):.4f} at η = {eta:g})."]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def two_homogeneous_results(sweep, run, kkt_dir, out):
    """The figures and summary.md of claim two_homogeneous from its sweep, run and KKT search."""
    r = read_two_homogeneous_run(run, kkt_dir)
    draw_neurons(r, out)
    escapes = read_escape_times(sweep)
    logs, times, slope = escape_time_slope(escapes)
    draw_escape_log(logs, times, r.n_star, out)
    write_two_homogeneous_summary(r, escapes, logs, times, slope, out)
    return {"n_star": r.n_star, "best_ncf": r.best["ncf"], "slope_ratio": slope * 2 * r.n_star,
            "neighbour_slope_ratios": [(times[i + 1] - times[i]) / (logs[i + 1] - logs[i]) * 2 * r.n_star
                                       for i in range(len(times) - 1)]}


# ---- two_homogeneous_off_teacher: the NCF's peak away from the teacher's neurons ------------------------

def angular_distance(a, b):
    return abs((a - b + 180) % 360 - 180)


def mass_weighted_distance(angles, norms, targets):
    """Σ_j ‖w_j‖²·(angle of w_j to the nearest target) / Σ_j ‖w_j‖², degrees."""
    weights = [n * n for n in norms]
    distances = [min(angular_distance(a, t) for t in targets) for a in angles]
    return sum(w * d for w, d in zip(weights, distances)) / sum(weights)


def off_teacher_results(run, kkt_dir, teachers, out):
    """Neuron angles at escape and at the end against the NCF's KKT directions and the teacher's
    neurons; neurons.png as claim two_homogeneous draws it. Returns the mass-weighted distances."""
    r = read_two_homogeneous_run(run, kkt_dir)
    draw_neurons(r, out)
    trajectory = torch.load(os.path.join(run, "weights_trajectory.pt"))
    steps, w = trajectory["step"], trajectory["W1"][:, 0]
    angles = torch.rad2deg(torch.atan2(w[..., 1], w[..., 0]))
    norms = w.norm(dim=-1)
    numbers = {}
    for name, index in (("escape", int((steps - r.escape_step).abs().argmin())), ("end", len(steps) - 1)):
        a, n = angles[index].tolist(), norms[index].tolist()
        numbers[name] = {"step": int(steps[index]), "to_ncf": mass_weighted_distance(a, n, r.angles_star),
                         "to_teacher": mass_weighted_distance(a, n, teachers)}
    lines = ["# Two-homogeneous case with the NCF's peak away from the teacher", "",
             "Teacher neurons at " + ", ".join(f"{t:g}°" for t in teachers) + "; single-neuron KKT directions "
             "(local maxima of g) at " + ", ".join(f"{a:.2f}° (g = {v:.4f})" for a, v in zip(r.angles_star, r.values))
             + ".", "",
             "| when | step | mass-weighted angle to the nearest NCF KKT direction | to the nearest teacher neuron |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {v['step']} | {v['to_ncf']:.2f}° | {v['to_teacher']:.2f}° |" for name, v in numbers.items()]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return numbers


# ---- saddle: the plateau after the first escape --------------------------------------------------------

@dataclass
class Plateau:
    inputs: object
    labels: object
    steps: list
    w1: object           # [T, k, d] first-layer weights (member 0)
    w2: object           # [T, k] output weights
    loss: list           # at the snapshot steps
    start: int           # snapshot indices of the plateau's first and last step
    end: int
    sizes: object        # each neuron's size ‖(w1_j, w2_j)‖ at the plateau's start
    large: object        # boolean mask of the large neurons
    small: list          # indices of the small ones


def find_plateau(run):
    """Reads the run and finds its plateau; splits the neurons into large and small at its start."""
    trajectory = torch.load(os.path.join(run, "weights_trajectory.pt"))
    data = torch.load(os.path.join(run, "data.pt"))
    steps = trajectory["step"].tolist()
    w1, w2 = trajectory["W1"][:, 0], trajectory["W2"][:, 0, 0]  # [T, k, d], [T, k]
    with open(os.path.join(run, "metrics.csv")) as f:
        metrics = {int(r["step"]): (float(r["loss"]), float(r["norm"])) for r in csv.DictReader(f)}
    radius = escape_radius(run)
    loss = [metrics[s][0] for s in steps]
    norm = [metrics[s][1] for s in steps]
    # The plateau: after the first escape, snapshots whose loss changes by < 1e-6 relative.
    flat = [i for i in range(1, len(steps)) if norm[i] >= radius and loss[i] > 1e-6 * loss[0]
            and abs(loss[i] - loss[i - 1]) < 1e-6 * loss[i - 1]]
    if not flat:
        sys.exit("saddle: no plateau after the first escape")
    start, end = flat[0], flat[-1]
    sizes = (w1[start].square().sum(1) + w2[start].square()).sqrt()
    large = sizes > 0.1 * sizes.max()
    small = (~large).nonzero().flatten().tolist()
    return Plateau(data["inputs"], data["labels"], steps, w1, w2, loss, start, end, sizes, large, small)


def write_residual_csv(p, path):
    """The data with labels y − H_n(X), H_n the large neurons at the plateau's start: the residual NCF
    is the NCF of one neuron on these labels, which `ncflab kkt` reads as a CSV."""
    residual = p.labels - (torch.relu(p.inputs @ p.w1[p.start][p.large].t()) ** 2 * p.w2[p.start][p.large]).sum(1)
    with open(path, "w") as f:
        f.write(",".join([f"x{j + 1}" for j in range(p.inputs.shape[1])] + ["r"]) + "\n")
        for row, r in zip(p.inputs.tolist(), residual.tolist()):
            f.write(",".join(repr(v) for v in row + [r]) + "\n")


def read_residual_kkt_points(kkt_dir):
    """The residual NCF's KKT points as unit vectors (w1, w2), and their NCF values."""
    points = torch.load(os.path.join(kkt_dir, "kkt_points.pt"))
    points = torch.cat([points["W1"].flatten(1), points["W2"].flatten(1)], 1)
    points = points / points.norm(dim=1, keepdim=True)
    with open(os.path.join(kkt_dir, "kkt.json")) as f:
        point_ncf = [p["ncf"] for p in json.load(f)["points"]]
    return points, point_ncf


def small_neuron_cosines(p, points):
    """Each small neuron's squared size, its cosine to the nearest KKT point, and that cosine
    weighted by size² over the small neurons, at every snapshot."""
    neurons = torch.cat([p.w1, p.w2.unsqueeze(2)], 2)[:, p.small]  # [T, small, d + 1]
    mass = neurons.square().sum(2)
    cosine = ((neurons / neurons.norm(dim=2, keepdim=True)) @ points.t()).max(2).values  # [T, small]
    weighted = (mass * cosine).sum(1) / mass.sum(1)
    return mass, cosine, weighted


def draw_saddle(p, mass, cosine, weighted, out):
    """saddle.png: the loss, and the small neurons' cosines to the residual NCF's KKT points."""
    steps, start, end = p.steps, p.start, p.end
    fig, (ax_loss, ax_cos) = plt.subplots(1, 2, figsize=(12, 4.3))
    ax_loss.plot(steps, p.loss)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("loss: first escape, plateau at a saddle, second escape", fontsize="medium")
    final_mass = mass[end]
    for i, j in enumerate(p.small):
        ax_cos.plot(steps, cosine[:, i], linewidth=0.6 + 2.4 * float(final_mass[i] / final_mass.max()) ** 0.5,
                    label=f"neuron {j}" if i < 3 else None)
    ax_cos.plot(steps, weighted, color="black", linewidth=2.2, linestyle="--", label="mass-weighted")
    ax_cos.set_ylabel("cos to the nearest residual-NCF KKT point")
    ax_cos.set_title("small neurons (width: size at the plateau's end)", fontsize="medium")
    for ax in (ax_loss, ax_cos):
        ax.axvspan(steps[start], steps[end], color="gold", alpha=0.2, label="plateau" if ax is ax_cos else None)
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
    ax_cos.legend(fontsize="small", loc="lower left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "saddle.png"), dpi=110)
    plt.close(fig)


def write_saddle_summary(p, point_ncf, mass, cosine, weighted, out):
    steps, loss, start, end = p.steps, p.loss, p.start, p.end
    lines = ["# Saddle", "",
             f"Plateau from step {steps[start]} to {steps[end]} at loss {loss[start]:.6g} (first loss {loss[0]:.6g}).",
             f"Large neurons at its start: {p.large.nonzero().flatten().tolist()} (sizes "
             + ", ".join(f"{float(x):.3g}" for x in p.sizes[p.large]) + "); small: " + str(p.small) + ".",
             "Residual-NCF KKT points (one neuron, labels y − H_n): N = "
             + ", ".join(f"{v:.6g}" for v in point_ncf) + ".", "",
             "| step | loss | mass-weighted cos | cos of each small neuron |", "| ---: | ---: | ---: | --- |"]
    for i in sorted({0, start, (start + end) // 2, end, len(steps) - 1}):
        lines.append(f"| {steps[i]} | {loss[i]:.6g} | {float(weighted[i]):.5f} | "
                     + ", ".join(f"{float(c):.3f}" for c in cosine[i]) + " |")
    sizes_end = mass[end].sqrt()
    lines += ["", "Sizes of the small neurons at the plateau's end: " + ", ".join(f"{float(x):.2g}" for x in sizes_end)]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def saddle_results(p, kkt_dir, out):
    """saddle.png and summary.md of claim saddle from the plateau and the residual NCF's KKT search."""
    points, point_ncf = read_residual_kkt_points(kkt_dir)
    mass, cosine, weighted = small_neuron_cosines(p, points)
    draw_saddle(p, mass, cosine, weighted, out)
    write_saddle_summary(p, point_ncf, mass, cosine, weighted, out)
    return {"weighted_cos_end": float(weighted[p.end]), "largest_small_end": float(mass[p.end].sqrt().max())}
