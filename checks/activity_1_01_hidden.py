"""Hidden checks for Activity 1.01 — other quadratics than the book's.

Hidden checks live in their own file so that the student kit (``dlgrade kit``) can leave
them out whole. The reference solves each (x − k)² below to within 1e-4 of k in 2,000 Adam
steps at 0.05; a ``solve()`` that ignores ``coefficients`` or hard-codes 5 misses by ≥ 2.
"""

import dlgrade
from dlgrade import expect

ACTIVITY = "1.01"
PRELOAD = ("keras",)

#: (k, start) — solve (x - k)² from a start the student has not seen
OTHER_SQUARES = [(-3.0, 0.0), (7.0, 1.0), (2.5, -2.0)]


@dlgrade.check(
    points=3,
    visibility="hidden",
    timeout=180,
    feedback="solve() must minimise the quadratic it is given through `coefficients` "
    "(and start where `start` says); do not hard-code the book's answer.",
)
def test_other_perfect_squares(student):
    """solve() finds k for other quadratics (x − k)²."""
    for k, start in OTHER_SQUARES:
        coefficients = (1.0, -2.0 * k, k * k)
        what = f"solve({coefficients}, learning_rate=0.05, iterations=2000, start={start})"
        x = expect.scalar(
            what, student.solve(coefficients, learning_rate=0.05, iterations=2000, start=start)
        )
        expect.close(what, x, k, 0.01)
