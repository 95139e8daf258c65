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

import base64
import importlib
import sys
import time
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


MAX_RANDOM_ELEMENTS = 2 ** 26


@dataclass(frozen=True)
class RandomArray:
    """A random array given by its recipe: a timed call sends the seed, not megabytes of data.

    Both sides make the same array from it (:meth:`materialize`), so the trusted side checks a
    result against inputs it made itself, while the request it times stays a few bytes long.
    """

    seed: int
    shape: tuple[int, ...]
    dtype: str = "float64"
    low: float = 0.0
    high: float = 1.0

    def materialize(self) -> np.ndarray:
        if self.dtype not in ("float32", "float64"):
            raise EncodeError(f"a random array of dtype {self.dtype!r}: use float32 or float64")
        if not all(type(n) is int and n >= 0 for n in self.shape) or \
                int(np.prod(self.shape, dtype=np.int64)) > MAX_RANDOM_ELEMENTS:
            raise EncodeError("a random array with an invalid or too large shape")
        x = np.random.default_rng(int(self.seed)).random(tuple(self.shape), dtype=self.dtype)
        x *= x.dtype.type(self.high - self.low)
        x += x.dtype.type(self.low)
        return x

    @classmethod
    def fresh(cls, rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float64", low: float = 0.0,
              high: float = 1.0) -> "RandomArray":
        """A new recipe drawn from ``rng`` (each timed round gets its own)."""
        return cls(int(rng.integers(2 ** 62)), tuple(int(n) for n in shape), dtype, float(low), float(high))


@dataclass(frozen=True)
class Digest:
    """A result reduced to one number: the sum of its entries times random weights drawn from ``seed``.

    A timed call returns this instead of the whole array, so that what the trusted side times is
    the kernel, not the transfer of its result. Any wrong entry moves the weighted sum (the
    weights are fresh each round and positive), so a check of the digest is still a check of
    every entry, within the same tolerance: :meth:`Tester.expect_close` compares a digest with the
    digest of the expected array.
    """

    value: float
    shape: tuple[int, ...]
    seed: int

    @staticmethod
    def weights(seed: int, shape: tuple[int, ...]) -> np.ndarray:
        """Weights in [0.5, 1.5), float64, made from the seed the same way on both sides."""
        w = np.random.default_rng(int(seed)).random(int(np.prod(shape, dtype=np.int64)), dtype=np.float32)
        return (w.astype(np.float64) + 0.5).reshape(tuple(shape))

    @classmethod
    def of(cls, value: Any, seed: int) -> "Digest | float":
        """The digest of a result (anything :func:`encode` accepts that holds numbers); a single number
        is small already and comes back as itself."""
        if type(value) is np.ndarray and value.dtype.name in _NUMERIC_DTYPES:  # the common case, without a copy
            array = value
        else:
            array = np.asarray(decode(encode(value)), dtype=np.float64)
        if array.ndim == 0:
            return float(array)
        w = cls.weights(seed, array.shape)
        flat = np.ascontiguousarray(array).reshape(-1).astype(np.float64, copy=False)
        # Not np.dot: that is BLAS, whose worker threads then spin for a while after the call and
        # steal a core from whatever the trusted side times next (a threaded kernel, most of all).
        return cls(float(np.sum(flat * w.reshape(-1))), tuple(array.shape), int(seed))


def encode(value: Any, _depth: int = 0) -> Any:
    """Plain, JSON-able data for ``value``; exact built-in types only (subclasses are refused).

    numpy arrays become ``{"__ndarray__": base64 of the little-endian bytes, "dtype": str,
    "shape": list}`` (exact, and fast enough that a timed call is not a timed JSON encoder);
    numpy and torch scalars become Python numbers; torch tensors become arrays.
    """
    if _depth > 20:
        raise EncodeError("the result is nested more than 20 levels deep")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is Digest:
        return {"__digest__": value.value, "shape": list(value.shape), "seed": value.seed}
    if kind is RandomArray:
        return {"__random__": {"seed": value.seed, "shape": list(value.shape), "dtype": value.dtype,
                               "low": value.low, "high": value.high}}
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
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        return {"__ndarray__": base64.b64encode(little.tobytes()).decode("ascii"), "dtype": array.dtype.name,
                "shape": list(array.shape)}
    raise EncodeError(f"returned a {kind.__name__}, which a check cannot read; "
                      "return a number, a string, a list, a dict or a numpy array")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (arrays come back as numpy arrays of their dtype)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__digest__" in value:
            try:
                return Digest(float(value["__digest__"]), tuple(int(n) for n in value["shape"]), int(value["seed"]))
            except (KeyError, TypeError, ValueError):
                raise EncodeError("an unreadable digest") from None
        if "__random__" in value:
            spec = value["__random__"]
            try:
                recipe = RandomArray(int(spec["seed"]), tuple(spec["shape"]), str(spec["dtype"]),
                                     float(spec["low"]), float(spec["high"]))
            except (KeyError, TypeError, ValueError):
                raise EncodeError("an unreadable random-array recipe") from None
            return recipe.materialize()
        if "__ndarray__" in value:
            dtype = value.get("dtype")
            if dtype not in _NUMERIC_DTYPES:
                raise EncodeError(f"unexpected array dtype {dtype!r}")
            shape = value.get("shape")
            if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
                raise EncodeError("an array without a valid shape")
            data = value["__ndarray__"]
            if isinstance(data, list):  # the older nested-list form
                return np.array(data, dtype=dtype).reshape(shape)
            raw = base64.b64decode(str(data), validate=True)
            want = np.dtype(dtype).newbyteorder("<")
            if len(raw) != want.itemsize * int(np.prod(shape, dtype=np.int64)):
                raise EncodeError("an array whose data does not match its shape")
            return np.frombuffer(raw, dtype=want).astype(dtype).reshape(shape)
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
    """Calls a learner's function by name with encoded arguments; returns the encoded result.

    ``timed_call`` does the same and also returns the seconds the call took, measured by the
    runner's own clock around the request: in the grader that is the trusted process, and
    ``reference=True`` runs the function from the pristine lab, never from the submission. With
    ``digest`` (a seed), the result comes back as its :class:`Digest`.
    """

    def call(self, func: str, args: list, kwargs: dict) -> Any: ...

    def timed_call(self, func: str, args: list, kwargs: dict, reference: bool = False,
                   digest: int | None = None) -> tuple[Any, float]: ...

    def timed_decode(self, args: list, digest_shape: tuple[int, ...] | None = None) -> float:
        """The seconds a request that only decodes ``args`` takes where the reference runs: the cost
        of sending the request and making its inputs (a :class:`RandomArray` is generated there),
        and of reducing a result of ``digest_shape`` to its :class:`Digest`, which
        :meth:`Tester.speed_ratio` takes off each timed call."""
        ...


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
        return self.timed_call(func, args, kwargs)[0]

    def timed_call(self, func: str, args: list, kwargs: dict, reference: bool = False,
                   digest: int | None = None) -> tuple[Any, float]:
        """The call and its wall time (in a notebook the reference is the notebook's own function)."""
        fn = self._lookup(func)
        a, k = decode(args), decode(kwargs)
        try:
            start = time.perf_counter()
            result = fn(*a, **k)
            seconds = time.perf_counter() - start
        except Exception as exc:  # the learner's error becomes a failed test, not a crash
            raise LearnerError(func, type(exc).__name__, str(exc), learner_traceback(exc)) from None
        try:
            return encode(Digest.of(result, digest) if digest is not None else result), seconds
        except EncodeError as exc:
            raise LearnerError(func, "a result that cannot be checked", str(exc)) from None

    def timed_decode(self, args: list, digest_shape: tuple[int, ...] | None = None) -> float:
        """Nothing to take off here: :meth:`timed_call` times the call alone, after decoding, before the digest."""
        return 0.0


# ---------------------------------------------------------------------------------------------
# Tests and the tester
# ---------------------------------------------------------------------------------------------

class CheckFailure(AssertionError):
    """A failed expectation, in plain words."""

    def __init__(self, what: str, expected: str = "", got: str = "", hint: str = ""):
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        super().__init__(self.text())

    def text(self, with_hint: bool = True) -> str:
        parts = [self.what]
        if self.expected or self.got:
            parts.append(f"expected {self.expected}, got {self.got}")
        text = ": ".join(parts)
        return text + (f"\n      hint: {self.hint}" if self.hint and with_hint else "")


def _number(x: float) -> str:
    """A number as a person reads it: whole numbers whole (130,305,000,000), others to 6 digits."""
    x = float(x)
    if np.isfinite(x) and x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.6g}"


RTOL_WORDS = "rtol={rtol:g}: a relative error |got - expected| / |expected| of at most {rtol:g}"


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
        self.metrics: dict[str, float] = {}

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded from the test's name: the same inputs on every run and machine."""
        return np.random.default_rng(zlib.crc32(self.test_name.encode()) + salt)

    def call(self, func: str, *args: Any, **kwargs: Any) -> Any:
        """Call the learner's ``func`` with these arguments; returns plain data (arrays as numpy)."""
        return decode(self.runner.call(func, encode(list(args)), encode(kwargs)))

    def reference(self, func: str, *args: Any) -> Any:
        """Call the lab's own ``func`` (in the grader: in the pristine lab's process, never the
        learner's), e.g. to measure this machine for a check of a prediction."""
        value, _ = self.runner.timed_call(func, encode(list(args)), {}, reference=True)
        return decode(value)

    def speed_ratio(self, fast: str, reference: str, make_inputs: Callable[[np.random.Generator], tuple],
                    check: Callable[[Any, tuple, str], None], rounds: int = 7, fast_args: tuple = (),
                    more_until: float | None = None, more_s: float = 0.0) -> float:
        """How many times faster the learner's ``fast`` runs than the lab's ``reference``: the best
        time of the reference over ``rounds`` divided by the best time of ``fast``.

        Best times, not medians: on a busy machine a call can only be slowed down (preempted,
        evicted), never sped up, so the fastest of several interleaved rounds is the steadiest
        estimate of what each function costs, and a pass/fail decision made on it does not flip
        with the load. Each side's best comes from calls the same runner timed the same way.

        Each round makes fresh inputs with ``make_inputs(rng)`` (so no result can be cached; return
        :class:`RandomArray` recipes for large arrays, so that a request is not mostly data), calls
        both functions on them in alternating order, and checks each result with
        ``check(result, inputs, what)`` (which raises :class:`CheckFailure`): a fast wrong answer
        earns nothing. The result arrives as a :class:`Digest` (fresh weights each round), which
        ``Tester.expect_close(result, expected, ...)`` checks like the whole array. One untimed,
        checked round first lets compilers warm up. The runner times the calls: in the grader the
        trusted process, around each request it sends, with the reference taken from the pristine
        lab. ``fast_args`` go to ``fast`` only, after the inputs (a tile size, say).

        What a request costs apart from the kernel (sending it, generating its random inputs, reducing
        the result to its digest) is measured each round where the reference runs
        (:meth:`Runner.timed_decode`, given the shape of the reference's result) and its best is
        taken off both best times, so that inputs of a hundred megabytes, which take as long to
        generate as a kernel takes to run, do not shrink the ratio. It is measured on the trusted
        side only: the learner's process could make its own decoding look slow.

        With ``more_until``, rounds go on past ``rounds`` while the ratio is below it, for at most
        ``more_s`` seconds more: for a kernel that needs a second core, one round in which no other
        program (or the hypervisor) took that core is enough. More rounds cannot make two equally
        fast functions look different: both best times only get closer to their true cost.
        """
        best = {True: float("inf"), False: float("inf")}
        overhead = float("inf")
        digest_shape = None  # the shape of the reference's result, from the warm-up round
        deadline = None
        round_ = -1
        while True:
            round_ += 1
            if round_ > rounds:
                if more_until is None or not more_s > 0:
                    break
                deadline = deadline or time.monotonic() + more_s
                so_far = {side: max(took - overhead, 1e-6) for side, took in best.items()}
                if so_far[True] / so_far[False] >= more_until or time.monotonic() > deadline:
                    break
            inputs = tuple(make_inputs(self.rng(10_000 + round_)))
            encoded = encode(list(inputs))
            with_extra = encode(list(inputs) + list(fast_args))
            plain = tuple(x.materialize() if isinstance(x, RandomArray) else x for x in inputs)
            order = ((fast, False), (reference, True)) if round_ % 2 else ((reference, True), (fast, False))
            seconds = {}
            digest = int(self.rng(20_000 + round_).integers(2 ** 62))
            for func, is_reference in order:
                value, took = self.runner.timed_call(func, encoded if is_reference else with_extra, {},
                                                     reference=is_reference, digest=digest)
                label = "the lab's reference " + func if is_reference else func
                got = decode(value)
                if is_reference and isinstance(got, Digest):
                    digest_shape = got.shape
                check(got, plain, f"{label} in timed round {round_}" if round_ else f"{label} (warm-up)")
                seconds[is_reference] = took
            if round_:  # round 0 warms up (compiles) and is not timed
                overhead = min(overhead, self.runner.timed_decode(encoded, digest_shape))
                for side, took in seconds.items():
                    best[side] = min(best[side], took)
        kernel = {side: max(took - overhead, 1e-6) for side, took in best.items()}
        ratio = float(kernel[True] / kernel[False])
        self.metrics[f"speed-up of {fast}"] = round(ratio, 3)
        return ratio

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
        if isinstance(got, Digest):
            if got.shape != want_a.shape:
                raise CheckFailure(what, f"shape {want_a.shape}", f"shape {got.shape}",
                                   hint or "check the shape of what you return")
            w = Digest.weights(got.seed, want_a.shape)
            expected = float(np.sum(want_a * w))
            bound = rtol * float(np.sum(np.abs(want_a) * w)) + atol * float(np.sum(w))
            if not abs(got.value - expected) <= bound:  # NaN fails too
                raise CheckFailure(what, f"every entry within {RTOL_WORDS.format(rtol=rtol)} (checked as a "
                                         f"random-weighted sum: {expected:.9g})", f"a weighted sum of {got.value:.9g}",
                                   hint)
            return
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
                raise CheckFailure(what, f"values within {RTOL_WORDS.format(rtol=rtol)}", detail, hint)
            raise CheckFailure(what, f"{_number(want_a)} (within {RTOL_WORDS.format(rtol=rtol)})", _number(got_a), hint)

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
    hidden: bool = False
    metrics: dict = field(default_factory=dict)
    hint: str = ""  # what to try, kept apart so a report can give each hint once

    @property
    def text(self) -> str:
        """The message with its hint, as one test's feedback."""
        return self.message + (f"\n      hint: {self.hint}" if self.hint else "")


REGISTRY: dict[str, list[TestSpec]] = {}

NUMBA_ERRORS = ("TypingError", "NumbaTypeError", "LoweringError", "UnsupportedError")
NUMBA_HINT = ("numba could not compile the function: the first lines of its message name the line and the types "
              "it saw. Common causes: a Python list where numba needs an array (pass np.asarray(x)); an "
              "accumulator started as 0 (an int) and then given floats (start at 0.0, or np.float32(0.0) to stay "
              "in float32); np.zeros((M, N)) without dtype=A.dtype, which makes float64; a function numba does not "
              "know called inside the loop (keep the loop body to arithmetic and indexing)")


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
    """The public tests of ``lab`` (e.g. ``"01_matmul"``), importing ``sweatlab.labs.labNN_topic.checks``.

    The module is imported whatever the registry already holds: hidden tests loaded first
    register under the same lab, and must not stand in for its public tests. A lab whose tests
    are registered by other means (a test fixture) and that has no module is fine too.
    """
    name = f"sweatlab.labs.lab{lab}.checks"
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.rsplit(".", 1)[0]):
                raise
            if not any(not t.hidden for t in REGISTRY.get(lab, [])):
                raise KeyError(f"no checks for lab {lab!r}") from None
    return [t for t in REGISTRY.get(lab, []) if not t.hidden]


def run_test(spec: TestSpec, runner: Runner) -> TestResult:
    """Run one test; every outcome (pass, failure, learner error, broken test) is a TestResult."""
    tester = Tester(runner, f"{spec.lab}/{spec.exercise}/{spec.name}")
    base = dict(lab=spec.lab, exercise=spec.exercise, name=spec.name, max_points=spec.points, hidden=spec.hidden,
                metrics=tester.metrics)
    try:
        spec.func(tester)
    except CheckFailure as exc:
        return TestResult(points=0.0, passed=False, message=exc.text(with_hint=False), hint=exc.hint, **base)
    except LearnerError as exc:
        if exc.error_type == "NotImplementedError":
            return TestResult(points=0.0, passed=False, not_written=True, message=(
                f"{exc.func} is not written yet (it raised NotImplementedError)\n      hint: replace the "
                "`raise NotImplementedError(...)` line in its cell with your code, run the cell, then check again"),
                **base)
        return TestResult(points=0.0, passed=False, traceback=exc.traceback, message=str(exc),
                          hint=NUMBA_HINT if exc.error_type in NUMBA_ERRORS else "", **base)
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
    hints: list[str] = []
    for r in results:
        if not r.passed:
            lines.append(f"  ✗ {r.name}: {r.message}")
            if r.traceback:
                lines += ["      " + line for line in r.traceback.rstrip().splitlines()[-6:]]
            if r.hint and r.hint not in hints:
                hints.append(r.hint)
    lines += [f"  hint: {h}" for h in hints]  # once each, after the failures they explain
    return "\n".join(lines)


class LabChecks:
    """The tests of one lab, run on a namespace (the kit's ``lab.check`` and ``sweatlab.kit.check`` use it)."""

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

