"""Attack: a fork bomb: every process forks forever.

Expected: fork() fails once the worker's processes reach the process limit; the check
fails with reason process_limit, the worker (and every process it forked) is killed, and
the next check runs in a fresh one.
"""

import os


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    while True:
        os.fork()


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
