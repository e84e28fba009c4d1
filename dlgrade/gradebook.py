"""A class's grades: one record per student, written atomically as each student finishes.

``dlgrade grade`` keeps one JSON file per student under ``OUT/students/`` — the single
source of truth from which every export (gradebook CSV, Canvas CSV, Gradescope JSON, JUnit,
feedback pages, summary) is rebuilt. A record carries the key it was graded under (a hash of
the student's files, the rubric version and the tier), so a later run regrades only what is
missing or changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dlgrade.atomic import write_atomic
from dlgrade.errors import DlgradeError
from dlgrade.rubric import CheckResult, percent, totals
from dlgrade.text import dumps

#: a student's run ended normally: every check produced a result
GRADED = "graded"
#: the student's run was cut short (the grader itself crashed or was interrupted); the
#: checks that did finish are kept, the others count 0, and a re-run grades the student again
INCOMPLETE = "incomplete"
STATUSES = (GRADED, INCOMPLETE)

#: what a student sees for a hidden check that did not pass (its inputs never leak)
HIDDEN_FEEDBACK = (
    "This hidden check runs your code on inputs you have not seen; it did not pass. "
    "Re-read the activity's contract and test your functions on your own inputs."
)

RECORD_VERSION = 1
STUDENTS_DIR = "students"


class GradebookError(DlgradeError):
    """A results folder holds a file that is not a student record."""


@dataclass(frozen=True)
class StudentRecord:
    """Everything one grading run of one student produced."""

    student: str  # the id: folder name, or the LMS id for an LMS export
    folder: str  # the submission folder that was graded (absolute)
    status: str  # GRADED or INCOMPLETE
    key: str  # sha256 of files + rubric version + tier; a re-run with the same key is skipped
    tier: str
    rubric_version: str
    seed: int
    activities: tuple[str, ...]  # the activities graded, in order
    checks: tuple[CheckResult, ...]  # stored as CheckResult.to_dict(title=True)
    started_at: str = ""  # ISO 8601, UTC
    finished_at: str = ""
    wall_s: float = 0.0
    name: str = ""  # display name, when an LMS export gives one
    lms_id: str = ""  # the LMS's user id, when known
    note: str = ""  # why the run is INCOMPLETE, or a harness message
    #: where the time went: worker starts, TensorFlow preload, time inside the submission's
    #: calls, and the grading process (statistics for instructors and benchmarks)
    worker: dict[str, Any] = field(default_factory=dict)
    #: what the student's worker ran on: "CPU", "GPU 0: NVIDIA H200" (dlgrade.gpu)
    device: str = ""
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        checks = tuple(
            c if isinstance(c, CheckResult) else CheckResult.from_dict(c) for c in self.checks
        )
        object.__setattr__(self, "checks", checks)

    @property
    def score(self) -> float:
        return totals(self.checks)[0]

    @property
    def max_score(self) -> float:
        return totals(self.checks)[1]

    @property
    def percent(self) -> float:
        return percent(*totals(self.checks))

    def activity_scores(self) -> dict[str, tuple[float, float]]:
        """activity → (points, max points), for every graded activity."""
        groups: dict[str, list[CheckResult]] = {activity: [] for activity in self.activities}
        for result in self.checks:
            groups.setdefault(result.activity, []).append(result)
        return {activity: totals(results) for activity, results in groups.items()}

    def abnormal(self) -> list[CheckResult]:
        """The checks whose run ended abnormally (timeout, crash)."""
        return [c for c in self.checks if c.abnormal]

    def reason(self) -> str:
        """One line for the gradebook row: why this student's run was not normal, or ''."""
        parts = []
        if self.status != GRADED:
            parts.append(f"{self.status}: {self.note or 'the run did not finish'}")
        counts = Counter(
            f"{c.outcome} ({c.reason})" if c.reason else c.outcome for c in self.abnormal()
        )
        parts += [f"{what} ×{n}" if n > 1 else what for what, n in sorted(counts.items())]
        internal = [c for c in self.checks if c.is_internal_error]
        if internal:
            parts.append(f"grader error in {len(internal)} check(s): regrade after the fix")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["activities"] = list(self.activities)
        data["checks"] = [c.to_dict(title=True) for c in self.checks]
        data["score"], data["max_score"] = self.score, self.max_score
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentRecord:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["activities"] = tuple(values.get("activities", ()))
        values["checks"] = tuple(CheckResult.from_dict(c) for c in values.get("checks", ()))
        return cls(**values)


_SAFE_ID = re.compile(r"[^A-Za-z0-9._@+-]+")


def safe_id(name: str) -> str:
    """A student id usable as a file name and a pytest id: other characters become '_'."""
    # stripped after the cut, so that an id is its own safe_id (record_path relies on it)
    return _SAFE_ID.sub("_", name)[:100].strip("._") or "student"


def unique_ids(names: list[str]) -> list[str]:
    """:func:`safe_id` of each name, made distinct where two names clean to one id — any
    character outside the safe set (the Latin-1 byte ``\\xe9`` and the NFC "é" both become
    "_"), case (two record files on a case-insensitive disk), a long shared prefix — by a
    suffix hashed from the name itself, so the same names get the same ids in every run."""
    seen: set[str] = set()
    ids = []
    for name in names:
        student, salt = safe_id(name), 0
        while student.casefold() in seen:
            raw = name.encode("utf-8", "surrogatepass") + (b"\0%d" % salt if salt else b"")
            student = f"{safe_id(name)[:90]}-{hashlib.sha256(raw).hexdigest()[:6]}"
            salt += 1
        seen.add(student.casefold())
        ids.append(student)
    return ids


def record_path(out: Path, student: str) -> Path:
    return Path(out) / STUDENTS_DIR / f"{safe_id(student)}.json"


def write_record(out: Path, record: StudentRecord) -> Path:
    """Write a student's record atomically (see :func:`write_atomic`)."""
    text = dumps(record.to_dict(), indent=2) + "\n"  # strict: a forged NaN becomes null
    return write_atomic(record_path(out, record.student), text)


def read_record(path: Path) -> StudentRecord:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise ValueError(f"not a version-{RECORD_VERSION} student record")
        return StudentRecord.from_dict(data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise GradebookError(
            f"{path}: cannot read this student record ({exc}); delete it and re-run "
            "`dlgrade grade` to grade that student again"
        ) from exc


def load_records(out: Path) -> list[StudentRecord]:
    """Every student record under ``out``, sorted by student id."""
    folder = Path(out) / STUDENTS_DIR
    if not folder.is_dir():
        return []
    records = [read_record(p) for p in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda r: r.student)


@dataclass(frozen=True)
class Gradebook:
    """The class: its records, and the activities and checks that make the columns."""

    records: tuple[StudentRecord, ...]
    activities: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, records: list[StudentRecord]) -> Gradebook:
        from dlgrade.activities import sort_key

        seen = {a for r in records for a in r.activities}
        ordered = tuple(sorted(seen, key=sort_key))  # the book's order: 2.01 before 10.01
        return cls(tuple(sorted(records, key=lambda r: r.student)), ordered)

    @cached_property
    def stems(self) -> dict[str, str]:
        """student id → the name of their own export files (``feedback/<stem>.html``,
        ``gradescope/<stem>/``): file-safe, and distinct even for ids that clean to one."""
        students = list(dict.fromkeys(r.student for r in self.records))
        return dict(zip(students, unique_ids(students), strict=True))

    def check_ids(self) -> list[str]:
        """Every check id, in first-seen order (stable across runs of the same rubric)."""
        ids: dict[str, None] = {}
        for record in self.records:
            for result in record.checks:
                ids.setdefault(result.id, None)
        return list(ids)
