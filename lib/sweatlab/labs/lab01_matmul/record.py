"""Lab 01's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, numbers

RUNGS_01 = ["python_ijk", "python_ikj", "numpy_rows", "numba_ijk", "numba_ikj", "numba_tiled", "blas"]


def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {("GFLOP/s", k): x for k, x in numbers(v, "gflops", required=True, order=RUNGS_01).items()}


REPORT = LabReport("Lab 01: the matmul ladder", extract, ("GFLOP/s",), ladder=True)
