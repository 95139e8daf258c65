"""Lab 04's stand-ins: the course's version of each function the lab asks for, run while yours is unwritten.

Each is one of the reference rules of :mod:`sweatlab.topics.frugal` (numpy only: loading them does not
import torch). The notebook reaches them through ``lab.mine("fn")`` / ``lab.pick("fn", ...)``, which note
the stand-in once and let ``lab.label`` mark its numbers " (stand-in)" in text and plots.
"""

from __future__ import annotations

from sweatlab.kit.standins import StandIn
from sweatlab.topics import frugal

STAND_INS = [
    StandIn("early_stop", 1, lambda: frugal.reference_early_stop, "early-stopping rule (patience, best checkpoint)"),
    StandIn("predictive_entropy", 2, lambda: frugal.reference_predictive_entropy, "predictive entropy"),
    StandIn("exit_costs", 3, lambda: frugal.reference_exit_costs, "exit-cost count"),
    StandIn("exit_rule", 4, lambda: frugal.reference_exit_rule, "early-exit rule"),
    StandIn("cascade", 5, lambda: frugal.reference_cascade, "cascade policy"),
]
