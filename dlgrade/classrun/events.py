"""What the class run's two halves tell each other: the progress events its pytest plugin
(:mod:`dlgrade.classrun.plugin`, in an xdist worker) reports to the controlling process
(:mod:`dlgrade.classrun.engine`) and on to the console (:mod:`dlgrade.classrun.progress`),
how a check's node id names its student, and the note of a record still being written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dlgrade.gradebook import StudentRecord

#: a record's note while its student is being graded (a crash leaves it behind)
IN_PROGRESS_NOTE = "grading was under way (run {run}) and stopped before every check finished"
#: the key of the user property the class run's plugin attaches to each graded check's
#: report: a :class:`CheckGraded`, as a dict
REPORT_PROPERTY = "dlgrade"


@dataclass(frozen=True)
class StudentStarted:
    """A student's first check began (on some grading process)."""

    student: str


@dataclass(frozen=True)
class CheckGraded:
    """One check of a student finished; ``done``: it was the student's last."""

    student: str
    check: str
    outcome: str
    abnormal: bool
    done: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckGraded:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class StudentGraded:
    """A student's record is in (it may say ``incomplete``)."""

    record: StudentRecord


@dataclass(frozen=True)
class GraderDied:
    """A grading process died during this student's check (pytest-xdist replaced it)."""

    student: str
    check: str


Event = StudentStarted | CheckGraded | StudentGraded | GraderDied


def student_of(nodeid: str) -> str | None:
    """``checks/activity_1_01.py::test_x[alice]@student0`` → ``alice``."""
    head = nodeid.rsplit("@", 1)[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid
    if not head.endswith("]") or "[" not in head:
        return None
    return head[head.rindex("[") + 1 : -1]
