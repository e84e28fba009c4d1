"""The trusted side under hostile data: what a worker sends, writes or names is never the
grader's fault, never blocks it and never makes it read past a budget (docs/security.md,
"The trusted side: hostile data and budgets").

Property tests run a fast profile by default; DLGRADE_FUZZ_EXAMPLES=N runs N examples each.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlgrade.sandbox.protocol
from dlgrade import safeio
from dlgrade.errors import CallTimeout, MachineBusy, RubricError, SandboxError, SubmissionError
from dlgrade.rubric import GRADER_FAULTS, REGRADE_REASONS, TAMPERING
from dlgrade.sandbox import Limits, WorkerSession, notebook
from dlgrade.sandbox import session as session_module
from dlgrade.sandbox.protocol import (
    MAX_CONTAINERS,
    ChannelClosed,
    ChannelTimeout,
    Codec,
    ProtocolError,
    read_npy,
    read_word2vec_text,
    recv_message,
)
from dlgrade.sandbox.session import TAMPERING_MESSAGE, WORKER_KINDS
from tests.notebooks import notebook_text

FUZZ = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0"))
ATTACKS = Path(__file__).resolve().parent / "attacks"
LIGHT_RUBRICS = Path(__file__).resolve().parent / "rubrics" / "light"
FORGE = ATTACKS / "forge_replies"


def fuzz(default: int) -> settings:
    return settings(
        max_examples=FUZZ or default,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# -- a session whose worker forges replies -----------------------------------------------


@pytest.fixture(scope="module")
def forger(tmp_path_factory):
    """A real worker running tests/attacks/forge_replies (no TensorFlow)."""
    folder = tmp_path_factory.mktemp("forger") / "student"
    shutil.copytree(FORGE, folder)
    session = WorkerSession(folder, Limits(call_timeout=20, import_timeout=20))
    yield session
    session.close()


def forge(session: WorkerSession, spec: dict):
    return session.call("activity_1_01", "forge", (json.dumps(spec, allow_nan=True),))


def outcome(session: WorkerSession, spec: dict) -> tuple[str, str]:
    try:
        forge(session, spec)
    except SubmissionError as exc:
        return exc.outcome, exc.reason
    return "pass", ""


@pytest.mark.parametrize(
    "kind", ["machine_busy", "harness_error", "rubric_error", "grader_stalled"]
)
def test_a_reply_that_claims_a_grader_fault_is_the_students_tampering(forger, kind):
    spec = {"ok": False, "error": {"kind": kind, "message": "not your fault", "traceback": ""}}
    with pytest.raises(SubmissionError) as excinfo:
        forge(forger, spec)
    assert (excinfo.value.outcome, excinfo.value.reason) == ("crash", TAMPERING)
    assert excinfo.value.reason not in GRADER_FAULTS + REGRADE_REASONS
    assert str(excinfo.value).startswith("the worker sent a reply the grader cannot trust")
    assert forger.call("activity_1_01", "solve", (), {"start": 10.0, "iterations": 10}) == 9.9


@pytest.mark.parametrize(
    "spec",
    [
        {"ok": "yes"},
        {"value": 3},
        {"ok": False, "error": "a string"},
        {"ok": False, "error": {"kind": ["student_exception"]}},
        {"ok": False, "error": {"kind": "student_exception", "message": {"a": 1}}},
        {"ok": False, "error": {"kind": "student_exception", "traceback": [1, 2]}},
        {"raw": struct.pack("!I", 5).hex() + "7b7b7b7b7b"},  # a frame that is not JSON
        {"raw": struct.pack("!I", 2**31).hex()},  # a frame over the size limit
    ],
    ids=["ok-not-bool", "no-ok", "error-str", "kind-list", "message-dict", "tb-list", "not-json",
         "oversized"],
)
def test_a_malformed_reply_after_student_code_ran_is_tampering(forger, spec):
    assert outcome(forger, spec) == ("crash", TAMPERING)


def test_a_reply_with_an_integer_of_5000_digits_is_the_students_not_the_graders(forger):
    body = b'{"ok": true, "value": ' + b"7" * 5000 + b"}"
    raw = (struct.pack("!I", len(body)) + body).hex()
    assert outcome(forger, {"raw": raw}) == ("crash", TAMPERING)


def test_an_integer_no_float_holds_is_a_bad_value_not_a_rubric_crash(forger):
    # expect.scalar's math.isfinite(10**400) would raise OverflowError in the rubric
    assert outcome(forger, {"ok": True, "value": 10**400}) == ("error", "bad_value")


def test_a_reply_nested_100000_deep_is_a_protocol_break_not_a_recursion_error(forger):
    body = b'{"ok": true, "value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    raw = (struct.pack("!I", len(body)) + body).hex()
    assert outcome(forger, {"raw": raw}) == ("crash", TAMPERING)


def test_a_value_of_more_lists_than_the_budget_is_the_students_unencodable_value(forger):
    """The honest worker refuses to send it, saying why; a forged frame is tampering."""
    with pytest.raises(SubmissionError, match="return a numpy array") as excinfo:
        forger.call("activity_1_01", "many_lists", (MAX_CONTAINERS + 1,))
    assert excinfo.value.reason == "unencodable"
    body = b'{"ok": true, "value": [' + b"[]," * MAX_CONTAINERS + b"[]]}"
    raw = (struct.pack("!I", len(body)) + body).hex()
    assert outcome(forger, {"raw": raw}) == ("crash", TAMPERING)


def test_a_reply_naming_an_array_file_that_is_a_folder_is_a_bad_value(forger):
    (forger.exchange_dir / "w-1-1.npy").mkdir()
    (forger.exchange_dir / "w-1-1.npy" / "inside").write_text("x")
    assert outcome(forger, {"ok": True, "value": {"__ndarray__": "w-1-1.npy"}}) == (
        "error",
        "bad_value",
    )


def test_folders_planted_under_the_graders_argument_names_do_not_stop_it(forger):
    """The grader's array files once were r-PID-N.npy: a worker could plant folders there."""
    for n in range(1, 200):
        (forger.exchange_dir / f"r-{os.getpid()}-{n}.npy").mkdir(exist_ok=True)
    got = forger.call("activity_1_01", "echo", (np.arange(5.0),))
    np.testing.assert_array_equal(got, np.arange(5.0))
    names = [n for n in os.listdir(forger.exchange_dir) if n.startswith("r-")]
    assert all(n.startswith(f"r-{os.getpid()}-") for n in names), "the grader left its files"


def test_three_sparse_arrays_at_the_per_array_cap_pass_the_reply_budget(forger, monkeypatch):
    """Scaled down 1,024 times: each file declares exactly the per-array cap."""
    monkeypatch.setattr(dlgrade.sandbox.protocol, "MAX_ARRAY_BYTES", 2**20)
    monkeypatch.setattr(dlgrade.sandbox.protocol, "MAX_REPLY_ARRAY_BYTES", 3 * 2**19)
    names = [f"w-9-{i}.npy" for i in range(3)]
    for name in names:
        _sparse_npy(forger.exchange_dir / name, 2**20 // 8)
    with pytest.raises(SubmissionError) as excinfo:
        forge(forger, {"ok": True, "value": [{"__ndarray__": n} for n in names]})
    assert excinfo.value.reason == "bad_value"
    assert "one answer holds arrays of more than" in str(excinfo.value)
    assert "Return less data per call" in str(excinfo.value)
    assert not any((forger.exchange_dir / n).exists() for n in names[:2])  # the ones read


def test_more_arrays_in_one_reply_than_the_budget_allows_is_a_bad_value(forger, monkeypatch):
    monkeypatch.setattr(dlgrade.sandbox.protocol, "MAX_REPLY_ARRAYS", 4)
    value = [{"__ndarray__": f"w-8-{i}.npy"} for i in range(5)]
    for i in range(5):
        np.save(forger.exchange_dir / f"w-8-{i}.npy", np.zeros(2))
    with pytest.raises(SubmissionError, match="more than 4 arrays"):
        forge(forger, {"ok": True, "value": value})


def test_the_session_budget_of_array_bytes_holds_across_replies(forger, monkeypatch):
    budget = forger._codec.session_bytes + 100
    monkeypatch.setattr(dlgrade.sandbox.protocol, "MAX_SESSION_ARRAY_BYTES", budget)
    np.save(forger.exchange_dir / "w-7-1.npy", np.zeros(10))  # 80 bytes: within
    forge(forger, {"ok": True, "value": {"__ndarray__": "w-7-1.npy"}})
    np.save(forger.exchange_dir / "w-7-2.npy", np.zeros(10))  # 160 in all: past it
    with pytest.raises(SubmissionError, match="this grading session has read"):
        forge(forger, {"ok": True, "value": {"__ndarray__": "w-7-2.npy"}})


def test_a_model_file_name_with_a_nul_byte_is_tampering_not_a_value_error(forger):
    with pytest.raises(SubmissionError) as excinfo:
        forger.take_file("model\0.keras", "model.keras")
    assert excinfo.value.reason == TAMPERING


# -- the same attack, through `dlgrade check` ----------------------------------------------


def test_dlgrade_check_of_a_forged_machine_busy_exits_1_and_says_tampering(tmp_path):
    shutil.copytree(FORGE, tmp_path / "work")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, "-m", "dlgrade.cli", "check", str(tmp_path / "work")]
        + ["--checks", str(LIGHT_RUBRICS), "--grade-json", str(tmp_path / "g.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    grade = json.loads((tmp_path / "g.json").read_text())
    by_name = {c["id"].rsplit("/", 1)[-1].removeprefix("test_"): c for c in grade["checks"]}
    loss = by_name["loss_fn_at_zero"]
    assert (loss["outcome"], loss["reason"]) == ("crash", TAMPERING), loss["feedback"]
    assert by_name["start_is_honoured"]["outcome"] == "pass"
    assert "INTERNAL ERROR" not in run.stdout


# -- a notebook that plants a FIFO where the grader reads its progress -------------------

FIFO_CELL = """
import os
from pathlib import Path
progress = Path(os.environ["HOME"]).parent / "exchange" / "notebook-progress.json"
progress.unlink(missing_ok=True)
os.mkfifo(progress)
while True:
    pass
"""


def test_a_fifo_in_place_of_the_notebook_progress_file_does_not_hang_the_grader(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "activity_1_01.ipynb").write_text(notebook_text([FIFO_CELL]))
    session = WorkerSession(tmp_path / "sub", Limits(import_timeout=6, call_timeout=6))
    result: dict = {}

    def call():
        try:
            session.call("activity_1_01", "loss_fn", (0.0,))
        except BaseException as exc:  # handed back to the test thread
            result["error"] = exc

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(60)
    blocked = caller.is_alive()
    if blocked:  # a writer lets the blocked open() return, so that the session can close
        fifo = session.exchange_dir / notebook.PROGRESS_FILE
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        caller.join(10)
    session.close()
    assert not blocked, "the grader blocked opening a FIFO the notebook planted"
    # a timeout (with no hint: the record is gone); MachineBusy on a machine too loaded
    assert isinstance(result.get("error"), CallTimeout | MachineBusy), result


def test_a_timeout_hint_from_a_forged_progress_record_is_empty_not_a_crash(tmp_path):
    for record in (
        {"running": [1, "x", "soon"], "done": []},
        {"running": [1, "x", 0.0], "done": [[1, "a", "b"]]},
        {"running": [1, "x", 0.0], "done": 5},
        {"running": [1, ["x"], 1e308], "done": []},
    ):
        (tmp_path / notebook.PROGRESS_FILE).write_text(json.dumps(record))
        assert notebook.timeout_hint(tmp_path / notebook.PROGRESS_FILE) == ""


# -- the reply handling itself, without a worker -------------------------------------------


class _Output:
    def wait_for_mark(self, number, timeout=1.0):
        pass

    def start_window(self):
        pass


class _Proc:
    """What `_request` needs of a worker process: requests go to /dev/null."""

    def __init__(self, pending: int = 0):
        self.req_w = os.open(os.devnull, os.O_WRONLY)
        self.pending, self.sent, self.student_code, self.uid = pending, 0, True, None
        self.output = _Output()
        self.killed = False

    def kill(self):
        self.killed = True


@pytest.fixture(scope="module")
def bare_session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bare") / "student"
    folder.mkdir()
    session = WorkerSession(folder, Limits(), isolation="rlimits")
    yield session
    session.close()


def handle_replies(session: WorkerSession, replies: list[dict], pending: int = 0, op="call"):
    """Run `_request` with ``replies`` as what the worker answers, in order."""
    answers = iter(replies)
    session._answer = lambda proc, timeout, label, charge=False: next(answers)
    proc = _Proc(pending)
    session._proc = proc
    try:
        return session._request({"op": op}, 5.0, "f()")
    finally:
        os.close(proc.req_w)
        del session._answer
        session._proc = None


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=10)
)
_tags = st.sampled_from(
    ["__tuple__", "__dict__", "__pairs__", "__npscalar__", "dtype", "__ndarray__", "__handle__",
     "type", "ok", "error", "kind", "value", "x"]
)
json_tree = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_tags, children, max_size=3),
    max_leaves=25,
)
_kinds = st.sampled_from(sorted(WORKER_KINDS) + list(GRADER_FAULTS) + ["", "tampering"]) | st.text(
    max_size=8
)
_errors = st.fixed_dictionaries(
    {"kind": _kinds | json_tree},
    optional={"message": st.text(max_size=20) | json_tree, "traceback": st.text() | json_tree},
)
replies = st.fixed_dictionaries(
    {},
    optional={
        "ok": st.sampled_from([True, False, None, 1, 0, "true"]),
        "value": json_tree,
        "error": _errors | json_tree,
        "seconds": st.floats() | json_tree,
        "notes": json_tree,
    },
)


@fuzz(300)
@given(reply=replies)
def test_any_reply_after_student_code_ran_is_a_value_or_the_students_outcome(bare_session, reply):
    try:
        handle_replies(bare_session, [reply])
    except SubmissionError as exc:
        assert exc.reason not in GRADER_FAULTS
    except (SandboxError, RubricError) as exc:  # pragma: no cover - the property
        raise AssertionError(f"{reply!r} became a grader fault: {exc}") from exc
    assert bare_session.busy_seconds == bare_session.busy_seconds  # never NaN


_export_answers = json_tree | st.fixed_dictionaries(
    {"file": st.text(max_size=20) | json_tree, "traced": st.text(max_size=300) | json_tree}
)


@fuzz(200)
@given(answer=_export_answers)
def test_any_answer_to_saving_a_model_is_a_trusted_copy_or_the_students_outcome(
    bare_session, answer
):
    """The worker names the saved file and, for a traced subclassed model, the student's
    class (dlgrade/tracing.py): any answer is a file taken under the grader's own name and
    a class name of bounded text, or the student's tampering — never a grader fault."""
    from dlgrade.sandbox.protocol import Handle

    session = bare_session
    session._request = lambda request, timeout, label: answer
    session._ready = lambda: None
    session._check_handle = lambda handle: None
    try:
        exported = session.export(Handle(1, "keras.Model", session.generation))
    except SubmissionError as exc:
        assert exc.reason not in GRADER_FAULTS
    else:
        assert exported.path.parent != session.exchange_dir
        traced = exported.traced
        assert traced is None or (isinstance(traced, str) and len(traced) <= 200)
    finally:
        for name in ("_request", "_ready", "_check_handle"):
            del session.__dict__[name]


@fuzz(150)
@given(preload=replies, imported=replies)
def test_any_preload_and_import_reply_never_crashes_the_session(bare_session, preload, imported):
    try:
        handle_replies(bare_session, [preload, imported], pending=1, op="import")
    except SubmissionError:
        pass
    assert all(isinstance(note, str) for note in bare_session.notes)
    assert bare_session.preload_seconds == bare_session.preload_seconds


def test_a_worker_that_stops_reading_requests_cannot_block_the_grader(bare_session, monkeypatch):
    monkeypatch.setattr(session_module, "SEND_SECONDS", 0.5)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with pytest.raises(BlockingIOError):
        while True:  # fill the pipe: the worker never reads
            os.write(write_end, b"x" * 65536)
    os.set_blocking(write_end, True)
    proc = _Proc()
    os.close(proc.req_w)
    proc.req_w = write_end
    bare_session._proc = proc
    result = {}

    def request():
        try:
            bare_session._request({"op": "call", "args": "y" * 100_000}, 5.0, "f()")
        except BaseException as exc:  # handed back to the test thread
            result["error"] = exc

    sender = threading.Thread(target=request, daemon=True)
    sender.start()
    sender.join(10)
    blocked = sender.is_alive()
    os.close(read_end)  # a broken pipe frees a sender blocked in write()
    sender.join(5)
    os.close(write_end)
    bare_session._proc = None
    assert not blocked, "the grader blocked writing to a worker that stopped reading"
    assert getattr(result.get("error"), "reason", None) == TAMPERING


def test_the_tampering_message_says_what_and_the_fix():
    text = TAMPERING_MESSAGE.format(what="x", label="f()")
    assert "this check is failed" in text and "grader's channel" in text


# -- framing ------------------------------------------------------------------------------


@fuzz(300)
@given(
    declared=st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 300)),
    body=st.binary(max_size=4000),
    close=st.booleans(),
)
def test_recv_on_arbitrary_bytes_fails_only_with_channel_errors_and_within_its_deadline(
    declared, body, close
):
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, struct.pack("!I", declared) + body)
        if close:
            os.close(write_end)
            write_end = None
        began = time.monotonic()
        try:
            message = recv_message(read_end, deadline=time.monotonic() + 0.05)
        except (ProtocolError, ChannelClosed, ChannelTimeout):
            pass
        else:
            assert isinstance(message, dict)
        assert time.monotonic() - began < 1.0
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)


@fuzz(300)
@given(data=st.binary(max_size=200))
def test_recv_on_a_stream_of_arbitrary_bytes_never_raises_anything_else(data):
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    try:
        while True:
            recv_message(read_end, deadline=time.monotonic() + 0.05)
    except (ProtocolError, ChannelClosed, ChannelTimeout):
        pass
    finally:
        os.close(read_end)


# -- values -------------------------------------------------------------------------------


@fuzz(500)
@given(value=json_tree)
def test_decode_of_any_json_tree_is_a_value_or_a_protocol_error(tmp_path_factory, value):
    folder = tmp_path_factory.mktemp("x")
    np.save(folder / "w-1-1.npy", np.arange(3))
    try:
        Codec(folder, side="r").decode(json.loads(json.dumps(value)))
    except ProtocolError:
        pass


# -- .npy headers ---------------------------------------------------------------------------

_descrs = st.sampled_from(
    ["<f8", "|b1", "<i4", ">u2", "<U5", "|S0", "|V8", "O", "<c16", "(2,)f8", "<M8[s]", "x", "",
     "[('a', '<f4')]", "[('a', 'O')]", "'<f8'"]
) | st.text(max_size=12)
_shapes = st.lists(st.integers(-3, 2**62), max_size=4).map(tuple) | st.text(max_size=8)


def _header_text(descr, fortran, shape, junk) -> bytes:
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}{junk}"
    return text.encode("latin-1", "replace")


@fuzz(400)
@given(
    descr=_descrs,
    fortran=st.sampled_from([True, False, 0, "x"]),
    shape=_shapes,
    junk=st.text(max_size=6),
    version=st.sampled_from([(1, 0), (2, 0), (3, 0), (1, 1)]),
    declared=st.none() | st.integers(0, 70000),
    tail=st.binary(max_size=64),
    mutate=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
)
def test_read_npy_on_any_header_is_a_protocol_error_and_allocates_within_the_cap(
    descr, fortran, shape, junk, version, declared, tail, mutate
):
    header = _header_text(descr, fortran, shape, junk)
    size_format = "<H" if version[0] == 1 else "<I"
    length = len(header) if declared is None else declared
    try:
        prefix = struct.pack(size_format, length)
    except struct.error:
        prefix = struct.pack("<I", length)
    raw = bytearray(b"\x93NUMPY" + bytes(version) + prefix + header + tail)
    for where, byte in mutate:
        if where < len(raw):
            raw[where] = byte
    cap = 2**16
    tracemalloc.start()
    try:
        read_npy(io.BytesIO(bytes(raw)), "fuzz.npy", max_bytes=cap)
    except ProtocolError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < cap + 2**20


def test_a_header_changed_after_its_check_cannot_change_what_is_allocated(tmp_path):
    """The worker still owns the file: the grader parses its header once, then reads data."""
    path = tmp_path / "w-1-1.npy"
    np.save(path, np.zeros(4))
    with open(path, "rb") as fh:
        header = dlgrade.sandbox.protocol._npy_header(fh, "w-1-1.npy")
        with open(path, "r+b") as other:  # the worker rewrites the header to 8 TB
            np.lib.format.write_array_header_1_0(
                other, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
            )
        array = dlgrade.sandbox.protocol._npy_data(fh, header, "w-1-1.npy", None)
    assert array.shape == (4,)


# -- exchange-folder entries -----------------------------------------------------------------

_entries = st.sampled_from(
    ["npy", "garbage", "sparse", "folder", "folder_tree", "symlink", "dangling", "fifo", "socket",
     "empty", "missing"]
)


def _sparse_npy(path: Path, count: int) -> None:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (count,)}
        )
        fh.truncate(fh.tell() + 8 * count)


def _plant(folder: Path, name: str, kind: str, outside: Path) -> None:
    path = folder / name
    if kind == "npy":
        np.save(path, np.arange(4))
    elif kind == "garbage":
        path.write_bytes(b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 50)
    elif kind == "sparse":
        _sparse_npy(path, 2**40)  # 8 TiB declared
    elif kind == "folder":
        path.mkdir()
    elif kind == "folder_tree":
        (path / "a" / "b").mkdir(parents=True)
        (path / "a" / "link").symlink_to(outside)
    elif kind in ("symlink", "dangling"):
        path.symlink_to(outside if kind == "symlink" else folder / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "empty":
        path.write_bytes(b"")


@fuzz(200)
@given(kinds=st.lists(_entries, min_size=1, max_size=4))
def test_any_mix_of_exchange_entries_named_by_a_reply_is_a_value_or_a_protocol_error(
    tmp_path_factory, kinds
):
    root = tmp_path_factory.mktemp("ex")
    folder = root / "exchange"
    folder.mkdir()
    outside = root / "outside.npy"
    np.save(outside, np.arange(3))
    before = outside.read_bytes()
    names = [f"w-1-{i}.npy" for i in range(len(kinds))]
    for name, kind in zip(names, kinds, strict=True):
        _plant(folder, name, kind, outside)
    began = time.monotonic()
    try:
        value = Codec(folder, side="r").decode([{"__ndarray__": n} for n in names])
    except ProtocolError:
        pass
    else:
        assert all(isinstance(v, np.ndarray) and v.shape == (4,) for v in value)
    assert time.monotonic() - began < 5
    assert outside.read_bytes() == before, "a link in the exchange folder was followed"


def test_a_symlinked_exchange_folder_is_not_followed_when_the_grader_writes(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "exchange").symlink_to(elsewhere)
    with pytest.raises(dlgrade.sandbox.protocol.ExchangeError):
        Codec(tmp_path / "exchange", side="r").encode(np.arange(3))
    assert list(elsewhere.iterdir()) == []


def test_the_graders_array_names_cannot_be_guessed(tmp_path):
    codec = Codec(tmp_path, side="r")
    names = [codec.encode(np.arange(2))["__ndarray__"] for _ in range(3)]
    assert len(set(names)) == 3 and all(len(n) == len("r-") + 32 + len(".npy") for n in names)
    codec.discard_written()
    assert list(tmp_path.iterdir()) == []


def test_discarding_survives_a_folder_planted_under_a_graders_file(tmp_path):
    codec = Codec(tmp_path, side="r")
    name = codec.encode(np.arange(2))["__ndarray__"]
    (tmp_path / name).unlink()
    (tmp_path / name).mkdir()
    (tmp_path / name / "x").write_text("x")
    codec.discard_written()  # never raises


def test_remove_tree_removes_folders_the_worker_made_unreadable(tmp_path):
    (tmp_path / "root" / "locked" / "deep").mkdir(parents=True)
    (tmp_path / "root" / "locked" / "deep" / "f").write_text("x")
    (tmp_path / "root" / "locked").chmod(0)
    assert safeio.remove_tree(tmp_path / "root")


def test_share_replaces_a_link_planted_in_the_inbox_instead_of_writing_through_it(
    bare_session, tmp_path
):
    from dlgrade.submission import Submission

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    inbox = bare_session.exchange_dir / "inbox"
    (inbox / "data.csv").symlink_to(victim)
    shared = Submission(bare_session.submission_dir, bare_session).share(source)
    assert victim.read_text() == "precious"
    assert not shared.is_symlink() and shared.read_text() == "a,b\n1,2\n"


# -- word vectors -----------------------------------------------------------------------------


def test_a_word_vector_line_longer_than_its_numbers_can_be_is_refused_unread(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("1 3\nword " + "1 " * 5_000_000 + "\n")
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="longer than"):
            read_word2vec_text(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_word_vectors_past_the_numbers_budget_are_refused_from_the_header(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("2000000 10000\n")
    with pytest.raises(ProtocolError, match="at most"):
        read_word2vec_text(path)
