"""The report of a sweep directory (sweep.csv and one run per grid point): the escape-time
law across δ, directional convergence, every run's ‖w‖/δ, and a table of the runs.
"""
import math
import os

from .common import config_name, escape_radius, get, notes_markdown, num, positive, run_members, table
from .plotting import Figures, delta_axis, legend, member_colors, new_axes, plt, rescaled_label


def finite_radius_ratio(member, radius, total_degree):
    """The ratio δ^(L−2)·t_esc/T* the flow itself predicts for a finite escape radius r:
    near blow-up ‖u(τ)‖ ≈ ((L−2)·L·N*·(T*−τ))^(−1/(L−2)) and training escapes at
    ‖u‖ = r/δ, so T* − τ_esc = (δ/r)^(L−2)/((L−2)·L·N*) with N* = N(û) at blow-up."""
    t_star, n_star, delta = get(member, "ncf_flow.blowup_time"), get(member, "ncf_flow.ncf"), member.get("delta")
    if None in (t_star, n_star, delta, radius) or total_degree is None or total_degree <= 2 or n_star <= 0:
        return None
    gap = (delta / radius) ** (total_degree - 2) / ((total_degree - 2) * total_degree * n_star)
    return 1 - gap / t_star


class Sweep:
    """A sweep's runs with their summaries and metrics, and how they group across δ."""

    def __init__(self, keys, runs):
        self.keys, self.runs = keys, runs  # as inputs.read_sweep read them
        self.deltas = {run["summary"].get("delta") for run in self.runs}
        self.varies_delta = len(self.deltas - {None}) > 1
        # Runs that differ only in δ form a group: one line each in the escape-law figures.
        group_keys = [k for k in self.keys if k != "init.scale"]
        self.groups = {}
        for run in self.runs:
            name = ", ".join(f"{k}={run['values'].get(k)}" for k in group_keys)
            self.groups.setdefault(name, []).append(run)
        self.total_degrees = {get(run["summary"], "homogeneity.total") for run in self.runs} - {None}
        self.degree_text = (f"L = {next(iter(self.total_degrees))}" if len(self.total_degrees) == 1
                            else "L per run")
        self.multi = any(run["summary"].get("members") for run in self.runs)
        self.plotted = [run for run in self.runs if run["metrics"]]

    def time_label(self):
        """The rescaled-time axis label (L = 3's when the runs' degrees differ)."""
        return rescaled_label(next(iter(self.total_degrees)) if len(self.total_degrees) == 1 else 3)


def escape_lines(sweep):
    """{label: [(δ, δ^(L−2)·t_esc, T*, ratio, cos, predicted ratio), ...] by δ}: one line per
    initial direction w0 (the grid's other keys and the ensemble member) across the δ values."""
    lines = {}
    for name, members in sweep.groups.items():
        for run in members:
            for s, m in enumerate(run_members(run["summary"])):
                if m.get("status") != "escaped":
                    continue
                label = ", ".join(part for part in (name, f"member {s}" if sweep.multi else "") if part)
                m = dict(m, delta=m.get("delta", run["summary"].get("delta")))
                predicted = finite_radius_ratio(m, escape_radius(run["directory"]),
                                                get(run["summary"], "homogeneity.total"))
                lines.setdefault(label, []).append(
                    (m["delta"], get(m, "escape.rescaled_time"),
                     get(m, "ncf_flow.blowup_time"), get(m, "escape.rescaled_time_over_blowup_time"),
                     get(m, "final.cos_to_flow"), predicted))
    return {label: sorted(points) for label, points in lines.items()}


def plot_escape_law(sweep, lines_by_w0, figures):
    """Escape-time law: δ^(L−2)·t_esc → T*, and the ratio → 1."""
    line_colors = member_colors(max(len(lines_by_w0), 1))
    many = len(lines_by_w0) > 10  # no legend entry per line then
    fig, (ax, ax_ratio) = new_axes(2, width=5.5)
    for g, (label, points) in enumerate(lines_by_w0.items()):
        label = None if many else (label or None)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=line_colors[g], label=label)
        stars = [(p[0], p[2]) for p in points if p[2] is not None]
        ax.plot([s[0] for s in stars], [s[1] for s in stars], "x--", color=line_colors[g], linewidth=1)
        ratios = [(p[0], p[3]) for p in points if p[3] is not None]
        ax_ratio.plot([r[0] for r in ratios], [r[1] for r in ratios], "o-", color=line_colors[g],
                      label=label)
        predicted = [(p[0], p[5]) for p in points if p[5] is not None]
        ax_ratio.plot([r[0] for r in predicted], [r[1] for r in predicted], ":", color=line_colors[g],
                      linewidth=1.5)
    ax.plot([], [], "o-", color="gray", label=r"$\delta^{L-2}t_{esc}$")
    ax.plot([], [], "x--", color="gray", linewidth=1, label="flow T* (each run's own)")
    ax_ratio.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="ratio 1 (δ → 0 limit)")
    if any(p[5] is not None for points in lines_by_w0.values() for p in points):
        ax_ratio.plot([], [], ":", color="gray", linewidth=1.5,
                      label=r"flow at $\Vert u\Vert=r_{esc}/\delta$ (finite radius)")
    for a in (ax, ax_ratio):
        delta_axis(a, sweep.deltas)
    ax.set_ylabel(r"rescaled escape time $\delta^{L-2}\,t_{esc}$")
    ax.set_title(f"Escape-time law ({sweep.degree_text}): → T* as δ → 0", fontsize="medium")
    ax_ratio.set_ylabel(r"$\delta^{L-2}\,t_{esc}\,/\,T^*$")
    ax_ratio.set_title("Ratio to the flow's blow-up time", fontsize="medium")
    legend(ax)
    legend(ax_ratio)
    figures.save(fig, "escape_law.png",
                 "Escape time rescaled by δ^(L−2) against δ (log x), with each run's own flow T*; "
                 "right: their ratio, and dotted the ratio the flow predicts for the finite escape "
                 "radius r_esc: 1 − (δ/r_esc)^(L−2)/((L−2)·L·N*·T*)"
                 + ("; one line per initial direction" if len(lines_by_w0) > 1 else ""))


def plot_cos_at_escape(sweep, lines_by_w0, figures):
    """1 − cos(w at escape, u(T*)) against δ, one line per initial direction (none where the
    flow gave no direction, e.g. its T* overflowed)."""
    if not any(p[4] is not None for points in lines_by_w0.values() for p in points):
        return
    line_colors = member_colors(max(len(lines_by_w0), 1))
    many = len(lines_by_w0) > 10  # no legend entry per line then
    fig, (ax,) = new_axes()
    for g, (label, points) in enumerate(lines_by_w0.items()):
        points = [p for p in points if p[4] is not None]
        ax.plot([p[0] for p in points], positive([1 - p[4] for p in points]), "o-",
                color=line_colors[g], label=None if many else (label or None))
    delta_axis(ax, sweep.deltas)
    ax.set_yscale("log")
    ax.set_ylabel(r"$1-\cos(w(t_{esc}),\ u(T^*))$")
    ax.set_title("Alignment at escape with the flow's blow-up direction", fontsize="medium")
    legend(ax)
    figures.save(fig, "cos_at_escape.png",
                 "1 − cos(w/‖w‖ at escape, flow direction at T*) against δ (log-log)")


def plot_direction(sweep, figures):
    """Directional convergence: member 0 of every run, coloured by δ."""
    order = sorted(sweep.plotted, key=lambda r: r["summary"].get("delta") or 0)
    cmap = plt.get_cmap("viridis")
    fig, axes = new_axes(3, width=4.6)
    for i, run in enumerate(order):
        columns = run["metrics"][min(run["metrics"])]
        color = cmap(i / max(len(order) - 1, 1))
        t = columns.get("rescaled_time", [])
        label = f"δ = {num(run['summary'].get('delta'))}"
        axes[0].plot(t, columns.get("cos_to_flow", []), color=color, label=label)
        if "cos_to_flow_now" in columns:
            axes[1].plot(t, positive([1 - c for c in columns["cos_to_flow_now"]]), color=color, label=label)
        axes[2].plot(t, positive(columns.get("kkt_residual", [])), color=color, label=label)
        t_star = get(run_members(run["summary"])[0], "ncf_flow.blowup_time")
        if t_star is not None:
            for ax in axes:
                ax.axvline(t_star, color="black", linestyle="--", linewidth=0.6)
    axes[0].set_ylabel(r"$\cos(w(t)/\Vert w\Vert,\ u(T^*)/\Vert u(T^*)\Vert)$")
    axes[0].set_title("toward the flow's blow-up direction", fontsize="medium")
    axes[1].set_yscale("log")
    axes[1].set_ylabel(r"$1-\cos(w(t),\ u(\delta^{L-2}t))$")
    axes[1].set_title("tracking the flow at the same rescaled time", fontsize="medium")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("smooth KKT residual of w/‖w‖")
    axes[2].set_title("toward a KKT point of the NCF", fontsize="medium")
    for ax in axes:
        ax.set_xlabel(sweep.time_label())
    legend(axes[0])
    figures.save(fig, "direction.png",
                 "Directional convergence, member 0 of every run (colour: δ; dashed: flow T*): cosine "
                 "to the flow's blow-up direction, distance to the flow at the matching rescaled time, "
                 "and the smooth KKT residual of w/‖w‖, against rescaled time")


def norm_colors(sweep):
    """A colour per plotted run: one per run, or by δ (viridis) for many runs across δ."""
    plotted = sweep.plotted
    if sweep.varies_delta and len(plotted) > 10:
        cmap = plt.get_cmap("viridis")
        order = sorted(plotted, key=lambda r: r["summary"].get("delta") or 0)
        return [cmap(order.index(r) / max(len(order) - 1, 1)) for r in plotted]
    return member_colors(len(plotted))


def plot_every_norm(sweep, figures):
    """‖w‖/δ against rescaled time, every run overlaid."""
    fig, (ax,) = new_axes()
    run_colors = norm_colors(sweep)
    stars = set()
    for i, run in enumerate(sweep.plotted):
        label = ", ".join(f"{k}={run['values'].get(k)}" for k in sweep.keys)
        for j, (member, columns) in enumerate(sorted(run["metrics"].items())):
            t = columns.get("rescaled_time", [])
            ax.plot(t, columns.get("norm_over_delta", []), color=run_colors[i], linewidth=1.2,
                    marker="." if len(t) < 40 else None, label=label if j == 0 else None)
        for m in run_members(run["summary"]):
            t_star = get(m, "ncf_flow.blowup_time")
            if t_star is not None and math.isfinite(t_star):
                stars.add(round(t_star, 9))
    for k, t_star in enumerate(sorted(stars)):
        ax.axvline(t_star, color="black", linestyle="--", linewidth=0.8,
                   label="flow T*" if k == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel(sweep.time_label())
    ax.set_ylabel(r"$\Vert w(t)\Vert \,/\,\delta$")
    ax.set_title("Every run: weights stay O(δ) until the escape", fontsize="medium")
    legend(ax, ncol=2 if len(sweep.plotted) > 8 else 1)
    figures.save(fig, "norm.png", "‖w‖/δ against δ^(L−2)·t for every run; dashed: flow T*")


def plot_sweep(sweep, figures):
    """Every figure the sweep allows, in report order."""
    if sweep.varies_delta:
        lines_by_w0 = escape_lines(sweep)
        plot_escape_law(sweep, lines_by_w0, figures)
        plot_cos_at_escape(sweep, lines_by_w0, figures)
    plotted = sweep.plotted
    if sweep.varies_delta and plotted and any("cos_to_flow" in next(iter(r["metrics"].values()))
                                              for r in plotted):
        plot_direction(sweep, figures)
    if plotted:
        plot_every_norm(sweep, figures)


# ---------------------------------------------------------------- report.md

def runs_table(sweep):
    """One row per run (member 0 of an ensemble, as sweep.csv has it)."""
    rows = []
    for run in sweep.runs:
        s = run["summary"]
        rows.append([run["name"]] + [run["values"].get(k) for k in sweep.keys] +
                    [s.get("status"), s.get("delta"), get(s, "homogeneity.total"), get(s, "escape.step"),
                     get(s, "escape.rescaled_time"), get(s, "ncf_flow.blowup_time"),
                     get(s, "escape.rescaled_time_over_blowup_time"),
                     finite_radius_ratio(s, escape_radius(run["directory"]), get(s, "homogeneity.total")),
                     get(s, "final.cos_to_flow"),
                     get(s, "final.ncf"), get(s, "final.kkt_residual")])
    header = (["run"] + [f"`{k}`" for k in sweep.keys] +
              ["status", "δ", "L", "escape step", "δ^(L−2)·t_esc", "T*", "ratio", "ratio predicted at r_esc",
               "cos_to_flow",
               "final N(û)", "KKT residual"])
    return table(header, rows, ["---"] + ["---:"] * (len(header) - 1))


def report_sweep(sweep_dir, out_dir, inputs, notes):
    """report.md's lines and the figures of a sweep: `inputs` is (keys, runs) (inputs.py)."""
    sweep = Sweep(*inputs)
    figures = Figures(out_dir)
    plot_sweep(sweep, figures)
    lines = [f"# Sweep report: {config_name(sweep_dir)}", "",
             f"Sweep directory: `{os.path.abspath(sweep_dir)}` — {len(sweep.runs)} runs over "
             + ", ".join(f"`{k}`" for k in sweep.keys), ""]
    lines += notes_markdown(notes, sweep_dir)
    if sweep.varies_delta:
        lines += ["As δ → 0 the paper predicts δ^(L−2)·t_esc → T\\* (ratio → 1) and cos_to_flow → 1.",
                  ""]
    if sweep.multi:
        lines += ["Runs with several ensemble members: the table shows member 0 (as sweep.csv does); "
                  "the figures show every member.", ""]
    lines += ["## Runs", "", runs_table(sweep), ""]
    lines.append(figures.markdown())
    return lines, figures
