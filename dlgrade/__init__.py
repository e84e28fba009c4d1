"""dlgrade: grade The Deep Learning Workshop's activities without trusting the submission.

What rubric authors use is re-exported here; everything else may change.
"""

from dlgrade.activities import activity
from dlgrade.errors import (
    DataError,
    DlgradeError,
    RubricError,
    RunnerError,
    SandboxError,
    SubmissionError,
)
from dlgrade.rubric import CheckFailed, CheckResult, Score, check, fail, measured
from dlgrade.sandbox.protocol import Handle
from dlgrade.submission import Submission

__all__ = [
    "CheckFailed",
    "CheckResult",
    "DataError",
    "DlgradeError",
    "Handle",
    "RubricError",
    "RunnerError",
    "SandboxError",
    "Score",
    "Submission",
    "SubmissionError",
    "activity",
    "check",
    "fail",
    "measured",
]
__version__ = "0.1.0"
