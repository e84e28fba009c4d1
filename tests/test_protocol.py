"""What crosses the worker boundary: values round-trip as data, and nothing else gets through."""

from __future__ import annotations

import io
import json
import math
import os
import select
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlgrade.sandbox.protocol
from dlgrade.sandbox.protocol import (
    MAX_MESSAGE_BYTES,
    ChannelClosed,
    ChannelTimeout,
    Codec,
    Handle,
    ProtocolError,
    read_npy,
    recv_message,
    send_message,
)

# -- helpers -----------------------------------------------------------------------------


def same(a, b) -> bool:
    """Equal and of the same type all the way down; nan equals nan, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float | np.floating):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def exchange_files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


class Pair:
    """The two ends of one exchange folder: ``w`` encodes, ``r`` decodes, as over the pipe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.w = Codec(folder, side="w")
        self.r = Codec(folder, side="r")

    def roundtrip(self, value):
        wire = json.loads(json.dumps({"value": self.w.encode(value)}, allow_nan=True))
        return self.r.decode(wire["value"])


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    folder = tmp_path / "exchange"
    folder.mkdir()
    return Pair(folder)


@pytest.fixture
def exchange(pair: Pair) -> Path:
    return pair.folder


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -7, 2**80, 1.5, -0.0, math.inf, -math.inf, "", "héllo\n\x00"],
    ids=repr,
)
def test_scalars_round_trip_with_their_type(pair, value):
    assert same(pair.roundtrip(value), value)


def test_nan_round_trips_as_nan(pair):
    out = pair.roundtrip(math.nan)
    assert isinstance(out, float) and math.isnan(out)


def test_lists_round_trip(pair):
    value = [1, "a", None, [2.5, [True]], []]
    assert same(pair.roundtrip(value), value)


def test_tuples_stay_tuples_even_when_nested(pair):
    value = ((), (1,), (1, (2, [3, (4,)])), [(5, 6)])
    out = pair.roundtrip(value)
    assert same(out, value)
    assert isinstance(out[2][1], tuple) and isinstance(out[2][1][1][1], tuple)


def test_dicts_with_string_keys_round_trip_in_order(pair):
    value = {"b": 1, "a": [1, 2], "": None, "nested": {"x": (1, 2)}}
    assert same(pair.roundtrip(value), value)


def test_a_dict_whose_keys_look_like_tags_comes_back_as_that_dict(pair):
    value = {"__tuple__": 5, "__ndarray__": "../etc/passwd", "__handle__": 1}
    assert same(pair.roundtrip(value), value)


def test_dicts_with_non_string_keys_round_trip(pair):
    value = {1: "one", "two": 2, (3, "x"): [3], None: "none", 2.5: (1,), -4: {"k": 5}}
    out = pair.roundtrip(value)
    assert same(out, value)
    assert isinstance(next(k for k in out if isinstance(k, tuple)), tuple)


def test_nested_mixes_with_arrays_and_numpy_scalars_round_trip(pair):
    value = {
        "x": [np.arange(3), (1, {"y": np.float32(2.0)})],
        7: (np.zeros((2, 2), dtype=np.int16), None, "s"),
        "z": {(1, 2): [np.ones(0), np.int8(-3)]},
    }
    assert same(pair.roundtrip(value), value)
    assert exchange_files(pair.folder) == []


def test_path_like_values_cross_as_strings(pair):
    assert same(pair.roundtrip(Path("some") / "file.csv"), os.path.join("some", "file.csv"))


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.array([1.5, np.nan, -np.inf], dtype=np.float32),
        np.arange(24, dtype=np.int8).reshape(2, 3, 4),
        np.array([0, 65535], dtype=np.uint16),
        np.array([2**62, -(2**62)], dtype=np.int64),
        np.array([[True, False]]),
        np.array([1 + 2j, -1j], dtype=np.complex64),
        np.array(["a", "héllo"]),
        np.array([1, 2, 3], dtype=">i4"),
        np.array(["2020-01-01T00:00"], dtype="datetime64[s]"),
        np.array([(1, 2.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array(3.25),
        np.array(7, dtype=np.uint8),
        np.zeros(0),
        np.zeros((3, 0, 2), dtype=np.int32),
    ],
    ids=lambda a: f"{a.dtype.str}-{a.shape}",
)
def test_numpy_arrays_round_trip_with_dtype_and_shape(pair, array):
    out = pair.roundtrip(array)
    assert same(out, array)


@pytest.mark.parametrize(
    "scalar",
    [
        np.float32(1.5),
        np.float16(-2.0),
        np.int8(-5),
        np.int64(2**40),
        np.uint64(2**64 - 1),
        np.bool_(True),
        np.float32(np.nan),
    ],
    ids=lambda s: f"{type(s).__name__}({s})",
)
def test_numpy_scalars_keep_their_dtype(pair, scalar):
    out = pair.roundtrip(scalar)
    assert type(out) is type(scalar)
    assert same(out, scalar)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=50, deadline=None, database=None)
@given(value=json_like)
def test_decode_inverts_encode_for_json_like_values(tmp_path_factory, value):
    # `same` compares nan as equal to nan, so floats need not exclude it.
    pair = Pair(tmp_path_factory.mktemp("exchange"))
    assert same(pair.roundtrip(value), value)


def test_array_files_are_consumed_by_decoding(pair):
    wire = pair.w.encode([np.arange(3), np.ones((2, 2))])
    assert len(exchange_files(pair.folder)) == 2
    pair.r.decode(wire)
    assert exchange_files(pair.folder) == []


def test_the_two_sides_name_their_array_files_apart(exchange):
    w, r = Codec(exchange, side="w"), Codec(exchange, side="r")
    names = {w.encode(np.zeros(1))["__ndarray__"], r.encode(np.zeros(1))["__ndarray__"]}
    assert len(names) == 2
    assert {n.split("-")[0] for n in names} == {"w", "r"}


# -- nothing but plain arrays is ever read ----------------------------------------------

_tripped: list[str] = []


def _trip() -> None:
    _tripped.append("unpickled")


class _Tripwire:
    """Unpickling one of these records it: proof that something ran a pickle."""

    def __reduce__(self):
        return (_trip, ())


def test_an_object_array_file_is_refused_without_unpickling_it(exchange):
    np.save(exchange / "w-1-1.npy", np.array([_Tripwire()], dtype=object), allow_pickle=True)
    _tripped.clear()
    with pytest.raises(ProtocolError, match="objects"):
        Codec(exchange, side="r").decode({"__ndarray__": "w-1-1.npy"})
    assert _tripped == []
    assert exchange_files(exchange) == []


def test_a_header_declaring_a_huge_shape_is_refused_by_the_cap(exchange):
    # 8 TB declared, no data follows: reading it would allocate before noticing.
    with open(exchange / "w-1-1.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000, 100)}
        )
    with pytest.raises(ProtocolError, match="cap"):
        Codec(exchange, side="r").decode({"__ndarray__": "w-1-1.npy"})
    assert exchange_files(exchange) == []


def test_the_size_cap_counts_bytes_and_is_inclusive():
    buf = io.BytesIO()
    np.save(buf, np.zeros(1000, dtype=np.float64))  # 8,000 bytes of data
    buf.seek(0)
    assert read_npy(buf, "ok.npy", max_bytes=8000).shape == (1000,)
    buf.seek(0)
    with pytest.raises(ProtocolError, match="8,000 bytes"):
        read_npy(buf, "big.npy", max_bytes=7999)


def test_a_version_2_header_is_read():
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.arange(5, dtype=np.int32), version=(2, 0))
    buf.seek(0)
    assert same(read_npy(buf, "v2.npy"), np.arange(5, dtype=np.int32))


def test_an_unknown_npy_version_is_refused():
    buf = io.BytesIO(np.lib.format.magic(3, 0) + b"\x00" * 64)
    with pytest.raises(ProtocolError, match="version"):
        read_npy(buf, "v3.npy")


@pytest.mark.parametrize("keep", [0, 5, 20, -8], ids=["empty", "in-magic", "in-header", "in-data"])
def test_a_truncated_array_file_is_refused(exchange, keep):
    buf = io.BytesIO()
    np.save(buf, np.arange(100, dtype=np.float64))
    (exchange / "w-1-1.npy").write_bytes(buf.getvalue()[:keep])
    with pytest.raises(ProtocolError, match="w-1-1.npy"):
        Codec(exchange, side="r").decode({"__ndarray__": "w-1-1.npy"})
    assert exchange_files(exchange) == []


def test_a_missing_array_file_is_a_protocol_error(exchange):
    with pytest.raises(ProtocolError, match="cannot be opened"):
        Codec(exchange, side="r").decode({"__ndarray__": "w-1-9.npy"})


@pytest.mark.parametrize(
    "name",
    ["../x.npy", "a/b.npy", "/x.npy", "x.txt", "x.npy.txt", ".npy", "", "a" * 65 + ".npy", 5],
)
def test_a_bad_array_file_name_is_refused_and_nothing_outside_is_touched(tmp_path, name):
    exchange = tmp_path / "exchange"
    (exchange / "a").mkdir(parents=True)
    outside = [tmp_path / "x.npy", exchange / "a" / "b.npy"]
    for file in outside:
        np.save(file, np.arange(3))
    with pytest.raises(ProtocolError, match="bad array file name"):
        Codec(exchange, side="r").decode({"__ndarray__": name})
    assert all(file.exists() for file in outside)


def test_a_symlinked_array_file_is_refused_and_its_target_kept(tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    target = tmp_path / "elsewhere" / "real.npy"
    target.parent.mkdir()
    np.save(target, np.arange(3))
    before = target.read_bytes()
    (exchange / "w-1-2.npy").symlink_to(target)
    with pytest.raises(ProtocolError, match="cannot be opened"):
        Codec(exchange, side="r").decode({"__ndarray__": "w-1-2.npy"})
    assert target.read_bytes() == before


# -- what is not data stays behind a handle ---------------------------------------------


@pytest.mark.parametrize(
    "thing",
    [object(), lambda x: x, {1, 2}, b"bytes", np.array([object()], dtype=object)],
    ids=["object", "lambda", "set", "bytes", "object-array"],
)
def test_a_value_that_is_not_data_is_refused_without_make_handle(exchange, thing):
    codec = Codec(exchange, side="r")
    with pytest.raises(ProtocolError, match="cannot cross"):
        codec.encode(thing)
    with pytest.raises(ProtocolError, match="cannot cross"):
        codec.encode({"nested": [1, thing]})
    assert exchange_files(exchange) == []


def test_a_value_that_is_not_data_becomes_a_handle_via_make_handle(exchange):
    seen = []

    def make_handle(obj):
        seen.append(obj)
        return {"__handle__": len(seen), "type": "x"}

    codec = Codec(exchange, side="w", make_handle=make_handle)
    thing, func = object(), lambda: None
    assert codec.encode([1, thing, {"f": func}]) == [
        1,
        {"__handle__": 1, "type": "x"},
        {"__dict__": {"f": {"__handle__": 2, "type": "x"}}},
    ]
    assert seen[0] is thing and seen[1] is func


def test_object_dtype_arrays_go_to_make_handle_and_are_never_saved(exchange):
    seen = []

    def make_handle(obj):
        seen.append(obj)
        return {"__handle__": 1, "type": "x"}

    array = np.array([object(), 1], dtype=object)
    out = Codec(exchange, side="w", make_handle=make_handle).encode(array)
    assert out == {"__handle__": 1, "type": "x"}
    assert seen == [array] and seen[0] is array
    assert exchange_files(exchange) == []


def test_a_handle_decodes_with_its_type_and_the_codec_generation(exchange):
    codec = Codec(exchange, side="r", generation=7)
    assert codec.decode({"__handle__": 3, "type": "keras.Model"}) == Handle(3, "keras.Model", 7)


def test_a_handle_type_name_is_cut_to_200_characters(exchange):
    handle = Codec(exchange, side="r").decode({"__handle__": 1, "type": "T" * 1000})
    assert handle.type_name == "T" * 200


def test_a_handle_encodes_as_its_id(exchange):
    assert Codec(exchange, side="r").encode(Handle(4, "keras.Model", 2)) == {"__handle__": 4}


# -- malformed values --------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        {"__nope__": 1},
        {"plain": 1},
        {},
        {"a": 1, "b": 2, "c": 3, "d": 4},
        {"__tuple__": 5},
        {"__dict__": [1]},
        {"__pairs__": 5},
        {"__pairs__": [[1]]},
        {"__pairs__": [[1, 2, 3]]},
        {"__pairs__": [[[1], 2]]},
        {"__pairs__": [[{"__dict__": {}}, 2]]},
        {"__npscalar__": 1, "dtype": "O"},
        {"__npscalar__": 1, "dtype": "not-a-dtype"},
        {"__npscalar__": 1},
        {"__handle__": "3"},
        {"__ndarray__": None},
        [{"__nope__": 1}],
        {"__tuple__": [{"__nope__": 1}]},
    ],
    ids=lambda w: json.dumps(w)[:40],
)
def test_unknown_tags_and_malformed_values_are_protocol_errors(exchange, wire):
    with pytest.raises(ProtocolError):
        Codec(exchange, side="r").decode(wire)


# -- framing -----------------------------------------------------------------------------


class Pipe:
    """An ``os.pipe()`` whose ends are closed once, whatever the test did with them."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self._open = {self.r, self.w}

    def close_write(self) -> None:
        os.close(self.w)
        self._open.discard(self.w)

    def close(self) -> None:
        for fd in self._open:
            os.close(fd)
        self._open.clear()

    def readable(self) -> bool:
        return bool(select.select([self.r], [], [], 0)[0])


@pytest.fixture
def pipe():
    p = Pipe()
    yield p
    p.close()


def soon(seconds: float = 5.0) -> float:
    """A deadline, so that a bug shows as ChannelTimeout rather than a hung test."""
    return time.monotonic() + seconds


def test_a_message_round_trips_over_a_pipe(pipe):
    message = {"call": "fit", "args": [1, 2.5, None, "é", {"__tuple__": [1]}], "ok": True}
    send_message(pipe.w, message)
    assert recv_message(pipe.r, deadline=soon()) == message
    assert not pipe.readable()


def test_messages_sent_back_to_back_are_read_one_at_a_time(pipe):
    send_message(pipe.w, {"n": 1})
    send_message(pipe.w, {"n": 2})
    assert recv_message(pipe.r, deadline=soon()) == {"n": 1}
    assert recv_message(pipe.r, deadline=soon()) == {"n": 2}


def test_nan_and_infinity_survive_the_framing(pipe):
    send_message(pipe.w, {"x": [math.nan, math.inf, -math.inf]})
    x = recv_message(pipe.r, deadline=soon())["x"]
    assert math.isnan(x[0]) and x[1:] == [math.inf, -math.inf]


def test_a_message_larger_than_the_pipe_buffer_arrives_whole(pipe):
    message = {"blob": "x" * (2 * 1024 * 1024)}
    sender = threading.Thread(target=send_message, args=(pipe.w, message))
    sender.start()
    try:
        assert recv_message(pipe.r, deadline=soon(10)) == message
    finally:
        sender.join(10)


def test_a_message_that_arrives_in_pieces_is_reassembled(pipe):
    body = json.dumps({"pieces": list(range(50))}).encode()
    frame = struct.pack("!I", len(body)) + body

    def dribble():
        for i in range(0, len(frame), 7):
            os.write(pipe.w, frame[i : i + 7])
            time.sleep(0.001)

    sender = threading.Thread(target=dribble)
    sender.start()
    try:
        assert recv_message(pipe.r, deadline=soon()) == {"pieces": list(range(50))}
    finally:
        sender.join(10)


def test_send_refuses_a_message_over_the_limit_and_writes_nothing(pipe, monkeypatch):
    message = {"a": "x" * 100}
    size = len(json.dumps(message).encode())
    monkeypatch.setattr(dlgrade.sandbox.protocol, "MAX_MESSAGE_BYTES", size - 1)
    with pytest.raises(ProtocolError, match="exceeds"):
        send_message(pipe.w, message)
    assert not pipe.readable()


def test_a_message_exactly_at_the_limit_is_accepted(pipe, monkeypatch):
    message = {"a": "x" * 100}
    size = len(json.dumps(message).encode())
    monkeypatch.setattr(dlgrade.sandbox.protocol, "MAX_MESSAGE_BYTES", size)
    send_message(pipe.w, message)
    assert recv_message(pipe.r, deadline=soon()) == message


@pytest.mark.parametrize("declared", [MAX_MESSAGE_BYTES + 1, 2**32 - 1])
def test_recv_refuses_a_length_header_over_the_limit_without_reading_the_body(pipe, declared):
    os.write(pipe.w, struct.pack("!I", declared) + b"{}")
    with pytest.raises(ProtocolError, match="exceeds"):
        recv_message(pipe.r, deadline=soon())


def test_a_closed_write_end_is_channel_closed(pipe):
    pipe.close_write()
    with pytest.raises(ChannelClosed):
        recv_message(pipe.r, deadline=soon())


def test_a_write_end_closed_mid_message_is_channel_closed(pipe):
    os.write(pipe.w, struct.pack("!I", 100) + b'{"half"')
    pipe.close_write()
    with pytest.raises(ChannelClosed):
        recv_message(pipe.r, deadline=soon())


def test_a_deadline_in_the_past_with_no_data_is_channel_timeout(pipe):
    with pytest.raises(ChannelTimeout):
        recv_message(pipe.r, deadline=time.monotonic() - 1)


def test_a_deadline_that_passes_while_waiting_is_channel_timeout(pipe):
    start = time.monotonic()
    with pytest.raises(ChannelTimeout):
        recv_message(pipe.r, deadline=start + 0.05)
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe\xfd", b"", b'{"a": 1'])
def test_a_body_that_is_not_json_is_a_protocol_error(pipe, body):
    os.write(pipe.w, struct.pack("!I", len(body)) + body)
    with pytest.raises(ProtocolError, match="not JSON"):
        recv_message(pipe.r, deadline=soon())


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"3", b"null"])
def test_a_json_body_that_is_not_an_object_is_a_protocol_error(pipe, body):
    os.write(pipe.w, struct.pack("!I", len(body)) + body)
    with pytest.raises(ProtocolError, match="not a JSON object"):
        recv_message(pipe.r, deadline=soon())


# -- once bugs, now fixed: each test is the reproduction from the report ------------------


def test_a_float64_scalar_keeps_its_dtype(pair):
    assert type(pair.roundtrip(np.float64(1.5))) is np.float64


@pytest.mark.parametrize(
    "scalar",
    [
        np.complex128(1 + 2j),
        np.datetime64("2020-01-01"),
        np.timedelta64(3, "s"),
        np.bytes_(b"ab"),
        np.longdouble(1.5),
    ],
    ids=lambda s: type(s).__name__,
)
def test_a_numpy_scalar_either_round_trips_or_is_refused_at_encoding(pair, scalar):
    try:
        wire = pair.w.encode(scalar)
    except ProtocolError:
        return
    out = pair.r.decode(json.loads(json.dumps(wire, allow_nan=True)))
    # Scalars JSON cannot hold cross as 0-d arrays of the same dtype.
    assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == scalar.dtype
    assert out[()] == scalar


@pytest.mark.parametrize(
    "wire",
    [
        {"__npscalar__": "abc", "dtype": "<f8"},
        {"__npscalar__": 300, "dtype": "|u1"},
        {"__npscalar__": {"x": 1}, "dtype": "<f8"},
        {"__npscalar__": [1, 2], "dtype": "<f8"},
    ],
    ids=["string-as-float", "overflow", "dict-payload", "list-payload"],
)
def test_a_numpy_scalar_with_a_malformed_payload_is_a_protocol_error(exchange, wire):
    with pytest.raises(ProtocolError):
        Codec(exchange, side="r").decode(wire)


def test_a_deeply_nested_message_is_a_protocol_error(pipe):
    body = b"[" * 5000
    os.write(pipe.w, struct.pack("!I", len(body)) + body)
    with pytest.raises(ProtocolError):
        recv_message(pipe.r, deadline=soon())


def test_a_fifo_in_place_of_an_array_file_is_refused_without_blocking(exchange):
    fifo = exchange / "w-1-5.npy"
    os.mkfifo(fifo)
    result = {}

    def decode():
        try:
            result["value"] = Codec(exchange, side="r").decode({"__ndarray__": "w-1-5.npy"})
        except BaseException as exc:  # handed back to the test thread
            result["error"] = exc

    reader = threading.Thread(target=decode, daemon=True)
    reader.start()
    reader.join(1.0)
    blocked = reader.is_alive()
    if blocked:  # give the blocked open() a writer so the thread can finish
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
    assert not blocked, "decode() blocked opening a FIFO from the exchange folder"
    assert isinstance(result.get("error"), ProtocolError)
