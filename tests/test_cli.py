"""`dlgrade new` and `dlgrade check`: output, exit codes, grade JSON, JUnit XML."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from dlgrade.reports import json_report
from tests.helpers import LIGHT, SUBMISSIONS, dlgrade

BUGGY = Path(__file__).parent / "rubrics" / "buggy"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A TensorFlow-free submission that passes the light rubric's quick checks."""
    folder = tmp_path / "good"
    folder.mkdir()
    (folder / "activity_1_01.py").write_text(
        (SUBMISSIONS / "broken" / "wrong_type" / "activity_1_01.py")
        .read_text()
        .replace('return f"{abs(a * x**2 + b * x + c)}"', "return abs(a * x**2 + b * x + c)")
    )
    return folder


def test_check_passes_prints_marks_points_and_total_and_exits_0(good):
    run = dlgrade("check", good, "--checks", LIGHT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Activity 1.01" in run.stdout
    assert "✓ loss_fn(0) is 25  2/2" in run.stdout
    assert "Total: 3/3 (100.0%)" in run.stdout
    assert "seed 20211" in run.stdout and "tier quick" in run.stdout


def test_a_failed_check_exits_1_with_feedback(tmp_path):
    run = dlgrade("check", SUBMISSIONS / "broken" / "wrong_type", "--checks", LIGHT)
    assert run.returncode == 1
    assert "✗ loss_fn(0) is 25  0/2  [fail]" in run.stdout
    assert "returned a str" in run.stdout and "What to fix: loss_fn must return" in run.stdout
    assert "Total: 1/3 (33.3%)" in run.stdout


def test_min_score_relaxes_the_exit_code(tmp_path):
    folder = SUBMISSIONS / "broken" / "wrong_type"
    assert dlgrade("check", folder, "--checks", LIGHT, "--min-score", "30").returncode == 0
    assert dlgrade("check", folder, "--checks", LIGHT, "--min-score", "40").returncode == 1


def test_standard_tier_adds_the_standard_checks(good):
    run = dlgrade("check", good, "--checks", LIGHT, "--tier", "standard")
    assert "solve() returns about 5" in run.stdout
    assert run.returncode == 1  # the fake solve does not reach 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "no/such/folder"], "does not exist"),
        (["check", ".", "--activity", "9.99"], "unknown activity 9.99"),
        (["check", "."], "holds no activity_*.py or activity_*.ipynb file"),
        (["check", ".", "--tier", "huge"], "invalid choice"),
        ([], "usage"),
    ],
)
def test_usage_errors_exit_2_with_a_message(tmp_path, args, message):
    run = dlgrade(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert message in run.stdout + run.stderr


def test_gpus_that_are_not_here_are_a_usage_error_before_anything_runs(good, tmp_path):
    run = dlgrade("check", good, "--checks", LIGHT, "--gpus", "0")
    assert run.returncode == 2
    assert "--gpus 0: no GPU is visible on this machine" in run.stderr
    assert "Total" not in run.stdout
    run = dlgrade("grade", good.parent, "--executor", "dask", "--gpus", "1", cwd=tmp_path)
    assert run.returncode == 2
    assert "with --executor dask each worker uses the GPUs it was started with" in run.stderr
    run = dlgrade("check", good, "--checks", LIGHT, "--gpus", "none")
    assert run.returncode == 0 and "device: CPU (--gpus none)" in run.stdout


def test_a_rubric_bug_exits_3_and_says_it_is_ours(good):
    run = dlgrade("check", good, "--checks", BUGGY)
    assert run.returncode == 3
    assert "INTERNAL ERROR in the rubric" in run.stdout
    assert "KeyError: 'missing'" in run.stdout


def test_a_malformed_rubric_exits_3_naming_the_file(good, tmp_path):
    rubric = tmp_path / "checks" / "activity_1_01.py"
    rubric.parent.mkdir()
    rubric.write_text('ACTIVITY = "1.01"\n\ndef test_undeclared(student):\n    pass\n')
    run = dlgrade("check", good, "--checks", rubric.parent)
    assert run.returncode == 3
    assert (
        f"{rubric}: test_undeclared is not declared with @dlgrade.check" in run.stdout + run.stderr
    )


def test_grade_json_and_junit_xml_are_written_and_valid(good, tmp_path):
    out, junit = tmp_path / "grade.json", tmp_path / "report.xml"
    run = dlgrade(
        "check", good, "--checks", LIGHT, "--grade-json", out, "--junit-xml", junit, "--seed", "5"
    )
    assert run.returncode == 0, run.stdout
    grade = json.loads(out.read_text())
    jsonschema.validate(grade, json_report.schema())
    assert (grade["score"], grade["max_score"], grade["seed"]) == (3, 3, 5)
    assert {c["id"] for c in grade["checks"]} == {"1.01/loss_fn_at_zero", "1.01/start_is_honoured"}
    suite = ET.parse(junit).getroot()
    assert sum(int(s.get("tests")) for s in suite.iter("testsuite")) == 2


def test_new_writes_nine_skeletons_and_keeps_existing_work(tmp_path):
    target = tmp_path / "work"
    target.mkdir()
    (target / "activity_1_01.py").write_text("# mine\n")
    run = dlgrade("new", target)
    assert run.returncode == 0
    assert (target / "activity_1_01.py").read_text() == "# mine\n"
    assert len(list(target.glob("activity_*.py"))) == 9
    assert "kept your existing activity_1_01.py" in run.stdout
    assert dlgrade("new", target, "--force").returncode == 0
    assert "is not implemented yet" in (target / "activity_1_01.py").read_text()
