"""A trusted zygote: TensorFlow imported once per grading process, each worker forked from it.

Most of a jailed worker's start is TensorFlow's import (about 6 of the 8 s a fresh worker
takes to import it and fit a small model here; ``benchmarks/zygote_probe.py``). A grading
process that grades student after student — a pytest-xdist worker of a class run, a
long-lived Dask slot — pays it once per student. The zygote pays it once:

* it is started by the grading process, as root where the jail is used, with the workers'
  environment (less each session's own folders), imports the student-independent libraries
  (the session's preload: numpy, TensorFlow, Keras) and then only waits;
* for each worker it is sent, over a private socket, the worker's pipes and nothing else
  (no path, no name, no config: the zygote never holds a student's data, so no child can
  find another's in the memory it inherits), and forks at once;
* the child — single-threaded after ``fork()`` — reads its launch description from its own
  pipe and becomes the worker exactly as ``unshare`` + :func:`dlgrade.sandbox.jail.run` make
  one: new mount, PID, network, IPC and UTS namespaces (``unshare(2)``), a second fork to be
  the PID namespace's PID 1, its own ``/proc``, the jail's mounts, IPC caps, a fresh session
  keyring, the resource limits, the uid drop, the syscall filter; then it runs the worker's
  main loop in place of ``exec``. Without the jail (no root or no namespaces) it sets the
  same limits on itself, as a freshly started worker does.

No student code ever runs in the zygote, and nothing a child does reaches it or a later
child: each child's memory is a copy made before any student code ran. What the zygote
imported is all a fresh worker would import anyway, without the submission's folder on the
path (so a student's ``dill.py`` is not run by TensorFlow's optional imports, as it was).

Keras reads ``KERAS_HOME`` when it is imported: the child points it at the session's own
folder again (``_reset_keras_home``) — the zygote's is hidden by the jail and read-only.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dlgrade
from dlgrade.errors import SandboxError
from dlgrade.sandbox import jail
from dlgrade.sandbox.process import PACKAGE_BY_PATH

#: the environment keys that belong to one session (its folders), not to the zygote
SESSION_KEYS = ("HOME", "TMPDIR", "KERAS_HOME")

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWPID, _CLONE_NEWNET = 0x20000000, 0x40000000
_MS_NOEXEC = 8

#: the worker's own start (this very dlgrade package, by path), then the zygote's loop
ZYGOTE_BOOTSTRAP = (
    PACKAGE_BY_PATH + "from dlgrade.sandbox import zygote\nsys.exit(zygote.serve(sys.argv[1:]))\n"
)


# -- the grading process's side ------------------------------------------------------------


class Zygote:
    """One zygote process and the socket to it; :meth:`spawn` forks a worker from it."""

    def __init__(self, env: Mapping[str, str], preload: tuple[str, ...]):
        self.key = zygote_key(env, preload)
        #: started by the process this one was forked from (a grading server's, for one
        #: student: dlgrade/classrun/cluster.py): used here, stopped only by its owner
        self.borrowed = False
        #: a fork's answer was lost: never asked again (see :meth:`spawn`)
        self._broken = False
        # the grader's temporary folder: hidden from every jailed worker
        self.home = home = Path(tempfile.mkdtemp(prefix="dlgrade-zygote-"))
        base = {k: v for k, v in env.items() if k not in SESSION_KEYS}
        base.update(HOME=str(home), TMPDIR=str(home), KERAS_HOME=str(home / ".keras"))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        self._lock = threading.Lock()
        command = [
            sys.executable,
            "-P",
            "-s",
            "-B",
            "-c",
            ZYGOTE_BOOTSTRAP,
            str(Path(dlgrade.__file__).resolve().parent),
            str(theirs.fileno()),
            ",".join(preload),
        ]
        log = os.open(home / "zygote.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # lives as long as the grading process: so does the zygote (parent-death signal)
            proc = jail.popen_from_lasting_thread(
                jail.die_with_grader(command),
                "dlgrade-zygote",
                cwd=str(home),
                env=base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise SandboxError(f"could not start the zygote: {exc}") from None
        finally:
            os.close(log)
            theirs.close()
        self.proc: subprocess.Popen = proc
        ours.settimeout(600)
        try:  # it answers once its imports are done
            answer = ours.recv(256)
        except OSError:
            answer = b""
        if not answer.startswith(b"ready"):
            try:  # read before close() removes its folder
                said = (home / "zygote.log").read_text(errors="replace")[-2000:]
            except OSError:
                said = ""
            self.close()
            raise SandboxError(f"the zygote did not start:\n{said}")
        self.import_seconds = float(answer.split()[1])

    def alive(self) -> bool:
        if self._broken:
            return False
        if self.borrowed:  # not our child: waitpid cannot say, its /proc entry can
            try:
                stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
                return stat.rsplit(")", 1)[1].split()[0] not in "ZX"
            except (OSError, IndexError):
                return False
        return self.proc.poll() is None

    def spawn(self, description: dict, fds: tuple[int, ...]) -> ZygoteChild:
        """Fork a worker: ``fds`` are handed over (the child's 3, 4, 5…) with a pipe from
        which it reads ``description``. Returns a handle like a ``Popen``'s."""
        config_r, config_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            with self._lock:
                if self._broken:
                    raise OSError("an earlier fork's answer was lost")
                try:
                    socket.send_fds(self._socket, [b"fork"], [config_r, status_w, *fds])
                    answer, pidfds, _flags, _addr = socket.recv_fds(self._socket, 64, 1)
                except OSError:
                    # its answer may still come: read by the next fork, it would hand that
                    # worker another's pipes. This zygote is not asked again.
                    self._broken = True
                    raise
        except OSError as exc:
            for fd in (config_r, config_w, status_r, status_w):
                os.close(fd)
            raise SandboxError(f"the zygote did not fork a worker: {exc}") from None
        os.close(config_r)
        os.close(status_w)
        if not answer.startswith(b"pid ") or len(pidfds) != 1:
            for fd in (config_w, status_r, *pidfds):
                os.close(fd)
            raise SandboxError(f"the zygote did not fork a worker: {answer[:60]!r}")
        child = ZygoteChild(int(answer.split()[1]), status_r, pidfds[0])
        payload = json.dumps(description, allow_nan=False).encode()
        try:
            with os.fdopen(config_w, "wb") as pipe:
                pipe.write(payload)
        except OSError:
            pass  # the child died first: its status says how
        return child

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            proc = getattr(self, "proc", None)
            if not self.borrowed:  # its owner stops it and removes its folder
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                shutil.rmtree(self.home, ignore_errors=True)


class ZygoteChild:
    """What :class:`~dlgrade.sandbox.process.WorkerProcess` needs of a ``Popen``, for a
    process the zygote forked: its pid, whether and how it ended (the zygote writes the wait
    status to a pipe of ours), and a kill through a pidfd the zygote opened."""

    def __init__(self, pid: int, status_fd: int, pidfd: int):
        self.pid = pid
        self.returncode: int | None = None
        self._status_fd = status_fd
        # opened by the zygote before it could reap the child: this process, not its number
        self._pidfd: int | None = pidfd

    def _read_status(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        ready, _, _ = select.select([self._status_fd], [], [], timeout)
        if not ready:
            return
        data = os.read(self._status_fd, 64)
        os.close(self._status_fd)
        self._status_fd = -1
        try:
            self.returncode = int(data.decode())
        except ValueError:  # the zygote died: its children died with it
            self.returncode = -signal.SIGKILL
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        self._read_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read_status(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired("zygote child", timeout or 0)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is not None:
            return
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def zygote_key(env: Mapping[str, str], preload: tuple[str, ...]) -> tuple:
    """Workers with the same key can come from the same zygote."""
    return (tuple(sorted((k, v) for k, v in env.items() if k not in SESSION_KEYS)), preload)


#: zygotes one grading process keeps (one per distinct worker environment)
MAX_ZYGOTES = 2
_zygotes: dict[tuple, Zygote] = {}
_zygotes_lock = threading.Lock()


def enabled(gpu: bool = False) -> bool:
    """Whether workers are forked from a zygote: on for CPU workers unless
    ``DLGRADE_ZYGOTE=0``; GPU workers start fresh until the zygote has been measured on a
    GPU machine (``DLGRADE_ZYGOTE=1`` forks them too)."""
    setting = os.environ.get("DLGRADE_ZYGOTE", "")
    if setting == "0":
        return False
    return setting == "1" or not gpu


#: why this process's zygote could not be started, once: its workers then start fresh
_failed: dict[tuple, str] = {}


#: in a grading server's child (one student's grading): the channel on which it asks the
#: server for a zygote, which the server keeps for its next students (dlgrade/classrun/cluster.py)
_lender: socket.socket | None = None


def for_launch(env: Mapping[str, str], preload: tuple[str, ...]) -> Zygote | None:
    """The grading process's zygote for workers of this environment, started if need be;
    ``None`` where it cannot be started here (its workers start fresh, as before)."""
    key = zygote_key(env, preload)
    with _zygotes_lock:
        found = _zygotes.get(key)
        if found is not None and found.alive():
            return found
        if key in _failed:
            return None
        if found is not None:
            found.close()
            del _zygotes[key]
        while len(_zygotes) >= MAX_ZYGOTES:  # the oldest: each holds TensorFlow in memory
            _zygotes.pop(next(iter(_zygotes))).close()
        try:
            _zygotes[key] = Zygote(env, preload) if _lender is None else _borrow(env, preload)
        except (SandboxError, OSError) as exc:
            _failed[key] = str(exc)
            print(f"dlgrade: workers start fresh (no zygote): {exc}", file=sys.stderr)
            return None
        return _zygotes[key]


def warm(env: Mapping[str, str], preload: tuple[str, ...]) -> threading.Thread:
    """Start the zygote for workers of this environment now, in a thread: a grading server
    does it before its own imports, so that the zygote's TensorFlow loads beside them
    (dlgrade/classrun/cluster.py), and its first worker finds the zygote ready (or waits for
    it) instead of starting one then. Join the thread before any ``fork()``: a child forked
    while it holds this module's lock would wait for that lock for ever."""
    thread = threading.Thread(
        target=for_launch, args=(dict(env), tuple(preload)), name="dlgrade-zygote-warm"
    )
    thread.start()
    return thread


def borrow_all(lender: socket.socket) -> None:
    """In a grading server's child (one student's grading, dlgrade/classrun/cluster.py): fork
    workers from the zygotes the server started, never stop them, and ask the server on
    ``lender`` for any other zygote, so that the server keeps it for its next students."""
    global _lender
    with _zygotes_lock:
        for zygote in _zygotes.values():
            zygote.borrowed = True
        _lender = lender


def _borrow(env: Mapping[str, str], preload: tuple[str, ...]) -> Zygote:
    """The grading server's zygote for this environment (:func:`lend`)."""
    request = json.dumps({"env": dict(env), "preload": list(preload)}, allow_nan=False)
    try:
        _lender.sendall(request.encode())
        answer, fds, _flags, _addr = socket.recv_fds(_lender, 65536, 1)
    except OSError as exc:
        raise SandboxError(f"the grading server lent no zygote: {exc}") from None
    try:
        said = json.loads(answer)
        if not fds:
            raise SandboxError(f"the grading server lent no zygote: {said.get('error')}")
        zygote = Zygote.__new__(Zygote)
        zygote.key = zygote_key(env, preload)
        zygote.borrowed = True
        zygote.home = Path(said["home"])
        zygote.proc = _Lent(int(said["pid"]))
        zygote.import_seconds = float(said["import_seconds"])
    except (ValueError, KeyError, TypeError, AttributeError):
        for fd in fds:
            os.close(fd)
        raise SandboxError(f"the grading server answered {answer[:80]!r}") from None
    zygote._socket = socket.socket(fileno=fds[0])
    zygote._socket.settimeout(600)  # as its owner's: the socket is non-blocking underneath
    zygote._lock = threading.Lock()
    zygote._broken = False
    return zygote


@dataclass(frozen=True)
class _Lent:
    """A lent zygote's process: another's child, known by its pid."""

    pid: int


def lend(channel: socket.socket) -> None:
    """In a grading server: answer a child's request for a zygote (:func:`_borrow`) with
    the socket of this process's own zygote for it, started if need be."""
    try:
        request = json.loads(channel.recv(65536))
        env = {str(k): str(v) for k, v in request["env"].items()}
        preload = tuple(map(str, request["preload"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        channel.sendall(
            json.dumps({"error": f"a malformed request ({exc})"}, allow_nan=False).encode()
        )
        return
    zygote = for_launch(env, preload)
    if zygote is None:
        why = _failed.get(zygote_key(env, preload), "it could not be started")
        channel.sendall(json.dumps({"error": why}, allow_nan=False).encode())
        return
    answer = {"pid": zygote.proc.pid, "home": str(zygote.home)}
    answer["import_seconds"] = zygote.import_seconds
    message = json.dumps(answer, allow_nan=False).encode()
    socket.send_fds(channel, [message], [zygote._socket.fileno()])


@atexit.register
def close_all() -> None:
    with _zygotes_lock:
        while _zygotes:
            _zygotes.popitem()[1].close()


# -- the zygote's side ---------------------------------------------------------------------


def serve(argv: list[str]) -> int:
    """The zygote's loop: import, say ready, then fork a child per request."""
    import time

    channel = socket.socket(fileno=int(argv[0]))
    began = time.monotonic()
    for name in filter(None, argv[1].split(",") if len(argv) > 1 else ()):
        try:
            __import__(name)
        except Exception as exc:  # noqa: BLE001 — the worker imports it again and reports
            print(f"dlgrade zygote: could not import {name}: {exc}", file=sys.stderr)
    import dlgrade.sandbox.worker  # noqa: F401 — what every child runs

    channel.sendall(f"ready {time.monotonic() - began:.3f}".encode())
    children: dict[int, int] = {}  # pid → the grading side's status pipe
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        _reap(children)
        try:
            ready, _, _ = select.select([channel, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            os.read(wake_r, 4096)
            continue
        try:
            message, fds, _flags, _addr = socket.recv_fds(channel, 64, 16)
        except OSError:
            return 0
        if not message:  # the grading process closed its end
            return 0
        if message != b"fork" or len(fds) < 2:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _child(fds, keep_closed=(channel.fileno(), wake_r, wake_w))
        children[pid] = fds[1]
        for fd in (fds[0], *fds[2:]):
            os.close(fd)
        pidfd = os.pidfd_open(pid)  # before any waitpid: the number is still the child's
        try:
            socket.send_fds(channel, [f"pid {pid}".encode()], [pidfd])
        finally:
            os.close(pidfd)


def _reap(children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_fd = children.pop(pid, None)
        if status_fd is not None:
            try:
                os.write(status_fd, str(os.waitstatus_to_exitcode(status)).encode())
            except OSError:
                pass
            os.close(status_fd)


def _child(fds: list[int], keep_closed: tuple[int, ...]) -> None:
    """The forked child: become the worker (never returns)."""
    code = 70
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # die with the zygote (which dies with the grading process)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)
        for fd in keep_closed:
            os.close(fd)
        config_r, status_w, *handed = fds
        os.close(status_w)  # the zygote's copy tells the grading side how we ended
        with os.fdopen(config_r, "rb") as pipe:
            description = json.loads(pipe.read())
        code = _become_worker(description, handed, libc)
    except BaseException as exc:  # noqa: BLE001 — say it in the jail log, never return
        try:
            print(f"dlgrade zygote child: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


def _become_worker(description: dict, handed: list[int], libc) -> int:
    """Lay the handed fds out as the worker expects, enter the jail, run the worker."""
    # the handed fds, in order, become what the description calls them
    names = description["fds"]  # e.g. ["request", "reply", "output", "log"]
    mapping = dict(zip(names, handed, strict=True))
    log = mapping.pop("log")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    keep = set(mapping.values()) | {0, 1, 2}
    for name in os.listdir("/proc/self/fd"):  # nothing of the zygote's comes along
        if int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass
    os.setsid()
    os.environ.clear()
    os.environ.update(description["env"])
    _forget_zygote_environment(description["env"])
    argv = [str(mapping.get(a[1:], a)) if a.startswith("@") else a for a in description["argv"]]
    if description.get("jail") is not None:
        config = jail.Config.from_json(description["jail"])
        flags = _CLONE_NEWNS | _CLONE_NEWUTS | _CLONE_NEWIPC | _CLONE_NEWPID
        if not description.get("network", False):
            flags |= _CLONE_NEWNET
        if libc.unshare(flags) != 0:
            raise OSError(ctypes.get_errno(), "unshare(2) for the worker's namespaces")
        pid = os.fork()
        if pid:  # as unshare --fork --kill-child: wait, then end as the worker ended
            for fd in keep - {0, 1, 2}:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code < 0:  # end by the same signal, so the grader sees how the worker died
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(-code, signal.SIG_DFL)  # not possible for SIGKILL
                os.kill(os.getpid(), -code)
            return code
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # killing the one above kills us
        jail._mount(None, "/", None, jail._MS_REC | jail._MS_PRIVATE)
        jail._mount("proc", "/proc", "proc", jail._MS_NOSUID | jail._MS_NODEV | _MS_NOEXEC)
        output = mapping["output"]
        config.output_fd = None
        jail.enter(config)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
    else:
        os.chdir(description["cwd"])
        output = mapping["output"]
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
    return _run_worker(argv)


def _run_worker(argv: list[str]) -> int:
    import runpy

    sys.argv = ["-c", *argv]
    try:
        runpy.run_module("dlgrade.sandbox.worker", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        sys.stdout.flush()
        return code if isinstance(code, int) else (0 if code is None else 1)
    sys.stdout.flush()
    return 0


def _forget_zygote_environment(env: Mapping[str, str]) -> None:
    """What the zygote's imports read from its environment once and kept: the temporary
    folder (``tempfile`` caches it) and Keras's home (read when Keras is imported) become
    the session's."""
    import tempfile as _tempfile

    _tempfile.tempdir = None
    folder = env.get("KERAS_HOME")
    config = sys.modules.get("keras.src.backend.config")
    if folder and config is not None and hasattr(config, "_KERAS_DIR"):
        config._KERAS_DIR = folder
        config._config_path = os.path.join(folder, "keras.json")


__all__ = ["Zygote", "ZygoteChild", "close_all", "enabled", "for_launch", "warm"]
