"""``dlgrade calibrate`` (dlgrade/calibrate.py): the committed calibration is not stale, the
statistics, the table, the merge, resuming a run, and refusing to run without correct work.

The resume and refusal tests grade a toy activity 10.01 in a repository of its own under
tmp_path (a rubric whose one stochastic check draws a number from the check's seed, a
reference, a variant and a mutant): no TensorFlow is imported by its checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlgrade import calibrate
from tests.helpers import CHECKS, dlgrade

CALIBRATION = CHECKS / calibrate.FILE


# -- the committed calibration -------------------------------------------------------------


def test_the_calibration_file_matches_the_rubrics():
    assert CALIBRATION.is_file(), (
        f"{CALIBRATION} is missing; write it with `dlgrade calibrate --activity 2.01 "
        "--tier standard --seeds 20`"
    )
    calibration = calibrate.read(CALIBRATION)
    assert calibration["activities"], f"{CALIBRATION} calibrates no activity"
    problems = calibrate.stale(calibration, CHECKS)
    assert not problems, "stale calibration entries:\n" + "\n".join(problems)


def test_every_calibrated_stochastic_check_has_its_figures():
    for activity, data in calibrate.read(CALIBRATION)["activities"].items():
        for check_id, entry in data["checks"].items():
            assert check_id.startswith(f"{activity}/")
            assert entry["n"] == entry["passes"] + entry["failures"], check_id
            if entry["stochastic"] and entry["values"]:
                assert entry["op"] in (">=", "<=") and entry["threshold"] is not None, check_id
                assert entry["min"] <= entry["median"] <= entry["max"], check_id
                assert len(entry["values"]) <= entry["runs"], check_id


def copied_rubric(tmp_path: Path) -> tuple[Path, dict]:
    """A copy of checks/ holding 2.01's rubric, and a fresh calibration of it (no grading:
    the entry is written from the rubric as it is)."""
    root = tmp_path / "checks"
    root.mkdir()
    for name in ("activity_2_01.py", "activity_2_01_hidden.py"):
        shutil.copy(CHECKS / name, root / name)
    source = calibrate.rubric_checks(root, "2.01")["2.01/training_reaches_book_accuracy"]
    entry = {
        "calibrated_at": "standard",
        "seeds": list(range(1, 21)),
        "source_sha256": source.sha256,
        "rubric_threshold": source.threshold,
    }
    calibration = calibrate.merge(
        calibrate.empty(), "2.01", {"2.01/training_reaches_book_accuracy": entry}
    )
    assert calibrate.stale(calibration, root) == []
    return root, calibration


def test_a_changed_threshold_makes_the_entry_stale(tmp_path):
    root, calibration = copied_rubric(tmp_path)
    rubric = root / "activity_2_01.py"
    text = rubric.read_text()
    assert text.count("TRAIN_ACCURACY = 0.95") == 1
    rubric.write_text(text.replace("TRAIN_ACCURACY = 0.95", "TRAIN_ACCURACY = 0.9"))
    (problem,) = calibrate.stale(calibration, root)
    assert "2.01/training_reaches_book_accuracy" in problem
    assert "threshold changed from 0.95 to 0.9" in problem
    assert "`dlgrade calibrate --activity 2.01 --tier standard --seeds 20`" in problem


def test_a_changed_check_makes_the_entry_stale_and_another_check_does_not(tmp_path):
    root, calibration = copied_rubric(tmp_path)
    rubric = root / "activity_2_01.py"
    text = rubric.read_text()
    # an edit to another check leaves this entry alone
    other = '"""load_data() returns'
    if other in text:
        rubric.write_text(text.replace(other, '"""Load_data() returns', 1))
        assert calibrate.stale(calibration, root) == []
    call = "student.train(handle, X, y, epochs=30)"
    edited = text.replace(call, call.replace("30", "31"))
    assert edited != text
    rubric.write_text(edited)
    (problem,) = calibrate.stale(calibration, root)
    assert "2.01/training_reaches_book_accuracy: its source (activity_2_01.py) changed" in problem
    assert "dlgrade calibrate --activity 2.01 --tier standard --seeds 20" in problem


def test_a_removed_check_makes_the_entry_stale(tmp_path):
    root, calibration = copied_rubric(tmp_path)
    rubric = root / "activity_2_01.py"
    text = rubric.read_text()
    rubric.write_text(text.replace("def test_training_reaches_book_accuracy", "def helper_x"))
    (problem,) = calibrate.stale(calibration, root)
    assert "no check 2.01/training_reaches_book_accuracy" in problem


def test_the_source_hash_reads_the_checks_and_their_threshold():
    checks = calibrate.rubric_checks(CHECKS, "5.01")
    rmse = checks["5.01/book_training_reaches_test_rmse"]
    assert (rmse.tier, rmse.op, rmse.threshold) == ("full", "<=", 0.06)
    assert checks["5.01/model_architecture"].op is None
    assert len({c.sha256 for c in checks.values()}) == len(checks)


# -- statistics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "n", "bound"),
    [
        (0, 20, 0.1391),  # 1 - 0.05 ** (1 / 20)
        (1, 20, 0.2161),
        (0, 59, 0.0495),  # the fewest runs for a bound under 5 %
        (0, 58, 0.0503),
        (3, 50, 0.1478),  # Beta(4, 47) quantile 0.95
        (10, 20, 0.698),  # Beta(11, 10) quantile 0.95
    ],
)
def test_the_upper_bound_is_the_exact_one_sided_95_percent_bound(failures, n, bound):
    got = calibrate.upper_bound(failures, n)
    assert round(got, 4) == bound
    # the defining property: seeing this few failures at the bound has probability 5 %
    if failures:
        assert abs(calibrate.binomial_cdf(failures, n, got) - 0.05) < 1e-9


def test_the_upper_bound_at_the_edges():
    assert calibrate.upper_bound(0, 0) == 1.0
    assert calibrate.upper_bound(5, 5) == 1.0
    bounds = [calibrate.upper_bound(k, 30) for k in range(31)]
    assert bounds == sorted(bounds) and len(set(bounds)) == 31
    with pytest.raises(ValueError, match="between 0 and n"):
        calibrate.upper_bound(4, 3)


def test_quartiles():
    assert calibrate.quartiles([3.0, 1.0, 2.0, 4.0, 5.0]) == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert calibrate.quartiles([0.5]) == (0.5,) * 5


# -- the table and the merge ---------------------------------------------------------------

ENTRY = {
    "tier": "standard",
    "calibrated_at": "standard",
    "seeds": [1, 2, 3],
    "correct": ["ref", "variant-book"],
    "visibility": "public",
    "stochastic": True,
    "runs": 6,
    "n": 5,
    "passes": 4,
    "failures": 1,
    "not_graded": {"timeout": 1},
    "pass_rate": 0.8,
    "false_fail_upper_95": 0.657408,
    "measured": "best training accuracy",
    "threshold": 0.95,
    "op": ">=",
    "values": [0.94, 0.97, 0.99, 1.0, 1.0],
    "independent_trials": 5,
    "independent_failures": 1,
    "false_fail_upper_95_independent": 0.657408,
    "min": 0.94,
    "q1": 0.97,
    "median": 0.99,
    "q3": 1.0,
    "max": 1.0,
    "margin": -0.01,
    "mutants": {"2.01-relu-output": {"caught": 3, "graded": 3, "not_graded": 0, "catch_rate": 1.0}},
    "source_sha256": "0" * 64,
    "rubric_threshold": 0.95,
    "environment": {"dlgrade": "0.1.0", "tensorflow": "2.21.0", "device": "CPU"},
}


def test_the_table_shows_each_figure():
    fixed = {**ENTRY, "stochastic": False, "n": 3, "passes": 3, "failures": 0, "pass_rate": 1.0}
    fixed["not_graded"] = {}
    calibration = calibrate.merge(
        calibrate.empty(), "2.01", {"2.01/training": ENTRY, "2.01/shapes": fixed}
    )
    text = calibrate.table(calibration)
    assert text.startswith("# Calibration of the checks")
    assert calibrate.TABLE_COMMAND in text and "do not edit" in text
    row = next(line for line in text.splitlines() if line.startswith("| `training`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["`training`", "standard", "best training accuracy"]
    assert cells[3:6] == ["5", "80.0 %", "65.7 %"]
    assert cells[7:14] == ["0.94", "0.97", "0.99", "1", "1", ">= 0.95", "-0.01"]
    assert cells[14] == "1 timeout" and cells[15] == "2.01-relu-output: 3/3"
    assert "Deterministic checks" in text
    assert any(line.startswith("| `shapes` | standard | 3 | 100.0 %") for line in text.splitlines())
    assert "over 3 seeds (1–3) on ref, variant-book" in text


def test_the_merge_keeps_the_other_entries():
    first = calibrate.merge(calibrate.empty(), "5.01", {"5.01/a": {"n": 1}})
    first = calibrate.merge(first, "2.01", {"2.01/a": {"n": 1}, "2.01/b": {"n": 1}})
    merged = calibrate.merge(first, "2.01", {"2.01/b": {"n": 2}})
    assert list(merged["activities"]) == ["2.01", "5.01"]
    assert merged["activities"]["2.01"]["checks"] == {"2.01/a": {"n": 1}, "2.01/b": {"n": 2}}
    assert merged["activities"]["5.01"] == first["activities"]["5.01"]
    assert first["activities"]["2.01"]["checks"]["2.01/b"] == {"n": 1}  # not changed in place


def test_a_calibration_file_is_written_strictly_and_read_back(tmp_path):
    path = tmp_path / "calibration.json"
    calibrate.write(path, calibrate.merge(calibrate.empty(), "2.01", {"2.01/training": ENTRY}))
    assert calibrate.read(path)["activities"]["2.01"]["checks"]["2.01/training"] == ENTRY
    path.write_text(json.dumps({"schema": 99}))
    with pytest.raises(calibrate.UsageError, match="schema 99"):
        calibrate.read(path)


# -- a whole run, on a toy activity ------------------------------------------------------------

TOY_RUBRIC = '''"""Toy activity 10.01 for the calibration tests: no TensorFlow."""

import random

import dlgrade

ACTIVITY = dlgrade.activity("10.01", "Toy")

LINE = 0.1


@dlgrade.check(points=1, feedback="add(a, b) must return a + b.")
def test_add(student):
    """add(2, 3) is 5."""
    if student.add(2.0, 3.0) != 5.0:
        dlgrade.fail("add(2, 3) is not 5")


@dlgrade.check(points=1, tier="standard", feedback="draw() must scale the grader's number.")
def test_draw(student):
    """A number drawn from the check's seed, scaled by the student: at least LINE."""
    value = student.scale(random.random())
    dlgrade.measured("scaled draw", value, LINE)
    if value < LINE:
        dlgrade.fail(f"the scaled draw {value:.3f} is under {LINE}")
'''

TOY_REFERENCE = "def add(a, b):\n    return a + b\n\n\ndef scale(x):\n    return x\n"
TOY_VARIANT = "def add(a, b):\n    return sum((a, b))\n\n\ndef scale(x):\n    return 1.0 * x\n"
TOY_MUTANT = """# Mutant of reference/activity_10_01.py: scales the draw down.
# kills: draw
---
    return x
+++
    return x / 100
"""


def toy_repository(tmp_path: Path, *, reference: bool = True) -> Path:
    repo = tmp_path / "repo"
    (repo / "checks").mkdir(parents=True)
    (repo / "checks" / "activity_10_01.py").write_text(TOY_RUBRIC)
    if reference:
        (repo / "reference").mkdir()
        (repo / "reference" / "activity_10_01.py").write_text(TOY_REFERENCE)
        (repo / "tests" / "variants" / "plus").mkdir(parents=True)
        (repo / "tests" / "variants" / "plus" / "activity_10_01.py").write_text(TOY_VARIANT)
        (repo / "tests" / "mutants").mkdir()
        (repo / "tests" / "mutants" / "10.01-scaled-down.mutant").write_text(TOY_MUTANT)
    return repo


def calibrated(repo: Path, out: Path, seeds: int, *extra: str):
    return dlgrade(
        "calibrate", "--checks", repo / "checks", "--activity", "10.01", "--tier", "standard",
        "--seeds", str(seeds), "--out", out, "--jobs", "1", *extra,
    )  # fmt: skip


def record_times(out: Path) -> dict[str, int]:
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in sorted((out / "runs").rglob("students/*.json"))
    }


@pytest.mark.slow
def test_a_toy_calibration_measures_and_resumes(tmp_path):
    repo, out = toy_repository(tmp_path), tmp_path / "out"
    first = calibrated(repo, out, 2)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "seed 1 (1/2; 2 correct, 1 mutants)" in first.stderr, first.stderr
    assert "ETA" in first.stderr
    before = record_times(out)
    assert len(before) == 2 * 3, before  # 2 seeds × (ref, variant-plus, the mutant)

    second = calibrated(repo, out, 3, "--table", tmp_path / "calibration.md")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stderr.count("graded before, kept") == 2, second.stderr
    after = record_times(out)
    assert {k: after[k] for k in before} == before, "a finished seed was graded again"
    assert len(after) == 3 * 3

    data = calibrate.read(repo / "checks" / calibrate.FILE)["activities"]["10.01"]["checks"]
    draw, add = data["10.01/draw"], data["10.01/add"]
    assert draw["stochastic"] and not add["stochastic"]
    assert draw["seeds"] == [1, 2, 3] and draw["correct"] == ["ref", "variant-plus"]
    assert draw["runs"] == 6 and draw["n"] == draw["passes"] + draw["failures"]
    assert (draw["threshold"], draw["op"], draw["measured"]) == (0.1, ">=", "scaled draw")
    assert len(draw["values"]) == 6 and draw["min"] == min(draw["values"])
    # the reference and the variant scale alike: under one seed they are one trial
    assert draw["independent_trials"] == 3
    assert draw["margin"] == pytest.approx(min(draw["values"]) - 0.1, abs=1e-6)
    assert draw["mutants"]["10.01-scaled-down"]["graded"] == 3
    assert add["mutants"] == {} and add["passes"] == 6 and add["pass_rate"] == 1.0
    assert add["false_fail_upper_95"] == pytest.approx(calibrate.upper_bound(0, 6), abs=1e-6)
    assert calibrate.stale({"activities": {"10.01": {"checks": data}}}, repo / "checks") == []
    assert "## Activity 10.01" in (tmp_path / "calibration.md").read_text()

    # the table alone, from the file as it is
    again = dlgrade(
        "calibrate", "--checks", repo / "checks", "--only-table", "--table", tmp_path / "t.md"
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "t.md").read_text() == (tmp_path / "calibration.md").read_text()


def test_without_a_reference_the_command_asks_for_solutions(tmp_path):
    repo = toy_repository(tmp_path, reference=False)
    run = calibrated(repo, tmp_path / "out", 1)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no reference solutions at" in run.stderr and "--solutions DIR" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (repo / "checks" / calibrate.FILE).exists()


def test_mutants_without_a_reference_are_refused(tmp_path):
    repo = toy_repository(tmp_path, reference=False)
    solutions = tmp_path / "mine"
    solutions.mkdir()
    (solutions / "activity_10_01.py").write_text(TOY_REFERENCE)
    (tmp_path / "m").mkdir()
    mutants = tmp_path / "m"
    run = calibrated(repo, tmp_path / "out", 1, "--solutions", solutions, "--mutants", mutants)
    assert run.returncode == 2 and "pass --no-mutants" in run.stderr, run.stderr


def test_the_class_holds_the_solutions_the_variants_and_the_mutants(tmp_path):
    repo = toy_repository(tmp_path)
    mine = tmp_path / "alice"
    mine.mkdir()
    (mine / "activity_10_01.py").write_text(TOY_REFERENCE)
    students = calibrate.students_for(
        "10.01",
        reference=repo / "reference",
        variants=repo / "tests" / "variants",
        solutions=[mine],
        mutants=repo / "tests" / "mutants",
    )
    names = ["ref", "variant-plus", "sol-alice", "mutant-10.01-scaled-down"]
    assert [s.id for s in students] == names
    assert [s.correct for s in students] == [True, True, True, False]
    plan = calibrate.Plan("10.01", "standard", [1], repo / "checks", tmp_path / "out", 1, students)
    calibrate.build_class(plan)
    written = plan.class_dir / "mutant-10.01-scaled-down" / "activity_10_01.py"
    assert written.read_text() == TOY_REFERENCE.replace("return x\n", "return x / 100\n")
