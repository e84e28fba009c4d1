"""``feedback/<student>.md`` and ``.html``: what one student may see of their grade.

This module decides what a student sees of a check (:func:`student_view`), and the Gradescope
export uses it too. A public check that did not pass shows its feedback and what the
student's code printed; a hidden check shows only its title, its points and
:data:`~dlgrade.gradebook.HIDDEN_FEEDBACK` — never its feedback, output, seed or inputs.

It also decides how an activity whose module could not be imported reads (:func:`arrange`,
used by the console and Gradescope too): once, as an :class:`ImportFailure` — the import's
own message and fix, then the checks it cost — instead of one identical block per check.
The records keep one result per check with its points; only the reports group them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dlgrade import activities
from dlgrade.gradebook import HIDDEN_FEEDBACK, INCOMPLETE, StudentRecord
from dlgrade.reasons import IMPORT_FAILURES
from dlgrade.reports.gradebook_csv import format_percent, format_points
from dlgrade.rubric import CheckResult
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
    #: "best training accuracy 0.962 ≥ 0.95": the number a public check compared, or ""
    measured: str = ""


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
        measured=check.measured.text() if check.measured is not None and not hidden else "",
    )


#: what precedes the checks an import failure cost
COST_TEXT = "This cost {checks} ({points}):"
#: the separator classify() put before a check's own fix (records written before it stopped
#: adding one to import failures still carry it)
_FIX_SEPARATOR = "\nWhat to fix: "


def _plural(count: float, noun: str) -> str:
    return f"{format_points(count)} {noun}" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class ImportFailure:
    """One activity's module that could not be imported, and the checks that cost."""

    activity: str
    reason: str
    #: the import's own message and fix, as the first public check it cost has it
    message: str
    #: what the student's code printed while it was being imported (that check's output)
    stdout: str
    checks: tuple[CheckResult, ...]

    @property
    def module(self) -> str:
        return activities.module_name(self.activity)

    @property
    def heading(self) -> str:
        return f"{self.module} could not be imported"

    @property
    def label(self) -> str:
        return self.reason.replace("_", " ")

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks)

    def cost(self) -> str:
        """``This cost 7 checks (16 points):`` — the points lost, which the list follows."""
        return COST_TEXT.format(
            checks=_plural(len(self.checks), "check"),
            points=_plural(self.max_points - self.points, "point"),
        )


def import_message(check: CheckResult) -> str | None:
    """The import failure a check ended with (its feedback without a check's own fix), or
    None when it did not end with one."""
    if check.passed or check.reason not in IMPORT_FAILURES:
        return None
    head, separator, _ = check.feedback.rpartition(_FIX_SEPARATOR)
    return head if separator else check.feedback


def arrange(checks: Iterable[CheckResult]) -> list[CheckResult | ImportFailure]:
    """The checks in order, with each activity's import failure once, where its first check
    stood, in place of every check it cost.

    A failure groups the checks of one activity with the same reason and message. Its
    message is shown from a public check: a hidden check joins only a failure whose message
    a public check shows word for word (its own feedback may quote hidden inputs), and a
    hidden check's failure that no public check shares stays a hidden check of its own.
    """
    checks = list(checks)
    shown: dict[tuple[str, str, str], CheckResult] = {}
    for check in checks:
        message = import_message(check)
        if message is not None and check.visibility != "hidden":
            shown.setdefault((check.activity, check.reason, message), check)
    members: dict[tuple[str, str, str], list[CheckResult]] = {}
    order: list[CheckResult | tuple[str, str, str]] = []
    for check in checks:
        message = import_message(check)
        key = (check.activity, check.reason, message or "")
        if message is None or key not in shown:
            order.append(check)
            continue
        if key not in members:
            members[key] = []
            order.append(key)
        members[key].append(check)
    return [
        ImportFailure(
            activity=item[0],
            reason=item[1],
            message=item[2],
            stdout=shown[item].stdout,
            checks=tuple(members[item]),
        )
        if isinstance(item, tuple)
        else item
        for item in order
    ]


def activity_title(activity: str) -> str:
    title = activities.title(activity)  # of the rubric folder in use
    return f"Activity {activity} — {title}" if title else f"Activity {activity}"


def by_activity(record: StudentRecord) -> list[tuple[str, list[StudentView]]]:
    """The record's checks as students see them, grouped by activity in the record's order."""
    groups: dict[str, list[StudentView]] = {a: [] for a in record.activities}
    for check in record.checks:
        groups.setdefault(check.activity, []).append(student_view(check))
    return list(groups.items())


def arranged(record: StudentRecord) -> list[tuple[str, list[StudentView | ImportFailure]]]:
    """:func:`by_activity`, with each import failure once in place of the checks it cost."""
    groups: dict[str, list[CheckResult]] = {a: [] for a in record.activities}
    for check in record.checks:
        groups.setdefault(check.activity, []).append(check)
    return [
        (activity, [_viewed(item) for item in arrange(checks)])
        for activity, checks in groups.items()
    ]


def _viewed(item: CheckResult | ImportFailure) -> StudentView | ImportFailure:
    return item if isinstance(item, ImportFailure) else student_view(item)


def _activity_total(items: list[StudentView | ImportFailure]) -> tuple[str, str]:
    return (
        format_points(sum(i.points for i in items)),
        format_points(sum(i.max_points for i in items)),
    )


def _cost_line(check: CheckResult) -> tuple[str, str]:
    """A costed check as the list shows it: (its title, ``0/2``)."""
    title = (check.title or check.id) + (" (hidden)" if check.visibility == "hidden" else "")
    return title, f"{format_points(check.points)}/{format_points(check.max_points)}"


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
    for activity, items in arranged(record):
        got, possible = _activity_total(items)
        lines += [f"## {md_text(activity_title(activity))} — {got}/{possible}", ""]
        for view in items:
            if isinstance(view, ImportFailure):
                lines += _import_markdown(view)
                continue
            mark = PASS_MARK if view.passed else FAIL_MARK
            hidden = " (hidden)" if view.hidden else ""
            status = ""
            if _outcome_label(view):
                status = f" — {md_text(_outcome_label(view))}"
            lines.append(
                f"- {mark} {md_text(view.title)}{hidden}: "
                f"{format_points(view.points)}/{format_points(view.max_points)}{status}"
            )
            if view.measured:
                lines += ["", f"  Measured: {md_text(view.measured)}", ""]
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


def _import_markdown(failure: ImportFailure) -> list[str]:
    lines = [
        f"- {FAIL_MARK} **{md_text(failure.heading)}**: {format_points(failure.points)}/"
        f"{format_points(failure.max_points)} — {md_text(failure.label)}",
        "",
        _indent(md_block(failure.message)),
        "",
    ]
    if failure.stdout.strip():
        lines += ["  Your code printed:", "", _indent(md_block(failure.stdout)), ""]
    lines += [f"  {md_text(failure.cost())}", ""]
    for check in failure.checks:
        title, points = _cost_line(check)
        lines.append(f"  - {md_text(title)}: {points}")
    lines.append("")
    return lines


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
ul.cost { margin: .2rem 0 0; padding-left: 1.5rem; font-size: .9em; }
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
    for activity, items in arranged(record):
        got, possible = _activity_total(items)
        parts.append(
            f"<h2><span>{_esc(activity_title(activity))}</span><span>{got}/{possible}</span></h2>"
        )
        parts.append('<ul class="checks">')
        for view in items:
            if isinstance(view, ImportFailure):
                parts.append(_import_html(view))
            else:
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
    if view.measured:
        body.append(f'<p class="measured">Measured: {_esc(view.measured)}</p>')
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


def _import_html(failure: ImportFailure) -> str:
    body = [
        f'<li class="fail import"><span class="mark">{FAIL_MARK}</span>'
        f"<strong>{_esc(failure.heading)}</strong>"
        f'<span class="outcome">{_esc(failure.label)}</span>'
        f'<span class="points">{format_points(failure.points)}/'
        f"{format_points(failure.max_points)}</span>",
        f"<pre>{_esc(failure.message)}</pre>",
    ]
    if failure.stdout.strip():
        body.append('<p class="label">Your code printed:</p>')
        body.append(f"<pre>{_esc(failure.stdout.rstrip())}</pre>")
    body.append(f'<p class="label">{_esc(failure.cost())}</p><ul class="cost">')
    for check in failure.checks:
        title, points = _cost_line(check)
        body.append(f'<li>{_esc(title)}<span class="points">{points}</span></li>')
    body.append("</ul></li>")
    return "".join(body)
