"""The class run's pytest plugin: every student of a roster graded in one pytest session.

Loaded by ``dlgrade grade`` (``-p dlgrade.classrun.plugin``, with ``--class-roster``) beside
the grading plugin (:mod:`dlgrade.plugin`), which never imports it: the two share the
grading plugin's stash keys, and the grading plugin asks the class run only what
:class:`dlgrade.plugin.ManyStudents` names (whose grading state a check belongs to, and
that a check began and ended). Here: each check becomes one test per student, a student's
checks go to one pytest-xdist worker, each student gets a grading state and a worker of
their own, and a record is written as each check finishes.

(PYTEST_DONT_REWRITE: a grading server imports it before its pytest sessions load it.)
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dlgrade import gradebook, models
from dlgrade.classrun.events import IN_PROGRESS_NOTE, REPORT_PROPERTY, CheckGraded, student_of
from dlgrade.classrun.roster import Roster, RosterError, Student
from dlgrade.errors import SandboxError, SubmissionError
from dlgrade.plugin import (
    CLASS,
    STATE,
    STUDENT_PARAM,
    GradingState,
    grading_session,
    item_student,
    unfinished,
)
from dlgrade.rubric import CHECK_ATTRIBUTE, CheckResult, CheckSpec
from dlgrade.sandbox import WorkerSession
from dlgrade.submission import Submission
from dlgrade.watchdog import NOT_STARTED_FEEDBACK, STALLED_MESSAGE, WATCHDOG, session_bound


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlgrade")
    group.addoption(
        "--class-roster",
        metavar="PATH",
        help="(internal, written by `dlgrade grade`) grade every student of this roster",
    )


@pytest.hookimpl(trylast=True)  # after the grading plugin's: its state is the template
def pytest_configure(config: pytest.Config) -> None:
    roster = config.getoption("class_roster")
    if not roster:
        return
    grading_session(config)
    try:
        config.stash[CLASS] = ClassRun(Roster.read(Path(roster)), config.stash[STATE])
    except RosterError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(config.stash[CLASS], "dlgrade-class-run")


class ClassRun:
    """A class run: one grading state per student, and a record written as each finishes.

    Registered as a plugin of its own when pytest runs with ``--class-roster``. Each
    student's checks share one worker (TensorFlow starts once per student); the record
    is rewritten atomically after every check, so a crash loses at most the running check,
    and marked GRADED when the student's last check is in.
    """

    def __init__(self, roster: Roster, template: GradingState):
        self.roster = roster
        self.template = template
        self.out = Path(roster.out)
        self.states: dict[str, GradingState] = {}
        self.expected: dict[str, int] = {}
        self.started: dict[str, tuple[float, str]] = {}
        self.finished: set[str] = set()
        self._by_id = {s.student: s for s in roster.students}
        self._positions: dict[str, int] = {}
        self._trusted_keras = False
        self.look_ahead = look_ahead()

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Each check becomes one test per student: a session-scoped parameter, so every
        fixture built on the submission is built anew for each student."""
        if not isinstance(getattr(metafunc.function, CHECK_ATTRIBUTE, None), CheckSpec):
            return
        if STUDENT_PARAM not in metafunc.fixturenames:
            metafunc.fixturenames.append(STUDENT_PARAM)
        students = list(self.roster.students)
        metafunc.parametrize(
            STUDENT_PARAM,
            students,
            ids=[s.student for s in students],
            indirect=True,
            scope="session",
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Grade the students one after another, each student's checks together."""
        order = {s.student: index for index, s in enumerate(self.roster.students)}
        items.sort(key=lambda item: order.get(getattr(item_student(item), "student", ""), -1))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        """Send all of a student's checks to one pytest-xdist worker, so that TensorFlow
        starts once per student. (xdist's own ``loadgroup`` relies on renaming node ids,
        which pytest 9.2 no longer allows: pytest-xdist#1386.)"""
        from xdist.scheduler import LoadScopeScheduling

        class StudentScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return student_of(nodeid) or nodeid

            def _reschedule(self, node) -> None:
                """With look-ahead, keep two students queued on each worker (LoadScope waits
                until only two checks are left), so the next student's worker starts early.

                And never leave a node holding one pending check and no word of more: an
                xdist worker runs a check only once it knows the next one or is told to shut
                down. LoadScope assigns a replacement node one unit, once; when that is the
                one check left of a student whose grading process died, the run waited for
                ever (tests/test_watchdog.py, a stalled student with two checks).
                """
                if node.shutting_down:
                    return
                units = 2 if look_ahead() else 1

                def short() -> bool:
                    work = self.assigned_work[node]
                    pending = [u for u in work.values() if not all(u.values())]
                    return len(pending) < units or self._pending_of(work) < 2

                while self.workqueue and short():
                    self._assign_work_unit(node)
                if not self.workqueue:
                    node.shutdown()

            def remove_node(self, node):
                """As LoadScopeScheduling's, except that the check during which a grading
                process died is not run again (it would kill the next one too): the
                student's other checks go on, and the student is recorded incomplete."""
                workload = self.assigned_work.pop(node)
                if not self._pending_of(workload):
                    return None
                crashitem = next(
                    nodeid
                    for unit in workload.values()
                    for nodeid, completed in unit.items()
                    if not completed
                )
                for unit in workload.values():
                    if crashitem in unit:
                        unit[crashitem] = True
                self.workqueue.update(
                    {scope: unit for scope, unit in workload.items() if not all(unit.values())}
                )
                for other in self.assigned_work:
                    self._reschedule(other)
                return crashitem

        return StudentScheduling(config, log)

    # -- the run's bookkeeping ---------------------------------------------------------

    def expect(self, items: list[pytest.Item]) -> None:
        """How many checks each student has (every worker collects the whole run)."""
        self.expected = {}
        self.items_of: dict[str, list[pytest.Item]] = {}
        for item in items:
            student = item_student(item)
            if student is not None:
                self.expected[student.student] = self.expected.get(student.student, 0) + 1
                self.items_of.setdefault(student.student, []).append(item)

    def state(self, student: Student) -> GradingState:
        state = self.states.get(student.student)
        if state is None:
            template = self.template
            state = GradingState(
                submission_path=Path(student.folder),
                tier=template.tier,
                seed=template.seed,
                call_timeout=template.call_timeout,
                preload_enabled=template.preload_enabled,
                live=False,
                preload=set(template.preload),
                datasets=set(template.datasets),
                limits=template.limits,
                budgets=dict(template.budgets),
                hidden=set(template.hidden) | {self.out.resolve()},
                active=True,
                gpus=template.gpus,
                device=template.device,
            )
            state.results = self._resumed(student)
            state.by_nodeid = {}
            self.states[student.student] = state
        return state

    def _resumed(self, student: Student) -> list[CheckResult]:
        """The checks another worker of this run finished before it died (xdist restarts)."""
        path = gradebook.record_path(self.out, student.student)
        if not path.exists():
            return []
        try:
            record = gradebook.read_record(path)
        except gradebook.GradebookError:
            return []
        if record.key != student.key or record.note != IN_PROGRESS_NOTE.format(run=self.roster.run):
            return []
        # checks the watchdog found not started are graded now, by this process
        return [c for c in record.checks if c.feedback != NOT_STARTED_FEEDBACK]

    def begin(self, student: Student, item: pytest.Item) -> None:
        """Before each check: start the student's worker if it is their first (TensorFlow
        loads there), and the next student's as soon as it is known, so that its TensorFlow
        loads while this student is graded."""
        state = self.state(student)
        upcoming = self._upcoming(item, student) if self.look_ahead else None
        if student.student not in self.started:
            self.started[student.student] = (time.monotonic(), _now())
            WATCHDOG.arm(
                session_bound(state.budgets, self.expected.get(student.student, 0)),
                lambda bound: self._stalled(student, bound),
            )
            for other, open_state in self.states.items():  # this and the next student only
                if other not in (student.student, upcoming) and open_state.session is not None:
                    self._close(open_state)
            if state.session is None:
                self._start(state)
            if state.preload and state.preload_enabled and not self._trusted_keras:
                models.preload()  # the rubric's own Keras, once per grading process
                self._trusted_keras = True
        if upcoming is not None and upcoming not in self.started:
            following = self.state(self._by_id[upcoming])
            if following.session is None and following.startup_error is None:
                self._start(following)

    def _start(self, state: GradingState) -> None:
        preload = sorted(state.preload) if state.preload_enabled else []
        try:
            state.session = WorkerSession(
                state.submission_path,
                state.limits,
                preload=preload,
                datasets=sorted(state.datasets),
                hidden=state.hidden,
                device=state.device,
            )
            state.submission = Submission(state.submission_path, state.session)
            state.session.start()
        except (SubmissionError, SandboxError) as exc:
            state.startup_error = exc

    def _upcoming(self, item: pytest.Item, student: Student) -> str | None:
        """The next student this process will grade, when it is known already.

        Without xdist that is the next student in the session's items. Under xdist, the
        worker's queue of item indices says it; that queue is xdist's own (not an API), so
        anything unexpected there means no look-ahead, never an error.
        """
        items = item.session.items
        try:
            interactor = next(
                (p for p in item.config.pluginmanager.get_plugins() if hasattr(p, "torun")),
                None,
            )
            if interactor is None:
                position = self._positions.get(item.nodeid)
                if position is None:
                    self._positions = {it.nodeid: i for i, it in enumerate(items)}
                    position = self._positions.get(item.nodeid, len(items))
                upcoming = items[position + 1 :]
            else:
                with interactor.torun.lock() as queued:
                    indices = [interactor.nextitem_index, *queued]
                upcoming = [items[i] for i in indices if isinstance(i, int)]
        except Exception:  # noqa: BLE001 - look-ahead is an optimisation only
            return None
        for candidate in upcoming:
            other = item_student(candidate)
            if other is not None and other.student != student.student:
                return other.student
        return None

    def graded(self, student: Student, result: CheckResult, report: pytest.TestReport) -> None:
        """Record one finished check; close the student's worker after their last one.
        The report carries the :class:`~dlgrade.classrun.events.CheckGraded` event, as a
        dict (it travels from an xdist worker to the controlling process in the report)."""

        state = self.state(student)
        state.results = [r for r in state.results if r.id != result.id] + [result]
        done = len(state.results) >= self.expected.get(student.student, 0)
        if done:
            WATCHDOG.disarm()
            self.finished.add(student.student)
            self._close(state)
        record = self._write(student, state, gradebook.GRADED if done else None)
        event = CheckGraded(
            student=student.student,
            check=result.id,
            outcome=result.outcome,
            abnormal=bool(record.abnormal()),
            done=done,
        )
        report.user_properties.append((REPORT_PROPERTY, event.to_dict()))

    def finish(self) -> None:
        """At the end of the session: whoever started and did not finish is INCOMPLETE."""
        WATCHDOG.disarm()
        for name, state in self.states.items():
            if state.session is not None:
                self._close(state)
            if name in self.started and name not in self.finished:
                self.finished.add(name)
                student = next(s for s in self.roster.students if s.student == name)
                expected = self.expected.get(name, 0)
                note = (
                    f"the run stopped after {len(state.results)} of {expected} checks "
                    "(interrupted, or the grading process failed); re-run `dlgrade grade` "
                    "to grade this student again"
                )
                self._write(student, state, gradebook.INCOMPLETE, note)

    def _stalled(self, student: Student, bound: float) -> None:
        """The watchdog fired during ``student``'s checks: their record holds every check,
        the running one as stalled, and stays resumable, so that the process pytest-xdist
        starts in this one's place grades the checks that did not start (settle gives the
        student a record if none does). Then the workers go; the process exits."""
        if student.student in self.finished:  # disarmed a moment too late
            return
        state = self.state(student)
        missing = unfinished(state, self.items_of.get(student.student, []), bound)
        state.results = [*state.results, *missing]
        self._write(student, state, None)
        WATCHDOG.say(
            STALLED_MESSAGE.format(submission=student.student, bound=bound, count=len(missing))
        )
        for open_state in list(self.states.values()):
            if open_state.session is not None:
                open_state.session.close()

    def _close(self, state: GradingState) -> None:
        if state.session is not None:
            state.worker_stats = worker_stats(state.session)
            state.device_label = state.session.device_label()
            state.session.close()
            state.session = None
            state.submission = None

    def _write(
        self, student: Student, state: GradingState, status: str | None, note: str = ""
    ) -> gradebook.StudentRecord:
        began, started_at = self.started.get(student.student, (time.monotonic(), _now()))
        record = self.roster.record(
            student,
            status=status or gradebook.INCOMPLETE,
            checks=tuple(state.results),
            started_at=started_at,
            finished_at=_now(),
            wall_s=round(time.monotonic() - began, 3),
            note=note if status else IN_PROGRESS_NOTE.format(run=self.roster.run),
            worker=state.worker_stats
            or (worker_stats(state.session) if state.session is not None else {}),
            device=state.ran_on(),
        )
        gradebook.write_record(self.out, record)
        return record


#: ``0`` turns the look-ahead off (it is on wherever a core is free for it)
LOOK_AHEAD_ENV = "DLGRADE_LOOK_AHEAD"


def look_ahead() -> bool:
    """Whether a class run starts the next student's worker early.

    It hides most of TensorFlow's import behind the current student's checks (12.5 instead
    of 9.1 students a minute at ``--jobs 1`` on 2 cores, benchmarks/grade_class.py), but
    only where a core is free for it (2 × jobs ≤ CPUs); ``DLGRADE_LOOK_AHEAD=0`` turns it
    off. It was off for a while after a correct student's worker died at its first call in
    one CI run: a dead worker was killed a second time *by number* when its session moved
    on, and that number can belong by then to a new process — the next student's worker,
    which the look-ahead starts while the dead one's session is still open. Kills now go
    once, and through a pidfd (``WorkerProcess.kill``; reproduced in
    tests/test_sandbox.py with ``ns_last_pid``).
    """
    if os.environ.get(LOOK_AHEAD_ENV) == "0":
        return False
    jobs = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return 2 * jobs <= (os.cpu_count() or 1)


def worker_stats(session: WorkerSession) -> dict:
    """Where a student's time went outside the rubric (statistics only)."""
    return {
        "starts": session.starts,
        "start_s": round(session.start_seconds, 3),
        "preload_s": round(session.preload_seconds, 3),
        "preload_wait_s": round(session.preload_wait_seconds, 3),
        "busy_s": round(session.busy_seconds, 3),
        "grader_pid": os.getpid(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
