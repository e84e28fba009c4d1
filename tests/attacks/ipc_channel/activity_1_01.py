"""Attack: a copying channel between students that needs no file.

The first student's worker leaves the answers in a SysV shared-memory segment, a SysV
message queue (both mode 0666), a POSIX message queue and its uid's user keyring; a later
student's worker, under another uid or the same one, looks for all four. The same file is
handed in by both students: a worker that finds nothing plants, one that finds another
worker's plant prints it and returns a wrong value.
Expected: the IPC namespace makes the SysV and POSIX objects die with each worker, the
syscall filter refuses keyctl and add_key (and a leftover user keyring is cleared), so the
later student finds nothing and nothing is left after the class run.
"""

import ctypes
import os
import platform

KEY = 0x646C6731  # "dlg1"
QUEUE = b"/dlgrade-ipc-channel"
KEY_NAME = b"dlgrade-ipc-channel"
IPC_CREAT, IPC_NOWAIT = 0o1000, 0o4000
O_RDONLY, O_RDWR, O_CREAT, O_NONBLOCK = 0, 2, 0o100, 0o4000
KEY_SPEC_USER_KEYRING = -4
KEYCTL_SEARCH, KEYCTL_READ = 10, 11
ADD_KEY, KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(platform.machine(), (-1, -1))
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
ME = f"uid={os.getuid()} worker={os.urandom(4).hex()}".encode()
_planted = False


def _found() -> list[str]:
    """What another worker left, as `how: payload`."""
    found = []
    shm = libc.shmget(KEY, 0, 0)
    if shm >= 0:
        address = libc.shmat(shm, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            found.append(f"shm: {ctypes.string_at(address)!r}")
            libc.shmdt(ctypes.c_void_p(address))
    queue = libc.msgget(KEY, 0)
    if queue >= 0:
        buffer = ctypes.create_string_buffer(8 + 256)
        size = libc.msgrcv(queue, buffer, 256, ctypes.c_long(0), IPC_NOWAIT)
        found.append(f"msg: {buffer.raw[8 : 8 + max(size, 0)]!r}")
    mq = libc.mq_open(QUEUE, O_RDONLY | O_NONBLOCK)
    if mq >= 0:
        buffer = ctypes.create_string_buffer(8192)
        size = libc.mq_receive(mq, buffer, ctypes.c_size_t(8192), None)
        found.append(f"mq: {buffer.raw[: max(size, 0)]!r}")
    key = libc.syscall(KEYCTL, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user", KEY_NAME, 0)
    if key > 0:
        buffer = ctypes.create_string_buffer(256)
        size = libc.syscall(KEYCTL, KEYCTL_READ, key, buffer, 256)
        found.append(f"user keyring: {buffer.raw[: max(size, 0)]!r}")
    return [f for f in found if ME.decode() not in f]


def _plant() -> None:
    payload = b"answers: 42 " + ME
    shm = libc.shmget(KEY, 4096, IPC_CREAT | 0o666)
    if shm >= 0:
        address = libc.shmat(shm, None, 0)
        ctypes.memmove(address, payload + b"\0", len(payload) + 1)
        libc.shmdt(ctypes.c_void_p(address))
    queue = libc.msgget(KEY, IPC_CREAT | 0o666)
    if queue >= 0:
        message = ctypes.create_string_buffer(8 + len(payload))
        ctypes.memmove(ctypes.addressof(message), ctypes.byref(ctypes.c_long(1)), 8)
        ctypes.memmove(ctypes.addressof(message) + 8, payload, len(payload))
        libc.msgsnd(queue, message, len(payload), IPC_NOWAIT)
    mq = libc.mq_open(QUEUE, O_RDWR | O_CREAT | O_NONBLOCK, 0o666, None)
    if mq >= 0:
        libc.mq_send(mq, payload, ctypes.c_size_t(len(payload)), 0)
    key = libc.syscall(ADD_KEY, b"user", KEY_NAME, payload, len(payload), KEY_SPEC_USER_KEYRING)
    print(f"planted: shm {shm}, msg {queue}, mq {mq}, user key {key}")


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    global _planted
    found = _found()
    for line in found:
        print(f"FOUND {line}")
    if found:
        return -1.0
    if not _planted:
        _plant()
        _planted = True
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
