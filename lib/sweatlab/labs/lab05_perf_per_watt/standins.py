"""Lab 05's stand-ins: the course's version of each function the lab asks for, run while yours is unwritten."""

from __future__ import annotations

from sweatlab.kit.standins import StandIn
from sweatlab.topics import devices


def _ref(name):
    return lambda: getattr(devices, name)


STAND_INS = [
    StandIn("bytes_per_token", 1, _ref("bytes_per_token"), "bytes-per-token count"),
    StandIn("tokens_per_joule", 2, _ref("tokens_per_joule"), "memory-roof tokens per joule"),
    StandIn("step_model", 3, _ref("step_model"), "roofline step model"),
    StandIn("compute_bound_batch", 4, _ref("compute_bound_batch"), "ridge-point batch"),
    StandIn("choose_device", 5, _ref("choose_device"), "device choice under two budgets"),
    StandIn("compute_optimal", 6, _ref("chinchilla_optimal"), "compute-optimal split (20 tokens per parameter)"),
]
