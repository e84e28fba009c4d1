"""Attack: at import, replace built-ins the grader's own worker code relies on.

With isinstance() always true, the worker cannot even encode an answer or an error: it
dies. A naive grader would report its own internal error for the student's doing.
Expected: every check of the module is the student's crash (worker_died), never an
internal error of the grader.
"""

import builtins

builtins.isinstance = lambda obj, cls: True


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
