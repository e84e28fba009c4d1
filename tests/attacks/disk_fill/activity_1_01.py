"""Attack: fill the disk with one ever-growing file in the scratch folder.

Expected: the write fails with EFBIG at the file-size limit (RLIMIT_FSIZE); reason
disk_limit; the next worker starts in a fresh copy of the submission.
"""

import os


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    block = os.urandom(2**20) * 16  # 16 MiB
    with open("filler.bin", "wb") as fh:
        while True:
            fh.write(block)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
