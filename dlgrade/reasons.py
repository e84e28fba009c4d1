"""Every reason a check can end with (``checks[].reason`` in the grade JSON), and the exit
codes of the commands: one type each, instead of loose strings and numbers.

``Reason`` is a ``StrEnum``: a member *is* its string (``Reason.TIMEOUT == "timeout"``), so
grade files, the gradebook and Gradescope's output read the same as before. Its sets say
whose fault a reason is: :data:`GRADER_FAULTS` (the score is not a fair grade; exit 3) and,
of those, :data:`REGRADE_REASONS` (graded again on the next run). The grade JSON schema
(``dlgrade/schema/grade.schema.json``) lists exactly these members, and
``docs/grade-json.md`` names each (``tests/test_layout.py`` holds both to it).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """What ``dlgrade check``, ``grade`` and the other commands exit with (pytest's spirit)."""

    #: every selected check passed (or the score reached ``--min-score``)
    OK = 0
    #: a check failed, or the student's code errored
    FAILED = 1
    #: the command line asks for something that cannot be done
    USAGE = 2
    #: an internal error of the grader (a rubric error, the harness, a busy machine)
    INTERNAL = 3
    #: stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
    INTERRUPTED = 130


class Reason(StrEnum):
    """Why a check did not pass. Empty (``""``, not a member) on a pass."""

    # -- the student's work, as graded ----------------------------------------------------
    CHECK_FAILED = "check_failed"  # the check's expectation was not met
    NOT_IMPLEMENTED = "not_implemented"  # the function still raises NotImplementedError
    # -- the student's code could not be run or answered something ungradable ------------
    STUDENT_EXCEPTION = "student_exception"
    SYNTAX_ERROR = "syntax_error"
    IMPORT_ERROR = "import_error"
    MISSING_MODULE = "missing_module"
    AMBIGUOUS_MODULE = "ambiguous_module"  # both activity_N.py and activity_N.ipynb
    BAD_NOTEBOOK = "bad_notebook"
    EXIT = "exit"  # sys.exit / os._exit in the student's code
    MISSING_FUNCTION = "missing_function"
    MISSING_ATTRIBUTE = "missing_attribute"
    WRONG_TYPE = "wrong_type"
    UNENCODABLE = "unencodable"  # a value that cannot cross as data
    PROTOCOL = "protocol"
    BAD_VALUE = "bad_value"
    STALE_HANDLE = "stale_handle"  # an object of a worker that has restarted since
    EXPORT_FAILED = "export_failed"  # the model could not be saved as .keras
    UNBUILT_MODEL = "unbuilt_model"
    UNTRACEABLE_MODEL = "untraceable_model"  # a subclassed model dlgrade/tracing.py refuses
    BAD_MODEL = "bad_model"
    UNSAFE_MODEL = "unsafe_model"  # a Lambda layer, a custom class: refused by safe_mode
    FILE_TOO_LARGE = "file_too_large"
    SUBMISSION_TOO_LARGE = "submission_too_large"
    # -- the limits and the worker's end (docs/security.md) ------------------------------
    TIMEOUT = "timeout"
    TIME_BUDGET = "time_budget"  # the submission's whole time budget ran out
    HUNG_BEFORE = "hung_before"  # an earlier call of the same function hung
    CPU_LIMIT = "cpu_limit"
    MEMORY_LIMIT = "memory_limit"
    PROCESS_LIMIT = "process_limit"
    DISK_LIMIT = "disk_limit"
    OUTPUT_LIMIT = "output_limit"
    WORKER_DIED = "worker_died"
    WORKER_BROKEN = "worker_broken"
    #: a reply no honest worker sends (a forged grader fault, a broken channel): the
    #: student's crash, counted against the submission, never a grader fault
    TAMPERING = "tampering"
    # -- this machine ----------------------------------------------------------------------
    DATA_MISSING = "data_missing"  # the check's dataset is not here and cannot be fetched
    RUNNER = "runner"  # this machine cannot run the check (a full-tier check without a GPU)
    # -- the grader's own faults ---------------------------------------------------------
    RUBRIC_ERROR = "rubric_error"
    HARNESS_ERROR = "harness_error"
    MACHINE_BUSY = "machine_busy"  # too busy to time a call fairly; not the student's
    GRADER_STALLED = "grader_stalled"  # the grading process itself stalled (the watchdog)


#: reasons that are the grader's fault, never the student's: the score is not a fair grade
GRADER_FAULTS = (
    Reason.RUBRIC_ERROR,
    Reason.HARNESS_ERROR,
    Reason.MACHINE_BUSY,
    Reason.GRADER_STALLED,
)
#: of those, what the next run of the same rubric grades again (a rubric error would repeat)
REGRADE_REASONS = (Reason.HARNESS_ERROR, Reason.MACHINE_BUSY, Reason.GRADER_STALLED)
#: the limits a worker reports itself (the trusted side's sampling finds the others)
LIMIT_REASONS = (Reason.MEMORY_LIMIT, Reason.PROCESS_LIMIT, Reason.DISK_LIMIT)
#: the activity's module could not be imported: every check of it fails the same way, so
#: reports show the failure once per activity (with the import's own fix) and list its cost
IMPORT_FAILURES = (
    Reason.MISSING_MODULE,
    Reason.IMPORT_ERROR,
    Reason.SYNTAX_ERROR,
    Reason.AMBIGUOUS_MODULE,
    Reason.BAD_NOTEBOOK,
)
