"""The report of a `ncflab flow` directory (flow.json, flow_trajectory.csv): the NCF flow's
‖u‖, N(û) and KKT residual against flow time, and a table of each member's end.
"""
import math
import os

from .common import config_name, get, notes_markdown, num, positive, table
from .plotting import Figures, legend, member_colors, member_label, new_axes


def plot_trajectory(trajectory, members, figures):
    """Three panels (‖u‖, N(û), residual) against flow time, a line per member; dashed: T*."""
    ids = sorted(trajectory)
    colors = member_colors(len(ids))
    fig, (ax_norm, ax_ncf, ax_res) = new_axes(3, width=4.4)
    for i, m in enumerate(ids):
        columns = trajectory[m]
        label = member_label(m, len(ids))
        ax_norm.plot(columns["time"], columns["norm"], color=colors[i], label=label)
        ax_ncf.plot(columns["time"], columns["ncf"], color=colors[i], label=label)
        ax_res.plot(columns["time"], positive(columns["residual"]), color=colors[i], label=label)
        t_star = get(members[m], "blowup_time") if m < len(members) else None
        if t_star is not None and math.isfinite(t_star):
            for ax in (ax_norm, ax_ncf, ax_res):
                ax.axvline(t_star, color=colors[i], linestyle="--", linewidth=0.8,
                           label=("T*" if len(ids) == 1 else "T* (dashed)") if ax is ax_norm and i == 0
                           else None)
    ax_norm.set_yscale("log")
    ax_res.set_yscale("log")
    for ax in (ax_norm, ax_ncf, ax_res):
        ax.set_xlabel(r"flow time $t$")
    ax_norm.set_ylabel(r"$\Vert u(t)\Vert $")
    ax_norm.set_title("Norm: blow-up at T* or collapse", fontsize="medium")
    ax_ncf.set_ylabel(r"$N(\hat u)$, $\hat u = u/\Vert u\Vert $")
    ax_ncf.set_title("NCF of the direction", fontsize="medium")
    ax_res.set_ylabel(r"KKT residual of $\hat u$")
    ax_res.set_title("Smooth KKT residual", fontsize="medium")
    legend(ax_norm)
    figures.save(fig, "flow.png", "NCF gradient flow du/dt = ∇N(u) from w0: ‖u‖, N(û) and "
                                  "the KKT residual against flow time; dashed: T*")


def report_flow(flow_dir, out_dir, inputs, notes):
    """report.md's lines and the figures of a flow directory: `inputs` is (flow.json, trajectory)."""
    data, trajectory = inputs
    members = data.get("members") or [data]
    figures = Figures(out_dir)
    if trajectory:
        plot_trajectory(trajectory, members, figures)

    lines = [f"# NCF flow report: {config_name(flow_dir)}", "",
             f"Directory: `{os.path.abspath(flow_dir)}`", ""]
    lines += notes_markdown(notes, flow_dir)
    lines += [f"L = {get(data, 'homogeneity.total', '—')}, "
              f"integrated in the blow-up-free variables (û, ln‖u‖, t) until the direction's residual "
              f"is below {num(data.get('direction_tol'))}: T\\* is the time integral itself (SPEC §1); "
              f"escape time: where ‖u‖ = {num(data.get('max_norm'))}.", "",
              "Outcomes: blew_up (N\\* > 0, T\\* finite for L > 2), collapsed (N\\* < 0, u → 0), "
              "stalled (u stops at a non-zero critical point of N, N\\* = 0).", ""]
    rows = [(s, m.get("outcome"), m.get("blowup_time"), m.get("escape_time"),
             m.get("norm"), m.get("ncf"), m.get("residual"), m.get("accepted_steps"), m.get("rejected_steps"))
            for s, m in enumerate(members)]
    lines += [table(["member", "outcome", "T*", "escape time", "final ‖u‖", "final N(û)",
                     "residual", "accepted steps", "rejected steps"], rows), ""]
    if not trajectory:
        lines += ["No flow_trajectory.csv: no figures.", ""]
    lines.append(figures.markdown())
    return lines, figures
