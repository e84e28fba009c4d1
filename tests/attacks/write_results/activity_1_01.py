"""Attack: forge grades: write into the results folder, and tamper with the data mirror.

The test tells the attack where the results folder is (targets.json). The attack writes a
forged grade file there, tries to overwrite another student's grade, and to plant a file
in the data mirror (DLGRADE_DATA_DIR); prints what happened and returns the right value.
Expected: loss_fn passes, every write fails, the grade JSON is the grader's own.
"""

import json
import os
from pathlib import Path

TARGETS = json.loads(Path("targets.json").read_text())
FORGED = json.dumps({"score": 100, "max_score": 100})


def _attempts():
    results = {}
    tries = {
        "forged grade": os.path.join(TARGETS["results"], "forged-grade.json"),
        "other grade": os.path.join(TARGETS["results"], "other-student.json"),
        "data mirror": os.path.join(os.environ.get("DLGRADE_DATA_DIR", "/nonexistent"), "x"),
    }
    for how, path in tries.items():
        try:
            with open(path, "w") as fh:
                fh.write(FORGED)
            results[how] = "WROTE"
        except OSError as exc:
            results[how] = f"blocked ({exc.strerror})"
    return results


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    for how, result in _attempts().items():
        print(f"{how}: {result}")
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
