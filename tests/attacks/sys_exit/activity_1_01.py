"""Attack: loss_fn calls sys.exit(0) to end the worker \"successfully\".

Expected: SystemExit is caught; the check errors with reason exit; the worker lives on.
"""

import sys


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    sys.exit(0)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
