"""Attack: read the hidden rubrics and the reference solutions.

The repository is found through dlgrade.__file__ (the worker imports dlgrade, so it can
always find it); the attack reads checks/, reference/, the mutants under tests/ and git's
objects, prints how much it got, and returns the right value.
Expected: loss_fn passes and nothing was read: "loot: 0 files".
"""

from pathlib import Path

import dlgrade

REPOSITORY = Path(dlgrade.__file__).resolve().parent.parent


def _loot():
    found = {}
    for pattern in ("checks/*.py", "reference/*.py", "tests/mutants/*", ".git/objects/*/*"):
        try:
            for path in sorted(REPOSITORY.glob(pattern))[:50]:
                try:
                    found[str(path)] = path.read_bytes()[:80]
                except OSError:
                    pass
        except OSError:
            pass
    return found


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    loot = _loot()
    print(f"loot: {len(loot)} files")
    for path, head in list(loot.items())[:5]:
        print(path, head)
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
