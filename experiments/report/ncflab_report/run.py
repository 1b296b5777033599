"""The report of a run directory (metrics.csv, summary.json): six figures and report.md.
One function per figure, so each stays short; sweep.py reuses the run's summary helpers.
"""
import math
import os

from .common import config_name, facts_table, finite, get, notes_markdown, positive, run_members, table
from .plotting import (Figures, legend, member_colors, member_label, new_axes, rescaled_label,
                       style_legend)


class RunCurves:
    """A run's metrics by member, with the colours, labels and flow values its figures use."""

    def __init__(self, summary, metrics):
        self.summary = summary
        self.metrics = metrics
        self.members = run_members(summary)
        self.ids = sorted(metrics)
        self.count = max(len(metrics), 1)
        self.colors = member_colors(self.count)
        self.total = get(summary, "homogeneity.total", 0)
        self.xlabel = rescaled_label(self.total)

    def column(self, member, name):
        return self.metrics[member].get(name)

    def any_column(self, name):
        """Whether some member logged the column (non-empty)."""
        return any(self.column(m, name) for m in self.ids)

    def any_finite(self, name):
        """Whether some member logged a finite value in the column."""
        return any(finite(self.column(m, name) or []) for m in self.ids)

    def label(self, member):
        return member_label(member, self.count)

    def flow_value(self, member, path):
        """`path` of the member's summary (e.g. its flow's T*), None past the summary's members."""
        index = self.ids.index(member)
        return get(self.members[index], path) if index < len(self.members) else None


def plot_norm(curves, figures):
    """‖w‖/δ against rescaled time, with the flow's T*."""
    fig, (ax,) = new_axes()
    stars = []
    for i, m in enumerate(curves.ids):
        ax.plot(curves.column(m, "rescaled_time"), curves.column(m, "norm_over_delta"),
                color=curves.colors[i], label=curves.label(m))
        t_star = curves.flow_value(m, "ncf_flow.blowup_time")
        if t_star is not None and math.isfinite(t_star):
            ax.axvline(t_star, color=curves.colors[i], linestyle="--", linewidth=1)
            stars.append(t_star)
    if stars:
        ax.plot([], [], color="gray", linestyle="--", linewidth=1,
                label=f"flow T* = {stars[0]:.6g}" if curves.count == 1 else "flow T* of each member")
    ax.set_yscale("log")
    ax.set_xlabel(curves.xlabel)
    ax.set_ylabel(r"$\Vert w(t)\Vert \,/\,\delta$")
    if curves.total == 2:
        ax.set_title(r"L = 2: $\Vert w\Vert $ grows exponentially, no finite $T^*$")
    else:
        ax.set_title(r"Weights stay $O(\delta)$ until the escape" + (r" near $T^*$" if stars else ""))
    legend(ax)
    figures.save(fig, "norm.png",
                 "‖w‖/δ against δ^(L−2)·t; dashed: the NCF flow's blow-up time T*")


def plot_loss(curves, figures):
    fig, (ax,) = new_axes()
    for i, m in enumerate(curves.ids):
        ax.plot(curves.column(m, "rescaled_time"), curves.column(m, "loss"), color=curves.colors[i],
                label=curves.label(m))
    ax.set_xlabel(curves.xlabel)
    ax.set_ylabel(r"loss $\ell(w)$")
    ax.set_title("Training loss")
    legend(ax)
    figures.save(fig, "loss.png", "Training loss against δ^(L−2)·t")


def plot_ncf(curves, figures):
    """N(û), with the flow's value at its end."""
    fig, (ax,) = new_axes()
    ends = False
    for i, m in enumerate(curves.ids):
        ax.plot(curves.column(m, "rescaled_time"), curves.column(m, "ncf"), color=curves.colors[i],
                label=curves.label(m))
        flow_ncf = curves.flow_value(m, "ncf_flow.ncf")
        if flow_ncf is not None:
            ax.axhline(flow_ncf, color=curves.colors[i], linestyle=":", linewidth=1)
            ends = True
    ax.set_xlabel(curves.xlabel)
    ax.set_ylabel(r"$N(\hat u)$, $\hat u = w/\Vert w\Vert $")
    ax.set_title("NCF of the direction")
    if ends:
        ax.plot([], [], color="gray", linestyle=":", label="N(û) of the flow at T*")
    legend(ax)
    figures.save(fig, "ncf.png",
                 "N(w/‖w‖) against δ^(L−2)·t; dotted: N of the flow's final direction")


def plot_residual(curves, figures):
    """Smooth and kink-aware KKT residuals (log)."""
    has_kink = curves.any_finite("kink_residual")
    fig, (ax,) = new_axes()
    for i, m in enumerate(curves.ids):
        t = curves.column(m, "rescaled_time")
        ax.plot(t, positive(curves.column(m, "kkt_residual")), color=curves.colors[i],
                label=curves.label(m))
        if has_kink:
            ax.plot(t, positive(curves.column(m, "kink_residual")), color=curves.colors[i],
                    linestyle="--")
    style_legend(ax, [("-", "smooth residual")] + ([("--", "kink-aware residual")] if has_kink else []))
    ax.set_yscale("log")
    ax.set_xlabel(curves.xlabel)
    ax.set_ylabel(r"KKT residual of $\hat u$")
    ax.set_title("KKT residual of the direction")
    legend(ax, ncol=2 if curves.count > 8 else 1)
    figures.save(fig, "residual.png", "KKT residuals of w/‖w‖ against δ^(L−2)·t (log scale)")


def plot_cos_to_flow(curves, figures):
    """Cosines to the flow: at T* and at the matching time, and 1 − cos on a log axis."""
    fig, (ax, ax_log) = new_axes(2, width=5.5)
    for i, m in enumerate(curves.ids):
        t = curves.column(m, "rescaled_time")
        for column, style in (("cos_to_flow", "-"), ("cos_to_flow_now", "--")):
            values = curves.column(m, column)
            if not values or not finite(values):
                continue
            label = curves.label(m) if style == "-" else None
            # Samples off the flow's grid are nan: draw the logged ones as one line.
            points = [(a, b) for a, b in zip(t, values) if math.isfinite(b)]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            ax.plot(xs, ys, color=curves.colors[i], linestyle=style, label=label)
            ax_log.plot(xs, positive([1 - v for v in ys]), color=curves.colors[i], linestyle=style)
    style_legend(ax, [("-", r"to $u(T^*)$"), ("--", r"to $u(\delta^{L-2}t)$")])
    ax.set_xlabel(curves.xlabel)
    ax.set_ylabel(r"$\cos(w(t),\ u)$")
    ax.set_ylim(top=1.02)
    ax.set_title(r"Cosine to the NCF flow: at blow-up $u(T^*)$ and now $u(\delta^{L-2}t)$",
                 fontsize="medium")
    ax_log.set_yscale("log")
    ax_log.set_xlabel(curves.xlabel)
    ax_log.set_ylabel(r"$1-\cos(w(t),\ u)$")
    ax_log.set_title("the same as 1 − cos (log scale)", fontsize="medium")
    legend(ax, ncol=2 if curves.count > 8 else 1)
    figures.save(fig, "cos_to_flow.png",
                 "Cosine between w/‖w‖ and the NCF flow's direction at blow-up (solid) and at "
                 "the matching time δ^(L−2)·t (dashed)")


def logged_layers(curves):
    """(layers, layers with σ₂/σ₁, layers with a share) among the first member's columns layer<l>_*."""
    first = curves.metrics[curves.ids[0]] if curves.ids else {}
    layers = sorted({int(key[5:].split("_")[0]) for key in first if key.startswith("layer")
                     and key.split("_")[0][5:].isdigit()})
    sv_layers = [l for l in layers if f"layer{l}_sv_ratio" in first]
    share_layers = [l for l in layers if f"layer{l}_share" in first]
    return layers, sv_layers, share_layers


def plot_layers(curves, layers, sv_layers, share_layers, figures):
    """Per-layer σ₂/σ₁ and shares against q_l/L."""
    fig, (ax_sv, ax_share) = new_axes(2, width=5.5)
    layer_colors = member_colors(max(len(layers), 1))
    linewidth = 1 if curves.count > 1 else 1.5
    for i, m in enumerate(curves.ids):
        t = curves.column(m, "rescaled_time")
        for j, l in enumerate(layers):
            label = f"$W_{{{l}}}$" if i == 0 else None
            if l in sv_layers:
                ax_sv.plot(t, positive(curves.column(m, f"layer{l}_sv_ratio")), color=layer_colors[j],
                           linewidth=linewidth, label=label)
            if l in share_layers:
                ax_share.plot(t, curves.column(m, f"layer{l}_share"), color=layer_colors[j],
                              linewidth=linewidth, label=label)
    kkt_shares = [get(layer, "kkt_share") for layer in curves.summary.get("layers", [])]
    for j, l in enumerate(layers):
        if l - 1 < len(kkt_shares) and kkt_shares[l - 1] is not None:
            ax_share.axhline(kkt_shares[l - 1], color=layer_colors[j], linestyle="--", linewidth=1)
    if any(share is not None for share in kkt_shares):
        ax_share.plot([], [], color="gray", linestyle="--", linewidth=1, label=r"KKT value $q_l/L$")
    ax_sv.set_yscale("log")
    ax_sv.set_xlabel(curves.xlabel)
    ax_sv.set_ylabel(r"$\sigma_2/\sigma_1$ of $W_l$")
    ax_sv.set_title("Rank one: σ₂/σ₁ per layer", fontsize="medium")
    ax_share.set_xlabel(curves.xlabel)
    ax_share.set_ylabel(r"share $\Vert W_l\Vert _F^2/\Vert w\Vert ^2$")
    ax_share.set_title("Balance: share per layer (dashed: q_l/L)", fontsize="medium")
    legend(ax_sv)
    legend(ax_share)
    figures.save(fig, "layers.png",
                 "Per layer: σ₂/σ₁ (log scale; output layer has one row) and ‖W_l‖²/‖w‖² "
                 "against the KKT value q_l/L (dashed)" + ("; one line per member" if curves.count > 1 else ""))


def plot_run(summary, metrics, figures):
    """Every figure the run's logged columns allow, in report order."""
    curves = RunCurves(summary, metrics)
    if curves.any_column("norm_over_delta"):
        plot_norm(curves, figures)
    if curves.any_column("loss"):
        plot_loss(curves, figures)
    if curves.any_column("ncf"):
        plot_ncf(curves, figures)
    if curves.any_column("kkt_residual"):
        plot_residual(curves, figures)
    if curves.any_finite("cos_to_flow"):
        plot_cos_to_flow(curves, figures)
    layers, sv_layers, share_layers = logged_layers(curves)
    if sv_layers or share_layers:
        plot_layers(curves, layers, sv_layers, share_layers, figures)


# ---------------------------------------------------------------- report.md

def theory_note(summary):
    """What the paper predicts for this run, and why a number may be missing."""
    if get(summary, "homogeneity.total") == 2:
        return ("L = 2: the NCF flow does not blow up, so there is no T\\*; the escape time grows "
                "like log(1/δ) (SPEC §1).")
    note = ("The paper predicts δ^(L−2)·t_esc → T\\* (the NCF flow's blow-up time from the same w0) "
            "and cos(w, u(T\\*)) → 1 as δ → 0.")
    if all(get(m, "ncf_flow.blowup_time") is None for m in run_members(summary)):
        outcomes = sorted({get(m, "ncf_flow.outcome") for m in run_members(summary)} - {None, "blew_up"})
        why = f"the flow {', '.join(outcomes)}" if outcomes else "flow.enabled: false"
        note += f" This run has no T\\* ({why})."
    return note


def run_facts(summary):
    """The run's facts table: status, δ, degrees, members, steps, timing."""
    degrees = get(summary, "homogeneity.layers", [])
    facts = [("status", summary.get("status")), ("δ (init.scale)", summary.get("delta")),
             ("L (total degree)", get(summary, "homogeneity.total")),
             ("layer degrees q_l (W1 first)", ", ".join(map(str, degrees)) or None),
             ("members", len(run_members(summary))), ("steps", summary.get("steps")),
             ("time t", summary.get("time")),
             ("predicted escape time T*/δ^(L−2)", summary.get("predicted_escape_time")),
             ("engine", summary.get("engine")), ("device", summary.get("device")),
             ("wall seconds", summary.get("wall_seconds")), ("steps/s", summary.get("steps_per_second"))]
    if summary.get("error"):
        facts.append(("error", summary["error"]))
    if summary.get("status") == "unfinished":
        facts[0] = ("status", "unfinished (no summary.json yet)")
    return facts_table(facts)


def escape_section(summary):
    """## Escape and alignment: the paper's prediction and one row per member."""
    lines = ["## Escape and alignment", "",
             "Escape: first step with ‖w‖ ≥ r_esc. " + theory_note(summary), ""]
    rows = []
    for s, m in enumerate(run_members(summary)):
        rows.append((s, m.get("status"), get(m, "escape.step"), get(m, "escape.time"),
                     get(m, "escape.rescaled_time"), get(m, "ncf_flow.blowup_time"),
                     get(m, "escape.rescaled_time_over_blowup_time"), get(m, "final.cos_to_flow"),
                     get(m, "final.ncf"), get(m, "final.kkt_residual"), get(m, "final.kink_residual"),
                     get(m, "final.loss")))
    lines += [table(["member", "status", "escape step", "t_esc", "δ^(L−2)·t_esc", "T*", "ratio",
                     "final cos_to_flow", "final N(û)", "KKT residual", "kink residual", "final loss"],
                    rows), ""]
    return lines


def layers_section(summary):
    """## Layers: each member's ‖W_l‖, share against q_l/L, and σ₂/σ₁."""
    degrees = get(summary, "homogeneity.layers", [])
    lines = ["## Layers", "",
             "At a KKT point ‖W_l‖²/‖w‖² = q_l/L; rank one means σ₂/σ₁ ≈ 0 (hidden layers).",
             ""]
    rows = []
    for s, m in enumerate(run_members(summary)):
        for l, layer in enumerate(m.get("layers", [])):
            q = degrees[l] if l < len(degrees) else None
            rows.append((s, f"W{l + 1}", q, layer.get("norm"), layer.get("share"),
                         layer.get("kkt_share"), layer.get("sv_ratio")))
    header = ["member", "layer", "q_l", "‖W_l‖", "share ‖W_l‖²/‖w‖²", "q_l/L", "σ₂/σ₁"]
    lines += [table(header, rows), ""]
    return lines


def report_run(run_dir, out_dir, inputs, notes):
    """report.md's lines and the figures of a run: `inputs` is (summary, metrics) (inputs.py)."""
    summary, metrics = inputs
    figures = Figures(out_dir)
    if metrics:
        plot_run(summary, metrics, figures)
    lines = [f"# Run report: {config_name(run_dir)}", "",
             f"Run directory: `{os.path.abspath(run_dir)}`", ""]
    lines += notes_markdown(notes, run_dir)
    lines += [run_facts(summary), ""]
    lines += escape_section(summary)
    lines += layers_section(summary)
    lines.append(figures.markdown())
    return lines, figures
