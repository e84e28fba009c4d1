"""The jail: a trusted bootstrap that locks the worker in before any student code runs.

:mod:`dlgrade.sandbox` starts every worker, when it runs as root and namespaces work, as ::

    unshare --net --ipc --uts --mount --pid --fork --mount-proc --kill-child -- \\
        python -I -S -B .../dlgrade/sandbox/jail.py CONFIG_JSON

Still root, inside the new namespaces, :func:`main` makes every mount private, covers each
folder the worker must not see with an empty read-only tmpfs (re-mounting inside it only the
paths the worker needs: the Python install, the dlgrade package, its own session folder),
makes the data mirror and cache read-only, gives it a small private ``/dev/shm``, caps SysV
IPC in its own IPC namespace, joins a fresh session keyring, sets the resource limits, drops
to an unprivileged uid, clears that uid's own keyrings, loads the syscall filter
(libseccomp, through ctypes) and ``exec``\\ s the worker as the namespace's PID 1, so
killing it kills every process the submission started.

Stdlib only, and run by path with ``-I -S``: the trusted side imports it too, and the jail
itself runs before the virtual environment is on ``sys.path``. Elsewhere (not root, or no
namespaces) the worker sets the same resource limits on itself (:func:`set_limits`).
"""

from __future__ import annotations

import ctypes
import errno
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
import threading
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
#: all the SysV shared memory a worker's IPC namespace may hold (kernel.shmall there): a
#: segment no process attaches is in no process's memory, so the sampler cannot see it
SYSV_SHM_BYTES = 64 * 1024 * 1024
#: SysV message queues of a worker's IPC namespace (kernel.msgmni): 16 KiB each at most
SYSV_MSG_QUEUES = 16
UNSHARE_FLAGS = ("--ipc", "--uts", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child")

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
    #: load the syscall filter before exec (the trusted side found libseccomp); the jail
    #: fails rather than start the worker without it
    syscall_filter: bool = False

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
    #: whether the jail filters system calls (libseccomp loaded and a filter took), and why not
    syscall_filter: bool = False
    filter_why_not: str = ""


@functools.cache
def support() -> Support:
    """Probe once per process: root, ``unshare``, and inside it a tmpfs mount, the IPC
    caps, a fresh session keyring, the uid drop and the syscall filter."""
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
    said = probe.stdout.decode(errors="replace")
    if PROBE_FILTER_OK in said:
        return Support(True, syscall_filter=True)
    why = said.split(PROBE_FILTER_OFF, 1)[-1].strip()[:300] if PROBE_FILTER_OFF in said else ""
    return Support(True, filter_why_not=why or "the probe did not say why")


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


def popen_from_lasting_thread(command: list[str], name: str, **options) -> subprocess.Popen:
    """``subprocess.Popen(command, **options)`` started from a thread of its own that never
    ends: Linux sends a parent-death signal when the *thread* that started the process ends,
    so a process that must live as long as this one (a zygote, a grading server) is started
    there. Raises the ``OSError`` the start raised."""
    started: list = []
    ready = threading.Event()

    def start() -> None:
        try:
            started.append(subprocess.Popen(command, **options))
        except OSError as exc:
            started.append(exc)
        ready.set()
        threading.Event().wait()

    threading.Thread(target=start, name=name, daemon=True).start()
    ready.wait()
    if isinstance(started[0], OSError):
        raise started[0]
    return started[0]


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


# -- IPC, keyrings and the syscall filter (root first, then the worker uid) ----------------

#: keyctl's number where the kernel has no libc wrapper for it (glibc has none)
_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219}
_KEYCTL_JOIN_SESSION_KEYRING, _KEYCTL_CLEAR = 1, 7
_KEY_SPEC_USER_KEYRING, _KEY_SPEC_USER_SESSION_KEYRING = -4, -5


def cap_ipc(shm_bytes: int = SYSV_SHM_BYTES, queues: int = SYSV_MSG_QUEUES) -> None:
    """Bound the SysV IPC of this (new, private) IPC namespace: what no process maps is in
    no process's memory, so only the namespace's own limits hold it."""
    pages = max(1, shm_bytes // os.sysconf("SC_PAGE_SIZE"))
    for name, value in (("shmmax", shm_bytes), ("shmall", pages), ("msgmni", queues)):
        try:
            with open(f"/proc/sys/kernel/{name}", "w") as sysctl:
                sysctl.write(str(value))
        except OSError as exc:
            raise JailError(f"could not set kernel.{name} in the worker's IPC namespace: {exc}")


def _keyctl(*args: int | None) -> int:
    number = _KEYCTL.get(os.uname().machine)
    if number is None:
        raise JailError(f"keyctl's system call number on {os.uname().machine} is not known")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a or 0) for a in args])


def join_new_session_keyring() -> None:
    """Leave the grader's session keyring (its Kerberos tickets, fscrypt and CIFS keys) for
    a new, empty, anonymous one: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)."""
    if _keyctl(_KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        code = ctypes.get_errno()
        if code != errno.ENOSYS:  # a kernel without keyrings has none to leak
            raise JailError(f"could not join a new session keyring: {os.strerror(code)}")


def clear_own_keyrings() -> None:
    """Empty the worker uid's user keyrings, which outlive sessions: a uid is lent to one
    session after another, and a key left there would reach the next student."""
    for keyring in (_KEY_SPEC_USER_KEYRING, _KEY_SPEC_USER_SESSION_KEYRING):
        if _keyctl(_KEYCTL_CLEAR, keyring) < 0:
            code = ctypes.get_errno()
            if code != errno.ENOSYS:
                raise JailError(f"could not clear the worker uid's keyring: {os.strerror(code)}")


#: denied with EPERM in every jailed worker (docs/security.md says why each is safe to deny);
#: a name this machine's libseccomp does not know is skipped
DENIED_SYSCALLS = (
    # other processes' memory and tracing
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
    "kcmp",
    # keyrings (the grader's credentials live there)
    "keyctl", "add_key", "request_key",
    # kernel attack surface unprivileged code can still reach
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "modify_ldt", "uselib",
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "open_tree", "mount_setattr",
    # files by handle, bypassing paths
    "name_to_handle_at", "open_by_handle_at",
    # the machine's own business
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "lookup_dcookie",
    "fanotify_init", "iopl", "ioperm", "syslog", "clock_settime", "clock_adjtime",
    "settimeofday", "sethostname", "setdomainname", "vhangup", "nfsservctl",
)  # fmt: skip
#: clone() flags that make namespaces: refused as unshare is (a user namespace is the door
#: to mounts and much kernel surface); clone3 takes its flags in memory a filter cannot
#: read, so it gets ENOSYS and glibc falls back to clone()
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_MASKED_EQ = 7
PROBE_FILTER_OK = "syscall filter: on"
PROBE_FILTER_OFF = "syscall filter: off:"


def _scmp_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _libseccomp():
    """libseccomp (Debian's libseccomp2), or None where it cannot be loaded."""
    for name in ("libseccomp.so.2", "libseccomp.so"):
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
        ]  # fmt: skip
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        return lib
    return None


def syscall_numbers(names: tuple[str, ...] = DENIED_SYSCALLS) -> dict[str, int] | None:
    """The names this machine's libseccomp knows, with their numbers; None without it."""
    lib = _libseccomp()
    if lib is None:
        return None
    found = {}
    for name in names:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # negative: not a call of this architecture (or not known)
            found[name] = number
    return found


def load_syscall_filter() -> int:
    """Deny :data:`DENIED_SYSCALLS` (and namespace-making clones) to this process and all it
    starts, with EPERM, so that libraries that probe for a call see "not allowed" and carry
    on; returns how many calls are denied. System calls of another ABI (i386 through
    ``int 0x80``, x32) kill the process: libseccomp's default for a foreign architecture."""
    lib = _libseccomp()
    if lib is None:
        raise JailError("libseccomp cannot be loaded, so the syscall filter cannot be")
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise JailError("seccomp_init failed")
    try:
        numbers = syscall_numbers()
        deny = _scmp_errno(errno.EPERM)
        for name, number in numbers.items():
            if lib.seccomp_rule_add_array(ctx, deny, number, 0, None) != 0:
                raise JailError(f"seccomp_rule_add({name}) failed")
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag, bit in CLONE_NAMESPACE_FLAGS.items():
            # x86_64, aarch64 and the rest take clone()'s flags as the first argument
            test = (_ArgCmp * 1)(_ArgCmp(0, _SCMP_CMP_MASKED_EQ, bit, bit))
            if clone >= 0 and lib.seccomp_rule_add_array(ctx, deny, clone, 1, test) != 0:
                raise JailError(f"seccomp_rule_add(clone with {flag}) failed")
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 >= 0:
            if lib.seccomp_rule_add_array(ctx, _scmp_errno(errno.ENOSYS), clone3, 0, None) != 0:
                raise JailError("seccomp_rule_add(clone3) failed")
        result = lib.seccomp_load(ctx)
        if result != 0:
            raise JailError(f"seccomp_load failed: {os.strerror(-result)}")
        return len(numbers) + 1
    finally:
        lib.seccomp_release(ctx)


# -- the trusted side: what a worker holds in memory -------------------------------------


@dataclass(frozen=True)
class MemoryHeld:
    """What a worker's processes hold in the machine's memory, in bytes."""

    #: their anonymous resident pages (heap, stacks, private copies): RssAnon
    anonymous: int = 0
    #: shared-memory objects each counted once at their size, mapped or only held open:
    #: memfds, SysV segments attached, MAP_SHARED|MAP_ANONYMOUS regions
    files: int = 0
    #: what the worker's private /dev/shm tmpfs holds (its files, open or deleted)
    dev_shm: int = 0

    @property
    def total(self) -> int:
        return self.anonymous + self.files + self.dev_shm


#: how shared-memory objects are named in /proc/PID/fd links and /proc/PID/maps
_SHMEM_NAMES = ("/memfd:", "/SYSV", "/dev/zero (deleted)", "/dev/shm/")


def worker_pids(uid: int | None = None, root: int | None = None) -> list[int]:
    """The processes of ``uid`` (a jailed worker's own uid), or else the tree under ``root``."""
    if uid is not None:
        pids = []
        for entry in os.scandir("/proc"):
            try:
                if entry.name.isdigit() and entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids
    if root is None:
        return []
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
    return pids


def memory_held(
    pids: list[int], dev_shm: str | None = None, *, exact: bool = False, mappings: bool = True
) -> MemoryHeld:
    """Add up what ``pids`` hold: anonymous resident memory, every shared-memory object they
    map or hold open (once, at its allocated size: written but never mapped counts too),
    and the bytes in use in ``dev_shm`` (the worker's private tmpfs, reached as
    ``/proc/WORKER/root/dev/shm``; its files are counted there, not one by one).

    The processes' status and fd links are read; their maps (a TensorFlow worker's run to
    thousands of lines: most of the cost) only for a process with shared memory resident,
    or for all with ``mappings`` (what a process maps but never touched, written through an
    fd it then closed, is found only then). A forked child's copy-on-write pages are in its
    RssAnon and its parent's both; ``exact`` reads each process's proportional share
    instead (``Pss_Anon`` of ``smaps_rollup``, which walks the page tables: slower, so the
    trusted side asks for it only near the limit). Costs: benchmarks/sandbox_cost.py.
    """
    anonymous = 0
    seen: dict[tuple[int, int], int] = {}
    shm_dev = None
    used_shm = 0
    if dev_shm is not None:
        try:
            shm_dev = os.stat(dev_shm).st_dev
            fs = os.statvfs(dev_shm)
            used_shm = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        except OSError:
            shm_dev = None

    unreadable = 0  # shared memory of processes whose mappings could not be looked into

    def count(path: str) -> bool:
        try:
            info = os.stat(path)
        except OSError:
            return False
        key = (info.st_dev, info.st_ino)
        if key not in seen and info.st_dev != shm_dev:
            seen[key] = info.st_blocks * 512
        return True

    for pid in pids:
        rss = {}
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith(("RssAnon:", "RssShmem:")):
                        rss[line.split(":")[0]] = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
        if exact:
            rss["RssAnon"] = _proportional_anonymous(pid, rss.get("RssAnon", 0))
        anonymous += rss.get("RssAnon", 0)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(_SHMEM_NAMES):
                count(f"/proc/{pid}/fd/{fd}")
        if not mappings and not rss.get("RssShmem"):
            continue
        try:
            with open(f"/proc/{pid}/maps") as maps:
                text = maps.read()
        except OSError:
            continue
        if not any(name in text for name in _SHMEM_NAMES):
            continue
        looked = True
        for line in text.splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith(_SHMEM_NAMES):
                # map_files needs CAP_SYS_ADMIN (a root grader has it; the fallback may not)
                looked = count(f"/proc/{pid}/map_files/{fields[0]}") and looked
        if not looked:
            unreadable += rss.get("RssShmem", 0)
    return MemoryHeld(anonymous, sum(seen.values()) + unreadable, used_shm)


def _proportional_anonymous(pid: int, otherwise: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return otherwise  # a kernel before 5.9 has no Pss_Anon


def resident_bytes(uid: int | None = None, root: int | None = None) -> int:
    """Host memory held by the processes of ``uid`` or of the tree under ``root`` (see
    :func:`memory_held`; not the libraries they map, which the machine can drop and read
    again)."""
    return memory_held(worker_pids(uid, root)).total


def run(config: Config) -> None:
    """Lock this process in and become the worker (does not return)."""
    enter(config)
    os.execv(config.argv[0], config.argv)


def enter(config: Config) -> None:
    """Lock this process in: everything :func:`run` does before it ``exec``\\ s the worker
    (the zygote's child runs the worker in place instead; dlgrade/sandbox/zygote.py)."""
    os.umask(0o022)  # the folders made for kept paths must be enterable by the worker
    build_mounts(config)
    cap_ipc()
    join_new_session_keyring()
    set_limits(config.rlimits)
    os.setsid()  # the submission can reach no process group outside the namespace
    os.chdir(config.cwd)
    drop_privileges(config.uid, config.gid, config.groups)
    clear_own_keyrings()
    if config.syscall_filter:  # last: the jail itself needs mount, keyctl and setresuid
        load_syscall_filter()
    if config.output_fd is not None:  # until here, our messages went to the grader's log
        os.dup2(config.output_fd, 1)
        os.dup2(config.output_fd, 2)
        os.close(config.output_fd)


def probe() -> None:
    """What the trusted side's probe runs: cover the temp folder (privately), cap IPC, join
    a new session keyring, drop the uid; then try the syscall filter and say how it went
    (the jail works without it, and the report header says so)."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    folder = tempfile.gettempdir()
    _mount("tmpfs", folder, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k")
    _read_only(folder)
    cap_ipc()
    join_new_session_keyring()
    drop_privileges(WORKER_UID_FIRST - 1, WORKER_UID_FIRST - 1)
    clear_own_keyrings()
    try:
        denied = load_syscall_filter()
    except JailError as exc:
        print(f"{PROBE_FILTER_OFF} {exc}", flush=True)
    else:
        print(f"{PROBE_FILTER_OK} ({denied} calls denied)", flush=True)


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
