"""``gradescope/<student>/results.json``: a student's grade in Gradescope's autograder format.

Follows Gradescope's "Autograder Specifications" (``results.json``): top-level ``score``,
``output``, ``visibility`` and ``stdout_visibility``, and one entry per check in ``tests``
with ``name``, ``number``, ``score``, ``max_score``, ``status`` (``passed``/``failed``),
``output`` and ``visibility``. Gradescope shows ``output`` to the student, so it holds only
what :func:`dlgrade.reports.feedback.student_view` allows; hidden checks are shown
``after_published`` and never carry their feedback or output.

An activity whose module could not be imported (:func:`dlgrade.reports.feedback.arrange`)
keeps one test per check, each with its unchanged score — Gradescope sums the tests, and a
regrade or an instructor's override works per test — but the import's message and fix
appear once, in the top-level ``output``, with the checks it cost; each of those tests
says only :data:`IMPORT_COST_OUTPUT`. The top-level output is what Gradescope shows above
the tests, so the one cause is read first, and not once per test: putting it into the
first costed test instead would leave the others pointing at a test the student may not
have open.
"""

from __future__ import annotations

from typing import Any

from dlgrade.gradebook import INCOMPLETE, Gradebook, StudentRecord
from dlgrade.reports.feedback import (
    INCOMPLETE_TEXT,
    PASSED_TEXT,
    ImportFailure,
    arrange,
    student_view,
)
from dlgrade.reports.gradebook_csv import format_percent, format_points
from dlgrade.rubric import CheckResult
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


#: a test's output when its activity's module could not be imported (the message is above)
IMPORT_COST_OUTPUT = (
    "Failed because {module} could not be imported ({label}): what happened and what to "
    "fix is at the top of this page, once for every check it cost."
)


def test_entry(check: CheckResult, failure: ImportFailure | None = None) -> dict[str, Any]:
    """One check as a Gradescope test; ``failure``: the import failure that cost it."""
    view = student_view(check)
    if view.passed:
        output = PASSED_TEXT
    elif failure is not None:
        output = IMPORT_COST_OUTPUT.format(module=failure.module, label=failure.label)
    else:
        output = view.feedback
        if view.stdout.strip():
            output += f"\n\nYour code printed:\n{_capped(view.stdout)}"
    if view.measured:
        output += f"\n\nMeasured: {view.measured}"
    return {
        "name": f"{view.activity} · {view.title}",
        "number": view.id,
        "score": _number(view.points),
        "max_score": _number(view.max_points),
        "status": "passed" if view.passed else "failed",
        "output": printable(output),
        "visibility": "after_published" if view.hidden else "visible",
    }


def import_failure_text(failure: ImportFailure) -> str:
    """An import failure, once, for the top-level output: the cause, its fix, its cost."""
    lines = [
        f"Activity {failure.activity}: {failure.heading} ({failure.label})",
        failure.message.rstrip(),
    ]
    if failure.stdout.strip():
        lines += ["", "Your code printed:", _capped(failure.stdout)]
    lines += ["", failure.cost()]
    for check in failure.checks:
        hidden = " (hidden)" if check.visibility == "hidden" else ""
        lines.append(
            f"  - {check.title or check.id}{hidden}: "
            f"{format_points(check.points)}/{format_points(check.max_points)}"
        )
    return "\n".join(lines)


def results(record: StudentRecord) -> dict[str, Any]:
    output = (
        f"dlgrade · tier {record.tier} · score {format_points(record.score)}/"
        f"{format_points(record.max_score)} ({format_percent(record.percent)}%)"
    )
    if record.status == INCOMPLETE:
        output = f"{INCOMPLETE_TEXT}\n{record.note or 'no details'}\n\n{output}"
    failures = [item for item in arrange(record.checks) if isinstance(item, ImportFailure)]
    cost = {id(check): failure for failure in failures for check in failure.checks}
    for failure in failures:
        output += "\n\n" + import_failure_text(failure)
    return {
        "score": _number(record.score),
        "output": printable(output),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [test_entry(check, cost.get(id(check))) for check in record.checks],
    }


def render(book: Gradebook) -> dict[str, str]:
    """``<student>/results.json`` → its text, for every student."""
    return {
        f"{book.stems[record.student]}/results.json": dumps(results(record), indent=2) + "\n"
        for record in book.records
    }
