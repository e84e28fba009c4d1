"""Checks, points, tiers and the values a graded session produces."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dlgrade.activities import (  # noqa: F401 - re-exported
    HIDDEN_SUFFIX,
    PackagedActivities,
    activity,
    hidden_name,
    is_hidden_rubric,
)
from dlgrade.errors import RubricError
from dlgrade.reasons import GRADER_FAULTS, REGRADE_REASONS, Reason  # noqa: F401 - re-exported

TIERS = ("quick", "standard", "full")
VISIBILITIES = ("public", "hidden")
OUTCOMES = ("pass", "fail", "error", "timeout", "crash", "not_implemented")
#: outcomes that mean the run did not end the way the student's code meant it to
ABNORMAL_OUTCOMES = ("timeout", "crash")

#: activity number → (module name in a submission, title), of the packaged rubrics (checks/):
#: each rubric declares its own (``ACTIVITY = dlgrade.activity("1.01", "Title")``), read
#: without importing it. A run graded with another rubric folder uses
#: ``dlgrade.activities.registry(rubric_root)`` instead (dlgrade/activities.py).
ACTIVITIES: Mapping[str, tuple[str, str]] = PackagedActivities()

#: default wall-clock limit of one call into the submission, per tier (seconds)
DEFAULT_TIMEOUTS = {"quick": 60.0, "standard": 300.0, "full": 3600.0}

CHECK_ATTRIBUTE = "__dlgrade_check__"
#: the session seed when none is given; each check's seed derives from it
DEFAULT_SEED = 20211


def activity_budget(call_limits: list[float], tier: str, override: float | None = None) -> float:
    """The student's time one activity may use in a grading session, all checks together.

    Enough for one call that hangs until the largest limit of the activity's checks, plus
    the tier's ordinary limit for everything else (a correct solution uses a small part of
    that: the reference takes under a minute per activity at the standard tier). A hanging
    student thus costs about one limit per activity, not one per check. ``override``: the
    one limit every call has (``--call-timeout``), which then replaces the tier's.
    """
    largest = max(call_limits, default=0.0)
    return largest + (override if override else DEFAULT_TIMEOUTS[tier])


#: the reason sets (dlgrade/reasons.py): grader faults, what is graded again, and a reply
#: no honest worker sends (the student's crash, never a grader fault and never regraded)
TAMPERING = Reason.TAMPERING


def tier_includes(selected: str, tier: str) -> bool:
    """Tiers nest: ``standard`` runs the quick checks too, ``full`` runs everything."""
    return TIERS.index(tier) <= TIERS.index(selected)


@dataclass(frozen=True)
class CheckSpec:
    """What a rubric declares about one check."""

    points: float
    tier: str
    visibility: str
    feedback: str
    timeout: float | None = None
    #: the check needs a GPU (a class run on a Dask cluster sends it to a GPU worker)
    gpu: bool = False


def check(
    *,
    points: float,
    feedback: str,
    tier: str = "quick",
    visibility: str = "public",
    timeout: float | None = None,
    gpu: bool = False,
) -> Callable:
    """Declare a rubric check: ``@dlgrade.check(points=2, feedback="...")`` on a test.

    ``feedback`` says what to fix when the check does not pass; ``timeout`` overrides the
    tier's limit for each call the check makes into the submission; ``gpu=True`` says that
    it needs a GPU (on a Dask cluster the student's task asks for ``resources={"GPU": 1}``).
    """

    def declare(function: Callable) -> Callable:
        where = f"@check on {getattr(function, '__qualname__', function)!s}"
        if (
            isinstance(points, bool)
            or not isinstance(points, int | float)
            or not (math.isfinite(points) and points > 0)
        ):
            raise RubricError(f"{where}: points must be a positive number, got {points!r}")
        if tier not in TIERS:
            raise RubricError(f"{where}: tier must be one of {TIERS}, got {tier!r}")
        if visibility not in VISIBILITIES:
            raise RubricError(
                f"{where}: visibility must be one of {VISIBILITIES}, got {visibility!r}"
            )
        if not isinstance(feedback, str) or not feedback.strip():
            raise RubricError(f"{where}: feedback must say what to fix, got {feedback!r}")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise RubricError(f"{where}: timeout must be a positive number of seconds")
        if not isinstance(gpu, bool):
            raise RubricError(f"{where}: gpu must be True or False, got {gpu!r}")
        setattr(
            function,
            CHECK_ATTRIBUTE,
            CheckSpec(float(points), tier, visibility, feedback.strip(), timeout, gpu),
        )
        return function

    return declare


class CheckFailed(AssertionError):
    """Raised by :func:`fail`: the student's value is wrong, and this says how.

    ``fix`` replaces the check's general ``feedback`` as "What to fix" when the failed
    condition has a fix of its own (a check that tests several conditions should not send
    the student after the wrong one).
    """

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


def fail(message: str, *, fix: str | None = None) -> None:
    """Fail the running check with ``message`` (what was expected, what was got).

    ``fix``: what to fix for this condition, when it is narrower than the check's feedback.
    """
    __tracebackhide__ = True
    raise CheckFailed(message, fix)


#: how a measured value is compared with its threshold
MEASURE_OPS = (">=", "<=")


@dataclass(frozen=True)
class Measured:
    """The number a stochastic check compared with its threshold (``accuracy 0.962 ≥ 0.95``):
    in the grade JSON, the records and the reports, so that whoever reads a grade sees how
    far it was from the line."""

    what: str
    value: float
    threshold: float
    op: str = ">="

    @property
    def passes(self) -> bool:
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def text(self) -> str:
        """``best training accuracy 0.962 ≥ 0.95`` (``<`` when it does not pass)."""
        if self.op == ">=":
            sign = "≥" if self.passes else "<"
        else:
            sign = "≤" if self.passes else ">"
        return f"{self.what} {self.value:.4g} {sign} {self.threshold:g}"

    @classmethod
    def from_dict(cls, data: Any) -> Measured | None:
        """From :meth:`CheckResult.to_dict`'s form; None for anything else."""
        try:
            made = cls(
                str(data["what"]), float(data["value"]), float(data["threshold"]), data["op"]
            )
        except (TypeError, KeyError, ValueError, OverflowError):  # 10**400: too large
            return None
        ok = made.op in MEASURE_OPS and math.isfinite(made.value + made.threshold)
        return made if ok else None


_measured: list[Measured] = []


def measured(what: str, value: Any, threshold: float, *, at_most: bool = False) -> None:
    """Record the number the running check compares with its threshold (≥ ``threshold``, or
    ≤ with ``at_most``). It decides nothing — the rubric still fails the check itself — and
    never raises: a value that is not a finite number is not recorded.

    Examples: ``dlgrade.measured("best training accuracy", best, TRAIN_ACCURACY)``
    """
    try:
        number, line = float(value), float(threshold)
    except (TypeError, ValueError, OverflowError):
        return
    if isinstance(value, bool) or not math.isfinite(number) or not math.isfinite(line):
        return
    _measured.append(Measured(str(what)[:200], number, line, "<=" if at_most else ">="))


def take_measured() -> Measured | None:
    """The last value the check just run recorded (and forget them all)."""
    last = _measured[-1] if _measured else None
    _measured.clear()
    return last


@dataclass(frozen=True)
class CheckResult:
    """The graded outcome of one check. Report writers read these; they compute nothing."""

    id: str
    activity: str
    title: str
    tier: str
    visibility: str
    points: float
    max_points: float
    outcome: str
    reason: str
    feedback: str
    duration_s: float
    stdout: str
    seed: int = 0
    #: the number a stochastic check compared with its threshold, if it says (public checks)
    measured: Measured | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    @property
    def is_internal_error(self) -> bool:
        return self.reason in GRADER_FAULTS

    @property
    def abnormal(self) -> bool:
        """The run ended otherwise than the student's code meant it to (timeout, crash)."""
        return self.outcome in ABNORMAL_OUTCOMES

    def to_dict(self, *, title: bool = False) -> dict[str, Any]:
        """As in the grade JSON; ``title``: with the check's title (a student record)."""
        data = asdict(self)
        del data["seed"]
        if not title:
            del data["title"]
        if data["measured"] is None:
            del data["measured"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """From :meth:`to_dict`'s form (a record's or a grade JSON's; no title: the id)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("title", str(data.get("id", "")))
        if "measured" in known:
            known["measured"] = Measured.from_dict(known["measured"])
        return cls(**known)


def totals(checks) -> tuple[float, float]:
    """(points, max points) of some check results: the one place scores are added up."""
    return (
        round(sum(c.points for c in checks), 6),
        round(sum(c.max_points for c in checks), 6),
    )


def percent(points: float, max_points: float) -> float:
    return 100.0 * points / max_points if max_points else 0.0


@dataclass(frozen=True)
class Score:
    """All results of one submission graded at one tier."""

    submission: str
    tier: str
    seed: int
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)
    #: what the report shows once, beside the checks: a notebook's magics that did not
    #: run, its slow cells
    notes: tuple[str, ...] = ()
    #: what the worker ran on: "CPU", "GPU 0: NVIDIA H200", or why not the GPU it was given
    device: str = ""

    @property
    def score(self) -> float:
        return totals(self.checks)[0]

    @property
    def max_score(self) -> float:
        return totals(self.checks)[1]

    @property
    def percent(self) -> float:
        return percent(*totals(self.checks))

    def by_activity(self) -> dict[str, list[CheckResult]]:
        groups: dict[str, list[CheckResult]] = {}
        for result in self.checks:
            groups.setdefault(result.activity, []).append(result)
        return dict(sorted(groups.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission": self.submission,
            "tier": self.tier,
            "seed": self.seed,
            "score": self.score,
            "max_score": self.max_score,
            **({"notes": list(self.notes)} if self.notes else {}),
            **({"device": self.device} if self.device else {}),
            "checks": [c.to_dict() for c in self.checks],
        }
