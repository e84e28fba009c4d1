"""Every class export of ``dlgrade grade``, rebuilt from the student records.

The writers (one module per format) render text from a :class:`~dlgrade.gradebook.Gradebook`;
this module puts it on disk, each file atomically, so a reader or a crash never sees half a
file. The same records give the same bytes: everything is ordered, and the only timestamps
are the records' own.
"""

from __future__ import annotations

from pathlib import Path

from dlgrade.atomic import write_atomic
from dlgrade.gradebook import Gradebook
from dlgrade.reports import (
    canvas,
    feedback,
    gradebook_csv,
    grades_json,
    gradescope,
    junit,
    summary_html,
)

GRADEBOOK_CSV = "gradebook.csv"
GRADES_JSON = "grades.json"
JUNIT_XML = "junit.xml"
CANVAS_CSV = "canvas.csv"
SUMMARY_HTML = "summary.html"
GRADESCOPE_DIR = "gradescope"
FEEDBACK_DIR = "feedback"


def render_all(
    book: Gradebook,
    similarity: tuple[int, int] | None = None,
    calibration: dict | None = None,
) -> dict[str, str]:
    """Every export as ``relative path → text``, in a stable order. ``similarity``: the
    counts of a similarity report beside them, linked from the summary only;
    ``calibration``: the rubrics' calibration file, shown in the summary only."""
    files = {
        GRADEBOOK_CSV: gradebook_csv.render(book),
        GRADES_JSON: grades_json.render(book),
        JUNIT_XML: junit.render(book),
        CANVAS_CSV: canvas.render(book),
    }
    for name, text in gradescope.render(book).items():
        files[f"{GRADESCOPE_DIR}/{name}"] = text
    for record in book.records:
        stem = f"{FEEDBACK_DIR}/{book.stems[record.student]}"
        files[f"{stem}.md"] = feedback.render_markdown(record)
        files[f"{stem}.html"] = feedback.render_html(record)
    # last: a reader who sees a new summary finds the pages it links to
    files[SUMMARY_HTML] = summary_html.render(book, similarity, calibration)
    return files


def _prune(out: Path, keep: set[Path]) -> None:
    """Drop per-student exports of students who no longer have a record."""
    stale = [
        *(out / FEEDBACK_DIR).glob("*.md"),
        *(out / FEEDBACK_DIR).glob("*.html"),
        *(out / GRADESCOPE_DIR).glob("*/results.json"),
    ]
    for path in stale:
        if path not in keep:
            path.unlink(missing_ok=True)
            if path.parent.parent == out / GRADESCOPE_DIR and not any(path.parent.iterdir()):
                path.parent.rmdir()


def calibration_of(rubric_root: Path | None) -> dict | None:
    """The calibration file beside the rubrics (``dlgrade calibrate``); None where there is no
    rubric folder or the file cannot be read (the summary then says "not calibrated")."""
    if rubric_root is None:
        return None
    from dlgrade import calibrate
    from dlgrade.errors import UsageError

    try:
        return calibrate.read(Path(rubric_root) / calibrate.FILE)
    except (UsageError, OSError):
        return None


def write_exports(out: Path, book: Gradebook, rubric_root: Path | None = None) -> list[Path]:
    """(Re)write every class export under out/ from the records; return the paths written.
    ``rubric_root``: the rubric folder, whose calibration the summary shows."""
    from dlgrade.similarity import flagged

    out = Path(out)
    rendered = render_all(book, flagged(out), calibration_of(rubric_root))
    written = [write_atomic(out / name, text) for name, text in rendered.items()]
    _prune(out, set(written))
    return written
