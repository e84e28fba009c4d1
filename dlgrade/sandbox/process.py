"""One live worker process: how it is started, its pipes, its output, how it is killed."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dlgrade
from dlgrade.errors import SandboxError
from dlgrade.sandbox import jail
from dlgrade.sandbox.limits import TASKS_SAMPLE_SECONDS, Limits
from dlgrade.sandbox.protocol import split_output_marks

#: How the worker starts: it runs this very ``dlgrade`` package, by path — not whichever one
#: the interpreter's site-packages would find (an editable install may point at a checkout
#: the jail hides, e.g. when the grader runs from a student kit).
#: (the zygote's bootstrap starts the same way: dlgrade/sandbox/zygote.py)
PACKAGE_BY_PATH = """\
import importlib.util, runpy, sys
package = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location(
    "dlgrade", package + "/__init__.py", submodule_search_locations=[package]
)
module = importlib.util.module_from_spec(spec)
sys.modules["dlgrade"] = module
spec.loader.exec_module(module)
"""
WORKER_BOOTSTRAP = (
    PACKAGE_BY_PATH
    + 'runpy.run_module("dlgrade.sandbox.worker", run_name="__main__", alter_sys=True)\n'
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


@dataclasses.dataclass(frozen=True)
class Launch:
    """Everything a worker process is started from, decided by the session beforehand: the
    process reads this and nothing of the session (which it never calls back)."""

    #: ``namespaces`` (the jail) or ``rlimits``
    mode: str
    #: the session's folder (logs), the exchange folder, and the worker's working folder
    root: Path
    exchange_dir: Path
    scratch_dir: Path
    #: the worker's whole environment
    env: Mapping[str, str]
    limits: Limits
    gpu: bool
    #: in the jail: the worker's uid, and what the jail hides, keeps and limits (its
    #: ``argv`` and ``output_fd`` are filled in when the process is started)
    uid: int | None = None
    jail_config: jail.Config | None = None
    #: where the worker is forked from, if not started fresh (dlgrade/sandbox/zygote.py)
    zygote: Any = None


class WorkerProcess:
    """One live worker process and its three pipes, started from a :class:`Launch`.

    In the jail (``namespaces``) the process started is ``unshare``; the worker is its child
    and PID 1 of a new PID namespace, so killing it kills everything the submission started.
    """

    def __init__(self, launch: Launch, generation: int):
        self.generation = generation
        self.mode = launch.mode
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
            str(launch.exchange_dir),
        ]
        # In the jail, unshare's and the jail's own messages go to a log of ours; the jail
        # hands the worker the output pipe as its stdout and stderr just before exec.
        self.jail_log = launch.root / "jail.log"
        own_output, pass_fds = out_w, (req_r, rep_w)
        if self.mode == "namespaces":
            if launch.jail_config is None:
                raise SandboxError("a jailed worker was launched without the jail's settings")
            config = dataclasses.replace(
                launch.jail_config,
                argv=command,
                output_fd=out_w,
                syscall_filter=jail.support().syscall_filter,
            )
            command = jail.unshare_command(config, network=launch.limits.network)
            own_output = os.open(self.jail_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            pass_fds = (req_r, rep_w, out_w)
        else:
            rlimits = launch.limits.rlimits(gpu=launch.gpu)
            command.append(json.dumps(dataclasses.asdict(rlimits)))
        try:
            self.proc = None
            if launch.zygote is not None:
                with contextlib.suppress(SandboxError):  # gone: this worker starts fresh
                    self.proc = self._fork(launch, req_r, rep_w, out_w, own_output)
            if self.proc is None:
                self.proc = self._popen(command, launch, own_output, pass_fds)
        except SandboxError:
            for fd in {req_r, self.req_w, self.rep_r, rep_w, out_r, out_w, own_output}:
                os.close(fd)
            raise
        for fd in {req_r, rep_w, out_w, own_output}:
            os.close(fd)
        self._watch_output(launch, out_r)

    def _fork(self, launch: Launch, req_r: int, rep_w: int, out_w: int, log: int):
        """The worker forked from the zygote, as the same command would have started it."""
        argv = ["@request", "@reply", str(launch.exchange_dir)]
        jailed = None
        if self.mode == "namespaces":
            jailed = dataclasses.replace(
                launch.jail_config,
                argv=[],
                output_fd=None,
                syscall_filter=jail.support().syscall_filter,
            ).to_json()
        else:
            argv.append(json.dumps(dataclasses.asdict(launch.limits.rlimits(gpu=launch.gpu))))
        description = {
            "fds": ["request", "reply", "output", "log"],
            "env": dict(launch.env),
            "cwd": str(launch.scratch_dir),
            "argv": argv,
            "jail": jailed,
            "network": launch.limits.network,
        }
        return launch.zygote.spawn(description, (req_r, rep_w, out_w, log))

    def _popen(self, command: list[str], launch: Launch, own_output: int, pass_fds):
        try:
            return subprocess.Popen(
                jail.die_with_grader(command),
                cwd=launch.scratch_dir,
                env=dict(launch.env),
                stdin=subprocess.DEVNULL,
                stdout=own_output,
                stderr=own_output,
                pass_fds=pass_fds,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the worker ({command[0]}): {exc}") from None

    def _watch_output(self, launch: Launch, out_r: int) -> None:
        self.output = OutputCapture(
            out_r,
            launch.root / "worker-output.log",
            keep=launch.limits.output_keep_bytes,
            log_keep=launch.limits.log_keep_bytes,
            flood=launch.limits.output_limit_bytes,
        )
        self.pending = 0  # replies owed for requests sent without waiting (preload)
        self.sent = 0  # requests sent; the worker marks its output after each
        self.worker_pid: int | None = None if self.mode == "namespaces" else self.proc.pid
        self.cpu_seconds = 0.0  # the worker process's CPU time, last sampled
        self.peak_bytes = 0  # its peak address space, last sampled
        self.peak_resident = 0  # what the worker's processes held together, at most
        self.held = jail.MemoryHeld()  # ... and its parts, when it was at its most
        self._memory_samples = 0
        # processes and threads of the worker's uid (what RLIMIT_NPROC counts), at most: a
        # submission that fills the limit with children makes TensorFlow die in native code
        # (SIGSEGV, SIGABRT) when it cannot start a thread, and only this count tells why
        self.uid = launch.uid
        self.peak_tasks = 0
        self._tasks_sampled = 0.0
        self.exit_code: int | None = None  # how it ended, before any kill of ours
        self.pidfd: int | None = None  # the jailed worker itself (see find_worker)
        self.killed = False
        self.seeded: tuple[int, int] | None = None  # the check (number, seed) it was given
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
        if not children.split():
            return
        pid = int(children.split()[0])
        try:
            # A handle on this very process: a pid number is reused once its process is
            # gone, and a kill sent by number later could hit another student's worker.
            pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self.worker_pid = pid
            return
        try:  # opened before it could exit and its number go to someone else?
            still = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            still = ""
        if str(pid) in still.split():
            self.worker_pid, self.pidfd = pid, pidfd
        else:
            os.close(pidfd)

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

    def resident(self, limit: int | None = None) -> int:
        """What the worker's processes hold in memory now (:func:`jail.memory_held`): its
        own uid's processes and its private /dev/shm in the jail, else the worker's process
        tree. Near ``limit`` it is counted again exactly (forked children share pages)."""
        if self.uid is not None:
            pids = jail.worker_pids(uid=self.uid)
        elif self.worker_pid is not None:
            pids = jail.worker_pids(root=self.worker_pid)
        else:
            return 0
        dev_shm = None
        if self.mode == "namespaces" and self.worker_pid is not None:
            dev_shm = f"/proc/{self.worker_pid}/root/dev/shm"
        self._memory_samples += 1
        every = self._memory_samples % MAPPINGS_EVERY == 1  # the first, then every 2 s
        held = jail.memory_held(pids, dev_shm, mappings=every)
        if limit is not None and held.total >= 0.9 * limit:
            held = jail.memory_held(pids, dev_shm, exact=True)
        if held.total > self.peak_resident:
            self.peak_resident, self.held = held.total, held
        return held.total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started, and wait until they are gone.

        Once only: a dead worker's numbers (its pid, ``unshare``'s process group) go to
        new processes — on a busy machine, to the next student's worker — so a second kill
        by number could stop someone else's. In the jail the worker is signalled through a
        pidfd, which names the process itself, not its number.
        """
        if self.killed:
            return
        self.killed = True
        if self.exit_code is None:
            self.exit_code = self.proc.poll()
        if self.pidfd is not None:
            # PID 1 of the namespace: the kernel kills every other process in it.
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        elif self.worker_pid is not None and self.mode == "namespaces" and self.alive():
            try:  # no pidfd on this kernel; unshare still runs, so its child is ours
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
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], 10)  # readable once the process is gone
            os.close(self.pidfd)
            self.pidfd = None
        elif self.worker_pid is not None and self.mode == "namespaces":
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


#: every how many memory samples all the worker's mappings are read, not only those of its
#: processes with shared memory resident (at RESIDENT_SAMPLE_SECONDS = 0.25 s: every 2 s)
MAPPINGS_EVERY = 8
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
