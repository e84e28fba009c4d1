"""The grader finishes (issue 22, item 7): whatever blocks, a session ends within its bound.

The trusted side is made to block the way a grader bug would (``tests/stall.py``: a call
opens a FIFO nobody writes to). ``dlgrade check`` must still end, exit 3 and leave a grade
JSON naming every check; a class run must still record every student and write every
export, and the next run must grade the stalled check again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlgrade import gradebook
from dlgrade.errors import EXIT_INTERNAL, EXIT_OK
from dlgrade.watchdog import (
    CHECK_ALLOWANCE_S,
    GRADER_STALLED,
    NOT_STARTED_FEEDBACK,
    STALLED_FEEDBACK,
    STARTUP_ALLOWANCE_S,
    WATCHDOG_ENV,
    session_bound,
)
from dlgrade.reports.exports import (
    CANVAS_CSV,
    GRADEBOOK_CSV,
    GRADES_JSON,
    JUNIT_XML,
    SUMMARY_HTML,
)
from dlgrade.rubric import GRADER_FAULTS, REGRADE_REASONS
from tests.helpers import LIGHT, REPO, good_code, student

BOUND = 20  # seconds: the watchdog's bound in these tests (DLGRADE_WATCHDOG_SECONDS)
#: what a bounded session may take beyond its bound: pytest, the rubric and the worker start
START_SLACK = 60
STALLED_CHECK = "1.01/loss_fn_at_zero"
OTHER_CHECK = "1.01/start_is_honoured"


def dlgrade_stalled(
    *args, fifo: Path, student: str, check: str = STALLED_CHECK, popen=False, how="fifo"
):
    """Run ``dlgrade`` with ``tests/stall.py`` loaded into its grading processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        PYTEST_PLUGINS="tests.stall",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        STALL_FIFO=str(fifo),
        STALL_CHECK=check,
        STALL_STUDENT=student,
        STALL_HOW=how,
        **{WATCHDOG_ENV: str(BOUND)},
    )
    command = [sys.executable, "-m", "dlgrade.cli", *map(str, args)]
    if popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=BOUND * 4 + START_SLACK * 2
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "never-written"
    os.mkfifo(path)
    return path


def by_id(checks) -> dict:
    return {c["id"] if isinstance(c, dict) else c.id: c for c in checks}


def test_the_bound_is_the_budgets_twice_plus_start_up_and_a_slack_per_check(monkeypatch):
    monkeypatch.delenv(WATCHDOG_ENV, raising=False)
    budgets = {"1.01": 240.0, "2.01": 300.0}
    assert session_bound(budgets, 10) == STARTUP_ALLOWANCE_S + 2 * 540 + 10 * CHECK_ALLOWANCE_S
    monkeypatch.setenv(WATCHDOG_ENV, "12.5")
    assert session_bound(budgets, 10) == 12.5
    monkeypatch.setenv(WATCHDOG_ENV, "soon")  # not a number: the derived bound
    assert session_bound(budgets, 10) > 2 * 540


def test_a_stalled_grader_is_the_graders_fault_and_regraded():
    assert GRADER_STALLED in GRADER_FAULTS and GRADER_STALLED in REGRADE_REASONS


def test_a_check_whose_grader_blocks_ends_within_its_bound_with_a_grade_json(tmp_path, fifo):
    folder = student(tmp_path, "alice", good_code())
    grade = tmp_path / "grade.json"
    began = time.monotonic()
    run = dlgrade_stalled(
        "check", folder, "--checks", LIGHT, "--grade-json", grade, fifo=fifo, student="alice"
    )
    took = time.monotonic() - began
    assert run.returncode == EXIT_INTERNAL, run.stdout + run.stderr
    assert took < BOUND + START_SLACK, f"{took:.0f} s"
    checks = by_id(json.loads(grade.read_text())["checks"])
    assert list(checks) == [STALLED_CHECK, OTHER_CHECK]
    assert checks[STALLED_CHECK]["reason"] == GRADER_STALLED
    assert checks[STALLED_CHECK]["feedback"] == STALLED_FEEDBACK.format(bound=BOUND)
    assert checks[OTHER_CHECK]["reason"] == GRADER_STALLED
    assert checks[OTHER_CHECK]["feedback"] == NOT_STARTED_FEEDBACK
    assert "dlgrade: the grader stalled" in run.stderr


def test_a_check_killed_while_blocked_still_leaves_a_grade_json_naming_every_check(tmp_path, fifo):
    """The grade JSON is written ahead: even SIGKILL, which no watchdog can answer, leaves
    a grade that says which checks did not finish."""
    folder = student(tmp_path, "alice", good_code())
    grade = tmp_path / "grade.json"
    process = dlgrade_stalled(
        "check",
        folder,
        "--checks",
        LIGHT,
        "--grade-json",
        grade,
        fifo=fifo,
        student="alice",
        popen=True,
    )
    try:
        deadline = time.monotonic() + START_SLACK
        while not grade.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # into the stalled call
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    checks = by_id(json.loads(grade.read_text())["checks"])
    assert list(checks) == [STALLED_CHECK, OTHER_CHECK]
    assert {c["reason"] for c in checks.values()} == {GRADER_STALLED}
    assert {c["feedback"] for c in checks.values()} == {NOT_STARTED_FEEDBACK}


def test_a_class_run_with_a_stalled_student_records_everyone_and_writes_every_export(
    tmp_path, fifo
):
    source = tmp_path / "submissions"
    for name in ("alice", "bob", "carol"):
        student(source, name, good_code())
    out = tmp_path / "results"
    began = time.monotonic()
    run = dlgrade_stalled(
        "grade",
        source,
        "--out",
        out,
        "--checks",
        LIGHT,
        "--call-timeout",
        5,
        fifo=fifo,
        student="bob",
    )
    took = time.monotonic() - began
    assert run.returncode == EXIT_INTERNAL, run.stdout + run.stderr
    assert took < BOUND + 3 * START_SLACK, f"{took:.0f} s"
    for name in (GRADEBOOK_CSV, GRADES_JSON, JUNIT_XML, CANVAS_CSV, SUMMARY_HTML):
        assert (out / name).is_file(), name
    for name in ("alice", "bob", "carol"):
        assert (out / "feedback" / f"{name}.md").is_file()
        assert (out / "gradescope" / name / "results.json").is_file()
    records = {r.student: r for r in gradebook.load_records(out)}
    assert sorted(records) == ["alice", "bob", "carol"]
    assert records["alice"].score == records["carol"].score == 3
    bob = by_id(records["bob"].checks)
    assert bob[STALLED_CHECK].reason == GRADER_STALLED
    assert bob[STALLED_CHECK].feedback == STALLED_FEEDBACK.format(bound=BOUND)
    assert bob[OTHER_CHECK].outcome == "pass"  # graded by the process that replaced it
    # the next run grades bob again, and only bob
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlgrade.cli",
            "grade",
            source,
            "--out",
            out,
            "--checks",
            LIGHT,
            "--call-timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
    )
    assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert "grading 1 student(s)" in again.stdout
    bob = {r.student: r for r in gradebook.load_records(out)}["bob"]
    assert bob.status == gradebook.GRADED and bob.score == 3


def test_a_stopped_grading_process_is_killed_by_the_reaper_and_the_class_finishes(tmp_path, fifo):
    """SIGSTOP freezes every thread of the grading process, the watchdog's too: the reaper,
    a process of its own, kills it; pytest-xdist replaces it and settle records the student."""
    source = tmp_path / "submissions"
    for name in ("alice", "bob", "carol"):
        student(source, name, good_code())
    out = tmp_path / "results"
    began = time.monotonic()
    run = dlgrade_stalled(
        "grade",
        source,
        "--out",
        out,
        "--checks",
        LIGHT,
        "--call-timeout",
        5,
        fifo=fifo,
        student="bob",
        how="stop",
    )
    took = time.monotonic() - began
    assert took < 2 * BOUND + 3 * START_SLACK, f"{took:.0f} s"
    assert (out / GRADEBOOK_CSV).is_file() and (out / JUNIT_XML).is_file(), run.stdout
    records = {r.student: r for r in gradebook.load_records(out)}
    assert sorted(records) == ["alice", "bob", "carol"]
    assert records["alice"].status == records["carol"].status == gradebook.GRADED
    assert records["bob"].status == gradebook.INCOMPLETE
    assert "the grading process died during check test_loss_fn_at_zero" in records["bob"].note
    assert run.returncode != EXIT_OK
