"""Attack: answer with a forged array file whose header declares 10 GB.

The worker process is the student's, so the attack can reach the worker's own encoder: it
writes a tiny .npy whose header claims shape (1_250_000_000,) of float64 into the exchange
folder, and makes the encoder send that file's name instead of the real answer.
Expected: the grader reads the header, refuses it before loading (bad_value).
"""

import gc
import io

import numpy as np


def _forge():
    codec = next(o for o in gc.get_objects() if type(o).__name__ == "_WorkerCodec")
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "<f8", "fortran_order": False, "shape": (1_250_000_000,)}
    )
    (codec.exchange_dir / "forged.npy").write_bytes(npy.getvalue() + b"\0" * 64)
    codec._encode_array = lambda array: {"__ndarray__": "forged.npy"}


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    _forge()
    return np.zeros(1)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
