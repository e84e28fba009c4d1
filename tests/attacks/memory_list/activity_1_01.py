"""Attack: a memory bomb in pure Python: a list that grows by 1 MiB blocks forever.

Expected: MemoryError at the address-space limit; the check fails with reason
memory_limit ("memory limit N GiB exceeded"), not a machine that swaps or hangs.
"""


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    hoard = []
    while True:
        hoard.append(bytearray(2**20))


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
