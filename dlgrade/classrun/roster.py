"""The class to grade: which students, where their files are, and the key each is graded under.

``dlgrade grade`` finds one folder per student, hashes each folder's files together with the
rubric's version and the tier into a key, and grades only the students whose key has no
finished record yet. The roster it hands to pytest (``--class-roster``) is a small JSON file,
so that every pytest-xdist worker grades from the same list.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dlgrade
from dlgrade.atomic import write_atomic
from dlgrade.errors import DlgradeError
from dlgrade.files import submission_files
from dlgrade.gradebook import INCOMPLETE, StudentRecord, unique_ids
from dlgrade.sandbox.notebook import SUFFIXES, module_path
from dlgrade.text import shown_name


class RosterError(DlgradeError):
    """The class folder or the roster file cannot be used as given."""


@dataclass(frozen=True)
class Student:
    """One student of the roster."""

    student: str  # id: the gradebook's key and the pytest id
    folder: str  # absolute path of the submission folder
    key: str = ""  # sha256 of files + rubric version + tier + seed
    name: str = ""
    lms_id: str = ""


@dataclass(frozen=True)
class Roster:
    """Who is graded in this run, and how."""

    out: str  # results folder: records go to OUT/students/
    run: str  # this run's id: a worker that takes over a student resumes its checks
    tier: str
    seed: int
    rubric_version: str
    activities: tuple[str, ...]
    students: tuple[Student, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["activities"] = list(self.activities)
        data["students"] = [asdict(s) for s in self.students]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Roster:
        return cls(
            out=data["out"],
            run=data["run"],
            tier=data["tier"],
            seed=int(data["seed"]),
            rubric_version=data["rubric_version"],
            activities=tuple(data["activities"]),
            students=tuple(Student(**s) for s in data["students"]),
        )

    def record(self, student: Student, **fields: Any) -> StudentRecord:
        """A record of ``student`` graded in this run: the one place a record is built.
        ``fields``: the run's outcome (status, checks, times, note, worker statistics)."""
        fields.setdefault("status", INCOMPLETE)
        fields.setdefault("checks", ())
        return StudentRecord(
            student=student.student,
            folder=student.folder,
            key=student.key,
            tier=self.tier,
            rubric_version=self.rubric_version,
            seed=self.seed,
            activities=self.activities,
            name=student.name,
            lms_id=student.lms_id,
            **fields,
        )

    def write(self, path: Path) -> None:
        # ASCII JSON: a folder name that is not UTF-8 round-trips as \udcXX escapes, which
        # only dlgrade's own processes read (every report shows it escaped instead)
        write_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def read(cls, path: Path) -> Roster:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RosterError(
                f"--class-roster {path}: not a roster written by `dlgrade grade` ({exc}); "
                "run `dlgrade grade` rather than pytest with this option"
            ) from exc


def find_students(root: Path) -> list[tuple[str, Path, str]]:
    """(student id, folder, display name) for each sub-folder of ``root``, sorted by the
    name; ids unique and file-safe (:func:`_with_names`)."""
    root = Path(root)
    if not root.is_dir():
        raise RosterError(f"{root}: no such folder; pass the folder holding one folder per student")
    folders = sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith((".", "_"))
    )
    if not folders:
        loose = sorted(p.name for p in root.glob("activity_*") if p.suffix in SUFFIXES)
        hint = (
            f"it holds {', '.join(loose)} itself: to grade one submission run "
            f"`dlgrade check {root}`"
            if loose
            else "put each student's files in a folder of their own"
        )
        raise RosterError(f"{root} holds no student folders; {hint}")
    return _with_names(folders)


def _with_names(folders: list[Path]) -> list[tuple[str, Path, str]]:
    """(student id, folder, display name) for each folder: ids by
    :func:`~dlgrade.gradebook.unique_ids`; the display name is the folder's own name,
    escaped (:func:`~dlgrade.text.shown_name`), where the id had to change it, else ""."""
    ids = unique_ids([folder.name for folder in folders])
    return [
        (student, folder.resolve(), "" if student == folder.name else shown_name(folder.name))
        for student, folder in zip(ids, folders, strict=True)
    ]


def files_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes: changes when any file does."""
    digest = hashlib.sha256()
    for path in submission_files(folder):
        # os.fsencode: a name that is not UTF-8 hashes as its bytes (str.encode would raise)
        relative = os.fsencode(path.relative_to(folder).as_posix())
        digest.update(len(relative).to_bytes(4, "big") + relative)
        with open(path, "rb") as fh:
            file_digest = hashlib.file_digest(fh, "sha256")
        digest.update(file_digest.digest())
    return digest.hexdigest()


def rubric_version(rubric_files: list[Path]) -> str:
    """The rubric's identity: the dlgrade version and the bytes of every rubric file used."""
    digest = hashlib.sha256(f"dlgrade {dlgrade.__version__}".encode())
    for path in sorted(rubric_files, key=lambda p: p.name):
        digest.update(os.fsencode(path.name) + b"\0" + path.read_bytes() + b"\0")
    return f"{dlgrade.__version__}+{digest.hexdigest()[:12]}"


def grading_key(files: str, version: str, tier: str, seed: int) -> str:
    return hashlib.sha256(f"{files}|{version}|{tier}|{seed}".encode()).hexdigest()


def activities_present(folders: list[Path], rubric_root: Path | None = None) -> list[str]:
    """Every activity of ``rubric_root`` (the packaged ``checks/`` for None) that at least
    one student submitted, in the book's order."""
    from dlgrade.selection import known_activities

    return [
        activity
        for activity, (module, _title) in known_activities(rubric_root).items()
        if any(module_path(folder, module) is not None for folder in folders)
    ]
