"""``grades.json``: every record in full, for the instructor (hidden feedback included)."""

from __future__ import annotations

from dlgrade.gradebook import Gradebook
from dlgrade.text import dumps


def shared(book: Gradebook, attribute: str) -> str:
    """The value of ``attribute`` every record shares, or the distinct values joined by ', '."""
    return ", ".join(sorted({str(getattr(record, attribute)) for record in book.records}))


def document(book: Gradebook) -> dict:
    return {
        "tier": shared(book, "tier"),
        "rubric_version": shared(book, "rubric_version"),
        "activities": list(book.activities),
        "students": [record.to_dict() for record in sorted(book.records, key=lambda r: r.student)],
    }


def render(book: Gradebook) -> str:
    return dumps(document(book), indent=2) + "\n"
