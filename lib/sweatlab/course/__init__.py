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

    layout   the fixed words and places: markers, roles, kernel, folders, errors (stdlib only)
    source   reading and validating a source into a normalised notebook
    build    making the student lab, and executing the solution (the only part that runs a kernel)
    check    ``make check``: everything generated is in sync with its source
    figures  the run's figures quoted in the prose, the decks and the guide
    slides   slides/NN_topic.md -> offline HTML decks

The names below load their module on first use, so ``sweatlab.course.layout`` (standard library
only) serves ``sweatlab doctor`` on an install where nbformat or jupytext is broken.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "build": ("build_labs", "refresh_quotes", "dumps", "execute_solution", "make_lab", "select_sources", "stub_source",
              "write_if_changed"),
    "check": ("check_course", "check_lab", "check_solution_pair"),
    "layout": ("BEGIN", "CHECK_OUTPUT_TAG", "END", "KEPT_CELL_METADATA", "KERNEL_NAME", "KERNEL_SPEC", "LAB_NAME_RE",
               "ROLES", "SOLUTION_TAG", "Course", "CourseError", "LabNameError", "MarkerError", "find_root", "lab_names",
               "resolve_lab", "sweat_of", "tags_of"),
    "source": ("load_source", "solution_regions"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'sweatlab.course' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sweatlab.course.{module}"), name)
