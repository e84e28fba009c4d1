"""Attack: at import, try to reach the rubric and the grader and rig the grade.

It imports the rubric module, reads every file under checks/ it can find, patches pytest,
the plugin's classifier and dlgrade.fail, and writes a forged grade file next to itself.
Its loss_fn is wrong (it forgets abs), so an honest grader gives the loss_fn check 0.
"""

import json
import os
from pathlib import Path

LOOT = []

try:
    import dlgrade

    repo = Path(dlgrade.__file__).resolve().parent.parent
    for rubric in (repo / "checks").glob("*.py"):
        LOOT.append(rubric.read_text()[:100])
    import dlgrade.plugin
    import dlgrade.rubric

    dlgrade.plugin.classify = lambda excinfo, spec: ("pass", "", "")
    dlgrade.rubric.fail = lambda message: None
    dlgrade.fail = lambda message: None
except Exception as exc:  # noqa: BLE001
    LOOT.append(f"blocked: {exc}")

try:
    import pytest

    pytest.fail = lambda *a, **k: None
    import _pytest.runner

    _pytest.runner.call_and_report = lambda *a, **k: None
except Exception as exc:  # noqa: BLE001
    LOOT.append(f"blocked: {exc}")

try:
    import checks.activity_1_01  # noqa: F401 - the rubric as a module, if it is on sys.path
except Exception as exc:  # noqa: BLE001
    LOOT.append(f"blocked: {exc}")

Path("grade.json").write_text(json.dumps({"score": 100, "max_score": 100}))
for name in ("DLGRADE_GRADE_JSON", "GRADE_JSON"):
    if os.environ.get(name):
        Path(os.environ[name]).write_text(json.dumps({"score": 100}))


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return a * x**2 + b * x + c  # forgets abs(): wrong for negative values


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    print(f"attack loot: {len(LOOT)} items")
    return 5.0
