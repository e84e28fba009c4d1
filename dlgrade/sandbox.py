"""The worker process seen from the trusted side: start it, talk to it, kill it.

One :class:`WorkerSession` per submission per grading session. It owns a scratch copy of
the submission (the worker's working directory), an exchange folder for arrays and models,
and at most one live worker process, started again after a crash or a timeout.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlgrade
from dlgrade import data, jail, profile
from dlgrade.errors import (
    CallTimeout,
    NotImplementedYet,
    SandboxError,
    SubmissionError,
    WorkerCrashed,
)
from dlgrade.protocol import (
    ChannelClosed,
    ChannelTimeout,
    Codec,
    Handle,
    ProtocolError,
    recv_message,
    send_message,
    split_output_marks,
)

#: Environment variables a worker may inherit; everything else is dropped.
#: How the worker starts: it runs this very ``dlgrade`` package, by path — not whichever one
#: the interpreter's site-packages would find (an editable install may point at a checkout
#: the jail hides, e.g. when the grader runs from a student kit).
WORKER_BOOTSTRAP = """\
import importlib.util, runpy, sys
package = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location(
    "dlgrade", package + "/__init__.py", submodule_search_locations=[package]
)
module = importlib.util.module_from_spec(spec)
sys.modules["dlgrade"] = module
spec.loader.exec_module(module)
runpy.run_module("dlgrade.worker", run_name="__main__", alter_sys=True)
"""

PASSED_ENV = (
    "DLGRADE_DATA_DIR",
    "DLGRADE_CACHE_DIR",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "KERAS_BACKEND",
)
_SKIPPED_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".venv"}
MAX_SUBMISSION_BYTES = 200 * 1024 * 1024
MAX_SUBMISSION_FILES = 5_000
MAX_MODEL_BYTES = 512 * 1024 * 1024
#: more entries than this in the worker's folders counts as filling the disk
MAX_WORKER_FILES = 100_000
#: how often the trusted side adds up what the worker wrote, while a call runs
DISK_CHECK_SECONDS = 0.5
GiB = 2**30

MEMORY_LIMIT_MESSAGE = (
    "memory limit {gib} GiB exceeded during {label}; the worker was stopped. Use smaller "
    "arrays, batches or models (the limit holds for each process of the submission)."
)
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

    def rlimits(self) -> jail.Rlimits:
        return jail.Rlimits(
            address_space=None if gpu_visible() else self.memory_bytes,
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


def gpu_visible() -> bool:
    """CUDA reserves far more address space than any RLIMIT_AS that would be useful."""
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    return devices not in ("", "-1") and bool(glob.glob("/dev/nvidia[0-9]*"))


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


def describe(limits: Limits, mode: str | None = None) -> str:
    """One line for the report header: how the worker is isolated and limited."""
    mode = mode or isolation_mode()
    memory = (
        "not enforced (a GPU is visible)" if gpu_visible() else f"{_gib(limits.memory_bytes)} GiB"
    )
    numbers = (
        f"memory {memory}, CPU {limits.cpu_seconds} s, {limits.max_processes} processes, "
        f"disk {_gib(limits.disk_bytes)} GiB ({_gib(limits.file_bytes)} GiB per file)"
    )
    if mode == "namespaces":
        network = "network ON (--allow-network)" if limits.network else "no network"
        return (
            f"sandbox: namespaces ({network}, private mounts and pids), unprivileged uid; {numbers}"
        )
    why = jail.support().why_not or "asked for (DLGRADE_ISOLATION=rlimits)"
    return (
        f"sandbox: WARNING resource limits only ({why}); network and filesystem "
        f"isolation are OFF; {numbers}"
    )


#: a line of TensorFlow's native (C++) logging, not the student's output
NATIVE_LOG_LINE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR$|[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+\.(cc|h):\d+\] )"
)


class OutputCapture:
    """Drains the worker's merged stdout/stderr so it can never block, keeping a bounded part.

    A *window* is the output of one check: its first ``keep`` bytes are kept, the rest only
    counted. The log file keeps the first ``log_keep`` bytes of the whole worker's output.
    """

    TAIL_BYTES = 4096

    def __init__(self, fd: int, log_path: Path, keep: int, log_keep: int, flood: int):
        self._fd = fd
        self._lock = threading.Lock()
        self._keep = keep
        self._flood = flood
        self._window = bytearray()
        self._window_total = 0
        self.flooded = False
        self._marked = 0
        self._marked_event = threading.Condition(self._lock)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._log = os.fdopen(fd, "ab")  # closed by the reader thread
        self._log_left = log_keep
        self._tail = b""  # the last bytes, to recognise how a dead worker died
        self._thread = threading.Thread(target=self._drain, name="dlgrade-output", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        tail = b""
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                chunk, mark, tail = split_output_marks(tail + chunk)
                with self._lock:
                    if mark is not None:
                        self._marked = max(self._marked, mark)
                        self._marked_event.notify_all()
                    self._window_total += len(chunk)
                    room = self._keep - len(self._window)
                    if room > 0:
                        self._window += chunk[:room]
                    if self._window_total > self._flood:
                        self.flooded = True
                    self._tail = (self._tail + chunk)[-self.TAIL_BYTES :]
                if self._log_left > 0:
                    self._log.write(chunk[: self._log_left])
                    self._log_left -= len(chunk)
        finally:
            os.close(self._fd)
            self._log.close()
            with self._lock:
                self._marked = 2**62  # nothing more will come
                self._marked_event.notify_all()

    def wait_for_mark(self, number: int, timeout: float = 1.0) -> None:
        """Wait until the output printed before reply ``number`` has been read."""
        with self._lock:
            self._marked_event.wait_for(lambda: self._marked >= number, timeout)

    def start_window(self) -> None:
        with self._lock:
            self._window = bytearray()
            self._window_total = 0
            self.flooded = False

    def window_text(self) -> str:
        """The check's output as the student should see it: what their code printed.

        TensorFlow's own native log lines (absl's start-up notice, ``I0000 … port.cc:153]
        oneDNN custom operations are on``…) are not the student's and are left out here;
        the worker's log keeps everything.
        """
        with self._lock:
            text = self._window.decode("utf-8", errors="replace")
            dropped = self._window_total - len(self._window)
        text = "".join(
            line for line in text.splitlines(keepends=True) if not NATIVE_LOG_LINE.match(line)
        )
        if dropped > 0:
            text += f"\n[... {dropped:,} more bytes of output not shown]"
        return text

    def tail(self) -> str:
        with self._lock:
            return self._tail.decode("utf-8", errors="replace")

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)


class _WorkerProcess:
    """One live worker process and its three pipes.

    In the jail (``namespaces``) the process started is ``unshare``; the worker is its child
    and PID 1 of a new PID namespace, so killing it kills everything the submission started.
    """

    def __init__(self, session: WorkerSession, generation: int):
        self.generation = generation
        self.mode = session.mode
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        command = [
            sys.executable,
            "-P",  # the submission's folder must not shadow numpy, json...
            "-s",
            "-B",
            "-c",
            WORKER_BOOTSTRAP,
            str(Path(dlgrade.__file__).resolve().parent),
            str(req_r),
            str(rep_w),
            str(session.exchange_dir),
        ]
        # In the jail, unshare's and the jail's own messages go to a log of ours; the jail
        # hands the worker the output pipe as its stdout and stderr just before exec.
        self.jail_log = session.root / "jail.log"
        own_output, pass_fds = out_w, (req_r, rep_w)
        if self.mode == "namespaces":
            config = session.jail_config(command, output_fd=out_w)
            command = jail.unshare_command(config, network=session.limits.network)
            own_output = os.open(self.jail_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            pass_fds = (req_r, rep_w, out_w)
        else:
            command.append(json.dumps(dataclasses.asdict(session.limits.rlimits())))
        try:
            self.proc = subprocess.Popen(
                jail.die_with_grader(command),
                cwd=session.scratch_dir,
                env=session.environment(),
                stdin=subprocess.DEVNULL,
                stdout=own_output,
                stderr=own_output,
                pass_fds=pass_fds,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for fd in {req_r, self.req_w, self.rep_r, rep_w, out_r, out_w, own_output}:
                os.close(fd)
            raise SandboxError(f"could not start the worker ({command[0]}): {exc}") from None
        for fd in {req_r, rep_w, out_w, own_output}:
            os.close(fd)
        self.output = OutputCapture(
            out_r,
            session.root / "worker-output.log",
            keep=session.limits.output_keep_bytes,
            log_keep=session.limits.log_keep_bytes,
            flood=session.limits.output_limit_bytes,
        )
        self.pending = 0  # replies owed for requests sent without waiting (preload)
        self.sent = 0  # requests sent; the worker marks its output after each
        self.worker_pid: int | None = None if self.mode == "namespaces" else self.proc.pid
        self.cpu_seconds = 0.0  # the worker process's CPU time, last sampled
        self.peak_bytes = 0  # its peak address space, last sampled
        # processes and threads of the worker's uid (what RLIMIT_NPROC counts), at most: a
        # submission that fills the limit with children makes TensorFlow die in native code
        # (SIGSEGV, SIGABRT) when it cannot start a thread, and only this count tells why
        self.uid = session._uid.uid if session._uid is not None else None
        self.peak_tasks = 0
        self._tasks_sampled = 0.0
        self.exit_code: int | None = None  # how it ended, before any kill of ours
        self.student_code = False  # whether it has imported a module of the submission
        self.imported: set[str] = set()  # the submission's modules this worker has imported

    def find_worker(self) -> None:
        """The worker's pid as seen from here: in the jail, the one child of ``unshare``."""
        if self.worker_pid is not None:
            return
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return
        if children.split():
            self.worker_pid = int(children.split()[0])

    def sample(self) -> None:
        """Read the worker's CPU time and peak address space (to tell how it died)."""
        if self.worker_pid is None:
            return
        try:
            fields = Path(f"/proc/{self.worker_pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{self.worker_pid}/status").read_text()
        except (OSError, IndexError):
            return
        self.cpu_seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for line in status.splitlines():
            if line.startswith("VmPeak:"):
                self.peak_bytes = max(self.peak_bytes, int(line.split()[1]) * 1024)
        now = time.monotonic()
        if self.uid is not None and now - self._tasks_sampled >= TASKS_SAMPLE_SECONDS:
            self._tasks_sampled = now
            self.peak_tasks = max(self.peak_tasks, jail.count_tasks(self.uid))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started, and wait until they are gone."""
        if self.exit_code is None:
            self.exit_code = self.proc.poll()
        if self.worker_pid is not None and self.mode == "namespaces":
            # PID 1 of the namespace: the kernel kills every other process in it.
            try:
                os.kill(self.worker_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.worker_pid is not None and self.mode == "namespaces":
            _wait_gone(self.worker_pid, timeout=10)
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.output.join()

    def returncode(self) -> int | None:
        """How the worker ended (negative: the signal), before any kill of ours."""
        code = self.exit_code if self.exit_code is not None else self.proc.returncode
        # util-linux's unshare cannot re-raise a child's SIGKILL on itself: it says so and
        # exits with 1.
        if self.mode == "namespaces" and code == 1 and UNSHARE_SIGKILL in self.jail_messages():
            return -signal.SIGKILL
        return code

    def jail_messages(self) -> str:
        """What unshare and the jail said (empty outside the jail)."""
        try:
            return self.jail_log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def describe_exit(self) -> str:
        code = self.returncode()
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with code {code}"


#: what util-linux's unshare says when its child died of SIGKILL (it then exits with 1)
UNSHARE_SIGKILL = "sigprocmask unblock failed"


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` has exited (a zombie counts: its namespace is already empty)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)


class WorkerSession:
    """The trusted side's handle on one submission's worker, restarted as needed."""

    def __init__(
        self,
        submission_dir: Path,
        limits: Limits | None = None,
        preload=(),
        datasets=(),
        *,
        hidden: Iterable[Path] = (),
        isolation: str | None = None,
    ):
        """``hidden``: folders the worker must not see besides the defaults (the rubric
        folders, the results folder); ``isolation``: force ``"namespaces"`` or ``"rlimits"``.
        """
        self.submission_dir = Path(submission_dir).resolve()
        if not self.submission_dir.is_dir():
            raise SandboxError(f"submission folder {submission_dir} does not exist")
        self.limits = limits or Limits()
        self.preload = tuple(preload)
        self.datasets = tuple(datasets)
        self.mode = isolation_mode(isolation)
        self.hidden = [Path(p) for p in hidden]
        self._uid: jail.UidLease | None = None
        if self.mode == "namespaces":
            try:
                self._uid = jail.UidLease()
            except OSError as exc:
                raise SandboxError(f"no unprivileged uid for the worker: {exc}") from None
        self.root = Path(tempfile.mkdtemp(prefix="dlgrade-"))
        self.scratch_dir = self.root / "submission"
        self.exchange_dir = self.root / "exchange"
        self.home_dir = self.root / "home"
        self.trusted_dir = self.root / "trusted"
        self.trusted_dir.mkdir(mode=0o700)
        if self._uid is not None:
            self.root.chmod(0o711)  # the worker may enter its folders, not list or read ours
        self._prepare_folders()
        self.generation = 0
        self.starts = 0
        self.start_seconds = 0.0  # spawning workers until they answer
        self.preload_seconds = 0.0  # importing PRELOAD modules, as the worker timed it
        self.preload_wait_seconds = 0.0  # of which the trusted side spent waiting
        self.busy_seconds = 0.0  # inside the submission's calls, as the worker timed them
        self._proc: _WorkerProcess | None = None
        self._codec = Codec(self.exchange_dir, side="r")
        self._reset_folders = False  # after the disk limit: a fresh copy for the next worker
        self._disk_checked = 0.0

    def _prepare_folders(self) -> None:
        """The worker's writable folders, fresh: the scratch copy, home and exchange."""
        for folder in (self.scratch_dir, self.home_dir, self.exchange_dir):
            shutil.rmtree(folder, ignore_errors=True)
        self.exchange_dir.mkdir()
        self.home_dir.mkdir()
        (self.exchange_dir / "inbox").mkdir(mode=0o755)  # files rubrics share (read-only)
        copy_submission(self.submission_dir, self.scratch_dir)
        # Keras finds Fashion-MNIST and the VGG16 weights here without a download; a
        # dataset the rubrics need that is not here gets its synthetic twin instead.
        self.keras_home = data.keras_home(self.home_dir / ".keras", twins=self.datasets)
        if self._uid is not None:
            self._hand_over(self._uid.uid, self._uid.gid)

    def _hand_over(self, uid: int, gid: int) -> None:
        """Give the worker's uid its folders, but not the grader's files inside them.

        The scratch copy becomes the worker's. Home, KERAS_HOME and the exchange folder
        stay the grader's, sticky and group-writable for the worker: it adds and removes its
        own files, but cannot change, move or replace the Keras data and the shared inputs
        that rubrics read back or write to as root.
        """
        _chown_tree(self.scratch_dir, uid, gid)
        for folder in (self.keras_home, self.exchange_dir / "inbox"):
            for dirpath, dirnames, filenames in os.walk(folder):
                for name in dirnames:
                    os.chmod(os.path.join(dirpath, name), 0o755)
                for name in filenames:
                    if not os.path.islink(os.path.join(dirpath, name)):
                        os.chmod(os.path.join(dirpath, name), 0o644)
        (self.exchange_dir / "inbox").chmod(0o755)
        for folder in (self.home_dir, self.keras_home, self.exchange_dir):
            os.chown(folder, -1, gid)
            folder.chmod(0o1770)

    def jail_config(self, worker_command: list[str], output_fd: int) -> jail.Config:
        """What the jail hides, keeps and limits for this session's worker."""
        package = Path(dlgrade.__file__).resolve().parent
        keep = {Path(os.path.realpath(p)) for p in _python_paths()} | {package}
        read_only = [p for p in (data.mirror_dir(), data.cache_dir()) if p and p.is_dir()]
        read_only = [Path(os.path.realpath(p)) for p in read_only]
        hide = [*self.hidden, self.submission_dir.parent, Path.home()]
        repository = package.parent
        if any((repository / marker).exists() for marker in ("checks", ".git", "pyproject.toml")):
            hide.append(repository)  # rubrics, references, mutants, history: all of it
        keep_all = sorted(keep | set(read_only) | {self.root})
        return jail.Config(
            argv=worker_command,
            cwd=str(self.scratch_dir),
            uid=self._uid.uid,
            gid=self._uid.gid,
            rlimits=self.limits.rlimits(),
            hide=jail.plan_hidden(hide, keep_all),
            keep=sorted(str(p) for p in keep),
            writable=[str(self.root)],
            read_only=[str(p) for p in read_only],
            output_fd=output_fd,
        )

    # -- life cycle ----------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home_dir),
            "TMPDIR": str(self.home_dir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "MPLBACKEND": "Agg",
            "KERAS_HOME": str(self.home_dir / ".keras"),
            # glibc reserves 64 MiB of address space per thread arena: with TensorFlow's
            # threads that alone would eat the memory limit on a many-core machine.
            "MALLOC_ARENA_MAX": "2",
            "USER": "student",  # the worker's uid has no passwd entry to look it up in
            "LOGNAME": "student",
        }
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        # the worker's working folder is its scratch copy: a relative mirror or cache
        # (DLGRADE_DATA_DIR=../shared/data) must reach it as the folder it names here
        if "DLGRADE_DATA_DIR" in env:
            env["DLGRADE_DATA_DIR"] = str(data.mirror_dir())
        if "DLGRADE_CACHE_DIR" in env:
            env["DLGRADE_CACHE_DIR"] = str(data.cache_dir())
        nltk_data = data.nltk_data_dir()
        if nltk_data is not None:
            env["NLTK_DATA"] = str(nltk_data)
        return env

    def start(self) -> None:
        """Start the worker if none is alive, and send the preload without waiting for it."""
        if self._proc is not None and self._proc.alive():
            return
        if self._proc is not None:
            self._proc.kill()
        if self._reset_folders:
            self._prepare_folders()
            self._reset_folders = False
        self.generation += 1
        self.starts += 1
        began = time.monotonic()
        self._proc = _WorkerProcess(self, self.generation)
        self._codec.generation = self.generation
        try:
            self._request({"op": "hello"}, self.limits.start_timeout, label="worker start-up")
        except SubmissionError as exc:
            # No student code has run yet: a worker that cannot say hello is our failure.
            self._proc.kill()
            said = self._proc.jail_messages() + self._proc.output.tail()
            raise SandboxError(f"{exc}\nwhat the worker said:\n{said}") from None
        self._proc.find_worker()
        self.start_seconds += time.monotonic() - began
        profile.op("worker start", time.monotonic() - began)
        if self.preload:
            send_message(self._proc.req_w, {"op": "preload", "modules": list(self.preload)})
            self._proc.sent += 1
            self._proc.pending += 1

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)
        if self._uid is not None:
            self._uid.release()
            self._uid = None

    @property
    def output(self) -> OutputCapture | None:
        return self._proc.output if self._proc is not None else None

    def start_check(self, seed: int) -> None:
        """Reset the output window and seed the worker's random generators for one check."""
        self.start()
        self._proc.output.start_window()
        self._request({"op": "seed", "seed": seed}, self.limits.import_timeout, label="seeding")

    def check_output(self) -> str:
        return self._proc.output.window_text() if self._proc is not None else ""

    # -- calls ---------------------------------------------------------------------------

    def call(self, module: str, function: str, args=(), kwargs=None, *, timeout=None) -> Any:
        """Call ``module.function(*args, **kwargs)`` in the worker and return its value."""
        self.start()
        label = f"{module}.{function}()"
        if module not in self._proc.imported:
            # Importing first, under its own limit, keeps TensorFlow's import out of the
            # call's; once a worker has the module, a call is one round trip.
            self._request({"op": "import", "module": module}, self.limits.import_timeout, label)
            self._proc.imported.add(module)
        request = {
            "op": "call",
            "module": module,
            "function": function,
            "args": self._encode(list(args)),
            "kwargs": self._encode(dict(kwargs or {})),
        }
        return self._request(request, timeout or self.limits.call_timeout, label)

    def call_method(self, handle: Handle, method: str, args=(), kwargs=None, *, timeout=None):
        self.start()
        self._check_handle(handle)
        request = {
            "op": "call_method",
            "handle": handle.id,
            "method": method,
            "args": self._encode(list(args)),
            "kwargs": self._encode(dict(kwargs or {})),
        }
        label = f"{handle.type_name.rsplit('.', 1)[-1]}.{method}()"
        return self._request(request, timeout or self.limits.call_timeout, label)

    def export_model(self, handle: Handle, *, timeout=None, unbuilt_shape=None) -> Path:
        """Have the worker save a model handle as ``.keras``; return the trusted copy's path.

        ``unbuilt_shape`` (e.g. ``(None, 100)``): build a model Keras left unbuilt with this
        input shape first; without it, an unbuilt model fails with the fix for the student.
        """
        self.start()
        self._check_handle(handle)
        request = {"op": "export_model", "handle": handle.id}
        if unbuilt_shape is not None:
            request["unbuilt_shape"] = list(unbuilt_shape)
        name = self._request(request, timeout or self.limits.call_timeout, "saving the model")
        if not isinstance(name, str):
            raise WorkerCrashed("the worker named a bad model file", reason="protocol")
        return self.take_file(name, f"model-{handle.generation}-{handle.id}.keras")

    def feed(self, name: str, args=(), kwargs=None, *, timeout=None) -> Any:
        """Build one of the grader's inputs in the worker (:mod:`dlgrade.feeds`)."""
        self.start()
        request = {
            "op": "feed",
            "name": name,
            "args": self._encode(list(args)),
            "kwargs": self._encode(dict(kwargs or {})),
        }
        return self._request(request, timeout or self.limits.call_timeout, f"the grader's {name}")

    def release(self, handle: Handle) -> None:
        """Let the worker drop the object behind ``handle`` (a handle of a worker that has
        restarted since is gone already)."""
        if self._proc is None or not self._proc.alive() or handle.generation != self.generation:
            return
        self._request(
            {"op": "release", "handles": [handle.id]}, self.limits.call_timeout, "release"
        )

    def take(self, handle: Handle, n: int, *, timeout=None) -> list:
        """The first ``n`` items of the iterable behind ``handle``, as data."""
        self.start()
        self._check_handle(handle)
        request = {"op": "take", "handle": handle.id, "n": int(n)}
        items = self._request(request, timeout or self.limits.call_timeout, "iterating")
        if not isinstance(items, list):
            raise SubmissionError(
                "the worker answered something else than items", reason="protocol"
            )
        return items

    def attributes(self, handle: Handle, names: list[str], *, timeout=None) -> dict:
        """Read attributes (``"window"``, ``"wv.vector_size"``) of the object behind a handle."""
        self.start()
        self._check_handle(handle)
        request = {"op": "attributes", "handle": handle.id, "names": list(names)}
        values = self._request(request, timeout or self.limits.call_timeout, "reading attributes")
        if not isinstance(values, dict) or set(values) != set(names):
            raise SubmissionError("the worker answered other attributes", reason="protocol")
        return values

    def take_file(self, name: str, target_name: str, max_bytes: int = MAX_MODEL_BYTES) -> Path:
        """Move a file the worker wrote in the exchange folder to the trusted folder, safely.

        Regular files only (no links, FIFOs or devices), at most ``max_bytes``.
        """
        source = self.exchange_dir / name
        if "/" in name or name.startswith(".") or source.parent != self.exchange_dir:
            raise SubmissionError(f"bad file name {name!r} from the worker", reason="protocol")
        target = self.trusted_dir / target_name
        with profile.timed("copy file to trusted side"):
            return self._copy_in(name, source, target, max_bytes)

    def _copy_in(self, name: str, source: Path, target: Path, max_bytes: int) -> Path:
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise SubmissionError(
                f"the file {name} could not be read: {exc.strerror}", reason="export_failed"
            ) from None
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise SubmissionError(f"{name} is not a regular file", reason="protocol")
            with open(target, "wb") as dst:
                copied = 0
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise SubmissionError(
                            f"{name} is larger than {max_bytes // 2**20} MiB",
                            reason="file_too_large",
                        )
                    dst.write(chunk)
        source.unlink(missing_ok=True)
        return target

    def _check_handle(self, handle: Handle) -> None:
        if not isinstance(handle, Handle):
            raise TypeError(f"expected a Handle, got {type(handle).__name__}")
        if handle.generation != self.generation:
            raise WorkerCrashed(
                f"{handle!r} was lost when the worker restarted after an earlier failure",
                reason="stale_handle",
            )

    def _encode(self, value: Any) -> Any:
        return self._codec.encode(value)

    def _request(self, request: dict, timeout: float, label: str) -> Any:
        proc = self._proc
        began_request = time.perf_counter()
        try:
            while proc.pending:
                began = time.monotonic()
                reply = self._answer(proc, self.limits.import_timeout, "loading TensorFlow")
                proc.pending -= 1
                waited = time.monotonic() - began
                self.preload_wait_seconds += waited
                seconds = (reply.get("value") or {}).get("__dict__", {}).get("seconds")
                if isinstance(seconds, int | float):  # the worker's own word: statistics only
                    self.preload_seconds += float(seconds)
                    profile.phase("worker TensorFlow import", float(seconds))
                profile.op("wait for the worker's TensorFlow", waited)
                began_request = time.perf_counter()
                if not proc.pending:
                    # What the preload printed (TensorFlow's start-up) is not the student's:
                    # no student code has run in this worker before this point.
                    proc.output.wait_for_mark(proc.sent)
                    proc.output.start_window()
            send_message(proc.req_w, request)
            proc.sent += 1
            proc.student_code = proc.student_code or request.get("op") == "import"
        except OSError:  # broken pipe: the worker is gone
            self._died(proc, label)
        try:
            reply = self._answer(proc, timeout, label)
        finally:
            self._codec.discard_written()
        proc.output.wait_for_mark(proc.sent)
        seconds = reply.get("seconds")
        profile.op(
            str(request.get("op")),
            time.perf_counter() - began_request,
            float(seconds) if isinstance(seconds, int | float) else 0.0,
        )
        if reply.get("ok") is True:
            if isinstance(seconds, int | float) and request.get("op") != "seed":
                self.busy_seconds += float(seconds)  # the worker's own word: statistics only
            try:
                return self._codec.decode(reply.get("value"))
            except ProtocolError as exc:
                raise SubmissionError(
                    f"{label} returned a value that cannot be graded: {exc}", reason="bad_value"
                ) from None
        error = reply.get("error")
        kind = error.get("kind") if isinstance(error, dict) else None
        if kind == "harness" and proc.student_code:
            # Once student code ran in it, a failing worker may be one the student broke
            # (patched builtins, closed streams): never an internal error of ours.
            proc.kill()
            raise WorkerCrashed(
                WORKER_BROKEN_MESSAGE.format(label=label, error=str(error.get("message"))[:500]),
                reason="worker_broken",
            )
        tasks = jail.count_tasks(proc.uid) if proc.uid is not None else 0
        if kind in ("student_exception", "import_error") and (
            tasks >= PROCESS_LIMIT_SHARE * self.limits.max_processes
        ):
            # Whatever the code raised (a library that could not start its threads says
            # anything, even KeyboardInterrupt), it raised it with the process limit full.
            kind = "process_limit"
        if kind in LIMIT_REASONS:
            # Out of memory, processes or disk: start the next check in a fresh worker.
            proc.kill()
            raise self._over_limit(
                kind, label, str(error.get("traceback", ""))[:20000], tasks=tasks
            )
        raise _failure(error, label)

    def _answer(self, proc: _WorkerProcess, timeout: float, label: str) -> dict:
        """Wait for one reply, watching for death, output floods and the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if proc.output.flooded:
                proc.kill()
                raise WorkerCrashed(
                    f"{label} printed more than {self.limits.output_limit_bytes // 2**20} MiB; "
                    "the worker was stopped. Remove or shorten the prints in your code.",
                    reason="output_limit",
                )
            if now >= deadline:
                proc.kill()
                raise CallTimeout(
                    f"{label} did not finish within {timeout:g} s and was stopped. Look for "
                    "an infinite loop, or training far longer than the check asked for.",
                    reason="timeout",
                )
            proc.sample()
            if now - self._disk_checked >= DISK_CHECK_SECONDS:
                self._disk_checked = now
                if self._disk_used() > self.limits.disk_bytes:
                    proc.kill()
                    raise self._over_limit("disk_limit", label)
            ready, _, _ = select.select([proc.rep_r], [], [], min(0.2, deadline - now))
            if ready:
                try:
                    return recv_message(proc.rep_r, deadline=time.monotonic() + 30)
                except ChannelClosed:
                    self._died(proc, label)
                except (ChannelTimeout, ProtocolError) as exc:
                    proc.kill()
                    raise WorkerCrashed(
                        f"the worker sent a broken reply to {label} ({exc or 'incomplete'}); "
                        "something in your code wrote to the grader's channel",
                        reason="protocol",
                    ) from None
            elif not proc.alive():
                self._died(proc, label)

    def _died(self, proc: _WorkerProcess, label: str):
        try:  # in the jail, unshare passes on the worker's exit a moment later
            proc.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        proc.kill()
        limit = self._limit_that_killed(proc)
        if limit is not None:
            raise self._over_limit(limit, label, tasks=proc.peak_tasks)
        how = proc.describe_exit()
        raise WorkerCrashed(
            f"the worker process {how} during {label}. Something in your code ended the "
            "Python process (os._exit, a signal, a crash in native code or running out of "
            "memory).",
            reason="worker_died",
        )

    def _limit_that_killed(self, proc: _WorkerProcess) -> str | None:
        """Which limit, if any, explains the worker's death (the kernel does not say)."""
        code = proc.returncode()
        signum = -code if code is not None and code < 0 else None
        tail = proc.output.tail()
        if signum == signal.SIGXCPU:
            return "cpu_limit"
        if signum == signal.SIGXFSZ:
            return "disk_limit"
        # Past the hard CPU limit (or as a namespace's PID 1, which ignores SIGXCPU).
        cores = os.cpu_count() or 1
        if signum == signal.SIGKILL and proc.cpu_seconds >= self.limits.cpu_seconds - cores:
            return "cpu_limit"
        if any(words in tail for words in _PROCESS_LIMIT_WORDS):
            return "process_limit"
        if proc.peak_tasks >= PROCESS_LIMIT_SHARE * self.limits.max_processes:
            return "process_limit"
        if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS) and (
            proc.peak_bytes >= 0.9 * self.limits.memory_bytes
            or any(words in tail for words in _MEMORY_WORDS)
        ):
            return "memory_limit"
        return None

    def _over_limit(
        self, reason: str, label: str, student_traceback: str = "", *, tasks: int = 0
    ) -> WorkerCrashed:
        limits = self.limits
        if reason == "memory_limit":
            message = MEMORY_LIMIT_MESSAGE.format(gib=_gib(limits.memory_bytes), label=label)
        elif reason == "cpu_limit":
            message = CPU_LIMIT_MESSAGE.format(seconds=limits.cpu_seconds, label=label)
            return CallTimeout(message, reason=reason)
        elif reason == "process_limit":
            message = PROCESS_LIMIT_MESSAGE.format(count=limits.max_processes, label=label)
            if tasks:
                message += PROCESS_COUNT_MESSAGE.format(tasks=tasks)
        else:
            self._reset_folders = True
            message = DISK_LIMIT_MESSAGE.format(
                label=label, file_gib=_gib(limits.file_bytes), disk_gib=_gib(limits.disk_bytes)
            )
        return WorkerCrashed(message, reason=reason, student_traceback=student_traceback)

    def _disk_used(self) -> int:
        """Bytes in the worker's folders (symlinks not followed); too many files counts as full."""
        total = files = 0
        # In the jail the grader's own files there (Keras data, shared inputs) do not count.
        grader = os.geteuid() if self._uid is not None else None
        stack = [self.scratch_dir, self.home_dir, self.exchange_dir]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue
            for entry in entries:
                files += 1
                if files > MAX_WORKER_FILES:
                    return 2**62
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif (info := entry.stat(follow_symlinks=False)).st_uid != grader:
                        total += info.st_size
                except OSError:
                    continue
        return total


#: failures the worker reports when a resource limit stopped the student's code
LIMIT_REASONS = ("memory_limit", "process_limit", "disk_limit")
_MEMORY_WORDS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_PROCESS_LIMIT_WORDS = ("can't start new thread", "pthread_create failed", "Resource temporarily")


def _python_paths() -> set[str]:
    """Where this Python and its packages live: the worker must see them to start."""
    return {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}


def _chown_tree(folder: Path, uid: int, gid: int) -> None:
    os.chown(folder, uid, gid)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _failure(error: Any, label: str) -> Exception:
    if not isinstance(error, dict):
        return WorkerCrashed(f"the worker sent a malformed error for {label}", reason="protocol")
    kind = str(error.get("kind", "harness"))
    message = str(error.get("message", ""))[:4000]
    tb = str(error.get("traceback", ""))[:20000]
    if kind == "not_implemented":
        return NotImplementedYet(message, reason="not_implemented")
    if kind == "harness":
        return SandboxError(f"the worker failed on {label}: {message}\n{tb}")
    return SubmissionError(message, reason=kind, student_traceback=tb)


def copy_submission(source: Path, target: Path) -> None:
    """Copy regular files only: symlinks are skipped so nothing outside the folder is read."""
    total = files = 0
    target.mkdir()
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        rel = Path(dirpath).relative_to(source)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in _SKIPPED_NAMES and not os.path.islink(os.path.join(dirpath, d))
        ]
        for d in dirnames:
            (target / rel / d).mkdir()
        for name in filenames:
            src = Path(dirpath) / name
            if src.is_symlink() or not src.is_file():
                continue
            total += src.stat().st_size
            files += 1
            if total > MAX_SUBMISSION_BYTES or files > MAX_SUBMISSION_FILES:
                raise SubmissionError(
                    f"the submission folder {source} holds more than "
                    f"{MAX_SUBMISSION_BYTES // 2**20} MiB or {MAX_SUBMISSION_FILES} files; "
                    "submit only your code",
                    reason="submission_too_large",
                )
            shutil.copyfile(src, target / rel / name)
