"""The number a stochastic check compared with its threshold reaches the grade (issue 28):
``dlgrade.measured(what, value, threshold)`` in the rubric, ``measured`` on the check in the
grade JSON, a ``measured:`` line in the terminal and the feedback — for public checks only
(a hidden check's numbers would tell about its hidden inputs)."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlgrade import rubric
from dlgrade.reports.feedback import student_view
from dlgrade.rubric import CheckResult, Measured, measured, take_measured
from tests.helpers import REPO, dlgrade

SCHEMA = json.loads((REPO / "dlgrade" / "schema" / "grade.schema.json").read_text())


def result(**changes) -> CheckResult:
    base = dict(
        id="10.01/fit", activity="10.01", title="fit", tier="quick", visibility="public",
        points=1.0, max_points=1.0, outcome="pass", reason="", feedback="f", duration_s=0.1,
        stdout="",
    )  # fmt: skip
    return CheckResult(**(base | changes))


def test_measured_records_the_last_number_and_take_forgets_them():
    take_measured()
    measured("accuracy", 0.5, 0.9)
    measured("accuracy", 0.962, 0.95)
    got = take_measured()
    assert got == Measured("accuracy", 0.962, 0.95, ">=")
    assert got.passes and got.text() == "accuracy 0.962 ≥ 0.95"
    assert take_measured() is None
    measured("test RMSE", 12.5, 10.0, at_most=True)
    got = take_measured()
    assert not got.passes and got.text() == "test RMSE 12.5 > 10"


@given(st.one_of(st.none(), st.text(), st.booleans(), st.floats(), st.integers(), st.lists(st.floats())))
def test_measured_never_raises_and_keeps_only_finite_numbers(value):
    take_measured()
    measured("x", value, 1.0)
    got = take_measured()
    if got is not None:
        assert not isinstance(value, bool) and math.isfinite(got.value)


def test_a_result_without_a_measurement_keeps_its_json_shape_and_one_with_round_trips():
    plain = result()
    assert "measured" not in plain.to_dict()
    with_value = result(measured=Measured("accuracy", 0.962, 0.95))
    data = with_value.to_dict(title=True)
    assert data["measured"] == {"what": "accuracy", "value": 0.962, "threshold": 0.95, "op": ">="}
    assert CheckResult.from_dict(data) == with_value
    entry = SCHEMA["properties"]["checks"]["items"]
    jsonschema.validate(with_value.to_dict(), entry)
    # a record read back with a damaged measurement keeps the check, drops the number
    data["measured"] = {"what": "x", "value": "NaN?", "threshold": 1, "op": ">="}
    assert CheckResult.from_dict(data).measured is None


def test_a_hidden_checks_number_never_reaches_the_student_view():
    public = student_view(result(measured=Measured("accuracy", 0.97, 0.95)))
    hidden = student_view(result(visibility="hidden", measured=Measured("accuracy", 0.97, 0.95)))
    assert public.measured == "accuracy 0.97 ≥ 0.95" and hidden.measured == ""


RUBRIC = '''"""Toy activity 10.01 whose checks measure."""

import dlgrade

ACTIVITY = dlgrade.activity("10.01", "Toy")


@dlgrade.check(points=1, feedback="fit() must reach 0.9.")
def test_fit(student):
    """fit() reaches 0.9."""
    value = float(student.fit())
    dlgrade.measured("fit score", value, 0.9)
    if value < 0.9:
        dlgrade.fail(f"fit() reached {value}; expected at least 0.9")


@dlgrade.check(points=1, feedback="loss() must stay under 0.5.")
def test_loss(student):
    """loss() stays under 0.5."""
    value = float(student.loss())
    dlgrade.measured("loss", value, 0.5, at_most=True)
    if value > 0.5:
        dlgrade.fail(f"loss() is {value}; expected at most 0.5")
'''

HIDDEN = '''"""Hidden checks of 10.01."""

import dlgrade

ACTIVITY = "10.01"


@dlgrade.check(points=1, visibility="hidden", feedback="hidden.")
def test_hidden_fit(student):
    """fit() on hidden inputs."""
    value = float(student.fit())
    dlgrade.measured("hidden fit score", value, 0.5)
'''


@pytest.mark.slow
def test_a_graded_check_carries_its_number_in_the_grade_json_and_the_terminal(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "activity_10_01.py").write_text(RUBRIC)
    (checks / "activity_10_01_hidden.py").write_text(HIDDEN)
    work = tmp_path / "work"
    work.mkdir()
    (work / "activity_10_01.py").write_text("def fit():\n    return 0.93\n\n\ndef loss():\n    return 0.7\n")
    out = tmp_path / "grade.json"
    run = dlgrade("check", work, "--checks", checks, "--grade-json", out)
    assert run.returncode == 1, run.stdout + run.stderr  # loss() fails
    grade = json.loads(out.read_text())
    jsonschema.validate(grade, SCHEMA)
    by_id = {c["id"]: c for c in grade["checks"]}
    assert by_id["10.01/fit"]["measured"] == {
        "what": "fit score", "value": 0.93, "threshold": 0.9, "op": ">="
    }  # fmt: skip
    assert by_id["10.01/loss"]["outcome"] == "fail"
    assert by_id["10.01/loss"]["measured"]["op"] == "<="
    assert "measured" not in by_id["10.01/hidden_fit"]
    assert "measured: fit score 0.93 ≥ 0.9" in run.stdout
    assert "measured: loss 0.7 > 0.5" in run.stdout
    assert "hidden fit score" not in run.stdout


def test_the_rubrics_measure_their_stochastic_thresholds():
    """Every packaged threshold check that says so names its number (docs/writing-checks.md)."""
    calls = sum(p.read_text().count("dlgrade.measured(") for p in (REPO / "checks").glob("*.py"))
    assert calls >= 8, calls
    assert rubric.measured is not None
