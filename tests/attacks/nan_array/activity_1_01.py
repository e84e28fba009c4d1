"""Attack: return NaN (in a one-element array), which compares false with everything.

A check written as `assert not (got > want + tol or got < want - tol)` would pass NaN.
Expected: the check fails: "it must return a finite number".
"""

import numpy as np


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    return np.full((1,), np.nan)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
