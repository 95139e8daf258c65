"""Public checks: the tests a learner's `check` cell runs, and the grader runs the same way.

A test is a plain function that receives a :class:`Tester`. It calls the learner's functions
*by name* through ``t.call(...)`` and compares what came back with ``t.expect_*``; each
failure says what was expected, what came back, and a hint::

    @public_test("01_matmul", "ijk", points=2)
    def small_rectangular(t):
        a, b = t.rng().random((3, 4)), t.rng().random((4, 5))
        t.expect_close(t.call("matmul_ijk", a, b), a @ b, rtol=1e-5, what="matmul_ijk(a, b) for 3x4 @ 4x5")

Only plain data crosses between the learner's code and the test: arguments and results are
encoded by :func:`encode` (numbers, strings, lists, dicts, numpy arrays) and decoded by
:func:`decode`. In a notebook the runner calls the function in-process; the grader's runner
calls it in a child process and receives JSON. Either way an object that claims to equal
anything never reaches a comparison: it cannot be encoded.
"""

from __future__ import annotations

import importlib
import sys
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

_NUMERIC_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                   "float16", "float32", "float64"}


# ---------------------------------------------------------------------------------------------
# Plain data across the boundary
# ---------------------------------------------------------------------------------------------

class EncodeError(TypeError):
    """A learner's function returned something a check cannot read."""


def encode(value: Any, _depth: int = 0) -> Any:
    """Plain, JSON-able data for ``value``; exact built-in types only (subclasses are refused).

    numpy arrays become ``{"__ndarray__": nested list, "dtype": str, "shape": list}``; numpy
    and torch scalars become Python numbers; torch tensors become arrays.
    """
    if _depth > 20:
        raise EncodeError("the result is nested more than 20 levels deep")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple):
        return [encode(v, _depth + 1) for v in value]
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise EncodeError("a returned dict must have string keys")
        return {k: encode(v, _depth + 1) for k, v in value.items()}
    if "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
        value = value.detach().cpu().numpy()
        kind = type(value)
    if isinstance(value, np.generic) and kind.__module__ == "numpy":
        return encode(value.item(), _depth + 1)
    if isinstance(value, np.ndarray):
        array = np.asarray(value).view(np.ndarray)
        if array.dtype.name not in _NUMERIC_DTYPES:
            raise EncodeError(f"an array of dtype {array.dtype} cannot be checked; return numbers")
        return {"__ndarray__": np.ndarray.tolist(array), "dtype": array.dtype.name, "shape": list(array.shape)}
    raise EncodeError(f"returned a {kind.__name__}, which a check cannot read; "
                      "return a number, a string, a list, a dict or a numpy array")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (arrays come back as numpy arrays of their dtype)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            dtype = value.get("dtype")
            if dtype not in _NUMERIC_DTYPES:
                raise EncodeError(f"unexpected array dtype {dtype!r}")
            return np.array(value["__ndarray__"], dtype=dtype).reshape(value["shape"])
        return {k: decode(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# Runners: where the learner's code runs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LearnerError(Exception):
    """The learner's function raised (or could not be called)."""

    func: str
    error_type: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.func} raised {self.error_type}: {self.message}"


class Runner(Protocol):
    """Calls a learner's function by name with encoded arguments; returns the encoded result."""

    def call(self, func: str, args: list, kwargs: dict) -> Any: ...

    def speed_ratio(self, fast: str, slow: str, args: list, kwargs: dict, rounds: int) -> float: ...


def learner_traceback(exc: BaseException, filename_hint: str = "<") -> str:
    """The traceback limited to the learner's own frames (notebook cells), never library or test code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.startswith(filename_hint) or "ipykernel_" in f.filename]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


class InProcessRunner:
    """Runs the learner's functions found in ``namespace`` (a notebook's globals)."""

    def __init__(self, namespace: dict):
        self.namespace = namespace

    def _lookup(self, func: str) -> Callable:
        fn = self.namespace.get(func)
        if fn is None:
            raise LearnerError(func, "NameError", f"no function named {func!r} is defined; run the cell "
                                                  "that defines it (and keep its name)")
        if not callable(fn):
            raise LearnerError(func, "TypeError", f"{func!r} is a {type(fn).__name__}, not a function")
        return fn

    def call(self, func: str, args: list, kwargs: dict) -> Any:
        fn = self._lookup(func)
        try:
            result = fn(*decode(args), **decode(kwargs))
        except Exception as exc:  # the learner's error becomes a failed test, not a crash
            raise LearnerError(func, type(exc).__name__, str(exc), learner_traceback(exc)) from None
        try:
            return encode(result)
        except EncodeError as exc:
            raise LearnerError(func, "a result that cannot be checked", str(exc)) from None

    def speed_ratio(self, fast: str, slow: str, args: list, kwargs: dict, rounds: int = 7) -> float:
        """median over interleaved rounds of time(slow) / time(fast), both called on the same inputs."""
        from ..timing import compare

        f, s = self._lookup(fast), self._lookup(slow)
        a, k = decode(args), decode(kwargs)
        try:
            result = compare(lambda: s(*a, **k), lambda: f(*a, **k), min_pairs=rounds)
        except Exception as exc:
            raise LearnerError(fast, type(exc).__name__, str(exc), learner_traceback(exc)) from None
        return float(result.ratio)


# ---------------------------------------------------------------------------------------------
# Tests and the tester
# ---------------------------------------------------------------------------------------------

class CheckFailure(AssertionError):
    """A failed expectation, in plain words."""

    def __init__(self, what: str, expected: str = "", got: str = "", hint: str = ""):
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        super().__init__(self.text())

    def text(self) -> str:
        parts = [self.what]
        if self.expected or self.got:
            parts.append(f"expected {self.expected}, got {self.got}")
        text = ": ".join(parts)
        return text + (f"\n      hint: {self.hint}" if self.hint else "")


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=5, threshold=12, edgeitems=2, linewidth=limit):
            text = f"array{value.shape} {value.dtype}: " + np.array2string(value, separator=", ")
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Tester:
    """What a test receives: calls into the learner's code, and expectations with friendly failures."""

    __test__ = False  # not a pytest test class

    def __init__(self, runner: Runner, test_name: str):
        self.runner, self.test_name = runner, test_name

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded from the test's name: the same inputs on every run and machine."""
        return np.random.default_rng(zlib.crc32(self.test_name.encode()) + salt)

    def call(self, func: str, *args: Any, **kwargs: Any) -> Any:
        """Call the learner's ``func`` with these arguments; returns plain data (arrays as numpy)."""
        return decode(self.runner.call(func, encode(list(args)), encode(kwargs)))

    def speed_ratio(self, fast: str, slow: str, *args: Any, rounds: int = 7, **kwargs: Any) -> float:
        """How many times faster ``fast`` runs than ``slow`` on these inputs (measured where the code runs)."""
        return self.runner.speed_ratio(fast, slow, encode(list(args)), encode(kwargs), rounds)

    @staticmethod
    def expect_equal(got: Any, want: Any, what: str, hint: str = "") -> None:
        if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
            ok = np.shape(got) == np.shape(want) and bool(np.all(np.asarray(got) == np.asarray(want)))
        else:
            ok = type(got) in (int, float, bool, str, list, dict, type(None)) and got == want
            if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(got, bool):
                ok = False
        if not ok:
            raise CheckFailure(what, _short(want), _short(got), hint)

    @staticmethod
    def expect_close(got: Any, want: Any, what: str, rtol: float = 1e-6, atol: float = 0.0, hint: str = "") -> None:
        want_a = np.asarray(want, dtype=np.float64)
        try:
            got_a = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            raise CheckFailure(what, _short(want), f"{_short(got)} (not numbers)", hint) from None
        if got_a.shape != want_a.shape:
            raise CheckFailure(what, f"shape {want_a.shape}", f"shape {got_a.shape}",
                               hint or "check the shape of what you return")
        if not np.allclose(got_a, want_a, rtol=rtol, atol=atol, equal_nan=False):
            if want_a.ndim:
                bad = np.argwhere(~np.isclose(got_a, want_a, rtol=rtol, atol=atol))
                where = tuple(int(i) for i in bad[0])
                detail = f"{_short(got_a[where])} at index {where} (expected {_short(want_a[where])}; " \
                         f"{len(bad)} of {want_a.size} entries differ beyond rtol={rtol:g})"
                raise CheckFailure(what, f"values within rtol={rtol:g}", detail, hint)
            raise CheckFailure(what, f"{float(want_a):.6g} (within rtol={rtol:g})", f"{float(got_a):.6g}", hint)

    @staticmethod
    def expect(condition: bool, what: str, hint: str = "") -> None:
        if not condition:
            raise CheckFailure(what, hint=hint)


@dataclass(frozen=True)
class TestSpec:
    """One registered test: which lab and exercise it belongs to, its points, and its function."""

    __test__ = False

    lab: str
    exercise: str
    name: str
    points: float
    func: Callable[[Tester], None] = field(repr=False)
    hidden: bool = False


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test: plain data for the notebook, the CSV and the feedback file."""

    __test__ = False

    lab: str
    exercise: str
    name: str
    points: float
    max_points: float
    passed: bool
    message: str = ""
    traceback: str = ""
    not_written: bool = False


REGISTRY: dict[str, list[TestSpec]] = {}


def public_test(lab: str, exercise: str, points: float = 1.0, name: str | None = None,
                hidden: bool = False) -> Callable:
    """Register a test of ``exercise`` in ``lab`` (decorator). Hidden tests use ``hidden=True``."""

    def register(func: Callable[[Tester], None]) -> Callable[[Tester], None]:
        spec = TestSpec(lab, exercise, name or func.__name__.replace("_", " "), float(points), func, hidden)
        tests = REGISTRY.setdefault(lab, [])
        if any(t.exercise == exercise and t.name == spec.name and t.hidden == hidden for t in tests):
            raise ValueError(f"test {spec.name!r} of {lab}/{exercise} is registered twice; rename one")
        tests.append(spec)
        return func

    return register


def hidden_test(lab: str, exercise: str, points: float = 1.0, name: str | None = None) -> Callable:
    """Register an instructor's hidden test (same form as :func:`public_test`)."""
    return public_test(lab, exercise, points, name, hidden=True)


def load_lab_tests(lab: str) -> list[TestSpec]:
    """The public tests of ``lab`` (e.g. ``"01_matmul"``), importing ``sweatlab.checks.labNN_topic``."""
    if lab not in REGISTRY:
        try:
            importlib.import_module(f"sweatlab.checks.lab{lab}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sweatlab.checks.lab{lab}":
                raise
            raise KeyError(f"no checks for lab {lab!r}") from None
    return [t for t in REGISTRY.get(lab, []) if not t.hidden]


def run_test(spec: TestSpec, runner: Runner) -> TestResult:
    """Run one test; every outcome (pass, failure, learner error, broken test) is a TestResult."""
    base = dict(lab=spec.lab, exercise=spec.exercise, name=spec.name, max_points=spec.points)
    try:
        spec.func(Tester(runner, f"{spec.lab}/{spec.exercise}/{spec.name}"))
    except CheckFailure as exc:
        return TestResult(points=0.0, passed=False, message=exc.text(), **base)
    except LearnerError as exc:
        if exc.error_type == "NotImplementedError":
            return TestResult(points=0.0, passed=False, not_written=True, message=(
                f"{exc.func} is not written yet (it raised NotImplementedError)\n      hint: replace the "
                "`raise NotImplementedError(...)` line in its cell with your code, run the cell, then check again"),
                **base)
        return TestResult(points=0.0, passed=False, traceback=exc.traceback, message=str(exc), **base)
    return TestResult(points=spec.points, passed=True, **base)


def run_exercise(lab: str, exercise: str, runner: Runner) -> list[TestResult]:
    tests = [t for t in load_lab_tests(lab) if t.exercise == exercise]
    if not tests:
        known = sorted({t.exercise for t in load_lab_tests(lab)})
        raise KeyError(f"lab {lab} has no exercise {exercise!r}; exercises: {', '.join(known)}")
    return [run_test(t, runner) for t in tests]


def format_report(exercise: str, results: list[TestResult]) -> str:
    """The text a check cell prints: one verdict line, then each failure in plain words."""
    passed = sum(r.passed for r in results)
    if passed == len(results):
        return f"✓ {exercise}: all {len(results)} tests passed"
    lines = [f"✗ {exercise}: {passed} of {len(results)} tests passed"]
    not_written = [r for r in results if r.not_written]
    if not_written and len(not_written) == len(results) - passed:
        lines.append(f"  ✗ {not_written[0].message}")
        return "\n".join(lines)
    for r in results:
        if not r.passed:
            lines.append(f"  ✗ {r.name}: {r.message}")
            if r.traceback:
                lines += ["      " + line for line in r.traceback.rstrip().splitlines()[-6:]]
    return "\n".join(lines)


class LabChecks:
    """The `check` a lab's notebook uses: ``check = LabChecks("01_matmul")`` then ``check("ijk")``."""

    def __init__(self, lab: str):
        self.lab = lab  # the tests load on first use, so a notebook without them still runs

    def results(self, exercise: str, namespace: dict | None = None) -> list[TestResult]:
        if namespace is None:
            namespace = vars(sys.modules["__main__"])
        return run_exercise(self.lab, exercise, InProcessRunner(namespace))

    def __call__(self, exercise: str, namespace: dict | None = None) -> None:
        """Run the public tests of ``exercise`` against the functions defined in this notebook; print the verdict."""
        print(format_report(exercise, self.results(exercise, namespace)))

    @property
    def exercises(self) -> list[str]:
        return list(dict.fromkeys(t.exercise for t in load_lab_tests(self.lab)))

