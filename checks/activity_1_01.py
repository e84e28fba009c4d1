"""Rubric for Activity 1.01 — solving x² − 10x + 25 = 0 with a tf.Variable and Adam.

Thresholds come from the reference (reference/activity_1_01.py), which is deterministic:
book defaults → 4.9991989; Adam's first steps move x by almost exactly the learning rate,
so 10 steps at 0.01 from 0 land on 0.0999 and 1,000 steps at 0.001 on 0.955; x² − 4 from
3 with 1,000 steps at 0.01 lands on 1.9985 (the root; minimising the signed quadratic goes
to its vertex, 0). Plain gradient descent, an ignored argument or a hard-coded answer lands
far outside each band.
"""

import dlgrade
from dlgrade import expect

ACTIVITY = "1.01"
PRELOAD = ("keras",)

#: (x, coefficients) where loss_fn is checked against |a x² + b x + c|
KNOWN_POINTS = [
    (0.0, (1.0, -10.0, 25.0)),  # 25
    (5.0, (1.0, -10.0, 25.0)),  # 0
    (2.0, (1.0, -10.0, 25.0)),  # 9
    (7.5, (1.0, -10.0, 25.0)),  # 6.25
    (0.0, (1.0, 0.0, -4.0)),  # |-4| = 4: only abs() gets the sign right
    (1.5, (2.0, 3.0, -10.0)),  # |4.5 + 4.5 - 10| = 1
]


@dlgrade.check(
    points=2,
    feedback="loss_fn(x, coefficients) must return abs(a*x**2 + b*x + c) for the given "
    "(a, b, c), as a tensor (use tf.abs).",
)
def test_loss_fn_at_known_points(student):
    """loss_fn gives |a·x² + b·x + c| at known points."""
    for x, coefficients in KNOWN_POINTS:
        a, b, c = coefficients
        want = abs(a * x**2 + b * x + c)
        got = expect.scalar(student.loss_fn(x, coefficients), f"loss_fn({x}, {coefficients})")
        expect.close(got, want, 1e-4 * max(1.0, want), f"loss_fn({x}, {coefficients})")


@dlgrade.check(
    points=3,
    timeout=180,
    feedback="solve() with the book's settings (Adam 0.01, 10,000 iterations from 0) must "
    "return x within 0.01 of 5 as a float. If it times out, wrap one optimisation step in "
    "tf.function (the eager loop takes ~80 s).",
)
def test_solve_with_book_defaults(student):
    """solve() with the book's defaults finds x ≈ 5."""
    x = expect.scalar(student.solve(), "solve()")
    expect.close(x, 5.0, 0.01, "solve()")


@dlgrade.check(
    points=2,
    feedback="solve(iterations=N) must run exactly N Adam steps: 10 steps at learning rate "
    "0.01 from 0 move x by about 0.1 (Adam's step is about the learning rate). Check that "
    "you loop `iterations` times and use tf.keras.optimizers.Adam.",
)
def test_iterations_are_honoured(student):
    """solve(iterations=10) stops after 10 Adam steps (x ≈ 0.1)."""
    x = expect.scalar(student.solve(iterations=10), "solve(iterations=10)")
    expect.close(x, 0.0999, 0.01, "solve(iterations=10)")


@dlgrade.check(
    points=2,
    feedback="solve(learning_rate=r) must create Adam with that learning rate: at 0.001 "
    "1,000 steps reach only x ≈ 0.96, at 0.05 they reach 5.",
)
def test_learning_rate_is_honoured(student):
    """solve(learning_rate=...) changes how far 1,000 steps get."""
    slow = expect.scalar(
        student.solve(learning_rate=0.001, iterations=1000),
        "solve(learning_rate=0.001, iterations=1000)",
    )
    expect.close(slow, 0.955, 0.05, "solve(learning_rate=0.001, iterations=1000)")
    fast = expect.scalar(
        student.solve(learning_rate=0.05, iterations=1000),
        "solve(learning_rate=0.05, iterations=1000)",
    )
    expect.close(fast, 5.0, 0.01, "solve(learning_rate=0.05, iterations=1000)")


@dlgrade.check(
    points=2,
    feedback="solve() must minimise loss_fn, the absolute value |a*x**2 + b*x + c|: its "
    "minimum is at a root. Minimising the signed quadratic a*x**2 + b*x + c finds the "
    "vertex instead, which is a root only for a perfect square such as the book's.",
)
def test_solve_minimises_the_absolute_value(student):
    """solve() finds the root x = 2 of x² − 4 from 3, not the vertex x = 0."""
    what = "solve((1.0, 0.0, -4.0), learning_rate=0.01, iterations=1000, start=3.0)"
    x = expect.scalar(
        student.solve((1.0, 0.0, -4.0), learning_rate=0.01, iterations=1000, start=3.0), what
    )
    if abs(x) < 0.1:
        dlgrade.fail(
            f"{what} returned {x:.4g}: the vertex of x² − 4, where the signed quadratic is "
            "smallest; |x² − 4| is smallest at the root 2"
        )
    expect.close(x, 2.0, 0.02, what)


@dlgrade.check(
    points=1,
    feedback="solve(start=s) must start the tf.Variable at s, not at 0.",
)
def test_start_is_honoured(student):
    """solve(start=10, iterations=10) starts at 10 (x ≈ 9.9)."""
    x = expect.scalar(student.solve(start=10.0, iterations=10), "solve(start=10.0, iterations=10)")
    expect.close(x, 9.9, 0.01, "solve(start=10.0, iterations=10)")
