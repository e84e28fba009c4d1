"""Attack: a memory bomb in numpy: 256 MiB arrays, written to and kept, forever.

Expected: numpy raises MemoryError at the address-space limit; reason memory_limit.
"""

import numpy as np


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    hoard = []
    while True:
        hoard.append(np.ones(2**25))  # 32 Mi float64 = 256 MiB, touched


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
