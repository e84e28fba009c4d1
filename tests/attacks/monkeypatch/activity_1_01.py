"""Attack: at import, patch numpy, builtins, keras and dlgrade to make any answer pass.

abs() returns 0, math's and numpy's comparisons always agree, a fake `keras` module is
installed, and dlgrade's own expect/fail helpers are replaced. Its loss_fn is wrong (it
forgets abs()).
Expected: the patches only change the worker; the grader fails loss_fn.
"""

import builtins
import math
import sys
import types

import numpy as np

import dlgrade
import dlgrade.expect
import dlgrade.rubric

builtins.abs = lambda value: 0.0
math.isclose = lambda *a, **k: True
math.isfinite = lambda value: True
np.isclose = lambda *a, **k: True
np.allclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
keras = sys.modules["keras"] = types.ModuleType("keras")  # a fake that seeds nothing
keras.utils = types.SimpleNamespace(set_random_seed=lambda seed: None)
dlgrade.fail = dlgrade.rubric.fail = lambda message: None
dlgrade.expect.close = lambda *a, **k: None
dlgrade.expect.scalar = lambda what, value: 0.0


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return a * x**2 + b * x + c  # forgets abs(): wrong where the quadratic is negative


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
