"""A class run from roster to gradebook: plan, execute, settle, report.

``dlgrade grade`` is four steps, each in one place here:

- **plan** (:func:`plan`): the students (a folder of folders or an LMS export), the key each
  is graded under (their files, the rubric's version, the tier, the seed), and who is kept
  because a finished record under that very key exists;
- **execute** (:func:`run`): the students to grade go to an :class:`Executor` — submit a
  student, get a future of their :class:`~dlgrade.gradebook.StudentRecord`. The ``local``
  executor grades on this machine through pytest-xdist (:class:`LocalExecutor`); the
  ``dask`` executor ships each student to a Dask cluster (:mod:`dlgrade.classrun.cluster`);
- **settle**: every student of the run ends with a record, and a record that is not
  ``graded`` says why (a grading process died, the run was interrupted, the cluster was
  lost, a worker was refused);
- **report**: every export is rebuilt from the records, the same bytes whichever executor
  graded them.

Progress travels as typed events (:class:`StudentStarted`, :class:`CheckGraded`,
:class:`StudentGraded`, :class:`GraderDied`) to :class:`~dlgrade.reports.ClassProgress`.
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from dlgrade import gradebook
from dlgrade.classrun import roster
from dlgrade.classrun.events import (
    IN_PROGRESS_NOTE,
    REPORT_PROPERTY,
    CheckGraded,
    Event,
    GraderDied,
    StudentGraded,
    StudentStarted,
    student_of,
)
from dlgrade.classrun.roster import Roster, Student
from dlgrade.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, DlgradeError, UsageError
from dlgrade.gradebook import StudentRecord
from dlgrade.reasons import ExitCode
from dlgrade.rubric import DEFAULT_SEED, REGRADE_REASONS
from dlgrade.selection import checks_dir, quiet_pytest, rubric_files, select_activities
from dlgrade.text import printable, shown_name

#: the exit code of a run stopped by Ctrl-C (every finished student is saved)
EXIT_INTERRUPTED = ExitCode.INTERRUPTED

#: why a run stopped early (``Executor.run``'s answer); "" when it ran to its end
INTERRUPTED = "interrupted before this student's grading finished"
BROKEN = "the rubric could not be run (a grader bug, reported above)"
#: the class run's pytest plugin, loaded by name into each of its sessions
CLASS_PLUGIN = "dlgrade.classrun.plugin"

# -- plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One class run: who is graded, by which rubric, how, and where the results go."""

    out: Path
    students: tuple[Student, ...]  # the whole class, each with its key
    todo: tuple[Student, ...]  # the students this run grades
    activities: tuple[str, ...]
    rubric_root: Path
    rubric_files: tuple[Path, ...]
    rubric_version: str
    tier: str
    seed: int
    #: the sandbox's and the time limit's options, the same for ``dlgrade grade`` and pytest
    options: tuple[str, ...] = ()

    @property
    def kept(self) -> tuple[Student, ...]:
        todo = {s.student for s in self.todo}
        return tuple(s for s in self.students if s.student not in todo)

    def roster(self, run: str) -> Roster:
        return Roster(
            out=str(self.out),
            run=run,
            tier=self.tier,
            seed=self.seed,
            rubric_version=self.rubric_version,
            activities=self.activities,
            students=self.todo,
        )

    def pytest_args(self, roster_path: Path) -> list[str]:
        """A pytest session grading the roster's students (one test per check and student):
        the grading plugin, and the class run's beside it."""
        return [
            *(str(f) for f in self.rubric_files),
            "-p",
            CLASS_PLUGIN,
            "--class-roster",
            str(roster_path),
            "--tier",
            self.tier,
            "--dlgrade-seed",
            str(self.seed),
            "-qq",
            *quiet_pytest(self.rubric_root),
            *self.options,
        ]


def plan(
    source: Path,
    out: Path,
    *,
    activities: list[str] | None = None,
    checks: Path | None = None,
    tier: str = "quick",
    seed: int | None = None,
    force: bool = False,
    options: tuple[str, ...] = (),
) -> Job:
    """Everything decided before anyone is graded. Raises :class:`UsageError` (exit 2)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    students = class_students(Path(source), out)
    rubric_root = checks_dir(checks)
    from dlgrade import activities as registry

    registry.use(rubric_root)  # its titles head the feedback
    if not activities:
        activities = roster.activities_present([Path(s.folder) for s in students], rubric_root)
        if not activities:
            raise UsageError(
                f"no student in {source} has an activity_*.py file; pass --activity to grade "
                "them anyway"
            )
    activities = select_activities(Path(source), activities, rubric_root)
    files = tuple(rubric_files(rubric_root, activities))
    version = roster.rubric_version(list(files))
    seed = DEFAULT_SEED if seed is None else seed
    keyed = tuple(
        dataclasses.replace(
            s, key=roster.grading_key(roster.files_digest(Path(s.folder)), version, tier, seed)
        )
        for s in students
    )
    todo = tuple(s for s in keyed if force or not finished(out, s))
    return Job(
        out=out,
        students=keyed,
        todo=todo,
        activities=tuple(activities),
        rubric_root=rubric_root,
        rubric_files=files,
        rubric_version=version,
        tier=tier,
        seed=seed,
        options=tuple(options),
    )


def class_students(source: Path, out: Path) -> list[Student]:
    """The roster's students, from a folder of folders or an LMS export zip."""
    from dlgrade.classrun import lms
    from dlgrade.classrun.roster import RosterError, find_students

    if source.is_file() and lms.is_archive(source):
        try:
            imported = lms.unpack(source, out / ".lms" / "submissions")
        except lms.LmsError as exc:
            raise UsageError(str(exc)) from None
        for entry, why in imported.unmapped:
            print(f"  not mapped to a student: {shown_name(entry)} — {printable(why)}")
        if imported.unmapped:
            print(
                f"{len(imported.unmapped)} entr(y/ies) of {source.name} were not mapped; see "
                f"{imported.root / 'lms_import.json'} and docs/lms.md"
            )
        if not imported.students:
            raise UsageError(f"{source}: no student could be mapped from this archive")
        return [
            Student(s.student, str(Path(s.folder).resolve()), name=s.name, lms_id=s.lms_id)
            for s in imported.students
        ]
    if source.is_file():
        raise UsageError(
            f"{source} is a file but not a zip archive; pass a folder holding one folder per "
            "student, or the zip your LMS exported"
        )
    try:
        return [
            Student(student, str(folder), name=name)
            for student, folder, name in find_students(source)
        ]
    except RosterError as exc:
        raise UsageError(str(exc)) from None


def finished(out: Path, student: Student) -> bool:
    """A finished record graded under this very key (and no grader error in it) is kept."""
    path = gradebook.record_path(out, student.student)
    if not path.exists():
        return False
    try:
        record = gradebook.read_record(path)
    except gradebook.GradebookError:
        return False
    return (
        record.status == gradebook.GRADED
        and record.key == student.key
        and not any(c.reason in REGRADE_REASONS for c in record.checks)
    )


class StudentLost(DlgradeError):
    """A student's future ended without a record: ``why`` goes into their settled record."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# -- executors --------------------------------------------------------------------------------


class Executor(ABC):
    """Grades students: :meth:`submit` a student, get a future of their record.

    ``open`` comes first (the job, and where events go), then every ``submit``, then
    ``run``, which returns once every future is done: with a record, or with
    :class:`StudentLost` saying why there is none. ``run`` answers why the run stopped
    early (``""`` when it did not); ``close`` releases what ``open`` took.
    """

    name = ""
    #: whether the executor's grading processes write the records themselves (on this
    #: machine, after every check); otherwise the run writes each record as it comes back
    writes_records = False

    def open(self, job: Job, run: str, emit: Callable[[Event], None], *, gpu: bool = False) -> None:
        """``gpu``: some check of the run needs a GPU (``@dlgrade.check(gpu=True)``)."""
        self.job, self.run_id, self.emit, self.gpu = job, run, emit, gpu
        self.futures: dict[str, Future[StudentRecord]] = {}

    def submit(self, student: Student) -> Future[StudentRecord]:
        future: Future[StudentRecord] = Future()
        self.futures[student.student] = future
        return future

    @abstractmethod
    def run(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the executor's resources (a cluster it started)."""

    def describe(self) -> str:
        return self.name

    def _lose_the_rest(self, why: str) -> None:
        for future in self.futures.values():
            if not future.done():
                future.set_exception(StudentLost(why))


class LocalExecutor(Executor):
    """This machine, through pytest-xdist: ``jobs`` grading processes, each student's checks
    on one of them (TensorFlow starts once per student), a process that dies replaced and
    the class going on. Each record is rewritten after every check, so a crash loses at most
    the running check (docs/architecture.md, "Class runs").

    Chosen over a pool of one-process-per-student sessions by measurement: such a session
    imports pytest, the rubric and the trusted side's Keras again for every student
    (docs/cluster.md, "What a task costs").
    """

    name = "local"
    writes_records = True

    def __init__(self, jobs: int, *, in_process: bool = False) -> None:
        self.jobs = jobs
        #: grade in this very process, without pytest-xdist (one student at a time): a Dask
        #: worker's grading server, whose process already holds pytest, the rubric's imports
        #: and a zygote (dlgrade/classrun/cluster.py). A crash of this process ends the run.
        self.in_process = in_process

    def describe(self) -> str:
        jobs = min(self.jobs, max(1, len(self.futures)))
        return f"{jobs} at a time on this machine"

    def run(self) -> str:
        import pytest

        roster_path = self.job.out / ".run" / "roster.json"
        self.job.roster(self.run_id).write(roster_path)
        jobs = min(self.jobs, max(1, len(self.futures)))
        listener = _XdistListener(self)
        parallel = [] if self.in_process else ["-n", str(jobs)]
        try:
            code = pytest.main([*self.job.pytest_args(roster_path), *parallel], plugins=[listener])
        except Exception as exc:  # noqa: BLE001 - anything escaping pytest is a harness bug
            print(f"dlgrade grade: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = pytest.ExitCode.INTERNAL_ERROR
        stop = (
            INTERRUPTED
            if code == pytest.ExitCode.INTERRUPTED
            else BROKEN
            if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)
            else ""
        )
        self._lose_the_rest(stop or "the grading process died before this student finished")
        return stop


class _XdistListener:
    """A pytest plugin of the controlling process: pytest-xdist forwards each worker's
    ``logstart`` and ``logreport`` here; they become typed events, and a student's future
    gets their record (read from disk, where the grading process wrote it) after their
    last check."""

    def __init__(self, executor: LocalExecutor) -> None:
        self.executor = executor

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        student = student_of(nodeid)
        future = self.executor.futures.get(student or "")
        if future is not None and not future.done():
            self.executor.emit(StudentStarted(student))

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "???":  # pytest-xdist: the worker process died during this test
            student = student_of(report.nodeid)
            if student is not None:
                self.executor.emit(GraderDied(student, report.nodeid.split("::")[-1].split("[")[0]))
            return
        for name, value in report.user_properties:
            if name == REPORT_PROPERTY and isinstance(value, dict):
                event = CheckGraded.from_dict(value)
                self.executor.emit(event)
                future = self.executor.futures.get(event.student)
                if event.done and future is not None and not future.done():
                    path = gradebook.record_path(self.executor.job.out, event.student)
                    try:
                        future.set_result(gradebook.read_record(path))
                    except gradebook.GradebookError as exc:
                        future.set_exception(StudentLost(str(exc)))


# -- execute, settle, report ----------------------------------------------------------------


class _Selected:
    """What a collection selected: whether any check of the run needs a GPU."""

    gpu = False

    def pytest_collection_finish(self, session) -> None:
        from dlgrade.plugin import SPEC

        self.gpu = any(getattr(item.stash.get(SPEC, None), "gpu", False) for item in session.items)


def collect(job: Job, run: str) -> tuple[int, bool]:
    """Collect the run once here, before any executor: a malformed rubric is reported
    plainly (not as the crash of every grading process), and the run learns whether a
    check needs a GPU. Returns (pytest's exit code, needs a GPU)."""
    import pytest

    roster_path = job.out / ".run" / "roster.json"
    job.roster(run).write(roster_path)
    terminal = ("-qq", "--tb=no", "-rN")  # options of the terminal plugin, left out
    args = [a for a in job.pytest_args(roster_path) if a not in terminal]
    selected = _Selected()
    code = pytest.main([*args, "--collect-only", "-p", "no:terminal"], plugins=[selected])
    sys.stdout.flush()
    return int(code), selected.gpu


def run(job: Job, executor: Executor, *, collect_first: bool = True, exports: bool = True) -> int:
    """Grade the job's students with the executor, settle, write every export; the exit code.

    A Dask task's one-student run (dlgrade/classrun/cluster.py) leaves out what its client
    does for the whole class: the collection that reports a malformed rubric plainly and
    says whether a check needs a GPU (``collect_first``; the grading session still reports a
    malformed rubric, as a grader bug) and the exports (``exports``; the task returns only
    the record)."""
    from dlgrade.classrun.progress import ClassProgress
    from dlgrade.reports.exports import write_exports

    print(
        f"dlgrade grade · {len(job.students)} student(s) · activities "
        f"{', '.join(job.activities)} · tier {job.tier} · seed {job.seed} · rubric "
        f"{job.rubric_version}"
    )
    if job.kept:
        print(
            f"{len(job.kept)} student(s) unchanged since their last grading: kept "
            "(--force regrades)"
        )
    stop = ""
    if job.todo:
        run_id = uuid.uuid4().hex[:12]
        collected, gpu = collect(job, run_id) if collect_first else (0, False)
        progress = ClassProgress(len(job.todo))
        crashed: dict[str, str] = {}

        def emit(event: Event) -> None:
            if isinstance(event, GraderDied):
                crashed[event.student] = event.check
            progress.event(event)

        def arrived(future: Future[StudentRecord]) -> None:
            if future.exception() is not None:
                return
            record = future.result()
            if not executor.writes_records:
                gradebook.write_record(job.out, record)
            emit(StudentGraded(record))

        try:
            if collected != 0:
                stop = BROKEN
            else:
                executor.open(job, run_id, emit, gpu=gpu)
                for student in job.todo:
                    executor.submit(student).add_done_callback(arrived)
                print(
                    f"grading {len(job.todo)} student(s), {executor.describe()}; results in "
                    f"{job.out}"
                )
                sys.stdout.flush()
                stop = executor.run()
        finally:
            progress.close()
            executor.close()
        lost = {
            name: future.exception().why
            for name, future in getattr(executor, "futures", {}).items()
            if isinstance(future.exception(), StudentLost)
        }
        settle(job, run_id, crashed, lost, stop=stop)
        if stop == BROKEN:
            print("dlgrade grade: the rubric could not be run (see above); this is a grader bug.")
    records = []
    for student in job.students:
        try:
            records.append(gradebook.read_record(gradebook.record_path(job.out, student.student)))
        except gradebook.GradebookError as exc:
            print(f"dlgrade grade: {exc}", file=sys.stderr)
    if exports:
        book = gradebook.Gradebook.of(records)
        written = write_exports(job.out, book, job.rubric_root)
        summary(book, job.out, written)
    if stop == BROKEN:
        return EXIT_INTERNAL
    if stop == INTERRUPTED:
        print("dlgrade grade: interrupted; run the same command again to finish the class.")
        return EXIT_INTERRUPTED
    if stop:
        print(f"dlgrade grade: {stop}; run the same command again to finish the class.")
        return EXIT_FAILED
    if any(c.is_internal_error for r in records for c in r.checks):
        return EXIT_INTERNAL
    if any(r.status != gradebook.GRADED for r in records):
        return EXIT_FAILED
    return EXIT_OK


def settle(job: Job, run: str, crashed: dict[str, str], lost: dict[str, str], *, stop: str) -> None:
    """Give every student of the run a record, whatever happened to the grading.

    A student keeps the record of this run when it is finished (``graded``, or
    ``incomplete`` as a grading process settled it) and no grading process died during
    their checks. Otherwise their record says ``incomplete`` and why: ``stop`` (what ended
    the run early), else what lost them (``lost``: their future's :class:`StudentLost`),
    else a grading process that died (``crashed``: during which check)."""
    in_progress = IN_PROGRESS_NOTE.format(run=run)
    for student in job.todo:
        path = gradebook.record_path(job.out, student.student)
        record = None
        if path.exists():
            try:
                record = gradebook.read_record(path)
            except gradebook.GradebookError:
                record = None
        if record is not None and record.key == student.key and record.note != in_progress:
            if student.student not in lost and (
                record.status == gradebook.GRADED or student.student not in crashed
            ):
                continue
        if stop:
            reason = stop
        elif student.student in lost and student.student not in crashed:
            reason = lost[student.student]
        else:
            reason = "the grading process died" + (
                f" during check {crashed[student.student]}" if student.student in crashed else ""
            )
        if record is None or record.key != student.key:  # nothing of this grading to keep
            record = job.roster(run).record(student)
        note = (
            f"{reason} ({len(record.checks)} check(s) recorded); re-run `dlgrade grade` to "
            "grade this student again"
        )
        gradebook.write_record(
            job.out, dataclasses.replace(record, status=gradebook.INCOMPLETE, note=note)
        )


def summary(book: gradebook.Gradebook, out: Path, written: list[Path]) -> None:
    """The class's lines after the run: counts, mean and median, every abnormal student."""
    from statistics import mean, median

    records = book.records
    graded = [r for r in records if r.status == gradebook.GRADED]
    percents = [r.percent for r in graded]
    print("")
    line = f"{len(records)} student(s): {len(graded)} graded"
    if len(graded) < len(records):
        line += f", {len(records) - len(graded)} incomplete"
    if percents:
        line += f" · mean {mean(percents):.1f}% · median {median(percents):.1f}%"
    print(line)
    for record in records:
        reason = record.reason()
        if reason:
            print(f"  {record.student}: {printable(reason)}")
    names = ", ".join(sorted({p.relative_to(out).parts[0] for p in written}))
    print(f"results in {out}: {names}")
