"""The attack suite: adversarial submissions (tests/attacks/*) against the sandbox.

Each attack is an ``activity_1_01.py`` whose ``loss_fn`` (or import) attacks and whose
``solve()`` is an honest fake, so that after the attack ``start_is_honoured`` must still
pass: the grader survived and the session went on. Every run also checks that nothing
outside the worker's own folder changed and that no internal error was reported. The
table of attacks and outcomes is in docs/security.md.

Attacks that only the jail stops (root and namespaces) are skipped elsewhere, with the
reason; docs/security.md says what the fallback does not guarantee.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dlgrade import models
from dlgrade.errors import CallTimeout
from dlgrade.sandbox import (
    CPU_LIMIT_MESSAGE,
    MEMORY_LIMIT_MESSAGE,
    Limits,
    WorkerSession,
)
from tests.helpers import (
    ATTACKS,
    FAST,
    JAILED,
    SECRET,
    assert_next_check_runs,
    needs_jail,
    running,
)
from tests.notebooks import convert

LIGHT_RUBRICS = Path(__file__).resolve().parent / "rubrics" / "light"

#: attacks whose loss_fn, once its attack is done (or contained), returns the right value
RIGHT_AFTER_ATTACK = {
    "daemon",
    "kill_parent",
    "network",
    "read_rubrics",
    "read_sibling",
    "sigstop_self",
    "write_results",
}
SMALL = ("--memory-limit", "1", "--disk-limit", "0.25")
DAEMON = ("sleep", "86399.25")  # tests/attacks/daemon's command line


@pytest.fixture
def attack(grade, classroom):
    """``attack(name, *options, **targets)``: grade an attack; the grader must be unharmed."""

    def run(name: str, *options: str, notebook: bool = False, **targets):
        models.keras()  # the grader's own first Keras import writes caches in its HOME
        room = classroom(name, **targets)
        if notebook:  # the same attack handed in as activity_1_01.ipynb
            convert(room.submission, "activity_1_01")
        before = room.snapshot()
        graded = grade(room.submission, ("1.01",), "quick", *FAST, *options)
        assert room.snapshot() == before, "something outside the worker's folder changed"
        assert "INTERNAL ERROR" not in graded.run.stdout.str()
        loss = graded.check("loss_fn_at_known_points")
        if name not in RIGHT_AFTER_ATTACK:
            # a loss_fn that cheats (rigged objects, patched libraries, forged files) or
            # never answers must not earn its points
            assert loss["outcome"] != "pass", f"{name} earned loss_fn's points"
        return graded

    return run


# -- time ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["infinite_loop", "c_spin"])
def test_a_runaway_call_is_killed_at_its_time_limit(attack, name):
    """A Python loop or C code that ignores signals is stopped by the wall clock."""
    graded = attack(name)
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == ("timeout", "timeout"), loss["feedback"]
    assert "did not finish within 5 s" in loss["feedback"]
    assert_next_check_runs(graded)


def test_the_cpu_time_limit_stops_a_worker_that_spins(tmp_path):
    """RLIMIT_CPU: the backstop when the wall clock is generous (here 60 s, CPU 2 s)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "spin.py").write_text("def spin():\n    while True:\n        pass\n")
    session = WorkerSession(tmp_path / "sub", Limits(call_timeout=60, cpu_seconds=2))
    try:
        began = time.monotonic()
        with pytest.raises(CallTimeout) as excinfo:
            session.call("spin", "spin")
        assert time.monotonic() - began < 30
    finally:
        session.close()
    assert excinfo.value.reason == "cpu_limit"
    assert str(excinfo.value) == CPU_LIMIT_MESSAGE.format(seconds=2, label="spin.spin()")


# -- memory, processes, disk, output -----------------------------------------------------

BOMBS = [
    # (attack, outcome, reason, words the feedback must contain)
    ("memory_list", "crash", "memory_limit", MEMORY_LIMIT_MESSAGE.split(" during")[0]),
    ("memory_numpy", "crash", "memory_limit", "memory limit 1 GiB exceeded"),
    pytest.param("fork_bomb", "crash", "process_limit", "process limit of 512", marks=needs_jail),
    ("disk_fill", "crash", "disk_limit", "0.25 GiB per file"),
    ("disk_fill_files", "crash", "disk_limit", "0.25 GiB in all"),
    ("stdout_flood", "crash", "output_limit", "printed more than 16 MiB"),
]


@pytest.mark.parametrize(
    ("name", "outcome", "reason", "words"), BOMBS, ids=[getattr(c, "values", c)[0] for c in BOMBS]
)
def test_a_resource_bomb_is_stopped_at_its_limit_and_the_session_goes_on(
    attack, name, outcome, reason, words
):
    # 512 processes spinning on two cores slow the worker's own reply: give it time.
    slow = ("--call-timeout", "60") if name == "fork_bomb" else ()
    graded = attack(name, *SMALL, *slow)
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == (outcome, reason), loss["feedback"]
    assert words.format(gib=1) in loss["feedback"]
    assert_next_check_runs(graded)


@needs_jail
def test_children_that_fill_the_process_limit_are_named_when_tensorflow_then_dies(attack):
    """Forked children keep the process limit full; TensorFlow then dies in native code
    when it cannot start a thread. The feedback names the limit and the count, not the
    signal."""
    graded = attack("fork_fill_then_tensorflow", "--call-timeout", "120")
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == ("crash", "process_limit"), loss["feedback"]
    assert "process limit of 512" in loss["feedback"]
    assert "processes and threads running" in loss["feedback"]
    assert "SIGSEGV" not in loss["feedback"] and "SIGABRT" not in loss["feedback"]
    assert_next_check_runs(graded)


# -- processes that end, stop or outlive the worker --------------------------------------

ENDINGS = [
    # (attack, (outcome, reason) in the jail, (outcome, reason) without it or None: skipped)
    ("sys_exit", ("error", "exit"), ("error", "exit")),
    ("os_exit", ("crash", "worker_died"), ("crash", "worker_died")),
    ("base_exception", ("error", "student_exception"), ("error", "student_exception")),
    ("keyboard_interrupt", ("error", "student_exception"), ("error", "student_exception")),
    # PID 1 of a namespace ignores signals from inside it; outside the jail, the worker's
    # parent is the grader itself (docs/security.md).
    ("sigstop_self", ("pass", ""), ("timeout", "timeout")),
    ("kill_parent", ("pass", ""), None),
]


@pytest.mark.parametrize(("name", "jailed", "fallback"), ENDINGS, ids=[c[0] for c in ENDINGS])
def test_a_worker_that_exits_stops_or_signals_harms_only_its_own_check(
    attack, name, jailed, fallback
):
    expected = jailed if JAILED else fallback
    if expected is None:
        pytest.skip("outside the jail the worker can signal the grader; see docs/security.md")
    graded = attack(name)
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == expected, loss["feedback"]
    assert_next_check_runs(graded)


@needs_jail
def test_nothing_the_submission_starts_outlives_the_session(attack):
    """A double-forked, setsid daemon dies with the worker's PID namespace."""
    graded = attack("daemon")
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    assert f"daemon started: {' '.join(DAEMON)}" in loss["stdout"]
    assert_next_check_runs(graded)
    assert running(*DAEMON) == [], "the daemon survived the session"


# -- the filesystem and the network ------------------------------------------------------


@needs_jail
def test_hidden_rubrics_and_references_cannot_be_read(attack):
    graded = attack("read_rubrics")
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    assert "loot: 0 files" in loss["stdout"]
    assert_next_check_runs(graded)


@needs_jail
@pytest.mark.parametrize("name", ["read_rubrics", "read_sibling", "write_results"])
def test_an_attack_handed_in_as_a_notebook_is_contained_as_a_module_is(attack, name):
    graded = attack(name, notebook=True)
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    assert "WROTE" not in loss["stdout"] and SECRET not in loss["stdout"]
    assert "loot: 0 files" in loss["stdout"] or "blocked" in loss["stdout"], loss["stdout"]
    assert graded.grade["notes"]  # it ran as a notebook: its magics are noted
    assert_next_check_runs(graded)


@needs_jail
def test_another_students_folder_cannot_be_read_by_path_dotdot_or_symlink(attack):
    graded = attack("read_sibling")
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    stdout = loss["stdout"]
    for how in ("absolute", "dotdot", "planted symlink", "made symlink", "listing"):
        assert f"{how}: blocked" in stdout, stdout
    assert SECRET not in stdout
    assert_next_check_runs(graded)


@needs_jail
def test_the_results_folder_and_the_data_mirror_cannot_be_written(attack, monkeypatch, tmp_path):
    # A mirror anyone may write to: only the read-only mount stops the worker.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    mirror.chmod(0o777)
    monkeypatch.setenv("DLGRADE_DATA_DIR", str(mirror))
    graded = attack("write_results")
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    for how in ("forged grade", "other grade", "data mirror"):
        assert f"{how}: blocked" in loss["stdout"], loss["stdout"]
    assert "data mirror: blocked (Read-only file system)" in loss["stdout"]
    assert list(mirror.iterdir()) == []
    assert graded.grade["max_score"] == 4, "the grade JSON is not the grader's own"
    assert_next_check_runs(graded)


@pytest.fixture
def loopback_server():
    """A server on 127.0.0.1 that records what it receives."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                received.append(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(5)
    server.close()


@pytest.mark.parametrize(
    "allow", [pytest.param(False, marks=needs_jail), True], ids=["default", "allow-network"]
)
def test_the_network_is_off_unless_allowed(attack, loopback_server, allow):
    port, received = loopback_server
    graded = attack("network", *(["--allow-network"] if allow else []), port=port)
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    if allow:
        assert "network: CONNECTED" in loss["stdout"]
        assert received and set(received) == {b"exfiltrated\n"}  # once per call
    else:
        assert "network: blocked ([Errno 101] Network is unreachable)" in loss["stdout"]
        assert received == []
    assert_next_check_runs(graded)


# -- values and patches: the grade is computed on the trusted side -------------------------

VALUES = [
    # (attack, outcome, reason, words the feedback must contain)
    ("huge_header", "error", "bad_value", "declares 10,000,000,000 bytes"),
    ("object_array", "fail", "check_failed", "numpy.ndarray; it must return a number"),
    ("nan_array", "fail", "check_failed", "returned nan; it must return a finite number"),
    ("always_equal", "fail", "check_failed", "Everything; it must return a number"),
    ("monkeypatch", "fail", "check_failed", "returned -4; expected 4"),
]


@pytest.mark.parametrize(("name", "outcome", "reason", "words"), VALUES, ids=[v[0] for v in VALUES])
def test_a_forged_or_rigged_value_fails_its_check(attack, name, outcome, reason, words):
    graded = attack(name)
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == (outcome, reason), loss["feedback"]
    assert words in loss["feedback"]
    assert "unpickled on the grader's side" not in graded.run.stdout.str()
    assert_next_check_runs(graded)


@pytest.mark.parametrize(
    ("name", "reason"), [("patch_builtins", "worker_died"), ("patch_worker", "worker_broken")]
)
def test_a_worker_broken_by_its_submission_is_a_crash_not_an_internal_error(attack, name, reason):
    """Patched at import, the worker fails every check, as the student's crash."""
    graded = attack(name)
    for check_name in ("loss_fn_at_known_points", "start_is_honoured"):
        check = graded.check(check_name)
        assert (check["outcome"], check["reason"]) == ("crash", reason), check["feedback"]
    assert graded.grade["score"] == 0


def test_the_report_header_says_how_the_worker_is_isolated(attack):
    graded = attack("sys_exit", *SMALL)
    header = "memory 1 GiB, CPU 14400 s, 512 processes, disk 0.25 GiB (0.25 GiB per file)"
    lines = graded.run.stdout.lines
    assert any(header in line for line in lines), lines[:10]
    if JAILED:
        assert any("sandbox: namespaces (no network" in line for line in lines)
    else:
        assert any("sandbox: WARNING" in line for line in lines)


def test_dlgrade_check_passes_the_limits_on(tmp_path):
    """`dlgrade check --memory-limit 1 --disk-limit 0.5 --allow-network` reaches the worker."""
    shutil.copytree(ATTACKS / "memory_numpy", tmp_path / "work")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, "-m", "dlgrade.cli", "check", str(tmp_path / "work")]
        + ["--checks", str(LIGHT_RUBRICS), "--memory-limit", "1", "--disk-limit", "0.5"]
        + ["--allow-network"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "memory limit 1 GiB exceeded" in run.stdout
    assert "memory 1 GiB" in run.stdout and "disk 0.5 GiB (0.5 GiB per file)" in run.stdout
    if JAILED:
        assert "network ON (--allow-network)" in run.stdout
    assert "✓ solve(start=10, iterations=10) returns 9.9" in run.stdout
