#!/usr/bin/python3
"""Figures and a Markdown summary of what an ncflab command wrote.

    /usr/bin/python3 experiments/report/report.py DIR      (or: ncflab report DIR)

DIR is a run directory (metrics.csv, summary.json), a sweep (sweep.csv and one run
directory per grid point), a `ncflab kkt` directory (kkt.json) or a `ncflab flow`
directory (flow.json). PNG figures and report.md go to DIR/report/. Exit codes as
ncflab's: 0 done, 2 DIR is not one of those (or its files cannot be read), 1 failure.
"""
import csv
import json
import math
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as error:
    print(f"ncflab: error: {sys.executable} cannot import matplotlib ({error}); "
          "install it with `apt-get install python3-matplotlib`", file=sys.stderr)
    sys.exit(EXIT_FAILURE)


class BadInput(Exception):
    """What the directory holds is not what a report needs: exit code 2."""


# ---------------------------------------------------------------- reading files

def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise BadInput(f"{path}: expected a JSON file ncflab wrote, found: {error}")


def to_float(text):
    """A CSV cell as a float: empty and unparsable cells are nan."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(path):
    """metrics.csv → {member: {column: [values]}} (members in file order; no member column: 0)."""
    members = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                member = int(to_float(row.get("member", 0)))
                columns = members.setdefault(member, {})
                for key, value in row.items():
                    if key is not None:
                        columns.setdefault(key, []).append(to_float(value))
    except OSError as error:
        raise BadInput(f"{path}: expected metrics.csv of a run, found: {error}")
    return members


def escape_radius(run_dir):
    """train.escape_radius from the run's resolved config.yaml (None when unreadable)."""
    try:
        with open(os.path.join(run_dir, "config.yaml")) as f:
            section = None
            for line in f:
                if line and not line[0].isspace():
                    section = line.split(":")[0].strip()
                elif section == "train" and line.strip().startswith("escape_radius:"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def finite_radius_ratio(member, radius, total_degree):
    """The ratio δ^(L−2)·t_esc/T* the flow itself predicts for a finite escape radius r:
    near blow-up ‖u(τ)‖ ≈ ((L−2)·L·N*·(T*−τ))^(−1/(L−2)) and training escapes at
    ‖u‖ = r/δ, so T* − τ_esc = (δ/r)^(L−2)/((L−2)·L·N*) with N* = N(û) at blow-up."""
    t_star, n_star, delta = get(member, "ncf_flow.blowup_time"), get(member, "ncf_flow.ncf"), member.get("delta")
    if None in (t_star, n_star, delta, radius) or total_degree is None or total_degree <= 2 or n_star <= 0:
        return None
    gap = (delta / radius) ** (total_degree - 2) / ((total_degree - 2) * total_degree * n_star)
    return 1 - gap / t_star


def read_overrides(run_dir):
    """overrides.txt → {key: value} (the last assignment of a key wins, as in ncflab)."""
    overrides = {}
    path = os.path.join(run_dir, "overrides.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key:
                    overrides[key] = value
    return overrides


def config_name(directory):
    """The `name:` of config.yaml (a plain top-level line), or the directory's name."""
    path = os.path.join(directory, "config.yaml")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("name:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    return os.path.basename(os.path.abspath(directory))


def get(tree, path, default=None):
    """tree["a"]["b"] for path "a.b", or default where any part is missing or null."""
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return default
        node = node[part]
    return node


# ---------------------------------------------------------------- formatting

def num(value, digits=6):
    """A number for a Markdown table: integers as they are, floats to `digits` significant."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    return md(str(value))


def md(text):
    """Text for Markdown: T* must not start emphasis, | must not end a table cell."""
    return text.replace("*", "\\*").replace("|", "\\|")


def table(header, rows, align=None):
    """A Markdown table; numbers right-aligned."""
    align = align or ["---:"] * len(header)
    lines = ["| " + " | ".join(md(cell) for cell in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(num(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def member_colors(count):
    cmap = plt.get_cmap("tab10" if count <= 10 else "viridis")
    return [cmap(i if count <= 10 else i / max(count - 1, 1)) for i in range(count)]


def finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def positive(values):
    """Values for a log axis: non-positive ones become nan (a gap in the line)."""
    return [v if v is not None and v > 0 else math.nan for v in values]


class Figures:
    """Saves figures into the report directory and remembers them for report.md."""

    def __init__(self, directory):
        self.directory = directory
        self.saved = []

    def save(self, fig, name, caption):
        fig.tight_layout()
        fig.savefig(os.path.join(self.directory, name), dpi=110)
        plt.close(fig)
        self.saved.append((name, caption))

    def markdown(self):
        if not self.saved:
            return ""
        return "## Figures\n\n" + "\n\n".join(f"{md(caption)}\n\n![{name}]({name})"
                                              for name, caption in self.saved) + "\n"


def new_axes(ncols=1, width=7.0, height=4.3):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height),
                             squeeze=False)
    for ax in axes[0]:
        ax.grid(True, which="both", alpha=0.3)
    return fig, list(axes[0])


def delta_axis(ax, deltas):
    """A log δ axis; with few δ values, a labelled tick at each (log ticks alone may show one)."""
    ax.set_xscale("log")
    ax.set_xlabel(r"initial scale $\delta$")
    values = sorted(d for d in deltas if d is not None and d > 0)
    if 1 < len(values) <= 8:
        ax.set_xticks(values)
        ax.set_xticklabels([f"{d:g}" for d in values])
        ax.minorticks_off()


def style_legend(ax, styles):
    """Grey legend entries for line styles (the colours stand for members)."""
    for style, label in styles:
        ax.plot([], [], color="gray", linestyle=style, label=label)


def legend(ax, **kwargs):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", **kwargs)


# ---------------------------------------------------------------- a run

RESCALED = r"rescaled time $\delta^{L-2}\,t$"


def run_members(summary):
    """The per-member summaries: `members` for an ensemble, else the summary itself."""
    return summary.get("members") or [summary]


def member_label(index, count):
    return f"member {index}" if count > 1 else None


def rescaled_label(total_degree):
    return r"time $t$ (L = 2: no rescaling)" if total_degree == 2 else RESCALED


def plot_run(summary, metrics, figures):
    members = run_members(summary)
    count = max(len(metrics), 1)
    colors = member_colors(count)
    total = get(summary, "homogeneity.total", 0)
    xlabel = rescaled_label(total)
    ids = sorted(metrics)

    def series(member, column):
        return metrics[member].get(column)

    def blowup(member):
        index = ids.index(member)
        return get(members[index], "ncf_flow.blowup_time") if index < len(members) else None

    # ‖w‖/δ against rescaled time, with the flow's T*.
    if any(series(m, "norm_over_delta") for m in ids):
        fig, (ax,) = new_axes()
        stars = []
        for i, m in enumerate(ids):
            ax.plot(series(m, "rescaled_time"), series(m, "norm_over_delta"), color=colors[i],
                    label=member_label(m, count))
            t_star = blowup(m)
            if t_star is not None and math.isfinite(t_star):
                ax.axvline(t_star, color=colors[i], linestyle="--", linewidth=1)
                stars.append(t_star)
        if stars:
            ax.plot([], [], color="gray", linestyle="--", linewidth=1,
                    label=f"flow T* = {stars[0]:.6g}" if count == 1 else "flow T* of each member")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"$\Vert w(t)\Vert \,/\,\delta$")
        if total == 2:
            ax.set_title(r"L = 2: $\Vert w\Vert $ grows exponentially, no finite $T^*$")
        else:
            ax.set_title(r"Weights stay $O(\delta)$ until the escape" + (r" near $T^*$" if stars else ""))
        legend(ax)
        figures.save(fig, "norm.png",
                     "‖w‖/δ against δ^(L−2)·t; dashed: the NCF flow's blow-up time T*")

    # Loss.
    if any(series(m, "loss") for m in ids):
        fig, (ax,) = new_axes()
        for i, m in enumerate(ids):
            ax.plot(series(m, "rescaled_time"), series(m, "loss"), color=colors[i],
                    label=member_label(m, count))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"loss $\ell(w)$")
        ax.set_title("Training loss")
        legend(ax)
        figures.save(fig, "loss.png", "Training loss against δ^(L−2)·t")

    # N(û), with the flow's value at its end.
    if any(series(m, "ncf") for m in ids):
        fig, (ax,) = new_axes()
        ends = False
        for i, m in enumerate(ids):
            ax.plot(series(m, "rescaled_time"), series(m, "ncf"), color=colors[i],
                    label=member_label(m, count))
            index = ids.index(m)
            flow_ncf = get(members[index], "ncf_flow.ncf") if index < len(members) else None
            if flow_ncf is not None:
                ax.axhline(flow_ncf, color=colors[i], linestyle=":", linewidth=1)
                ends = True
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"$N(\hat u)$, $\hat u = w/\Vert w\Vert $")
        ax.set_title("NCF of the direction")
        if ends:
            ax.plot([], [], color="gray", linestyle=":", label="N(û) of the flow at T*")
        legend(ax)
        figures.save(fig, "ncf.png",
                     "N(w/‖w‖) against δ^(L−2)·t; dotted: N of the flow's final direction")

    # Smooth and kink-aware KKT residuals (log).
    has_kink = any(finite(series(m, "kink_residual") or []) for m in ids)
    if any(series(m, "kkt_residual") for m in ids):
        fig, (ax,) = new_axes()
        for i, m in enumerate(ids):
            ax.plot(series(m, "rescaled_time"), positive(series(m, "kkt_residual")), color=colors[i],
                    label=member_label(m, count))
            if has_kink:
                ax.plot(series(m, "rescaled_time"), positive(series(m, "kink_residual")),
                        color=colors[i], linestyle="--")
        style_legend(ax, [("-", "smooth residual")] + ([("--", "kink-aware residual")] if has_kink else []))
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"KKT residual of $\hat u$")
        ax.set_title("KKT residual of the direction")
        legend(ax, ncol=2 if count > 8 else 1)
        figures.save(fig, "residual.png", "KKT residuals of w/‖w‖ against δ^(L−2)·t (log scale)")

    # Cosines to the flow: at T* and at the matching time.
    if any(finite(series(m, "cos_to_flow") or []) for m in ids):
        fig, (ax, ax_log) = new_axes(2, width=5.5)
        for i, m in enumerate(ids):
            t = series(m, "rescaled_time")
            for column, style, name in (("cos_to_flow", "-", r"to $u(T^*)$"),
                                        ("cos_to_flow_now", "--", r"to $u(\delta^{L-2}t)$")):
                values = series(m, column)
                if not values or not finite(values):
                    continue
                label = member_label(m, count) if style == "-" else None
                # Samples off the flow's grid are nan: draw the logged ones as one line.
                points = [(a, b) for a, b in zip(t, values) if math.isfinite(b)]
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                ax.plot(xs, ys, color=colors[i], linestyle=style, label=label)
                ax_log.plot(xs, positive([1 - v for v in ys]), color=colors[i], linestyle=style)
        style_legend(ax, [("-", r"to $u(T^*)$"), ("--", r"to $u(\delta^{L-2}t)$")])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"$\cos(w(t),\ u)$")
        ax.set_ylim(top=1.02)
        ax.set_title(r"Cosine to the NCF flow: at blow-up $u(T^*)$ and now $u(\delta^{L-2}t)$",
                     fontsize="medium")
        ax_log.set_yscale("log")
        ax_log.set_xlabel(xlabel)
        ax_log.set_ylabel(r"$1-\cos(w(t),\ u)$")
        ax_log.set_title("the same as 1 − cos (log scale)", fontsize="medium")
        legend(ax, ncol=2 if count > 8 else 1)
        figures.save(fig, "cos_to_flow.png",
                     "Cosine between w/‖w‖ and the NCF flow's direction at blow-up (solid) and at "
                     "the matching time δ^(L−2)·t (dashed)")

    # Per-layer σ₂/σ₁ and shares against q_l/L.
    first = metrics[ids[0]] if ids else {}
    layers = sorted({int(key[5:].split("_")[0]) for key in first if key.startswith("layer")
                     and key.split("_")[0][5:].isdigit()})
    sv_layers = [l for l in layers if f"layer{l}_sv_ratio" in first]
    share_layers = [l for l in layers if f"layer{l}_share" in first]
    if sv_layers or share_layers:
        fig, (ax_sv, ax_share) = new_axes(2, width=5.5)
        layer_colors = member_colors(max(len(layers), 1))
        for i, m in enumerate(ids):
            t = series(m, "rescaled_time")
            for j, l in enumerate(layers):
                label = f"$W_{{{l}}}$" if i == 0 else None
                if l in sv_layers:
                    ax_sv.plot(t, positive(series(m, f"layer{l}_sv_ratio")), color=layer_colors[j],
                               linewidth=1 if count > 1 else 1.5, label=label)
                if l in share_layers:
                    ax_share.plot(t, series(m, f"layer{l}_share"), color=layer_colors[j],
                                  linewidth=1 if count > 1 else 1.5, label=label)
        kkt_shares = [get(layer, "kkt_share") for layer in summary.get("layers", [])]
        for j, l in enumerate(layers):
            if l - 1 < len(kkt_shares) and kkt_shares[l - 1] is not None:
                ax_share.axhline(kkt_shares[l - 1], color=layer_colors[j], linestyle="--", linewidth=1)
        if any(share is not None for share in kkt_shares):
            ax_share.plot([], [], color="gray", linestyle="--", linewidth=1, label=r"KKT value $q_l/L$")
        ax_sv.set_yscale("log")
        ax_sv.set_xlabel(xlabel)
        ax_sv.set_ylabel(r"$\sigma_2/\sigma_1$ of $W_l$")
        ax_sv.set_title("Rank one: σ₂/σ₁ per layer", fontsize="medium")
        ax_share.set_xlabel(xlabel)
        ax_share.set_ylabel(r"share $\Vert W_l\Vert _F^2/\Vert w\Vert ^2$")
        ax_share.set_title("Balance: share per layer (dashed: q_l/L)", fontsize="medium")
        legend(ax_sv)
        legend(ax_share)
        figures.save(fig, "layers.png",
                     "Per layer: σ₂/σ₁ (log scale; output layer has one row) and ‖W_l‖²/‖w‖² "
                     "against the KKT value q_l/L (dashed)" + ("; one line per member" if count > 1 else ""))


def theory_note(summary):
    """What the paper predicts for this run, and why a number may be missing."""
    if get(summary, "homogeneity.total") == 2:
        return ("L = 2: the NCF flow does not blow up, so there is no T\\*; the escape time grows "
                "like log(1/δ) (SPEC §1).")
    note = ("The paper predicts δ^(L−2)·t_esc → T\\* (the NCF flow's blow-up time from the same w0) "
            "and cos(w, u(T\\*)) → 1 as δ → 0.")
    if all(get(m, "ncf_flow.blowup_time") is None for m in run_members(summary)):
        note += " This run has no T\\* (flow.enabled: false, or the flow collapsed to zero)."
    return note


def report_run(run_dir, out_dir):
    summary_path = os.path.join(run_dir, "summary.json")
    summary = read_json(summary_path) if os.path.exists(summary_path) else {"status": "unfinished"}
    metrics_path = os.path.join(run_dir, "metrics.csv")
    metrics = read_metrics(metrics_path) if os.path.exists(metrics_path) else {}
    figures = Figures(out_dir)
    if metrics:
        plot_run(summary, metrics, figures)

    members = run_members(summary)
    total = get(summary, "homogeneity.total")
    degrees = get(summary, "homogeneity.layers", [])
    lines = [f"# Run report: {config_name(run_dir)}", "",
             f"Run directory: `{os.path.abspath(run_dir)}`", ""]
    facts = [("status", summary.get("status")), ("δ (init.scale)", summary.get("delta")),
             ("L (total degree)", total),
             ("layer degrees q_l (W1 first)", ", ".join(map(str, degrees)) or None),
             ("members", len(members)), ("steps", summary.get("steps")), ("time t", summary.get("time")),
             ("predicted escape time T*/δ^(L−2)", summary.get("predicted_escape_time")),
             ("engine", summary.get("engine")), ("device", summary.get("device")),
             ("wall seconds", summary.get("wall_seconds")), ("steps/s", summary.get("steps_per_second"))]
    if summary.get("error"):
        facts.append(("error", summary["error"]))
    if summary.get("status") == "unfinished":
        facts[0] = ("status", "unfinished (no summary.json yet)")
    lines += [table(["", "value"], [(k, v) for k, v in facts if v is not None], ["---", "---:"]), ""]

    lines += ["## Escape and alignment", "",
              "Escape: first step with ‖w‖ ≥ r_esc. " + theory_note(summary), ""]
    rows = []
    for s, m in enumerate(members):
        rows.append((s, m.get("status"), get(m, "escape.step"), get(m, "escape.time"),
                     get(m, "escape.rescaled_time"), get(m, "ncf_flow.blowup_time"),
                     get(m, "escape.rescaled_time_over_blowup_time"), get(m, "final.cos_to_flow"),
                     get(m, "final.ncf"), get(m, "final.kkt_residual"), get(m, "final.kink_residual"),
                     get(m, "final.loss")))
    lines += [table(["member", "status", "escape step", "t_esc", "δ^(L−2)·t_esc", "T*", "ratio",
                     "final cos_to_flow", "final N(û)", "KKT residual", "kink residual", "final loss"],
                    rows), ""]

    lines += ["## Layers", "",
              "At a KKT point ‖W_l‖²/‖w‖² = q_l/L; rank one means σ₂/σ₁ ≈ 0 (hidden layers).",
              ""]
    rows = []
    for s, m in enumerate(members):
        for l, layer in enumerate(m.get("layers", [])):
            q = degrees[l] if l < len(degrees) else None
            rows.append((s, f"W{l + 1}", q, layer.get("norm"), layer.get("share"),
                         layer.get("kkt_share"), layer.get("sv_ratio")))
    header = ["member", "layer", "q_l", "‖W_l‖", "share ‖W_l‖²/‖w‖²", "q_l/L", "σ₂/σ₁"]
    lines += [table(header, rows), ""]
    lines.append(figures.markdown())
    return lines, figures


# ---------------------------------------------------------------- a sweep

def read_sweep(sweep_dir):
    """sweep.csv → (swept keys, [{"run", "directory", "values": {key: text}}, ...])."""
    path = os.path.join(sweep_dir, "sweep.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:2] != ["run", "directory"] or "status" not in rows[0]:
        raise BadInput(f"{path}: expected a header 'run,directory,<swept keys>,status,...', "
                       f"found '{','.join(rows[0]) if rows else ''}'")
    header = rows[0]
    keys = header[2:header.index("status")]
    runs = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            continue
        run_dir = os.path.join(sweep_dir, row[1])
        if not os.path.isdir(run_dir):
            raise BadInput(f"{path}:{line}: expected the run directory '{row[1]}', found none")
        # A swept value can hold commas ([4,4]); the run's overrides.txt holds it whole.
        overrides = read_overrides(run_dir)
        values = {}
        for k, key in enumerate(keys):
            cell = row[2 + k] if len(row) == len(header) else None
            values[key] = overrides.get(key, cell)
        runs.append({"run": row[0], "directory": run_dir, "name": row[1], "values": values})
    return keys, runs


def report_sweep(sweep_dir, out_dir):
    keys, runs = read_sweep(sweep_dir)
    for run in runs:
        path = os.path.join(run["directory"], "summary.json")
        run["summary"] = read_json(path) if os.path.exists(path) else {"status": "unfinished"}
        metrics_path = os.path.join(run["directory"], "metrics.csv")
        run["metrics"] = read_metrics(metrics_path) if os.path.exists(metrics_path) else {}
    figures = Figures(out_dir)
    deltas = {run["summary"].get("delta") for run in runs}
    varies_delta = len(deltas - {None}) > 1
    # Runs that differ only in δ form a group: one line each in the escape-law figures.
    group_keys = [k for k in keys if k != "init.scale"]

    def group_of(run):
        return ", ".join(f"{k}={run['values'].get(k)}" for k in group_keys)

    groups = {}
    for run in runs:
        groups.setdefault(group_of(run), []).append(run)
    total_degrees = {get(run["summary"], "homogeneity.total") for run in runs} - {None}
    degree_text = (f"L = {next(iter(total_degrees))}" if len(total_degrees) == 1 else "L per run")

    multi = any(run["summary"].get("members") for run in runs)

    def escape_lines():
        """{label: [(δ, δ^(L−2)·t_esc, T*, ratio, cos), ...] by δ}: one line per initial direction
        w0 (the grid's other keys and the ensemble member) across the δ values."""
        lines = {}
        for name, members in groups.items():
            for run in members:
                for s, m in enumerate(run_members(run["summary"])):
                    if m.get("status") != "escaped":
                        continue
                    label = ", ".join(part for part in (name, f"member {s}" if multi else "") if part)
                    m = dict(m, delta=m.get("delta", run["summary"].get("delta")))
                    predicted = finite_radius_ratio(m, escape_radius(run["directory"]),
                                                    get(run["summary"], "homogeneity.total"))
                    lines.setdefault(label, []).append(
                        (m["delta"], get(m, "escape.rescaled_time"),
                         get(m, "ncf_flow.blowup_time"), get(m, "escape.rescaled_time_over_blowup_time"),
                         get(m, "final.cos_to_flow"), predicted))
        return {label: sorted(points) for label, points in lines.items()}

    if varies_delta:
        lines_by_w0 = escape_lines()
        line_colors = member_colors(max(len(lines_by_w0), 1))
        many = len(lines_by_w0) > 10  # no legend entry per line then
        # Escape-time law: δ^(L−2)·t_esc → T*, and the ratio → 1.
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
            delta_axis(a, deltas)
        ax.set_ylabel(r"rescaled escape time $\delta^{L-2}\,t_{esc}$")
        ax.set_title(f"Escape-time law ({degree_text}): → T* as δ → 0", fontsize="medium")
        ax_ratio.set_ylabel(r"$\delta^{L-2}\,t_{esc}\,/\,T^*$")
        ax_ratio.set_title("Ratio to the flow's blow-up time", fontsize="medium")
        legend(ax)
        legend(ax_ratio)
        figures.save(fig, "escape_law.png",
                     "Escape time rescaled by δ^(L−2) against δ (log x), with each run's own flow T*; "
                     "right: their ratio, and dotted the ratio the flow predicts for the finite escape "
                     "radius r_esc: 1 − (δ/r_esc)^(L−2)/((L−2)·L·N*·T*)"
                     + ("; one line per initial direction" if len(lines_by_w0) > 1 else ""))

        fig, (ax,) = new_axes()
        for g, (label, points) in enumerate(lines_by_w0.items()):
            points = [p for p in points if p[4] is not None]
            ax.plot([p[0] for p in points], positive([1 - p[4] for p in points]), "o-",
                    color=line_colors[g], label=None if many else (label or None))
        delta_axis(ax, deltas)
        ax.set_yscale("log")
        ax.set_ylabel(r"$1-\cos(w(t_{esc}),\ u(T^*))$")
        ax.set_title("Alignment at escape with the flow's blow-up direction", fontsize="medium")
        legend(ax)
        figures.save(fig, "cos_at_escape.png",
                     "1 − cos(w/‖w‖ at escape, flow direction at T*) against δ (log-log)")

    # Directional convergence: member 0 of every run, coloured by δ.
    plotted = [run for run in runs if run["metrics"]]
    if varies_delta and plotted and any("cos_to_flow" in next(iter(r["metrics"].values())) for r in plotted):
        order = sorted(plotted, key=lambda r: r["summary"].get("delta") or 0)
        cmap = plt.get_cmap("viridis")
        fig, axes = new_axes(3, width=4.6)
        for i, run in enumerate(order):
            columns = run["metrics"][min(run["metrics"])]
            color = cmap(i / max(len(order) - 1, 1))
            t = columns.get("rescaled_time", [])
            label = f"δ = {run['summary'].get('delta'):g}"
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
            ax.set_xlabel(rescaled_label(next(iter(total_degrees)) if len(total_degrees) == 1 else 3))
        legend(axes[0])
        figures.save(fig, "direction.png",
                     "Directional convergence, member 0 of every run (colour: δ; dashed: flow T*): cosine "
                     "to the flow's blow-up direction, distance to the flow at the matching rescaled time, "
                     "and the smooth KKT residual of w/‖w‖, against rescaled time")

    # ‖w‖/δ against rescaled time, every run overlaid.
    if plotted:
        fig, (ax,) = new_axes()
        run_colors = member_colors(len(plotted))
        if varies_delta and len(plotted) > 10:
            cmap = plt.get_cmap("viridis")
            order = sorted(plotted, key=lambda r: r["summary"].get("delta") or 0)
            run_colors = [cmap(order.index(r) / max(len(order) - 1, 1)) for r in plotted]
        stars = set()
        for i, run in enumerate(plotted):
            label = ", ".join(f"{k}={run['values'].get(k)}" for k in keys)
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
        ax.set_xlabel(rescaled_label(next(iter(total_degrees)) if len(total_degrees) == 1 else 3))
        ax.set_ylabel(r"$\Vert w(t)\Vert \,/\,\delta$")
        ax.set_title("Every run: weights stay O(δ) until the escape", fontsize="medium")
        legend(ax, ncol=2 if len(plotted) > 8 else 1)
        figures.save(fig, "norm.png", "‖w‖/δ against δ^(L−2)·t for every run; dashed: flow T*")

    lines = [f"# Sweep report: {config_name(sweep_dir)}", "",
             f"Sweep directory: `{os.path.abspath(sweep_dir)}` — {len(runs)} runs over "
             + ", ".join(f"`{k}`" for k in keys), ""]
    if varies_delta:
        lines += ["As δ → 0 the paper predicts δ^(L−2)·t_esc → T\\* (ratio → 1) and cos_to_flow → 1.",
                  ""]
    if multi:
        lines += ["Runs with several ensemble members: the table shows member 0 (as sweep.csv does); "
                  "the figures show every member.", ""]
    rows = []
    for run in runs:
        s = run["summary"]
        rows.append([run["name"]] + [run["values"].get(k) for k in keys] +
                    [s.get("status"), s.get("delta"), get(s, "homogeneity.total"), get(s, "escape.step"),
                     get(s, "escape.rescaled_time"), get(s, "ncf_flow.blowup_time"),
                     get(s, "escape.rescaled_time_over_blowup_time"),
                     finite_radius_ratio(s, escape_radius(run["directory"]), get(s, "homogeneity.total")),
                     get(s, "final.cos_to_flow"),
                     get(s, "final.ncf"), get(s, "final.kkt_residual")])
    header = (["run"] + [f"`{k}`" for k in keys] +
              ["status", "δ", "L", "escape step", "δ^(L−2)·t_esc", "T*", "ratio", "ratio predicted at r_esc",
               "cos_to_flow",
               "final N(û)", "KKT residual"])
    lines += ["## Runs", "", table(header, rows, ["---"] + ["---:"] * (len(header) - 1)), ""]
    lines.append(figures.markdown())
    return lines, figures


# ---------------------------------------------------------------- KKT points

SV_FLOOR = 1e-20  # exact zeros on a log axis


def singular_value_count(point, l):
    """Singular values of layer l at a point; without the list, the output row (last) has one."""
    layers = point.get("layers", [])
    if l >= len(layers):
        return 0
    if "singular_values" in layers[l]:
        return len(layers[l]["singular_values"])
    return 1 if l == len(layers) - 1 else 2


def report_kkt(kkt_dir, out_dir):
    data = read_json(os.path.join(kkt_dir, "kkt.json"))
    points = data.get("points", [])
    figures = Figures(out_dir)
    degrees = get(data, "homogeneity.layers", [])
    index = list(range(1, len(points) + 1))
    if points:
        colors = ["tab:blue" if p.get("rank_one") else "tab:red" for p in points]
        fig, (ax,) = new_axes()
        ax.scatter(index, [p.get("ncf") for p in points], c=colors, zorder=3)
        ax.plot(index, [p.get("ncf") for p in points], color="gray", linewidth=0.8)
        ax.scatter([], [], c="tab:blue", label="rank one")
        if not all(p.get("rank_one") for p in points):
            ax.scatter([], [], c="tab:red", label="not rank one")
        values = finite([p.get("ncf") for p in points])
        spread = max(values) - min(values) if values else 0.0
        if values and spread <= 1e-6 * max(abs(v) for v in values):
            middle = 0.5 * (max(values) + min(values))
            ax.set_ylim(middle - 0.05 * abs(middle) - 1e-12, middle + 0.05 * abs(middle) + 1e-12)
            ax.text(0.02, 0.95, f"all N(u) within {spread:.1e} of each other", transform=ax.transAxes,
                    va="top", fontsize="small")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("KKT point (sorted by N, highest first)")
        ax.set_ylabel(r"$N(u)$, $\Vert u\Vert  = 1$")
        ax.set_title("NCF value of each KKT point", fontsize="medium")
        legend(ax)
        figures.save(fig, "ncf.png", "N(u) of each KKT point, highest first")

        fig, (ax,) = new_axes()
        ax.semilogy(index, positive([p.get("residual") for p in points]), "o-", label="smooth residual")
        if any(p.get("kink_residual") is not None for p in points):
            ax.semilogy(index, positive([p.get("kink_residual") for p in points]), "s--",
                        label="kink-aware residual")
        if data.get("tol"):
            ax.axhline(data["tol"], color="gray", linestyle=":", label=f"kkt.tol = {data['tol']:g}")
        ax.set_xlabel("KKT point (sorted by N, highest first)")
        ax.set_ylabel("KKT residual")
        ax.set_title("Residual of each point (log scale)", fontsize="medium")
        legend(ax)
        figures.save(fig, "residual.png", "Smooth and kink-aware KKT residuals of each point")

        layer_count = max(len(p.get("layers", [])) for p in points)
        # σ₂/σ₁ is defined where a layer has two or more singular values (not the output row).
        sv_layers = [l for l in range(layer_count)
                     if any(singular_value_count(p, l) > 1 for p in points)]
        if sv_layers:
            fig, (ax,) = new_axes()
            layer_colors = member_colors(layer_count)
            for l in sv_layers:
                ratios = [p["layers"][l].get("sv_ratio") if l < len(p["layers"]) else None for p in points]
                ax.semilogy(index, [max(r, SV_FLOOR) if r is not None else math.nan for r in ratios], "o-",
                            color=layer_colors[l], label=f"$W_{{{l + 1}}}$")
            if data.get("rank_one_tol"):
                ax.axhline(data["rank_one_tol"], color="gray", linestyle=":",
                           label=f"kkt.rank_one_tol = {data['rank_one_tol']:g}")
            ax.set_xlabel("KKT point (sorted by N, highest first)")
            ax.set_ylabel(r"$\sigma_2/\sigma_1$ of $W_l$")
            ax.set_title(f"Rank one: σ₂/σ₁ per hidden layer (zeros drawn at {SV_FLOOR:g})",
                         fontsize="medium")
            legend(ax)
            figures.save(fig, "sv_ratio.png", "σ₂/σ₁ of each layer at each point (log scale)")

        spectra_layers = [l for l in sv_layers
                          if any(p["layers"][l].get("singular_values") for p in points
                                 if l < len(p.get("layers", [])))]
        if spectra_layers:
            fig, axes = new_axes(len(spectra_layers), width=7.0 if len(spectra_layers) == 1 else 4.5)
            point_colors = member_colors(len(points))
            for l, ax in zip(spectra_layers, axes):
                for k, p in enumerate(points):
                    if l >= len(p.get("layers", [])):
                        continue
                    values = p["layers"][l].get("singular_values") or []
                    if not values or values[0] <= 0:
                        continue
                    ax.semilogy(range(1, len(values) + 1), [max(v / values[0], SV_FLOOR) for v in values],
                                "o-", color=point_colors[k], markersize=3, linewidth=0.8,
                                label=f"point {k + 1}" if ax is axes[0] and len(points) <= 10 else None)
                ax.set_xlabel("index i")
                ax.set_ylabel(r"$\sigma_i/\sigma_1$" if ax is axes[0] else "")
                ax.set_title(f"$W_{{{l + 1}}}$" + (f" (q = {degrees[l]})" if l < len(degrees) else ""),
                             fontsize="medium")
                ax.set_ylim(SV_FLOOR / 10, 3)
            legend(axes[0])
            fig.suptitle("Singular values of each layer at each KKT point"
                         + (" (colour: point, dark = highest N)" if len(points) > 10 else ""),
                         fontsize="medium")
            figures.save(fig, "spectra.png", "Singular values σ_i/σ_1 of each layer at each point "
                                             f"(log scale; exact zeros drawn at {SV_FLOOR:g})")

    lines = [f"# KKT report: {config_name(kkt_dir)}", "", f"Directory: `{os.path.abspath(kkt_dir)}`", ""]
    facts = [("L (total degree)", get(data, "homogeneity.total")),
             ("layer degrees q_l (W1 first)", ", ".join(map(str, degrees)) or None),
             ("restarts", data.get("restarts")), ("converged", data.get("converged")),
             ("ended at N < 0", data.get("negative")), ("unconverged", data.get("unconverged")),
             ("distinct non-negative KKT points", len(points)),
             ("rank-one points", sum(1 for p in points if p.get("rank_one"))),
             ("rank_one_share", data.get("rank_one_share")), ("kkt.tol", data.get("tol")),
             ("kkt.kink_tol", data.get("kink_tol")), ("kkt.rank_one_tol", data.get("rank_one_tol")),
             ("wall seconds", data.get("wall_seconds"))]
    lines += [table(["", "value"], [(k, v) for k, v in facts if v is not None], ["---", "---:"]), ""]
    layer_count = max((len(p.get("layers", [])) for p in points), default=0)
    sv_layers = [l for l in range(layer_count) if any(singular_value_count(p, l) > 1 for p in points)]
    rows = []
    for k, p in enumerate(points):
        layers = p.get("layers", [])
        hidden = p.get("hidden", [])
        rows.append([k + 1, p.get("ncf"), p.get("residual"), p.get("kink_residual"), p.get("kinks"),
                     p.get("rank_one"), p.get("found_by"), p.get("balance_error")] +
                    [layers[l].get("sv_ratio") if l < len(layers) else None for l in sv_layers] +
                    [" ".join(f"{h.get('support')}/{h.get('units')}" for h in hidden) or None,
                     " ".join(f"{h.get('sign_fraction', math.nan):.3g}" for h in hidden) or None,
                     " ".join(f"{h.get('magnitude_spread', math.nan):.3g}" for h in hidden) or None,
                     p.get("single_neuron_residual")])
    header = (["#", "N(u)", "residual", "kink residual", "kinks", "rank one", "found by", "balance error"] +
              [f"σ₂/σ₁ W{l + 1}" for l in sv_layers] +
              ["hidden support", "sign fraction", "magnitude spread", "single-neuron residual"])
    lines += ["## Points", "",
              "Highest N first. `found by`: starts that ended at the point; `balance error`: "
              "max_l |‖W_l‖² − q_l/L|; for each hidden layer's singular vector (W1 first): `hidden "
              "support`, its non-zero entries / units, `sign fraction`, the share of them with the "
              "majority sign, `magnitude spread`, (max − min)/max of their magnitudes; "
              "`single-neuron residual`: KKT residual of the input direction b for the single-neuron "
              "problem.", "", table(header, rows), ""]
    lines.append(figures.markdown())
    return lines, figures


# ---------------------------------------------------------------- the NCF flow

def report_flow(flow_dir, out_dir):
    data = read_json(os.path.join(flow_dir, "flow.json"))
    members = data.get("members") or [data]
    figures = Figures(out_dir)
    trajectory_path = os.path.join(flow_dir, "flow_trajectory.csv")
    trajectory = read_metrics(trajectory_path) if os.path.exists(trajectory_path) else {}
    if trajectory:
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

    lines = [f"# NCF flow report: {config_name(flow_dir)}", "",
             f"Directory: `{os.path.abspath(flow_dir)}`", "",
             f"L = {get(data, 'homogeneity.total', '—')}, "
             f"blow-up declared at ‖u‖ = {num(data.get('max_norm'))}; "
             "T\\* is extrapolated from there (SPEC §1).", ""]
    rows = [(s, m.get("status"), m.get("collapsed"), m.get("blowup_time"), m.get("escape_time"),
             m.get("norm"), m.get("ncf"), m.get("residual"), m.get("accepted_steps"), m.get("rejected_steps"))
            for s, m in enumerate(members)]
    lines += [table(["member", "status", "collapsed", "T*", "escape time", "final ‖u‖", "final N(û)",
                     "residual", "accepted steps", "rejected steps"], rows), ""]
    if not trajectory:
        lines += ["No flow_trajectory.csv: no figures.", ""]
    lines.append(figures.markdown())
    return lines, figures


# ---------------------------------------------------------------- main

def kind_of(directory):
    if os.path.exists(os.path.join(directory, "sweep.csv")):
        return "sweep", report_sweep
    if any(os.path.exists(os.path.join(directory, name)) for name in ("metrics.csv", "summary.json")):
        return "run", report_run
    if os.path.exists(os.path.join(directory, "kkt.json")):
        return "kkt", report_kkt
    if os.path.exists(os.path.join(directory, "flow.json")):
        return "flow", report_flow
    return None, None


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: report.py DIR  (a run, sweep, kkt or flow directory of ncflab)", file=sys.stderr)
        return EXIT_BAD_INPUT
    directory = argv[1]
    if not os.path.isdir(directory):
        print(f"ncflab: error: {directory}: expected a directory ncflab wrote, found "
              f"{'a file' if os.path.exists(directory) else 'nothing'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    kind, report = kind_of(directory)
    if kind is None:
        print(f"ncflab: error: {directory}: expected a run directory (metrics.csv, summary.json), "
              "a sweep (sweep.csv), kkt.json or flow.json, found none of them", file=sys.stderr)
        return EXIT_BAD_INPUT
    out_dir = os.path.join(directory, "report")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):  # the previous report's figures
        if name.endswith(".png") or name == "report.md":
            os.remove(os.path.join(out_dir, name))
    try:
        lines, figures = report(directory, out_dir)
    except BadInput as error:
        print(f"ncflab: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    count = len(figures.saved)
    print(f"report: {kind} report with {count} figure{'' if count == 1 else 's'}: wrote {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as error:  # one line, not a traceback, and exit code 1
        print(f"ncflab: failed: report.py: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
