"""Helpers shared by the test modules (no test module imports another): the repository's
folders, running `dlgrade` as a student would, building grade records, the class-run and
attack fixtures' pieces, mutants, and a machine kept to ourselves for timing tests."""

from __future__ import annotations

import csv
import fcntl
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlgrade import gradebook
from dlgrade.gradebook import GRADED, StudentRecord
from dlgrade.mutants import Mutant  # noqa: F401 (re-exported for the tests)
from dlgrade.rubric import hidden_name
from dlgrade.sandbox import isolation_mode

REPO = Path(__file__).resolve().parent.parent
CHECKS = REPO / "checks"
REFERENCE = REPO / "reference"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
MUTANTS = Path(__file__).resolve().parent / "mutants"


def rubric_file(activity: str) -> Path:
    """The activity's public rubric."""
    return CHECKS / f"activity_{activity.replace('.', '_')}.py"


def rubric_files(activity: str) -> list[Path]:
    """The activity's public rubric and, where it has one, its hidden checks' file."""
    public = rubric_file(activity)
    hidden = public.with_name(hidden_name(public.name))
    return [public, hidden] if hidden.is_file() else [public]


def running(*argv: str) -> list[int]:
    """Pids of live processes (not zombies) whose command line is exactly ``argv``."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() != wanted:
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX":
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


@contextmanager
def machine_to_ourselves():
    """Run no other such block at once, in any pytest-xdist worker: the tests that load the
    machine on purpose (CPU hogs) and the tests that measure or compare under load (class
    runs on a Dask cluster) would otherwise disturb each other's clocks."""
    lock = Path(tempfile.gettempdir()) / "dlgrade-tests-machine.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


LIGHT = Path(__file__).parent / "rubrics" / "light"


def dlgrade(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, "-m", "dlgrade.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def check(
    check_id: str,
    outcome: str = "pass",
    max_points: float = 2,
    *,
    visibility: str = "public",
    reason: str = "",
    feedback: str = "",
    stdout: str = "",
    duration_s: float = 0.4,
) -> dict:
    """One check of a record as stored: ``CheckResult.to_dict(title=True)``."""
    activity, name = check_id.split("/")
    return {
        "id": check_id,
        "activity": activity,
        "tier": "standard",
        "visibility": visibility,
        "points": max_points if outcome == "pass" else 0,
        "max_points": max_points,
        "outcome": outcome,
        "reason": reason or ("" if outcome == "pass" else "check_failed"),
        "feedback": feedback,
        "duration_s": duration_s,
        "stdout": stdout,
        "title": name.replace("_", " ").capitalize(),
    }


def record(student: str, checks: list[dict], **fields) -> StudentRecord:
    values = {
        "folder": f"/class/submissions/{student}",
        "status": GRADED,
        "key": f"sha256-{student}",
        "tier": "standard",
        "rubric_version": "2026.1",
        "seed": 20211,
        "activities": tuple(dict.fromkeys(c["activity"] for c in checks)),
        "checks": tuple(checks),
        "started_at": "2026-03-01T10:00:00+00:00",
        "finished_at": "2026-03-01T10:01:00+00:00",
        "wall_s": 60.0,
    }
    values.update(fields)
    return StudentRecord(student=student, **values)


BROKEN = SUBMISSIONS / "broken"
MODULE = "activity_1_01.py"


def good_code() -> str:
    """A TensorFlow-free 1.01 that passes the light rubric (wrong_type, mended)."""
    return (
        (BROKEN / "wrong_type" / MODULE)
        .read_text()
        .replace('return f"{abs(a * x**2 + b * x + c)}"', "return abs(a * x**2 + b * x + c)")
    )


def student(root: Path, name: str, source: Path | str | None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    if isinstance(source, Path):
        shutil.copy(source / MODULE, folder / MODULE)
    elif isinstance(source, str):
        (folder / MODULE).write_text(source)
    return folder


def grade(source: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    return dlgrade("grade", source, "--out", out, "--checks", LIGHT, "--call-timeout", 5, *extra)


def rows(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def records(out: Path) -> dict[str, gradebook.StudentRecord]:
    return {r.student: r for r in gradebook.load_records(out)}


def _hog(stop):
    # Its own session, as another program would be: with the kernel's autogroups, CPU is
    # shared between sessions first, and hogs in the test's session would only compete
    # with each other.
    os.setsid()
    while not stop.is_set():
        pass


@contextmanager
def busy_machine(per_cpu: int = 1, cpus=None):
    """``per_cpu`` CPU-bound processes per CPU (pinned to ``cpus`` if given); no other
    such load, and no Dask class run, runs meanwhile (``machine_to_ourselves``)."""
    with machine_to_ourselves(), _hogs(per_cpu, cpus):
        yield


@contextmanager
def _hogs(per_cpu: int, cpus):
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    targets = sorted(cpus or os.sched_getaffinity(0))
    hogs = [context.Process(target=_hog, args=(stop,), daemon=True) for _ in targets * per_cpu]
    for index, hog in enumerate(hogs):
        hog.start()
        if cpus:
            os.sched_setaffinity(hog.pid, {targets[index % len(targets)]})
    try:
        time.sleep(0.3)
        yield
    finally:
        stop.set()
        for hog in hogs:
            hog.join(5)
            if hog.is_alive():
                hog.kill()


ATTACKS = Path(__file__).resolve().parent / "attacks"
JAILED = isolation_mode() == "namespaces"


needs_jail = pytest.mark.skipif(
    not JAILED, reason="only the jail (root and namespaces) stops this; see docs/security.md"
)


# Small limits keep the bombs quick; without TensorFlow the worker needs ~0.2 GiB.
FAST = ("--no-preload", "--call-timeout", "5", "-k", "loss_fn or start")
SECRET = "the other student's answers: 42"


@dataclass
class Classroom:
    """An attacked submission, another student's folder beside it, and a results folder."""

    submission: Path
    sibling: Path
    results: Path

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Everything outside the worker's folders that the attack could change."""
        state = {}
        for root in (CHECKS, REFERENCE, self.sibling, self.submission, self.results):
            for path in sorted(root.rglob("*")):
                if path.parent == self.results and path.name in ("grade.json", ".keras"):
                    continue  # the grader's own output, and its Keras settings (HOME)
                if self.results / ".keras" in path.parents:
                    continue
                info = path.lstat()
                state[str(path)] = (info.st_mtime_ns, info.st_size)
        return state


def assert_next_check_runs(graded) -> None:
    start = graded.check("start_is_honoured")
    assert start["outcome"] == "pass", start["feedback"]


VARIANTS = Path(__file__).resolve().parent / "variants"


# the mutants live in dlgrade/mutants.py (the installed `dlgrade calibrate` applies them)
MUTANT_FILES = sorted(MUTANTS.glob("*.mutant"))


#: what differs between two gradings of the same work: clocks and where the grading ran
VOLATILE = {"started_at", "finished_at", "wall_s", "duration_s", "worker"}
#: a timeout's feedback names the wall time when a busy machine stretched the limit
STRETCHED = re.compile(r" of its own time \(\d+ s of wall time on a busy machine\)")


def stable(value):
    """grades.json without what differs between any two gradings of it: clocks, where the
    grading ran, and the wall time a busy machine gave a timeout."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    if isinstance(value, str):
        return STRETCHED.sub("", value)
    return value


def class_of_six(root: Path) -> Path:
    """A right, a wrong, a hanging, a crashing, an attacking and an empty submission, for
    the light rubric (``LIGHT``)."""
    student(root, "alice", good_code())
    student(root, "bob", BROKEN / "wrong_type")
    student(root, "carol", BROKEN / "infinite_loop")
    student(root, "dave", BROKEN / "os_exit")
    student(root, "mallory", ATTACKS / "kill_parent")
    student(root, "erin", None)
    return root


# -- pytest run from a test ------------------------------------------------------------------

#: what an in-process run imports that the next run must import afresh: the rubrics (every
#: rubric folder names its modules activity_N_NN) and conftest files
RUN_MODULES = ("activity_", "conftest")


class Runner:
    """A pytest session run from a test, in a folder of its own, through pytest's public API.

    pytester's in-process runs restore ``sys.modules`` afterwards, dropping every module the
    run imported; TensorFlow (and numpy's C core) cannot be imported twice in one process and
    abort. This runner keeps the libraries a run imports and drops only the run's rubric and
    conftest modules (:data:`RUN_MODULES`), and restores ``sys.path``. Its results are
    :class:`pytest.RunResult`, as pytester's are.
    """

    def __init__(self, path: Path):
        self.path = path

    def mkdir(self, name: str) -> Path:
        folder = self.path / name
        folder.mkdir()
        return folder

    def makepyfile(self, *sources: str, **files: str) -> Path:
        """As pytester's: ``name=source`` files, or one positional source as test_run.py."""
        import textwrap

        written = []
        for name, source in [*(("test_run", s) for s in sources), *files.items()]:
            target = self.path / f"{name}.py"
            target.write_text(textwrap.dedent(source).lstrip("\n"))
            written.append(target)
        return written[0]

    def _args(self, args) -> list[str]:
        return [*(str(a) for a in args), f"--basetemp={self.path / 'basetemp'}"]

    def runpytest_inprocess(self, *args) -> pytest.RunResult:
        import io
        from contextlib import redirect_stderr, redirect_stdout

        before, path, cwd = set(sys.modules), list(sys.path), os.getcwd()
        out, err = io.StringIO(), io.StringIO()
        began = time.monotonic()
        os.chdir(self.path)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = pytest.main(self._args(args))
                except SystemExit as exc:
                    code = exc.code
        finally:
            os.chdir(cwd)
            sys.path[:] = path
            for name in set(sys.modules) - before:
                if name.startswith(RUN_MODULES):
                    del sys.modules[name]
        lines = out.getvalue().splitlines(), err.getvalue().splitlines()
        return pytest.RunResult(code, *lines, time.monotonic() - began)

    runpytest = runpytest_inprocess

    def runpytest_subprocess(self, *args, timeout: float | None = None) -> pytest.RunResult:
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *self._args(args)],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = done.stdout.splitlines(), done.stderr.splitlines()
        return pytest.RunResult(done.returncode, *lines, time.monotonic() - began)
