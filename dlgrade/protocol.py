"""What crosses the boundary between the trusted rubric and the worker: data, never code.

Messages are length-prefixed JSON on a pair of pipes. Values inside them are encoded as
JSON where JSON can hold them; arrays travel as ``.npy`` files in a per-worker exchange
folder and are read back with ``allow_pickle=False`` after their header has been checked;
everything else stays in the worker behind a handle. Nothing here ever unpickles.
"""

from __future__ import annotations

import json
import os
import re
import select
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_ARRAY_BYTES = 1024 * 1024 * 1024
MAX_DEPTH = 64
_HEADER = struct.Struct("!I")
#: written by the worker on its stdout after each request's output (see OutputCapture)
OUTPUT_MARK = re.compile(rb"\x00\x01dlgrade-sync:(\d{1,12})\x01\x00")
_MARK_START = b"\x00\x01"
_NPY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\.npy")


class ProtocolError(Exception):
    """A message or value broke the protocol (malformed, oversized, unknown tag)."""


class ChannelClosed(Exception):
    """The other end closed its pipe: the worker died or exited."""


class ChannelTimeout(Exception):
    """No complete message arrived before the deadline."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in the worker (a model, a dataset...).

    ``generation`` is the worker incarnation that made it: a handle does not survive a
    worker restart.
    """

    id: int
    type_name: str
    generation: int = 0

    def __repr__(self) -> str:
        return f"<handle #{self.id} to a {self.type_name}>"


def output_mark(number: int) -> bytes:
    return b"\x00\x01dlgrade-sync:%d\x01\x00" % number


def split_output_marks(data: bytes) -> tuple[bytes, int | None, bytes]:
    """(output without marks, highest mark seen or None, unfinished tail to keep)."""
    highest = None
    for match in OUTPUT_MARK.finditer(data):
        highest = int(match.group(1))
    clean = OUTPUT_MARK.sub(b"", data)
    start = clean.rfind(_MARK_START, max(0, len(clean) - 32))
    if start >= 0:
        return clean[:start], highest, clean[start:]
    return clean, highest, b""


# -- framing -----------------------------------------------------------------------------


def send_message(fd: int, message: dict) -> None:
    """Write one length-prefixed JSON message to ``fd``."""
    body = json.dumps(message, allow_nan=True).encode("utf-8")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(body):,} bytes exceeds {MAX_MESSAGE_BYTES:,}")
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    chunks = []
    while n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelTimeout()
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise ChannelTimeout()
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise ChannelClosed()
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_message(fd: int, deadline: float | None = None) -> dict:
    """Read one message; ``deadline`` is a ``time.monotonic()`` value or None to block."""
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size:,} bytes exceeds {MAX_MESSAGE_BYTES:,}")
    try:
        message = json.loads(_read_exactly(fd, size, deadline))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("message is nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


# -- values ------------------------------------------------------------------------------


class Codec:
    """Encodes and decodes values for one side of one worker's exchange folder.

    ``side`` prefixes the array files this side writes, so the two never collide.
    ``make_handle`` (worker side only) turns an object that is not data into a handle.
    """

    def __init__(self, exchange_dir: Path, side: str, make_handle=None, generation: int = 0):
        self.exchange_dir = Path(exchange_dir)
        self.side = side
        self.make_handle = make_handle
        self.generation = generation
        self._counter = 0
        self.written: list[Path] = []  # array files this side wrote, until discarded

    # encoding

    def encode(self, value: Any) -> Any:
        # numpy scalars first: np.float64 is also a float and would lose its dtype.
        if isinstance(value, np.generic):
            if value.dtype.hasobject:
                return self._as_handle(value)
            if value.dtype.kind in "biu" or (value.dtype.kind == "f" and value.itemsize <= 8):
                return {"__npscalar__": value.item(), "dtype": value.dtype.str}
            return self._encode_array(np.asarray(value))  # complex, datetime, bytes...
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, Handle):
            return {"__handle__": value.id}
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, np.ndarray):
            return self._encode_array(value)
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v) for v in value]}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"__dict__": {k: self.encode(v) for k, v in value.items()}}
            return {"__pairs__": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        numpy_method = getattr(type(value), "numpy", None)
        if callable(numpy_method) and type(value).__module__.startswith("tensorflow"):
            # An eager tf.Tensor or tf.Variable: its value is data.
            return self.encode(np.asarray(value.numpy()))
        return self._as_handle(value)

    def _as_handle(self, value: Any) -> Any:
        if self.make_handle is None:
            raise ProtocolError(
                f"a {type(value).__name__} cannot cross to the worker; pass data "
                "(numbers, strings, lists, dicts, numpy arrays) or a Handle"
            )
        return self.make_handle(value)

    def _encode_array(self, array: np.ndarray) -> Any:
        if array.dtype.hasobject:
            return self._as_handle(array)
        self._counter += 1
        name = f"{self.side}-{os.getpid()}-{self._counter}.npy"
        # The exchange folder belongs to the worker, which could plant a link under the next
        # name: create the file, never follow or reuse what is there.
        path = self.exchange_dir / name
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        self.written.append(path)
        return {"__ndarray__": name}

    def discard_written(self) -> None:
        """Remove the array files this side wrote (the other side has answered: read)."""
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()

    # decoding

    def decode(self, value: Any, depth: int = 0) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if depth > MAX_DEPTH:
            raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
        depth += 1
        if isinstance(value, list):
            return [self.decode(v, depth) for v in value]
        if not isinstance(value, dict):
            raise ProtocolError(f"unexpected value in message: {type(value).__name__}")
        keys = frozenset(value)
        if keys == {"__tuple__"}:
            return tuple(self.decode(v, depth) for v in _expect_list(value["__tuple__"]))
        if keys == {"__dict__"}:
            inner = value["__dict__"]
            if not isinstance(inner, dict):
                raise ProtocolError("__dict__ must hold an object")
            return {k: self.decode(v, depth) for k, v in inner.items()}
        if keys == {"__pairs__"}:
            out = {}
            for pair in _expect_list(value["__pairs__"]):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ProtocolError("__pairs__ must hold [key, value] pairs")
                key = self.decode(pair[0], depth)
                try:
                    out[key] = self.decode(pair[1], depth)
                except TypeError:
                    raise ProtocolError("dictionary key is not hashable") from None
            return out
        if keys == {"__npscalar__", "dtype"}:
            return _decode_scalar(value)
        if keys == {"__ndarray__"}:
            return self._read_array(value["__ndarray__"])
        if keys in ({"__handle__"}, {"__handle__", "type"}):
            if type(value["__handle__"]) is not int:
                raise ProtocolError("handle id must be an integer")
            return self._decode_handle(value)
        raise ProtocolError(f"unknown tag in message: {sorted(value)}")

    def _decode_handle(self, value: dict) -> Any:
        return Handle(value["__handle__"], str(value.get("type", "object"))[:200], self.generation)

    def _read_array(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or not _NPY_NAME.fullmatch(name):
            raise ProtocolError(f"bad array file name {name!r}")
        path = self.exchange_dir / name
        try:
            # O_NONBLOCK: a FIFO planted under this name must not block the trusted side.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise ProtocolError(f"array file {name} cannot be opened: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ProtocolError(f"array file {name} is not a regular file")
            with os.fdopen(fd, "rb") as fh:
                return read_npy(fh, name)
        finally:
            try:
                path.unlink(missing_ok=True)
            except PermissionError:
                pass  # the grader's file in a sticky folder: the grader removes it


def read_npy(fh, name: str, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Read an ``.npy`` stream after checking its header: no objects, no huge shapes."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ProtocolError(f"array file {name} has unsupported .npy version {version}")
    except ValueError as exc:
        raise ProtocolError(f"array file {name} is not a valid .npy file: {exc}") from None
    if dtype.hasobject:
        raise ProtocolError(f"array file {name} holds Python objects; only plain arrays cross")
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > max_bytes:
        raise ProtocolError(
            f"array file {name} declares {nbytes:,} bytes (shape {shape}); the cap is {max_bytes:,}"
        )
    fh.seek(0)
    try:
        return np.load(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ProtocolError(f"array file {name} is truncated or corrupt: {exc}") from None


def read_word2vec_text(path: Path, max_words: int = 2_000_000) -> dict[str, np.ndarray]:
    """Parse word vectors the worker exported in word2vec *text* format.

    A header ``count dim``, then ``word v1 … vdim`` per line: data only. Anything else —
    not UTF-8, a bad header, a line of the wrong width, a value that is not a number, a count
    that does not match — raises :class:`ProtocolError` naming the line.
    """
    vectors: dict[str, np.ndarray] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().split()
            if len(header) != 2 or not all(h.isdigit() for h in header):
                raise ProtocolError(f"the first line is {' '.join(header)!r:.60}, not 'count dim'")
            count, dim = int(header[0]), int(header[1])
            if count > max_words or not 0 < dim <= 10_000:
                raise ProtocolError(f"the header declares {count:,} words of {dim} dimensions")
            for number, line in enumerate(fh, start=2):
                word, *values = line.rstrip("\n").rstrip(" ").split(" ")
                if len(values) != dim:
                    raise ProtocolError(f"line {number} holds {len(values)} values, not {dim}")
                try:
                    vectors[word] = np.array(values, dtype=np.float64)
                except ValueError:
                    raise ProtocolError(f"line {number} holds a value that is not a number")
                if len(vectors) > count:
                    break
    except UnicodeDecodeError:
        raise ProtocolError("the file is not UTF-8 text") from None
    if len(vectors) != count:
        raise ProtocolError(f"the header declares {count:,} words, the file holds {len(vectors):,}")
    return vectors


def _decode_scalar(value: dict) -> np.generic:
    try:
        dtype = np.dtype(str(value["dtype"]))
    except TypeError:
        raise ProtocolError("bad numpy scalar dtype") from None
    payload = value["__npscalar__"]
    if dtype.kind not in "biuf" or not isinstance(payload, bool | int | float):
        raise ProtocolError(f"a numpy scalar of dtype {dtype} cannot hold {payload!r:.40}")
    try:
        with np.errstate(over="raise"):
            scalar = dtype.type(payload)
    except (ValueError, OverflowError, FloatingPointError, TypeError):
        raise ProtocolError(f"{payload!r:.40} does not fit numpy dtype {dtype}") from None
    if dtype.kind in "iu" and int(scalar) != payload:
        raise ProtocolError(f"{payload!r:.40} does not fit numpy dtype {dtype}")
    return scalar


def _expect_list(value: Any) -> list:
    if not isinstance(value, list):
        raise ProtocolError("expected a list in message")
    return value
