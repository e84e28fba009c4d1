"""The pytest plugin: a rubric is a pytest module, and this turns its tests into grades.

Registered through the ``pytest11`` entry point, so ``pytest checks/activity_2_01.py
--submission my_work`` grades like ``dlgrade check`` does. It stays inert in sessions that
collect no rubric checks (such as dlgrade's own test suite).
"""

from __future__ import annotations

import random
import tempfile
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dlgrade import models, sandbox
from dlgrade.errors import DataError, RubricError, RunnerError, SandboxError, SubmissionError
from dlgrade.reports import console, json_report
from dlgrade.rubric import (
    ACTIVITIES,
    CHECK_ATTRIBUTE,
    DEFAULT_TIMEOUTS,
    TIERS,
    CheckResult,
    CheckSpec,
    Score,
    tier_includes,
)
from dlgrade.sandbox import Limits, WorkerSession
from dlgrade.submission import Submission

DEFAULT_SEED = 20211
NOT_IMPLEMENTED_PREFIX = "Not implemented yet: "
RUBRIC_ERROR_PREFIX = (
    "INTERNAL ERROR in the rubric (a bug in the grader's checks, not in your code); "
    "please report it:\n"
)
HARNESS_ERROR_PREFIX = "INTERNAL ERROR in the grading harness (not your code):\n"
#: hidden checks live in their own rubric files (``activity_1_01_hidden.py``), so that the
#: student kit can leave them out whole: no hidden input or expected value can ship
HIDDEN_SUFFIX = "_hidden"


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

    def score(self) -> Score:
        return Score(
            submission=str(self.submission_path or ""),
            tier=self.tier,
            seed=self.seed,
            checks=tuple(self.results),
        )


STATE = pytest.StashKey[GradingState]()
SPEC = pytest.StashKey[CheckSpec]()
ACTIVITY = pytest.StashKey[str]()
SETUP_SECONDS = pytest.StashKey[float]()


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
    group.addoption("--dlgrade-live", action="store_true", help=f"(internal) {console.__name__}")


def pytest_configure(config: pytest.Config) -> None:
    submission = config.getoption("submission")
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
    if config.getoption("dlgrade_live"):
        config.stash[STATE].progress = console.Progress(config)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash[STATE]
    if state.submission_path is None:
        return None
    return [
        console.header(state.submission_path, state.tier, state.seed),
        sandbox.describe(state.limits),
    ]


# -- collection --------------------------------------------------------------------------


def _is_rubric_module(module) -> bool:
    path = Path(getattr(module, "__file__", "") or "")
    return hasattr(module, "ACTIVITY") or (
        path.parent.name == "checks" and path.name.startswith("activity_")
    )


def hidden_name(rubric_file: str) -> str:
    """``activity_1_01.py`` → ``activity_1_01_hidden.py``, the file of its hidden checks."""
    return rubric_file.removesuffix(".py") + HIDDEN_SUFFIX + ".py"


def is_hidden_rubric(path: str | Path) -> bool:
    return Path(path).stem.endswith(HIDDEN_SUFFIX)


def _validate_module(module) -> list[str]:
    name = Path(module.__file__).name
    activity = getattr(module, "ACTIVITY", None)
    if activity not in ACTIVITIES:
        return [
            f"{module.__file__}: a rubric must set ACTIVITY to one of "
            f"{', '.join(ACTIVITIES)}; got {activity!r}"
        ]
    expected = f"{ACTIVITIES[activity][0]}.py"
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


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = config.stash[STATE]
    problems: list[str] = []
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
                    else "a *_hidden.py rubric holds only visibility=\"hidden\" checks"
                )
            )
            continue
        item.stash[SPEC] = spec
        item.stash[ACTIVITY] = getattr(module, "ACTIVITY", "?")
        (kept if tier_includes(state.tier, spec.tier) else deselected).append(item)
    if problems:
        raise pytest.UsageError("malformed rubric:\n  " + "\n  ".join(problems))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    if any(SPEC in item.stash for item in items):
        if state.submission_path is None:
            raise pytest.UsageError(
                "these are dlgrade rubric checks: pass --submission DIR (the student folder)"
            )
        if not state.submission_path.is_dir():
            raise pytest.UsageError(f"--submission {state.submission_path}: no such folder")
        state.active = True
        _start(state, config)


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
        config.get_terminal_writer().line(sandbox.describe(state.limits))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state.session is not None:
        state.session.close()
        state.session = None
    if state is not None and state.progress is not None:
        state.progress.close()


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest) -> Submission:
    """The submission being graded; calls through it run in the worker."""
    state = request.config.stash[STATE]
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
    name = item.name.removeprefix("test_")
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
    state = item.config.stash[STATE]
    if spec is None or not state.active:
        return (yield)
    seed = check_seed(state.seed, check_id(item))
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    models.set_check_seed(seed)
    if state.submission is not None:
        state.submission.timeout = state.call_timeout or spec.timeout or DEFAULT_TIMEOUTS[spec.tier]
        state.session.start_check(seed)
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    spec = item.stash.get(SPEC, None)
    state = item.config.stash[STATE]
    if spec is None or not state.active or item.nodeid in state.by_nodeid:
        return report
    if call.when == "setup" and report.passed:
        item.stash[SETUP_SECONDS] = report.duration
    elif call.when == "call" or (call.when == "setup" and not report.passed):
        result = _grade(item, spec, call, report, state)
        state.results.append(result)
        state.by_nodeid[item.nodeid] = result
        if not result.passed:
            report.outcome = "failed"
            report.longrepr = f"[{result.outcome}: {result.reason}] {result.feedback}"
    return report


def _grade(item, spec: CheckSpec, call, report, state: GradingState) -> CheckResult:
    outcome, reason, feedback = classify(call.excinfo, spec)
    if report.skipped:
        outcome, reason = "error", "rubric_error"
        feedback = RUBRIC_ERROR_PREFIX + f"the check was skipped: {report.longrepr}"
    stdout = state.session.check_output() if state.session is not None else ""
    seed = check_seed(state.seed, check_id(item))
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
    )


def classify(excinfo, spec: CheckSpec) -> tuple[str, str, str]:
    """(outcome, reason, feedback) for how a check ended. Whose fault decides the outcome."""
    if excinfo is None:
        return "pass", "", ""
    exc = excinfo.value
    fix = f"\nWhat to fix: {spec.feedback}"
    if isinstance(exc, SubmissionError):
        text = str(exc)
        if exc.student_traceback:
            text += "\n" + exc.student_traceback.rstrip()
        if exc.outcome == "not_implemented":
            return "not_implemented", exc.reason, NOT_IMPLEMENTED_PREFIX + text
        return exc.outcome, exc.reason, text + fix
    if isinstance(exc, AssertionError):
        return "fail", "check_failed", (str(exc) or "the check's assertion failed") + fix
    if isinstance(exc, DataError):
        return "error", "data_missing", str(exc)
    if isinstance(exc, RunnerError):
        return "error", "runner", str(exc)
    if isinstance(exc, SandboxError):
        return "error", "harness_error", HARNESS_ERROR_PREFIX + str(exc)
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return "error", "rubric_error", RUBRIC_ERROR_PREFIX + trace


def pytest_report_teststatus(report, config: pytest.Config):
    state = config.stash[STATE]
    if not state.live:
        return None
    # `dlgrade check` prints its own line per check instead of pytest's dots.
    if report.when != "call" and report.passed:
        return "", "", ""
    return report.outcome, "", ""


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash[STATE]
    if not state.active:
        return
    console.summary(terminalreporter, state.score(), live=state.live)
    if state.session is not None:
        console.worker_line(terminalreporter, state.session)


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    state = session.config.stash[STATE]
    if not state.active:
        return
    target = session.config.getoption("grade_json")
    if target:
        json_report.write(state.score(), Path(target))
