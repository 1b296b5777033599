"""The report of a `ncflab kkt` directory (kkt.json): N, residuals, rank one and singular
values of each KKT point found, and tables of the search and the points.
"""
import math
import os

from .common import config_name, facts_table, finite, get, notes_markdown, num, positive, table
from .plotting import Figures, legend, member_colors, new_axes

SV_FLOOR = 1e-20  # exact zeros on a log axis
POINT_AXIS = "KKT point (sorted by N, highest first)"


def singular_value_count(point, l):
    """Singular values of layer l at a point; without the list, the output row (last) has one."""
    layers = point.get("layers", [])
    if l >= len(layers):
        return 0
    if "singular_values" in layers[l]:
        return len(layers[l]["singular_values"])
    return 1 if l == len(layers) - 1 else 2


def ratio_layers(points):
    """(the most layers of any point, the layers where σ₂/σ₁ is defined at some point):
    a layer needs two or more singular values (not the output row)."""
    layer_count = max((len(p.get("layers", [])) for p in points), default=0)
    sv_layers = [l for l in range(layer_count) if any(singular_value_count(p, l) > 1 for p in points)]
    return layer_count, sv_layers


def plot_ncf(points, figures):
    """N(u) of each point, blue where rank one; a near-flat range is zoomed and said so."""
    index = list(range(1, len(points) + 1))
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
    ax.set_xlabel(POINT_AXIS)
    ax.set_ylabel(r"$N(u)$, $\Vert u\Vert  = 1$")
    ax.set_title("NCF value of each KKT point", fontsize="medium")
    legend(ax)
    figures.save(fig, "ncf.png", "N(u) of each KKT point, highest first")


def plot_residual(data, points, figures):
    index = list(range(1, len(points) + 1))
    fig, (ax,) = new_axes()
    ax.semilogy(index, positive([p.get("residual") for p in points]), "o-", label="smooth residual")
    if any(p.get("kink_residual") is not None for p in points):
        ax.semilogy(index, positive([p.get("kink_residual") for p in points]), "s--",
                    label="kink-aware residual")
    if data.get("tol"):
        ax.axhline(data["tol"], color="gray", linestyle=":", label=f"kkt.tol = {data['tol']:g}")
    ax.set_xlabel(POINT_AXIS)
    ax.set_ylabel("KKT residual")
    ax.set_title("Residual of each point (log scale)", fontsize="medium")
    legend(ax)
    figures.save(fig, "residual.png", "Smooth and kink-aware KKT residuals of each point")


def plot_sv_ratio(data, points, layer_count, sv_layers, figures):
    index = list(range(1, len(points) + 1))
    fig, (ax,) = new_axes()
    layer_colors = member_colors(layer_count)
    for l in sv_layers:
        ratios = [p["layers"][l].get("sv_ratio") if l < len(p["layers"]) else None for p in points]
        ax.semilogy(index, [max(r, SV_FLOOR) if r is not None else math.nan for r in ratios], "o-",
                    color=layer_colors[l], label=f"$W_{{{l + 1}}}$")
    if data.get("rank_one_tol"):
        ax.axhline(data["rank_one_tol"], color="gray", linestyle=":",
                   label=f"kkt.rank_one_tol = {data['rank_one_tol']:g}")
    ax.set_xlabel(POINT_AXIS)
    ax.set_ylabel(r"$\sigma_2/\sigma_1$ of $W_l$")
    ax.set_title(f"Rank one: σ₂/σ₁ per hidden layer (zeros drawn at {SV_FLOOR:g})",
                 fontsize="medium")
    legend(ax)
    figures.save(fig, "sv_ratio.png", "σ₂/σ₁ of each layer at each point (log scale)")


def plot_spectra(points, spectra_layers, degrees, figures):
    """σ_i/σ_1 of each layer with a listed spectrum, one panel per layer, a line per point."""
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


def plot_kkt(data, points, figures):
    """Every figure the points allow, in report order (none without points)."""
    if not points:
        return
    plot_ncf(points, figures)
    plot_residual(data, points, figures)
    layer_count, sv_layers = ratio_layers(points)
    if sv_layers:
        plot_sv_ratio(data, points, layer_count, sv_layers, figures)
    spectra_layers = [l for l in sv_layers
                      if any(p["layers"][l].get("singular_values") for p in points
                             if l < len(p.get("layers", [])))]
    if spectra_layers:
        plot_spectra(points, spectra_layers, get(data, "homogeneity.layers", []), figures)


# ---------------------------------------------------------------- report.md

def search_facts(data, points):
    """The search's facts table: degrees, restarts and how they ended, tolerances, time."""
    degrees = get(data, "homogeneity.layers", [])
    facts = [("L (total degree)", get(data, "homogeneity.total")),
             ("layer degrees q_l (W1 first)", ", ".join(map(str, degrees)) or None),
             ("restarts", data.get("restarts")), ("converged", data.get("converged")),
             ("ended at N < 0", data.get("negative")), ("unconverged", data.get("unconverged")),
             ("distinct non-negative KKT points", len(points)),
             ("rank-one points", sum(1 for p in points if p.get("rank_one"))),
             ("rank_one_share", data.get("rank_one_share")),
             ("constructions of a single-neuron KKT point", sum(1 for p in points if p.get("single_neuron_construction"))),
             ("kkt.tol", data.get("tol")),
             ("kkt.kink_tol", data.get("kink_tol")), ("kkt.rank_one_tol", data.get("rank_one_tol")),
             ("wall seconds", data.get("wall_seconds"))]
    return facts_table(facts)


def points_section(points):
    """## Points: one row per point, with what each column means."""
    _, sv_layers = ratio_layers(points)
    rows = []
    for k, p in enumerate(points):
        layers = p.get("layers", [])
        hidden = p.get("hidden", [])
        rows.append([k + 1, p.get("ncf"), p.get("residual"), p.get("kink_residual"), p.get("kinks"),
                     p.get("rank_one"), p.get("found_by"), p.get("balance_error")] +
                    [layers[l].get("sv_ratio") if l < len(layers) else None for l in sv_layers] +
                    [" ".join(f"{h.get('support')}/{h.get('units')}" for h in hidden) or None,
                     " ".join(num(h.get("sign_fraction"), 3) for h in hidden) or None,
                     " ".join(num(h.get("magnitude_spread"), 3) for h in hidden) or None,
                     get(p, "single_neuron.kink_residual", p.get("single_neuron_residual")),
                     " ".join(f"{e:+d}" for e in p.get("chain_signs", [])) or None,
                     p.get("construction_distance"), p.get("single_neuron_construction")])
    header = (["#", "N(u)", "residual", "kink residual", "kinks", "rank one", "found by", "balance error"] +
              [f"σ₂/σ₁ W{l + 1}" for l in sv_layers] +
              ["hidden support", "sign fraction", "magnitude spread", "single-neuron residual",
               "chain signs", "construction distance", "single-neuron construction"])
    return ["## Points", "",
            "Highest N first. `found by`: starts that ended at the point; `balance error`: "
            "max_l |‖W_l‖² − q_l/L|; for each hidden layer's singular vector (W1 first): `hidden "
            "support`, its non-zero entries / units, `sign fraction`, the share of them with the "
            "majority sign, `magnitude spread`, (max − min)/max of their magnitudes; "
            "`single-neuron residual`: KKT residual (kink-aware for p = 1) of the input direction b "
            "for the single-neuron problem with the chain's signs ε_2 … ε_K (`chain signs`); "
            "`construction distance`: ‖û − u_b‖ to the rank-one point the theorem builds from b; "
            "`single-neuron construction`: rank one, that distance and b's residual within "
            "kkt.rank_one_tol (SPEC §1; README \"What a run writes\").", "", table(header, rows), ""]


def report_kkt(kkt_dir, out_dir, data, notes):
    """report.md's lines and the figures of a kkt directory: `data` is its kkt.json."""
    points = data.get("points", [])
    figures = Figures(out_dir)
    plot_kkt(data, points, figures)
    lines = [f"# KKT report: {config_name(kkt_dir)}", "", f"Directory: `{os.path.abspath(kkt_dir)}`", ""]
    lines += notes_markdown(notes, kkt_dir)
    lines += [search_facts(data, points), ""]
    lines += points_section(points)
    lines.append(figures.markdown())
    return lines, figures
