"""A rubric is a pytest module; a malformed one fails at collection, naming file and problem."""

import json

import jsonschema
import pytest

from dlgrade import RubricError, check
from dlgrade.reports import json_report
from tests.helpers import SUBMISSIONS

FAST = ("--no-preload", "--call-timeout", "5")


@pytest.fixture
def rubric_dir(runner):
    folder = runner.mkdir("checks")
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


def test_a_bad_declaration_is_a_collection_error_naming_the_rubric(runner, rubric_dir):
    path = write(
        rubric_dir,
        'import dlgrade\nACTIVITY = "1.01"\n\n'
        '@dlgrade.check(points=-1, feedback="x")\ndef test_x(student):\n    pass\n',
    )
    result = runner.runpytest_inprocess(str(path), "--submission", str(SUBMISSIONS))
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
    runner, rubric_dir, body, name, message
):
    body += (
        "\nimport dlgrade\n\n"
        "@dlgrade.check(points=1, feedback='f')\ndef test_ok(student):\n    pass\n"
    )
    path = write(rubric_dir, body, name)
    result = runner.runpytest_inprocess(str(path), "--submission", str(SUBMISSIONS))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "malformed rubric" in result.stderr.str()
    assert f"{path}" in result.stderr.str() and message in result.stderr.str()


def test_rubric_checks_need_a_submission(runner, rubric_dir):
    path = write(
        rubric_dir,
        'import dlgrade\nACTIVITY = "1.01"\n\n'
        '@dlgrade.check(points=1, feedback="f")\ndef test_x(student):\n    pass\n',
    )
    result = runner.runpytest_inprocess(str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pass --submission DIR" in result.stderr.str()


def test_the_plugin_is_inert_in_sessions_without_rubric_checks(runner):
    runner.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = runner.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    assert "dlgrade ·" not in result.stdout.str() and "Total:" not in result.stdout.str()


def test_plain_pytest_grades_like_dlgrade_check(runner, rubric_dir, broken):
    """`pytest checks/activity_1_01.py --submission DIR` prints the grade and fails the run."""
    path = write(
        rubric_dir,
        (SUBMISSIONS.parent / "rubrics" / "light" / "activity_1_01.py").read_text(),
    )
    out = runner.path / "grade.json"
    result = runner.runpytest_inprocess(
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
    runner, rubric_dir, broken, monkeypatch, tmp_path
):
    monkeypatch.setenv("DLGRADE_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("DLGRADE_CACHE_DIR", str(tmp_path / "cache"))
    path = write(
        rubric_dir,
        "import dlgrade\nfrom dlgrade import data\nACTIVITY = '1.01'\n\n"
        "@dlgrade.check(points=1, feedback='f')\ndef test_needs_glove(student):\n"
        "    data.path('glove', download=False)\n",
    )
    out = runner.path / "grade.json"
    runner.runpytest_inprocess(
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


# -- hidden checks live in activity_X_YY_hidden.py ---------------------------------------

PUBLIC_WITH_FIXTURE = """
import pytest

import dlgrade

ACTIVITY = "1.01"


@pytest.fixture(scope="module")
def known_answer():
    return 42


@dlgrade.check(points=1, feedback="f")
def test_public(known_answer):
    \"\"\"A public check.\"\"\"
    assert known_answer == 42
"""

HIDDEN_IMPORTING_THE_FIXTURE = """
import sys

from activity_1_01 import known_answer as known_answer

import dlgrade

ACTIVITY = "1.01"


@dlgrade.check(points=2, visibility="hidden", feedback="f")
def test_hidden(known_answer, request):
    \"\"\"A hidden check on the public rubric's fixture.\"\"\"
    assert known_answer == 42
    # the module it imported is the very one pytest collected (when it collected it)
    public = [item for item in request.session.items if item.name == "test_public"]
    assert all(item.module is sys.modules["activity_1_01"] for item in public)
"""


def _check(name: str, visibility: str) -> str:
    return (
        f"\n@dlgrade.check(points=1, visibility={visibility!r}, feedback='f')\n"
        f"def test_{name}():\n    pass\n"
    )


def test_a_hidden_check_in_a_public_rubric_fails_collection_naming_file_and_fix(
    runner, rubric_dir
):
    path = write(
        rubric_dir,
        'import dlgrade\nACTIVITY = "1.01"\n'
        + _check("open", "public")
        + _check("secret", "hidden"),
    )
    result = runner.runpytest_inprocess(str(path), "--submission", str(SUBMISSIONS))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "malformed rubric" in result.stderr.str()
    assert (
        f"{path}: test_secret is a hidden check; move it to activity_1_01_hidden.py"
        in result.stderr.str()
    )
    assert "test_open" not in result.stderr.str()


def test_a_public_check_in_a_hidden_rubric_fails_collection(runner, rubric_dir):
    path = write(
        rubric_dir,
        'import dlgrade\nACTIVITY = "1.01"\n'
        + _check("secret", "hidden")
        + _check("open", "public"),
        name="activity_1_01_hidden.py",
    )
    result = runner.runpytest_inprocess(str(path), "--submission", str(SUBMISSIONS))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{path}: test_open is a public check" in result.stderr.str()
    assert 'holds only visibility="hidden" checks' in result.stderr.str()
    assert "test_secret" not in result.stderr.str()


@pytest.mark.parametrize(
    "order",
    [("hidden",), ("public", "hidden"), ("hidden", "public")],
    ids=["hidden-alone", "public-first", "hidden-first"],
)
def test_a_hidden_rubric_uses_its_public_siblings_fixture(runner, rubric_dir, broken, order):
    files = {
        "public": write(rubric_dir, PUBLIC_WITH_FIXTURE),
        "hidden": write(rubric_dir, HIDDEN_IMPORTING_THE_FIXTURE, "activity_1_01_hidden.py"),
    }
    out = runner.path / "grade.json"
    result = runner.runpytest_inprocess(
        *(str(files[name]) for name in order),
        "--submission",
        str(broken("broken/wrong_type")),
        "--grade-json",
        str(out),
        *FAST,
    )
    result.assert_outcomes(passed=len(order))
    checks = {c["id"]: c["visibility"] for c in json.loads(out.read_text())["checks"]}
    assert checks == {f"1.01/{name}": name for name in order}  # test_hidden is the hidden one


def test_a_hidden_rubric_uses_its_public_siblings_fixture_under_xdist(runner, rubric_dir, broken):
    """As in a class run (`dlgrade grade --jobs 2`), where xdist workers import the rubrics."""
    from dlgrade.classrun.roster import Roster, Student

    write(rubric_dir, PUBLIC_WITH_FIXTURE)
    write(rubric_dir, HIDDEN_IMPORTING_THE_FIXTURE, "activity_1_01_hidden.py")
    folder = str(broken("broken/wrong_type"))
    roster = runner.path / "roster.json"
    Roster(
        out=str(runner.path / "out"),
        run="test",
        tier="quick",
        seed=1,
        rubric_version="test",
        activities=("1.01",),
        students=(Student("ann", folder, "k1"), Student("bea", folder, "k2")),
    ).write(roster)
    result = runner.runpytest_subprocess(
        str(rubric_dir / "activity_1_01_hidden.py"),
        str(rubric_dir / "activity_1_01.py"),
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "-p",
        "dlgrade.classrun.plugin",
        "--class-roster",
        str(roster),
        *FAST,
    )
    result.assert_outcomes(passed=4)


def test_one_submission_is_not_split_between_xdist_workers(runner, rubric_dir, broken):
    from dlgrade.plugin import XDIST_SINGLE_SUBMISSION

    path = write(rubric_dir, PUBLIC_WITH_FIXTURE)
    folder = str(broken("broken/wrong_type"))
    result = runner.runpytest_inprocess(str(path), "--submission", folder, "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert XDIST_SINGLE_SUBMISSION in result.stderr.str()
