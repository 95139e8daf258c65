"""What a lab's setup cell hands the notebook: ``lab = open_lab("02_simd")``.

    lab.check("ex")          the public checks of one exercise, on this notebook's functions
    lab.mine("fn")           a callable: your fn, or the lab's labelled stand-in while fn is unwritten
    lab.pick("fn", *args)    (the function that answered, its value): for code that needs the function itself
    lab.stand_in("fn")       the stand-in itself, noted and marked as used
    lab.label("fn", text)    text, marked " (stand-in)" when the latest call of fn used the stand-in
    lab.meter(cores_used)    a fresh energy meter: a sensor where there is one, the labelled estimate beside it
    lab.energy               the estimate's inputs (your TDP and core count: see sweatlab.measure.energy)
    lab.quote(name, v, fmt)  a figure the lab's prose quotes from this run (filled in when the solution executes)
    lab.record(**values)     append this lab's results to results/records.jsonl

Check cells say ``from sweatlab.kit import check`` themselves, so a check run before the setup
cell (a restarted kernel, a notebook reopened) says which cell to run instead of a NameError.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

from sweatlab.course.figures import FIGURES_ENV
from sweatlab.kit.checks import LabChecks
from sweatlab.kit.standins import LABEL, StandIn, stand_ins_of
from sweatlab.measure import energy, records

LAB_KEY = "__sweat_lab__"  # where open_lab leaves the lab in the notebook's namespace


class Lab:
    """One lab's kit, bound to the notebook namespace whose functions it checks and calls."""

    def __init__(self, name: str, namespace: dict[str, Any], say: Callable[[str], Any] | None = print):
        self.name = name
        self.namespace = namespace
        self.say = say
        self._checks = LabChecks(name)
        self._stand_ins: dict[str, StandIn] | None = None
        self._noted: set[str] = set()
        self._latest: dict[str, bool] = {}
        self.energy = energy.estimate_inputs()

    def __repr__(self) -> str:
        return f"Lab({self.name!r})"

    # checks
    def check(self, exercise: str) -> None:
        """Run the public tests of ``exercise`` on this notebook's functions and print the verdict."""
        self._checks(exercise, self.namespace)

    @property
    def exercises(self) -> list[str]:
        return self._checks.exercises

    # stand-ins
    @property
    def stand_ins(self) -> dict[str, StandIn]:
        if self._stand_ins is None:
            self._stand_ins = stand_ins_of(self.name)
        return self._stand_ins

    def _stand_in(self, name: str) -> StandIn:
        try:
            return self.stand_ins[name]
        except KeyError:
            raise KeyError(f"lab {self.name} has no stand-in for {name!r}; stand-ins: "
                           f"{', '.join(sorted(self.stand_ins)) or 'none'}") from None

    def stand_in(self, name: str) -> Callable[..., Any]:
        """The stand-in for ``name``, noted the first time and marked as used (for code that met your stub itself)."""
        stand_in = self._stand_in(name)
        if name not in self._noted:
            self._noted.add(name)
            if self.say is not None:
                self.say(stand_in.note())
        self._latest[name] = True
        return stand_in.load()

    def pick(self, name: str, *args: Any, **kwargs: Any) -> tuple[Callable[..., Any], Any]:
        """(the function that answered, its value): your ``name``(*args), or the stand-in's while yours
        raises NotImplementedError (or is not defined)."""
        self._stand_in(name)  # a typo fails here, not after a long call
        fn = self.namespace.get(name)
        if fn is not None:
            try:
                value = fn(*args, **kwargs)
            except NotImplementedError:
                pass
            else:
                self._latest[name] = False
                return fn, value
        reference = self.stand_in(name)
        return reference, reference(*args, **kwargs)

    def mine(self, name: str) -> Callable[..., Any]:
        """A function that calls your ``name``, or the stand-in while yours is not written (noted once)."""
        self._stand_in(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.pick(name, *args, **kwargs)[1]

        call.__name__ = call.__qualname__ = name
        call.__doc__ = f"{name}: yours once written, else lab {self.name}'s stand-in (labelled)"
        return call

    def stood_in(self, name: str) -> bool:
        """True when the latest call of ``name`` through mine/pick used the stand-in."""
        return self._latest.get(name, False)

    def label(self, name: str, text: str | None = None) -> str:
        """``text`` (default: the name) marked " (stand-in)" when the latest call of ``name`` used the stand-in."""
        text = name if text is None else text
        return text + LABEL if self.stood_in(name) else text

    # energy
    def meter(self, cores_used: int | None = 1, **kwargs: Any) -> energy.EnergyMeter:
        """A fresh energy meter: a sensor where there is one, with the labelled estimate beside it."""
        return self.energy.meter(cores_used, **kwargs)

    # the run's figures, quoted by the prose
    def quote(self, name: str, value: Any, fmt: str = "{:.3g}", data: bool = False) -> str:
        """The text ``fmt.format(value)``; while the solution executes, also saved as figure ``name``
        for the placeholder ``{{name}}`` in the lab's prose (and the decks' and the guide's quotes).
        ``data=True``: the figure comes from data the course ships (a datasheet, a paper, the shipped GPU
        server), the same on every machine, so the blank lab does not call it the reference machine's."""
        if not name.replace("_", "").isalnum() or not name[:1].isalpha() or name.lower() != name:
            raise ValueError(f"figure name {name!r}: use lower-case letters, digits and _ (e.g. speedup_ikj)")
        text = fmt.format(value)
        out = os.environ.get(FIGURES_ENV)
        if out:
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps({"name": name, "text": text, "value": number, "data": bool(data)}) + "\n")
        return text

    # the record for the class report
    def record(self, **values: Any) -> dict:
        """Append this lab's results to the learner's results/records.jsonl (the class report reads it);
        the functions a stand-in answered for in this session are listed with them (``stand_ins``)."""
        return records.write_record(self.name, values, sorted(self._noted))


def open_lab(name: str, namespace: dict[str, Any] | None = None) -> Lab:
    """The kit of lab ``name`` for the namespace of the cell that calls it (a notebook's, unless one is given)."""
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    lab = Lab(name, namespace)
    namespace[LAB_KEY] = lab
    return lab


NOT_SET_UP = ("✗ {exercise}: this notebook's setup cell has not run in this kernel (a restarted kernel, or a notebook "
              "reopened, forgets it).\n  Run the code cell under 'Setup' near the top (or Run > Run All Above Selected "
              "Cell), then run this check again.")


def check(exercise: str, namespace: dict[str, Any] | None = None) -> None:
    """A check cell's call: the public tests of ``exercise`` on the functions of this notebook."""
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    lab = namespace.get(LAB_KEY)
    if not isinstance(lab, Lab):
        print(NOT_SET_UP.format(exercise=exercise))
        return
    lab.check(exercise)
