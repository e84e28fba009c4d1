"""``gradebook.csv``: one row per student, one column per activity, totals and the reason.

This is the instructor's spreadsheet. Its columns are stable: ``student, name, lms_id,
status``, one column per activity of the class (header ``1.01``, value the points), then
``total, max_total, percent, reason``.
"""

from __future__ import annotations

import csv
import io

from dlgrade.gradebook import Gradebook
from dlgrade.text import printable

FIXED_COLUMNS = ("student", "name", "lms_id", "status")
TOTAL_COLUMNS = ("total", "max_total", "percent", "reason")

#: a spreadsheet treats a cell that starts with one of these as a formula (CSV injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """Text from a student, made inert for a spreadsheet: one line, control characters
    removed, and a formula trigger at its start gets a leading '."""
    text = " ".join(printable(text).splitlines())
    return f"'{text}" if text.startswith(FORMULA_TRIGGERS) else text


def format_points(value: float) -> str:
    """Points without float noise: ``11``, ``2.5``, ``0.333333``."""
    rounded = round(float(value), 6)
    if rounded.is_integer():
        return str(int(rounded))
    return f"{rounded:.6f}".rstrip("0").rstrip(".")


def format_percent(value: float) -> str:
    return f"{round(float(value), 1):.1f}"


def header(book: Gradebook) -> list[str]:
    return [*FIXED_COLUMNS, *book.activities, *TOTAL_COLUMNS]


def rows(book: Gradebook) -> list[list[str]]:
    """Every student's row, sorted by student id, whatever the status of their run."""
    table = []
    for record in sorted(book.records, key=lambda r: r.student):
        scores = record.activity_scores()
        per_activity = [format_points(scores[a][0]) if a in scores else "" for a in book.activities]
        table.append(
            [
                safe_cell(record.student),
                safe_cell(record.name),
                safe_cell(record.lms_id),
                record.status,
                *per_activity,
                format_points(record.score),
                format_points(record.max_score),
                format_percent(record.percent),
                safe_cell(record.reason()),
            ]
        )
    return table


def render(book: Gradebook) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header(book))
    writer.writerows(rows(book))
    return buffer.getvalue()
