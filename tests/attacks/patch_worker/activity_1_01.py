"""Attack: at import, replace the worker's own encoder (the worker runs the student's code).

Every answer then fails inside the worker, which a naive grader would report as its own
internal error (exit 3, "not a fair grade") for the student's doing.
Expected: every check of the module is the student's crash (reason worker_broken).
"""

import dlgrade.sandbox.protocol


def _broken(self, value):
    raise AttributeError("the encoder is gone")


dlgrade.sandbox.protocol.Codec.encode = _broken


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
