"""``dlgrade canvas push``: post each graded student's score to a Canvas assignment.

The records under ``results/students/`` (:func:`dlgrade.gradebook.load_records`) are the
source; Canvas is talked to through ``canvasapi`` (the ``canvas`` extra). What canvasapi
does not do, this module adds around it, at the HTTP session it sends through
(:class:`RetryingSession`): it raises at once on a 429 or a 5xx, so the session waits as
``Retry-After`` says (or backs off) and tries again, a bounded number of times. Pagination
(``Link: rel="next"``) is canvasapi's own.

A push is planned before anything is written (:func:`plan_push`: pure, from the gradebook
and the submissions Canvas holds now), so that ``--dry-run`` shows exactly what a push would
do; then only the grades that differ are written, and every written grade is read back.
The token comes from ``CANVAS_TOKEN`` only and is scrubbed from every message
(:func:`redact`).
"""

from __future__ import annotations

import argparse
import csv
import email.utils
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlgrade.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, DlgradeError
from dlgrade.gradebook import GRADED, Gradebook, StudentRecord, load_records
from dlgrade.reasons import GRADER_FAULTS, Reason
from dlgrade.reports.gradebook_csv import format_points
from dlgrade.text import printable

TOKEN_ENV = "CANVAS_TOKEN"
INSTALL_HINT = "pip install 'dlgrade[canvas]'"
#: Canvas's grading types a number can be posted to (letter and GPA grades: Canvas turns
#: the points into a grade with the assignment's grading scheme)
POINTS_TYPES = ("points", "letter_grade", "gpa_scale")
PERCENT_TYPE = "percent"
#: a check that ended with one of these was not graded on its merits: the student is held
HOLD_REASONS = (*GRADER_FAULTS, Reason.DATA_MISSING, Reason.RUNNER)
#: bounded retries: attempts per request, the longest single wait, and the 5xx backoff
MAX_ATTEMPTS = 6
MAX_WAIT_S = 120.0
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)
RETRY_STATUSES = (500, 502, 503, 504)
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class CanvasPushError(DlgradeError):
    """The push cannot go on: a usage error (exit 2) or a failure in Canvas (exit 1)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def redact(text: Any, token: str) -> str:
    """``text`` printable, with the token (and its ``Bearer`` header) never in it."""
    shown = printable(str(text))
    return shown.replace(token, "[CANVAS_TOKEN]") if token else shown


class _Scrub(logging.Filter):
    """Takes the token out of canvasapi's own log lines (its debug log shows every
    response's body; a server that echoed the token would put it there)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.token and self.token in text:
            record.msg, record.args = text.replace(self.token, "[CANVAS_TOKEN]"), None
        return True


@contextmanager
def _scrubbed_logs(token: str):
    logger, scrub = logging.getLogger("canvasapi.requester"), _Scrub(token)
    logger.addFilter(scrub)
    try:
        yield
    finally:
        logger.removeFilter(scrub)


# -- the HTTP session: rate limits and transient errors -----------------------------------


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_rate_limited(response) -> bool:
    # Canvas's throttling answers 403 "Rate Limit Exceeded" on older instances, 429 on newer
    if response.status_code == 429:
        return True
    return response.status_code == 403 and "rate limit exceeded" in response.text.lower()


def _session_class():
    import requests

    class RetryingSession(requests.Session):
        """A ``requests`` session that waits out 429s (``Retry-After``) and retries 5xx
        with a bounded backoff; ``sleep`` is injectable, ``waits`` records every wait."""

        def __init__(self, sleep: Callable[[float], None] | None = None) -> None:
            super().__init__()
            self.sleep = sleep or (lambda seconds: time.sleep(seconds))
            self.waits: list[tuple[int, float]] = []
            self.last_status = 0

        def request(self, method, url, *args, **kwargs):
            for attempt in range(MAX_ATTEMPTS):
                response = super().request(method, url, *args, **kwargs)
                self.last_status = response.status_code
                limited = _is_rate_limited(response)
                if not (limited or response.status_code in RETRY_STATUSES):
                    return response
                if attempt == MAX_ATTEMPTS - 1:
                    return response
                wait = _retry_after(response.headers.get("Retry-After")) if limited else None
                if wait is None:
                    wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                wait = min(wait, MAX_WAIT_S)
                self.waits.append((response.status_code, wait))
                self.sleep(wait)
            return response  # pragma: no cover - the loop always returns

    return RetryingSession


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One student's grade as it is in Canvas and as dlgrade would post it."""

    student: str
    user_id: str
    current: str  # Canvas's entered grade, shown ("" when none)
    new: str  # what is posted: "17.5" (points) or "87.5%" (percent)
    comment: str
    points: float  # the points Canvas should hold afterwards (read-back)


@dataclass(frozen=True)
class Held:
    """A student who is not pushed, and why."""

    student: str
    why: str


@dataclass
class Plan:
    """What a push would do: the changes, the grades already right, who is held back."""

    course: str
    assignment: str
    points_possible: float
    grading_type: str
    changes: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    unmapped: list[Held] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    scaled: dict[float, float] = field(default_factory=dict)  # our max → points possible


def not_fully_graded(record: StudentRecord) -> str:
    """Why a record's score is not a grade to post, or '' when it is."""
    if record.status != GRADED:
        return record.reason() or record.status
    faulty = [c for c in record.checks if c.reason in HOLD_REASONS]
    if faulty:
        reasons = sorted({str(c.reason) for c in faulty})
        return f"{len(faulty)} check(s) not graded on their merits ({', '.join(reasons)})"
    if not record.max_score:
        return "no points possible in this record"
    return ""


def read_roster(path: Path) -> dict[str, str]:
    """student id → Canvas user id, from a CSV with the columns ``student`` and
    ``canvas_id`` (or ``lms_id``)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            id_column = next((c for c in ("canvas_id", "lms_id") if c in columns), None)
            if "student" not in columns or id_column is None:
                raise CanvasPushError(
                    f"--roster {path}: the header must name the columns 'student' and "
                    f"'canvas_id' (or 'lms_id'); it has {', '.join(columns) or 'none'}"
                )
            mapping = {}
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                student, user = row.get("student", ""), row.get(id_column, "")
                if not student:
                    continue
                if user and not user.isdigit():
                    raise CanvasPushError(
                        f"--roster {path}, line {line}: {id_column} {printable(user)!r} is not "
                        "a Canvas user id (digits, the ID column of Canvas's gradebook export)"
                    )
                mapping[student] = user
            return mapping
    except OSError as exc:
        raise CanvasPushError(f"--roster {path}: cannot read it ({exc.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CanvasPushError(f"--roster {path}: not a UTF-8 CSV file ({exc})") from None


def _number(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _feedback_pointer(book: Gradebook, record: StudentRecord, template: str | None) -> str:
    stem = book.stems[record.student]
    if template:
        try:
            url = template.format(student=stem, stem=stem, lms_id=record.lms_id)
        except (KeyError, IndexError, ValueError) as exc:
            raise CanvasPushError(
                f"--feedback-url {template!r}: {exc!r} is not a placeholder; use {{stem}}, "
                "{student} or {lms_id}"
            ) from None
        return f"Your feedback: {url}"
    return f"Your feedback page: feedback/{stem}.html (from your instructor's dlgrade results)"


def comment_for(
    book: Gradebook, record: StudentRecord, posted: str, plan: Plan, template: str | None
) -> str:
    """The short comment posted with a grade: the total, each activity, the feedback."""
    import dlgrade

    total = f"{format_points(record.score)}/{format_points(record.max_score)} points"
    if plan.grading_type == PERCENT_TYPE:
        total += f" ({posted})"
    elif record.max_score != plan.points_possible:
        total += f", scaled to {posted}/{format_points(plan.points_possible)} in Canvas"
    lines = [f"dlgrade {dlgrade.__version__}, {record.tier} tier: {total}."]
    for activity, (points, maximum) in record.activity_scores().items():
        lines.append(f"Activity {activity}: {format_points(points)}/{format_points(maximum)}")
    lines.append(_feedback_pointer(book, record, template))
    return "\n".join(lines)


def plan_push(
    book: Gradebook,
    *,
    course: str,
    assignment: dict[str, Any],
    submissions: Iterable[dict[str, Any]],
    roster: dict[str, str] | None = None,
    feedback_url: str | None = None,
) -> Plan:
    """What a push of ``book`` to ``assignment`` changes, given Canvas's ``submissions``
    (each a dict with ``user_id``, ``entered_score``/``score``, ``excused``)."""
    grading_type = str(assignment.get("grading_type") or "points")
    points_possible = _number(assignment.get("points_possible")) or 0.0
    name = f"{assignment.get('id')} {printable(assignment.get('name') or '')!r}"
    if grading_type not in (*POINTS_TYPES, PERCENT_TYPE):
        raise CanvasPushError(
            f"assignment {name} of course {course} is graded as {grading_type!r}; dlgrade posts "
            "a number, so set its 'Display Grade as' to points or percentage"
        )
    if points_possible <= 0:
        raise CanvasPushError(
            f"assignment {name} of course {course} has no points possible; set them in Canvas "
            "(the assignment's Points) before pushing"
        )
    plan = Plan(str(course), name, points_possible, grading_type)
    by_user = {str(s.get("user_id")): s for s in submissions}
    owner: dict[str, list[str]] = {}
    users: dict[str, str] = {}
    for record in book.records:
        user = (roster or {}).get(record.student) or record.lms_id
        if not user:
            where = " nor in --roster" if roster is not None else ""
            plan.unmapped.append(
                Held(record.student, f"no Canvas user id (no lms_id in the record{where})")
            )
            continue
        users[record.student] = user
        owner.setdefault(user, []).append(record.student)
    for record in book.records:
        user = users.get(record.student)
        if user is None:
            continue
        if len(owner[user]) > 1:
            others = ", ".join(s for s in owner[user] if s != record.student)
            plan.unmapped.append(Held(record.student, f"Canvas user {user} is also {others}'s"))
            continue
        submission = by_user.get(user)
        if submission is None:
            plan.unmapped.append(
                Held(record.student, f"Canvas user {user} has no submission in assignment "
                     f"{assignment.get('id')} (not enrolled as a student of course {course}?)")
            )
            continue
        why = not_fully_graded(record)
        if why:
            plan.held.append(Held(record.student, f"{why}; regrade before pushing"))
            continue
        if submission.get("excused"):
            plan.held.append(Held(record.student, "excused in Canvas; left as it is"))
            continue
        fraction = record.score / record.max_score
        points = round(fraction * points_possible, 2)
        if grading_type == PERCENT_TYPE:
            shown_percent = round(100 * fraction, 2)
            new = f"{format_points(shown_percent)}%"
            # Canvas turns the posted percent into points: the read-back compares those
            points = round(points_possible * shown_percent / 100, 2)
        else:
            new = format_points(points)
            if record.max_score != points_possible:
                plan.scaled[record.max_score] = points_possible
        entered = _number(submission.get("entered_score"))
        if entered is None:
            entered = _number(submission.get("score"))
        current = "" if entered is None else _shown(entered, plan)
        change = Change(
            record.student,
            user,
            current,
            new,
            comment_for(book, record, new, plan, feedback_url),
            points,
        )
        same = entered is not None and round(entered, 2) == points
        (plan.unchanged if same else plan.changes).append(change)
    return plan


def _shown(points: float, plan: Plan) -> str:
    if plan.grading_type == PERCENT_TYPE:
        return f"{format_points(round(100 * points / plan.points_possible, 2))}%"
    return format_points(round(points, 2))


# -- talking to Canvas ---------------------------------------------------------------------


@dataclass
class Result:
    """What a push did: the plan, the grades written, those whose read-back differs."""

    plan: Plan
    pushed: list[Change] = field(default_factory=list)
    failed: list[Held] = field(default_factory=list)
    mismatches: list[Held] = field(default_factory=list)
    waits: list[tuple[int, float]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.mismatches)


class _Client:
    """canvasapi behind one method per call we make, each error turned into a message."""

    def __init__(self, url: str, token: str, sleep: Callable[[float], None] | None) -> None:
        try:
            import canvasapi
            from canvasapi import exceptions
        except ImportError:
            raise CanvasPushError(
                f"`dlgrade canvas push` needs the canvasapi package: {INSTALL_HINT}"
            ) from None
        self.url, self.token, self.exceptions = url.rstrip("/"), token, exceptions
        self.course = ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # its http:// note; ours is below
            try:
                self.canvas = canvasapi.Canvas(self.url, token)
            except ValueError as exc:
                raise CanvasPushError(f"--url {url}: {exc}") from None
        self.requester = self.canvas._Canvas__requester  # canvasapi keeps it private
        self.session = _session_class()(sleep)
        self.requester._session = self.session

    def call(self, what: str, fix: str, action: Callable[[], Any]) -> Any:
        """Run ``action``; any failure becomes a CanvasPushError naming ``what``."""
        import requests

        try:
            return action()
        except requests.RequestException as exc:
            raise CanvasPushError(
                f"cannot reach Canvas at {self.url} ({what}: {type(exc).__name__}); "
                "check --url",
                EXIT_FAILED,
            ) from None
        except (self.exceptions.CanvasException, ValueError) as exc:
            status = self.session.last_status
            if status == 401:
                message = (
                    f"Canvas at {self.url} refused the token for {what} (401 Unauthorized): "
                    f"set {TOKEN_ENV} to an access token of a user who can grade course "
                    f"{self.course} "
                    "(Canvas: Account → Settings → New access token)"
                )
            elif status == 403:
                message = (
                    f"Canvas at {self.url} refused {what} to this token (403 Forbidden): "
                    f"{TOKEN_ENV} must be the token of a teacher or TA of course {self.course}"
                )
            elif status == 404:
                message = f"{what} not found at {self.url} (404): check {fix}"
            elif status == 429 or status in RETRY_STATUSES:
                message = (
                    f"Canvas at {self.url} kept answering {status} for {what} after "
                    f"{MAX_ATTEMPTS} tries; run the push again later (it resumes: only "
                    "grades that differ are written)"
                )
            else:
                message = f"Canvas at {self.url} failed on {what} (status {status}): {exc}"
            raise CanvasPushError(redact(message, self.token), EXIT_FAILED) from None

    def assignment(self, course: str, assignment: str) -> tuple[Any, dict[str, Any]]:
        self.course = course
        course_obj = self.call(
            f"course {course}", "the --course id (the number after /courses/ in its URL)",
            lambda: self.canvas.get_course(course),
        )
        found = self.call(
            f"assignment {assignment} of course {course}",
            "the --assignment id (the number after /assignments/ in its URL)",
            lambda: course_obj.get_assignment(assignment),
        )
        return found, {
            "id": getattr(found, "id", assignment),
            "name": getattr(found, "name", ""),
            "points_possible": getattr(found, "points_possible", None),
            "grading_type": getattr(found, "grading_type", "points"),
        }

    def submissions(self, assignment: Any, course: str) -> dict[str, Any]:
        """user id → canvasapi Submission, every page."""
        found = self.call(
            f"the submissions of assignment {assignment.id} of course {course}",
            f"course {course}",
            lambda: list(assignment.get_submissions()),
        )
        return {str(getattr(s, "user_id", "")): s for s in found}

    def post(self, submission: Any, change: Change) -> None:
        submission.edit(
            submission={"posted_grade": change.new}, comment={"text_comment": change.comment}
        )


def _as_dict(submission: Any) -> dict[str, Any]:
    return {
        k: getattr(submission, k, None)
        for k in ("user_id", "score", "entered_score", "grade", "excused")
    }


def push(
    results: Path,
    *,
    url: str,
    course: str,
    assignment: str,
    token: str,
    roster: Path | None = None,
    dry_run: bool = False,
    feedback_url: str | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Result:
    """Plan the push of ``results``'s gradebook; unless ``dry_run``, write the changes and
    read them back."""
    for flag, value in (("--course", course), ("--assignment", assignment)):
        if not _ID.fullmatch(str(value)):
            raise CanvasPushError(f"{flag} {printable(value)!r}: give the Canvas id (digits)")
    if not token.strip():
        raise CanvasPushError(
            f"set {TOKEN_ENV} to a Canvas access token (Account → Settings → New access "
            "token); it is read from the environment only, never from the command line"
        )
    if not re.match(r"https?://[^/\s]+", url):
        raise CanvasPushError(f"--url {printable(url)!r}: give the Canvas address, "
                              "e.g. https://canvas.example.edu")
    records = load_records(Path(results))
    if not records:
        raise CanvasPushError(
            f"{results}: no student records in {Path(results) / 'students'}; run "
            "`dlgrade grade ... --out` to this folder first"
        )
    book = Gradebook.of(records)
    mapping = read_roster(roster) if roster is not None else None
    with _scrubbed_logs(token):
        return _push(book, mapping, url, course, assignment, token, dry_run, feedback_url, sleep)


def _push(book, mapping, url, course, assignment, token, dry_run, feedback_url, sleep) -> Result:
    client = _Client(url, token, sleep)
    found, info = client.assignment(course, assignment)
    current = client.submissions(found, course)
    plan = plan_push(
        book,
        course=course,
        assignment=info,
        submissions=[_as_dict(s) for s in current.values()],
        roster=mapping,
        feedback_url=feedback_url,
    )
    result = Result(plan, dry_run=dry_run)
    if not dry_run and plan.changes:
        for change in plan.changes:
            try:
                client.call(
                    f"the grade of Canvas user {change.user_id}",
                    f"course {course}",
                    lambda change=change: client.post(current[change.user_id], change),
                )
                result.pushed.append(change)
            except CanvasPushError as exc:
                if client.session.last_status in (401, 403):
                    raise
                result.failed.append(Held(change.student, str(exc)))
        after = client.submissions(found, course)
        for change in result.pushed:
            now = _as_dict(after[change.user_id]) if change.user_id in after else {}
            entered = _number(now.get("entered_score"))
            if entered is None:
                entered = _number(now.get("score"))
            if entered is None or round(entered, 2) != change.points:
                shown = "nothing" if entered is None else _shown(entered, plan)
                result.mismatches.append(
                    Held(change.student, f"posted {change.new}, Canvas holds {shown}")
                )
    result.waits = list(client.session.waits)
    return result


# -- the command ---------------------------------------------------------------------------


def report(result: Result, out=print) -> None:
    """The push, for the terminal: the assignment, each change, who was not pushed."""
    plan = result.plan
    out(
        f"Canvas: course {plan.course}, assignment {plan.assignment}: "
        f"{format_points(plan.points_possible)} points possible, graded as {plan.grading_type}"
    )
    for ours, theirs in sorted(plan.scaled.items()):
        out(
            f"scaled: dlgrade's maximum is {format_points(ours)} points; grades are scaled to "
            f"Canvas's {format_points(theirs)} points possible"
        )
    if plan.changes:
        width = max(len("student"), *(len(printable(c.student)) for c in plan.changes))
        out(f"{'student':{width}}  {'canvas user':>11}  {'current':>9}  {'new':>9}")
        for c in plan.changes:
            out(f"{printable(c.student):{width}}  {c.user_id:>11}  {c.current or '—':>9}  "
                f"{c.new:>9}")
    verb = "would push" if result.dry_run else "to push"
    out(f"{len(plan.changes)} grade(s) {verb}, {len(plan.unchanged)} already equal in Canvas")
    for title, rows in (
        ("not pushed, no Canvas user", plan.unmapped),
        ("not pushed, not fully graded", plan.held),
    ):
        if rows:
            out(f"{title}: {len(rows)}")
            for held in rows:
                out(f"  {printable(held.student)}: {held.why}")
    for status, wait in result.waits:
        out(f"waited {wait:g} s after a {status} from Canvas")
    if result.dry_run:
        out("dry run: nothing was written to Canvas")
        return
    if plan.changes:
        confirmed = len(result.pushed) - len(result.mismatches)
        out(f"pushed {len(result.pushed)} grade(s); read back: {confirmed} of "
            f"{len(result.pushed)} confirmed")
    for held in result.failed:
        out(f"  FAILED {printable(held.student)}: {held.why}")
    for held in result.mismatches:
        out(f"  MISMATCH {printable(held.student)}: {held.why}")


def run_canvas_push(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "")
    try:
        result = push(
            args.results,
            url=args.url,
            course=args.course,
            assignment=args.assignment,
            token=token,
            roster=args.roster,
            dry_run=args.dry_run,
            feedback_url=args.feedback_url,
        )
    except CanvasPushError as exc:
        print(f"dlgrade canvas push: error: {redact(exc, token)}", file=sys.stderr)
        return exc.exit_code
    except DlgradeError as exc:  # a results folder holding something that is not a record
        print(f"dlgrade canvas push: error: {redact(exc, token)}", file=sys.stderr)
        return EXIT_USAGE
    report(result, lambda line: print(redact(line, token)))
    return EXIT_OK if result.ok else EXIT_FAILED
