"""Lab 04's plot style: the figure defaults, FLOPs ticks (20k, 1.5M) and labels that keep off each other."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

STYLE = {"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3}


def style() -> None:
    """Apply the lab's matplotlib defaults."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)


def flops_text(v: float) -> str:
    """A FLOP count as a tick reads it: 40k, 1.47M, 512."""
    return f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k" if v >= 1e3 else f"{v:g}"


def flops_ticks():
    """A matplotlib formatter for axes of FLOPs: 20k, 1.5M."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: flops_text(v))


def label_points(ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], colour: str,
                 min_log_gap: float = 0.12, min_y_gap: float = 0.25) -> None:
    """Label points of a curve on a log-x axis, skipping a label that would sit on the previous one."""
    last = None
    for x, y, text in zip(xs, ys, labels):
        if last is None or abs(np.log10(x / last[0])) > min_log_gap or abs(y - last[1]) > min_y_gap:
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, -11), fontsize=8, color=colour)
            last = (x, y)
