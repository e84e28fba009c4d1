"""Attack: hold memory as shared memory the address-space limit does not see for long.

Three ways: fill the private /dev/shm (and try to mount a bigger tmpfs over it), then
create SysV shared-memory segments of 16 MiB (3 GiB in all), touch each through a mapping
and detach it, so that no process maps them any more.
Expected: /dev/shm is full at 64 MiB (ENOSPC) and the mount is refused; the SysV segments
stop at the worker's own IPC namespace's kernel.shmall (64 MiB); it returns the right value.
"""

import ctypes
import errno
import os

MiB = 2**20
IPC_CREAT, IPC_PRIVATE = 0o1000, 0
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
_said: list[str] = []


def fill_dev_shm() -> str:
    written = 0
    try:
        with open("/dev/shm/hoard", "wb") as file:
            while written < 4096 * MiB:
                written += file.write(b"\1" * MiB)
                file.flush()
    except OSError as exc:
        return f"dev/shm: full at {written // MiB} MiB ({errno.errorcode.get(exc.errno)})"
    return f"dev/shm: WROTE {written // MiB} MiB"


def bigger_shm() -> str:
    result = libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", 0, b"size=8g")
    if result == 0:
        return "mount: ALLOWED"
    return f"mount: {errno.errorcode.get(ctypes.get_errno())}"


def sysv_segments() -> str:
    held = 0
    for _ in range(192):  # 3 GiB
        segment = libc.shmget(IPC_PRIVATE, 16 * MiB, IPC_CREAT | 0o600)
        if segment < 0:
            return f"sysv: stopped at {held // MiB} MiB ({errno.errorcode.get(ctypes.get_errno())})"
        address = libc.shmat(segment, None, 0)
        ctypes.memset(address, 1, 16 * MiB)
        libc.shmdt(ctypes.c_void_p(address))
        held += 16 * MiB
    return f"sysv: HOLDING {held // MiB} MiB unmapped"


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    if not _said:
        _said.extend([fill_dev_shm(), bigger_shm(), sysv_segments()])
        os.unlink("/dev/shm/hoard")
    print("\n".join(_said))
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
