"""`dlgrade grade`: a whole class, every student in the gradebook, resumable, in parallel."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from dlgrade import gradebook
from tests.helpers import (
    BROKEN,
    LIGHT,
    MODULE,
    dlgrade,
    good_code,
    grade,
    records,
    rows,
    student,
)

CRASHING = Path(__file__).parent / "rubrics" / "crashing"


@pytest.fixture
def klass(tmp_path: Path) -> Path:
    """Five students: one right, one wrong, one that hangs, one that crashes, one empty."""
    root = tmp_path / "submissions"
    student(root, "alice", good_code())
    student(root, "bob", BROKEN / "wrong_type")
    student(root, "carol", BROKEN / "infinite_loop")
    student(root, "dave", BROKEN / "os_exit")
    student(root, "erin", None)
    return root


def test_every_student_is_in_the_gradebook_with_the_reason_in_their_row(klass, tmp_path):
    out = tmp_path / "results"
    run = grade(klass, out)
    assert run.returncode == 0, run.stdout + run.stderr
    book = rows(out)
    assert list(book) == ["alice", "bob", "carol", "dave", "erin"]
    assert {s: book[s]["status"] for s in book} == dict.fromkeys(book, "graded")
    assert (book["alice"]["total"], book["alice"]["max_total"]) == ("3", "3")
    assert book["bob"]["total"] == "1"  # solve() is right, loss_fn returns a string
    assert "timeout" in book["carol"]["reason"]
    assert "crash (worker_died)" in book["dave"]["reason"]
    assert book["erin"]["total"] == "0" and book["erin"]["reason"] == ""  # nothing abnormal
    for name in ("gradebook.csv", "grades.json", "junit.xml", "canvas.csv", "summary.html"):
        assert (out / name).is_file(), name
    for name in book:
        assert (out / "feedback" / f"{name}.md").is_file()
        assert (out / "feedback" / f"{name}.html").is_file()
        assert json.loads((out / "gradescope" / name / "results.json").read_text())["tests"]
    assert "carol" in (out / "summary.html").read_text()  # listed among abnormal runs
    assert "5 student(s): 5 graded" in run.stdout
    assert "[5/5]" in run.stdout and "✗ carol" in run.stdout  # progress, one line a student
    alice = records(out)["alice"]
    assert alice.worker["starts"] == 1
    assert alice.device == "CPU"  # what the worker ran on (a machine without a GPU)
    assert json.loads((out / "grades.json").read_text())["students"][0]["device"] == "CPU"
    assert [c.id for c in alice.checks] == ["1.01/loss_fn_at_zero", "1.01/start_is_honoured"]


def test_two_jobs_give_the_same_grades_with_one_worker_per_student(klass, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    student(klass, "frank", good_code())
    assert grade(klass, one).returncode == 0
    run = grade(klass, two, "--jobs", 2)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (one / "gradebook.csv").read_text() == (two / "gradebook.csv").read_text()
    graded = records(two)
    # each student's checks ran in one grading process, on one worker (one TensorFlow start
    # per student): a process grading only some of a student's checks would leave a record
    # that is not graded, or that holds fewer checks; and the two processes shared the class
    for name, record in graded.items():
        assert record.status == gradebook.GRADED, name
        assert [c.id for c in record.checks] == [
            "1.01/loss_fn_at_zero",
            "1.01/start_is_honoured",
        ], name
    assert graded["alice"].worker["starts"] == graded["frank"].worker["starts"] == 1
    assert len({r.worker["grader_pid"] for r in graded.values()}) == 2


def test_a_rerun_grades_only_what_is_missing_or_changed(klass, tmp_path):
    out = tmp_path / "results"
    assert grade(klass, out).returncode == 0
    before = records(out)
    with open(klass / "bob" / MODULE, "a") as fh:
        fh.write("\n# changed after the first grading\n")
    gradebook.record_path(out, "erin").unlink()
    run = grade(klass, out)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 student(s) unchanged since their last grading: kept" in run.stdout
    assert "grading 2 student(s)" in run.stdout
    after = records(out)
    for name in ("alice", "carol", "dave"):
        assert after[name] == before[name]  # not graded twice
    assert after["bob"].key != before["bob"].key
    assert set(rows(out)) == set(before)
    forced = grade(klass, out, "--force")
    assert "grading 5 student(s)" in forced.stdout


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_killed_run_loses_no_finished_student_and_the_rerun_finishes(tmp_path, how):
    root = tmp_path / "submissions"
    # s1 finishes fast; the others import slowly, so that the run is still under way when
    # the test sees s1's record, however busy the machine (a 1.5 s sleep for all five once
    # let a loaded machine finish the class before the signal arrived)
    student(root, "s1", good_code())
    slow = good_code() + "\nimport time\ntime.sleep(4)  # a slow import: a run to interrupt\n"
    for name in ("s2", "s3", "s4", "s5"):
        student(root, name, slow)
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    process = subprocess.Popen(
        [sys.executable, "-m", "dlgrade.cli", "grade", root, "--out", out, "--checks", LIGHT],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        # as from a terminal: a test suite started in the background (`pytest &` from a
        # script) passes SIGINT on ignored, and Ctrl-C would then not reach the grader
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [r for r in gradebook.load_records(out) if r.status == gradebook.GRADED]
        if done:
            break
        time.sleep(0.1)
    assert done, "no student finished within 120 s"
    os.killpg(process.pid, how)
    output, _ = process.communicate(timeout=60)
    if how == signal.SIGINT:
        assert process.returncode == 130, output.decode()
    finished = {r.student: r for r in gradebook.load_records(out) if r.status == "graded"}
    assert finished and len(finished) < 5
    run = grade(root, out)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(finished)} student(s) unchanged since their last grading: kept" in run.stdout
    after = records(out)
    assert all(after[name] == record for name, record in finished.items())
    assert [after[s].status for s in sorted(after)] == ["graded"] * 5
    assert all(r.score == 3 for r in after.values())


def test_a_grading_process_that_dies_costs_only_that_student_a_complete_grade(klass, tmp_path):
    from tests.rubrics.crashing.activity_1_01 import CRASH_MARKER

    (klass / "bob" / CRASH_MARKER).write_text("")
    out = tmp_path / "results"
    run = dlgrade("grade", klass, "--out", out, "--checks", CRASHING, "--call-timeout", 5)
    assert run.returncode == 1, run.stdout + run.stderr  # 1: someone is incomplete
    book = rows(out)
    assert list(book) == ["alice", "bob", "carol", "dave", "erin"]
    assert book["bob"]["status"] == "incomplete"
    assert "the grading process died during check test_the_grader_dies" in book["bob"]["reason"]
    bob = records(out)["bob"]
    assert {c.id for c in bob.checks} == {"1.01/loss_fn_at_zero", "1.01/start_is_honoured"}
    assert [book[s]["status"] for s in ("alice", "carol", "dave", "erin")] == ["graded"] * 4
    assert book["alice"]["total"] == "4"
    (klass / "bob" / CRASH_MARKER).unlink()
    again = dlgrade("grade", klass, "--out", out, "--checks", CRASHING, "--call-timeout", 5)
    assert "grading 1 student(s)" in again.stdout
    assert rows(out)["bob"]["status"] == "graded"


def test_an_lms_export_is_graded_under_the_lms_ids(tmp_path):
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"liddellalice_1001_501_{MODULE}", good_code())
        zf.writestr("hatterthe_LATE_1002_502_activity_1_01-1.py", good_code())
        zf.writestr("README.txt", "not a submission")
    out = tmp_path / "results"
    run = grade(archive, out)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "README.txt" in run.stdout  # reported as not mapped
    book = rows(out)
    assert {(r["lms_id"], r["name"], r["total"]) for r in book.values()} == {
        ("1001", "liddellalice", "3"),
        ("1002", "hatterthe", "3"),
    }
    with open(out / "canvas.csv", newline="") as fh:
        ids = {row["ID"] for row in csv.DictReader(fh)}
    assert {"1001", "1002"} <= ids


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "0"], "--jobs 0"),
        (["--activity", "9.99"], "unknown activity 9.99"),
    ],
)
def test_usage_errors_exit_2_with_a_message(klass, tmp_path, args, message):
    run = grade(klass, tmp_path / "results", *args)
    assert run.returncode == 2
    assert message in run.stderr


def test_a_single_submission_folder_is_pointed_to_dlgrade_check(tmp_path):
    folder = student(tmp_path, "mine", good_code())
    run = grade(folder, tmp_path / "results")
    assert run.returncode == 2
    assert f"dlgrade check {folder}" in run.stderr


def test_the_progress_display_counts_students_and_estimates_the_time_left(capfd):
    from dlgrade.classrun import CheckGraded, GraderDied, StudentGraded, StudentStarted, student_of
    from dlgrade.classrun.progress import ClassProgress
    from dlgrade.rubric import CheckResult

    node = "checks/activity_1_01.py::test_solve[{}]"
    assert student_of(node.format("alice")) == "alice"
    assert student_of(node.format("a@b") + "@student3") == "a@b"
    assert student_of("checks/activity_1_01.py::test_solve") is None
    progress = ClassProgress(total=4)
    progress.began -= 60  # a minute into the run
    progress.event(StudentStarted("alice"))
    progress.event(StudentStarted("bob"))
    progress.event(CheckGraded("alice", "1.01/solve", "pass", abnormal=False, done=True))
    passed = CheckResult(
        "1.01/solve", "1.01", "solve", "quick", "public", 3, 3, "pass", "", "", 1.0, ""
    )
    record = gradebook.StudentRecord(
        "alice", "/x", "graded", "k", "quick", "v", 1, ("1.01",), (passed,), wall_s=30.0
    )
    progress.event(StudentGraded(record))
    progress.event(GraderDied("bob", "test_solve"))
    status = progress.status()
    progress.close()
    assert status.startswith("graded 1/4 · running 1 · failed 1 (timeout, crash)")
    assert "ETA 3:0" in status  # one student a minute, three to go
    assert "[1/4] ✓ alice  3/3 (100.0%)  30 s" in capfd.readouterr().out


def test_a_malformed_rubric_exits_3_and_still_lists_every_student(klass, tmp_path):
    rubric = tmp_path / "checks" / "activity_1_01.py"
    rubric.parent.mkdir()
    rubric.write_text('ACTIVITY = "1.01"\n\ndef test_undeclared(student):\n    pass\n')
    out = tmp_path / "results"
    run = dlgrade("grade", klass, "--out", out, "--checks", rubric.parent)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "malformed rubric" in run.stdout + run.stderr
    book = rows(out)
    assert list(book) == ["alice", "bob", "carol", "dave", "erin"]
    assert all(r["status"] == "incomplete" for r in book.values())
    assert all("the rubric could not be run" in r["reason"] for r in book.values())


def test_look_ahead_needs_a_free_core_and_can_be_turned_off(monkeypatch):
    from dlgrade.classrun import plugin

    monkeypatch.setattr(plugin.os, "cpu_count", lambda: 2)
    monkeypatch.delenv(plugin.LOOK_AHEAD_ENV, raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    assert plugin.look_ahead()  # one job, two cores: a core is free for the next import
    monkeypatch.setenv(plugin.LOOK_AHEAD_ENV, "0")
    assert not plugin.look_ahead()  # turned off
    monkeypatch.delenv(plugin.LOOK_AHEAD_ENV)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert not plugin.look_ahead()  # two jobs on two cores: no free core
