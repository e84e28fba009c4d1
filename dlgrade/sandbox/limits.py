"""The worker's limits and how it is isolated: the one place their numbers live."""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from dataclasses import dataclass

from dlgrade.errors import SandboxError
from dlgrade.sandbox import jail

GiB = 2**30

MEMORY_LIMIT_MESSAGE = (
    "memory limit {gib} GiB exceeded during {label}; the worker was stopped. Use smaller "
    "arrays, batches or models (the limit holds for each process of the submission)."
)
#: the limit on all a worker's processes hold together (sampled: :func:`memory_guard`)
RESIDENT_LIMIT_MESSAGE = (
    "memory limit {gib} GiB exceeded during {label}: your code's processes held {used} GiB "
    "of the machine's memory ({parts}); the worker was stopped. Use smaller arrays, batches "
    "or models, and close what you no longer need (the limit holds for the submission's "
    "processes together, counting shared memory, memfds and /dev/shm; GPU memory is not "
    "counted)."
)
#: how the parts of RESIDENT_LIMIT_MESSAGE are named
RESIDENT_PARTS = (
    "{anonymous} GiB its own, {files} GiB in shared memory and memfds, {dev_shm} GiB in /dev/shm"
)
#: how often the trusted side adds up a worker's memory while a call runs
RESIDENT_SAMPLE_SECONDS = 0.25
CPU_LIMIT_MESSAGE = (
    "CPU time limit of {seconds} s exceeded during {label}; the worker was stopped. Look "
    "for an infinite loop, or training far longer than the check asked for."
)
PROCESS_LIMIT_MESSAGE = (
    "process limit of {count} processes and threads reached during {label}; the worker was "
    "stopped. Do not start processes or threads in a loop."
)
PROCESS_COUNT_MESSAGE = (
    " Your code had {tasks:,} processes and threads running; processes it forks keep "
    "counting until they exit, and TensorFlow then cannot start its own threads."
)
#: how often the trusted side counts the worker's processes and threads while a call runs
TASKS_SAMPLE_SECONDS = 0.5
#: a worker that died in native code with this share of the process limit in use hit it
PROCESS_LIMIT_SHARE = 0.9
DISK_LIMIT_MESSAGE = (
    "disk limit exceeded during {label}: the submission may write {file_gib} GiB per file "
    "and {disk_gib} GiB in all; the worker was stopped and its folder reset. Write less."
)
WORKER_BROKEN_MESSAGE = (
    "the worker failed while answering {label} ({error}); your code probably replaced "
    "something it needs (a built-in such as isinstance, or a library function). Do not "
    "patch built-ins or libraries."
)
FALLBACK_WARNING = (
    "dlgrade: the worker sandbox is NOT isolated: {why}. Student code runs with resource "
    "limits only; network and filesystem isolation are OFF (run as root on Linux with "
    "`unshare` for both; see docs/security.md)."
)


class IsolationWarning(UserWarning):
    """The machine cannot jail workers: they run with resource limits only."""


def _gib(value: int) -> str:
    return f"{value / GiB:g}"


@dataclass(frozen=True)
class Limits:
    """Per-worker limits: the one place their numbers live. Timeouts are wall-clock seconds.

    Memory, CPU, processes and file size are kernel resource limits on every process of the
    worker; disk is checked by the trusted side while a call runs (see docs/security.md).
    """

    call_timeout: float = 60.0
    start_timeout: float = 60.0
    #: importing a student module imports TensorFlow: allow for a loaded machine
    import_timeout: float = 180.0
    #: output past this in one call kills the worker (reason ``output_limit``)
    output_limit_bytes: int = 16 * 1024 * 1024
    #: output kept per check for the report
    output_keep_bytes: int = 16 * 1024
    #: output kept per worker in the log file
    log_keep_bytes: int = 1024 * 1024
    #: address space of each worker process (RLIMIT_AS). TensorFlow training the rubrics'
    #: models peaks at 1.4-2.0 GiB here (benchmarks/sandbox_cost.py): 4 GiB leaves room.
    memory_bytes: int = 4 * GiB
    #: CPU seconds each worker process may use over its life (RLIMIT_CPU): a backstop for a
    #: process that escapes the per-call wall clock, not the per-call limit
    cpu_seconds: int = 4 * 3600
    #: processes and threads of one worker together (RLIMIT_NPROC on its own uid)
    max_processes: int = 512
    #: largest file the worker may write (RLIMIT_FSIZE) ...
    file_bytes: int = 2 * GiB
    #: ... and all it may keep in its folders (scratch copy, home, exchange) together
    disk_bytes: int = 4 * GiB
    #: network is off (a new, empty network namespace) unless this is set
    network: bool = False

    @classmethod
    def configured(
        cls, *, memory_gib: float | None, disk_gib: float | None, allow_network: bool
    ) -> Limits:
        """The defaults with what the command line sets (``--memory-limit`` and friends)."""
        limits = cls(network=allow_network)
        if memory_gib is not None:
            limits = dataclasses.replace(limits, memory_bytes=int(memory_gib * GiB))
        if disk_gib is not None:
            disk = int(disk_gib * GiB)
            limits = dataclasses.replace(
                limits, disk_bytes=disk, file_bytes=min(limits.file_bytes, disk)
            )
        return limits

    def rlimits(self, *, gpu: bool = False) -> jail.Rlimits:
        """``gpu``: the worker gets a GPU, so no address-space limit (CUDA reserves far more
        address space at start-up than any useful one): its resident memory is watched
        instead (:func:`memory_guard`)."""
        return jail.Rlimits(
            address_space=None if gpu else self.memory_bytes,
            cpu_seconds=self.cpu_seconds,
            processes=self.max_processes,
            file_size=self.file_bytes,
        )


def gib_option(text: str) -> float:
    """An option's value as a positive number of GiB (``--memory-limit``, ``--disk-limit``)."""
    value = float(text)
    if not 0 < value < 2**20:
        raise ValueError(f"{text} is not a positive number of GiB")
    return value


def memory_guard(gpu: bool) -> str:
    """How a worker's memory limit is held first: ``"address space"`` (RLIMIT_AS, on each
    process, by the kernel) or, for a GPU worker, ``"resident"`` only.

    Behind either, the trusted side adds up what all the worker's processes hold
    (:func:`dlgrade.sandbox.jail.memory_held`: anonymous memory, shared memory and memfds mapped or
    only held open, the private /dev/shm) every ``RESIDENT_SAMPLE_SECONDS`` while a call
    runs, and stops the worker past the limit; a fast allocation may overshoot by what it
    touches in that time."""
    return "resident" if gpu else "address space"


ISOLATION_MODES = ("auto", "namespaces", "rlimits")


def isolation_mode(requested: str | None = None) -> str:
    """``"namespaces"`` (the jail) or ``"rlimits"`` (the fallback), warning once about the latter.

    ``requested`` (or ``DLGRADE_ISOLATION``) may force either; ``auto`` probes the machine.
    """
    choice = requested or os.environ.get("DLGRADE_ISOLATION") or "auto"
    if choice not in ISOLATION_MODES:
        raise SandboxError(f"isolation must be one of {ISOLATION_MODES}, got {choice!r}")
    if choice == "rlimits":
        return "rlimits"
    found = jail.support()
    if found.namespaces:
        return "namespaces"
    if choice == "namespaces":
        raise SandboxError(f"namespace isolation was asked for, but {found.why_not}")
    _warn_fallback(found.why_not)
    return "rlimits"


@functools.cache
def _warn_fallback(why: str) -> None:
    warnings.warn(FALLBACK_WARNING.format(why=why), IsolationWarning, stacklevel=3)


def describe(limits: Limits, mode: str | None = None, *, gpu: bool = False) -> str:
    """One line for the report header: how the worker is isolated and limited (``gpu``:
    its worker gets a GPU)."""
    mode = mode or isolation_mode()
    memory = f"{_gib(limits.memory_bytes)} GiB"
    if memory_guard(gpu) == "resident":
        memory += " resident (a GPU worker: no address-space limit)"
    numbers = (
        f"memory {memory}, CPU {limits.cpu_seconds} s, {limits.max_processes} processes, "
        f"disk {_gib(limits.disk_bytes)} GiB ({_gib(limits.file_bytes)} GiB per file)"
    )
    if mode == "namespaces":
        network = "network ON (--allow-network)" if limits.network else "no network"
        found = jail.support()
        if found.syscall_filter:
            calls = "syscall filter (seccomp)"
        else:
            calls = f"WARNING no syscall filter ({found.filter_why_not})"
        return (
            f"sandbox: namespaces ({network}, private mounts, pids, IPC, UTS and keyring), "
            f"{calls}, unprivileged uid; {numbers}"
        )
    why = jail.support().why_not or "asked for (DLGRADE_ISOLATION=rlimits)"
    return (
        f"sandbox: WARNING resource limits only ({why}); network and filesystem "
        f"isolation are OFF; {numbers}"
    )
