"""The lab kit: one stand-in mechanism, one check entry, one meter, the run's figures quoted in the prose."""

from __future__ import annotations

import json

import nbformat
import pytest

from sweatlab.course import figures as F
from sweatlab.course.build import make_lab
from sweatlab.kit import StandIn, check, open_lab
from sweatlab.kit import lab as kit_lab
from sweatlab.kit import standins


def _lab_with(monkeypatch, table, namespace=None):
    monkeypatch.setattr(kit_lab, "stand_ins_of", lambda name: {s.name: s for s in table})
    said = []
    ns = {} if namespace is None else namespace
    lab = open_lab("99_fake", ns)
    lab.say = said.append
    return lab, ns, said


def _stub(*args):
    raise NotImplementedError("ex-add: replace this line with your code")


def test_mine_uses_the_learners_function_once_written(monkeypatch):
    lab, ns, said = _lab_with(monkeypatch, [StandIn("add", 1, lambda: lambda a, b: a + b, "adder")])
    ns["add"] = lambda a, b: a + b + 100
    assert lab.mine("add")(1, 2) == 103 and not lab.stood_in("add") and lab.label("add") == "add"
    assert said == []


def test_an_unwritten_function_is_answered_by_the_labelled_stand_in_noted_once(monkeypatch):
    lab, ns, said = _lab_with(monkeypatch, [StandIn("add", 3, lambda: lambda a, b: a + b, "adder")])
    ns["add"] = _stub
    add = lab.mine("add")
    assert add(1, 2) == 3 and add(2, 2) == 4
    assert lab.stood_in("add") and lab.label("add", "my sum") == "my sum (stand-in)"
    assert len(said) == 1 and "add is not written yet" in said[0] and "exercise 3" in said[0]
    fn, value = lab.pick("add", 5, 5)
    assert value == 10 and fn is not _stub
    ns["add"] = lambda a, b: a * b  # written now: the label drops the mark
    assert add(3, 3) == 9 and lab.label("add") == "add"


def test_a_name_without_a_stand_in_fails_at_once_naming_the_known_ones(monkeypatch):
    lab, _, _ = _lab_with(monkeypatch, [StandIn("add", 1, lambda: abs)])
    with pytest.raises(KeyError, match="no stand-in for 'sub'.*add"):
        lab.mine("sub")


def test_an_error_other_than_the_stub_is_the_learners_to_see(monkeypatch):
    lab, ns, _ = _lab_with(monkeypatch, [StandIn("add", 1, lambda: lambda a, b: a + b)])
    ns["add"] = lambda a, b: a / 0
    with pytest.raises(ZeroDivisionError):
        lab.mine("add")(1, 2)


def test_a_lab_without_a_stand_in_module_has_none():
    assert standins.stand_ins_of("99_no_such_lab") == {}


def test_a_check_before_the_setup_cell_says_which_cell_to_run(capsys):
    check("anything", {})
    out = capsys.readouterr().out
    assert "setup cell has not run" in out and "Setup" in out


def test_check_after_setup_runs_the_labs_public_tests(capsys):
    ns: dict = {}
    open_lab("01_matmul", ns)
    ns["matmul_rtol"] = lambda k: 0.0  # wrong: the float32 bound is not zero
    check("rtol", ns)
    out = capsys.readouterr().out
    assert out.startswith("✗ rtol")


def test_the_meter_uses_the_one_set_of_energy_inputs(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEAT_TDP_W", "45")
    monkeypatch.setenv("SWEAT_CHIP_CORES", "6")
    lab = open_lab("01_matmul", {})
    meter = lab.meter(2)
    assert (meter.tdp_w, meter.host_cores, meter.cores_used) == (45.0, 6, 2) and meter.estimate
    assert not lab.energy.hypothetical and lab.energy.origin == "environment"


def test_quote_returns_the_text_and_saves_the_figure_while_a_solution_executes(monkeypatch, tmp_path):
    lab = open_lab("01_matmul", {})
    assert lab.quote("speedup", 61.7, "{:.0f}x") == "62x"
    out = tmp_path / "figures.jsonl"
    monkeypatch.setenv(F.FIGURES_ENV, str(out))
    lab.quote("speedup", 61.7, "{:.0f}x")
    lab.quote("verdict", "faster", "{}")
    assert F.read_run_figures(out) == {"speedup": "62x", "verdict": "faster"}
    assert json.loads(out.read_text().splitlines()[0])["value"] == 61.7
    with pytest.raises(ValueError, match="figure name"):
        lab.quote("Speed Up", 1.0)


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def test_placeholders_fill_the_solution_plainly_and_the_lab_with_a_note():
    md = nbformat.v4.new_markdown_cell("The tiled kernel ran {{speedup}} faster than {{ base }}.")
    other = nbformat.v4.new_markdown_cell("No figures here.")
    figures = {"values": {"speedup": "3.1x", "base": "ikj"}, "machine": "Some CPU, 2 cores", "mode": "full"}
    lab = make_lab(_nb(md, other), figures)
    assert lab.cells[0].source.startswith("The tiled kernel ran 3.1x faster than ikj.")
    assert "shipped run" in lab.cells[0].source and "Some CPU, 2 cores" in lab.cells[0].source
    assert lab.cells[1].source == "No figures here."
    sol = _nb(nbformat.v4.new_markdown_cell("{{speedup}} and {{missing}}"))
    assert F.fill_notebook(sol, figures, note=False) == ["missing"]
    assert sol.cells[0].source == "3.1x and {{missing}}"


def test_inline_quotes_are_refreshed_from_the_run_and_unknown_ones_reported():
    text = "ran <!--fig 01_matmul.speedup-->62x<!--/fig--> faster; <!--fig 01_matmul.nope-->1<!--/fig-->"
    fresh, unknown = F.refresh_quotes(text, {"01_matmul": {"speedup": "58x"}})
    assert "<!--fig 01_matmul.speedup-->58x<!--/fig-->" in fresh and unknown == ["01_matmul.nope"]
    assert F.strip_quote_markers(fresh).startswith("ran 58x faster;")


FIGURE_LAB = '''# %% [markdown] sweat={"id": "intro"}
# # A lab that quotes its run

# %% sweat={"id": "setup", "role": "setup"}
from sweatlab.kit import open_lab
lab = open_lab("07_quoting")

# %% sweat={"id": "measure", "role": "demo"}
ratio = 6 * 7
print(lab.quote("answer", ratio, "{:d}"), lab.quote("verdict", "large" if ratio > 10 else "small", "{}"))

# %% [markdown] sweat={"id": "prose"}
# The run found {{answer}}, which is {{verdict}}.
'''


def test_a_solution_run_fills_its_prose_the_lab_shows_the_shipped_values_and_check_holds_the_decks_to_them(tmp_path):
    from sweatlab.course import build, check
    from sweatlab.course.layout import Course

    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    (root / "slides").mkdir()
    (root / "pyproject.toml").write_text("")
    src = root / "solutions" / "07_quoting.py"
    src.write_text(FIGURE_LAB)
    deck = root / "slides" / "07_quoting.md"
    deck.write_text("# Deck\n\nWe found <!--fig 07_quoting.answer-->?<!--/fig-->.\n")
    course = Course(root)
    missing = check.check_course(course)
    assert any("placeholder {{answer}} has no figure" in str(p) for p in missing)

    out = build.execute_solution(course, src, quick=True, timeout_s=120)
    solved = nbformat.read(out, as_version=4)
    assert solved.cells[-1].source == "The run found 42, which is large."
    assert solved.metadata["sweat"]["figures"]["values"] == {"answer": "42", "verdict": "large"}
    build.build_labs(course)
    blank = nbformat.read(root / "labs" / "07_quoting.ipynb", as_version=4)
    assert blank.cells[-1].source.startswith("The run found 42, which is large.") and "shipped run" in blank.cells[-1].source

    problems = [str(p) for p in check.check_course(course)]
    assert any("differs from the solution's run" in p for p in problems), problems
    changed, unknown = build.refresh_quotes(course)
    assert changed == [deck] and unknown == [] and "-->42<!--" in deck.read_text()
    assert check.check_course(course) == []
    deck.write_text(deck.read_text() + "And <!--fig 07_quoting.nope-->1<!--/fig-->.\n")
    assert any("07_quoting.nope" in str(p) for p in check.check_course(course))


def test_the_record_lists_the_functions_a_stand_in_answered_for(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEAT_RESULTS_DIR", str(tmp_path))
    lab, ns, _ = _lab_with(monkeypatch, [StandIn("add", 1, lambda: lambda a, b: a + b)])
    ns["add"] = _stub
    lab.mine("add")(1, 1)
    rec = lab.record(total=2)
    assert rec["stand_ins"] == ["add"] and rec["values"] == {"total": 2}
    written = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[-1])
    assert written["stand_ins"] == ["add"]
    ns["add"] = lambda a, b: a + b
    fresh, _, _ = _lab_with(monkeypatch, [StandIn("add", 1, lambda: abs)], ns)
    fresh.mine("add")(1, 1)
    assert "stand_ins" not in fresh.record(total=2)


def test_a_cell_quoting_only_shipped_data_is_not_credited_to_the_reference_machine():
    figures = {"values": {"tpu": "30x", "mine": "2x"}, "data": ["tpu"], "machine": "Some CPU", "mode": "full"}
    nb = _nb(nbformat.v4.new_markdown_cell("The paper gives {{tpu}}."),
             nbformat.v4.new_markdown_cell("The paper gives {{tpu}}; this machine {{mine}}."))
    F.fill_notebook(nb, figures, note=True)
    assert "same on every machine" in nb.cells[0].source and "Some CPU" not in nb.cells[0].source
    assert "Some CPU" in nb.cells[1].source
