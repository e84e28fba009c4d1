"""Rubric for Activity 1.01 — solving x² − 10x + 25 = 0 with a tf.Variable and Adam.

Thresholds come from the reference (reference/activity_1_01.py), which is deterministic:
book defaults → 4.9991989; Adam's first steps move x by almost exactly the learning rate,
so 10 steps at 0.01 from 0 land on 0.0999.

Each argument of solve() has its own check, built so that a mistake with one argument does
not show in another's (measured on the reference and every mutant, ``tests/mutants/1.01-*``):

* learning rate: on (x − 1000)², 10 steps at 0.001 and 0.05 move x 0.01 and 0.5 (Adam),
  19.8 and 651 (SGD), 9.99 and 473 (10,000 steps, iterations ignored): a ratio ≥ 10 passes
  them all; an ignored rate gives 1.
* start: one step at 1e-6 from 10 stays at 10 whatever the optimizer or the iterations
  (9.99 when the rate is ignored); an ignored start gives 0.
* the absolute value: x² − 3x + 1.25 from 0, 100 steps at 0.01: 0.5008 (the root; SGD
  0.5145), the signed quadratic 0.8624 on its way to the vertex; graded against the
  student's own loss_fn, so a loss_fn without abs() costs only its own check.
Plain gradient descent, an ignored argument or a hard-coded answer lands far outside each
band.
"""

import dlgrade
from dlgrade import expect

ACTIVITY = dlgrade.activity("1.01", "Quadratic solved by an optimizer")
PRELOAD = ("keras",)

#: (x − 1000)²: 10,000 steps from 0 do not reach its minimum, so the learning rate shows
#: in how far x moves even where iterations are ignored
FAR_SQUARE = (1.0, -2000.0, 1e6)
LEARNING_RATE_RATIO = 10.0
#: (x − 0.5)(x − 2.5): from 0, |…| descends to the root 0.5; the signed quadratic passes it
#: on its way to the vertex 1.5
TWO_ROOTS = (1.0, -3.0, 1.25)
#: |x² − 3x + 1.25| within this of 0 means |x − 0.5| ≲ 0.025 (Adam at 0.01 oscillates by 0.01)
ROOT_SLACK = 0.05

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
        got = expect.scalar(f"loss_fn({x}, {coefficients})", student.loss_fn(x, coefficients))
        expect.close(f"loss_fn({x}, {coefficients})", got, want, 1e-4 * max(1.0, want))


@dlgrade.check(
    points=3,
    timeout=180,
    feedback="solve() with the book's settings (Adam 0.01, 10,000 iterations from 0) must "
    "return x within 0.01 of 5 as a float. If it times out, wrap one optimisation step in "
    "tf.function (the eager loop takes ~80 s).",
)
def test_solve_with_book_defaults(student):
    """solve() with the book's defaults finds x ≈ 5."""
    x = expect.scalar("solve()", student.solve())
    expect.close("solve()", x, 5.0, 0.01)


@dlgrade.check(
    points=2,
    feedback="solve(iterations=N) must run exactly N Adam steps: 10 steps at learning rate "
    "0.01 from 0 move x by about 0.1 (Adam's step is about the learning rate). Check that "
    "you loop `iterations` times and use tf.keras.optimizers.Adam.",
)
def test_iterations_are_honoured(student):
    """solve(iterations=10) stops after 10 Adam steps (x ≈ 0.1)."""
    x = expect.scalar("solve(iterations=10)", student.solve(iterations=10))
    expect.close("solve(iterations=10)", x, 0.0999, 0.01)


@dlgrade.check(
    points=2,
    feedback="solve(learning_rate=r) must give the optimizer that learning rate "
    "(tf.keras.optimizers.Adam(learning_rate)): 50 times the rate moves x about 50 times as "
    "far in its first steps.",
)
def test_learning_rate_is_honoured(student):
    """solve(learning_rate=0.05) moves x 50× as far in 10 steps as 0.001 does."""
    slow_call = "solve((1, -2000, 1e6), learning_rate=0.001, iterations=10, start=0.0)"
    fast_call = "solve((1, -2000, 1e6), learning_rate=0.05, iterations=10, start=0.0)"
    slow = expect.scalar(slow_call, student.solve(FAR_SQUARE, learning_rate=0.001, iterations=10))
    fast = expect.scalar(fast_call, student.solve(FAR_SQUARE, learning_rate=0.05, iterations=10))
    if not (slow > 0 and fast >= LEARNING_RATE_RATIO * slow):
        dlgrade.fail(
            f"{slow_call} returned {slow:.4g} and {fast_call} returned {fast:.4g}: a learning "
            f"rate 50 times larger should move x at least {LEARNING_RATE_RATIO:g} times as far "
            "(Adam: 0.01 and 0.5)"
        )


def _their_loss(student, x, coefficients) -> float:
    """The student's own loss_fn at x (solve minimises it), or the book's if it fails."""
    a, b, c = coefficients
    try:
        return expect.scalar("loss_fn", student.loss_fn(x, coefficients))
    except (dlgrade.SubmissionError, dlgrade.CheckFailed):
        return abs(a * x**2 + b * x + c)


@dlgrade.check(
    points=2,
    feedback="solve() must minimise loss_fn, the absolute value |a*x**2 + b*x + c|: its "
    "minimum is at a root. Minimising the signed quadratic a*x**2 + b*x + c finds the "
    "vertex instead, which is a root only for a perfect square such as the book's.",
)
def test_solve_minimises_the_absolute_value(student):
    """solve() finds the root 0.5 of x² − 3x + 1.25 from 0, not the vertex 1.5."""
    what = "solve((1.0, -3.0, 1.25), learning_rate=0.01, iterations=100, start=0.0)"
    x = expect.scalar(what, student.solve(TWO_ROOTS, learning_rate=0.01, iterations=100, start=0.0))
    # Graded against the student's own loss_fn (which has its own check): solve's job is to
    # minimise it, so a loss_fn that forgot abs() does not cost this check's points too.
    if _their_loss(student, x, TWO_ROOTS) > _their_loss(student, 0.5, TWO_ROOTS) + ROOT_SLACK:
        dlgrade.fail(
            f"{what} returned {x:.4g}; |x² − 3x + 1.25| is smallest at its root 0.5 (the "
            "signed quadratic at its vertex 1.5)"
        )


@dlgrade.check(
    points=2,
    feedback="solve(start=s) must start the tf.Variable at s, not at 0.",
)
def test_start_is_honoured(student):
    """solve(start=10, learning_rate=1e-6, iterations=1) stays at 10."""
    what = "solve(start=10.0, learning_rate=1e-06, iterations=1)"
    x = expect.scalar(what, student.solve(start=10.0, learning_rate=1e-6, iterations=1))
    expect.close(what, x, 10.0, 0.05)
