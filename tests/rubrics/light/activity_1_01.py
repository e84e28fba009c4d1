"""A light rubric for testing the CLI: Activity 1.01's contract, no TensorFlow anywhere."""

import dlgrade
from dlgrade import expect

ACTIVITY = "1.01"


@dlgrade.check(points=2, feedback="loss_fn must return |a x² + b x + c|.")
def test_loss_fn_at_zero(student):
    """loss_fn(0) is 25."""
    expect.close(expect.scalar(student.loss_fn(0.0), "loss_fn(0.0)"), 25.0, 1e-6, "loss_fn(0.0)")


@dlgrade.check(points=1, feedback="solve(start=s) must start at s.")
def test_start_is_honoured(student):
    """solve(start=10, iterations=10) returns 9.9."""
    x = expect.scalar(student.solve(start=10.0, iterations=10), "solve(start=10.0)")
    expect.close(x, 9.9, 0.01, "solve(start=10.0)")


@dlgrade.check(points=1, tier="standard", feedback="(standard tier) solve must reach 5.")
def test_solve_reaches_five(student):
    """solve() returns about 5."""
    expect.close(expect.scalar(student.solve(), "solve()"), 5.0, 0.01, "solve()")
