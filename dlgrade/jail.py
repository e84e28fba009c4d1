"""The jail: a trusted bootstrap that locks the worker in before any student code runs.

:mod:`dlgrade.sandbox` starts every worker, when it runs as root and namespaces work, as ::

    unshare --net --mount --pid --fork --mount-proc --kill-child -- \\
        python -I -S -B .../dlgrade/jail.py CONFIG_JSON

Still root, inside the new namespaces, :func:`main` makes every mount private, covers each
folder the worker must not see with an empty read-only tmpfs (re-mounting inside it only the
paths the worker needs: the Python install, the dlgrade package, its own session folder),
makes the data mirror and cache read-only, gives it a small private ``/dev/shm``, sets the
resource limits, drops to an unprivileged uid and ``exec``\\ s the worker as the namespace's
PID 1, so killing it kills every process the submission started.

Stdlib only, and run by path with ``-I -S``: the trusted side imports it too, and the jail
itself runs before the virtual environment is on ``sys.path``. Elsewhere (not root, or no
namespaces) the worker sets the same resource limits on itself (:func:`set_limits`).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Worker uids are taken from this range, one per live session, so that two workers never
#: share a process count (RLIMIT_NPROC is per uid) or each other's files and signals.
WORKER_UID_FIRST = 1_900_000_000
WORKER_UID_COUNT = 1024
UID_LOCK_DIR = Path("/run/dlgrade/uids")
#: Shared places any user may write to: hidden, so a worker can only write its own folder.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/run/lock", "/dev/mqueue")
#: Never covered, whatever a caller asks: the system the worker runs on.
NEVER_HIDDEN = frozenset(
    ["/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/dev"]
    + ["/proc", "/sys", "/var", "/run", "/boot"]
)
SHM_BYTES = 64 * 1024 * 1024
UNSHARE_FLAGS = ("--mount", "--pid", "--fork", "--mount-proc", "--kill-child")

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT = 1, 2, 4, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


@dataclass(frozen=True)
class Rlimits:
    """The resource limits of one worker process; ``None`` leaves a limit as it is."""

    address_space: int | None
    cpu_seconds: int | None
    processes: int | None
    file_size: int | None


@dataclass
class Config:
    """Everything the jail needs, sent as one JSON argument. Paths are absolute, resolved."""

    argv: list[str]
    cwd: str
    uid: int
    gid: int
    rlimits: Rlimits
    hide: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)  # re-mounted read-only inside hidden ones
    writable: list[str] = field(default_factory=list)  # re-mounted read-write
    read_only: list[str] = field(default_factory=list)  # data: made read-only where it is
    shm_bytes: int = SHM_BYTES
    output_fd: int | None = None  # becomes the worker's stdout and stderr
    #: the only supplementary groups the worker keeps: those of the GPU's device files
    #: when they are not open to everyone (:func:`dlgrade.gpu.device_groups`)
    groups: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        raw = json.loads(text)
        raw["rlimits"] = Rlimits(**raw["rlimits"])
        return cls(**raw)


# -- the trusted side: is the jail available, which uid, which paths -----------------------


@dataclass(frozen=True)
class Support:
    """Whether this machine can jail workers, and if not, why not (said once, loudly)."""

    namespaces: bool
    why_not: str = ""


@functools.cache
def support() -> Support:
    """Probe once per process: root, ``unshare``, and a tmpfs mount plus uid drop inside."""
    if not sys.platform.startswith("linux"):
        return Support(False, f"namespaces are Linux-only (this is {sys.platform})")
    if os.geteuid() != 0:
        return Support(False, "not running as root, so no namespaces and no uid drop")
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if unshare is None:
        return Support(False, "the unshare command (util-linux) is not installed")
    command = [unshare, "--net", *UNSHARE_FLAGS, "--", *python_command(), "--probe"]
    try:
        probe = subprocess.run(command, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Support(False, f"unshare failed to run: {exc}")
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).decode(errors="replace").strip()[-300:]
        return Support(False, f"unshare/mount failed here (exit {probe.returncode}): {detail}")
    return Support(True)


def python_command() -> list[str]:
    """How to run this file as the jail: by path, isolated, without site-packages."""
    return [sys.executable, "-I", "-S", "-B", str(Path(__file__).resolve())]


def die_with_grader(command: list[str]) -> list[str]:
    """``command``, run so that it is killed when the process starting it dies.

    A grader killed with ``kill -9`` (or a pytest-xdist worker that crashes) must not leave
    its worker behind, spinning in a student's infinite loop: this file sets SIGKILL as the
    parent-death signal, then execs ``command`` (``unshare``, or the worker itself), whose
    own child dies with it in turn. Linux sends the signal when the *thread* that started
    the process ends, so start workers from a thread that lives as long as the grader.
    """
    return [*python_command(), "--die-with", str(os.getpid()), "--", *command]


def _die_with(argv: list[str]) -> None:
    """``--die-with PID -- COMMAND...``: exec COMMAND with SIGKILL as parent-death signal."""
    parent, separator, command = int(argv[0]), argv[1], argv[2:]
    if separator != "--" or not command:
        raise ValueError("usage: --die-with PID -- COMMAND [ARG...]")
    if _libc().prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise JailError("prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the grader died before the signal was set
        os._exit(70)
    os.execv(command[0], command)


def unshare_command(config: Config, *, network: bool) -> list[str]:
    net = () if network else ("--net",)
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin") or "unshare"
    return [unshare, *net, *UNSHARE_FLAGS, "--", *python_command(), config.to_json()]


class UidLease:
    """A worker uid held for one session through a lock file (released when closed)."""

    def __init__(self) -> None:
        UID_LOCK_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        for offset in range(WORKER_UID_COUNT):
            uid = WORKER_UID_FIRST + offset
            fd = os.open(UID_LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid = self.gid = uid
            self._fd: int | None = fd
            return
        raise OSError(f"all {WORKER_UID_COUNT} worker uids are in use")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def traversable(path: Path) -> bool:
    """Whether a process that is neither the owner nor in the group may enter ``path``."""
    try:
        return bool(path.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def plan_hidden(hide: list[Path], keep: list[Path]) -> list[str]:
    """The folders to cover: those asked for, the shared writable places, and each ancestor
    of a kept path that the worker's uid could not enter (``/root`` holding a pyenv Python).

    A folder inside a kept one is not covered; one that holds kept paths is covered and the
    kept paths are mounted back inside it.
    """
    wanted = {Path(os.path.realpath(p)) for p in hide}
    wanted |= {Path(p) for p in SHARED_WRITABLE}
    wanted.add(Path(os.path.realpath(tempfile.gettempdir())))
    for path in keep:
        for ancestor in reversed(path.parents):
            if ancestor != Path("/") and not traversable(ancestor):
                wanted.add(ancestor)
                break
    chosen = []
    for path in sorted(wanted, key=lambda p: len(p.parts)):
        if str(path) in NEVER_HIDDEN or not path.is_dir():
            continue
        if any(path == k or k in path.parents for k in keep):
            continue
        chosen.append(str(path))
    return chosen


# -- the bootstrap (root, inside the namespaces) -------------------------------------------


class JailError(Exception):
    """A step of the jail failed; the worker is not started."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = _libc()
    encode = lambda s: s.encode() if s is not None else None  # noqa: E731
    result = libc.mount(
        encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data or None)
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise JailError(f"mount {source or ''} on {target}: {os.strerror(errno)}")


def _read_only(target: str) -> None:
    _mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _under(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def build_mounts(config: Config) -> None:
    """Hide, re-mount what is kept, make data read-only, give a private /dev/shm."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    kept = sorted(set(config.keep) | set(config.writable) | set(config.read_only), key=len)
    # Open what must stay reachable before anything covers it.
    handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept}
    bound: set[str] = set()
    for folder in sorted(config.hide, key=len):
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue  # already covered by an outer folder, or never there
        _mount("tmpfs", folder, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
        inside = [p for p in kept if _under(p, folder)]
        for path in inside:
            if any(_under(path, other) for other in inside):
                continue  # comes along with the kept folder that holds it
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{handles[path]}", path, None, _MS_BIND | _MS_REC)
            bound.add(path)
        _read_only(folder)
    for path in sorted(set(config.keep) | set(config.read_only), key=len):
        if path in config.writable or not os.path.isdir(path):
            continue
        if path not in bound:
            _mount(path, path, None, _MS_BIND | _MS_REC)
        _read_only(path)
    for fd in handles.values():
        os.close(fd)
    if os.path.isdir("/dev/shm"):
        _mount(
            "tmpfs",
            "/dev/shm",
            "tmpfs",
            _MS_NOSUID | _MS_NODEV,
            f"mode=1777,size={config.shm_bytes}",
        )


def set_limits(limits: Rlimits, *, processes_already: int = 0) -> None:
    """Apply the resource limits to this process (inherited by everything it starts).

    ``processes_already``: RLIMIT_NPROC counts every process of the real uid, so a worker
    that shares the grader's uid (the fallback) needs room for the ones already running.
    """
    if limits.address_space is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space, limits.address_space))
    if limits.cpu_seconds is not None:
        # SIGXCPU at the soft limit; SIGKILL at the hard one if SIGXCPU is caught or ignored
        # (a namespace's PID 1 ignores it).
        cpu = (limits.cpu_seconds, limits.cpu_seconds + 2)
        resource.setrlimit(resource.RLIMIT_CPU, cpu)
    if limits.processes is not None:
        count = limits.processes + processes_already
        resource.setrlimit(resource.RLIMIT_NPROC, (count, count))
    if limits.file_size is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size, limits.file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def count_tasks(uid: int) -> int:
    """Processes and threads the real uid ``uid`` runs now (what RLIMIT_NPROC counts)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                total += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:  # gone meanwhile
            continue
    return total


def resident_bytes(uid: int | None = None, root: int | None = None) -> int:
    """Host memory held by the processes of ``uid`` (a jailed worker's own uid), or else of
    the process tree under ``root``: their anonymous and shared-memory resident pages (not
    the libraries they map, which the machine can drop and read again)."""
    if uid is not None:
        pids = []
        for entry in os.scandir("/proc"):
            try:
                if entry.name.isdigit() and entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    elif root is not None:
        pids, stack = [], [root]
        while stack:
            pid = stack.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as children:
                        stack += [int(c) for c in children.read().split()]
            except OSError:
                continue
    else:
        return 0
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith(("RssAnon:", "RssShmem:")):
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


def drop_privileges(uid: int, gid: int, groups: list[int] | tuple[int, ...] = ()) -> None:
    os.setgroups(list(groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise JailError(f"could not drop to uid {uid}")
    libc = _libc()
    # No setuid binary may raise privileges again; and changing uid cleared the parent-death
    # signal `unshare --kill-child` set: set it again, so that killing unshare kills us.
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise JailError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise JailError("prctl(PR_SET_PDEATHSIG) failed")


def run(config: Config) -> None:
    """Lock this process in and become the worker (does not return)."""
    os.umask(0o022)  # the folders made for kept paths must be enterable by the worker
    build_mounts(config)
    set_limits(config.rlimits)
    os.setsid()  # the submission can reach no process group outside the namespace
    os.chdir(config.cwd)
    drop_privileges(config.uid, config.gid, config.groups)
    if config.output_fd is not None:  # until here, our messages went to the grader's log
        os.dup2(config.output_fd, 1)
        os.dup2(config.output_fd, 2)
        os.close(config.output_fd)
    os.execv(config.argv[0], config.argv)


def probe() -> None:
    """What the trusted side's probe runs: cover the temp folder (privately), drop the uid."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    folder = tempfile.gettempdir()
    _mount("tmpfs", folder, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k")
    _read_only(folder)
    drop_privileges(WORKER_UID_FIRST - 1, WORKER_UID_FIRST - 1)


def main(argv: list[str]) -> int:
    try:
        if argv[1:] == ["--probe"]:
            probe()
            return 0
        if argv[1:2] == ["--die-with"]:
            _die_with(argv[2:])
        run(Config.from_json(argv[1]))
    except (JailError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        print(f"dlgrade jail: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 70
    return 0  # not reached: run() replaced this process with the worker


if __name__ == "__main__":
    sys.exit(main(sys.argv))
