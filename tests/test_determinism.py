"""The same submission graded twice on the same machine with the same seed gives the same
grade, bit for bit: the measured value of a stochastic check and every other field but the
clocks (tests.helpers.VOLATILE).

5.01's standard tier is the cheapest grading whose measured value is a continuous number:
its training check fits the book's model for an epoch and measures the training MSE (2.01's
training accuracy, cheaper still, is 1.0 on nearly every seed: equal values there would
prove little). A third grading with another seed must measure another value, or the seed
would not be what decides it.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import REFERENCE, dlgrade, stable

NUMBER = "5.01"
CHECK = "5.01/one_epoch_lowers_the_loss"
SEED = 20260


def graded(tmp_path, seed: int, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    run = dlgrade(
        "check", REFERENCE, "--activity", NUMBER, "--tier", "standard",
        "--seed", str(seed), "--grade-json", out,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stdout + run.stderr
    return json.loads(out.read_text())


def measured(grade: dict) -> dict:
    return {c["id"]: c["measured"] for c in grade["checks"] if c.get("measured")}


@pytest.mark.slow
def test_the_same_seed_gives_the_same_grade_bit_for_bit(tmp_path):
    first, second = graded(tmp_path, SEED, "first"), graded(tmp_path, SEED, "second")
    values = measured(first)
    assert CHECK in values, f"{CHECK} measured nothing: {first['checks']}"
    assert values.keys() == measured(second).keys()
    for check_id, value in values.items():
        # repr: the shortest text that reads back as the same double
        assert repr(value["value"]) == repr(measured(second)[check_id]["value"]), check_id
    assert stable(first) == stable(second)

    other = measured(graded(tmp_path, SEED + 1, "other"))
    assert repr(other[CHECK]["value"]) != repr(values[CHECK]["value"]), (
        f"{CHECK} measured {values[CHECK]['value']!r} under seeds {SEED} and {SEED + 1}: "
        "the session seed does not reach the check's randomness"
    )
