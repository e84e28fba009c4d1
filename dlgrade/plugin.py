"""The pytest plugin: a rubric is a pytest module, and this turns its tests into grades.

Registered through the ``pytest11`` entry point, so ``pytest checks/activity_2_01.py
--submission my_work`` grades like ``dlgrade check`` does. It stays inert in sessions that
collect no rubric checks (such as dlgrade's own test suite).
"""

from __future__ import annotations

import faulthandler
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dlgrade import gpu, gradebook, migration, models, profile, sandbox
from dlgrade.errors import (
    EXIT_INTERNAL,
    DataError,
    MachineBusy,
    RubricError,
    RunnerError,
    SandboxError,
    SubmissionError,
)
from dlgrade.gradebook import HIDDEN_FEEDBACK
from dlgrade.reasons import IMPORT_FAILURES, Reason
from dlgrade.reports import console, json_report
from dlgrade.roster import Roster, RosterError, Student
from dlgrade.rubric import (
    CHECK_ATTRIBUTE,
    DEFAULT_SEED,
    DEFAULT_TIMEOUTS,
    TIERS,
    CheckResult,
    CheckSpec,
    Score,
    activity_budget,
    hidden_name,
    is_hidden_rubric,
    take_measured,
    tier_includes,
)
from dlgrade.sandbox import Limits, WorkerSession
from dlgrade.submission import Submission

NOT_IMPLEMENTED_PREFIX = "Not implemented yet: "
RUBRIC_ERROR_PREFIX = (
    "INTERNAL ERROR in the rubric (a bug in the grader's checks, not in your code); "
    "please report it:\n"
)
HARNESS_ERROR_PREFIX = "INTERNAL ERROR in the grading harness (not your code):\n"
#: what pytest's own reports (terminal, --junit-xml) say of a hidden check that did not pass:
#: its feedback quotes its inputs, so it goes only into the grade JSON and the records
HIDDEN_REPORT = HIDDEN_FEEDBACK + " (The instructor finds the details in the grade JSON.)"


@dataclass
class GradingState:
    """Everything one pytest session knows about the submission it grades."""

    submission_path: Path | None
    tier: str
    seed: int
    call_timeout: float | None
    preload_enabled: bool
    live: bool
    results: list[CheckResult] = field(default_factory=list)
    by_nodeid: dict[str, CheckResult] = field(default_factory=dict)
    preload: set[str] = field(default_factory=set)
    datasets: set[str] = field(default_factory=set)
    limits: Limits = field(default_factory=Limits)
    hidden: set[Path] = field(default_factory=set)  # folders the worker must not see
    session: WorkerSession | None = None
    submission: Submission | None = None
    startup_error: Exception | None = None
    active: bool = False
    progress: console.Progress | None = None
    worker_stats: dict = field(default_factory=dict)  # a class run's, once the worker closed
    #: activity → the student's time its checks may use in all (rubric.activity_budget)
    budgets: dict[str, float] = field(default_factory=dict)
    #: the GPUs this run may use (``--gpus``), and what this process's workers run on
    gpus: list[gpu.Gpu] = field(default_factory=list)
    device: gpu.Device = field(default_factory=lambda: gpu.Device(None, "not decided yet"))
    #: what the worker ran on, kept when a class run closes the student's worker
    device_label: str = ""
    #: the worker's notes when the first hidden check began: later ones may quote its inputs
    public_notes: tuple[str, ...] | None = None
    #: the checks this session grades, in order, and the one running now (its id)
    items: list[pytest.Item] = field(default_factory=list)
    running: str | None = None

    def ran_on(self) -> str:
        """The device the grade and the record name (:meth:`WorkerSession.device_label`)."""
        if self.session is not None:
            return self.session.device_label()
        return self.device_label or self.device.label()

    def score(self) -> Score:
        return Score(
            submission=str(self.submission_path or ""),
            tier=self.tier,
            seed=self.seed,
            checks=tuple(self.results),
            notes=self.public_notes
            if self.public_notes is not None
            else tuple(self.session.notes)
            if self.session is not None
            else (),
            device=self.ran_on(),
        )


STATE = pytest.StashKey[GradingState]()
SPEC = pytest.StashKey[CheckSpec]()
ACTIVITY = pytest.StashKey[str]()
SETUP_SECONDS = pytest.StashKey[float]()
CLASS = pytest.StashKey["ClassRun"]()
#: the parameter that makes each check one test per student in a class run
STUDENT_PARAM = "dlgrade_student"
#: a record's note while its student is being graded (a crash leaves it behind)
IN_PROGRESS_NOTE = "grading was under way (run {run}) and stopped before every check finished"
#: the key of the user property a class run attaches to each graded check's report
REPORT_PROPERTY = "dlgrade"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlgrade", "grading a submission with dlgrade rubrics")
    group.addoption("--submission", metavar="DIR", help="the student folder to grade")
    group.addoption(
        "--tier",
        choices=TIERS,
        default="quick",
        help="run checks up to this tier: quick ⊂ standard ⊂ full (default: quick)",
    )
    group.addoption("--grade-json", metavar="PATH", help="write the grade as JSON to PATH")
    group.addoption(
        "--dlgrade-seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"session seed; each check's seed derives from it (default {DEFAULT_SEED})",
    )
    group.addoption(
        "--call-timeout",
        type=float,
        metavar="SECONDS",
        help="override every call's wall-clock limit (default: per tier and per check)",
    )
    group.addoption(
        "--no-preload",
        action="store_true",
        help="do not import TensorFlow in the worker before the first check needs it",
    )
    group.addoption(
        "--memory-limit",
        type=sandbox.gib_option,
        metavar="GIB",
        help=f"memory of each worker process (default {Limits().memory_bytes / 2**30:g} GiB)",
    )
    group.addoption(
        "--disk-limit",
        type=sandbox.gib_option,
        metavar="GIB",
        help=f"what the submission may write in all (default {Limits().disk_bytes / 2**30:g} GiB)",
    )
    group.addoption(
        "--allow-network",
        action="store_true",
        help="let the submission use the network (off by default)",
    )
    group.addoption(
        "--gpus",
        metavar="LIST",
        default="all",
        help="GPUs the workers of full-tier and gpu=True checks may use: 'all' (default), "
        "'none', or numbers such as 0,1 (round robin over pytest-xdist's workers)",
    )
    group.addoption("--dlgrade-live", action="store_true", help=f"(internal) {console.__name__}")
    group.addoption(
        "--class-roster",
        metavar="PATH",
        help="(internal, written by `dlgrade grade`) grade every student of this roster",
    )


XDIST_SINGLE_SUBMISSION = (
    "--submission grades one submission in one process, and its grade would be split "
    "between pytest-xdist's workers; drop -n (to grade many students in parallel, run "
    "`dlgrade grade SUBMISSIONS/ --jobs N`)"
)


def pytest_configure(config: pytest.Config) -> None:
    profile.mark("pytest start-up")
    submission = config.getoption("submission")
    if (
        submission
        and getattr(config.option, "numprocesses", None) not in (None, 0)
        and not hasattr(config, "workerinput")
    ):
        raise pytest.UsageError(XDIST_SINGLE_SUBMISSION)
    config.stash[STATE] = GradingState(
        submission_path=Path(submission).resolve() if submission else None,
        tier=config.getoption("tier"),
        seed=config.getoption("dlgrade_seed"),
        call_timeout=config.getoption("call_timeout"),
        preload_enabled=not config.getoption("no_preload"),
        live=config.getoption("dlgrade_live"),
        limits=Limits.configured(
            memory_gib=config.getoption("memory_limit"),
            disk_gib=config.getoption("disk_limit"),
            allow_network=config.getoption("allow_network"),
        ),
    )
    roster = config.getoption("class_roster")
    if submission or roster:  # before pytest captures stderr (which it does for each test)
        WATCHDOG.report_to(os.dup(2))
    if submission or roster:  # a grading session: which GPUs its workers may use
        try:
            config.stash[STATE].gpus = gpu.choose(gpu.discover(), config.getoption("gpus"))
        except gpu.GpuOptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    if roster:
        try:
            config.stash[CLASS] = ClassRun(Roster.read(Path(roster)), config.stash[STATE])
            config.pluginmanager.register(config.stash[CLASS], "dlgrade-class-run")
        except RosterError as exc:
            raise pytest.UsageError(str(exc)) from None
    elif config.getoption("dlgrade_live"):
        config.stash[STATE].progress = console.Progress(config)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash[STATE]
    if state.submission_path is None or CLASS in config.stash:
        return None
    return [console.header(state.submission_path, state.tier, state.seed)]


def pytest_report_collectionfinish(config: pytest.Config) -> list[str] | None:
    """The sandbox, device and data lines, once collection has said which checks run (a
    full-tier check gets a GPU) and which datasets the rubrics read."""
    state = config.stash[STATE]
    if not state.active or state.live or CLASS in config.stash:
        return None  # `dlgrade check` prints them with its own header (`_start`)
    return _setting_lines(state)


def _setting_lines(state: GradingState) -> list[str]:
    from dlgrade import environment

    return [
        sandbox.describe(state.limits, gpu=state.device.is_gpu),
        state.device.describe(),
        _data_line(state),
        environment.describe(),
    ]


def _data_line(state: GradingState) -> str:
    """Which datasets the rubrics read (their ``DATASETS``) are real, synthetic or missing."""
    from dlgrade import data

    return data.describe_sources(sorted(state.datasets), tier=state.tier)


# -- collection --------------------------------------------------------------------------


def _is_rubric_module(module) -> bool:
    path = Path(getattr(module, "__file__", "") or "")
    return hasattr(module, "ACTIVITY") or (
        path.parent.name == "checks" and path.name.startswith("activity_")
    )


def _validate_module(module) -> list[str]:
    from dlgrade import activities

    name = Path(module.__file__).name
    activity = getattr(module, "ACTIVITY", None)
    try:  # the activities its own rubric folder declares (the packaged or --checks DIR)
        known = activities.registry(Path(module.__file__).parent)
    except RubricError as exc:
        return [str(exc)]
    if activity not in known:
        return [
            f"{module.__file__}: a rubric must set ACTIVITY to one of "
            f"{', '.join(known)} (each declared by its public rubric: "
            f"{activities.DECLARATION}); got {activity!r}"
        ]
    activities.use(Path(module.__file__).parent)  # its titles head the report
    expected = f"{known[activity][0]}.py"
    problems = []
    if name not in (expected, hidden_name(expected)):
        problems.append(
            f"{module.__file__}: ACTIVITY = {activity!r} belongs in {expected} "
            f"(public checks) or {hidden_name(expected)} (hidden checks)"
        )
    preload = getattr(module, "PRELOAD", ())
    if not isinstance(preload, tuple) or not all(isinstance(p, str) for p in preload):
        problems.append(f"{module.__file__}: PRELOAD must be a tuple of module names")
    from dlgrade.data import REGISTRY

    datasets = getattr(module, "DATASETS", ())
    if not isinstance(datasets, tuple) or not set(datasets) <= set(REGISTRY):
        problems.append(f"{module.__file__}: DATASETS must be a tuple of dataset names")
    return problems


def _item_student(item: pytest.Item) -> Student | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(STUDENT_PARAM) if callspec is not None else None


@pytest.hookimpl(trylast=True)  # the last word on the order (after -p randomly, --ff...)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = config.stash[STATE]
    problems: list[str] = []
    limits: dict[str, list[float]] = {}
    checked_modules = set()
    kept, deselected = [], []
    for item in items:
        module = getattr(item, "module", None)
        if module is None or not _is_rubric_module(module):
            kept.append(item)
            continue
        if module not in checked_modules:
            checked_modules.add(module)
            problems += _validate_module(module)
            state.preload.update(getattr(module, "PRELOAD", ()))
            state.datasets.update(getattr(module, "DATASETS", ()))
            state.hidden.add(Path(module.__file__).resolve().parent)  # hidden rubrics
        spec = getattr(getattr(item, "function", None), CHECK_ATTRIBUTE, None)
        if not isinstance(spec, CheckSpec):
            problems.append(
                f"{module.__file__}: {item.name} is not declared with "
                "@dlgrade.check(points=..., feedback=...); every test in a rubric must be"
            )
            continue
        if (spec.visibility == "hidden") != is_hidden_rubric(module.__file__):
            problems.append(
                f"{module.__file__}: {item.name} is a {spec.visibility} check; "
                + (
                    f"move it to {hidden_name(Path(module.__file__).name)}, where hidden checks "
                    "live so that the student kit never ships them"
                    if spec.visibility == "hidden"
                    else 'a *_hidden.py rubric holds only visibility="hidden" checks'
                )
            )
            continue
        item.stash[SPEC] = spec
        item.stash[ACTIVITY] = getattr(module, "ACTIVITY", "?")
        (kept if tier_includes(state.tier, spec.tier) else deselected).append(item)
        if tier_includes(state.tier, spec.tier):
            limits.setdefault(item.stash[ACTIVITY], []).append(_call_limit(state, spec))
    if problems:
        problems = list(dict.fromkeys(problems))  # a class run repeats each check per student
        raise pytest.UsageError("malformed rubric:\n  " + "\n  ".join(problems))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    items[:] = public_first(items)
    state.budgets = {
        a: activity_budget(found, state.tier, state.call_timeout) for a, found in limits.items()
    }
    selected = [item.stash[SPEC] for item in items if SPEC in item.stash]
    if selected:  # a grading session: its workers' device (a GPU only if a check uses one)
        state.device = gpu.assign(
            state.gpus,
            needed=any(gpu.uses_gpu(spec.tier, spec.gpu) for spec in selected),
            slot=gpu.job_slot(),
            asked=config.getoption("gpus"),
        )
        gpu.set_current(state.device)
        if state.device.is_gpu:
            gpu.ensure_uvm()
    run = config.stash.get(CLASS, None)
    if run is not None:
        run.expect([item for item in items if SPEC in item.stash])
        state.active = True
        return
    if any(SPEC in item.stash for item in items):
        state.items = [item for item in items if SPEC in item.stash]
        if state.submission_path is None:
            raise pytest.UsageError(
                "these are dlgrade rubric checks: pass --submission DIR (the student folder)"
            )
        if not state.submission_path.is_dir():
            raise pytest.UsageError(f"--submission {state.submission_path}: no such folder")
        state.active = True
        profile.mark("collection")
        WATCHDOG.arm(
            session_bound(state.budgets, len(state.items)),
            lambda bound: _stalled_session(state, config, bound),
        )
        _write_ahead(state, config)
        _start(state, config)


def public_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """Each student's hidden checks after every public check of theirs, otherwise in order.

    What a hidden check passes in can stay behind in the worker (its memory, HOME, the
    working folder, /dev/shm); a public check that ran later could print it into the
    student's feedback. Run last, nothing public comes after them in that worker, and the
    reports show nothing of a hidden check's own (docs/security.md, "Hidden inputs").
    """
    first_seen: dict[str, int] = {}
    for item in items:
        student = _item_student(item)
        first_seen.setdefault(getattr(student, "student", ""), len(first_seen))

    def key(item: pytest.Item) -> tuple[int, bool]:
        student = getattr(_item_student(item), "student", "")
        spec = item.stash.get(SPEC, None)
        return first_seen[student], spec is not None and spec.visibility == "hidden"

    return sorted(items, key=key)


def _start(state: GradingState, config: pytest.Config) -> None:
    """Start the worker now, so TensorFlow loads there while pytest sets up the first check."""
    preload = sorted(state.preload) if state.preload_enabled else []
    try:
        results = [config.getoption("grade_json"), getattr(config.option, "xmlpath", None)]
        state.session = WorkerSession(
            state.submission_path,
            state.limits,
            preload=preload,
            datasets=sorted(state.datasets),
            hidden=state.hidden | {Path(r).resolve().parent for r in results if r},
            device=state.device,
        )
        state.submission = Submission(state.submission_path, state.session)
        state.session.start()
    except (SubmissionError, SandboxError) as exc:
        state.startup_error = exc
    if preload:
        models.preload()  # the rubric's own (trusted) Keras loads beside the worker's
    if state.live:
        config.get_terminal_writer().line(
            console.header(state.submission_path, state.tier, state.seed)
        )
        for line in _setting_lines(state):
            config.get_terminal_writer().line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    if CLASS in config.stash:
        config.stash[CLASS].finish()
    state = config.stash.get(STATE, None)
    if state is not None and state.session is not None:
        state.session.close()
        state.session = None
        profile.mark("worker closed")
    if profile.PROFILE is not None and state is not None and state.active:
        profile.PROFILE.write()
    if state is not None and state.progress is not None:
        state.progress.close()
    WATCHDOG.disarm()


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dlgrade_student(request: pytest.FixtureRequest) -> Student | None:
    """The roster's student this check grades, in a class run (``dlgrade grade``)."""
    return getattr(request, "param", None)


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest, dlgrade_student: Student | None) -> Submission:
    """The submission being graded; calls through it run in the worker."""
    state = request.config.stash[STATE]
    if dlgrade_student is not None:
        state = request.config.stash[CLASS].state(dlgrade_student)
    if state.startup_error is not None:
        raise state.startup_error
    if state.submission is None:
        raise RubricError("the `submission` fixture is only available to rubric checks")
    return state.submission


@pytest.fixture
def student(request: pytest.FixtureRequest, submission: Submission):
    """The module of this rubric's activity in the submission, e.g. ``activity_1_01``."""
    return submission.activity(request.module.ACTIVITY)


@pytest.fixture
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trusted folder for files the rubric writes (synthetic data...)."""
    return Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))


# -- running a check ---------------------------------------------------------------------


def check_id(item: pytest.Item) -> str:
    # originalname: without a class run's [student] parameter
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    return f"{item.stash[ACTIVITY]}/{name}"


def check_seed(session_seed: int, identifier: str) -> int:
    return (session_seed * 1_000_003 + zlib.crc32(identifier.encode())) % 2**31


def _title(item: pytest.Item) -> str:
    doc = (getattr(item, "function", None).__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else item.name.removeprefix("test_")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Seed and time-limit the check before its fixtures run: they call the worker too."""
    spec = item.stash.get(SPEC, None)
    state = _state(item)
    if spec is None or not state.active:
        return (yield)
    run = item.config.stash.get(CLASS, None)
    if run is not None:
        run.begin(_item_student(item), item)
    seed = check_seed(state.seed, check_id(item))
    state.running = check_id(item)
    if profile.PROFILE is not None:
        profile.PROFILE.check = check_id(item)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    models.set_check_seed(seed)
    if spec.visibility == "hidden" and state.public_notes is None and state.session is not None:
        state.public_notes = tuple(state.session.notes)
    if state.submission is not None:
        activity = item.stash[ACTIVITY]
        state.submission.begin_check(
            activity, _call_limit(state, spec), state.budgets.get(activity)
        )
        state.session.start_check(seed, check_id(item))
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    state = item.config.stash[STATE]
    if state.progress is not None and SPEC in item.stash:
        state.progress.begin(item.stash[ACTIVITY], _title(item), item.stash[SPEC].tier)
    try:
        return (yield)
    finally:
        if state.progress is not None and SPEC in item.stash:
            state.progress.finish(state.by_nodeid.get(item.nodeid))
            if nextitem is None:
                state.progress.flush()  # an import failure held until its activity ended


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    spec = item.stash.get(SPEC, None)
    state = _state(item)
    if spec is None or not state.active or item.nodeid in state.by_nodeid:
        return report
    if call.when == "setup":
        take_measured()  # what a fixture measured belongs to no check
    if call.when == "setup" and report.passed:
        item.stash[SETUP_SECONDS] = report.duration
    elif call.when == "call" or (call.when == "setup" and not report.passed):
        result = _grade(item, spec, call, report, state)
        if profile.PROFILE is not None:
            profile.PROFILE.check_done(result.id, result.duration_s)
            profile.PROFILE.check = None
        state.results.append(result)
        state.by_nodeid[item.nodeid] = result
        state.running = None
        if item.config.stash.get(CLASS, None) is None:
            _write_ahead(state, item.config)
        if not result.passed:
            report.outcome = "failed"
            report.longrepr = f"[{result.outcome}: {result.reason}] {result.feedback}"
        if spec.visibility == "hidden":  # pytest's terminal and --junit-xml show reports
            report.sections = []
            if not result.passed:
                report.longrepr = f"[{result.outcome}] {HIDDEN_REPORT}"
        run = item.config.stash.get(CLASS, None)
        if run is not None:
            report.user_properties.append(
                (REPORT_PROPERTY, run.graded(_item_student(item), result))
            )
    return report


def _call_limit(state: GradingState, spec: CheckSpec) -> float:
    """One call's limit in a check: ``--call-timeout``, the check's own, or its tier's."""
    return state.call_timeout or spec.timeout or DEFAULT_TIMEOUTS[spec.tier]


def _state(item: pytest.Item) -> GradingState:
    """The grading state of the submission this item grades (one per student in a class run)."""
    run = item.config.stash.get(CLASS, None)
    student = _item_student(item) if run is not None else None
    return run.state(student) if student is not None else item.config.stash[STATE]


def _grade(item, spec: CheckSpec, call, report, state: GradingState) -> CheckResult:
    outcome, reason, feedback = classify(call.excinfo, spec)
    if report.skipped:
        outcome, reason = "error", "rubric_error"
        feedback = RUBRIC_ERROR_PREFIX + f"the check was skipped: {report.longrepr}"
    stdout = state.session.check_output() if state.session is not None else ""
    seed = check_seed(state.seed, check_id(item))
    measured = take_measured()
    # a hidden check's numbers would tell a student about the hidden inputs: never kept;
    # and a check that ended in an error or a crash compared nothing that counts
    if spec.visibility != "public" or outcome not in ("pass", "fail"):
        measured = None
    return CheckResult(
        id=check_id(item),
        activity=item.stash[ACTIVITY],
        title=_title(item),
        tier=spec.tier,
        visibility=spec.visibility,
        points=spec.points if outcome == "pass" else 0.0,
        max_points=spec.points,
        outcome=outcome,
        reason=reason,
        feedback=feedback,
        duration_s=round(report.duration + item.stash.get(SETUP_SECONDS, 0.0), 3),
        stdout=stdout,
        seed=seed,
        measured=measured,
    )


def classify(excinfo, spec: CheckSpec) -> tuple[str, str, str]:
    """(outcome, reason, feedback) for how a check ended. Whose fault decides the outcome."""
    if excinfo is None:
        return "pass", "", ""
    exc = excinfo.value
    fix = f"\nWhat to fix: {getattr(exc, 'fix', None) or spec.feedback}"
    if isinstance(exc, SubmissionError):
        from dlgrade.rubric import GRADER_FAULTS, TAMPERING

        if not isinstance(exc.reason, str) or exc.reason in GRADER_FAULTS:
            # A reason that came from the worker's side can never name a grader fault:
            # only the trusted side decides that a failure is ours.
            return "crash", TAMPERING, str(exc)[:4000] + fix
        text = str(exc)
        hint = migration.hint(f"{text}\n{exc.student_traceback}")
        if hint:
            text += "\n" + hint
        if exc.student_traceback:
            text += "\n" + exc.student_traceback.rstrip()
        if exc.outcome == "not_implemented":
            return "not_implemented", exc.reason, NOT_IMPLEMENTED_PREFIX + text
        if exc.reason in IMPORT_FAILURES:
            # the module's own fix (the file, the package, the line) is in the message; the
            # check's fix would send the student after code that never ran
            return exc.outcome, exc.reason, text
        return exc.outcome, exc.reason, text + fix
    if isinstance(exc, AssertionError):
        return "fail", "check_failed", (str(exc) or "the check's assertion failed") + fix
    if isinstance(exc, DataError):
        return "error", "data_missing", str(exc)
    if isinstance(exc, MachineBusy):
        return "error", MachineBusy.reason, str(exc)
    if isinstance(exc, RunnerError):
        return "error", "runner", str(exc)
    if isinstance(exc, SandboxError):
        return "error", "harness_error", HARNESS_ERROR_PREFIX + str(exc)
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return "error", "rubric_error", RUBRIC_ERROR_PREFIX + trace


def pytest_report_teststatus(report, config: pytest.Config):
    state = config.stash[STATE]
    if CLASS in config.stash or state.live:
        # `dlgrade grade` and `dlgrade check` print their own lines instead of pytest's
        # dots; a passed setup or teardown is not a test of its own
        if report.when != "call" and report.passed:
            return "", "", ""
        return report.outcome, "", ""
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash[STATE]
    if not state.active or CLASS in config.stash:
        return
    if state.progress is not None:
        state.progress.flush()  # held import failures, should the last check not have ended
    console.summary(terminalreporter, state.score(), live=state.live)
    if state.session is not None:
        console.worker_line(terminalreporter, state.session)


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    state = session.config.stash[STATE]
    if not state.active:
        return
    profile.mark("checks done")
    if CLASS in session.config.stash:
        session.config.stash[CLASS].finish()
        return
    target = session.config.getoption("grade_json")
    if target:
        json_report.write(state.score(), Path(target))


# -- the watchdog --------------------------------------------------------------------------

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


def _unfinished(state: GradingState, items: list[pytest.Item], bound: float | None):
    """A result for each of ``items`` the session has none for: the running check stalled
    (``bound``: the watchdog fired; None: written ahead), the rest did not start."""
    done = {r.id for r in list(state.results)}
    found = []
    for item in items:
        identifier = check_id(item)
        if identifier in done:
            continue
        spec = item.stash[SPEC]
        stalled = bound is not None and identifier == state.running
        found.append(
            CheckResult(
                id=identifier,
                activity=item.stash[ACTIVITY],
                title=_title(item),
                tier=spec.tier,
                visibility=spec.visibility,
                points=0.0,
                max_points=spec.points,
                outcome="error",
                reason=GRADER_STALLED,
                feedback=STALLED_FEEDBACK.format(bound=bound) if stalled else NOT_STARTED_FEEDBACK,
                duration_s=0.0,
                stdout="",
                seed=check_seed(state.seed, identifier),
            )
        )
    return found


def _score_with(state: GradingState, results: list[CheckResult]) -> Score:
    return Score(
        submission=str(state.submission_path or ""),
        tier=state.tier,
        seed=state.seed,
        checks=tuple(results),
        notes=state.public_notes or (),
        device=state.device_label or state.device.label(),
    )


def _write_ahead(state: GradingState, config: pytest.Config) -> None:
    """The grade JSON as it stands, every check not finished yet recorded as not started:
    whatever ends this process from here on, a grade is on disk and says what is missing."""
    target = config.getoption("grade_json")
    if target:
        ahead = [*state.results, *_unfinished(state, state.items, None)]
        json_report.write(_score_with(state, ahead), Path(target))


def _stalled_session(state: GradingState, config: pytest.Config, bound: float) -> None:
    """The watchdog fired in ``dlgrade check``: the grade JSON, then stop the worker."""
    unfinished = _unfinished(state, state.items, bound)
    target = config.getoption("grade_json")
    if target:
        json_report.write(_score_with(state, [*state.results, *unfinished]), Path(target))
    WATCHDOG.say(
        STALLED_MESSAGE.format(submission=state.submission_path, bound=bound, count=len(unfinished))
    )
    if state.session is not None:
        state.session.close()


# -- class runs (`dlgrade grade`) ----------------------------------------------------------


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
        items.sort(key=lambda item: order.get(getattr(_item_student(item), "student", ""), -1))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        """Send all of a student's checks to one pytest-xdist worker, so that TensorFlow
        starts once per student. (xdist's own ``loadgroup`` relies on renaming node ids,
        which pytest 9.2 no longer allows: pytest-xdist#1386.)"""
        from xdist.scheduler import LoadScopeScheduling

        from dlgrade.classevents import student_of

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
            student = _item_student(item)
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
            other = _item_student(candidate)
            if other is not None and other.student != student.student:
                return other.student
        return None

    def graded(self, student: Student, result: CheckResult) -> dict:
        """Record one finished check; close the student's worker after their last one.
        Returns the :class:`~dlgrade.classrun.CheckGraded` event, as a dict (it travels
        from an xdist worker to the controlling process in the report)."""
        from dlgrade.classevents import CheckGraded

        state = self.state(student)
        state.results = [r for r in state.results if r.id != result.id] + [result]
        done = len(state.results) >= self.expected.get(student.student, 0)
        if done:
            WATCHDOG.disarm()
            self.finished.add(student.student)
            self._close(state)
        record = self._write(student, state, gradebook.GRADED if done else None)
        return CheckGraded(
            student=student.student,
            check=result.id,
            outcome=result.outcome,
            abnormal=bool(record.abnormal()),
            done=done,
        ).to_dict()

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
        unfinished = _unfinished(state, self.items_of.get(student.student, []), bound)
        state.results = [*state.results, *unfinished]
        self._write(student, state, None)
        WATCHDOG.say(
            STALLED_MESSAGE.format(submission=student.student, bound=bound, count=len(unfinished))
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
