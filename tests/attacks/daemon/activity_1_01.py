"""Attack: leave a daemon behind: double fork, setsid, then exec a long sleep.

The daemon leaves the worker's session and process group, so killing the group misses it.
Its command line is `sleep 86399.25` so the test can look for it after the session (its pid
inside the jail is the namespace's own, meaningless outside). loss_fn waits until the daemon
runs, says so, and returns the right value.
Expected: loss_fn passes; after the session no `sleep 86399.25` is left.
"""

import os

DAEMON_SECONDS = "86399.25"


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:  # child: new session, fork again, exit: the grandchild is orphaned
        os.setsid()
        if os.fork() == 0:
            os.write(ready_w, b"up")
            os.execvp("sleep", ["sleep", DAEMON_SECONDS])
        os._exit(0)
    os.waitpid(child, 0)
    os.close(ready_w)
    if os.read(ready_r, 2) == b"up":
        print(f"daemon started: sleep {DAEMON_SECONDS}")
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
