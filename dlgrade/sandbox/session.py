"""The worker seen from the trusted side: the request loop, and why a call failed.

One :class:`WorkerSession` per submission per grading session. It owns the worker's
folders (:mod:`dlgrade.sandbox.folders`) and at most one live worker process
(:mod:`dlgrade.sandbox.process`), started again after a crash or a timeout.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import dlgrade
from dlgrade import data, gpu, profile, safeio
from dlgrade.errors import (
    CallTimeout,
    MachineBusy,
    NotImplementedYet,
    SandboxError,
    SubmissionError,
    WorkerCrashed,
)
from dlgrade.reasons import LIMIT_REASONS
from dlgrade.rubric import TAMPERING
from dlgrade.sandbox import jail, notebook
from dlgrade.sandbox.clock import SAMPLE_SECONDS, CallClock
from dlgrade.sandbox.folders import (
    DISK_CHECK_SECONDS,
    MAX_MODEL_BYTES,
    WorkerFolders,
    _python_paths,
)
from dlgrade.sandbox.limits import (
    CPU_LIMIT_MESSAGE,
    DISK_LIMIT_MESSAGE,
    MEMORY_LIMIT_MESSAGE,
    PROCESS_COUNT_MESSAGE,
    PROCESS_LIMIT_MESSAGE,
    PROCESS_LIMIT_SHARE,
    RESIDENT_LIMIT_MESSAGE,
    RESIDENT_PARTS,
    RESIDENT_SAMPLE_SECONDS,
    WORKER_BROKEN_MESSAGE,
    Limits,
    _gib,
    isolation_mode,
    memory_guard,
)
from dlgrade.sandbox.process import Launch, OutputCapture, WorkerProcess
from dlgrade.sandbox.protocol import (
    ChannelClosed,
    ChannelTimeout,
    Codec,
    ExchangeError,
    Handle,
    ProtocolError,
    recv_message,
    send_message,
)
from dlgrade.sandbox.zygote import enabled as zygote_enabled
from dlgrade.sandbox.zygote import for_launch as zygote_for

PASSED_ENV = (
    "DLGRADE_DATA_DIR",
    "DLGRADE_CACHE_DIR",
    "OMP_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "KERAS_BACKEND",
)


class ExportedModel(NamedTuple):
    """A model the worker saved: the trusted copy, and the student's class name when the
    worker traced a subclassed model into the functional model it saved (else None)."""

    path: Path
    traced: str | None


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
        device: gpu.Device | None = None,
    ):
        """``hidden``: folders the worker must not see besides the defaults (the rubric
        folders, the results folder); ``isolation``: force ``"namespaces"`` or ``"rlimits"``;
        ``device``: the GPU the worker gets, or the CPU (the default) — :mod:`dlgrade.gpu`.
        """
        self.submission_dir = Path(submission_dir).resolve()
        if not self.submission_dir.is_dir():
            raise SandboxError(f"submission folder {submission_dir} does not exist")
        self.limits = limits or Limits()
        self.preload = tuple(preload)
        self.datasets = tuple(datasets)
        self.mode = isolation_mode(isolation)
        self.hidden = [Path(p) for p in hidden]
        self.device = device or gpu.Device(None, "no GPU asked for")
        #: how the memory limit is held: "address space" (RLIMIT_AS) or "resident" (GPU)
        self.memory_guard = memory_guard(self.device.is_gpu)
        #: the GPUs TensorFlow in the worker saw when it loaded (None: not loaded yet)
        self.worker_gpus: list[str] | None = None
        self.worker_gpu_error = ""
        self._memory_checked = 0.0
        self._uid: jail.UidLease | None = None
        if self.mode == "namespaces":
            try:
                self._uid = jail.UidLease()
            except OSError as exc:
                raise SandboxError(f"no unprivileged uid for the worker: {exc}") from None
        owner = (self._uid.uid, self._uid.gid) if self._uid is not None else None
        self.folders = WorkerFolders(self.submission_dir, self.datasets, owner)
        self.root = self.folders.root
        self.scratch_dir = self.folders.scratch_dir
        self.exchange_dir = self.folders.exchange_dir
        self.home_dir = self.folders.home_dir
        self.trusted_dir = self.folders.trusted_dir
        self.generation = 0
        self.starts = 0
        self.start_seconds = 0.0  # spawning workers until they answer
        self.preload_seconds = 0.0  # importing PRELOAD modules, as the worker timed it
        self.preload_wait_seconds = 0.0  # of which the trusted side spent waiting
        self.busy_seconds = 0.0  # inside the submission's calls, as the worker timed them
        self.machine_busy = 0  # calls given up because the machine held them back
        #: the student's own time in the worker, by the fair clock (import, calls, methods,
        #: iteration, attributes, model export): what activity budgets are drawn from
        self.student_seconds = 0.0
        #: "module" or "module.function" that timed out → why it is not run again
        self.hung: dict[str, str] = {}
        #: what the report shows once: a notebook's magics that did not run, its slow cells
        self.notes: list[str] = []
        self.check = ""  # the running check's id
        #: (number, seed) of the running check: each worker gets it once, before its first
        #: request in that check
        self._seed: tuple[int, int] | None = None
        self._checks_started = 0
        self._proc: WorkerProcess | None = None
        self._codec = Codec(self.exchange_dir, side="r")
        self._reset_folders = False  # after the disk limit: a fresh copy for the next worker
        self._disk_checked = 0.0
        #: what lives and dies with this session (its model inspector): closed first
        self.companions: list[Any] = []

    def device_label(self) -> str:
        """What the grade and the record say the worker ran on: the GPU it was given, as
        TensorFlow in the worker confirmed it; or why it ran on the CPU after all."""
        label = self.device.label()
        if self.device.is_gpu and self.worker_gpus == []:
            error = f": {self.worker_gpu_error}" if self.worker_gpu_error else ""
            return f"CPU ({label} was given, but TensorFlow in the worker found no GPU{error})"
        return label

    @property
    def keras_home(self) -> Path:
        """The worker's KERAS_HOME (the Keras data it reads)."""
        return self.folders.keras_home

    def launch(self) -> Launch:
        """What the next worker process is started from (:class:`~dlgrade.sandbox.process.
        Launch`): decided here, read by the process, never changed by it."""
        jailed = self.mode == "namespaces"
        env = self.environment()
        return Launch(
            mode=self.mode,
            root=self.root,
            exchange_dir=self.exchange_dir,
            scratch_dir=self.scratch_dir,
            env=MappingProxyType(env),
            limits=self.limits,
            gpu=self.device.is_gpu,
            uid=self._uid.uid if self._uid is not None else None,
            jail_config=self.jail_config([], output_fd=-1) if jailed else None,
            zygote=(
                zygote_for(env, self.preload)
                if zygote_enabled(gpu=self.device.is_gpu)
                else None
            ),
        )

    def jail_config(self, worker_command: list[str], output_fd: int) -> jail.Config:
        """What the jail hides, keeps and limits for this session's worker."""
        package = Path(dlgrade.__file__).resolve().parent
        keep = {Path(os.path.realpath(p)) for p in _python_paths()} | {package}
        keep |= set(gpu.library_folders(gpu.worker_env(self.device)))  # a GPU worker's CUDA
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
            rlimits=self.limits.rlimits(gpu=self.device.is_gpu),
            hide=jail.plan_hidden(hide, keep_all),
            keep=sorted(str(p) for p in keep),
            writable=[str(self.root)],
            read_only=[str(p) for p in read_only],
            output_fd=output_fd,
            groups=gpu.device_groups(gpu.device_files()) if self.device.is_gpu else [],
        )

    # -- life cycle ----------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        return worker_environment(self.home_dir, self.device)

    def start(self) -> None:
        """Start the worker if none is alive, and send the preload without waiting for it."""
        if self._proc is not None and self._proc.alive():
            return
        if self._proc is not None:
            self._proc.kill()
        if self._reset_folders:
            self.folders.prepare()
            self._reset_folders = False
        self.generation += 1
        self.starts += 1
        began = time.monotonic()
        self._proc = WorkerProcess(self.launch(), self.generation)
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
            try:
                send_message(
                    self._proc.req_w,
                    {"op": "preload", "modules": list(self.preload)},
                    deadline=time.monotonic() + SEND_SECONDS,
                )
            except (OSError, ChannelTimeout):
                self._died(self._proc, "worker start-up")
            self._proc.sent += 1
            self._proc.pending += 1
            # The submission's folder is on the worker's path: a file named like a module
            # TensorFlow tries to import (colorama.py, dill.py...) runs during the preload.
            self._proc.student_code = True

    def close(self) -> None:
        while self.companions:
            self.companions.pop().close()
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
        self.folders.remove()
        if self._uid is not None:
            self._uid.release()
            self._uid = None

    @property
    def output(self) -> OutputCapture | None:
        return self._proc.output if self._proc is not None else None

    def start_check(self, seed: int, check: str = "") -> None:
        """Reset the output window and seed the worker's random generators for one check
        (``check``: its id, for messages that point back to it)."""
        self.check = check
        self._checks_started += 1
        self._seed = (self._checks_started, seed)
        if self._proc is not None:
            self._proc.output.start_window()  # a dead worker's output is an earlier check's
        if self._proc is not None and self._proc.alive():
            self._ready()
        # else: a worker killed by an earlier check starts again only if this check calls
        # it (one that hung is not called again, and need not wait for TensorFlow)

    def ready(self) -> None:
        """Start the worker if need be and wait for its preload (TensorFlow) to answer."""
        self._ready()

    def _ready(self) -> None:
        """A live worker, seeded for the running check (started first if need be)."""
        self.start()
        if self._seed is not None and self._proc.seeded != self._seed:
            self._proc.output.start_window()
            self._proc.seeded = self._seed
            self._request(
                {"op": "seed", "seed": self._seed[1]}, self.limits.import_timeout, label="seeding"
            )

    def check_output(self) -> str:
        return self._proc.output.window_text() if self._proc is not None else ""

    # -- calls ---------------------------------------------------------------------------

    def call(self, module: str, function: str, args=(), kwargs=None, *, timeout=None) -> Any:
        """Call ``module.function(*args, **kwargs)`` in the worker and return its value.

        A module whose import, or a function whose call, timed out once is not run again in
        this session: later calls fail at once, saying where it hung (a ``while True`` would
        otherwise cost every check that calls it its whole limit).
        """
        label = f"{module}.{function}()"
        for key in (module, f"{module}.{function}"):
            if key in self.hung:
                raise CallTimeout(self.hung[key], reason="hung_before")
        self._ready()
        if module not in self._proc.imported:
            # Importing first, under its own limit, keeps TensorFlow's import out of the
            # call's; once a worker has the module, a call is one round trip.
            self._import(module, label)
        request = {
            "op": "call",
            "module": module,
            "function": function,
            "args": self._encode(list(args)),
            "kwargs": self._encode(dict(kwargs or {})),
        }
        limit = timeout or self.limits.call_timeout
        with self._remember_hang(f"{module}.{function}", label, limit):
            return self._request(request, limit, label)

    def _import(self, module: str, label: str) -> None:
        """Import a module of the submission (a ``.py`` file or a notebook) in the worker,
        keeping the notes the report shows once."""
        found = notebook.module_path(self.submission_dir, module)
        filename = found.name if found is not None else f"{module}.py"
        limit = self.limits.import_timeout
        try:
            with self._remember_hang(module, f"importing {filename}", limit):
                answer = self._request({"op": "import", "module": module}, limit, label)
        except CallTimeout as exc:
            hint = (
                notebook.timeout_hint(self.exchange_dir / notebook.PROGRESS_FILE)
                if filename.endswith(".ipynb") and exc.reason == "timeout"
                else ""
            )
            if not hint:
                raise
            self.hung[module] += " " + hint
            raise CallTimeout(f"{exc} {hint}", reason=exc.reason) from None
        notes = answer.get("notes") if isinstance(answer, dict) else None
        for note in notes[:MAX_NOTES] if isinstance(notes, list) else ():
            if isinstance(note, str) and note[:MAX_NOTE_CHARS] not in self.notes:
                self.notes.append(note[:MAX_NOTE_CHARS])
        self._proc.imported.add(module)

    @contextlib.contextmanager
    def _remember_hang(self, key: str, what: str, limit: float):
        try:
            yield
        except CallTimeout as exc:
            if exc.reason == "timeout":
                where = f" in {self.check}" if self.check else ""
                self.hung[key] = HUNG_BEFORE_MESSAGE.format(what=what, limit=limit, where=where)
            raise

    def call_method(self, handle: Handle, method: str, args=(), kwargs=None, *, timeout=None):
        self._ready()
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
        return self.export(handle, timeout=timeout, unbuilt_shape=unbuilt_shape).path

    def export(self, handle: Handle, *, timeout=None, unbuilt_shape=None) -> ExportedModel:
        """:meth:`export_model`, and whether the worker traced a subclassed model into the
        functional model it saved (:mod:`dlgrade.tracing`): then ``traced`` is the
        student's class name, and what the file computes must still be compared with the
        student's model (the worker's word is not trusted)."""
        self._ready()
        self._check_handle(handle)
        request = {"op": "export_model", "handle": handle.id}
        if unbuilt_shape is not None:
            request["unbuilt_shape"] = list(unbuilt_shape)
        answer = self._request(request, timeout or self.limits.call_timeout, "saving the model")
        traced = None
        if isinstance(answer, dict) and set(answer) == {"file", "traced"}:
            answer, traced = answer["file"], answer["traced"]
            if not isinstance(traced, str) or not traced or len(traced) > 200:
                raise _tampering("saving the model", "it named the model's class as no text")
        if not isinstance(answer, str):
            raise _tampering("saving the model", "it named no model file")
        path = self.take_file(answer, f"model-{handle.generation}-{handle.id}.keras")
        return ExportedModel(path, traced)

    def feed(self, name: str, args=(), kwargs=None, *, timeout=None) -> Any:
        """Build one of the grader's inputs in the worker (:mod:`dlgrade.sandbox.feeds`)."""
        self._ready()
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
        self._ready()
        self._check_handle(handle)
        request = {"op": "take", "handle": handle.id, "n": int(n)}
        items = self._request(request, timeout or self.limits.call_timeout, "iterating")
        if not isinstance(items, list) or len(items) > max(int(n), 0):
            raise _tampering("iterating", "it answered something else than the items asked for")
        return items

    def attributes(self, handle: Handle, names: list[str], *, timeout=None) -> dict:
        """Read attributes (``"window"``, ``"wv.vector_size"``) of the object behind a handle."""
        self._ready()
        self._check_handle(handle)
        request = {"op": "attributes", "handle": handle.id, "names": list(names)}
        values = self._request(request, timeout or self.limits.call_timeout, "reading attributes")
        if not isinstance(values, dict) or set(values) != set(names):
            raise _tampering("reading attributes", "it answered other attributes")
        return values

    def take_file(self, name: str, target_name: str, max_bytes: int = MAX_MODEL_BYTES) -> Path:
        """Move a file the worker wrote in the exchange folder to the trusted folder, safely.

        Regular files only (no links, FIFOs or devices, checked on the open file), at most
        ``max_bytes``, read in a bounded loop; the worker's copy is removed whatever it is.
        """
        try:
            safeio.check_name(name)
        except safeio.UnsafeEntry:
            raise _tampering("saving a file", f"it named the file {str(name)[:80]!r}") from None
        target = self.trusted_dir / target_name
        with profile.timed("copy file to trusted side"):
            return self._copy_in(name, target, max_bytes)

    def _copy_in(self, name: str, target: Path, max_bytes: int) -> Path:
        try:
            with safeio.open_dir(self.exchange_dir) as dir_fd:
                try:
                    fd = safeio.open_regular(dir_fd, name, max_bytes)
                except safeio.UnsafeEntry as exc:
                    reason = "file_too_large" if "at most" in str(exc) else "export_failed"
                    raise SubmissionError(
                        f"the file {name} your code saved could not be read: {exc}",
                        reason=reason,
                    ) from None
                try:
                    # the grader's own folder: a stale copy of an earlier export is replaced
                    with contextlib.suppress(FileNotFoundError):
                        target.unlink()
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                    out = os.open(target, flags, 0o600)
                    with os.fdopen(out, "wb") as dst:
                        copied = 0
                        while chunk := os.read(fd, 1 << 20):
                            copied += len(chunk)
                            if copied > max_bytes:  # it grew after fstat
                                raise SubmissionError(
                                    f"{name} is larger than {max_bytes // 2**20} MiB",
                                    reason="file_too_large",
                                )
                            dst.write(chunk)
                finally:
                    os.close(fd)
                    safeio.remove(dir_fd, name)
        except safeio.UnsafeEntry as exc:
            raise _tampering("saving a file", str(exc)) from None
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
        try:
            return self._codec.encode(value)
        except ExchangeError as exc:
            # The grader's own exchange folder was replaced or made unwritable: only code
            # running in the worker (as our uid, without the jail) can do that.
            self._codec.discard_written()
            raise _tampering("sending the grader's arguments", str(exc)) from None

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
                value = reply.get("value")
                inner = value.get("__dict__") if isinstance(value, dict) else None
                loaded = inner if isinstance(inner, dict) else {}
                seconds = _seconds(loaded.get("seconds"))
                if seconds is not None:  # the worker's own word: statistics only
                    self.preload_seconds += seconds
                    profile.phase("worker TensorFlow import", seconds)
                gpus = loaded.get("gpus")
                if isinstance(gpus, list):  # said before any student code ran in it
                    self.worker_gpus = [str(g)[:200] for g in gpus[:16]]
                    self.worker_gpu_error = str(loaded.get("gpu_error") or "")[:300]
                profile.op("wait for the worker's TensorFlow", waited)
                began_request = time.perf_counter()
                if not proc.pending:
                    # What the preload printed (TensorFlow's start-up) is not the student's:
                    # no student code has run in this worker before this point.
                    proc.output.wait_for_mark(proc.sent)
                    proc.output.start_window()
            try:
                send_message(proc.req_w, request, deadline=time.monotonic() + SEND_SECONDS)
            except ChannelTimeout:
                # An honest worker reads its next request at once: this one stopped reading.
                proc.kill()
                raise _tampering(label, "it stopped reading the grader's requests") from None
            proc.sent += 1
            proc.student_code = proc.student_code or request.get("op") == "import"
        except OSError:  # broken pipe: the worker is gone
            self._died(proc, label)
        try:
            reply = self._answer(proc, timeout, label, charge=request.get("op") in STUDENT_OPS)
        finally:
            self._codec.discard_written()
        proc.output.wait_for_mark(proc.sent)
        seconds = _seconds(reply.get("seconds"))
        profile.op(str(request.get("op"))[:40], time.perf_counter() - began_request, seconds or 0.0)
        ok = reply.get("ok")
        if ok is True:
            if seconds is not None and request.get("op") != "seed":
                self.busy_seconds += seconds  # the worker's own word: statistics only
            try:
                return self._codec.decode(reply.get("value"))
            except ExchangeError as exc:
                raise _tampering(label, str(exc)) from None
            except ProtocolError as exc:
                raise SubmissionError(
                    f"{label} returned a value that cannot be graded: {exc}", reason="bad_value"
                ) from None
        error = reply.get("error")
        kind = error.get("kind") if isinstance(error, dict) else None
        if ok is not False or not _well_formed(error):
            if not proc.student_code:
                raise SandboxError(f"the worker sent a malformed reply to {label}: {reply!r:.500}")
            proc.kill()
            raise _tampering(label, "its reply is not one the worker sends")
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

    def _answer(
        self, proc: WorkerProcess, timeout: float, label: str, *, charge: bool = False
    ) -> dict:
        """Wait for one reply, watching for death, output floods and the student's time.

        The time limit counts what the call used, not what a busy machine took from it
        (:mod:`dlgrade.sandbox.clock`); a call the machine held back past ``MAX_STRETCH``
        times its limit is the grader's failure (:class:`MachineBusy`), not the student's.
        """
        clock = CallClock(timeout, proc.worker_pid)
        try:
            return self._wait_for_reply(proc, clock, timeout, label)
        finally:
            if charge:
                self.student_seconds += clock.tick()

    def _wait_for_reply(
        self, proc: WorkerProcess, clock: CallClock, timeout: float, label: str
    ) -> dict:
        while True:
            now = time.monotonic()
            if proc.output.flooded:
                proc.kill()
                raise WorkerCrashed(
                    f"{label} printed more than {self.limits.output_limit_bytes // 2**20} MiB; "
                    "the worker was stopped. Remove or shorten the prints in your code.",
                    reason="output_limit",
                )
            if clock.expired():
                proc.kill()
                raise CallTimeout(timeout_message(label, timeout, clock.wall), reason="timeout")
            if clock.gave_up():
                proc.kill()
                self.machine_busy += 1
                raise MachineBusy(
                    MACHINE_BUSY_MESSAGE.format(
                        label=label, wall=clock.wall, counted=clock.counted, limit=timeout
                    )
                )
            proc.sample()
            # every worker, GPU or not: RLIMIT_AS does not see memfds, unmapped SysV
            # segments or /dev/shm, nor what many processes hold together
            if now - self._memory_checked >= RESIDENT_SAMPLE_SECONDS:
                self._memory_checked = now
                used = proc.resident(self.limits.memory_bytes)
                if used > self.limits.memory_bytes:
                    proc.kill()
                    raise self._over_limit("memory_limit", label, used=used, held=proc.held)
            if now - self._disk_checked >= DISK_CHECK_SECONDS:
                self._disk_checked = now
                if self.folders.disk_used() > self.limits.disk_bytes:
                    proc.kill()
                    raise self._over_limit("disk_limit", label)
            wait = min(SAMPLE_SECONDS, max(0.01, clock.remaining()))
            ready, _, _ = select.select([proc.rep_r], [], [], wait)
            if ready:
                try:
                    return recv_message(proc.rep_r, deadline=time.monotonic() + 30)
                except ChannelClosed:
                    self._died(proc, label)
                except (ChannelTimeout, ProtocolError) as exc:
                    proc.kill()
                    raise _tampering(label, f"a broken reply: {exc or 'incomplete'}") from None
            elif not proc.alive():
                self._died(proc, label)

    def _died(self, proc: WorkerProcess, label: str):
        try:  # in the jail, unshare passes on the worker's exit a moment later
            proc.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        proc.kill()
        limit = self._limit_that_killed(proc)
        if limit is not None:
            sampled = proc.peak_resident >= 0.9 * self.limits.memory_bytes
            used = proc.peak_resident if self.memory_guard == "resident" or sampled else 0
            raise self._over_limit(
                limit, label, tasks=proc.peak_tasks, used=used, held=proc.held if used else None
            )
        how = proc.describe_exit()
        raise WorkerCrashed(
            f"the worker process {how} during {label}. Something in your code ended the "
            "Python process (os._exit, a signal, a crash in native code or running out of "
            "memory).",
            reason="worker_died",
        )

    def _limit_that_killed(self, proc: WorkerProcess) -> str | None:
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
        # a GPU worker's address space says nothing (CUDA reserves tens of GiB of it); what
        # the processes held together, sampled, speaks for any worker
        address = proc.peak_bytes if self.memory_guard != "resident" else 0
        peak = max(proc.peak_resident, address)
        if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS) and (
            peak >= 0.9 * self.limits.memory_bytes or any(words in tail for words in _MEMORY_WORDS)
        ):
            return "memory_limit"
        return None

    def _over_limit(
        self,
        reason: str,
        label: str,
        student_traceback: str = "",
        *,
        tasks: int = 0,
        used: int = 0,
        held: jail.MemoryHeld | None = None,
    ) -> WorkerCrashed:
        limits = self.limits
        if reason == "memory_limit" and used:
            held = held or jail.MemoryHeld(anonymous=used)
            parts = RESIDENT_PARTS.format(
                **{k: f"{getattr(held, k) / 2**30:.1f}" for k in ("anonymous", "files", "dev_shm")}
            )
            message = RESIDENT_LIMIT_MESSAGE.format(
                gib=_gib(limits.memory_bytes), label=label, used=f"{used / 2**30:.1f}", parts=parts
            )
        elif reason == "memory_limit":
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


#: the requests that run the student's code: their time is drawn from the activity's budget
STUDENT_OPS = frozenset({"import", "call", "call_method", "take", "attributes", "export_model"})
HUNG_BEFORE_MESSAGE = (
    "not run again: {what} did not finish within {limit:g} s{where}. Code that hangs is run "
    "once per grading session, so that it cannot cost every check that calls it its whole "
    "limit; fix the hang (an infinite loop, or far more work than the check asks for)."
)
MACHINE_BUSY_MESSAGE = (
    "the machine was too busy to grade {label} fairly: after {wall:.0f} s of wall time the "
    "call had had only {counted:.0f} s of the {limit:g} s it is allowed (other programs held "
    "the CPUs). This is not counted against you; the next run grades this check again."
)


def timeout_message(label: str, limit: float, wall: float) -> str:
    """The student's timeout; the wall time too when a busy machine stretched the limit."""
    stretched = f" of its own time ({wall:.0f} s of wall time on a busy machine)"
    return (
        f"{label} did not finish within {limit:g} s"
        + (stretched if wall > 1.1 * limit else "")
        + " and was stopped. Look for an infinite loop, or training far longer than the "
        "check asked for."
    )


#: failures the worker reports when a resource limit stopped the student's code
_MEMORY_WORDS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_PROCESS_LIMIT_WORDS = ("can't start new thread", "pthread_create failed", "Resource temporarily")


#: every kind of failure an honest worker reports (dlgrade/sandbox/worker.py): the student's
#: outcomes, the limits, and "harness" (believed only before any student code ran). A
#: worker runs the student's code, so any other kind — one that names a grader fault
#: (``machine_busy``, ``harness_error``, ``rubric_error``) above all — is forged.
WORKER_KINDS = frozenset(
    {
        "student_exception",
        "import_error",
        "syntax_error",
        "exit",
        "not_implemented",
        "missing_function",
        "missing_module",
        "ambiguous_module",
        "bad_notebook",
        "wrong_type",
        "export_failed",
        "unbuilt_model",
        "untraceable_model",  # a subclassed model dlgrade/tracing.py cannot follow
        "bad_model",  # the model inspector's (dlgrade/sandbox/feeds.py InspectionFailed)
        "unsafe_model",
        "missing_attribute",
        "unencodable",
        "protocol",
        *LIMIT_REASONS,
        "harness",
    }
)
TAMPERING_MESSAGE = (
    "the worker sent a reply the grader cannot trust ({what}, during {label}); this check is "
    "failed. Something in your code wrote to or replaced the grader's channel."
)
#: how long the grader waits for the worker to take one request off its pipe
SEND_SECONDS = 30.0
#: notes a worker may add to the report per import, and their length
MAX_NOTES, MAX_NOTE_CHARS = 50, 2000


def _tampering(label: str, what: str) -> WorkerCrashed:
    """The submission's failure for a reply no honest worker sends."""
    return WorkerCrashed(
        TAMPERING_MESSAGE.format(what=what[:300], label=label), reason=TAMPERING
    )


def _seconds(value: Any) -> float | None:
    """A duration the worker reported, if it is a plausible one (statistics only)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= 1e7 else None


def _well_formed(error: Any) -> bool:
    """An error as dlgrade/sandbox/worker.py builds one: a known kind, text where text goes."""
    return (
        isinstance(error, dict)
        and isinstance(error.get("kind"), str)
        and error["kind"] in WORKER_KINDS
        and isinstance(error.get("message", ""), str)
        and isinstance(error.get("traceback", ""), str)
    )


def _failure(error: dict, label: str) -> Exception:
    kind = error["kind"]
    message = error.get("message", "")[:4000]
    tb = error.get("traceback", "")[:20000]
    if kind == "not_implemented":
        return NotImplementedYet(message, reason="not_implemented")
    if kind == "harness":
        return SandboxError(f"the worker failed on {label}: {message}\n{tb}")
    return SubmissionError(message, reason=kind, student_traceback=tb)


def worker_environment(home_dir: Path, device: gpu.Device) -> dict[str, str]:
    """The whole environment of a worker whose home is ``home_dir``, on ``device``: the
    sandbox's own, scrubbed one (and what a zygote's key is made of, less the home:
    dlgrade/sandbox/zygote.py)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home_dir),
        "TMPDIR": str(home_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
        "KERAS_HOME": str(home_dir / ".keras"),
        # glibc reserves 64 MiB of address space per thread arena: with TensorFlow's
        # threads that alone would eat the memory limit on a many-core machine.
        "MALLOC_ARENA_MAX": "2",
        "USER": "student",  # the worker's uid has no passwd entry to look it up in
        "LOGNAME": "student",
    }
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    env.update(gpu.worker_env(device))
    # the worker's working folder is its scratch copy: a relative mirror or cache
    # (DLGRADE_DATA_DIR=../shared/data) must reach it as the folder it names here; and
    # as its real path, the one the jail mounts (a link on the way, in /tmp or a home
    # the jail hides, would lead nowhere)
    if "DLGRADE_DATA_DIR" in env:
        env["DLGRADE_DATA_DIR"] = os.path.realpath(data.mirror_dir())
    if "DLGRADE_CACHE_DIR" in env:
        env["DLGRADE_CACHE_DIR"] = os.path.realpath(data.cache_dir())
    nltk_data = data.nltk_data_dir()
    if nltk_data is not None:
        env["NLTK_DATA"] = os.path.realpath(nltk_data)
    return env
