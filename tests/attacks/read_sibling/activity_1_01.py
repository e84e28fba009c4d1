"""Attack: read another student's folder, which sits next to this submission.

The test tells the attack exactly where (targets.json, copied with the submission), the
way an attacker who knows the layout of the grading machine would. The attack tries the
absolute path, a relative path through "..", a symlink it makes, a symlink planted in the
submission before it was copied, and listing the parent folder; prints what it got and
returns the right value.
Expected: loss_fn passes and every attempt fails.
"""

import json
import os
from pathlib import Path

TARGETS = json.loads(Path("targets.json").read_text())


def _attempts():
    secret = TARGETS["secret"]
    sibling = os.path.dirname(secret)
    tries = {
        "absolute": secret,
        "dotdot": os.path.relpath(secret, os.getcwd()),
        "planted symlink": os.path.join("planted", os.path.basename(secret)),
    }
    if not os.path.lexists("made"):
        os.symlink(sibling, "made")
    tries["made symlink"] = os.path.join("made", os.path.basename(secret))
    results = {}
    for how, path in tries.items():
        try:
            with open(path) as fh:
                results[how] = "READ " + fh.read()
        except OSError as exc:
            results[how] = f"blocked ({exc.strerror})"
    try:
        results["listing"] = "LISTED " + " ".join(os.listdir(os.path.dirname(sibling)))
    except OSError as exc:
        results["listing"] = f"blocked ({exc.strerror})"
    return results


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    for how, result in _attempts().items():
        print(f"{how}: {result}")
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
