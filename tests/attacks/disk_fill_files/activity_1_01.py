"""Attack: fill the disk with many files, each under the file-size limit.

Expected: the trusted side sees the worker's folders pass the disk limit and stops it;
reason disk_limit; the next worker starts in a fresh copy of the submission.
"""

import os


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    block = os.urandom(2**20) * 16  # 16 MiB
    os.makedirs("filler", exist_ok=True)
    n = 0
    while True:
        n += 1
        with open(f"filler/{n}.bin", "wb") as fh:
            fh.write(block)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
