"""The worker process seen from the trusted side: start it, talk to it, kill it.

- :mod:`~dlgrade.sandbox.limits`: the limits' numbers and messages, and how the worker is
  isolated (the jail, or resource limits only);
- :mod:`~dlgrade.sandbox.process`: one live worker process, its pipes and its output;
- :mod:`~dlgrade.sandbox.folders`: the worker's folders (the scratch copy, home, exchange);
- :mod:`~dlgrade.sandbox.session`: :class:`WorkerSession`, the request loop and the
  diagnosis of a failed call, in one place;
- :mod:`~dlgrade.sandbox.inspector`: :class:`ModelInspector`, the jailed worker that loads
  and runs a student's saved models, and the bounded check of their archives.
"""

from dlgrade.sandbox.folders import copy_submission
from dlgrade.sandbox.inspector import ModelInspector, ModelRunError, check_archive  # noqa: I001
from dlgrade.sandbox.limits import (
    CPU_LIMIT_MESSAGE,
    DISK_LIMIT_MESSAGE,
    FALLBACK_WARNING,
    MEMORY_LIMIT_MESSAGE,
    PROCESS_LIMIT_MESSAGE,
    IsolationWarning,
    Limits,
    describe,
    gib_option,
    isolation_mode,
    memory_guard,
)
from dlgrade.sandbox.process import NATIVE_LOG_LINE, OutputCapture
from dlgrade.sandbox.session import LIMIT_REASONS, WorkerSession

__all__ = [
    "CPU_LIMIT_MESSAGE",
    "DISK_LIMIT_MESSAGE",
    "FALLBACK_WARNING",
    "LIMIT_REASONS",
    "MEMORY_LIMIT_MESSAGE",
    "NATIVE_LOG_LINE",
    "PROCESS_LIMIT_MESSAGE",
    "IsolationWarning",
    "Limits",
    "ModelInspector",
    "ModelRunError",
    "OutputCapture",
    "WorkerSession",
    "check_archive",
    "copy_submission",
    "describe",
    "gib_option",
    "isolation_mode",
    "memory_guard",
]
