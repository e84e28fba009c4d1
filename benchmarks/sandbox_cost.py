"""What the sandbox costs per worker start, which mechanisms are active, and what memory
TensorFlow needs inside it, as tables.

Run: DLGRADE_DATA_DIR=../shared/data python benchmarks/sandbox_cost.py [--tensorflow]
Every figure comes from this one run (the machines are shared and noisy; compare ratios).
``--tensorflow`` adds the peak address space of TensorFlow workloads run in a jailed
worker (about two minutes): the numbers behind ``Limits.memory_bytes``.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine import timed  # benchmarks/ is on sys.path when this script runs

from dlgrade import gpu
from dlgrade.sandbox import Limits, WorkerSession, isolation_mode, jail

REPEAT = 10
PEAK = """
import numpy as np


def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024


def import_tensorflow():
    import keras  # noqa: F401
    import tensorflow as tf

    a = tf.random.normal((500, 500))
    (a @ a).numpy()
    return peak()


def train_mlp():  # Activity 2.01's model: 60-60-30-1 on 208 rows, 30 epochs
    import keras

    model = keras.Sequential([keras.Input((60,)), keras.layers.Dense(60, activation="relu"),
                              keras.layers.Dense(30, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    model.fit(np.random.rand(208, 60), np.random.randint(0, 2, 208), epochs=30, verbose=0)
    return peak()


def train_cnn():  # Activity 3.01's CNN, one epoch on 4,000 images
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.rand(4000, 28, 28, 1).astype("float32")
    model.fit(x, np.random.randint(0, 10, 4000), batch_size=16, epochs=1, verbose=0)
    return peak()


def train_vgg16_head():  # Activity 3.02's shape: frozen VGG16 on 100x100, 320 images
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(100, 100, 3))
    base.trainable = False
    model = keras.Sequential([base, keras.layers.Flatten(),
                              keras.layers.Dense(500, activation="relu"),
                              keras.layers.Dense(120, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.rand(320, 100, 100, 3).astype("float32")
    model.fit(x, np.random.randint(0, 120, 320), batch_size=16, epochs=1, verbose=0)
    return peak()
"""


def median_seconds(function, repeat: int = REPEAT) -> float:
    return timed(function, repeat)


def mechanisms() -> None:
    support = jail.support()
    print("mechanisms on this machine")
    print(f"  running as root                 {os.geteuid() == 0}")
    print(f"  unshare                         {shutil.which('unshare') or 'not installed'}")
    print(f"  namespaces (net, ipc, uts, mount, pid) {support.namespaces} {support.why_not}")
    print("  session keyring                 a new one per worker, the uid's own cleared")
    filtered = f"{len(jail.syscall_numbers() or {})} calls denied" if support.syscall_filter else ""
    print(f"  syscall filter (libseccomp)     {support.syscall_filter} {filtered}")
    print(f"  {'':32}{support.filter_why_not}")
    print(f"  isolation used                  {isolation_mode()}")
    print(f"  worker uids                     {jail.WORKER_UID_FIRST}+ (one per live session)")
    print("  cgroups                         not used (rlimits; see docs/security.md)")
    print(f"  GPUs (their workers: no RLIMIT_AS) {len(gpu.discover())}")
    print(f"  limits                          {Limits()}")
    print()


def start_costs(folder: Path) -> None:
    def start(mode: str) -> float:
        def once():
            session = WorkerSession(folder, isolation=mode)
            try:
                session.start()
            finally:
                session.close()

        return median_seconds(once)

    def command(argv: list[str]) -> float:
        return median_seconds(lambda: subprocess.run(argv, check=True, capture_output=True))

    python = [sys.executable, "-P", "-s", "-B", "-c", "pass"]
    unshare = ["unshare", "--net", *jail.UNSHARE_FLAGS, "--"]
    old_flags = [f for f in jail.UNSHARE_FLAGS if f not in ("--ipc", "--uts")]
    unshare_before = ["unshare", "--net", *old_flags, "--"]
    jailer = jail.python_command()[:-1] + ["-c", "pass"]
    # the jail's own new steps, in the jail's interpreter: import, then the steps or not
    folder_of_jail = str(Path(jail.__file__).parent)
    load = f"import sys; sys.path.insert(0, {folder_of_jail!r}); import jail; "
    drop = "jail.drop_privileges(jail.WORKER_UID_FIRST - 1, jail.WORKER_UID_FIRST - 1); "
    steps = "jail.cap_ipc(); jail.join_new_session_keyring(); " + drop
    steps += "jail.clear_own_keyrings(); "
    jail_import = jail.python_command()[:-1] + ["-c", load + drop]
    jail_steps = jail.python_command()[:-1] + ["-c", load + steps]
    jail_filter = jail.python_command()[:-1] + ["-c", load + steps + "jail.load_syscall_filter()"]
    jail.support.cache_clear()
    began = time.perf_counter()
    jail.support()
    probe = time.perf_counter() - began
    jailed = jail.support().namespaces

    def row(label: str, seconds: float) -> None:
        print(f"  {label:52} {seconds:8.3f}")

    print(f"per worker start, median of {REPEAT} (spawn until the worker answers hello)")
    print(f"  {'what':52} {'seconds':>8}")
    row("python -P -s -B (nothing imported)", command(python))
    if jailed:
        row("unshare --net --mount --pid + the same python", command(unshare_before + python))
        row("unshare --net --ipc --uts --mount --pid + python", command(unshare + python))
        row("unshare + python -I -S (the jail, no mounts)", command(unshare + jailer))
        row("unshare + jail.py imported + uid drop", command(unshare + jail_import))
        row("  + IPC caps, new session keyring, keyrings cleared", command(unshare + jail_steps))
        if jail.support().syscall_filter:
            row("  + the syscall filter (libseccomp, ctypes)", command(unshare + jail_filter))
        # the same steps timed inside one jailed process each: far less noise than the above
        timing = load + "import time; t = time.perf_counter(); " + steps
        timing += "jail.load_syscall_filter() if jail._libseccomp() else None; "
        timing += "print(time.perf_counter() - t)"
        inside = jail.python_command()[:-1] + ["-c", timing]
        runs = sorted(
            float(subprocess.run(unshare + inside, check=True, capture_output=True).stdout)
            for _ in range(REPEAT)
        )
        row("  the new jail steps, timed inside the jail", runs[len(runs) // 2])
    row("session start, rlimits only (the fallback)", start("rlimits"))
    if jailed:
        row("session start, jail (namespaces, mounts, uid drop)", start("namespaces"))
    row("namespace probe, once per grading process", probe)
    print()


def sampler_cost(folder: Path, *, tensorflow: bool) -> None:
    """What one sample of the memory guard costs the trusted side (every 0.25 s a call runs)."""
    limits = Limits(call_timeout=600, import_timeout=600)
    session = WorkerSession(folder, limits, preload=("tensorflow",) if tensorflow else ())
    try:
        session.ready()
        if tensorflow:
            session.call("echo", "echo", (1,))
        proc = session._proc

        def status_only():  # what the GPU guard read before memfds, SysV and /dev/shm counted
            for pid in jail.worker_pids(uid=proc.uid, root=proc.worker_pid):
                with open(f"/proc/{pid}/status") as status:
                    sum(int(line.split()[1]) for line in status if line.startswith("Rss"))

        what = "TensorFlow imported" if tensorflow else "no TensorFlow"
        for label, sample in (("status only (before)", status_only), ("now", proc.resident)):
            times = []
            for _ in range(48):
                began = time.perf_counter()
                sample()
                times.append(time.perf_counter() - began)
            mean = sum(times) / len(times) * 1000  # the full reads of every 8th sample too
            median = sorted(times)[len(times) // 2] * 1000
            print(f"  memory sample, {what}, {label:22} {median:6.2f} ms (mean {mean:.2f})")
        print(f"  {'':10}(it held {proc.held.total / 2**20:.0f} MiB: {proc.held})")
    finally:
        session.close()


def tensorflow_memory(folder: Path) -> None:
    (folder / "peak.py").write_text(PEAK)
    print("peak address space (VmPeak) of TensorFlow work in a worker, MALLOC_ARENA_MAX=2")
    print(f"  {'workload':44} {'GiB':>6} {'seconds':>8}")
    for function in ("import_tensorflow", "train_mlp", "train_cnn", "train_vgg16_head"):
        session = WorkerSession(folder, Limits(call_timeout=600, import_timeout=600))
        try:
            began = time.perf_counter()
            peak = session.call("peak", function)
            took = time.perf_counter() - began
        finally:
            session.close()
        print(f"  {function:44} {peak / 2**30:6.2f} {took:8.1f}")
    print()


def main() -> None:
    mechanisms()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sub"
        folder.mkdir()
        (folder / "echo.py").write_text("def echo(value):\n    return value\n")
        start_costs(folder)
        print("the trusted side's memory guard, median (and mean) of 48 samples")
        sampler_cost(folder, tensorflow=False)
        if "--tensorflow" in sys.argv:
            sampler_cost(folder, tensorflow=True)
            print()
            tensorflow_memory(folder)


if __name__ == "__main__":
    main()
