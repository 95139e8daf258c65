"""Lab 00's plot helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (0.4, 2, 10) rather than powers of ten."""
    axis.axes.autoscale_view()
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    low, high = sorted(axis.get_view_interval())
    if 0 < low and high / low < 40:  # a narrow range: label in-between ticks too (all, or 2, 3, 5 x 10^k)
        shown = range(1, 10) if high / low < 3 else (2, 3, 5)
        axis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in shown else ""))
    else:
        axis.set_minor_formatter(NullFormatter())
