"""Class runs on a Dask cluster: ``dlgrade grade SOURCE --executor dask [--scheduler ADDR]``.

One task grades one student on a Dask worker's machine (:func:`grade_student`): the
student's files travel inside the task (bytes and sha256, checked on arrival: no shared
filesystem is assumed), a subprocess runs ``dlgrade grade`` on that one student there — the
same sandbox, the same grading processes as on this machine — and the task returns the
record as JSON. Only this client writes ``results/``, so resume, keys and every export are
the same whichever executor graded.

Before the first task, every connected worker says which dlgrade and rubric it would grade
with (:func:`worker_versions`); a run on a cluster that mixes versions is refused, naming
both. A worker that joins later and differs refuses each task it gets, with the same message.

Needs the ``dask`` extra: ``pip install "dlgrade[dask]"`` (docs/cluster.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import dlgrade
from dlgrade import gradebook, roster
from dlgrade.classrun import INTERRUPTED, Executor, Job, StudentLost
from dlgrade.errors import DlgradeError, UsageError
from dlgrade.files import submission_files
from dlgrade.gradebook import StudentRecord
from dlgrade.roster import Student

#: the shape of a task's payload; a worker refuses another
PAYLOAD_VERSION = 1
#: how often the client looks at its tasks
POLL_SECONDS = 0.2
#: why distributed cancels a client's futures when it loses the scheduler
SCHEDULER_LOST = "scheduler-connection-lost"
#: how long the client waits to reach the scheduler at the start
CONNECT_SECONDS = 30.0


class TransferError(DlgradeError):
    """A student's files did not arrive on the worker as they were sent."""


def distributed_module():
    """The ``distributed`` package, or a usage error that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(
            '--executor dask needs the dask extra: pip install "dlgrade[dask]" (on this '
            "machine and on every worker; docs/cluster.md)"
        ) from None
    return distributed


# -- what travels ---------------------------------------------------------------------------


def pack(student: Student, job: Job) -> dict[str, Any]:
    """A student's task: their files (bytes and sha256 each) and how to grade them."""
    folder = Path(student.folder)
    files = []
    for path in submission_files(folder):
        data = path.read_bytes()
        files.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "data": data,
            }
        )
    return {
        "payload": PAYLOAD_VERSION,
        "student": student.student,
        "key": student.key,
        "files": files,
        "activities": list(job.activities),
        "tier": job.tier,
        "seed": job.seed,
        "options": list(job.options),
        "dlgrade_version": dlgrade.__version__,
        "rubric_version": job.rubric_version,
    }


def unpack(payload: dict[str, Any], folder: Path, rubric_version: str) -> None:
    """Write the payload's files into ``folder``, each checked against its sha256, and the
    whole against the student's key (which names every file and its bytes)."""
    folder.mkdir(parents=True)
    for entry in payload["files"]:
        relative = PurePosixPath(entry["path"])
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise TransferError(f"{entry['path']!r} is not a path inside a submission folder")
        data = entry["data"]
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise TransferError(
                f"{entry['path']}: its bytes do not match the sha256 sent with them "
                f"({len(data)} bytes arrived)"
            )
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    digest = roster.files_digest(folder)
    key = roster.grading_key(digest, rubric_version, payload["tier"], payload["seed"])
    if key != payload["key"]:
        raise TransferError(
            "the files that arrived are not the submission the client keyed (a file is "
            "missing or extra)"
        )


# -- on the worker ----------------------------------------------------------------------------


def worker_versions(activities: list[str]) -> dict[str, str]:
    """The dlgrade and rubric versions this machine grades ``activities`` with."""
    from dlgrade.selection import checks_dir, rubric_files

    try:
        root = checks_dir(None)
        version = roster.rubric_version(rubric_files(root, list(activities)))
    except DlgradeError as exc:
        root, version = None, f"none ({exc})"
    return {
        "dlgrade": dlgrade.__version__,
        "rubric": version,
        "checks": str(root or ""),
        "host": socket.gethostname(),
    }


def refusal(mine: dict[str, str], client_dlgrade: str, client_rubric: str, where: str) -> str:
    """The message for a worker whose versions are not the client's ('' when they are)."""
    if mine["dlgrade"] == client_dlgrade and mine["rubric"] == client_rubric:
        return ""
    return (
        f"worker {where} grades with dlgrade {mine['dlgrade']}, rubric {mine['rubric']}; "
        f"this client with dlgrade {client_dlgrade}, rubric {client_rubric}. Install the "
        "same dlgrade and rubric (checks/, or DLGRADE_CHECKS) on every worker "
        "(docs/cluster.md)"
    )


def guard(command: list[str], scratch: str) -> int:
    """Run ``command`` (one student's grading) so that it dies with the Dask worker.

    The worker starts this guard (``python -m dlgrade.cluster guard SCRATCH -- COMMAND``),
    and the guard asks the kernel for SIGTERM when the worker dies (``PR_SET_PDEATHSIG``).
    The grading runs in a session of its own — its pytest-xdist process, and their jailed
    workers below them — so that the guard can kill all of it at once, then remove the
    task's scratch folder: a killed worker leaves nothing grading, nothing on disk, and the
    scheduler gives the student to another worker."""
    import ctypes
    import shutil

    parent = os.getppid()
    child: subprocess.Popen | None = None

    def worker_died(signum, frame) -> None:
        if child is not None:  # (no wait: the interrupted child.wait() holds its lock)
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, worker_died)
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PDEATHSIG
    if os.getppid() != parent:  # the worker died before the call
        worker_died(signal.SIGTERM, None)
    child = subprocess.Popen(command, start_new_session=True)
    return child.wait()


def grade_student(payload: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: grade one student on this machine; the record as JSON.

    Answers ``{"record": ...}``, ``{"refused": message}`` (another version here) or
    ``{"error": message}`` (the files did not arrive whole, or the grading left no record)."""
    began = time.monotonic()
    host = socket.gethostname()
    where = _worker_address() or host
    if payload.get("payload") != PAYLOAD_VERSION:
        return {
            "refused": f"worker {where} reads task payload version {PAYLOAD_VERSION}, the "
            f"client sent {payload.get('payload')!r}: install the same dlgrade everywhere"
        }
    mine = worker_versions(payload["activities"])
    refused = refusal(mine, payload["dlgrade_version"], payload["rubric_version"], where)
    if refused:
        return {"refused": refused}
    with tempfile.TemporaryDirectory(prefix="dlgrade-task-") as tmp:
        klass, out = Path(tmp) / "class", Path(tmp) / "results"
        try:
            unpack(payload, klass / payload["student"], mine["rubric"])
        except TransferError as exc:
            return {"error": f"the files did not arrive whole on {where}: {exc}"}
        unpacked = time.monotonic()
        command = [
            sys.executable,
            "-m",
            "dlgrade.cluster",
            "guard",
            tmp,
            "--",
            sys.executable,
            "-m",
            "dlgrade.cli",
            "grade",
            str(klass),
            "--out",
            str(out),
            "--checks",
            mine["checks"],
            "--tier",
            payload["tier"],
            "--seed",
            str(payload["seed"]),
            "--jobs",
            "1",
            "--force",
            *(option for a in payload["activities"] for option in ("--activity", a)),
            *payload["options"],
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        run = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
        )
        path = gradebook.record_path(out, payload["student"])
        try:
            record = gradebook.read_record(path)
        except gradebook.GradebookError:
            tail = (run.stdout + run.stderr).strip()[-1500:]
            return {
                "error": f"the grading process on {where} ended (exit {run.returncode}) "
                f"without a record: {tail}"
            }
        return {
            "record": record.to_dict(),
            "task": {
                "host": host,
                "worker": where,
                "unpack_s": round(unpacked - began, 3),
                "grade_s": round(time.monotonic() - unpacked, 3),
            },
        }


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


# -- on the client ----------------------------------------------------------------------------


class DaskExecutor(Executor):
    """Students as Dask tasks: on the cluster at ``scheduler``, or on a ``LocalCluster``
    of ``workers`` processes (default: one per CPU) that this executor starts and stops."""

    name = "dask"
    writes_records = False

    def __init__(self, scheduler: str | None, *, workers: int | None = None) -> None:
        self.distributed = distributed_module()
        self.scheduler = scheduler
        self.workers = workers
        self.client = None
        self.cluster = None
        self.pending: dict[Any, Student] = {}
        self.refusals: set[str] = set()
        self._costs: dict[str, dict[str, float]] = {}  # per student: packing, bytes sent

    def describe(self) -> str:
        where = self.scheduler or f"a local Dask cluster ({self._n_workers()} workers)"
        return f"as Dask tasks on {where}"

    def _n_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)

    def open(self, job: Job, run: str, emit, *, gpu: bool = False) -> None:
        super().open(job, run, emit, gpu=gpu)
        distributed = self.distributed
        if self.scheduler:
            try:
                self.client = distributed.Client(
                    self.scheduler, timeout=CONNECT_SECONDS, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise UsageError(
                    f"--scheduler {self.scheduler}: cannot reach the Dask scheduler ({exc}); "
                    "is `dask scheduler` running there? (docs/cluster.md)"
                ) from None
        else:
            # the workers grade with this run's rubric folder (the same machine)
            self.cluster = distributed.LocalCluster(
                n_workers=self._n_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env={"DLGRADE_CHECKS": str(job.rubric_root)},
            )
            self.client = distributed.Client(self.cluster, set_as_default=False)
        self._check_workers(job)

    def _check_workers(self, job: Job) -> None:
        """Refuse a cluster whose workers would grade with another dlgrade or rubric."""
        answers = self.client.run(worker_versions, list(job.activities))
        refused = [
            refusal(mine, dlgrade.__version__, job.rubric_version, address)
            for address, mine in sorted(answers.items())
        ]
        refused = [r for r in refused if r]
        if refused:
            raise UsageError("refused: " + "\n  ".join(refused))
        if not answers:
            print("dlgrade grade: no Dask worker is connected yet; the tasks wait for one")
        if self.gpu and self.scheduler:
            info = self.client.scheduler_info().get("workers", {})
            if not any(w.get("resources", {}).get("GPU") for w in info.values()):
                print(
                    "dlgrade grade: some checks need a GPU and no worker offers one yet; "
                    "those students wait for a worker started with `--resources GPU=1`"
                )

    def submit(self, student: Student):
        future = super().submit(student)
        began = time.perf_counter()
        try:
            payload = pack(student, self.job)
        except OSError as exc:
            future.set_exception(
                StudentLost(f"cannot read {exc.filename or student.folder}: {exc.strerror}")
            )
            return future
        sent = sum(len(f["data"]) for f in payload["files"])
        resources = {"GPU": 1} if self.gpu and self.scheduler else None
        task = self.client.submit(
            grade_student,
            payload,
            key=f"dlgrade-{self.run_id}-{student.student}",
            pure=False,
            resources=resources,
        )
        self.pending[task] = student
        self._costs[student.student] = {
            "pack_s": round(time.perf_counter() - began, 4),
            "files_bytes": sent,
        }
        return future

    def run(self) -> str:
        """Collect the tasks as they finish. A task cancelled because the client lost the
        scheduler stops the run: its futures are gone (the cluster forgets them), every
        finished student is saved, and the same command grades the rest."""
        try:
            while self.pending:
                done = [task for task in self.pending if task.done()]
                if not done:
                    time.sleep(POLL_SECONDS)
                for task in done:
                    if task.status == "cancelled" and self._scheduler_lost(task):
                        return (
                            f"the Dask scheduler at {self.scheduler or 'the local cluster'} "
                            "was lost"
                        )
                    self._arrived(task)
        except KeyboardInterrupt:
            return INTERRUPTED
        finally:
            self._lose_the_rest("the run stopped before this student's task came back")
        return ""

    def _scheduler_lost(self, task) -> bool:
        try:
            task.result()
        except Exception as exc:  # noqa: BLE001 - distributed's CancelledError family
            return getattr(exc, "reason", "") == SCHEDULER_LOST or self.client.status not in (
                "running",
                "newly-created",
            )
        return False

    def _arrived(self, task) -> None:
        student = self.pending.pop(task)
        future = self.futures[student.student]
        try:
            answer = task.result()
        except Exception as exc:  # noqa: BLE001 - a task's failure is that student's only
            future.set_exception(StudentLost(f"the Dask task failed: {type(exc).__name__}: {exc}"))
            return
        if "refused" in answer:
            if answer["refused"] not in self.refusals:
                self.refusals.add(answer["refused"])
                print(f"dlgrade grade: refused: {answer['refused']}", file=sys.stderr)
            future.set_exception(StudentLost(f"refused: {answer['refused']}"))
            return
        if "error" in answer:
            future.set_exception(StudentLost(answer["error"]))
            return
        record = StudentRecord.from_dict(answer["record"])
        if record.key != student.key:
            future.set_exception(
                StudentLost(f"the worker graded under another key ({record.key[:12]}…)")
            )
            return
        worker = dict(record.worker)
        worker["task"] = {**answer.get("task", {}), **self._costs.get(student.student, {})}
        worker["task"]["record_bytes"] = len(json.dumps(answer["record"]))
        future.set_result(
            dataclasses.replace(
                record,
                folder=student.folder,
                name=student.name,
                lms_id=student.lms_id,
                worker=worker,
            )
        )

    def close(self) -> None:
        for task in list(self.pending):
            task.cancel()
        if self.client is not None:
            try:
                self.client.close(timeout=5)
            except Exception:  # noqa: BLE001 - a lost scheduler cannot be told goodbye
                pass
        if self.cluster is not None:
            try:
                self.cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":  # python -m dlgrade.cluster guard SCRATCH -- COMMAND...
    if sys.argv[1:2] != ["guard"] or "--" not in sys.argv:
        sys.exit("usage: python -m dlgrade.cluster guard SCRATCH -- COMMAND... (run by tasks)")
    split = sys.argv.index("--")
    sys.exit(guard(sys.argv[split + 1 :], sys.argv[2]))
