"""Shared fixtures: run a rubric over a submission in a throwaway pytest session."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlgrade import models
from tests.helpers import ATTACKS, SECRET, SUBMISSIONS, Classroom, Runner, rubric_files


@pytest.fixture(autouse=True)
def packaged_activities():
    """Each test starts with the packaged rubrics' activities in use: a grading session
    makes its rubric folder the one whose titles head the reports (dlgrade.activities.use),
    and a toy folder of one test must not title the next test's reports."""
    from dlgrade import activities

    activities.use(None)
    yield
    activities.use(None)


@pytest.fixture
def runner(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """pytest sessions run from a test (:class:`tests.helpers.Runner`), in a folder that is
    the working folder and HOME for the test, as pytester's is; with no outer options."""
    path = tmp_path_factory.mktemp("run")
    monkeypatch.chdir(path)
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.setenv("PY_COLORS", "0")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return Runner(path)


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
def grade(runner: Runner):
    """``grade(submission_dir, activities=("1.01",), tier="quick", *extra_args)``."""

    def run(submission: Path, activities=("1.01",), tier="quick", *extra: str) -> Graded:
        models.keras()  # once per test process, outside any snapshot (see below)
        out = runner.path / "grade.json"
        out.unlink(missing_ok=True)
        files = [str(f) for a in activities for f in rubric_files(a)]
        result = runner.runpytest_inprocess(
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


@pytest.fixture
def classroom(tmp_path: Path, runner: Runner):
    """``classroom(name, **targets)``: lay out tests/attacks/<name> for grading.

    ``targets.json`` in the submission tells the attack where things are, as an attacker
    who knows the grading machine would: the sibling's secret, the results folder and
    whatever the test adds (a port).
    """

    def make(name: str, **targets) -> Classroom:
        room = tmp_path / "class"
        submission = room / name
        shutil.copytree(ATTACKS / name, submission)
        sibling = room / "other_student"
        sibling.mkdir()
        (sibling / "secret.txt").write_text(SECRET)
        (submission / "planted").symlink_to(sibling)  # a link the student planted
        (runner.path / "other-student.json").write_text('{"score": 3}')
        targets = {"secret": str(sibling / "secret.txt"), "results": str(runner.path)} | targets
        (submission / "targets.json").write_text(json.dumps(targets))
        return Classroom(submission, sibling, runner.path)

    return make
