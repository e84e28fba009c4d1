"""GPU runners on a machine without a GPU: the device list is faked (device files in a
folder, ``nvidia-smi``'s answer, ``CUDA_VISIBLE_DEVICES``), the rest is real — the jailed
worker's environment, groups, libraries and limits, the resident-memory guard, the device
in the header, the grade and the class records."""

import json
import os
import re
import resource
from pathlib import Path

import pytest

from dlgrade import gpu, models
from dlgrade.errors import RunnerError, WorkerCrashed
from dlgrade.gpu import Device, Gpu
from dlgrade.sandbox import Limits, WorkerSession, isolation_mode, jail
from tests.helpers import SUBMISSIONS

SMI = """\
0, GPU-6f1c2a8e-aaaa-bbbb-cccc-000000000000, NVIDIA H200, 143771
1, GPU-6f1c2a8e-aaaa-bbbb-cccc-000000000001, NVIDIA H200, 143771
"""
H200_0 = Gpu("0", "NVIDIA H200", "GPU-6f1c2a8e-aaaa-bbbb-cccc-000000000000", 143771)
H200_1 = Gpu("1", "NVIDIA H200", "GPU-6f1c2a8e-aaaa-bbbb-cccc-000000000001", 143771)
FAKE = Device(Gpu("0", "Fake GPU"), "the GPU")


@pytest.fixture(autouse=True)
def _no_device_left_behind(monkeypatch):
    """A grading session sets this process's device: put back what was there."""
    monkeypatch.setattr(gpu, "_current", None)


def fake_dev(tmp_path: Path, *names: str) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in names:
        (dev / name).write_text("")
    return dev


# -- which GPUs are there ------------------------------------------------------------------


def test_nvidia_smis_list_is_read_with_names_uuids_and_memory():
    assert gpu.parse_smi(SMI) == [H200_0, H200_1]
    odd = gpu.parse_smi("0, GPU-x, Tesla T4, [N/A]\n3, GPU-y, A, B, 16384\nNo devices were found\n")
    assert odd == [Gpu("0", "Tesla T4", "GPU-x", None), Gpu("3", "A, B", "GPU-y", 16384)]


UUID_1 = "GPU-6f1c2a8e-aaaa-bbbb-cccc-000000000001"


def test_nvidia_smi_is_asked_for_index_uuid_name_and_memory(tmp_path, monkeypatch):
    """A stand-in nvidia-smi on PATH: the query dlgrade runs, and what it makes of the answer
    (a failing nvidia-smi, as on a machine whose driver is gone, counts as none)."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/asked\n'
        f"[ -e {tmp_path}/broken ] && exit 9\n"
        f"cat <<'EOF'\n{SMI}EOF\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(gpu, "SMI_PATH", str(fake.parent))
    assert gpu.nvidia_smi() == [H200_0, H200_1]
    asked = (tmp_path / "asked").read_text().split()
    assert asked == ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]
    (tmp_path / "broken").write_text("")
    assert gpu.nvidia_smi() is None


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [("0", "NVIDIA H200"), ("1", "NVIDIA H200")]),
        ("1", [("1", "NVIDIA H200")]),
        ("1,0", [("1", "NVIDIA H200"), ("0", "NVIDIA H200")]),
        (UUID_1, [(UUID_1, "NVIDIA H200")]),  # named to the worker as the grader names it
        ("MIG-abc", [("MIG-abc", "")]),  # a MIG slice nvidia-smi did not list
        ("0,-1,1", [("0", "NVIDIA H200")]),  # CUDA stops at the first entry not a device
        ("-1", []),
        ("", []),
    ],
)
def test_the_gpus_found_follow_the_graders_cuda_visible_devices(tmp_path, visible, expected):
    dev = fake_dev(tmp_path, "nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm")
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    found = gpu.discover(environ, dev, smi=lambda: gpu.parse_smi(SMI))
    assert [(g.visible_as, g.name) for g in found] == expected


def test_without_nvidia_smi_each_device_file_is_one_gpu_and_without_them_none(tmp_path):
    dev = fake_dev(tmp_path, "nvidia0", "nvidia1", "nvidiactl", "nvidia-modeset")
    assert gpu.discover({}, dev, smi=lambda: None) == [Gpu("0"), Gpu("1")]
    empty = tmp_path / "empty"
    empty.mkdir()
    calls = []
    assert gpu.discover({"CUDA_VISIBLE_DEVICES": "0"}, empty, smi=lambda: calls.append(1)) == []
    assert calls == []  # no device files: nvidia-smi is not even asked
    assert gpu.discover() == []  # this machine (CI): no GPU


# -- --gpus and round robin ----------------------------------------------------------------


def test_gpus_option_picks_gpus_by_number_all_or_none():
    found = [H200_0, H200_1]
    assert gpu.choose(found, None) == gpu.choose(found, "all") == found
    assert gpu.choose(found, "1") == [H200_1]
    assert gpu.choose(found, "1,0,1") == [H200_1, H200_0]
    assert gpu.choose(found, "none") == []


@pytest.mark.parametrize(
    ("found", "wanted", "message"),
    [
        ([H200_0, H200_1], "2", "this machine has 2 GPU(s) visible, numbered from 0: 0 (GPU 0"),
        ([H200_0], "0,x", "give GPU numbers separated by commas"),
        ([], "0", "no GPU is visible on this machine"),
    ],
)
def test_gpus_option_naming_gpus_that_are_not_there_says_which_are(found, wanted, message):
    with pytest.raises(gpu.GpuOptionError, match=re.escape(message)):
        gpu.choose(found, wanted)


def test_jobs_get_the_gpus_round_robin_and_cpu_only_runs_get_none():
    pool = [H200_0, H200_1]
    slots = {f"gw{k}": gpu.job_slot({"PYTEST_XDIST_WORKER": f"gw{k}"}) for k in range(4)}
    assert slots == {"gw0": 0, "gw1": 1, "gw2": 2, "gw3": 3}
    assert gpu.job_slot({}) == 0
    given = [gpu.assign(pool, needed=True, slot=k).gpu for k in range(4)]
    assert given == [H200_0, H200_1, H200_0, H200_1]
    quick = gpu.assign(pool, needed=False, slot=1)
    assert not quick.is_gpu and "no check of this run uses a GPU" in quick.describe()
    assert gpu.assign([], needed=True).describe() == "device: CPU (no GPU on this machine)"
    assert gpu.assign([], needed=True, asked="none").describe() == "device: CPU (--gpus none)"
    line = gpu.assign(pool, needed=True, slot=3).describe()
    assert line == (
        "device: GPU 1: NVIDIA H200, 143,771 MiB (job 4, round robin over 2 GPUs; memory growth on)"
    )


def test_full_tier_and_gpu_checks_use_a_gpu_and_the_others_do_not():
    assert gpu.uses_gpu("full", False) and gpu.uses_gpu("quick", True)
    assert not gpu.uses_gpu("standard", False) and not gpu.uses_gpu("quick", False)


# -- what the worker gets ------------------------------------------------------------------


def test_a_gpu_workers_environment_passes_the_gpus_variables_and_nothing_else(tmp_path):
    libs = tmp_path / "cuda" / "lib64"
    libs.mkdir(parents=True)
    grader = {
        "LD_LIBRARY_PATH": f"{libs}:{tmp_path / 'gone'}:",
        "XLA_FLAGS": "--xla_gpu_cuda_data_dir=/usr/local/cuda",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "LD_PRELOAD": "/tmp/evil.so",
        "AWS_SECRET_ACCESS_KEY": "x",
        "PYTHONPATH": "/somewhere",
    }
    env = gpu.worker_env(Device(H200_1, "the GPU"), grader)
    assert env == {
        "LD_LIBRARY_PATH": str(libs),  # only folders that exist
        "XLA_FLAGS": "--xla_gpu_cuda_data_dir=/usr/local/cuda",
        "CUDA_VISIBLE_DEVICES": "1",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }
    ordered = gpu.worker_env(Device(H200_0, "the GPU"), {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert ordered["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"  # the grader's own numbering kept
    assert gpu.worker_env(Device(None, "no GPU"), grader) == {"CUDA_VISIBLE_DEVICES": "-1"}
    assert gpu.library_folders(env) == [libs]


def test_the_worker_keeps_the_group_of_device_files_not_open_to_everyone(tmp_path):
    dev = fake_dev(tmp_path, "nvidia0", "nvidiactl", "nvidia-uvm")
    (dev / "nvidia0").chmod(0o660)
    (dev / "nvidiactl").chmod(0o666)
    (dev / "nvidia-uvm").chmod(0o600)  # nobody but root: no group would help
    os.chown(dev / "nvidia0", -1, 44)
    assert gpu.device_groups(gpu.device_files(dev)) == [44]
    (dev / "nvidia0").chmod(0o666)
    assert gpu.device_groups(gpu.device_files(dev)) == []


def test_the_grader_creates_the_uvm_device_a_jailed_worker_could_not(tmp_path, monkeypatch):
    dev = fake_dev(tmp_path, "nvidia0", "nvidiactl")
    ran = []
    monkeypatch.setattr(gpu.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    assert gpu.ensure_uvm(dev, run=ran.append) == "/usr/bin/nvidia-modprobe -u -c=0"
    assert ran == [["/usr/bin/nvidia-modprobe", "-u", "-c=0"]]
    (dev / "nvidia-uvm").write_text("")
    assert gpu.ensure_uvm(dev, run=ran.append) is None and len(ran) == 1  # there already
    assert gpu.ensure_uvm(tmp_path, run=ran.append) is None and len(ran) == 1  # no driver


@pytest.fixture
def folder(tmp_path):
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "probe.py").write_text(PROBE)
    return submission


PROBE = """
import ctypes, mmap, os, resource, time


def seen(folder):
    names = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_DEVICE_ORDER",
             "LD_LIBRARY_PATH", "AWS_SECRET_ACCESS_KEY")
    return {
        "env": {n: os.environ[n] for n in names if n in os.environ},
        "address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
        "libraries": sorted(os.listdir(folder)) if os.path.isdir(folder) else None,
        "groups": os.getgroups(),
    }


def hog(gib):
    blocks = [bytearray(2**20) for _ in range(int(gib * 1024))]
    return len(blocks)


def reserve_then_die():
    # 32 GiB of address space, none of it memory (what CUDA does at start-up), then a crash
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0x4000)
    reserved = mmap.mmap(-1, 32 * 2**30, flags=flags, prot=mmap.PROT_READ)
    time.sleep(1)  # long enough for the grader to see it
    ctypes.string_at(0)  # SIGSEGV (even as a namespace's PID 1, which ignores kill)
"""

ISOLATIONS = ["rlimits"] + (["namespaces"] if isolation_mode() == "namespaces" else [])


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_the_jailed_worker_gets_its_gpu_its_libraries_and_no_address_space_limit(
    folder, tmp_path, monkeypatch, isolation
):
    home = tmp_path / "toolkit" / "lib64"  # under /tmp: a folder the jail hides
    home.mkdir(parents=True)
    (home / "libcudart.so.12").write_text("")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(home))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setattr(gpu, "device_files", lambda dev_dir=None: [])
    on_gpu = WorkerSession(folder, Limits(call_timeout=20), isolation=isolation, device=FAKE)
    try:
        seen = on_gpu.call("probe", "seen", (str(home),))
    finally:
        on_gpu.close()
    assert seen["env"] == {
        "CUDA_VISIBLE_DEVICES": "0",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "LD_LIBRARY_PATH": str(home),
    }
    assert seen["address_space"] == resource.RLIM_INFINITY
    assert seen["libraries"] == ["libcudart.so.12"]  # reachable inside the jail
    on_cpu = WorkerSession(folder, Limits(call_timeout=20), isolation=isolation)
    try:
        seen = on_cpu.call("probe", "seen", (str(home),))
    finally:
        on_cpu.close()
    assert seen["env"] == {"CUDA_VISIBLE_DEVICES": "-1"}  # the grader's GPUs stay out of it
    assert seen["address_space"] == Limits().memory_bytes


@pytest.mark.skipif(isolation_mode() != "namespaces", reason="needs the jail (root)")
def test_the_jail_gives_the_worker_the_device_files_group_and_no_other(
    folder, tmp_path, monkeypatch
):
    dev = fake_dev(tmp_path, "nvidia0")
    (dev / "nvidia0").chmod(0o660)
    os.chown(dev / "nvidia0", -1, 44)
    monkeypatch.setattr(gpu, "device_files", lambda dev_dir=None: [dev / "nvidia0"])
    session = WorkerSession(folder, Limits(call_timeout=20), isolation="namespaces", device=FAKE)
    try:
        assert session.call("probe", "seen", ("/nowhere",))["groups"] == [44]
    finally:
        session.close()
    session = WorkerSession(folder, Limits(call_timeout=20), isolation="namespaces")
    try:
        assert session.call("probe", "seen", ("/nowhere",))["groups"] == []
    finally:
        session.close()


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_gpu_workers_memory_limit_counts_its_resident_memory(folder, isolation):
    limits = Limits(call_timeout=60, memory_bytes=2**30)
    session = WorkerSession(folder, limits, isolation=isolation, device=FAKE)
    try:
        assert session.call("probe", "hog", (0.25,)) == 256  # well within: not stopped
        with pytest.raises(WorkerCrashed) as stopped:
            session.call("probe", "hog", (3,))
        assert stopped.value.reason == "memory_limit"
        assert str(stopped.value).startswith(
            "memory limit 1 GiB exceeded during probe.hog(): your code's processes held"
        )
        assert session.call("probe", "hog", (0.25,)) == 256  # a fresh worker for the next
    finally:
        session.close()


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_gpu_worker_that_reserved_address_space_and_crashed_did_not_run_out_of_memory(
    folder, isolation
):
    """CUDA reserves tens of GiB of address space: only resident memory says a GPU worker
    ran out (the address-space peak would call every crash of a GPU worker 'memory')."""
    session = WorkerSession(folder, Limits(call_timeout=20), isolation=isolation, device=FAKE)
    try:
        with pytest.raises(WorkerCrashed) as died:
            session.call("probe", "reserve_then_die")
        assert died.value.reason == "worker_died", str(died.value)
        assert session._proc.peak_bytes > 32 * 2**30 > 4 * session._proc.peak_resident
    finally:
        session.close()


def test_resident_memory_is_added_up_over_a_uids_processes_or_a_process_tree():
    mine = jail.resident_bytes(root=os.getpid())
    assert 10 * 2**20 < mine < 20 * 2**30
    assert jail.resident_bytes() == 0
    assert jail.resident_bytes(uid=jail.WORKER_UID_FIRST + jail.WORKER_UID_COUNT + 7) == 0


# -- a check that needs a GPU ---------------------------------------------------------------


class _Session:
    def __init__(self, device, worker_gpus):
        self.device, self.worker_gpus, self.worker_gpu_error = device, worker_gpus, ""
        self.readied = 0

    def ready(self):
        self.readied += 1

    device_label = WorkerSession.device_label


class _Submission:
    def __init__(self, session):
        self.session = session


def test_require_gpu_asks_the_grading_process_and_the_worker():
    gpu.set_current(Device(None, "no GPU on this machine"))
    with pytest.raises(RunnerError, match=r"the worker has no GPU \(CPU \(no GPU on this mach"):
        models.require_gpu("an hour of training")
    gpu.set_current(FAKE)
    models.require_gpu("an hour of training")  # given a GPU, the worker not asked
    found = _Session(FAKE, ["/physical_device:GPU:0"])
    models.require_gpu("an hour of training", _Submission(found))
    assert found.readied == 1
    lost = _Session(FAKE, [])
    with pytest.raises(RunnerError) as raised:
        models.require_gpu("an hour of training", _Submission(lost))
    assert "GPU 0: Fake GPU was given, but TensorFlow in the worker found no GPU" in str(
        raised.value
    )


# -- the plugin: header, grade and records ---------------------------------------------------

RUBRIC = """
import os

import dlgrade
from dlgrade import models

ACTIVITY = "1.01"
PRELOAD = {preload}


@dlgrade.check(points=1, feedback="f")
def test_quick(student):
    assert student.device() == "-1"


@dlgrade.check(points=1, tier="full", feedback="f")
def test_full(student, submission):
    models.require_gpu("the full tier", submission)
    assert student.device() == os.environ["EXPECTED_GPU"]
"""
STUDENT = """
import os


def device():
    return os.environ.get("CUDA_VISIBLE_DEVICES")
"""


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(gpu, "discover", lambda *a, **k: [H200_0, H200_1])
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # job 1, whoever runs this


def _run(runner, tmp_path, *options, preload="()", expected="1"):
    (runner.path / "checks").mkdir(exist_ok=True)
    rubric = runner.path / "checks" / "activity_1_01.py"
    rubric.write_text(RUBRIC.format(preload=preload))
    submission = tmp_path / "work"
    submission.mkdir(exist_ok=True)
    (submission / "activity_1_01.py").write_text(STUDENT)
    out = tmp_path / "grade.json"
    os.environ["EXPECTED_GPU"] = expected
    try:
        result = runner.runpytest_inprocess(
            str(rubric),
            "--submission",
            str(submission),
            "--grade-json",
            str(out),
            "-p",
            "no:cacheprovider",
            *options,
        )
    finally:
        del os.environ["EXPECTED_GPU"]
    return result, json.loads(out.read_text())


def test_a_full_tier_run_gives_its_worker_the_jobs_gpu_and_says_so(
    runner, tmp_path, two_gpus, monkeypatch
):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")  # the second of --jobs 2
    result, grade = _run(runner, tmp_path, "--tier", "full", "--no-preload")
    assert grade["score"] == 1 and grade["max_score"] == 2, result.stdout.str()
    outcomes = {c["id"].split("/")[1]: c["outcome"] for c in grade["checks"]}
    assert outcomes == {"quick": "fail", "full": "pass"}  # one worker: the GPU
    assert grade["device"] == "GPU 1: NVIDIA H200"
    result.stdout.fnmatch_lines(["device: GPU 1: NVIDIA H200, 143,771 MiB (job 2, round robin*"])
    result.stdout.fnmatch_lines(["sandbox: *memory 4 GiB resident (a GPU worker*"])


def test_a_quick_run_on_a_gpu_machine_keeps_its_worker_off_the_gpus(runner, tmp_path, two_gpus):
    result, grade = _run(runner, tmp_path, "--no-preload")
    assert grade["score"] == grade["max_score"] == 1, result.stdout.str()
    assert grade["device"] == "CPU"
    result.stdout.fnmatch_lines(["device: CPU (no check of this run uses a GPU*"])
    result, grade = _run(runner, tmp_path, "--tier", "full", "--gpus", "none", "--no-preload")
    assert grade["device"] == "CPU"
    outcomes = {c["id"].split("/")[1]: (c["outcome"], c["reason"]) for c in grade["checks"]}
    assert outcomes == {"quick": ("pass", ""), "full": ("error", "runner")}


def test_a_gpu_the_workers_tensorflow_cannot_see_is_the_runners_problem_not_the_students(
    runner, tmp_path, two_gpus
):
    """Here the fake GPU is given, TensorFlow loads in the worker and finds none: what a
    jail that lost the driver or the device files would do on a GPU runner."""
    result, grade = _run(
        runner, tmp_path, "--tier", "full", preload="('tensorflow',)", expected="0"
    )
    full = next(c for c in grade["checks"] if c["id"] == "1.01/full")
    assert (full["outcome"], full["reason"]) == ("error", "runner"), result.stdout.str()
    assert (
        "GPU 0: NVIDIA H200 was given, but TensorFlow in the worker found no GPU"
        in full["feedback"]
    )
    assert grade["device"].startswith("CPU (GPU 0: NVIDIA H200 was given, but TensorFlow")


def test_gpus_naming_a_gpu_that_is_not_here_is_a_usage_error(runner, tmp_path, two_gpus):
    rubric = runner.mkdir("checks") / "activity_1_01.py"
    rubric.write_text(RUBRIC.format(preload="()"))
    result = runner.runpytest_inprocess(
        str(rubric), "--submission", str(SUBMISSIONS), "--gpus", "2"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gpus 2: this machine has 2 GPU(s) visible, numbered from 0*"])
