"""`dlgrade grade --executor dask`: the same grades as on this machine, over a Dask cluster.

The cluster is a real one on loopback: ``distributed.LocalCluster(n_workers=2,
processes=True)``, or ``dask scheduler`` and ``dask worker`` processes where a test kills the
scheduler. Every student's task ships their files, runs ``dlgrade grade`` on that one student
in a subprocess of the worker (the same sandbox), and returns the record to the client,
which alone writes ``results/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlgrade import gradebook
from tests.helpers import (
    LIGHT,
    MODULE,
    class_of_six,
    dlgrade,
    good_code,
    machine_to_ourselves,
    records,
    rows,
    stable,
    student,
)

distributed = pytest.importorskip("distributed", reason='the dask extra: pip install ".[dask]"')

ATTACKS = Path(__file__).parent / "attacks"


@pytest.fixture
def klass(tmp_path: Path) -> Path:
    """A right, a wrong, a hanging, a crashing, an attacking and an empty submission."""
    return class_of_six(tmp_path / "submissions")


@pytest.fixture(autouse=True)
def _machine_to_ourselves():
    """These class runs start many processes: not while CPU hogs run (tests/conftest.py)."""
    with machine_to_ourselves():
        yield


def grade(source: Path, out: Path, *extra, env: dict | None = None):
    command = [sys.executable, "-m", "dlgrade.cli", "grade", str(source), "--out", str(out)]
    command += ["--checks", str(LIGHT), "--call-timeout", "5", *map(str, extra)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        command, capture_output=True, text=True, env=environment | (env or {}), timeout=300
    )


def light_cluster(**env) -> distributed.LocalCluster:
    """Two worker processes on loopback that grade with the light rubric."""
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"DLGRADE_CHECKS": str(LIGHT), **env},
    )


def test_a_dask_cluster_gives_the_same_gradebook_as_this_machine(klass, tmp_path):
    here, there = tmp_path / "local", tmp_path / "dask"
    local = grade(klass, here, "--jobs", 2)
    assert local.returncode == 0, local.stdout + local.stderr
    # --executor dask alone: a LocalCluster of --jobs worker processes that dlgrade starts
    remote = grade(klass, there, "--executor", "dask", "--jobs", 2)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert "as Dask tasks on a local Dask cluster (2 workers)" in remote.stdout
    assert (here / "gradebook.csv").read_text() == (there / "gradebook.csv").read_text()
    assert stable(json.loads((here / "grades.json").read_text())) == stable(
        json.loads((there / "grades.json").read_text())
    )
    book = rows(there)
    assert "timeout" in book["carol"]["reason"] and "crash" in book["dave"]["reason"]
    assert book["mallory"]["total"] == "3"  # the attack reached nothing; its answer is right
    graded = records(there)
    tasks = {name: r.worker["task"] for name, r in graded.items()}
    assert len({t["worker"] for t in tasks.values()}) == 2  # both workers graded
    assert tasks["alice"]["files_bytes"] == len(good_code().encode())
    assert all(r.folder == str(klass / r.student) for r in graded.values())  # the client's
    # a re-run keeps everyone, whichever executor graded them: the keys are the same
    again = grade(klass, here, "--jobs", 2)
    assert "6 student(s) unchanged since their last grading: kept" in again.stdout
    again = grade(klass, there, "--executor", "dask", "--jobs", 2)
    assert "6 student(s) unchanged since their last grading: kept" in again.stdout


def test_a_worker_killed_mid_student_costs_a_regrade_elsewhere_not_a_grade(tmp_path):
    root = tmp_path / "submissions"
    slow = good_code() + "\nimport time\ntime.sleep(8)  # a slow import: a worker to kill\n"
    student(root, "slow", slow)
    student(root, "quick", good_code())
    out = tmp_path / "results"
    with light_cluster() as cluster, distributed.Client(cluster) as client:
        process = subprocess.Popen(
            [sys.executable, "-m", "dlgrade.cli", "grade", root, "--out", out]
            + ["--checks", LIGHT, "--executor", "dask", "--scheduler", cluster.scheduler_address],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # the worker grading the slow student: the one whose server's child writes to a
        # task scratch folder holding that student (the scheduler may move a queued task)
        pids = client.run(os.getpid)
        victim, logs, grading = None, [], []
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.05)
            for address, pid in pids.items():
                below = _descendants(pid)
                found = [Path(_fd_target(child, 1)) for child in below]
                found = [log for log in found if log.name == "grading.log"]
                found = [log for log in found if (log.parent / "class" / "slow").is_dir()]
                if found:
                    victim, logs, grading = address, found, below
        assert victim, "the slow student was never graded by a worker's grading server"
        serve = ["-m", "dlgrade.classrun.cluster", "serve"]
        servers = [pid for pid in grading if _argv(pid)[1:4] == serve]
        assert len(servers) == 2, "not the server and its child (forked: the same argv)"
        grading = _descendants(pids[victim])  # its grading is under way: kill it now
        scratch = logs[0].parent
        assert scratch.is_dir()
        os.kill(pids[victim], signal.SIGKILL)
        time.sleep(1)
        # the killed worker's grading processes died with it (nothing grades on unseen),
        # and its scratch folder is gone
        assert not [pid for pid in grading if _alive(pid)]
        assert not scratch.exists()
        output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output
    graded = records(out)
    assert graded["slow"].status == "graded" and graded["slow"].score == 3
    assert graded["slow"].worker["task"]["worker"] != victim  # graded again elsewhere
    assert output.count("✓ slow") == 1  # recorded once
    assert "2 student(s): 2 graded" in output


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, theirs, ...)."""
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if proc.name.isdigit():
            parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _fd_target(pid: int, fd: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waits only for its parent to read its status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_processes(port: int) -> list[subprocess.Popen]:
    """`dask scheduler` and `dask worker` (two processes), as on lab machines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["DLGRADE_CHECKS"] = str(LIGHT)
    dask = [sys.executable, "-m", "dask"]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **quiet,
    )
    worker = subprocess.Popen(
        [*dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
        start_new_session=True,
        **quiet,
    )
    return [scheduler, worker]


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
        process.wait(timeout=30)


def test_a_lost_scheduler_stops_the_run_with_every_finished_student_saved(tmp_path):
    root = tmp_path / "submissions"
    student(root, "s1", good_code())
    slow = good_code() + "\nimport time\ntime.sleep(6)  # a slow import: a run to interrupt\n"
    for name in ("s2", "s3", "s4", "s5"):
        student(root, name, slow)
    out = tmp_path / "results"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    command = ["--executor", "dask", "--scheduler", address]
    cluster = _cluster_processes(port)
    try:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        process = subprocess.Popen(
            [sys.executable, "-m", "dlgrade.cli", "grade", root, "--out", out]
            + ["--checks", LIGHT, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        deadline = time.monotonic() + 120
        done = []
        while not done and time.monotonic() < deadline:
            done = [r for r in gradebook.load_records(out) if r.status == gradebook.GRADED]
            time.sleep(0.1)
        assert done, "no student finished within 120 s"
        _stop(cluster)  # the scheduler and its workers are gone
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 1, output
        assert "was lost" in output and "run the same command again" in output
        finished = {r.student: r for r in gradebook.load_records(out) if r.status == "graded"}
        assert finished and len(finished) < 5
        book = rows(out)
        assert list(book) == ["s1", "s2", "s3", "s4", "s5"]  # everyone is in the gradebook
        for name in set(book) - set(finished):
            assert book[name]["status"] == "incomplete" and "was lost" in book[name]["reason"]
        cluster = _cluster_processes(port)  # the cluster is back: the same command
        run = grade(root, out, *command)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"{len(finished)} student(s) unchanged since their last grading: kept" in run.stdout
        after = records(out)
        assert all(after[name] == record for name, record in finished.items())
        assert [after[s].status for s in sorted(after)] == ["graded"] * 5
    finally:
        _stop(cluster)


def test_a_worker_with_another_rubric_is_refused_naming_both_versions(klass, tmp_path):
    other = tmp_path / "other-checks"
    shutil.copytree(LIGHT, other)
    with open(other / MODULE, "a") as fh:
        fh.write("\n# edited on this worker only\n")
    out = tmp_path / "results"
    with light_cluster(DLGRADE_CHECKS=str(other)) as cluster:
        run = grade(klass, out, "--executor", "dask", "--scheduler", cluster.scheduler_address)
    assert run.returncode == 2, run.stdout + run.stderr
    from dlgrade.classrun import roster
    from dlgrade.selection import rubric_files

    ours = roster.rubric_version(rubric_files(LIGHT, ["1.01"]))
    theirs = roster.rubric_version(rubric_files(other, ["1.01"]))
    assert ours != theirs
    assert f"rubric {theirs}; this client with dlgrade" in run.stderr
    assert f"rubric {ours}" in run.stderr
    assert not (out / "students").exists()  # nobody was graded by the wrong rubric


# -- the task's parts, without a cluster ------------------------------------------------------


def _job(tmp_path: Path, folder: Path):
    from dlgrade import classrun

    return classrun.plan(folder.parent, tmp_path / "results", checks=LIGHT)


def test_files_travel_with_their_sha256_and_arrive_as_the_client_keyed_them(tmp_path):
    from dlgrade.classrun import cluster

    folder = student(tmp_path / "class", "alice", good_code())
    (folder / "data").mkdir()
    (folder / "data" / "notes.txt").write_bytes(b"\x00\xffbytes")
    job = _job(tmp_path, folder)
    payload = cluster.pack([job.students[0]], job)
    sent = payload["students"][0]
    assert [f["path"] for f in sent["files"]] == [MODULE, "data/notes.txt"]
    assert sent["files"][1]["sha256"] == hashlib.sha256(b"\x00\xffbytes").hexdigest()
    cluster.unpack(payload, sent, tmp_path / "arrived", job.rubric_version)
    assert (tmp_path / "arrived" / "data" / "notes.txt").read_bytes() == b"\x00\xffbytes"

    tampered = json.loads(json.dumps(sent, default=lambda b: b.decode("latin-1")))
    for entry in tampered["files"]:
        entry["data"] = entry["data"].encode("latin-1")
    tampered["files"][0]["data"] += b"# changed on the way\n"
    with pytest.raises(cluster.TransferError, match="do not match the sha256"):
        cluster.unpack(payload, tampered, tmp_path / "tampered", job.rubric_version)
    dropped = dict(sent, files=sent["files"][:1])
    with pytest.raises(cluster.TransferError, match="missing or extra"):
        cluster.unpack(payload, dropped, tmp_path / "dropped", job.rubric_version)
    escaping = dict(sent, files=[dict(sent["files"][0], path="../outside.py")])
    with pytest.raises(cluster.TransferError, match="not a path inside"):
        cluster.unpack(payload, escaping, tmp_path / "escaping", job.rubric_version)
    assert not (tmp_path / "outside.py").exists()


def test_a_task_for_another_version_is_refused_before_it_runs_anything(tmp_path, monkeypatch):
    from dlgrade.classrun import cluster

    folder = student(tmp_path / "class", "alice", good_code())
    job = _job(tmp_path, folder)
    monkeypatch.setenv("DLGRADE_CHECKS", str(LIGHT))
    payload = cluster.pack([job.students[0]], job)
    answer = cluster.grade_student(dict(payload, dlgrade_version="0.0.1"))
    assert "dlgrade 0.0.1" in answer["refused"] and job.rubric_version in answer["refused"]
    answer = cluster.grade_student(dict(payload, payload=99))
    assert "payload version" in answer["refused"]


def test_tasks_of_checks_that_need_a_gpu_ask_for_one(tmp_path):
    from dlgrade import classrun
    from dlgrade.classrun import cluster

    checks = tmp_path / "checks"
    shutil.copytree(LIGHT, checks)
    rubric = checks / MODULE
    rubric.write_text(
        rubric.read_text()
        + "\n\n@dlgrade.check(points=1, tier='full', gpu=True, feedback='train on a GPU')\n"
        "def test_on_a_gpu(submission):\n    pass\n"
    )
    folder = student(tmp_path / "class", "alice", good_code())
    before = set(sys.modules)
    try:
        for tier, needs in (("quick", False), ("full", True)):
            job = classrun.plan(folder.parent, tmp_path / tier, checks=checks, tier=tier)
            assert classrun.collect(job, "run")[1] is needs
    finally:  # this rubric's module would stand in the way of another session's collection
        for name in set(sys.modules) - before:
            if name.startswith("activity_"):
                del sys.modules[name]

    class Client:
        def scheduler_info(self):
            return {"workers": {"tcp://w:1": {"nthreads": 1}}}

        def submit(self, *args, **options):
            self.options = options
            return object()

    executor = cluster.DaskExecutor("tcp://scheduler:8786")
    executor.client = Client()
    classrun.Executor.open(executor, job, "run", lambda e: None, gpu=True)  # no cluster
    executor.submit(job.students[0])
    executor._send()  # what run() does first
    assert executor.client.options["resources"] == {"GPU": 1}
    assert executor.client.options["key"] == "dlgrade-run-0-alice"


def test_without_the_dask_extra_the_executor_says_how_to_install_it(klass, tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from dlgrade.cli import main\n"
        f"sys.exit(main(['grade', {str(klass)!r}, '--out', {str(tmp_path / 'r')!r}, "
        f"'--checks', {str(LIGHT)!r}, '--executor', 'dask']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2, run.stdout + run.stderr
    assert 'pip install "dlgrade[dask]"' in run.stderr
    assert dlgrade("grade", klass, "--scheduler", "tcp://x:1").returncode == 2


@pytest.mark.parametrize("batch", ["1", "3"])
def test_one_grading_server_grades_student_after_student_and_none_reaches_the_next(
    tmp_path, batch
):
    """A Dask worker's grading server grades its tasks' students one after another, each
    task in a child of its own (batch 1: a child per student; batch 3: the three students
    in one child's session, each in a jailed worker of their own), their workers forked
    from the zygote it keeps. A student who leaves state behind in every way they can
    (tests/attacks/leave_state) changes nothing of the students graded after them: the
    same grades, to the byte, as the local executor gives."""
    from tests.helpers import REFERENCE

    root = tmp_path / "submissions"
    shutil.copytree(ATTACKS / "leave_state", root / "a-polluter")
    for name in ("b-reference", "c-reference"):
        (root / name).mkdir(parents=True)
        shutil.copy(REFERENCE / MODULE, root / name / MODULE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["DLGRADE_DASK_BATCH"] = batch
    books = {}
    for how in ("local", "dask"):
        out = tmp_path / how
        command = [sys.executable, "-m", "dlgrade.cli", "grade", str(root), "--out", str(out)]
        command += ["--activity", "1.01", "--tier", "quick", "--jobs", "1"]
        command += ["--executor", how]
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        books[how] = records(out)
    tasks = {name: r.worker["task"] for name, r in books["dask"].items()}
    assert {t["graded_in"] for t in tasks.values()} == {"server"}, tasks
    assert len({t["server_pid"] for t in tasks.values()}) == 1, "not one server for all"
    assert {t["students"] for t in tasks.values()} == {int(batch)}
    order = sorted(books["dask"].values(), key=lambda r: r.started_at)
    assert [r.student for r in order][0] == "a-polluter", "the polluter was not graded first"
    for name in ("b-reference", "c-reference"):
        graded = books["dask"][name]
        assert graded.score == graded.max_score > 0, graded.checks
    for name in books["local"]:
        assert stable(books["dask"][name].to_dict()) == stable(books["local"][name].to_dict())


# -- the grading server's warm zygote ------------------------------------------------------


def test_a_new_grading_server_warms_the_zygote_its_first_worker_asks_for(tmp_path, monkeypatch):
    """A grading server starts, before its own imports, the zygote its students' workers
    will ask for (cluster.warm_spec): the rubrics' PRELOAD, read without importing them, and
    the CPU worker's environment — the zygote's key must be the one a real session's first
    worker asks for, or the server would warm a zygote nobody uses."""
    import importlib

    from dlgrade import gpu
    from dlgrade.activities import registry
    from dlgrade.classrun import cluster
    from dlgrade.sandbox import WorkerSession, zygote
    from dlgrade.sandbox.session import worker_environment
    from dlgrade.selection import checks_dir, rubric_files

    root = checks_dir(None)
    monkeypatch.syspath_prepend(str(root))  # as pytest's rootdir: hidden rubrics import theirs
    try:
        for activity in registry(root):
            declared = set()
            for path in rubric_files(root, [activity]):  # as the plugin collects: each PRELOAD
                declared |= set(getattr(importlib.import_module(path.stem), "PRELOAD", ()))
            grading = {"checks": str(root), "activities": [activity], "tier": "quick"}
            assert cluster.warm_spec(grading) == {"preload": sorted(declared)}, activity
    finally:  # the next grading session imports its rubrics afresh (tests.helpers.RUN_MODULES)
        for name in [n for n in sys.modules if n.startswith("activity_")]:
            del sys.modules[name]

    folder = tmp_path / "student"
    folder.mkdir()
    device = gpu.Device(None, "no GPU here")
    session = WorkerSession(folder, preload=("keras",), device=device)
    try:
        asked = zygote.zygote_key(session.environment(), session.preload)
    finally:
        session.close()
    warmed = worker_environment(tmp_path / "elsewhere", gpu.Device(None, "CPU"))
    assert zygote.zygote_key(warmed, ("keras",)) == asked

    everything = {"checks": str(root), "activities": ["2.01"], "tier": "quick", "options": []}
    assert cluster.warm_spec({**everything, "tier": "full"}) is None  # may get a GPU
    assert cluster.warm_spec({**everything, "options": ["--no-preload"]}) is None
    assert cluster.warm_spec({**everything, "activities": ["9.99"]}) is None


def test_the_preload_scan_reads_only_literal_declarations(tmp_path):
    from dlgrade.classrun.cluster import rubric_preload

    (tmp_path / "a.py").write_text('PRELOAD = ("keras", "numpy")\n')
    (tmp_path / "b.py").write_text("PRELOAD = tuple(open('/etc/passwd'))\nx = 1\n")
    (tmp_path / "c.py").write_text("def f(:\n")
    (tmp_path / "d.py").write_text('PRELOAD = ["nltk", 3]\n')
    (tmp_path / "e.py").write_text("PRELOAD = {[]: 1}\n")  # literal_eval: TypeError
    (tmp_path / "f.py").write_text("PRELOAD = " + "(" * 300 + ")" * 300 + "\n")
    files = [tmp_path / n for n in ("a.py", "b.py", "c.py", "d.py", "e.py", "f.py", "no.py")]
    assert rubric_preload(files) == {"keras", "numpy", "nltk"}


def test_a_task_grades_a_batch_of_students_sized_to_share_its_start(monkeypatch):
    from dlgrade.classrun.cluster import MAX_BATCH, batch_size

    monkeypatch.delenv("DLGRADE_DASK_BATCH", raising=False)
    assert batch_size(23, 2) == 3  # about three tasks per slot
    assert batch_size(23, 1) == MAX_BATCH
    assert batch_size(2, 2) == 1 and batch_size(5, 2) == 1  # small classes: one each
    assert batch_size(400, 0) == 1  # no worker yet: nothing to size by
    assert batch_size(10_000, 8) == MAX_BATCH
    monkeypatch.setenv("DLGRADE_DASK_BATCH", "2")
    assert batch_size(23, 2) == 2
    monkeypatch.setenv("DLGRADE_DASK_BATCH", "zero")
    assert batch_size(23, 2) == 3
