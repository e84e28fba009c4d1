"""The worker process seen from the trusted side: start it, talk to it, kill it.

One :class:`WorkerSession` per submission per grading session. It owns a scratch copy of
the submission (the worker's working directory), an exchange folder for arrays and models,
and at most one live worker process, started again after a crash or a timeout.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlgrade import data
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


@dataclass(frozen=True)
class Limits:
    """Per-worker limits. Timeouts are wall-clock seconds."""

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


class OutputCapture:
    """Drains the worker's merged stdout/stderr so it can never block, keeping a bounded part.

    A *window* is the output of one check: its first ``keep`` bytes are kept, the rest only
    counted. The log file keeps the first ``log_keep`` bytes of the whole worker's output.
    """

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
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed by the reader thread
        self._log_left = log_keep
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
        with self._lock:
            text = self._window.decode("utf-8", errors="replace")
            dropped = self._window_total - len(self._window)
        if dropped > 0:
            text += f"\n[... {dropped:,} more bytes of output not shown]"
        return text

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)


class _WorkerProcess:
    """One live worker process and its three pipes."""

    def __init__(self, session: WorkerSession, generation: int):
        self.generation = generation
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        command = [
            sys.executable,
            "-P",  # the submission's folder must not shadow numpy, json...
            "-s",
            "-B",
            "-m",
            "dlgrade.worker",
            str(req_r),
            str(rep_w),
            str(session.exchange_dir),
        ]
        try:
            self.proc = subprocess.Popen(
                command,
                cwd=session.scratch_dir,
                env=session.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                pass_fds=(req_r, rep_w),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for fd in (req_r, self.req_w, self.rep_r, rep_w, out_r, out_w):
                os.close(fd)
            raise SandboxError(f"could not start the worker ({command[0]}): {exc}") from None
        for fd in (req_r, rep_w, out_w):
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

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.output.join()

    def describe_exit(self) -> str:
        code = self.proc.returncode
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with code {code}"


class WorkerSession:
    """The trusted side's handle on one submission's worker, restarted as needed."""

    def __init__(self, submission_dir: Path, limits: Limits | None = None, preload=(), datasets=()):
        self.submission_dir = Path(submission_dir).resolve()
        if not self.submission_dir.is_dir():
            raise SandboxError(f"submission folder {submission_dir} does not exist")
        self.limits = limits or Limits()
        self.preload = tuple(preload)
        self.root = Path(tempfile.mkdtemp(prefix="dlgrade-"))
        self.scratch_dir = self.root / "submission"
        self.exchange_dir = self.root / "exchange"
        self.home_dir = self.root / "home"
        self.trusted_dir = self.root / "trusted"
        for folder in (self.exchange_dir, self.home_dir, self.trusted_dir):
            folder.mkdir()
        copy_submission(self.submission_dir, self.scratch_dir)
        # Keras finds Fashion-MNIST and the VGG16 weights here without a download; a
        # dataset the rubrics need that is not here gets its synthetic twin instead.
        self.keras_home = data.keras_home(self.home_dir / ".keras", twins=datasets)
        self.generation = 0
        self.starts = 0
        self.start_seconds = 0.0  # spawning workers until they answer
        self.preload_seconds = 0.0  # importing PRELOAD modules, as the worker timed it
        self.preload_wait_seconds = 0.0  # of which the trusted side spent waiting
        self._proc: _WorkerProcess | None = None
        self._codec = Codec(self.exchange_dir, side="r")

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
        }
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
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
        self.generation += 1
        self.starts += 1
        began = time.monotonic()
        self._proc = _WorkerProcess(self, self.generation)
        self._codec.generation = self.generation
        self._request({"op": "hello"}, self.limits.start_timeout, label="worker start-up")
        self.start_seconds += time.monotonic() - began
        if self.preload:
            send_message(self._proc.req_w, {"op": "preload", "modules": list(self.preload)})
            self._proc.sent += 1
            self._proc.pending += 1

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)

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
        # Importing first, under its own limit, keeps TensorFlow's import out of the call's.
        self._request({"op": "import", "module": module}, self.limits.import_timeout, label)
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

    def export_model(self, handle: Handle, *, timeout=None) -> Path:
        """Have the worker save a model handle as ``.keras``; return the trusted copy's path."""
        self.start()
        self._check_handle(handle)
        name = self._request(
            {"op": "export_model", "handle": handle.id},
            timeout or self.limits.call_timeout,
            "saving the model",
        )
        if not isinstance(name, str):
            raise WorkerCrashed("the worker named a bad model file", reason="protocol")
        return self.take_file(name, f"model-{handle.generation}-{handle.id}.keras")

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
        try:
            while proc.pending:
                began = time.monotonic()
                reply = self._answer(proc, self.limits.import_timeout, "loading TensorFlow")
                proc.pending -= 1
                self.preload_wait_seconds += time.monotonic() - began
                seconds = (reply.get("value") or {}).get("__dict__", {}).get("seconds")
                if isinstance(seconds, int | float):  # the worker's own word: statistics only
                    self.preload_seconds += float(seconds)
            send_message(proc.req_w, request)
            proc.sent += 1
        except OSError:  # broken pipe: the worker is gone
            self._died(proc, label)
        reply = self._answer(proc, timeout, label)
        proc.output.wait_for_mark(proc.sent)
        if reply.get("ok") is True:
            try:
                return self._codec.decode(reply.get("value"))
            except ProtocolError as exc:
                raise SubmissionError(
                    f"{label} returned a value that cannot be graded: {exc}", reason="bad_value"
                ) from None
        raise _failure(reply.get("error"), label)

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
        proc.proc.poll()
        proc.kill()
        how = proc.describe_exit()
        raise WorkerCrashed(
            f"the worker process {how} during {label}. Something in your code ended the "
            "Python process (os._exit, a signal, a crash in native code or running out of "
            "memory).",
            reason="worker_died",
        )


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
