"""A rubric is a pytest module; a malformed one fails at collection, naming file and problem."""

import json

import jsonschema
import pytest

from dlgrade import RubricError, check
from dlgrade.reports import json_report
from tests.conftest import SUBMISSIONS

FAST = ("--no-preload", "--call-timeout", "5")


@pytest.fixture
def rubric_dir(pytester: pytest.Pytester):
    folder = pytester.mkdir("checks")
    return folder


def write(folder, body: str, name="activity_1_01.py"):
    (folder / name).write_text(body)
    return folder / name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": 0, "feedback": "x"}, "points must be a positive number"),
        ({"points": True, "feedback": "x"}, "points must be a positive number"),
        ({"points": 1, "feedback": "  "}, "feedback must say what to fix"),
        ({"points": 1, "feedback": "x", "tier": "slow"}, "tier must be one of"),
        ({"points": 1, "feedback": "x", "visibility": "secret"}, "visibility must be one of"),
        ({"points": 1, "feedback": "x", "timeout": -1}, "timeout must be a positive number"),
    ],
)
def test_check_declaration_is_validated_when_the_rubric_is_imported(kwargs, message):
    with pytest.raises(RubricError, match=message):
        check(**kwargs)(lambda: None)


def test_a_bad_declaration_is_a_collection_error_naming_the_rubric(pytester, rubric_dir):
    path = write(
        rubric_dir,
        'import dlgrade\nACTIVITY = "1.01"\n\n'
        '@dlgrade.check(points=-1, feedback="x")\ndef test_x(student):\n    pass\n',
    )
    result = pytester.runpytest_inprocess(str(path), "--submission", str(SUBMISSIONS))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*ERROR collecting*", "*activity_1_01.py:4*", "*@check on test_x: points must be*"]
    )


@pytest.mark.parametrize(
    ("body", "name", "message"),
    [
        ("def test_x(student):\n    pass\n", "activity_1_01.py", "a rubric must set ACTIVITY"),
        ('ACTIVITY = "9.99"\n', "activity_1_01.py", "got '9.99'"),
        ('ACTIVITY = "2.01"\n', "activity_1_01.py", "belongs in activity_2_01.py"),
        ('ACTIVITY = "1.01"\nPRELOAD = "keras"\n', "activity_1_01.py", "PRELOAD must be a tuple"),
        (
            'ACTIVITY = "1.01"\n\ndef test_plain(student):\n    pass\n',
            "activity_1_01.py",
            "test_plain is not declared with @dlgrade.check",
        ),
    ],
)
def test_a_malformed_rubric_fails_collection_with_file_and_problem(
    pytester, rubric_dir, body, name, message
):
    body += (
        "\nimport dlgrade\n\n"
        "@dlgrade.check(points=1, feedback='f')\ndef test_ok(student):\n    pass\n"
    )
    path = write(rubric_dir, body, name)
    result = pytester.runpytest_inprocess(str(path), "--submission", str(SUBMISSIONS))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "malformed rubric" in result.stderr.str()
    assert f"{path}" in result.stderr.str() and message in result.stderr.str()


def test_rubric_checks_need_a_submission(pytester, rubric_dir):
    path = write(
        rubric_dir,
        'import dlgrade\nACTIVITY = "1.01"\n\n'
        '@dlgrade.check(points=1, feedback="f")\ndef test_x(student):\n    pass\n',
    )
    result = pytester.runpytest_inprocess(str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pass --submission DIR" in result.stderr.str()


def test_the_plugin_is_inert_in_sessions_without_rubric_checks(pytester):
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    assert "dlgrade ·" not in result.stdout.str() and "Total:" not in result.stdout.str()


def test_plain_pytest_grades_like_dlgrade_check(pytester, rubric_dir, broken):
    """`pytest checks/activity_1_01.py --submission DIR` prints the grade and fails the run."""
    path = write(
        rubric_dir,
        (SUBMISSIONS.parent / "rubrics" / "light" / "activity_1_01.py").read_text(),
    )
    out = pytester.path / "grade.json"
    result = pytester.runpytest_inprocess(
        str(path),
        "--submission",
        str(broken("broken/wrong_type")),
        "--grade-json",
        str(out),
        "--tier",
        "standard",
        *FAST,
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*dlgrade*", "*✗ loss_fn(0) is 25  0/2  [[]fail[]]*", "Total: 1/4 (25.0%)"]
    )
    grade = json.loads(out.read_text())
    jsonschema.validate(grade, json_report.schema())
    assert grade["tier"] == "standard" and grade["score"] == 1


@pytest.mark.parametrize(
    "mutation",
    [
        lambda g: g["checks"][0].update(outcome="passed"),
        lambda g: g["checks"][0].pop("feedback"),
        lambda g: g.update(tier="fast"),
        lambda g: g["checks"][0].update(points=-1),
        lambda g: g.update(extra=True),
    ],
)
def test_the_schema_rejects_malformed_grades(mutation):
    grade = {
        "submission": "/s",
        "tier": "quick",
        "seed": 1,
        "score": 1,
        "max_score": 1,
        "checks": [
            {
                "id": "1.01/x",
                "activity": "1.01",
                "tier": "quick",
                "visibility": "public",
                "points": 1,
                "max_points": 1,
                "outcome": "pass",
                "reason": "",
                "feedback": "",
                "duration_s": 0.1,
                "stdout": "",
            }
        ],
    }
    jsonschema.validate(grade, json_report.schema())
    mutation(grade)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(grade, json_report.schema())


def test_a_check_whose_dataset_is_missing_says_which_where_and_how_to_fix(
    pytester, rubric_dir, broken, monkeypatch, tmp_path
):
    monkeypatch.setenv("DLGRADE_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("DLGRADE_CACHE_DIR", str(tmp_path / "cache"))
    path = write(
        rubric_dir,
        "import dlgrade\nfrom dlgrade import data\nACTIVITY = '1.01'\n\n"
        "@dlgrade.check(points=1, feedback='f')\ndef test_needs_glove(student):\n"
        "    data.path('glove', download=False)\n",
    )
    out = pytester.path / "grade.json"
    pytester.runpytest_inprocess(
        str(path),
        "--submission",
        str(broken("broken/wrong_type")),
        "--grade-json",
        str(out),
        *FAST,
    )
    result = json.loads(out.read_text())["checks"][0]
    assert (result["outcome"], result["reason"]) == ("error", "data_missing")
    for words in (
        "'glove'",
        str(tmp_path / "mirror" / "glove.6B.100d.w2v.txt"),
        "dlgrade data fetch glove",
    ):
        assert words in result["feedback"]
