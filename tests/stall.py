"""A pytest plugin for tests only: make the grader's own side block, as a grader bug would.

Loaded into a grading process through ``PYTEST_PLUGINS=tests.stall`` (pytest reads that
variable in every process it starts, pytest-xdist's included). With ``STALL_FIFO`` set, the
first call to the worker during check ``STALL_CHECK`` of the submission folder named
``STALL_STUDENT`` opens that FIFO for reading: nobody ever writes to it, so the trusted
side blocks in ``open()`` for good — the hang issue 22 reproduced with a notebook. With
``STALL_HOW=stop`` the grading process stops itself instead (SIGSTOP: no thread of it runs
again, the watchdog's included). Nothing in dlgrade knows of this module.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

FIFO_ENV, CHECK_ENV, STUDENT_ENV = "STALL_FIFO", "STALL_CHECK", "STALL_STUDENT"
HOW_ENV = "STALL_HOW"


def pytest_configure(config) -> None:
    fifo = os.environ.get(FIFO_ENV)
    if not fifo:
        return
    from dlgrade.sandbox.session import WorkerSession

    original = WorkerSession.call

    def call(self, *args, **kwargs):
        if (
            self.check == os.environ.get(CHECK_ENV)
            and Path(self.submission_dir).name == os.environ.get(STUDENT_ENV)
            and not getattr(self, "_stalled_once", False)
        ):
            self._stalled_once = True
            if os.environ.get(HOW_ENV) == "stop":
                os.kill(os.getpid(), signal.SIGSTOP)
            with open(fifo):  # blocks: a FIFO without a writer
                pass
        return original(self, *args, **kwargs)

    WorkerSession.call = call
