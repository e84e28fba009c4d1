"""Attack: return a numpy array of Python objects (which unpickling would run as code).

Expected: object arrays never cross as data; it stays in the worker as a handle, and the
check fails: "returned a numpy.ndarray; it must return a number".
"""

import numpy as np


class Payload:
    def __reduce__(self):
        return (print, ("unpickled on the grader's side!",))


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return np.array([abs(a * x**2 + b * x + c), Payload()], dtype=object)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
