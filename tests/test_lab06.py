"""Lab 06_tiny_lm: what is particular to it, above all the plausible wrong answers each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweatlab.kit.checks import LabChecks
from sweatlab.labs.lab06_tiny_lm import reference as R

from conftest import REPO

LAB = "06_tiny_lm"
SOURCE = REPO / "solutions" / f"{LAB}.py"


def _failures(exercise: str, namespace: dict) -> list[str]:
    return [r.text for r in LabChecks(LAB).results(exercise, namespace) if not r.passed]


def _rejected(exercise: str, namespace: dict, hint: str = "") -> None:
    failures = _failures(exercise, namespace)
    assert failures, f"{exercise}: a wrong answer passed every test"
    if hint:
        assert any(hint in f for f in failures), failures


def test_the_solution_passes(solved):
    for ex in ("sample_next", "attend_one", "quantize_int8", "quantize_int4", "perplexity", "cost_model"):
        assert not _failures(ex, solved), ex


# ---- sample_next -----------------------------------------------------------------------------

def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max())
    return p / p.sum()


def sample_temperature_after_softmax(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    p = _softmax(logits) ** (1 / temperature)  # not the same as softmax(z / T) without renormalising
    c = np.cumsum(p)
    return int(np.searchsorted(c, np.random.default_rng(seed).random(), side="right"))


def sample_multiplies_by_temperature(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    c = np.cumsum(_softmax(np.asarray(logits) * temperature))
    return int(min(np.searchsorted(c, np.random.default_rng(seed).random(), side="right"), len(c) - 1))


def sample_two_draws(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    rng = np.random.default_rng(seed)
    rng.random()  # a draw spent elsewhere: not the reference's u
    c = np.cumsum(_softmax(np.asarray(logits) / temperature))
    return int(min(np.searchsorted(c, rng.random(), side="right"), len(c) - 1))


def sample_without_max(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    with np.errstate(all="ignore"):
        p = np.exp(np.asarray(logits, dtype=np.float64) / temperature)
        c = np.cumsum(p / p.sum())
    return int(min(np.searchsorted(c, np.random.default_rng(seed).random(), side="right"), len(c) - 1))


@pytest.mark.parametrize("wrong", [sample_temperature_after_softmax, sample_multiplies_by_temperature,
                                   sample_two_draws, sample_without_max])
def test_sample_next_rejects(solved, wrong):
    _rejected("sample_next", {**solved, "sample_next": wrong})


# ---- attend_one ------------------------------------------------------------------------------

def attend_without_scale(q, k, v):
    s = np.einsum("hd,htd->ht", q, k)
    p = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("ht,htd->hd", p / p.sum(-1, keepdims=True), v).astype(np.float32)


def attend_softmax_over_heads(q, k, v):
    s = np.einsum("hd,htd->ht", q, k) / math.sqrt(q.shape[-1])
    p = np.exp(s - s.max(0, keepdims=True))
    return np.einsum("ht,htd->hd", p / p.sum(0, keepdims=True), v).astype(np.float32)


def attend_without_max(q, k, v):
    s = np.einsum("hd,htd->ht", np.asarray(q, np.float32), np.asarray(k, np.float32)) / np.float32(math.sqrt(q.shape[-1]))
    with np.errstate(all="ignore"):
        p = np.exp(s)
        return np.einsum("ht,htd->hd", p / p.sum(-1, keepdims=True), v).astype(np.float32)


def attend_last_position_only(q, k, v):
    return np.asarray(v)[:, -1].astype(np.float32)


@pytest.mark.parametrize("wrong", [attend_without_scale, attend_softmax_over_heads, attend_without_max,
                                   attend_last_position_only])
def test_attend_one_rejects(solved, wrong):
    _rejected("attend_one", {**solved, "attend_one": wrong})


# ---- int8 ------------------------------------------------------------------------------------

def int8_per_tensor(w):
    w = np.asarray(w, np.float32)
    s = max(float(np.abs(w).max()) / 127, 1e-12)
    return np.clip(np.rint(w / s), -127, 127).astype(np.int8), np.full(w.shape[0], s, np.float32)


def int8_per_column(w):
    w = np.asarray(w, np.float32)
    s = np.abs(w).max(0) / 127
    return np.clip(np.rint(w / s), -127, 127).astype(np.int8), s[: w.shape[0]].astype(np.float32)


def int8_divides_by_128(w):
    w = np.asarray(w, np.float32)
    s = np.abs(w).max(1) / 128
    s = np.where(s > 0, s, 1).astype(np.float32)
    return np.clip(np.rint(w / s[:, None]), -127, 127).astype(np.int8), s


def int8_truncates(w):
    q, s = R.quantize_int8_rows(w)
    return np.trunc(np.asarray(w, np.float32) / s[:, None]).astype(np.int8), s


def int8_zero_row_nan(w):
    w = np.asarray(w, np.float32)
    with np.errstate(all="ignore"):
        s = (np.abs(w).max(1) / 127).astype(np.float32)
        return np.nan_to_num(np.clip(np.rint(w / s[:, None]), -127, 127)).astype(np.int8), s


def int8_returns_int32(w):
    q, s = R.quantize_int8_rows(w)
    return q.astype(np.int32), s


@pytest.mark.parametrize("wrong", [int8_per_tensor, int8_per_column, int8_divides_by_128, int8_truncates,
                                   int8_zero_row_nan, int8_returns_int32])
def test_quantize_int8_rejects(solved, wrong):
    _rejected("quantize_int8", {**solved, "quantize_int8_rows": wrong})


def test_quantize_int8_rejects_a_dequantize_without_the_scale(solved):
    _rejected("quantize_int8", {**solved, "dequantize_int8_rows": lambda q, s: np.asarray(q, np.float32)})


# ---- int4 ------------------------------------------------------------------------------------

def int4_swapped_nibbles(w, group=32):
    p, s, lo = R.quantize_int4_groups(w, group)
    return ((p >> 4) | ((p & 0xF) << 4)).astype(np.uint8), s, lo


def int4_unpacked(w, group=32):
    w = np.asarray(w, np.float32)
    n, k = w.shape
    p, s, lo = R.quantize_int4_groups(w, group)
    q = np.stack([p & 0xF, p >> 4], -1).reshape(n, k)
    return q.astype(np.uint8), s, lo


def int4_divides_by_16(w, group=32):
    w = np.asarray(w, np.float32)
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low = g.min(-1)
    s = (g.max(-1) - low) / 16
    s = np.where(s > 0, s, 1).astype(np.float32)
    q = np.clip(np.rint((g - low[..., None]) / s[..., None]), 0, 15).astype(np.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), s, low.astype(np.float32)


def int4_groups_down_columns(w, group=32):
    p, s, lo = R.quantize_int4_groups(np.asarray(w, np.float32).T.copy().T * 1.0, group)
    return p, s * 1.01, lo


def int4_constant_group_nan(w, group=32):
    w = np.asarray(w, np.float32)
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low = g.min(-1)
    s = ((g.max(-1) - low) / 15).astype(np.float32)
    with np.errstate(all="ignore"):
        q = np.nan_to_num(np.clip(np.rint((g - low[..., None]) / s[..., None]), 0, 15)).astype(np.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), s, low.astype(np.float32)


@pytest.mark.parametrize("wrong", [int4_swapped_nibbles, int4_unpacked, int4_divides_by_16, int4_groups_down_columns,
                                   int4_constant_group_nan])
def test_quantize_int4_rejects(solved, wrong):
    _rejected("quantize_int4", {**solved, "quantize_int4_groups": wrong})


def test_quantize_int4_rejects_swapped_nibbles_with_its_hint(solved):
    _rejected("quantize_int4", {**solved, "quantize_int4_groups": int4_swapped_nibbles}, "LOW nibble")


def test_quantize_int4_rejects_a_dequantize_that_forgets_the_low(solved):
    def wrong(packed, scale, low, group=32):
        return R.dequantize_int4_groups(packed, scale, np.zeros_like(np.asarray(low)), group)
    _rejected("quantize_int4", {**solved, "dequantize_int4_groups": wrong})


# ---- perplexity ------------------------------------------------------------------------------

def ppl_sum_not_mean(logits, targets):
    z = np.asarray(logits, np.float64)
    lp = z - z.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    return float(np.exp(-lp[np.arange(len(targets)), targets].sum() / 10))


def ppl_no_softmax(logits, targets):
    z = np.asarray(logits, np.float64)
    return float(np.exp(-z[np.arange(len(targets)), targets].mean()))


def ppl_base_2(logits, targets):
    return 2 ** math.log(R.perplexity(logits, targets))


def ppl_unstable(logits, targets):
    z = np.asarray(logits, np.float64)
    with np.errstate(all="ignore"):
        lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(np.exp(-lp[np.arange(len(targets)), np.asarray(targets)].mean()))


def ppl_returns_loss(logits, targets):
    return math.log(R.perplexity(logits, targets))


@pytest.mark.parametrize("wrong", [ppl_sum_not_mean, ppl_no_softmax, ppl_base_2, ppl_unstable, ppl_returns_loss])
def test_perplexity_rejects(solved, wrong):
    _rejected("perplexity", {**solved, "perplexity": wrong})


# ---- cost model ------------------------------------------------------------------------------

def cost_no_split(c, n, a, m, lat, bw):
    return c + (0 if n <= 1 else a * (lat + 2 * (n - 1) / n * m / bw))


def cost_no_ring_factor(c, n, a, m, lat, bw):
    return c / n + (0 if n <= 1 else a * (lat + m / bw))


def cost_latency_once(c, n, a, m, lat, bw):
    return c / n + (0 if n <= 1 else lat + a * 2 * (n - 1) / n * m / bw)


def cost_one_node_pays(c, n, a, m, lat, bw):
    return c / n + a * (lat + 2 * max(n - 1, 1) / n * m / bw)


@pytest.mark.parametrize("wrong", [cost_no_split, cost_no_ring_factor, cost_latency_once, cost_one_node_pays])
def test_cost_model_rejects(solved, wrong):
    _rejected("cost_model", {**solved, "tp_seconds_per_token": wrong})


# ---- stand-ins -------------------------------------------------------------------------------

def test_every_function_an_answer_cell_defines_has_its_stand_in_with_the_exercise_number(solution):
    import ast
    import re

    from sweatlab.kit.standins import stand_ins_of

    table = stand_ins_of(LAB)
    titles = {c.metadata["sweat"]["exercise"]: c.metadata["sweat"]["title"]
              for c in solution.cells if c.metadata.get("sweat", {}).get("role") == "check"}
    defined = {}
    for cell in solution.cells:
        meta = cell.metadata.get("sweat", {})
        if cell.cell_type == "code" and meta.get("role") == "answer":
            number = int(re.match(r"Exercise (\d+):", titles[meta["exercise"]]).group(1))
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef):
                    defined[node.name] = number
    assert sorted(table) == sorted(defined)
    for name, number in defined.items():
        assert table[name].exercise == number, name
        assert table[name].load() is getattr(R, name), name


# ---- the blank lab's demos run on the stand-ins, labelled --------------------------------------

# The demos that call an exercise's function, and the cells they need before them (no record: it writes a file).
DEMOS = ["setup", "models", "generate", "numpy-decoder", "kv-measure", "ppl-measure", "speed-measure", "speed-plot",
         "tp-run", "tp-predict", "aims"]


def _run_demos(nb, monkeypatch, tmp_path, cells):
    """Run the answer cells and ``cells`` of ``nb`` in order in one fresh namespace; (namespace, stdout)."""
    import contextlib
    import io

    monkeypatch.setenv("SWEAT_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SWEAT_RESULTS_DIR", str(tmp_path))
    namespace: dict = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in nb.cells:
            meta = cell.metadata.get("sweat", {})
            if cell.cell_type == "code" and (meta.get("role") == "answer" or meta.get("id") in cells):
                exec(compile(cell.source, f"<cell {meta.get('id')}>", "exec"), namespace)
    import matplotlib.pyplot as plt
    plt.close("all")
    return namespace, out.getvalue()


def _line(out: str, start: str) -> str:
    found = [line.strip() for line in out.splitlines() if line.strip().startswith(start)]
    assert found, f"no line starting {start!r} in:\n{out}"
    return found[0]


def test_the_blank_labs_demos_run_on_the_stand_ins_and_label_their_numbers(solution, monkeypatch, tmp_path):
    from sweatlab import course as C

    ns, out = _run_demos(C.make_lab(solution), monkeypatch, tmp_path, DEMOS)
    for name in ("sample_next", "attend_one", "perplexity", "quantize_int8_rows", "quantize_int4_groups",
                 "tp_seconds_per_token"):
        assert out.count(f"(stand-in) {name} is not written yet") == 1, name  # one note each
    # text: every number a stand-in made ends its label with " (stand-in)"; the others do not
    assert "--- temperature 0.8, chosen by sample_next (stand-in):" in out
    assert _line(out, "numpy decoder with attend_one (stand-in) vs torch")
    assert ns["NUMPY_DIFF"] < 1e-4  # the stand-in really answered
    for row in ("fp32", "int8", "int4_g16", "int4_g32", "int4_g64"):
        assert _line(out, row + " ").startswith(row + " (stand-in)"), row  # the stand-in's perplexity
    assert _line(out, "int8_dequant").startswith("int8_dequant (stand-in)")
    assert _line(out, "int4_dequant").startswith("int4_dequant (stand-in)")
    assert "(stand-in)" not in _line(out, "int8_kernel") and "(stand-in)" not in _line(out, "fp32      ")
    assert _line(out, "communication per token").endswith("(stand-in)")
    assert "(stand-in)" in _line(out, "predicted 2-rank speed")
    assert _line(out, "1 B (d 2048").endswith("(stand-in)")
    aims = [line for line in out.splitlines() if line.startswith(("held ", "NOT held "))]
    assert [("(stand-in)" in a) for a in aims] == [False, False, True, True, True, False], aims
    # plots: the bars and the cost model's curves
    ticks = [t.get_text() for t in ns["fig_speed"].axes[0].get_yticklabels()]
    assert ticks == ["fp32", "int8_dequant (stand-in)", "int8_kernel", "int4_dequant (stand-in)"]
    legend = [t.get_text() for t in ns["fig_tp"].legends[0].get_texts()]
    assert [t.endswith(" (stand-in)") for t in legend] == [True, True, True, False], legend
    assert all(ax.get_ylabel().endswith(" (stand-in)") for ax in ns["fig_tp"].axes)


def test_the_solutions_demos_are_not_labelled_as_stand_ins(solution, monkeypatch, tmp_path):
    _, out = _run_demos(solution, monkeypatch, tmp_path, ["setup", "models", "generate", "numpy-decoder", "ppl-measure"])
    assert "stand-in" not in out
    assert "--- temperature 0.8, chosen by sample_next:" in out and _line(out, "int8 ").split()[1] == "perplexity"
