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

#: modules a rubric may import by their old names, from before they moved into a package
#: (issue 25): ``from dlgrade import synth`` still gives :mod:`dlgrade.data.synth`
MOVED = {"synth": "dlgrade.data.synth", "twins": "dlgrade.data.twins"}


def __getattr__(name: str):
    if name in MOVED:
        import importlib

        return importlib.import_module(MOVED[name])
    raise AttributeError(f"module 'dlgrade' has no attribute {name!r}")
