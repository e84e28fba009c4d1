"""The terminal report: ✓/✗ per check, points, feedback for what failed, totals.

An activity whose module could not be imported reads once (:func:`import_failure_lines`):
the import's message and fix, then the checks it cost with their points. ``dlgrade check``'s
live lines hold such checks back until the activity ends, so that the block is printed
whole, as the summary prints it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from dlgrade import activities
from dlgrade.reports.feedback import ImportFailure, arrange, import_message
from dlgrade.rubric import CheckResult, Score
from dlgrade.text import printable, shown_name

PASS_MARK = "✓"
FAIL_MARK = "✗"
#: a hidden check that did not pass, on the terminal (its details: the grade JSON, records)
HIDDEN_DETAILS = "hidden check: its inputs, feedback and output are not shown (see the grade JSON)"


def header(submission: Path, tier: str, seed: int) -> str:
    return f"dlgrade · submission {shown_name(str(submission))} · tier {tier} · seed {seed}"


def format_points(value: float) -> str:
    return f"{value:g}"


def activity_title(activity: str) -> str:
    title = activities.title(activity)  # of the rubric folder in use
    return f"Activity {activity} — {title}" if title else f"Activity {activity}"


def check_lines(result: CheckResult) -> list[str]:
    mark = PASS_MARK if result.passed else FAIL_MARK
    status = "" if result.passed else f"  [{result.outcome.replace('_', ' ')}]"
    hidden = " (hidden)" if result.visibility == "hidden" else ""
    points = f"{format_points(result.points)}/{format_points(result.max_points)}"
    lines = [f"  {mark} {result.title}{hidden}  {points}{status}  ({result.duration_s:.1f} s)"]
    if result.measured is not None and result.visibility == "public":
        lines.append("      measured: " + printable(result.measured.text()))
    if not result.passed and result.visibility == "hidden":
        lines.append("      " + HIDDEN_DETAILS)  # its feedback and output can quote its inputs
    elif not result.passed:
        # feedback quotes the student's exceptions and stdout is theirs: a terminal must not
        # obey what they hold (clear the screen, overwrite a line, write the clipboard)
        lines += ["      " + line for line in printable(result.feedback).splitlines()]
        stdout = printable(result.stdout).strip()
        if stdout:
            lines.append("      Your code printed:")
            lines += ["        " + line for line in stdout.splitlines()[:20]]
    return lines


def import_failure_lines(failure: ImportFailure) -> list[str]:
    """One activity's import failure: its message and fix once, then what it cost."""
    points = f"{format_points(failure.points)}/{format_points(failure.max_points)}"
    lines = [f"  {FAIL_MARK} {failure.heading}  {points}  [{failure.label}]"]
    lines += ["      " + line for line in printable(failure.message).splitlines()]
    stdout = printable(failure.stdout).strip()
    if stdout:
        lines.append("      Your code printed:")
        lines += ["        " + line for line in stdout.splitlines()[:20]]
    lines.append("      " + failure.cost())
    for check in failure.checks:
        hidden = " (hidden)" if check.visibility == "hidden" else ""
        lines.append(
            f"        · {check.title}{hidden}  "
            f"{format_points(check.points)}/{format_points(check.max_points)}"
        )
    return lines


def arranged_lines(results: list[CheckResult]) -> list[str]:
    """The lines of one activity's checks, each import failure once (:func:`arrange`)."""
    lines: list[str] = []
    for item in arrange(results):
        lines += (
            import_failure_lines(item) if isinstance(item, ImportFailure) else check_lines(item)
        )
    return lines


def summary(terminalreporter, score: Score, *, live: bool) -> None:
    """Print the grade at the end of the session (in full unless lines were printed live)."""
    write = terminalreporter.write_line
    if not live:
        terminalreporter.section("dlgrade")
        write(header(Path(score.submission), score.tier, score.seed))
    for activity, results in score.by_activity().items():
        got = sum(r.points for r in results)
        possible = sum(r.max_points for r in results)
        if not live:
            write("")
            write(activity_title(activity))
            for line in arranged_lines(results):
                write(line)
        write(f"  {activity} total: {format_points(got)}/{format_points(possible)}")
    write("")
    total = f"{format_points(score.score)}/{format_points(score.max_score)}"
    write(f"Total: {total} ({score.percent:.1f}%)")
    for note in score.notes:
        write(f"note: {printable(note)}", yellow=True)
    busy = [r for r in score.checks if r.reason == "machine_busy"]
    if busy:
        write(
            f"{len(busy)} check(s) could not be graded fairly: the machine was too busy (not "
            "counted against you). Run again on a quieter machine.",
            red=True,
            bold=True,
        )
    internal = [r for r in score.checks if r.is_internal_error and r.reason != "machine_busy"]
    if internal:
        write(
            f"{len(internal)} check(s) hit an internal error in the grader; the score above is "
            "not a fair grade. Please report it.",
            red=True,
            bold=True,
        )


def worker_line(terminalreporter, session) -> None:
    """Where the time went outside the checks: starting workers and preloading TensorFlow."""
    terminalreporter.write_line(
        f"worker: {session.starts} start(s) in {session.start_seconds:.1f} s; preload "
        f"{session.preload_seconds:.1f} s, of which {session.preload_wait_seconds:.1f} s "
        "held up a check"
    )


class Progress:
    """Live lines for `dlgrade check`: one per finished check, a ticking line while one runs.

    Create it while pytest's output capture is suspended (``pytest_configure``): it keeps a
    duplicate of the real stdout, because the ticking line is written while a check runs,
    when pytest captures file descriptor 1.
    """

    def __init__(self, config):
        self._config = config
        self._activity: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tty = os.isatty(1)
        self._fd = os.dup(1) if self._tty else None
        #: the activity's checks that failed by its import failure, printed at its end
        self._held: list[CheckResult] = []

    @property
    def _writer(self):
        return self._config.get_terminal_writer()

    def begin(self, activity: str, title: str, tier: str) -> None:
        if activity != self._activity:
            self.flush()
            self._activity = activity
            self._writer.line("")
            self._writer.line(activity_title(activity))
        if self._tty:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._tick, args=(title, time.monotonic()), daemon=True
            )
            self._thread.start()
        elif tier != "quick":
            self._writer.line(f"  … running: {title} (training, may take a while)")

    def _tick(self, title: str, started: float) -> None:
        while not self._stop.wait(0.5):
            elapsed = time.monotonic() - started
            if elapsed >= 1.0:
                os.write(self._fd, f"\r  … {title} ({elapsed:.0f} s)\x1b[K".encode())

    def finish(self, result: CheckResult | None) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            os.write(self._fd, b"\r\x1b[K")
        if result is not None and import_message(result) is not None:
            self._held.append(result)
        elif result is not None:
            for line in check_lines(result):
                self._writer.line(line)

    def flush(self) -> None:
        """Print the held import failures of the activity (before the next, or the totals)."""
        held, self._held = self._held, []
        for line in arranged_lines(held):
            self._writer.line(line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
