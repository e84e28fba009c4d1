"""``gradescope/<student>/results.json``: a student's grade in Gradescope's autograder format.

Follows Gradescope's "Autograder Specifications" (``results.json``): top-level ``score``,
``output``, ``visibility`` and ``stdout_visibility``, and one entry per check in ``tests``
with ``name``, ``number``, ``score``, ``max_score``, ``status`` (``passed``/``failed``),
``output`` and ``visibility``. Gradescope shows ``output`` to the student, so it holds only
what :func:`dlgrade.reports.feedback.student_view` allows; hidden checks are shown
``after_published`` and never carry their feedback or output.
"""

from __future__ import annotations

from typing import Any

from dlgrade.gradebook import INCOMPLETE, Gradebook, StudentRecord
from dlgrade.reports.feedback import INCOMPLETE_TEXT, PASSED_TEXT, student_view
from dlgrade.reports.gradebook_csv import format_percent, format_points
from dlgrade.text import dumps, printable

#: how much of what a student's code printed goes into one test's output (characters)
STDOUT_CAP = 4000


def _number(value: float) -> int | float:
    rounded = round(float(value), 6)
    return int(rounded) if rounded.is_integer() else rounded


def _capped(text: str) -> str:
    text = text.rstrip()
    if len(text) <= STDOUT_CAP:
        return text
    return text[:STDOUT_CAP] + f"\n… ({len(text) - STDOUT_CAP} more characters not shown)"


def test_entry(check: dict[str, Any]) -> dict[str, Any]:
    view = student_view(check)
    if view.passed:
        output = PASSED_TEXT
    else:
        output = view.feedback
        if view.stdout.strip():
            output += f"\n\nYour code printed:\n{_capped(view.stdout)}"
    return {
        "name": f"{view.activity} · {view.title}",
        "number": view.id,
        "score": _number(view.points),
        "max_score": _number(view.max_points),
        "status": "passed" if view.passed else "failed",
        "output": printable(output),
        "visibility": "after_published" if view.hidden else "visible",
    }


def results(record: StudentRecord) -> dict[str, Any]:
    output = (
        f"dlgrade · tier {record.tier} · score {format_points(record.score)}/"
        f"{format_points(record.max_score)} ({format_percent(record.percent)}%)"
    )
    if record.status == INCOMPLETE:
        output = f"{INCOMPLETE_TEXT}\n{record.note or 'no details'}\n\n{output}"
    return {
        "score": _number(record.score),
        "output": printable(output),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [test_entry(check) for check in record.checks],
    }


def render(book: Gradebook) -> dict[str, str]:
    """``<student>/results.json`` → its text, for every student."""
    return {
        f"{book.stems[record.student]}/results.json": dumps(results(record), indent=2) + "\n"
        for record in book.records
    }
