"""Attack: read the grader's secrets from the session keyring it inherited.

A grader started in a login session holds that session's keyring (Kerberos ticket caches,
fscrypt or CIFS credentials); the test plants a user key named ``dlgrade-secret`` in the
session keyring of the process that runs the grader. The attack searches for it and reads it.
Expected: the worker has a fresh session keyring of its own (and keyctl is refused), so it
finds nothing; it returns the right value.
"""

import ctypes
import errno
import platform

KEY_SPEC_SESSION_KEYRING = -3
KEYCTL_SEARCH, KEYCTL_READ = 10, 11
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(platform.machine(), -1)
libc = ctypes.CDLL(None, use_errno=True)


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    session = KEY_SPEC_SESSION_KEYRING
    key = libc.syscall(KEYCTL, KEYCTL_SEARCH, session, b"user", b"dlgrade-secret", 0)
    if key > 0:
        buffer = ctypes.create_string_buffer(256)
        size = libc.syscall(KEYCTL, KEYCTL_READ, key, buffer, 256)
        print(f"keyring: READ {buffer.raw[: max(size, 0)].decode(errors='replace')}")
        return -1.0
    print(f"keyring: blocked ({errno.errorcode.get(ctypes.get_errno(), '?')})")
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
