"""Public checks of every lab: ``check = LabChecks("01_matmul"); check("ijk")`` in a notebook.

The tests of lab ``NN_topic`` live in ``sweatlab/checks/labNN_topic.py``; the grader runs the
same tests against a submission (see :mod:`sweatlab.checks.core` for the form of a test).
"""

from .core import (CheckFailure, EncodeError, InProcessRunner, LabChecks, LearnerError, RandomArray, Runner, Tester,
                   TestResult, TestSpec, decode, encode, format_report, hidden_test, load_lab_tests,
                   public_test, run_exercise, run_test)

__all__ = ["CheckFailure", "EncodeError", "InProcessRunner", "LabChecks", "LearnerError", "RandomArray", "Runner", "Tester",
           "TestResult", "TestSpec", "decode", "encode", "format_report", "hidden_test", "load_lab_tests",
           "public_test", "run_exercise", "run_test"]
