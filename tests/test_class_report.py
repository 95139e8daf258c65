"""`sweatlab class-report`: a class's records pooled into one page, grouped by CPU family, outliers flagged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweatlab.tools import class_report as CR
from sweatlab.tools import cli

from browser import artifact, browser_page
from conftest import REPO

SPR = {"cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "os": "Linux", "arch": "x86_64",
       "isa": ["sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
               "amx_bf16", "amx_int8"]}
ZEN3 = {"cpu_model": "AMD Ryzen 7 5800X 8-Core Processor", "os": "Linux", "arch": "x86_64",
        "isa": ["sse2", "sse4_2", "avx", "avx2", "fma", "f16c"]}
ZEN4 = {"cpu_model": "AMD Ryzen 9 7950X 16-Core Processor", "os": "Linux", "arch": "x86_64",
        "isa": ["sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"]}
EPYC_VM = {"cpu_model": "AMD EPYC", "os": "Linux", "arch": "x86_64",  # as a course VM records it
           "isa": ["sse2", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"]}
M2 = {"cpu_model": "Apple M2", "os": "Darwin", "arch": "arm64", "isa": ["neon", "fp16", "dotprod", "i8mm", "bf16"]}
OLD = {"cpu_model": "Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz", "os": "Linux", "arch": "x86_64",
       "isa": ["sse2", "sse4_2", "avx"]}
ICX = {"cpu_model": "Intel(R) Xeon(R) Gold 6338", "arch": "x86_64", "isa": ["avx2", "avx512f", "avx512_vnni"]}

# Each kind of machine and how fast it is, relative to a Zen 4 desktop.
MACHINES = {"spr": (SPR, 2.0), "zen3": (ZEN3, 0.5), "zen4": (ZEN4, 1.0), "m2": (M2, 0.8), "old": (OLD, 0.1)}


def rec(lab: str, machine: dict, values: dict, utc: str = "2026-11-20T10:00:00+00:00", **extra) -> dict:
    return {"lab": lab, "values": values, "machine": machine, "versions": {"python": "3.11.7"}, "utc": utc, **extra}


def lab_records(machine: dict, speed: float, utc: str = "2026-11-20T10:00:00+00:00") -> list[dict]:
    """One record of every lab the report reads, with the keys each lab's record() call writes."""
    s = speed
    q = 2.0 if "amx_int8" in machine["isa"] else 1.4 if "avx512_vnni" in machine["isa"] else 1.0  # int8 gain
    return [
        rec("00_measure", machine, {"peak_gflops_fp32": 200 * s, "bandwidth_gbs": 40 * s ** 0.5, "timer_overhead_ns": 70,
                                    "peak_gflops_fp32_1core": 100 * s, "bandwidth_gbs_1core": 30, "cores": 8,
                                    "quick": False}, utc),
        rec("01_matmul", machine, {"n": 256, "gflops": {"python_ijk": 0.04 * s, "python_ikj": 0.05 * s,
                                                        "numpy_rows": 0.2 * s, "numba_ijk": 3 * s, "numba_ikj": 40 * s,
                                                        "numba_tiled": 36 * s, "blas": 95 * s},
                                   "peak_gflops": 100 * s, "quick": False}, utc),
        rec("02_simd", machine, {"gflops": {"numba_naive": 2 * s, "numba_fastmath": 8 * s, "numba_microkernel": 30 * s,
                                            "numba_microkernel_parallel": 90 * s, "blas_fp32": 100 * s,
                                            "torch_fp32": 98 * s, "torch_bf16": None if machine is OLD else 150 * s},
                                 "hardware_peak_gflops": {"fp32_1_core": 60 * s, "fp32_all_cores": 120 * s, "bf16_all_cores": None},
                                 "isa_speedups": {"numpy: baseline only": {"exp float32": 3.5, "add float32": 1.0}},
                                 "native_bf16": True},
            utc),
        rec("03_quantize", machine, {"rows": {
            "ORT fp32": {"accuracy": 0.97, "latency_ms_b1": 0.1, "latency_ms_big": 10 / s, "bytes": 400000},
            "ORT int8 dynamic": {"accuracy": 0.96, "latency_ms_b1": 0.1, "latency_ms_big": 5 / s / q, "bytes": 100000},
            "ORT int8 static": {"accuracy": 0.96, "latency_ms_b1": 0.1, "latency_ms_big": 4 / s / q, "bytes": 100000},
            "torch fp32": {"accuracy": 0.97, "latency_ms_b1": 0.2, "latency_ms_big": 12 / s, "bytes": 400000}},
            "ort_int8_speedup_big": 2.0 * q, "ort_int8_static_speedup_big": 2.5 * q, "int4_bytes_ratio": 0.16, "quick": False},
            utc),
        rec("04_less", machine, {"early_exit": {"flops_saved_pct": 40.0, "accuracy_change_pts": -0.3}, "quick": False},
            utc),
        rec("05_perf_per_watt", machine, {"measured": [
            {"workload": "MLP, batch 1", "device": "this CPU", "throughput": 120 * s, "joules": 0.05 / s,
             "kind": "estimated"},
            {"workload": "MLP, batch 256", "device": "this CPU", "throughput": 1300 * s, "joules": 0.006 / s,
             "kind": "estimated"}], "quick": False}, utc),
        rec("06_tiny_lm", machine, {"tokens_per_s": {"fp32": 50 * s, "int8_dequant": 40 * s, "int8_kernel": 80 * s,
                                                     "int4_dequant": 30 * s},
                                    "perplexity": {"fp32": 3.1}, "kv_cache_speedup": 4.0,
                                    "tokens_per_joule": {"fp32": 2.0 * s, "int8_kernel": None, "kind": "estimated"},
                                    "quick": False}, utc),
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def class_folder(tmp_path) -> Path:
    """A class of 12: three on Zen 4 (one far slower on one rung), two on Sapphire Rapids, ... and bad files."""
    folder = tmp_path / "class"
    people = [("ana", "zen4", 1.0), ("ben", "zen4", 1.1), ("cem", "zen4", 0.9), ("dia", "spr", 1.0),
              ("eli", "spr", 1.1), ("fay", "zen3", 1.0), ("gus", "zen3", 0.9), ("hal", "m2", 1.0), ("ivy", "m2", 1.2),
              ("jon", "old", 1.0)]
    for name, kind, jitter in people:
        machine, speed = MACHINES[kind]
        records = lab_records(machine, speed * jitter)
        if name == "cem":  # numba not set up right: ikj ten times slower than the family's
            records[1]["values"]["gflops"]["numba_ikj"] /= 10
        write_jsonl(folder / name / "results" / "records.jsonl", records)
    # one learner sends a single record as a file named after her, another a list of records
    (folder / "kim.json").write_text(json.dumps(lab_records(ZEN4, 1.05)[0]))
    (folder / "lou" / "mine.json").parent.mkdir()
    (folder / "lou" / "mine.json").write_text(json.dumps(lab_records(M2, 0.9)[:2]))
    # and the broken ones
    (folder / "broken.json").write_text('{"lab": "00_measure", "values": {')
    (folder / "doctor.json").write_text(json.dumps({"checks": [{"name": "python", "ok": True}], "ok": True}))
    (folder / "max" / "records.jsonl").parent.mkdir()
    good = json.dumps(lab_records(ZEN3, 0.5)[0])
    missing = json.dumps(rec("01_matmul", ZEN3, {"n": 256, "quick": True}))
    text = json.dumps(rec("00_measure", ZEN3, {"peak_gflops_fp32": "fast", "bandwidth_gbs": 20}))
    (folder / "max" / "records.jsonl").write_text(f"{good}\n{missing}\n{text}\n{good[:40]}")
    return folder


# ## CPU family


@pytest.mark.parametrize("machine, family", [
    (SPR, "Intel Sapphire Rapids-class (AMX)"),
    (ZEN4, "AMD Zen 4-class (AVX-512)"),
    (EPYC_VM, "AMD Zen 4-class (AVX-512)"),
    (ZEN3, "AVX2 x86-64"),
    (M2, "Apple M-series / Arm64"),
    ({"cpu_model": "Neoverse-N1", "arch": "aarch64", "isa": ["neon"]}, "Apple M-series / Arm64"),
    ({"cpu_model": "Apple M1", "arch": "x86_64", "isa": ["avx2"]}, "Apple M-series / Arm64"),  # Rosetta reports x86
    (ICX, "Intel AVX-512 (no AMX)"),
    (OLD, "Older x86-64 (no AVX2)"),
    ({"cpu_model": None, "arch": None, "isa": []}, "Unknown CPU"),
    ({}, "Unknown CPU"),
])
def test_cpu_family(machine, family):
    assert CR.cpu_family(machine) == family
    assert family in CR.FAMILIES


# ## Loading, naming, latest


def test_learner_is_named_by_file_or_folder(tmp_path):
    folder = tmp_path / "c"
    assert CR.learner_name(folder / "alice" / "results" / "records.jsonl", folder) == "alice"
    assert CR.learner_name(folder / "bob" / "backup" / "mine.json", folder) == "bob"
    assert CR.learner_name(folder / "carol.jsonl", folder) == "carol"
    assert CR.learner_name(folder / "dan" / "00_measure.json", folder) == "dan"
    assert CR.learner_name(folder / "records.jsonl", folder) == "c"
    assert CR.learner_name(folder / "01_matmul.json", folder) == "c"


def test_load_pools_every_file_and_names_learners(class_folder):
    pool = CR.load_folder(class_folder)
    used = CR.latest(pool.entries)
    learners = {e.learner for e in used}
    assert learners == {"ana", "ben", "cem", "dia", "eli", "fay", "gus", "hal", "ivy", "jon", "kim", "lou", "max"}
    assert {e.lab for e in used if e.learner == "lou"} == {"00_measure", "01_matmul"}
    assert {e.lab for e in used if e.learner == "max"} == {"00_measure"}  # its other lines are broken
    assert {e.family for e in used if e.learner == "dia"} == {"Intel Sapphire Rapids-class (AMX)"}
    assert {e.family for e in used if e.learner == "jon"} == {"Older x86-64 (no AVX2)"}


def test_latest_record_per_learner_and_lab_wins(tmp_path):
    folder = tmp_path / "c"
    new = lab_records(ZEN4, 1.0, utc="2026-11-21T09:00:00+00:00")[0]
    old = lab_records(ZEN4, 3.0, utc="2026-11-20T09:00:00+00:00")[0]
    write_jsonl(folder / "ana" / "records.jsonl", [new, old])  # the newer one comes first in the file
    write_jsonl(folder / "ana.jsonl", [lab_records(ZEN4, 5.0, utc="2026-11-19T09:00:00Z")[0]])
    pool = CR.load_folder(folder)
    assert len(pool.entries) == 3
    (only,) = CR.latest(pool.entries)
    assert only.learner == "ana" and only.metrics["GFLOP/s fp32", "peak, all cores"] == 200.0
    # a learner field in the record names the learner, whatever the file
    named = dict(old, learner="Zoë Ng")
    write_jsonl(folder / "ana" / "records.jsonl", [new, named])
    assert {e.learner for e in CR.latest(CR.load_folder(folder).entries)} == {"ana", "Zoë Ng"}


def test_every_kind_of_bad_file_is_skipped_with_its_reason(class_folder):
    pool = CR.load_folder(class_folder)
    reasons = {s.path: s.reason for s in pool.skipped}
    assert reasons["broken.json"].startswith("not valid JSON")
    assert "not a sweatlab record" in reasons["doctor.json"]
    assert reasons["max/records.jsonl line 2"] == "values['gflops'] is missing"
    assert reasons["max/records.jsonl line 3"] == "values['peak_gflops_fp32'] is 'fast', not a positive number"
    assert reasons["max/records.jsonl line 4"].startswith("not valid JSON (cut short")
    assert len(pool.skipped) == 5


@pytest.mark.parametrize("content, reason", [
    ("[]", "an empty list"),
    ('"just a string"', "not a sweatlab record (a JSON str"),
    (json.dumps(rec("7_future", ZEN4, {"x": 1})), "lab '7_future' is not a lab's name"),
    (json.dumps(rec("07_future", ZEN4, {"note": "text only"})), "no number in its values"),
    (json.dumps({"lab": "00_measure", "values": {"peak_gflops_fp32": 1, "bandwidth_gbs": 1}}), "'machine' is missing"),
    (json.dumps(rec("00_measure", ZEN4, {"peak_gflops_fp32": 1, "bandwidth_gbs": 1}, utc="yesterday")),
     "'utc' is 'yesterday', not an ISO time"),
    (json.dumps(rec("00_measure", ZEN4, {"peak_gflops_fp32": True, "bandwidth_gbs": 1})), "is True, not a positive"),
    (json.dumps(rec("01_matmul", ZEN4, {"gflops": {"blas": None}})), "values['gflops'] holds no number"),
    (json.dumps(rec("03_quantize", ZEN4, {"quick": True})), "no speed-up in it"),
    (json.dumps(rec("05_perf_per_watt", ZEN4, {"measured": [{"workload": "MLP", "throughput": "n/a"}]})),
     "values['measured'][0]['throughput'] is 'n/a'"),
    ("\x00\xff binary", "not valid JSON"),
])
def test_malformed_record_reasons(tmp_path, content, reason):
    (tmp_path / "x.json").write_text(content)
    pool = CR.load_folder(tmp_path)
    assert pool.entries == []
    (skipped,) = pool.skipped
    assert skipped.path == "x.json" and reason in skipped.reason, skipped.reason


def test_non_utf8_and_empty_files_are_skipped(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "b.json").write_text("")
    reasons = {s.path: s.reason for s in CR.load_folder(tmp_path).skipped}
    assert reasons == {"a.jsonl": "not UTF-8 text (a binary file?)", "b.json": "empty file"}


# ## Outliers


def test_outlier_far_from_its_family_is_flagged_and_no_other(class_folder):
    used = CR.latest(CR.load_folder(class_folder).entries)
    outliers = CR.find_outliers(used)
    assert [(o.learner, o.lab, o.name, o.against) for o in outliers] == [("cem", "01_matmul", "numba_ikj", "family")]
    (o,) = outliers
    assert o.family == "AMD Zen 4-class (AVX-512)"
    assert o.factor == pytest.approx(0.09, rel=0.05)  # a tenth of the median of ana's, ben's and cem's


def test_outlier_rules_family_spread_and_small_families(tmp_path):
    def entry(name, machine, peak):
        r = rec("00_measure", machine, {"peak_gflops_fp32": peak, "bandwidth_gbs": 40})
        return CR.parse_record(r, name, name)

    # a family of 3 that agrees within 1.6x: nothing flagged, though the MAD is tiny (the factor-of-2 floor)
    assert CR.find_outliers([entry("a", ZEN4, 100), entry("b", ZEN4, 100), entry("c", ZEN4, 160)]) == []
    # 2.5x off in a family of 4 is flagged against the family
    flagged = CR.find_outliers([entry("a", ZEN4, 100), entry("b", ZEN4, 105), entry("c", ZEN4, 95),
                                entry("d", ZEN4, 250)])
    assert [(o.learner, o.against) for o in flagged] == [("d", "family")]
    # a lone old laptop: compared with the class, flagged only past 10x
    cls = [entry("a", ZEN4, 100), entry("b", ZEN4, 110), entry("c", SPR, 300), entry("z", OLD, 12)]
    assert CR.find_outliers(cls) == []
    flagged = CR.find_outliers(cls[:3] + [entry("z", OLD, 5)])
    assert [(o.learner, o.against) for o in flagged] == [("z", "class")]
    # two machines in all: nothing to compare with
    assert CR.find_outliers([entry("a", ZEN4, 100), entry("z", OLD, 1)]) == []


# ## The page and the command


def test_page_is_self_contained_and_complete(class_folder):
    page = CR.render(CR.load_folder(class_folder))
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page) and "@import" not in page and "url(" not in page
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert len(imgs) == 6  # labs 00, 01, 02, 03, 05, 06 (04 is a table only)
    for lab in ("Lab 00", "Lab 01: the matmul ladder", "Lab 02", "Lab 03", "Lab 04", "Lab 05", "Lab 06"):
        assert lab in page
    for family in ("Intel Sapphire Rapids-class (AMX)", "AMD Zen 4-class (AVX-512)", "AVX2 x86-64",
                   "Apple M-series / Arm64", "Older x86-64 (no AVX2)"):
        assert family in page
    assert CR.OUTLIER_RULE.split(" (")[0] in page and "scaled MADs" in page
    skipped = page.split('id="skipped"')[1]
    for name in ("broken.json", "doctor.json", "max/records.jsonl line 2", "max/records.jsonl line 4"):
        assert name in skipped
    # the summary's whole-class median of lab 00's peak: 13 machines' latest records
    assert "13 learners" in page


def test_cli_writes_the_page_and_reports_skipped_files(class_folder, tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert cli.main(["class-report", str(class_folder), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert out.is_file() and out.read_text().startswith("<!DOCTYPE html>")
    assert f"wrote {out}" in captured.out and "13 learners" in captured.out and "5 skipped" in captured.out
    assert "skipped doctor.json: not a sweatlab record" in captured.err
    assert "skipped max/records.jsonl line 4: not valid JSON (cut short" in captured.err


def test_cli_empty_or_missing_or_useless_folder_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["class-report", str(empty), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "no records in" in err and "no .jsonl or .json file" in err and "records.jsonl" in err
    assert not (tmp_path / "r.html").exists()

    assert cli.main(["class-report", str(tmp_path / "nope"), "-o", str(tmp_path / "r.html")]) == 2
    assert "is not a folder" in capsys.readouterr().err

    (empty / "doctor.json").write_text('{"ok": true}')
    assert cli.main(["class-report", str(empty), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "skipped doctor.json" in err and "1 .json/.jsonl file(s), none holding a usable record" in err


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    env = {"PYTHONPATH": str(REPO / "lib"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "sweatlab", "class-report", str(tmp_path)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "class-report: no records in" in run.stderr


def test_screenshot_in_headless_chromium(class_folder, tmp_path):
    out = tmp_path / "report.html"
    assert cli.main(["class-report", str(class_folder), "-o", str(out)]) == 0
    with browser_page(offline=True) as (page, errors):
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == 6 and all(w > 0 for w in widths), widths
        page.eval_on_selector_all("details", "ds => ds.forEach(d => d.open = false)")
        page.screenshot(path=str(artifact("class_report.png")), full_page=True)
        assert errors == []


def test_lab02_reads_the_shape_the_lab_records():
    """Lab 02 records its peaks per core count and its ISA speed-ups per switch and operation."""
    from sweatlab.labs.lab02_simd.record import extract

    got = extract({"gflops": {"numba_naive": 2.0, "blas_fp32": 100.0, "torch_bf16": None},
                  "hardware_peak_gflops": {"fp32_1_core": 59.0, "fp32_all_cores": 118.0, "bf16_all_cores": None},
                  "isa_speedups": {"numpy: baseline only": {"exp float32": 3.2, "add float32": 1.0},
                                   "oneDNN: avx512_core": {"matmul bf16": None}}})
    assert got[("GFLOP/s", "hardware peak")] == 118.0
    assert got[("ISA speed-up", "numpy: baseline only: exp float32")] == 3.2
    assert ("GFLOP/s", "torch_bf16") not in got and not any("oneDNN" in k[1] for k in got)


def test_a_lab_that_declares_no_report_is_pooled_from_its_numbers(tmp_path):
    """A new lab needs no edit to the report: its record's numbers are grouped by their top-level key."""
    folder = tmp_path / "class"
    for who, x in (("ann", 2.0), ("ben", 3.0)):
        (folder / who).mkdir(parents=True)
        (folder / who / "records.jsonl").write_text(json.dumps(rec("07_many_nodes", ZEN4, {
            "speedup": x, "tokens_per_s": {"1 node": 10.0 * x, "2 nodes": 18.0 * x}, "note": "ok"})) + "\n")
    pool = CR.load_folder(folder)
    assert not pool.skipped and {e.lab for e in pool.entries} == {"07_many_nodes"}
    assert pool.entries[0].metrics[("tokens_per_s", "2 nodes")] in (36.0, 54.0)
    page = CR.render(pool)
    assert "Lab 07: many nodes" in page and "2 nodes" in page


def test_a_record_made_with_stand_ins_says_so_beside_the_learner(tmp_path):
    r = rec("01_matmul", ZEN4, {"gflops": {"blas": 100.0, "numba_tiled": 20.0}})
    r["stand_ins"] = ["matmul_tiled"]
    (tmp_path / "cy.jsonl").write_text(json.dumps(r) + "\n")
    pool = CR.load_folder(tmp_path)
    assert pool.entries[0].stand_ins == ("matmul_tiled",)
    assert "stand-in for: matmul_tiled" in CR.render(pool)
