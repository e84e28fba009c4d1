"""The pytest plugin: a rubric is a pytest module, and this turns its tests into grades.

Registered through the ``pytest11`` entry point, so ``pytest checks/activity_2_01.py
--submission my_work`` grades like ``dlgrade check`` does. It stays inert in sessions that
collect no rubric checks (such as dlgrade's own test suite).
"""

from __future__ import annotations

import os
import random
import tempfile
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from dlgrade import gpu, migration, models, profile, sandbox
from dlgrade.errors import (
    DataError,
    MachineBusy,
    RubricError,
    RunnerError,
    SandboxError,
    SubmissionError,
)
from dlgrade.gradebook import HIDDEN_FEEDBACK
from dlgrade.reasons import IMPORT_FAILURES
from dlgrade.reports import console, json_report
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
from dlgrade.watchdog import (
    GRADER_STALLED,
    NOT_STARTED_FEEDBACK,
    STALLED_FEEDBACK,
    STALLED_MESSAGE,
    WATCHDOG,
    session_bound,
)

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
#: the class run of this session, where there is one (:mod:`dlgrade.classrun.plugin`)
CLASS = pytest.StashKey["ManyStudents"]()
#: the parameter that makes each check one test per student in a class run
STUDENT_PARAM = "dlgrade_student"


class ManyStudents(Protocol):
    """What this plugin asks of a class run, the one plugin that grades many students in
    one session (:class:`dlgrade.classrun.plugin.ClassRun`, which this module never imports).
    A ``student`` is the value of the :data:`STUDENT_PARAM` parameter of the item."""

    def expect(self, items: list[pytest.Item]) -> None:
        """The session's selected checks, once collection is done."""

    def state(self, student) -> GradingState:
        """The grading state of ``student``'s submission."""

    def begin(self, student, item: pytest.Item) -> None:
        """Before each of ``student``'s checks (their worker starts with the first)."""

    def graded(self, student, result: CheckResult, report: pytest.TestReport) -> None:
        """After each of ``student``'s checks, with its result and pytest's report."""

    def finish(self) -> None:
        """At the end of the session, however it ended."""


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
    if submission:
        grading_session(config)
    if config.getoption("dlgrade_live"):
        config.stash[STATE].progress = console.Progress(config)


def grading_session(config: pytest.Config) -> None:
    """This session grades (one submission, or a class run's students): the watchdog's
    report goes to stderr as it is now, before pytest captures it (which it does for each
    test), and the GPUs its workers may use are chosen."""
    WATCHDOG.report_to(os.dup(2))
    try:
        config.stash[STATE].gpus = gpu.choose(gpu.discover(), config.getoption("gpus"))
    except gpu.GpuOptionError as exc:
        raise pytest.UsageError(str(exc)) from None


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


def item_student(item: pytest.Item):
    """The class run's student an item grades (its :data:`STUDENT_PARAM`); None outside one."""
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
        student = item_student(item)
        first_seen.setdefault(getattr(student, "student", ""), len(first_seen))

    def key(item: pytest.Item) -> tuple[int, bool]:
        student = getattr(item_student(item), "student", "")
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
def dlgrade_student(request: pytest.FixtureRequest):
    """The roster's student this check grades, in a class run (``dlgrade grade``)."""
    return getattr(request, "param", None)


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest, dlgrade_student) -> Submission:
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
        run.begin(item_student(item), item)
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
            run.graded(item_student(item), result, report)
    return report


def _call_limit(state: GradingState, spec: CheckSpec) -> float:
    """One call's limit in a check: ``--call-timeout``, the check's own, or its tier's."""
    return state.call_timeout or spec.timeout or DEFAULT_TIMEOUTS[spec.tier]


def _state(item: pytest.Item) -> GradingState:
    """The grading state of the submission this item grades (one per student in a class run)."""
    run = item.config.stash.get(CLASS, None)
    student = item_student(item) if run is not None else None
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




def unfinished(state: GradingState, items: list[pytest.Item], bound: float | None):
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
        ahead = [*state.results, *unfinished(state, state.items, None)]
        json_report.write(_score_with(state, ahead), Path(target))


def _stalled_session(state: GradingState, config: pytest.Config, bound: float) -> None:
    """The watchdog fired in ``dlgrade check``: the grade JSON, then stop the worker."""
    missing = unfinished(state, state.items, bound)
    target = config.getoption("grade_json")
    if target:
        json_report.write(_score_with(state, [*state.results, *missing]), Path(target))
    WATCHDOG.say(
        STALLED_MESSAGE.format(submission=state.submission_path, bound=bound, count=len(missing))
    )
    if state.session is not None:
        state.session.close()
