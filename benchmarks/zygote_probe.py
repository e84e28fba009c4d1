"""Can a trusted zygote import TensorFlow once and fork each student's jailed worker from it?

Issue 26 asks what TensorFlow and the jail allow before a zygote is built. This probe answers
with measurements, on this machine, as root (the jail's own mode):

* **fresh** — today's worker start: a new ``unshare --net --ipc --uts --mount --pid --fork
  --mount-proc`` process that imports TensorFlow, then does a small seeded Keras fit;
* **zygote** — one trusted process imports TensorFlow (and numpy, Keras) once; for each
  "student" it forks, and the child, single-threaded after ``fork()``, enters new network,
  IPC, UTS, mount and PID namespaces (``unshare(2)``), forks again to be the namespace's PID
  1, mounts its own ``/proc``, caps IPC, joins a new session keyring, drops to an
  unprivileged uid, clears its keyrings and loads the syscall filter — the steps of
  :func:`dlgrade.sandbox.jail.run` — and then does the same fit.

It reports the threads the zygote holds when it forks (a fork copies only the calling thread:
any lock another thread holds stays locked in the child), the time per student of each way,
whether the fits agree bit for bit, what the forked child sees of the jail (its PID, the
processes in its ``/proc``, a network socket, its uid, the syscall filter), and where Keras
looks for its files (``KERAS_HOME`` is read when Keras is imported, so a forked child keeps
the zygote's unless it is set again).

Run: ``sudo .venv/bin/python benchmarks/zygote_probe.py --students 4`` (root: namespaces).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dlgrade.sandbox import jail  # noqa: E402  (stdlib only: cheap)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

#: the student's work in both ways: a seeded fit whose weights are hashed
WORK = """
import hashlib, os, numpy as np, keras
keras.utils.set_random_seed(7)
x = np.random.default_rng(7).normal(size=(256, 16)).astype("float32")
y = (x.sum(axis=1) > 0).astype("float32")
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(x, y, epochs=3, batch_size=32, verbose=0)
digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()[:16]
"""


def thread_names() -> list[str]:
    names = []
    for tid in sorted(os.listdir("/proc/self/task")):
        try:
            names.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip())
        except OSError:
            continue
    return names


def fresh(python: str, env: dict) -> dict:
    """One worker as today: a new process in new namespaces that imports TensorFlow."""
    code = (
        "import time, json; t = time.perf_counter(); import tensorflow; "
        "imported = time.perf_counter() - t\n" + WORK + "\nprint(json.dumps("
        "{'digest': digest, 'import_s': imported}))"
    )
    command = ["unshare", *jail.UNSHARE_FLAGS, "--net", "--", python, "-c", code]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"fresh worker failed ({done.returncode}):\n{done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **found}


def _jailed_child(write_fd: int, keras_home: str) -> None:
    """In the forked child: enter the jail as jail.run does, then do the work."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(NAMESPACES) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    pid = os.fork()  # the PID namespace holds the children of the caller, not the caller
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status))
    jail._mount(None, "/", None, jail._MS_REC | jail._MS_PRIVATE)
    jail._mount("proc", "/proc", "proc", jail._MS_NOSUID | jail._MS_NODEV)
    jail.cap_ipc()
    jail.join_new_session_keyring()
    os.setsid()
    uid = jail.WORKER_UID_FIRST - 2
    jail.drop_privileges(uid, uid)
    jail.clear_own_keyrings()
    denied = jail.load_syscall_filter()
    seen = {
        "pid": os.getpid(),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "uid": os.getuid(),
        "denied_syscalls": denied,
        "threads_in_child": len(os.listdir("/proc/self/task")),
    }
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
        seen["network"] = "reachable"
    except OSError as exc:
        seen["network"] = f"refused ({exc.__class__.__name__})"
    import keras.src.backend.config as keras_config  # already imported by the zygote

    seen["keras_home_inherited"] = keras_config.keras_home()
    seen["keras_home_wanted"] = keras_home
    scope: dict = {}
    exec(WORK, scope)  # the probe's own fixed code; no student code here
    seen["digest"] = scope["digest"]
    os.write(write_fd, json.dumps(seen).encode())
    os._exit(0)


def zygote_child(keras_home: str) -> dict:
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _jailed_child(write_fd, keras_home)
        except BaseException as exc:  # noqa: BLE001 — report any failure to the parent
            os.write(write_fd, json.dumps({"error": repr(exc)}).encode())
            os._exit(70)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter() - started
    found = json.loads(b"".join(chunks) or b'{"error": "no answer"}')
    return {"wall_s": wall, "exit": os.waitstatus_to_exitcode(status), **found}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=4)
    args = parser.parse_args()
    if os.geteuid() != 0 or not jail.support().namespaces:
        print("zygote_probe: needs root and namespaces (the jail's own mode)", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="dlgrade-zygote-"))
    zygote_home = scratch / "zygote-keras"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "KERAS_HOME": str(scratch / "fresh-keras"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
    }
    try:
        fresh_runs = [fresh(sys.executable, env) for _ in range(args.students)]

        os.environ.update(env, KERAS_HOME=str(zygote_home))
        started = time.perf_counter()
        import keras  # noqa: F401
        import numpy  # noqa: F401
        import tensorflow  # noqa: F401

        zygote_import = time.perf_counter() - started
        threads = thread_names()
        zygote_runs = [zygote_child(str(scratch / f"student-{i}")) for i in range(args.students)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def summary(runs):
        walls = [r["wall_s"] for r in runs]
        return f"median {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f})"

    errors = [r for r in zygote_runs if "error" in r or r.get("exit")]
    print(f"threads in the zygote at fork: {len(threads)} {threads}")
    print(f"zygote's one import of numpy + TensorFlow + Keras: {zygote_import:.2f} s")
    print(f"fresh worker per student (new process, TF import, fit): {summary(fresh_runs)}")
    print(
        "  of which TensorFlow's import: "
        f"median {statistics.median(r['import_s'] for r in fresh_runs):.2f} s"
    )
    if errors:
        print(f"zygote children FAILED: {errors}")
        return 1
    print(f"zygote child per student (fork, jail, fit): {summary(zygote_runs)}")
    ratio = statistics.median(r["wall_s"] for r in fresh_runs) / statistics.median(
        r["wall_s"] for r in zygote_runs
    )
    print(f"per-student speed-up: {ratio:.1f}x")
    digests = {r["digest"] for r in fresh_runs} | {r["digest"] for r in zygote_runs}
    print(f"fits agree bit for bit across all {2 * args.students} runs: {len(digests) == 1}")
    child = zygote_runs[0]
    print(
        f"what a forked child sees: pid {child['pid']}, processes {child['processes']}, "
        f"uid {child['uid']}, network {child['network']}, "
        f"{child['denied_syscalls']} syscalls denied, threads {child['threads_in_child']}"
    )
    print(
        f"KERAS_HOME: the child's Keras still uses the zygote's {child['keras_home_inherited']}"
        f" (wanted its own {child['keras_home_wanted']}): it must be set again after the fork"
        if child["keras_home_inherited"] != child["keras_home_wanted"]
        else "KERAS_HOME: the child's own"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
