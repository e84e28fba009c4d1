"""How long a call has run *for the student*: wall time, less what a busy machine took.

A call's limit (60 s at quick, say) means "this long on a machine that gives the worker the
cores it asks for". On a busy machine — a shared CI runner, a lab server at the deadline,
the other jobs of a class run — the same correct code takes longer, and a wall clock would
charge the student for it. So the clock counts each interval of a call at the share of the
worker's progress the machine allowed, measured from the kernel's own scheduler statistics:

* for every thread of every process of the worker (its whole process tree: what the student
  started counts as the student), ``/proc/<pid>/task/<tid>/schedstat`` gives the time it ran
  on a CPU and the time it spent *runnable but waiting* for one;
* ``D`` = (ran + waited) / interval is how many threads the student kept busy; with ``C``
  CPUs, an otherwise idle machine would have let them run ``min(D, C) / D`` of that time
  (more threads than cores wait for each other: the student's own doing);
* they actually ran ``ran / (ran + waited)`` of it; the interval counts for the student in
  the ratio of the two, at most 1.

So an idle machine counts every second (the limit is exactly today's wall clock); a loop
that gets half a core because other processes hold the rest counts half of each second; a
student who sleeps, waits on a lock or blocks on I/O is not runnable, waits for no CPU, and
is counted in full. Only what the machine took is given back, never what the student spent.

A limit stretched this way is bounded: when the wall time reaches ``MAX_STRETCH`` times the
limit before the counted time reaches it, the machine is too busy to grade fairly; the call
is stopped and the check is recorded as the grader's (``machine_busy``: the next run grades
it again), never as the student's timeout. Where the kernel keeps no scheduler statistics,
the clock is the wall clock, as before.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

#: how much longer than its limit a call may run on a busy machine before we give up on it
MAX_STRETCH = 3.0
#: the clock reads the scheduler statistics at most this often
SAMPLE_SECONDS = 0.2


@functools.cache
def available() -> bool:
    """Whether this kernel keeps per-thread scheduler statistics (CONFIG_SCHED_INFO)."""
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat").is_file()


def cpus_for(pid: int | None) -> int:
    try:
        return len(os.sched_getaffinity(pid or 0)) or 1
    except OSError:
        return os.cpu_count() or 1


def tree_threads(pid: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(pid, tid) → (ns on a CPU, ns runnable but waiting) for every thread of ``pid``'s
    process tree. Processes that vanish while we read are skipped."""
    found: dict[tuple[int, int], tuple[int, int]] = {}
    stack, seen = [pid], set()
    while stack:
        current = stack.pop()
        if current in seen or len(seen) > 4096:
            continue
        seen.add(current)
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tids:
            base = f"/proc/{current}/task/{tid}"
            try:
                with open(f"{base}/schedstat") as handle:
                    ran, waited = handle.read().split()[:2]
                found[(current, int(tid))] = (int(ran), int(waited))
                with open(f"{base}/children") as handle:
                    stack.extend(int(child) for child in handle.read().split())
            except (OSError, ValueError):
                continue
    return found


class CallClock:
    """The time a call has counted for the student, sampled while the trusted side waits.

    ``pid``: the worker process (the root of its tree), or None if unknown (wall clock).
    ``read``: the sampler (tests give their own); ``now``: the monotonic clock.
    """

    def __init__(self, limit: float, pid: int | None, *, read=tree_threads, now=time.monotonic):
        self.limit = limit
        self.pid = pid
        self.cpus = cpus_for(pid)
        # a sampler of the tests' own, or the kernel's where it keeps the statistics
        usable = read is not tree_threads or available()
        self._read = read if pid is not None and usable else None
        self._now = now
        self.began = self._last_time = now()
        self.counted = 0.0
        # The first sample waits until the call has run SAMPLE_SECONDS: most calls answer
        # in milliseconds and need none. Until then the wall clock counts, in full.
        self._last: dict | None = None

    @property
    def wall(self) -> float:
        return self._now() - self.began

    def _sample(self) -> dict:
        if self._read is None:
            return {}
        try:
            return self._read(self.pid)
        except OSError:
            return {}

    def tick(self) -> float:
        """Count the time since the last tick; return the time counted so far."""
        now = self._now()
        interval = now - self._last_time
        if interval < SAMPLE_SECONDS and self.counted + interval < self.limit:
            return self.counted + interval  # between samples: the wall clock, provisionally
        current = self._sample()
        share = 1.0 if self._last is None else self.share(self._last, current, interval)
        self.counted += interval * share
        self._last, self._last_time = current, now
        return self.counted

    def share(self, before: dict, after: dict, interval: float) -> float:
        """The share of ``interval`` that counts for the student (1: the machine took none)."""
        if interval <= 0 or not after:
            return 1.0
        ran = waited = 0
        for key, (cpu, delay) in after.items():
            old_cpu, old_delay = before.get(key, (0, 0))
            ran += max(0, cpu - old_cpu)
            waited += max(0, delay - old_delay)
        runnable = (ran + waited) / 1e9
        if runnable <= 0.01 * interval:
            return 1.0  # sleeping, blocked, waiting on I/O: the student's own time
        demand = runnable / interval  # threads kept busy, on average
        idle_machine = min(demand, self.cpus) / demand  # what an idle machine would allow
        actual = ran / (ran + waited)
        return min(1.0, actual / idle_machine)

    def expired(self) -> bool:
        """The student's time is up."""
        return self.tick() >= self.limit

    def gave_up(self) -> bool:
        """The machine held the call back so long that grading it is no longer fair."""
        return self.wall >= self.limit * MAX_STRETCH

    def remaining(self) -> float:
        """A lower bound on the wall time left before ``expired`` can become true."""
        return max(0.0, self.limit - self.counted - (self._now() - self._last_time))
