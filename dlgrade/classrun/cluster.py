"""Class runs on a Dask cluster: ``dlgrade grade SOURCE --executor dask [--scheduler ADDR]``.

One task grades a few students on a Dask worker's machine (:func:`grade_student`; a
batch of :func:`batch_size` students, so that a task's own start is shared): the students'
files travel inside the task (bytes and sha256, checked on arrival: no shared filesystem
is assumed), the worker's grading server (:class:`GradingServer`: one long-lived process
per task thread, which has imported pytest, dlgrade and the trusted Keras once and keeps a
zygote) forks a child that runs the class run on those students there — the same sandbox,
the same plugin, a fresh jailed worker per student, as on this machine — and the task
returns their records as JSON.
Only this client writes ``results/``, so resume, keys and every export are the same
whichever executor graded.

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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import dlgrade
from dlgrade import gradebook
from dlgrade.classrun import roster
from dlgrade.classrun.engine import INTERRUPTED, Executor, Job, StudentLost
from dlgrade.classrun.roster import Student
from dlgrade.errors import DlgradeError, UsageError
from dlgrade.files import submission_files
from dlgrade.gradebook import StudentRecord
from dlgrade.sandbox import jail

#: the shape of a task's payload; a worker refuses another
PAYLOAD_VERSION = 2
#: the most students one task grades (DLGRADE_DASK_BATCH sets another number)
MAX_BATCH = 4
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


def pack(students: list[Student], job: Job) -> dict[str, Any]:
    """A task: its students' files (bytes and sha256 each) and how to grade them."""
    return task_payload([pack_student(student) for student in students], job)


def task_payload(entries: list[dict[str, Any]], job: Job) -> dict[str, Any]:
    """A task of students already packed (:func:`pack_student`), and how to grade them."""
    return {
        "payload": PAYLOAD_VERSION,
        "students": entries,
        "activities": list(job.activities),
        "tier": job.tier,
        "seed": job.seed,
        "options": list(job.options),
        "dlgrade_version": dlgrade.__version__,
        "rubric_version": job.rubric_version,
    }


def pack_student(student: Student) -> dict[str, Any]:
    """One student of a task: their name, the key they are graded under, their files."""
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
    return {"student": student.student, "key": student.key, "files": files}


def batch_size(students: int, slots: int) -> int:
    """How many students one task grades: enough that a task's own start (its pytest
    session, a few tenths of a second, more on a busy machine) is shared, few enough that
    the cluster's last tasks end together — about three tasks per task slot, at most
    :data:`MAX_BATCH` students each; one where no worker is connected yet."""
    setting = os.environ.get("DLGRADE_DASK_BATCH", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    if slots <= 0:
        return 1
    return max(1, min(MAX_BATCH, students // (3 * slots)))


def unpack(payload: dict[str, Any], entry: dict[str, Any], folder: Path, rubric_version: str):
    """Write a student's files (``entry``, of ``payload``) into ``folder``, each checked
    against its sha256, and the whole against the student's key (which names every file
    and its bytes)."""
    folder.mkdir(parents=True)
    for entry_file in entry["files"]:
        relative = PurePosixPath(entry_file["path"])
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise TransferError(
                f"{entry_file['path']!r} is not a path inside a submission folder"
            )
        data = entry_file["data"]
        if hashlib.sha256(data).hexdigest() != entry_file["sha256"]:
            raise TransferError(
                f"{entry_file['path']}: its bytes do not match the sha256 sent with them "
                f"({len(data)} bytes arrived)"
            )
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    digest = roster.files_digest(folder)
    key = roster.grading_key(digest, rubric_version, payload["tier"], payload["seed"])
    if key != entry["key"]:
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

    The worker starts this guard (``python -m dlgrade.classrun.cluster guard SCRATCH -- COMMAND``),
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
    """The Dask task: grade the payload's students on this machine; their records as JSON.

    Answers ``{"records": {student: record}, "errors": {student: message}, "task": ...}``
    (a student whose files did not arrive whole, or whose grading left no record, has an
    error instead of a record), or ``{"refused": message}`` (another version here)."""
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
        errors: dict[str, str] = {}
        arrived = []
        for entry in payload["students"]:
            try:
                unpack(payload, entry, klass / entry["student"], mine["rubric"])
                arrived.append(entry["student"])
            except TransferError as exc:
                errors[entry["student"]] = f"the files did not arrive whole on {where}: {exc}"
                shutil.rmtree(klass / entry["student"], ignore_errors=True)
        unpacked = time.monotonic()
        records: dict[str, dict] = {}
        graded_in: dict[str, Any] = {}
        if arrived:
            grading = {
                "source": str(klass),
                "out": str(out),
                "checks": mine["checks"],
                "tier": payload["tier"],
                "seed": payload["seed"],
                "activities": list(payload["activities"]),
                "options": list(payload["options"]),
            }
            returncode, said, graded_in = grade_here(grading, tmp)
            for name in arrived:
                try:
                    record = gradebook.read_record(gradebook.record_path(out, name))
                except gradebook.GradebookError:
                    errors[name] = (
                        f"the grading process on {where} ended (exit {returncode}) "
                        f"without a record: {said.strip()[-1500:]}"
                    )
                    continue
                records[name] = record.to_dict()
        grade_s = time.monotonic() - unpacked
        walls = sum(float(r.get("wall_s") or 0.0) for r in records.values())
        return {
            "records": records,
            "errors": errors,
            "task": {
                "host": host,
                "worker": where,
                "students": len(payload["students"]),
                "unpack_s": round(unpacked - began, 3),
                "grade_s": round(grade_s, 3),
                # per student: the task's time that was not a student's own grading
                "outside_s": round(max(0.0, grade_s - walls) / max(1, len(records)), 3),
                **graded_in,
            },
        }


# -- the grading server: one long-lived grading process per task slot of a Dask worker ------

#: what a grading process imports before its first student: the server imports it once
SERVER_IMPORTS = (
    "pytest",
    "xdist",
    "dlgrade.cli",
    "dlgrade.classrun",
    "dlgrade.classrun.plugin",
    "dlgrade.plugin",
    "keras",
)
#: the last lines of a grading's output that an error quotes
SAID_BYTES = 4000


class GradingServer:
    """A Dask worker's grading process (``python -m dlgrade.classrun.cluster serve``): it grades
    task after task, one at a time, for the tasks of one thread of the worker.

    It starts the zygote its students' workers will need, imports once what every grading
    needs (pytest and its plugins, dlgrade, the trusted side's Keras) meanwhile, and forks
    a child of itself per task. The child runs the very ``dlgrade grade`` a task ran in a
    subprocess of its own before, on the task's students, in its own process (no
    pytest-xdist; each student in a fresh jailed worker), then exits: nothing of one task's
    grading reaches the next one's. The server keeps the zygote, so its students' workers
    are forked from it (TensorFlow imported once per server, not once per student:
    dlgrade/sandbox/zygote.py). A student's code runs only in their jailed worker, never in
    the server or its children.

    It dies with the Dask worker (the parent-death signal, from a thread that lives as
    long as the worker) and takes its child and the task's scratch folder with it."""

    def __init__(self, warm: dict[str, Any] | None = None) -> None:
        """``warm``: the workers its students will need (:func:`warm_spec`), whose zygote
        the server starts before its own imports."""
        self.home = Path(tempfile.mkdtemp(prefix="dlgrade-server-"))
        log = os.open(self.home / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        command = [sys.executable, "-m", "dlgrade.classrun.cluster", "serve"]
        if warm is not None:
            command += ["--warm", json.dumps(warm, allow_nan=False)]
        try:  # lives as long as the Dask worker: so does the server (parent-death signal)
            proc = jail.popen_from_lasting_thread(
                command,
                "dlgrade-grading-server",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
                start_new_session=True,
            )
        except OSError as exc:
            raise OSError(f"could not start the grading server: {exc}") from None
        finally:
            os.close(log)
        self.proc: subprocess.Popen = proc
        if self._read() != {"ready": True}:
            self.close()
            raise OSError(f"the grading server did not start: {self.log_tail()}")

    def _read(self) -> dict | None:
        line = self.proc.stdout.readline()
        try:
            answer = json.loads(line)
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def log_tail(self) -> str:
        try:
            return (self.home / "server.log").read_text(errors="replace")[-SAID_BYTES:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def grade(self, grading: dict[str, Any], scratch: str) -> tuple[int, str]:
        """The class run ``grading`` in a child of the server; its exit code and output."""
        request = json.dumps({"grading": grading, "scratch": scratch}, allow_nan=False)
        try:
            self.proc.stdin.write(request.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise OSError(f"the grading server is gone: {exc}") from None
        answer = self._read()
        if answer is None or not isinstance(answer.get("returncode"), int):
            raise OSError(f"the grading server died: {self.log_tail()}")
        return answer["returncode"], str(answer.get("said", ""))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


#: the servers of this Dask worker that are not grading now (one per task thread at most)
_idle_servers: list[GradingServer] = []
_servers_lock = threading.Lock()
#: why this worker's grading server could not start, once: tasks then grade as before
_no_server: list[str] = []


def server_enabled() -> bool:
    """Whether tasks grade in a long-lived grading server (unless ``DLGRADE_SERVER=0``)."""
    return os.environ.get("DLGRADE_SERVER", "") != "0"


def grade_here(grading: dict[str, Any], scratch: str) -> tuple[int, str, dict[str, Any]]:
    """Grade one task's class of one (``grading``: :func:`grade_student`'s) on this Dask
    worker: in an idle grading server of this worker (started if need be), else in a
    guarded ``dlgrade grade`` subprocess of its own. The exit code, the end of the output,
    and which of the two graded (``graded_in``: "server", with its pid, or "subprocess")."""
    if not server_enabled() or _no_server:
        return (*_graded_by_subprocess(grading, scratch), {"graded_in": "subprocess"})
    with _servers_lock:
        server = _idle_servers.pop() if _idle_servers else None
    try:
        if server is None or not server.alive():
            if server is not None:
                server.close()
            server = GradingServer(warm_spec(grading))
    except OSError as exc:
        _no_server.append(str(exc))
        print(
            f"dlgrade: tasks grade in a subprocess each (no grading server): {exc}", file=sys.stderr
        )
        return (*_graded_by_subprocess(grading, scratch), {"graded_in": "subprocess"})
    where = {"graded_in": "server", "server_pid": server.proc.pid}
    try:
        code, said = server.grade(grading, scratch)
    except OSError as exc:
        server.close()
        return 70, str(exc), where  # the task then says: no record, and why
    with _servers_lock:
        _idle_servers.append(server)
    return code, said, where


def warm_spec(grading: dict[str, Any]) -> dict[str, Any] | None:
    """The zygote a new grading server starts at once for ``grading``'s students: CPU
    workers preloading what the rubrics' ``PRELOAD`` name (read from the files, none
    imported); None where the workers will not come from a CPU zygote (a full-tier run may
    get a GPU; ``--no-preload`` asks for none)."""
    from dlgrade.sandbox import zygote
    from dlgrade.selection import rubric_files

    options = list(grading.get("options", ()))
    if grading.get("tier") == "full" or "--no-preload" in options or not zygote.enabled():
        return None
    try:
        files = rubric_files(Path(grading["checks"]), list(grading["activities"]))
    except (DlgradeError, OSError, KeyError, TypeError):
        return None
    return {"preload": sorted(rubric_preload(files))}


def rubric_preload(files: list[Path]) -> set[str]:
    """The union of the rubric files' ``PRELOAD = (...)`` (the grading plugin's
    ``state.preload``), read with ``ast``; a value that is not literal names nothing."""
    import ast

    found: set[str] = set()
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(), str(path))
        except (OSError, SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "PRELOAD" for target in node.targets
            ):
                try:
                    value = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
                if isinstance(value, (tuple, list)):
                    found.update(v for v in value if isinstance(v, str))
    return found


def _warm_zygote(spec: dict[str, Any] | None) -> threading.Thread | None:
    """In a new grading server: start the zygote ``spec`` (:func:`warm_spec`) names, so that
    its TensorFlow loads while the server imports what its children inherit."""
    if spec is None:
        return None
    from dlgrade import gpu
    from dlgrade.sandbox import zygote
    from dlgrade.sandbox.session import worker_environment

    env = worker_environment(Path(tempfile.gettempdir()), gpu.Device(None, "CPU"))
    return zygote.warm(env, tuple(map(str, spec.get("preload", ()))))


def _graded_by_subprocess(grading: dict[str, Any], scratch: str) -> tuple[int, str]:
    argv = ["grade", grading["source"], "--out", grading["out"], "--checks", grading["checks"]]
    argv += ["--tier", grading["tier"], "--seed", str(grading["seed"]), "--jobs", "1", "--force"]
    argv += [option for a in grading["activities"] for option in ("--activity", a)]
    command = [
        sys.executable, "-m", "dlgrade.classrun.cluster", "guard", scratch, "--",
        sys.executable, "-m", "dlgrade.cli", *argv, *grading["options"],
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    return run.returncode, (run.stdout + run.stderr)[-SAID_BYTES:]


def serve(argv: list[str] | None = None) -> int:
    """The grading server's loop (``python -m dlgrade.classrun.cluster serve [--warm SPEC]``):
    start the zygote its students will need, import, say ready, then for each request on
    stdin fork a child that grades it; answer on stdout."""
    import ctypes

    argv = list(argv or [])
    try:
        warm = json.loads(argv[argv.index("--warm") + 1]) if "--warm" in argv else None
    except (ValueError, IndexError):
        warm = None

    parent = os.getppid()
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    os.dup2(2, 1)  # what a library prints must not reach the replies
    current: dict[str, Any] = {"pid": None, "scratch": None}

    def worker_died(signum, frame) -> None:
        if current["pid"] is not None:
            try:
                os.killpg(current["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        if current["scratch"]:
            shutil.rmtree(current["scratch"], ignore_errors=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, worker_died)
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PDEATHSIG
    if os.getppid() != parent:
        worker_died(signal.SIGTERM, None)
    warming = _warm_zygote(warm if isinstance(warm, dict) else None)
    for name in SERVER_IMPORTS:
        try:
            __import__(name)
        except Exception as exc:  # noqa: BLE001 - a grading imports it again and says why
            print(f"dlgrade server: could not import {name}: {exc}", file=sys.stderr)
    _import_pytest_plugins()
    from dlgrade.sandbox import zygote

    if warming is not None:
        warming.join()  # before any fork (zygote.warm)

    def reply(answer: dict) -> None:
        replies.write(json.dumps(answer, allow_nan=False).encode() + b"\n")
        replies.flush()

    reply({"ready": True})
    for line in requests:
        try:
            request = json.loads(line)
            grading, scratch = dict(request["grading"]), str(request["scratch"])
        except (ValueError, KeyError, TypeError):
            reply({"returncode": 70, "said": "the grading server got a malformed request"})
            continue
        current["scratch"] = scratch
        code, said = _grade_in_child(grading, scratch, current)
        current["pid"] = current["scratch"] = None
        if code < 0:  # killed mid-grading: its workers may still be the zygote's children
            zygote.close_all()
        reply({"returncode": code, "said": said})
    return 0


def _grade_in_child(grading: dict, scratch: str, current: dict) -> tuple[int, str]:
    """Fork; the child runs the class run ``grading`` and exits, and the server lends it a
    zygote when it asks for one. The child's exit code and the end of its output."""
    import select

    from dlgrade.sandbox import zygote

    log = Path(scratch) / "grading.log"
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        ours.close()
        _child(grading, log, theirs)
    theirs.close()
    current["pid"] = pid
    ended = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([ours, ended], [], [])
            if ended in ready:
                break
            try:
                zygote.lend(ours)
            except OSError:  # the child is gone: its end says how
                select.select([ended], [], [])
                break
    finally:
        os.close(ended)
        ours.close()
    _, status = os.waitpid(pid, 0)
    try:
        said = log.read_text(errors="replace")[-SAID_BYTES:]
    except OSError:
        said = ""
    return os.waitstatus_to_exitcode(status), said


def _child(grading: dict, log: Path, lender: socket.socket):
    import atexit
    import ctypes
    import traceback

    code = 70
    try:
        os.setsid()  # the server kills the whole grading at once
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        from dlgrade import classrun
        from dlgrade.sandbox import zygote

        zygote.borrow_all(lender)
        job = classrun.plan(
            Path(grading["source"]),
            Path(grading["out"]),
            activities=list(grading["activities"]),
            checks=Path(grading["checks"]),
            tier=str(grading["tier"]),
            seed=int(grading["seed"]),
            force=True,
            options=tuple(map(str, grading["options"])),
        )
        # one student, graded in this process: no pytest-xdist process to start; the client
        # collected the rubric, and builds every export from the records, for the class
        code = classrun.run(
            job, classrun.LocalExecutor(1, in_process=True), collect_first=False, exports=False
        )
    except DlgradeError as exc:
        print(f"dlgrade grade: error: {exc}", file=sys.stderr)
        code = 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 70
    except BaseException:  # noqa: BLE001 - said in the log; the task reports no record
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            atexit._run_exitfuncs()
        finally:
            os._exit(code)


def _import_pytest_plugins() -> None:
    """The plugins pytest loads at start-up (its ``pytest11`` entry points)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="pytest11"):
        try:
            entry.load()
        except Exception:  # noqa: BLE001 - pytest loads it again and says why
            pass


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
        self.pending: dict[Any, list[Student]] = {}
        self.queued: list[Student] = []
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
        """The student waits for :meth:`run`, which sends the students in batches."""
        future = super().submit(student)
        self.queued.append(student)
        return future

    def _slots(self) -> int:
        """The task slots of the workers connected now (0: none yet)."""
        try:
            info = self.client.scheduler_info().get("workers", {})
        except Exception:  # noqa: BLE001 - an unreachable scheduler: batches of one
            return 0
        return sum(int(w.get("nthreads", 1) or 1) for w in info.values())

    def _send(self) -> None:
        """Pack the queued students into tasks of :func:`batch_size` and submit them."""
        queued, self.queued = self.queued, []
        size = batch_size(len(queued), self._slots())
        resources = {"GPU": 1} if self.gpu and self.scheduler else None
        for first in range(0, len(queued), size):
            began = time.perf_counter()
            batch, packed = [], []
            for student in queued[first : first + size]:
                try:
                    packed.append(pack_student(student))
                    batch.append(student)
                except OSError as exc:
                    self.futures[student.student].set_exception(
                        StudentLost(f"cannot read {exc.filename or student.folder}: {exc.strerror}")
                    )
            if not batch:
                continue
            task = self.client.submit(
                grade_student,
                task_payload(packed, self.job),
                key=f"dlgrade-{self.run_id}-{first}-{batch[0].student}",
                pure=False,
                resources=resources,
            )
            self.pending[task] = batch
            pack_s = (time.perf_counter() - began) / len(batch)
            for student, entry in zip(batch, packed, strict=True):
                self._costs[student.student] = {
                    "pack_s": round(pack_s, 4),
                    "files_bytes": sum(len(f["data"]) for f in entry["files"]),
                }

    def run(self) -> str:
        """Collect the tasks as they finish. A task cancelled because the client lost the
        scheduler stops the run: its futures are gone (the cluster forgets them), every
        finished student is saved, and the same command grades the rest."""
        try:
            self._send()
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
        students = self.pending.pop(task)
        try:
            answer = task.result()
        except Exception as exc:  # noqa: BLE001 - a task's failure is its students' only
            for student in students:
                self._lost(student, f"the Dask task failed: {type(exc).__name__}: {exc}")
            return
        if "refused" in answer:
            if answer["refused"] not in self.refusals:
                self.refusals.add(answer["refused"])
                print(f"dlgrade grade: refused: {answer['refused']}", file=sys.stderr)
            for student in students:
                self._lost(student, f"refused: {answer['refused']}")
            return
        records, errors = answer.get("records", {}), answer.get("errors", {})
        for student in students:
            if student.student in records:
                self._recorded(student, records[student.student], answer)
            else:
                self._lost(student, errors.get(student.student, "the task returned no record"))

    def _lost(self, student: Student, why: str) -> None:
        future = self.futures[student.student]
        if not future.done():
            future.set_exception(StudentLost(why))

    def _recorded(self, student: Student, data: dict, answer: dict) -> None:
        future = self.futures[student.student]
        record = StudentRecord.from_dict(data)
        if record.key != student.key:
            future.set_exception(
                StudentLost(f"the worker graded under another key ({record.key[:12]}…)")
            )
            return
        worker = dict(record.worker)
        worker["task"] = {**answer.get("task", {}), **self._costs.get(student.student, {})}
        worker["task"]["record_bytes"] = len(json.dumps(data))
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


if __name__ == "__main__":  # python -m dlgrade.classrun.cluster guard SCRATCH -- COMMAND... | serve
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve(sys.argv[2:]))
    if sys.argv[1:2] != ["guard"] or "--" not in sys.argv:
        sys.exit(
            "usage: python -m dlgrade.classrun.cluster guard SCRATCH -- COMMAND... (run by tasks)"
        )
    split = sys.argv.index("--")
    sys.exit(guard(sys.argv[split + 1 :], sys.argv[2]))
