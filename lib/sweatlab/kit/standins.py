"""Stand-ins: the course's own answer to an exercise, used (and labelled) while the learner's is unwritten.

A lab's measurements never wait on an unrelated exercise: where a section needs a function the
learner has not written yet, the lab's stand-in runs instead, with one note the first time and
" (stand-in)" on every label that shows its numbers. Each lab lists its stand-ins in
``sweatlab/labs/labNN_topic/standins.py`` as ``STAND_INS = [StandIn(...), ...]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

LABEL = " (stand-in)"


@dataclass(frozen=True)
class StandIn:
    """The course's version of the function ``name`` that exercise ``exercise`` asks for."""

    name: str  # the function the learner writes
    exercise: int | None  # its exercise number in the lab (None: a function the lab gives, not an exercise)
    load: Callable[[], Callable[..., Any]]  # returns the course's function (imported only when first needed)
    what: str = "version"  # what stands in, in words: "tiled kernel", "peak formula"

    def note(self) -> str:
        until = (f"until you write exercise {self.exercise}" if self.exercise else
                 "until its cell (given by the lab) has run")
        return (f"(stand-in) {self.name} is not written yet: the course's {self.what} stands in, labelled"
                f"{LABEL} in text and plots, {until}")


def stand_ins_of(lab: str) -> dict[str, StandIn]:
    """The stand-ins of ``lab`` (``"02_simd"``); none for a lab without a ``standins`` module."""
    name = f"sweatlab.labs.lab{lab}.standins"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, name.rsplit(".", 1)[0]):
            raise
        return {}
    table = {s.name: s for s in getattr(module, "STAND_INS", ())}
    if len(table) != len(getattr(module, "STAND_INS", ())):
        raise ValueError(f"{name}: a function has two stand-ins; list each once")
    return table
