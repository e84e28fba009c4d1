"""A light rubric for testing the CLI: Activity 1.01's contract, no TensorFlow anywhere."""

import dlgrade
from dlgrade import expect

ACTIVITY = "1.01"


@dlgrade.check(points=2, feedback="loss_fn must return |a x² + b x + c|.")
def test_loss_fn_at_zero(student):
    """loss_fn(0) is 25."""
    expect.close("loss_fn(0.0)", expect.scalar("loss_fn(0.0)", student.loss_fn(0.0)), 25.0, 1e-6)


@dlgrade.check(points=1, feedback="solve(start=s) must start at s.")
def test_start_is_honoured(student):
    """solve(start=10, iterations=10) returns 9.9."""
    x = expect.scalar("solve(start=10.0)", student.solve(start=10.0, iterations=10))
    expect.close("solve(start=10.0)", x, 9.9, 0.01)


@dlgrade.check(points=1, tier="standard", feedback="(standard tier) solve must reach 5.")
def test_solve_reaches_five(student):
    """solve() returns about 5."""
    expect.close("solve()", expect.scalar("solve()", student.solve()), 5.0, 0.01)
