"""The watchdog: a bound on a whole grading session, for a grader that is itself stuck.

Every limit of the student's code is enforced inside the session (the call's clock, the
activity's budget, the worker's resource limits); the watchdog is for the grader: a bug, a
wait that never ends, a process stopped. When a student's session passes its bound
(:func:`session_bound`: far beyond what a session whose limits hold can use) it records
every unfinished check as the grader's ``grader_stalled`` (graded again next run) and the
process ends — by ``faulthandler`` and a reaper process where the GIL or a SIGSTOP keep the
recording thread from running.
"""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
import threading
import time

from dlgrade.errors import EXIT_INTERNAL
from dlgrade.reasons import Reason

#: the reason of a check the grader did not finish because the grader itself stalled: the
#: grader's fault (every limit of the student's code is enforced before the watchdog fires),
#: graded again by the next run (rubric.REGRADE_REASONS)
GRADER_STALLED = Reason.GRADER_STALLED
STALLED_FEEDBACK = (
    "INTERNAL ERROR in the grader (not your code): the grader stalled during this check "
    "and was stopped after {bound:.0f} s, longer than every time limit your code has. The "
    "next run grades it again; please report it."
)
#: a check that had not started when grading stopped (the grade JSON holds it from the
#: start, so that whatever ends the process leaves a grade that says so)
NOT_STARTED_FEEDBACK = (
    "INTERNAL ERROR in the grader (not your code): grading stopped before this check ran "
    "(the grader stalled, or was stopped). The next run grades it again; please report it."
)
#: what the watchdog says where the grader's stderr goes
STALLED_MESSAGE = (
    "dlgrade: the grader stalled: {submission} was still being graded {bound:.0f} s after it "
    "began, beyond every limit of its session; {count} unfinished check(s) are recorded as "
    f"{GRADER_STALLED} and the grading process stops (a grader bug: please report it)"
)
#: a session's time outside its activities' budgets: the worker and TensorFlow starting
#: (a restart included), the rubric's own Keras, writing the results
STARTUP_ALLOWANCE_S = 600.0
#: per check: the rubric's own work (loading models, training a trusted copy, synthetic
#: data), a worker restart, calls past a spent budget (each still gets its floor)
CHECK_ALLOWANCE_S = 120.0
#: the bound in seconds, overriding the one derived from the budgets (tests; slow machines)
WATCHDOG_ENV = "DLGRADE_WATCHDOG_SECONDS"
#: how long the watchdog's own recording may take before the process ends regardless
#: (half the bound when that is shorter)
WATCHDOG_GRACE_S = 30.0
#: the reaper: a small process of its own that SIGKILLs the grading process (through a
#: pidfd: no pid reuse) when told a deadline that then passes; EOF on stdin (the grading
#: process ended) ends it. It can act where nothing inside the grading process can: a
#: process stopped (SIGSTOP), or one whose main thread holds the GIL in C code
REAPER_SOURCE = """
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
grader = os.pidfd_open(int(sys.argv[1]))
deadline, pending = None, b""
while True:
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not select.select([0], [], [], wait)[0]:
        signal.pidfd_send_signal(grader, signal.SIGKILL)
        break
    chunk = os.read(0, 4096)
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\\n")
    for line in lines:
        seconds = float(line)
        deadline = time.monotonic() + seconds if seconds > 0 else None
"""


def session_bound(budgets: dict[str, float], checks: int) -> float:
    """Seconds one student's session may take in all before the watchdog ends it.

    Twice the activities' budgets (the student's time; the rubric's own work in a check is
    outside it) plus the start-up and per-check allowances: far beyond what a session whose
    limits hold can use, so that only a grader that is itself blocked reaches it.
    """
    override = os.environ.get(WATCHDOG_ENV, "")
    try:
        if float(override) > 0:
            return float(override)
    except ValueError:
        pass
    return STARTUP_ALLOWANCE_S + 2 * sum(budgets.values()) + CHECK_ALLOWANCE_S * checks


class Watchdog:
    """Ends the grading process when one student's session outlives :func:`session_bound`.

    Each call to the worker has a timeout and each activity a budget, all enforced by the
    trusted side; what none of them bounds is the trusted side itself blocking (a read that
    never returns, a deadlock). When the deadline passes, a thread records the session's
    unfinished checks as :data:`GRADER_STALLED` (the grade JSON, or the student's record)
    and exits the process; in a class run pytest-xdist replaces the process and the run
    goes on (docs/gradebook.md, ``students/<id>.json``). A main thread that holds the GIL
    would keep that thread from running: ``faulthandler``, which needs no GIL, dumps every
    thread's stack and exits a grace later (:data:`WATCHDOG_GRACE_S`); and a process that
    runs nothing at all (stopped) is SIGKILLed by the reaper (:data:`REAPER_SOURCE`) a grace
    after that. Either way the grade JSON, written ahead after every check, or the record,
    written after every check, already names what did not finish.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._deadline: float | None = None
        self._bound = 0.0
        self._on_fire = None
        self._thread: threading.Thread | None = None
        self._report: int | None = None
        self._report_file = None
        self._reaper = None

    def report_to(self, fd: int) -> None:
        """Where the watchdog writes (a duplicate of stderr, taken before pytest captures)."""
        with self._lock:
            if self._report is not None:
                os.close(fd)
                return
            self._report = fd
            self._report_file = os.fdopen(fd, "w", closefd=False)

    def arm(self, bound: float, on_fire) -> None:
        """Fire ``on_fire(bound)`` ``bound`` seconds from now, unless disarmed or re-armed."""
        with self._lock:
            self._deadline = time.monotonic() + bound
            self._bound, self._on_fire = bound, on_fire
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="dlgrade-watchdog", daemon=True
                )
                self._thread.start()
        grace = min(WATCHDOG_GRACE_S, bound / 2)
        faulthandler.dump_traceback_later(
            bound + grace, exit=True, file=self._report_file or sys.stderr
        )
        self._tell_reaper(bound + 2 * grace)
        self._wake.set()

    def disarm(self) -> None:
        with self._lock:
            armed, self._deadline, self._on_fire = self._deadline is not None, None, None
        if armed:
            faulthandler.cancel_dump_traceback_later()
            self._tell_reaper(0)
        self._wake.set()

    def _tell_reaper(self, seconds: float) -> None:
        """Arm (``seconds`` > 0) or disarm the reaper, starting it the first time."""
        try:
            if self._reaper is None or self._reaper.poll() is not None:
                if seconds <= 0:
                    return
                self._reaper = subprocess.Popen(
                    [sys.executable, "-I", "-c", REAPER_SOURCE, str(os.getpid())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                )
            self._reaper.stdin.write(f"{seconds}\n".encode())
            self._reaper.stdin.flush()
        except OSError as exc:  # the thread and faulthandler still bound the session
            self.say(f"dlgrade: the watchdog's reaper is not running: {exc}")

    def say(self, text: str) -> None:
        try:
            os.write(self._report if self._report is not None else 2, (text + "\n").encode())
        except OSError:
            pass

    def _watch(self) -> None:
        while True:
            with self._lock:
                deadline = self._deadline
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._wake.wait(wait):
                self._wake.clear()
                continue
            with self._lock:
                if self._deadline is None or time.monotonic() < self._deadline:
                    continue
                bound, on_fire = self._bound, self._on_fire
            try:
                on_fire(bound)
            except BaseException as exc:  # noqa: BLE001 - the process ends either way
                self.say(f"dlgrade: the watchdog could not record everything: {exc!r}")
            finally:
                os._exit(EXIT_INTERNAL)


WATCHDOG = Watchdog()
