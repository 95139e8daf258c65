"""The one fresh-process runner and the one oneDNN log reader."""

from __future__ import annotations

import os
import sys

from sweatlab.measure import fresh, onednn

LOG = """\
onednn_verbose,v1,info,oneDNN v3.7.1 (commit 8d263e693366ef8db40acc569cc7d8edf644556d)
onednn_verbose,v1,info,cpu,runtime:OpenMP,nthr:2
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions
onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_vnni,undef,src:u8::blocked:ab::f0 wei:s8:a:blocked:ba::f0,,,2x64:64x32,0.01
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:ab::f0 dst:f32::blocked:ab::f0,,,8x8,0.00
"""


def test_the_isa_line_is_the_rest_of_its_line_commas_included():
    assert onednn.isa_line(LOG) == "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"
    assert onednn.isa_line("dnnl_verbose,info,cpu,isa:Intel AVX2\n") == "Intel AVX2"
    assert onednn.isa_line("onednn_verbose,1700000000.1,info,cpu,isa:Intel AVX2\n") == "Intel AVX2"
    assert onednn.isa_line("no log at all") is None


def test_executed_primitives_in_order_with_the_int8_ones_marked():
    prims = onednn.executed(LOG)
    assert [(p.kind, p.impl) for p in prims] == [("matmul", "brg_matmul:avx512_core_vnni"), ("reorder", "jit:uni")]
    assert [p.int8_source for p in prims] == [True, False]


def test_a_fresh_process_reports_its_value_and_keeps_its_other_output_as_the_log():
    r = fresh.run_code("import os; print('hello'); from sweatlab.measure.fresh import report; "
                       "report({'sw': os.environ.get('OPENBLAS_CORETYPE'), 'mine': os.environ.get('X_SWEAT')})",
                       env={"X_SWEAT": "1"})
    assert r.ok and r.log == "hello"
    assert r.value == {"sw": None, "mine": "1"}


def test_the_parents_switches_do_not_leak_into_the_child(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    r = fresh.run_code("import os; from sweatlab.measure.fresh import report; report(os.environ.get('OPENBLAS_CORETYPE'))")
    assert r.ok and r.value is None
    assert fresh.child_env({"OPENBLAS_CORETYPE": "Zen"})["OPENBLAS_CORETYPE"] == "Zen"


def test_a_child_that_fails_or_says_nothing_is_reported_with_why():
    crashed = fresh.run_code("raise SystemExit('boom')")
    assert not crashed.ok and "exit status 1" in crashed.error and "boom" in crashed.error
    silent = fresh.run_code("pass")
    assert not silent.ok and silent.error == "it reported no result"
    slow = fresh.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    assert not slow.ok and "did not finish within 0.5 s" in slow.error
