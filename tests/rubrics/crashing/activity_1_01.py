"""A rubric that kills its own grading process for one submission: a harness crash.

Stands for what no rubric should do but a native library on the trusted side might (a
segfault while loading a model). `dlgrade grade` must survive it and still list the student.
"""

import os

import dlgrade
from dlgrade import expect

ACTIVITY = "1.01"
#: a submission holding this file makes the check below kill the grading process
CRASH_MARKER = "CRASH_THE_GRADER"


@dlgrade.check(points=2, feedback="loss_fn must return |a x² + b x + c|.")
def test_loss_fn_at_zero(student):
    """loss_fn(0) is 25."""
    expect.close("loss_fn(0.0)", expect.scalar("loss_fn(0.0)", student.loss_fn(0.0)), 25.0, 1e-6)


@dlgrade.check(points=1, feedback="(none: this check only crashes the grader)")
def test_the_grader_dies_for_one_submission(submission, student):
    """The grading process dies when the submission holds the marker file."""
    if (submission.path / CRASH_MARKER).exists():
        os._exit(70)


@dlgrade.check(points=1, feedback="solve(start=s) must start at s.")
def test_start_is_honoured(student):
    """solve(start=10, iterations=10) returns 9.9."""
    x = expect.scalar("solve(start=10.0)", student.solve(start=10.0, iterations=10))
    expect.close("solve(start=10.0)", x, 9.9, 0.01)
