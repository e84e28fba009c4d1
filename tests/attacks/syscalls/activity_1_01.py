"""Attack: widen the kernel's attack surface with calls no activity needs.

Tracing, reading another process's memory, keyrings, eBPF, perf events, userfaultfd,
io_uring, new namespaces, mounts, modules: each is tried once (through ctypes, as native
code would) and what the kernel answered is printed as ``name: ERRNO`` (``name: ALLOWED``
when it worked). The calls are harmless when refused; ptrace(PTRACE_TRACEME) comes last.
Expected: every one fails with EPERM (the syscall filter), and the worker goes on.
"""

import ctypes
import errno
import os
import platform

NUMBERS = {  # x86_64 and aarch64 system call numbers
    "x86_64": {
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
        "perf_event_open": 298, "process_vm_readv": 310, "process_vm_writev": 311,
        "userfaultfd": 323, "io_uring_setup": 425, "setns": 308, "unshare": 272,
        "mount": 165, "init_module": 175, "kexec_load": 246, "open_by_handle_at": 304,
        "ptrace": 101,
    },
    "aarch64": {
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280,
        "perf_event_open": 241, "process_vm_readv": 270, "process_vm_writev": 271,
        "userfaultfd": 282, "io_uring_setup": 425, "setns": 268, "unshare": 97,
        "mount": 40, "init_module": 105, "kexec_load": 104, "open_by_handle_at": 265,
        "ptrace": 117,
    },
}.get(platform.machine(), {})
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
UFFD_USER_MODE_ONLY = 1
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
buffer = ctypes.create_string_buffer(256)
iovec = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 16)
CALLS = [  # (name, arguments): each harmless if it works
    ("keyctl", (0, -3, 0)),  # KEYCTL_GET_KEYRING_ID of the session keyring
    ("add_key", (b"user", b"dlgrade-probe", b"x", 1, -3)),
    ("request_key", (b"user", b"dlgrade-probe", None, 0)),
    ("bpf", (0, buffer, 72)),  # BPF_MAP_CREATE with an empty attribute
    ("perf_event_open", (buffer, 0, -1, -1, 0)),
    ("process_vm_readv", (os.getpid(), iovec, 1, iovec, 1, 0)),
    ("process_vm_writev", (os.getpid(), iovec, 1, iovec, 1, 0)),
    ("userfaultfd", (UFFD_USER_MODE_ONLY,)),
    ("io_uring_setup", (1, buffer)),
    ("setns", (-1, 0)),
    ("mount", (b"none", b"/dev/shm", b"tmpfs", 0, b"size=4g")),
    ("init_module", (None, 0, b"")),
    ("kexec_load", (0, 0, None, 0)),
    ("open_by_handle_at", (-100, buffer, 0)),
    ("unshare", (CLONE_NEWUSER,)),
    ("unshare", (CLONE_NEWNS,)),
    ("ptrace", (0, 0, 0, 0)),  # PTRACE_TRACEME: last, it changes how signals reach us
]
_answers: list[str] = []


def attack() -> list[str]:
    answers = []
    # a new user namespace through clone's flags, as a forking library would ask
    pid = libc.syscall({"x86_64": 56, "aarch64": 220}.get(platform.machine(), -1),
                       CLONE_NEWUSER | 17, None, None, None, None)  # SIGCHLD
    if pid == 0:
        os._exit(0)
    answers.append("clone(CLONE_NEWUSER): " + (
        "ALLOWED" if pid > 0 else errno.errorcode.get(ctypes.get_errno(), "?")))
    if pid > 0:
        os.waitpid(pid, 0)
    for name, args in CALLS:
        if name not in NUMBERS:
            answers.append(f"{name}: UNKNOWN ARCHITECTURE")
            continue
        ctypes.set_errno(0)
        result = libc.syscall(NUMBERS[name], *args)
        if result >= 0:
            answers.append(f"{name}: ALLOWED")
            if name in ("userfaultfd", "io_uring_setup", "perf_event_open"):
                os.close(result)
        else:
            answers.append(f"{name}: {errno.errorcode.get(ctypes.get_errno(), '?')}")
    return answers


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    if not _answers:  # once per worker: the first call's answers
        _answers.extend(attack())
    print("\n".join(_answers))
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
