"""Single-source notebooks: solutions/NN_topic.py -> solutions/NN_topic.ipynb -> labs/NN_topic.ipynb.

The source of each lab is ``solutions/NN_topic.py`` in jupytext percent format. Cells carry
course metadata on their ``# %%`` line::

    # %% sweat={"id": "ex-flops", "role": "answer"}
    def matmul_flops(m, n, k):
        ### BEGIN SOLUTION
        return 2 * m * n * k
        ### END SOLUTION

    # %% sweat={"id": "check-flops", "role": "check"}
    check_matmul_flops(matmul_flops)

Roles: ``answer`` (the learner's code: must hold solution markers), ``check`` (public checks:
their output is compared by nbval), ``setup``, ``prose``, ``demo``, ``reflection``. A cell
tagged ``solution`` (``tags=["solution"]``) is dropped from the lab. Cell ids are derived from
the author's ids, so regenerating never churns: a cell with ``sweat.id`` gets that id; the cells
after it get ``<id>__1``, ``<id>__2``... up to the next author id (``top__N`` before the first).

This module gathers the tooling, one job per module:

    course_layout  the fixed words and places: markers, roles, kernel, folders, errors (stdlib only)
    course_source  reading and validating a source into a normalised notebook
    course_build   making the student lab, and executing the solution (the only part that runs a kernel)
    course_check   ``make check``: everything generated is in sync with its source
"""

from __future__ import annotations

from .course_build import build_labs, dumps, execute_solution, make_lab, select_sources, stub_source, write_if_changed
from .course_check import check_course, check_lab, check_solution_pair
from .course_layout import (BEGIN, CHECK_OUTPUT_TAG, END, KEPT_CELL_METADATA, KERNEL_NAME, KERNEL_SPEC, LAB_NAME_RE,
                            ROLES, SOLUTION_TAG, Course, CourseError, MarkerError, find_root, sweat_of, tags_of)
from .course_source import load_source, solution_regions

__all__ = [
    "BEGIN", "CHECK_OUTPUT_TAG", "END", "KEPT_CELL_METADATA", "KERNEL_NAME", "KERNEL_SPEC", "LAB_NAME_RE", "ROLES",
    "SOLUTION_TAG", "Course", "CourseError", "MarkerError", "build_labs", "check_course", "check_lab",
    "check_solution_pair", "dumps", "execute_solution", "find_root", "load_source", "make_lab", "select_sources",
    "solution_regions", "stub_source", "sweat_of", "tags_of", "write_if_changed",
]
