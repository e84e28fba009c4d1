"""Attack: loss_fn sends SIGKILL to its parent process, hoping it is the grader.

In the jail the worker is PID 1 of its own namespace: its parent is outside and
getppid() is 0, so the kill reaches nothing outside the worker's own process group
(which, as PID 1, ignores it). Without the jail the parent *is* the grader: see
docs/security.md. loss_fn then returns the right value.
Expected (jail): loss_fn passes, the grader is untouched.
"""

import os
import signal


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError as exc:
        print(f"kill failed: {exc}")
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
