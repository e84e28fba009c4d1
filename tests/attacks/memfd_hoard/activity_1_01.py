"""Attack: hide memory from the limit in memfds that are never mapped.

RLIMIT_AS counts mappings, not files in RAM: 6 memfds of 512 MiB each (3 GiB, under the
per-file limit), written in 64 MiB chunks and kept open, are not in any address space.
Expected: under --memory-limit 2 the trusted side's memory sampler counts them and stops
the worker (crash, memory_limit, saying how much it held).
"""

import os

MiB = 2**20
_held: list[int] = []


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    chunk = b"\1" * (64 * MiB)
    while len(_held) < 6:
        fd = os.memfd_create(f"hoard{len(_held)}")
        written = 0
        while written < 512 * MiB:
            written += os.write(fd, chunk)
        _held.append(fd)
    del chunk
    print(f"memfd: holding {len(_held) * 512} MiB in files no mapping counts")
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
