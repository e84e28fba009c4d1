"""Attack: loss_fn stops its own process with SIGSTOP, so the grader waits forever.

Expected: the grader never waits longer than the call's limit. In the jail the worker is
its namespace's PID 1 and SIGSTOP from inside is ignored: loss_fn returns the right value.
Without the jail the stopped worker is killed at the wall-clock limit (timeout).
"""

import os
import signal


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    os.kill(os.getpid(), signal.SIGSTOP)
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
