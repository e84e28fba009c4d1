"""``feedback/<student>.md`` and ``.html``: what one student may see of their grade.

This module decides what a student sees of a check (:func:`student_view`), and the Gradescope
export uses it too. A public check that did not pass shows its feedback and what the
student's code printed; a hidden check shows only its title, its points and
:data:`~dlgrade.gradebook.HIDDEN_FEEDBACK` — never its feedback, output, seed or inputs.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from dlgrade.gradebook import HIDDEN_FEEDBACK, INCOMPLETE, StudentRecord
from dlgrade.reports.gradebook_csv import format_percent, format_points
from dlgrade.rubric import ACTIVITIES, CheckResult
from dlgrade.text import printable

PASS_MARK = "✓"
FAIL_MARK = "✗"
PASSED_TEXT = "Passed."
#: the top of a page whose run did not finish; the record's note follows
INCOMPLETE_TEXT = (
    "Your grading run did not finish, so this grade is not final: the instructor will "
    "regrade your submission."
)


@dataclass(frozen=True)
class StudentView:
    """What a student may see of one check."""

    id: str
    activity: str
    title: str
    hidden: bool
    passed: bool
    outcome: str
    points: float
    max_points: float
    feedback: str  # "" on a pass
    stdout: str  # what their code printed; always "" for a hidden check


def student_view(check: CheckResult) -> StudentView:
    hidden = check.visibility == "hidden"
    passed = check.passed
    if passed:
        feedback = ""
    elif hidden:
        feedback = HIDDEN_FEEDBACK
    else:
        feedback = check.feedback
    return StudentView(
        id=check.id,
        activity=check.activity,
        title=check.title or check.id,
        hidden=hidden,
        passed=passed,
        outcome="" if hidden else check.outcome,
        points=check.points,
        max_points=check.max_points,
        feedback=feedback,
        stdout="" if hidden or passed else check.stdout,
    )


def activity_title(activity: str) -> str:
    title = ACTIVITIES.get(activity, ("", ""))[1]
    return f"Activity {activity} — {title}" if title else f"Activity {activity}"


def by_activity(record: StudentRecord) -> list[tuple[str, list[StudentView]]]:
    """The record's checks as students see them, grouped by activity in the record's order."""
    groups: dict[str, list[StudentView]] = {a: [] for a in record.activities}
    for check in record.checks:
        groups.setdefault(check.activity, []).append(student_view(check))
    return list(groups.items())


def _total(views: list[StudentView]) -> tuple[str, str]:
    return (
        format_points(sum(v.points for v in views)),
        format_points(sum(v.max_points for v in views)),
    )


def _outcome_label(view: StudentView) -> str:
    """``timeout``, ``not implemented``...: what kind of ✗ (a plain wrong answer needs none)."""
    return "" if view.outcome in ("", "pass", "fail") else view.outcome.replace("_", " ")


def _who(record: StudentRecord) -> str:
    return f"{record.name} ({record.student})" if record.name else record.student


# ---------------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#&!])")


def md_text(text: str) -> str:
    """Inline Markdown that renders as the literal text (no markup, no raw HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(printable(text).split()))


def md_block(text: str, info: str = "text") -> str:
    """A fenced code block that no content can close early."""
    text = printable(text)
    runs = [len(m) for m in re.findall(r"`{3,}", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def render_markdown(record: StudentRecord) -> str:
    lines = [f"# Feedback for {md_text(_who(record))}", ""]
    if record.status == INCOMPLETE:
        lines += [f"> **{INCOMPLETE_TEXT}**", ">", f"> {md_text(record.note or 'no details')}", ""]
    lines += [
        f"- Tier: {md_text(record.tier)}",
        f"- Score: **{format_points(record.score)}/{format_points(record.max_score)}** "
        f"({format_percent(record.percent)}%)",
        "",
    ]
    for activity, views in by_activity(record):
        got, possible = _total(views)
        lines += [f"## {md_text(activity_title(activity))} — {got}/{possible}", ""]
        for view in views:
            mark = PASS_MARK if view.passed else FAIL_MARK
            hidden = " (hidden)" if view.hidden else ""
            status = ""
            if _outcome_label(view):
                status = f" — {md_text(_outcome_label(view))}"
            lines.append(
                f"- {mark} {md_text(view.title)}{hidden}: "
                f"{format_points(view.points)}/{format_points(view.max_points)}{status}"
            )
            if view.passed:
                continue
            if view.hidden:
                lines += ["", f"  {md_text(view.feedback)}", ""]
                continue
            lines += ["", _indent(md_block(view.feedback)), ""]
            if view.stdout.strip():
                lines += ["  Your code printed:", "", _indent(md_block(view.stdout)), ""]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _indent(block: str) -> str:
    return "\n".join(f"  {line}" if line else "" for line in block.splitlines())


# -------------------------------------------------------------------------------------- HTML

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; max-width: 920px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem;
     margin-top: 2rem; display: flex; justify-content: space-between; }
.meta { color: #57606a; }
.incomplete { background: #fff8c5; border: 1px solid #d4a72c; padding: .75rem 1rem;
              border-radius: 6px; }
ul.checks { list-style: none; padding: 0; }
ul.checks > li { padding: .4rem 0; border-bottom: 1px solid #eaeef2; }
.mark { display: inline-block; width: 1.3em; font-weight: bold; }
.pass .mark { color: #1a7f37; } .fail .mark { color: #cf222e; }
.points { float: right; font-variant-numeric: tabular-nums; }
.outcome { color: #cf222e; font-size: .85em; margin-left: .5em; }
.tag { font-size: .75em; background: #eaeef2; border-radius: 4px; padding: 0 .35em; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .6rem;
      overflow-x: auto; white-space: pre-wrap; word-break: break-word; font-size: .85em; }
.label { font-size: .85em; color: #57606a; margin: .4rem 0 0; }
""".strip()


def _esc(text: str) -> str:
    """Escaped for HTML, control characters (a student's names and messages) removed."""
    return html.escape(printable(text), quote=True)


def render_html(record: StudentRecord) -> str:
    who = _esc(_who(record))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Feedback — {who}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Feedback for {who}</h1>",
    ]
    if record.status == INCOMPLETE:
        parts.append(
            f'<div class="incomplete"><strong>{_esc(INCOMPLETE_TEXT)}</strong><br>'
            f"{_esc(record.note or 'no details')}</div>"
        )
    parts.append(
        f'<p class="meta">Tier {_esc(record.tier)} · score '
        f"<strong>{format_points(record.score)}/{format_points(record.max_score)}</strong> "
        f"({format_percent(record.percent)}%)</p>"
    )
    for activity, views in by_activity(record):
        got, possible = _total(views)
        parts.append(
            f"<h2><span>{_esc(activity_title(activity))}</span><span>{got}/{possible}</span></h2>"
        )
        parts.append('<ul class="checks">')
        for view in views:
            parts.append(_check_html(view))
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _check_html(view: StudentView) -> str:
    css = "pass" if view.passed else "fail"
    mark = PASS_MARK if view.passed else FAIL_MARK
    hidden = ' <span class="tag">hidden</span>' if view.hidden else ""
    outcome = ""
    if _outcome_label(view):
        outcome = f'<span class="outcome">{_esc(_outcome_label(view))}</span>'
    body = [
        f'<li class="{css}"><span class="mark">{mark}</span>{_esc(view.title)}{hidden}{outcome}'
        f'<span class="points">{format_points(view.points)}/'
        f"{format_points(view.max_points)}</span>"
    ]
    if not view.passed:
        if view.hidden:
            body.append(f"<p>{_esc(view.feedback)}</p>")
        else:
            body.append(f"<pre>{_esc(view.feedback)}</pre>")
            if view.stdout.strip():
                body.append('<p class="label">Your code printed:</p>')
                body.append(f"<pre>{_esc(view.stdout.rstrip())}</pre>")
    body.append("</li>")
    return "".join(body)
