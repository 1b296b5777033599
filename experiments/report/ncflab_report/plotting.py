"""Plotting helpers every report kind shares: saving figures, axes, legends, colours, labels.
The one module (with the report modules) that imports matplotlib, always with the Agg backend.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from .common import md  # noqa: E402

RESCALED = r"rescaled time $\delta^{L-2}\,t$"


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


def member_colors(count):
    cmap = plt.get_cmap("tab10" if count <= 10 else "viridis")
    return [cmap(i if count <= 10 else i / max(count - 1, 1)) for i in range(count)]


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


def member_label(index, count):
    return f"member {index}" if count > 1 else None


def rescaled_label(total_degree):
    return r"time $t$ (L = 2: no rescaling)" if total_degree == 2 else RESCALED
