"""The jail's second round: students cannot talk to each other through IPC or keyrings,
cannot read the grader's keys, meet a syscall filter, and cannot hide memory from the limit.

The attacks are submissions under tests/attacks/ (``ipc_channel``, ``keyring_read``,
``syscalls``, ``memfd_hoard``, ``shm_hoard``); docs/security.md has their rows in the
attack table.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlgrade import models
from dlgrade.errors import SubmissionError
from dlgrade.sandbox import Limits, WorkerSession, jail
from dlgrade.sandbox.limits import RESIDENT_LIMIT_MESSAGE, describe
from dlgrade.sandbox.worker import SYSCALL_DENIED_MESSAGE
from tests.helpers import (
    ATTACKS,
    FAST,
    JAILED,
    LIGHT,
    SECRET,
    assert_next_check_runs,
    needs_jail,
    rows,
)
from tests.helpers import grade as grade_class

FUZZ_EXAMPLES = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 15
FILTERED = JAILED and jail.support().syscall_filter
needs_filter = pytest.mark.skipif(
    not FILTERED,
    reason="only the jail with libseccomp filters system calls; see docs/security.md",
)
MACHINE = platform.machine()
KEYCTL, ADD_KEY = {"x86_64": (250, 248), "aarch64": (219, 217)}.get(MACHINE, (None, None))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


@pytest.fixture
def contained(grade, classroom):  # noqa: F811 - the fixture imported above
    """``contained(name, *options)``: grade an attack; nothing outside its folders changes
    and no internal error is reported (the outcome is for the test to judge)."""

    def run(name: str, *options: str):
        models.keras()
        room = classroom(name)
        before = room.snapshot()
        graded = grade(room.submission, ("1.01",), "quick", *FAST, *options)
        assert room.snapshot() == before, "something outside the worker's folder changed"
        assert "INTERNAL ERROR" not in graded.run.stdout.str()
        return graded

    return run


# -- IPC and keyrings: nothing passes between students, nothing outlives a session --------

IPC_KEY = 0x646C6731  # tests/attacks/ipc_channel's key
QUEUE = b"/dlgrade-ipc-channel"


def sysv_objects() -> set[tuple[str, str, str]]:
    """(kind, key, id) of the SysV shm segments and message queues this namespace holds
    that belong to a worker uid, or carry the attack's key."""
    found = set()
    for kind in ("shm", "msg"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        header = lines[0].split()
        for line in lines[1:]:
            row = dict(zip(header, line.split(), strict=False))
            uid = int(row.get("uid", -1))
            worker = jail.WORKER_UID_FIRST <= uid < jail.WORKER_UID_FIRST + jail.WORKER_UID_COUNT
            if worker or int(row["key"]) == IPC_KEY:
                found.add((kind, row["key"], row.get("shmid") or row.get("msqid")))
    return found


def remove_leftovers(before: set[tuple[str, str, str]]) -> None:
    """What the attack leaves where there is no IPC namespace (the code before the fix)."""
    for kind, _key, ident in sysv_objects() - before:
        (libc.shmctl if kind == "shm" else libc.msgctl)(int(ident), 0, None)  # IPC_RMID
    libc.mq_unlink(QUEUE)
    for offset in range(4):  # the user keyrings of the first worker uids
        uid = jail.WORKER_UID_FIRST + offset
        code = f"import os, ctypes; os.setresuid({uid}, {uid}, {uid}); "
        code += f"ctypes.CDLL(None).syscall({KEYCTL}, 7, -4)"  # KEYCTL_CLEAR the user keyring
        subprocess.run([sys.executable, "-c", code], check=False, timeout=30)


@needs_jail
def test_students_of_one_class_cannot_talk_through_ipc_or_keyrings_and_nothing_is_left(
    tmp_path,
):
    """Two students hand in ``ipc_channel``: the first plants SysV shm and a message queue
    (mode 0666), a POSIX queue and a key in its uid's user keyring; the second finds none,
    and no IPC object of a worker exists after the class run."""
    code = (ATTACKS / "ipc_channel" / "activity_1_01.py").read_text()
    klass = tmp_path / "submissions"
    for name in ("anna", "ben"):
        (klass / name).mkdir(parents=True)
        (klass / name / "activity_1_01.py").write_text(code)
    before = sysv_objects()
    out = tmp_path / "results"
    try:
        run = grade_class(klass, out)
        assert run.returncode == 0, run.stdout + run.stderr
        feedback = (out / "feedback" / "ben.md").read_text()
        assert "FOUND" not in feedback, feedback
        book = rows(out)
        assert [book[s]["total"] for s in ("anna", "ben")] == ["3", "3"], book
        assert sysv_objects() - before == set(), "SysV objects outlived the class run"
        assert libc.mq_open(QUEUE, 0) < 0 and ctypes.get_errno() == errno.ENOENT, (
            "a POSIX message queue outlived the class run"
        )
    finally:
        remove_leftovers(before)


KEYRING_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
KEYCTL, ADD_KEY, SECRET = {keyctl}, {add_key}, {secret!r}.encode()
if libc.syscall(KEYCTL, 1, b"dlgrade-test-session") < 0:  # KEYCTL_JOIN_SESSION_KEYRING
    sys.exit(f"join: {{os.strerror(ctypes.get_errno())}}")
key = libc.syscall(ADD_KEY, b"user", b"dlgrade-secret", SECRET, len(SECRET), -3)
buffer = ctypes.create_string_buffer(256)
if key < 0 or libc.syscall(KEYCTL, 11, key, buffer, 256) != len(SECRET):  # KEYCTL_READ
    sys.exit(f"planting the key failed: {{os.strerror(ctypes.get_errno())}}")
os.execv(sys.executable, [sys.executable, "-m", "dlgrade.cli", *sys.argv[1:]])
"""


@needs_jail
@pytest.mark.skipif(KEYCTL is None, reason=f"keyctl's number on {MACHINE} is not known here")
def test_a_key_in_the_graders_session_keyring_is_out_of_the_workers_reach(tmp_path):
    submission = tmp_path / "work"
    submission.mkdir()
    (submission / "activity_1_01.py").write_text(
        (ATTACKS / "keyring_read" / "activity_1_01.py").read_text()
    )
    wrapper = KEYRING_WRAPPER.format(keyctl=KEYCTL, add_key=ADD_KEY, secret=SECRET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, "-c", wrapper, "check", str(submission), "--checks", str(LIGHT)]
        + ["--call-timeout", "10"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert SECRET not in run.stdout + run.stderr
    assert run.returncode == 0, run.stdout + run.stderr  # loss_fn found no key: full marks


# -- the syscall filter ----------------------------------------------------------------

DENIED_IN_ATTACK = (
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "process_vm_readv",
    "process_vm_writev", "userfaultfd", "io_uring_setup", "setns", "mount", "init_module",
    "kexec_load", "open_by_handle_at", "unshare", "ptrace", "clone(CLONE_NEWUSER)",
)  # fmt: skip


@needs_filter
def test_calls_no_activity_needs_fail_with_eperm_and_the_session_goes_on(contained):
    graded = contained("syscalls")
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    said = dict(line.split(": ", 1) for line in loss["stdout"].splitlines() if ": " in line)
    assert {name: said.get(name) for name in DENIED_IN_ATTACK} == dict.fromkeys(
        DENIED_IN_ATTACK, "EPERM"
    ), loss["stdout"]
    assert_next_check_runs(graded)


DENIED_CALL = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)

def keys():
    if libc.syscall({KEYCTL}, 0, -3, 0) < 0:
        error = ctypes.get_errno()
        raise PermissionError(error, os.strerror(error))
    return "allowed"
"""


@needs_filter
def test_a_denied_call_that_raises_tells_the_student_the_sandbox_refused_it(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "keys.py").write_text(DENIED_CALL)
    session = WorkerSession(tmp_path / "sub")
    try:
        with pytest.raises(SubmissionError) as excinfo:
            session.call("keys", "keys")
    finally:
        session.close()
    assert excinfo.value.reason == "student_exception"
    assert "Operation not permitted" in str(excinfo.value)
    assert SYSCALL_DENIED_MESSAGE in str(excinfo.value)


def test_the_filter_lists_only_calls_this_machine_knows_and_skips_the_others():
    known = jail.syscall_numbers(jail.DENIED_SYSCALLS + ("no_such_call_dlgrade",))
    if known is None:
        pytest.skip("libseccomp cannot be loaded here: the jail runs without the filter")
    assert "no_such_call_dlgrade" not in known
    assert {"ptrace", "keyctl", "bpf", "mount"} <= set(known)


def test_the_header_says_whether_the_jail_filters_system_calls(monkeypatch):
    without = jail.Support(True, filter_why_not="libseccomp cannot be loaded")
    monkeypatch.setattr(jail, "support", lambda: without)
    line = describe(Limits(), "namespaces")
    assert "private mounts, pids, IPC, UTS and keyring" in line
    assert "WARNING no syscall filter (libseccomp cannot be loaded)" in line
    monkeypatch.setattr(jail, "support", lambda: jail.Support(True, syscall_filter=True))
    assert "), syscall filter (seccomp), unprivileged uid;" in describe(Limits(), "namespaces")


def test_a_jail_that_cannot_load_the_filter_or_join_a_keyring_refuses_to_start(monkeypatch):
    """Both fail loudly (JailError: the worker is not started), never silently."""
    monkeypatch.setattr(jail, "_libseccomp", lambda: None)
    with pytest.raises(jail.JailError, match="libseccomp cannot be loaded"):
        jail.load_syscall_filter()
    monkeypatch.setattr(jail, "_keyctl", lambda *args: -1)
    with pytest.raises(jail.JailError, match="could not join a new session keyring"):
        jail.join_new_session_keyring()
    with pytest.raises(jail.JailError, match="could not clear"):
        jail.clear_own_keyrings()


# -- memory in every form ----------------------------------------------------------------


def test_memory_hidden_in_memfds_is_counted_and_the_worker_stopped(contained):
    """6 memfds of 512 MiB, written and never mapped, under --memory-limit 2."""
    graded = contained("memfd_hoard", "--memory-limit", "2", "--call-timeout", "60")
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == ("crash", "memory_limit"), loss["feedback"]
    said = RESIDENT_LIMIT_MESSAGE.format(gib=2, label="LABEL", used="USED", parts="PARTS")
    assert said.split(" during")[0] in loss["feedback"]
    assert "your code's processes held" in loss["feedback"]
    in_memfds = re.search(r"([\d.]+) GiB in shared memory and memfds", loss["feedback"])
    assert in_memfds and float(in_memfds[1]) >= 1.5, loss["feedback"]
    assert_next_check_runs(graded)


@needs_jail
def test_dev_shm_and_sysv_segments_hold_no_more_than_their_small_caps(contained):
    graded = contained("shm_hoard", "--memory-limit", "2", "--call-timeout", "60")
    loss = graded.check("loss_fn_at_known_points")
    assert loss["outcome"] == "pass", loss["feedback"]
    said = dict(line.split(": ", 1) for line in loss["stdout"].splitlines() if ": " in line)
    full_at = said["dev/shm"]
    assert full_at.startswith("full at") and full_at.endswith("(ENOSPC)"), loss["stdout"]
    assert int(full_at.split()[2]) <= jail.SHM_BYTES // 2**20
    assert said["mount"] == "EPERM"
    assert said["sysv"].startswith("stopped at"), loss["stdout"]
    assert int(said["sysv"].split()[2]) <= jail.SYSV_SHM_BYTES // 2**20
    assert_next_check_runs(graded)


@contextlib.contextmanager
def memfds(sizes: list[int], mapped: list[bool], duplicated: list[bool]):
    """memfds of these sizes (written, not sparse); some mapped, some open twice."""
    fds, maps = [], []
    try:
        for size, is_mapped, twice in zip(sizes, mapped, duplicated, strict=True):
            fd = os.memfd_create("dlgrade-test")
            fds.append(fd)
            os.write(fd, b"\1" * size)
            if twice:
                fds.append(os.dup(fd))
            if is_mapped:
                region = mmap.mmap(fd, size)
                region[: size // 2] = b"\2" * (size // 2)  # a mapped part, touched
                maps.append(region)
        yield
    finally:
        for region in maps:
            region.close()
        for fd in fds:
            os.close(fd)


def _pages(size: int) -> int:
    return -(-size // mmap.PAGESIZE) * mmap.PAGESIZE


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 2**21), st.booleans(), st.booleans()), min_size=1, max_size=5
    )
)
def test_each_memfd_is_counted_once_at_its_size_mapped_or_not(files):
    """Whether it is mapped, open twice or both, a memfd counts once, for all its pages."""
    me = [os.getpid()]
    base = jail.memory_held(me).files
    sizes, mapped, twice = (list(column) for column in zip(*files, strict=True))
    with memfds(sizes, mapped, twice):
        held = jail.memory_held(me).files - base
    assert held == sum(_pages(size) for size in sizes)


def test_a_memfd_written_then_mapped_untouched_and_closed_is_still_counted():
    """Its pages are in no RssShmem and behind no fd: only the mappings show it."""
    me = [os.getpid()]
    base = jail.memory_held(me).files
    fd = os.memfd_create("dlgrade-test")
    os.write(fd, b"\1" * 2**20)
    region = mmap.mmap(fd, 2**20)
    os.close(fd)
    try:
        assert jail.memory_held(me).files - base == 2**20
    finally:
        region.close()
