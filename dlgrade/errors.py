"""The error family: whose fault it is decides the outcome a check gets; and the exit codes
the commands give (pytest's spirit: 0 every selected check passed, 1 a check failed or the
student's code errored, 2 a usage error, 3 an internal error of the grader)."""

from __future__ import annotations

from dlgrade.reasons import ExitCode, Reason

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.USAGE,
    ExitCode.INTERNAL,
)


class DlgradeError(Exception):
    """Base of every error dlgrade raises on purpose."""


class UsageError(DlgradeError):
    """A command line asks for something that cannot be done (exit 2)."""


class SubmissionError(DlgradeError):
    """The student's code did something the check cannot grade.

    ``reason`` is a short code that lands in the report (``student_exception``,
    ``missing_function``...); ``student_traceback`` holds the student's own frames only.
    """

    outcome = "error"

    def __init__(self, message: str, *, reason: str, student_traceback: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.student_traceback = student_traceback


class NotImplementedYet(SubmissionError):
    """The function (or the whole module) is still the skeleton's."""

    outcome = "not_implemented"


class CallTimeout(SubmissionError):
    """A call into the submission ran past its wall-clock limit."""

    outcome = "timeout"


class WorkerCrashed(SubmissionError):
    """The worker process died (exit, signal, output flood) during a call."""

    outcome = "crash"


class MachineBusy(DlgradeError):
    """The machine held a call back so long that it could not be graded fairly.

    The grader's problem, never the student's: the check is recorded ``machine_busy`` and
    graded again by the next run (see :mod:`dlgrade.sandbox.clock`).
    """

    reason = Reason.MACHINE_BUSY


class RubricError(DlgradeError):
    """A rubric file or check is wrong: our bug, never the student's."""


class SandboxError(DlgradeError):
    """The harness could not start or talk to a worker for reasons not the student's."""


class DataError(DlgradeError):
    """A dataset is missing, corrupt or cannot be fetched."""


class RunnerError(DlgradeError):
    """This machine cannot run the check as asked (e.g. a full-tier check without a GPU)."""
