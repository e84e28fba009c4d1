"""The reference solutions and the example submission score 100 %."""

import shutil

import pytest

from dlgrade import data
from dlgrade.rubric import ACTIVITIES
from tests.helpers import REFERENCE, REPO
from tests.notebooks import convert

pytestmark = pytest.mark.slow


#: activities that grade only on real data, and whether it is here (4.01/4.02 need the real
#: NLTK data and 6.01 the book's first review, which the CI mirror has); every other
#: activity the rubrics declare is graded: 2.01, 3.01, 3.02, 5.01 and 7.01 grade on synthetic
#: twins when the real data is absent, and an activity added later is graded (and fails
#: loudly without its data) until it is listed here
NEEDS_REAL_DATA = {
    "4.01": lambda: bool(data.locate("nltk")),
    "4.02": lambda: bool(data.locate("nltk")),
    "6.01": lambda: bool(
        data.mirror_dir() and (data.mirror_dir() / "amazon_first_review.txt").exists()
    ),
}
GRADED = tuple(a for a in ACTIVITIES if a not in NEEDS_REAL_DATA or NEEDS_REAL_DATA[a]())


def test_every_activity_has_a_reference():
    missing = [m for m, _ in ACTIVITIES.values() if not (REFERENCE / f"{m}.py").is_file()]
    assert not missing, f"no reference solution for {missing} under {REFERENCE}"
    assert set(NEEDS_REAL_DATA) <= set(ACTIVITIES), "NEEDS_REAL_DATA names an unknown activity"


@pytest.mark.parametrize("tier", ["quick", "standard"])
def test_reference_scores_full_marks(grade, tmp_path, tier):
    submission = tmp_path / "reference"
    shutil.copytree(REFERENCE, submission)
    graded = grade(submission, GRADED, tier)
    assert graded.grade["score"] == graded.grade["max_score"] > 0, graded.outcomes
    assert {c["tier"] for c in graded.grade["checks"]} == (
        {"quick"} if tier == "quick" else {"quick", "standard"}
    )
    graded.run.assert_outcomes(passed=len(graded.grade["checks"]))


@pytest.mark.parametrize("tier", ["quick", "standard"])
def test_reference_notebooks_score_full_marks(grade, tmp_path, tier):
    """The references handed in as notebooks, as students write them: magics at the top,
    one cell per function, a %%time cell and a guarded try-it cell that must not run."""
    submission = tmp_path / "reference"
    shutil.copytree(REFERENCE, submission)
    for activity in GRADED:
        convert(submission, ACTIVITIES[activity][0])
    assert not [a for a in GRADED if (submission / f"{ACTIVITIES[a][0]}.py").exists()]
    graded = grade(submission, GRADED, tier)
    assert graded.grade["score"] == graded.grade["max_score"] > 0, graded.outcomes
    notes = graded.grade["notes"]
    magics = [n for n in notes if "not run when graded" in n]
    assert len(magics) == len(GRADED) and all("%matplotlib inline" in n for n in magics)
    graded.run.assert_outcomes(passed=len(graded.grade["checks"]))


def test_example_submission_scores_full_marks_at_quick_tier(grade):
    graded = grade(REPO / "submissions" / "example", ("1.01", "2.01"), "quick")
    assert graded.grade["score"] == graded.grade["max_score"] > 0, graded.outcomes


def test_full_tier_checks_that_need_a_gpu_stop_as_a_runner_problem_without_one():
    """3.02's and 7.01's full checks call require_gpu: on a CPU machine, outcome error/runner."""
    from dlgrade import gpu, models
    from dlgrade.errors import RunnerError
    from dlgrade.plugin import classify
    from dlgrade.rubric import CheckSpec

    if gpu.discover():
        pytest.skip("a GPU is here: require_gpu lets the check run")
    with pytest.raises(RunnerError) as raised:
        models.require_gpu("the full tier trains for an hour")
    assert str(raised.value) == models.NO_GPU_MESSAGE.format(
        why="the full tier trains for an hour", device="CPU (no GPU on this machine)"
    )
    spec = CheckSpec(points=1.0, tier="full", visibility="public", feedback="f")
    assert classify(raised, spec)[:2] == ("error", "runner")
    for rubric in ("activity_3_02.py", "activity_7_01.py"):
        assert "models.require_gpu(" in (REPO / "checks" / rubric).read_text()


def test_reference_graded_on_a_busy_machine_is_never_charged(grade, tmp_path):
    """CPU-bound programs (each in its own session, as other programs are) while 1.01's
    longest call (1,000 optimizer steps, about 3.5 s on a quiet machine) is graded with a 6 s
    limit per call. A wall clock would charge the student a timeout once the load stretches
    that call past 6 s; the fair clock counts what the worker got, and past MAX_STRETCH× the
    limit gives the call up as the grader's (``machine_busy``, regraded next run).

    How much a load slows the worker depends on the kernel and on what else runs (a CI runner
    with other test workers), so the load climbs a ladder: lighter while the call stayed
    under its limit, one rung down after a ``machine_busy``. Every grading on the way must
    charge the student nothing (each check passes or is the grader's machine_busy), and at
    least one must have passed the call after more than 6 s of wall time: the case a wall
    clock gets wrong."""
    from tests.helpers import busy_machine

    submission = tmp_path / "reference"
    shutil.copytree(REFERENCE, submission)
    ladder, rung, seen = (1, 2, 3, 4, 6, 8), 0, []
    for _attempt in range(6):
        with busy_machine(per_cpu=ladder[rung]):
            graded = grade(
                submission, ("1.01",), "quick", "--call-timeout", "6", "-k", "book_defaults"
            )
        solve = graded.check("solve_with_book_defaults")
        seen.append((ladder[rung], solve["outcome"], solve.get("reason"), solve["duration_s"]))
        for check in graded.grade["checks"]:
            assert check["outcome"] == "pass" or check.get("reason") == "machine_busy", seen
        if solve["outcome"] == "pass" and solve["duration_s"] > 6:
            return
        if solve["outcome"] == "pass":
            rung = min(rung + 1, len(ladder) - 1)
        else:
            rung = max(rung - 1, 0)
    pytest.fail(f"no load stretched the call past its limit and let it finish: {seen}")
