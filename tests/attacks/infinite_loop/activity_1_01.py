"""Attack: loss_fn ignores SIGINT and SIGTERM and loops forever in Python.

Expected: the call's wall-clock limit kills the worker (timeout); the next check runs in a
fresh worker.
"""

import signal


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
