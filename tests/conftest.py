"""Shared fixtures: run a rubric over a submission in a throwaway pytest session."""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest import pytester as _pytester

from dlgrade import models
from dlgrade.rubric import hidden_name

REPO = Path(__file__).resolve().parent.parent
CHECKS = REPO / "checks"
REFERENCE = REPO / "reference"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
MUTANTS = Path(__file__).resolve().parent / "mutants"


# pytester restores sys.modules after each in-process run, dropping every module the run
# imported; TensorFlow (and numpy's C core) cannot be imported twice in one process and
# abort. Keep library modules across runs; drop only the rubric and conftest modules.
_snapshot_init = _pytester.SysModulesSnapshot.__init__


def _keep_libraries(self, preserve=None):
    _snapshot_init(self, preserve=lambda name: not name.startswith(("activity_", "conftest")))


_pytester.SysModulesSnapshot.__init__ = _keep_libraries


def rubric_file(activity: str) -> Path:
    """The activity's public rubric."""
    return CHECKS / f"activity_{activity.replace('.', '_')}.py"


def rubric_files(activity: str) -> list[Path]:
    """The activity's public rubric and, where it has one, its hidden checks' file."""
    public = rubric_file(activity)
    hidden = public.with_name(hidden_name(public.name))
    return [public, hidden] if hidden.is_file() else [public]


@dataclass
class Graded:
    """A finished grading session: pytest's result and the grade JSON it wrote."""

    run: pytest.RunResult
    grade: dict

    def check(self, name: str) -> dict:
        """The check whose id ends with ``/name``."""
        found = [c for c in self.grade["checks"] if c["id"].endswith("/" + name)]
        assert len(found) == 1, (
            f"no single check {name!r} in {[c['id'] for c in self.grade['checks']]}"
        )
        return found[0]

    @property
    def outcomes(self) -> dict[str, str]:
        return {c["id"]: c["outcome"] for c in self.grade["checks"]}


@pytest.fixture
def grade(pytester: pytest.Pytester):
    """``grade(submission_dir, activities=("1.01",), tier="quick", *extra_args)``."""

    def run(submission: Path, activities=("1.01",), tier="quick", *extra: str) -> Graded:
        models.keras()  # once per test process, outside any snapshot (see below)
        out = pytester.path / "grade.json"
        out.unlink(missing_ok=True)
        files = [str(f) for a in activities for f in rubric_files(a)]
        result = pytester.runpytest_inprocess(
            *files,
            "--submission",
            str(submission),
            "--tier",
            tier,
            "--grade-json",
            str(out),
            "-p",
            "no:cacheprovider",
            *extra,
        )
        assert out.exists(), f"no grade JSON was written:\n{result.stdout.str()}"
        return Graded(result, json.loads(out.read_text()))

    return run


@pytest.fixture
def broken(tmp_path: Path):
    """Copy ``tests/submissions/<name>`` into a fresh folder and return it."""

    def copy(name: str) -> Path:
        target = tmp_path / name.replace("/", "_")
        shutil.copytree(SUBMISSIONS / name, target)
        return target

    return copy


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
