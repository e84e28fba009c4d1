"""Where a grading session's time goes: statistics for ``benchmarks/profile_check.py``.

Off unless ``DLGRADE_PROFILE`` names a file: then every round trip to the worker, every
model loaded on the trusted side and every check is timed, and the totals are written to
that file as JSON when the session ends. Nothing here changes a verdict.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

ENV = "DLGRADE_PROFILE"
#: the benchmark's ``time.time()`` just before it started the command (pytest start-up)
T0_ENV = "DLGRADE_PROFILE_T0"


class Profile:
    def __init__(self, target: Path):
        self.target = target
        self.created = time.time()
        self.phases: dict[str, float] = {}
        self.check: str | None = None
        self._lock = threading.Lock()
        # per check id → per op → [count, trusted-side wall seconds, worker's own seconds]
        self.ops: dict[str, dict[str, list[float]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0.0, 0.0])
        )
        self.checks: dict[str, float] = {}

    def phase(self, name: str, seconds: float) -> None:
        with self._lock:
            self.phases[name] = self.phases.get(name, 0.0) + seconds

    def mark(self, name: str) -> None:
        """The time since the command started, under ``name`` (the first mark only)."""
        start = float(os.environ.get(T0_ENV) or self.created)
        with self._lock:
            self.phases.setdefault(name, time.time() - start)

    def op(self, op: str, wall: float, worker: float = 0.0) -> None:
        with self._lock:
            entry = self.ops[self.check or "(outside checks)"][op]
            entry[0] += 1
            entry[1] += wall
            entry[2] += worker

    def check_done(self, check: str, seconds: float) -> None:
        with self._lock:
            self.checks[check] = self.checks.get(check, 0.0) + seconds

    def write(self) -> None:
        payload = {
            "phases": self.phases,
            "checks": self.checks,
            "ops": {check: dict(ops) for check, ops in self.ops.items()},
        }
        self.target.write_text(json.dumps(payload, indent=1, sort_keys=True))


PROFILE: Profile | None = Profile(Path(os.environ[ENV])) if os.environ.get(ENV) else None


def op(name: str, wall: float, worker: float = 0.0) -> None:
    if PROFILE is not None:
        PROFILE.op(name, wall, worker)


def phase(name: str, seconds: float) -> None:
    if PROFILE is not None:
        PROFILE.phase(name, seconds)


def mark(name: str) -> None:
    if PROFILE is not None:
        PROFILE.mark(name)


class timed:
    """``with profile.timed("load"):`` adds the block's wall time to op ``load``."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        op(self.name, time.perf_counter() - self.began)
