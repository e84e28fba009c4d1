"""The worker session: calls, handles, limits, restarts — without a pytest session around it."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dlgrade.errors import CallTimeout, SubmissionError, WorkerCrashed
from dlgrade.sandbox import Limits, WorkerSession, isolation_mode
from dlgrade.sandbox.protocol import Handle
from tests.helpers import running

MODULE = """
import os, subprocess, sys, time


class Counter:
    def __init__(self, start):
        self.value = start

    def add(self, n):
        self.value += n
        return self.value


def make(start):
    return Counter(start)


def read(counter):
    return counter.value


def echo(value):
    return value


def shout(text):
    print(text)
    print("to stderr", file=sys.stderr)
    return len(text)


def spawn_and_hang(pidfile, seconds):
    child = subprocess.Popen(["sleep", seconds])
    with open(pidfile, "w") as fh:
        fh.write(str(child.pid))
    while True:
        time.sleep(0.1)


def die():
    os._exit(7)


def spin():
    while True:
        pass


def model_with_lambda():
    import keras
    inputs = keras.Input(shape=(2,))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    return keras.Model(inputs, outputs)
"""


@pytest.fixture
def session(tmp_path: Path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "tool.py").write_text(MODULE)
    worker = WorkerSession(folder, Limits(call_timeout=10))
    yield worker
    worker.close()


def test_values_cross_as_data_and_objects_stay_behind_handles(session):
    assert session.call("tool", "echo", ({"a": (1, 2.5, None)},)) == {"a": (1, 2.5, None)}
    counter = session.call("tool", "make", (3,))
    assert isinstance(counter, Handle) and counter.type_name == "tool.Counter"
    assert session.call_method(counter, "add", (4,)) == 7
    assert session.call("tool", "read", (counter,)) == 7


def test_a_large_array_round_trips_exactly(session):
    images = np.random.default_rng(0).integers(0, 256, size=(60_000, 28, 28), dtype=np.uint8)
    back = session.call("tool", "echo", (images,))
    assert back.dtype == np.uint8 and np.array_equal(back, images)
    assert list(session.exchange_dir.glob("*.npy")) == []  # consumed on both sides


def test_printed_output_is_captured_per_check(session):
    session.start_check(seed=1)
    assert session.call("tool", "shout", ("hello",)) == 5
    output = session.check_output()
    assert "hello" in output and "to stderr" in output
    session.start_check(seed=2)
    assert session.check_output() == ""


def test_a_timeout_kills_the_whole_process_group_and_the_next_call_works(session, tmp_path):
    pidfile = session.scratch_dir / "child.pid"
    # The child is found by its command line: in the jail its pid is the namespace's own.
    seconds = f"{100 + random.random():.9f}"
    with pytest.raises(CallTimeout, match="did not finish within 2 s"):
        session.call("tool", "spawn_and_hang", (str(pidfile), seconds), timeout=2)
    assert pidfile.exists(), "the child never started"
    deadline = time.monotonic() + 5
    while running("sleep", seconds) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running("sleep", seconds), "the student's child process survived the timeout"
    assert session.call("tool", "echo", (1,)) == 1
    assert session.starts == 2


def test_a_dead_worker_is_reported_and_its_handles_go_stale(session):
    counter = session.call("tool", "make", (1,))
    with pytest.raises(WorkerCrashed, match="exited with code 7") as excinfo:
        session.call("tool", "die")
    assert excinfo.value.reason == "worker_died"
    with pytest.raises(WorkerCrashed) as stale:
        session.call_method(counter, "add", (1,))
    assert stale.value.reason == "stale_handle"


def test_exporting_something_that_is_not_a_model_is_the_students_error(session):
    counter = session.call("tool", "make", (1,))
    with pytest.raises(SubmissionError, match="expected a Keras model") as excinfo:
        session.export_model(counter)
    assert excinfo.value.reason == "wrong_type"


def test_symlinks_in_the_submission_are_not_followed(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("answer key")
    (folder / "activity_1_01.py").write_text("x = 1\n")
    (folder / "key.txt").symlink_to(secret)
    worker = WorkerSession(folder)
    try:
        assert (worker.scratch_dir / "activity_1_01.py").exists()
        assert not (worker.scratch_dir / "key.txt").exists()
    finally:
        worker.close()


@pytest.mark.slow
def test_a_model_with_a_lambda_layer_is_refused_on_the_trusted_side(session):
    from dlgrade import models

    handle = session.call("tool", "model_with_lambda", timeout=120)
    path = session.export_model(handle)
    with pytest.raises(SubmissionError, match="Lambda layer") as excinfo:
        models.load(path)
    assert excinfo.value.reason == "unsafe_model"


GRADER = """
import sys
from pathlib import Path
from dlgrade.sandbox import Limits, WorkerSession

session = WorkerSession(Path(sys.argv[1]), Limits(call_timeout=600), isolation=sys.argv[2])
session.start()
session._proc.find_worker()
print(session._proc.worker_pid, flush=True)
session.call("tool", "spin")
"""


@pytest.mark.parametrize("isolation", ["namespaces", "rlimits"])
def test_a_grader_killed_with_sigkill_takes_its_spinning_worker_with_it(tmp_path, isolation):
    if isolation == "namespaces" and isolation_mode() != "namespaces":
        pytest.skip("no namespaces on this machine")
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "tool.py").write_text(MODULE)
    grader = subprocess.Popen(
        [sys.executable, "-c", GRADER, str(folder), isolation],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    worker = int(grader.stdout.readline())
    time.sleep(0.5)  # the worker is in spin() now
    assert Path(f"/proc/{worker}").exists()
    os.kill(grader.pid, signal.SIGKILL)  # not its group: the worker has a session of its own
    grader.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.05)
    assert not _alive(worker), f"worker {worker} outlived its grader"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in "ZX"


@pytest.mark.slow
def test_tensorflows_start_up_lines_are_not_the_students_output(tmp_path):
    """What TensorFlow prints while it loads (absl's notice, oneDNN's) is not shown as what
    the student's code printed: only the student's own lines are."""
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "tool.py").write_text(MODULE)
    worker = WorkerSession(folder, Limits(call_timeout=60), preload=("keras",))
    try:
        worker.start_check(seed=1)
        assert worker.call("tool", "shout", ("hello",)) == 5
        assert worker.check_output() == "hello\nto stderr\n"
    finally:
        worker.close()


def test_native_log_lines_are_recognised_and_the_students_are_not():
    from dlgrade.sandbox import NATIVE_LOG_LINE

    native = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795995909.074856       1 port.cc:153] oneDNN custom operations are on.",
        "E0000 00:00:1795995909.1 42 cuda_dnn.cc:8310] Unable to register cuDNN factory",
    ]
    students = ["I0000 is my favourite number", "WARNING: my own warning", "epoch 1: loss 0.3"]
    assert all(NATIVE_LOG_LINE.match(line) for line in native)
    assert not any(NATIVE_LOG_LINE.match(line) for line in students)


def _pid_writable() -> bool:
    return os.access("/proc/sys/kernel/ns_last_pid", os.W_OK)


@pytest.mark.skipif(not _pid_writable(), reason="choosing the next pid needs root")
def test_a_dead_workers_number_reused_by_another_process_is_never_signalled(tmp_path):
    """The look-ahead's unexplained worker death: a worker that died was killed again by
    number when its session moved on (the next check's start, the session's close), and on
    a busy machine that number may already belong to a new process — the next student's
    worker. Here the next process is made to get the dead worker's number on purpose."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "activity_1_01.py").write_text("import os\n\ndef die():\n    os._exit(3)\n")
    session = WorkerSession(tmp_path / "sub")
    innocent = None
    try:
        session.start()
        old = session._proc.worker_pid
        with pytest.raises(WorkerCrashed):
            session.call("activity_1_01", "die")
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{old}") and time.monotonic() < deadline:
            time.sleep(0.01)  # reaped by the system
        with open("/proc/sys/kernel/ns_last_pid", "w") as handle:
            handle.write(str(old - 1))
        innocent = subprocess.Popen(["sleep", "30"], start_new_session=True)
        if innocent.pid != old:
            pytest.skip(f"another process took pid {old} first")
        session.close()  # kills what is left of the dead worker: must not touch pid `old`
        time.sleep(0.2)
        assert innocent.poll() is None, "a process that took the dead worker's pid was killed"
    finally:
        session.close()
        if innocent is not None:
            innocent.kill()
            innocent.wait()


def test_the_key_and_the_worker_see_the_same_files(tmp_path):
    """One definition of a submission's files: what its key hashes is what its worker gets
    (caches, environments, editor and archiver litter and links are neither)."""
    from dlgrade.classrun.roster import files_digest
    from dlgrade.files import submission_files
    from dlgrade.sandbox import copy_submission

    folder = tmp_path / "student"
    (folder / "data").mkdir(parents=True)
    (folder / "activity_1_01.py").write_text("x = 1\n")
    (folder / "data" / "notes.txt").write_text("mine\n")
    for litter in (".venv/lib/site.py", "__pycache__/a.pyc", ".pytest_cache/v", "__MACOSX/._a"):
        (folder / litter).parent.mkdir(parents=True, exist_ok=True)
        (folder / litter).write_text("not the student's work\n")
    (folder / ".DS_Store").write_text("finder\n")
    (folder / "stale.pyc").write_bytes(b"\0")
    (tmp_path / "outside.txt").write_text("secret\n")
    (folder / "link.txt").symlink_to(tmp_path / "outside.txt")
    (folder / "linked_dir").symlink_to(tmp_path)
    listed = [p.relative_to(folder).as_posix() for p in submission_files(folder)]
    assert listed == ["activity_1_01.py", "data/notes.txt"]
    copy = tmp_path / "copy"
    copy_submission(folder, copy)
    copied = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert copied == listed
    before = files_digest(folder)
    (folder / ".venv" / "lib" / "site.py").write_text("changed\n")
    (folder / ".DS_Store").write_text("changed\n")
    assert files_digest(folder) == before  # litter does not change the key
    (folder / "data" / "notes.txt").write_text("changed\n")
    assert files_digest(folder) != before
