"""Attack: loss_fn spins inside numpy's C code (matrix products), with signals ignored.

C code never returns to the interpreter to run a signal handler, so only SIGKILL stops it.
Expected: timeout, and the next check runs.
"""

import signal

import numpy as np


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    a = np.ones((1500, 1500))
    while True:
        a = np.tanh(a @ a)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
