"""Attack: print 1 GB to stdout (in 1 MiB writes) to fill the grader's memory or disk.

Expected: the output cap stops the worker after 16 MiB; reason output_limit; the check
keeps only the first 16 KiB of what was printed.
"""

import sys


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    line = "x" * (2**20 - 1) + "\n"
    for _ in range(1024):
        sys.stdout.write(line)
    return 0.0


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
