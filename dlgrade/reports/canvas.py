"""``canvas.csv``: a file Canvas's gradebook import (Grades → Import) accepts.

What this relies on, from Canvas's own gradebook export and its importer
(``GradebookImporter`` in canvas-lms):

- The header row starts ``Student, ID, SIS User ID, SIS Login ID, Section``: the importer
  wants "Student" in the first cell and "ID" in the second, recognises the two SIS columns
  by name, and requires the last student column to be "Section". Every later column is an
  assignment.
- An assignment column whose header is not ``Title (<canvas id>)`` and matches no existing
  assignment's title creates a new assignment with that title; ours are
  ``Activity 1.01 (dlgrade)`` etc. Re-importing the same file updates the
  assignments it created, matched by title.
- A row whose first cell contains ``Points Possible`` is not a student: it sets each new
  assignment's points possible (Canvas's export writes it as the first data row).
- A student is matched by ``ID`` (the Canvas user id: our ``lms_id``), else by SIS User ID
  or SIS Login ID, else by name. We know neither SIS id, so without an ``lms_id`` Canvas
  falls back to the name in ``Student`` — which is the student's name, or their id.
- Numbers are plain decimals. A student whose run is INCOMPLETE gets empty grade cells, so
  a partial score is never imported as their grade before the regrade.

There is no total column on purpose: it would become an assignment of its own, and Canvas's
course total would count every activity twice (``gradebook.csv`` has the total). Text cells
get the same formula-injection guard as ``gradebook.csv``.
"""

from __future__ import annotations

import csv
import io

from dlgrade.gradebook import GRADED, Gradebook, StudentRecord
from dlgrade.reports.gradebook_csv import format_points, safe_cell

STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "Points Possible"


def activity_column(activity: str) -> str:
    return f"Activity {activity} (dlgrade)"


def header(book: Gradebook) -> list[str]:
    return [*STUDENT_COLUMNS, *(activity_column(a) for a in book.activities)]


def points_possible(book: Gradebook) -> list[str]:
    """The most points any student could get per column (the rubric's max at their tier)."""
    maxima = [
        max((r.activity_scores().get(a, (0.0, 0.0))[1] for r in book.records), default=0.0)
        for a in book.activities
    ]
    return [POINTS_POSSIBLE, *[""] * (len(STUDENT_COLUMNS) - 1), *map(format_points, maxima)]


def row(book: Gradebook, record: StudentRecord) -> list[str]:
    """A student's row; an INCOMPLETE run's grade cells stay empty until it is regraded."""
    scores = record.activity_scores() if record.status == GRADED else {}
    return [
        safe_cell(record.name or record.student),
        safe_cell(record.lms_id),
        "",
        "",
        "",
        *(format_points(scores[a][0]) if a in scores else "" for a in book.activities),
    ]


def render(book: Gradebook) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header(book))
    writer.writerow(points_possible(book))
    for record in sorted(book.records, key=lambda r: r.student):
        writer.writerow(row(book, record))
    return buffer.getvalue()
