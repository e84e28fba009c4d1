"""Attack: loss_fn calls os._exit(0): the worker process ends at once, \"successfully\".

Expected: crash with reason worker_died ("exited with code 0"); the next check runs.
"""

import os


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    os._exit(0)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
