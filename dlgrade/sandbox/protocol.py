"""What crosses the boundary between the trusted rubric and the worker: data, never code.

Messages are length-prefixed JSON on a pair of pipes. Values inside them are encoded as
JSON where JSON can hold them; arrays travel as ``.npy`` files in a per-worker exchange
folder and are read back with ``allow_pickle=False`` after their header has been checked;
everything else stays in the worker behind a handle. Nothing here ever unpickles.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import select
import struct
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlgrade import safeio

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_ARRAY_BYTES = 1024 * 1024 * 1024
MAX_DEPTH = 64
#: lists and objects in one message, counted as its brackets before it is parsed (strings
#: holding brackets count too: the bound only errs on the safe side). Each costs the trusted
#: side ~150 bytes twice over (json.loads, then decode): 16 MiB of "[]," would be 0.8 GB.
MAX_CONTAINERS = 1_000_000
#: what the trusted side reads of arrays for one reply, all of its arrays together: one
#: array at the cap and a half more (the full-tier 3.02 test set, 297 batches of 16 images
#: 100x100x3, is 1.06 GiB in float64)
MAX_REPLY_ARRAY_BYTES = 3 * 2**29
#: array files one reply may name
MAX_REPLY_ARRAYS = 4096
#: array bytes one codec reads in its life (one grading session of one submission)
MAX_SESSION_ARRAY_BYTES = 16 * 2**30
#: an .npy header longer than this is refused before it is parsed (numpy's own limit)
MAX_NPY_HEADER = 10_000
#: integers beyond this do not fit a float64: no rubric can compare them, none is data
MAX_INT = 2**1024
#: word vectors read back, all words together (400 MB as float64)
MAX_VECTOR_VALUES = 50_000_000
BUDGET_FIX = (
    "Return less data per call (a sample, a smaller dtype, fewer batches); "
    "the grader never needs more than the check asks for."
)
_HEADER = struct.Struct("!I")
#: written by the worker on its stdout after each request's output (see OutputCapture)
OUTPUT_MARK = re.compile(rb"\x00\x01dlgrade-sync:(\d{1,12})\x01\x00")
_MARK_START = b"\x00\x01"
_NPY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\.npy")


class ProtocolError(Exception):
    """A message or value broke the protocol (malformed, oversized, unknown tag)."""


class BudgetExceeded(ProtocolError):
    """A reply, or the session, asked the trusted side to read more than its budget."""


class ExchangeError(ProtocolError):
    """The exchange folder itself is not as the grader left it (replaced, unreadable)."""


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


def send_message(fd: int, message: dict, deadline: float | None = None) -> None:
    """Write one length-prefixed JSON message to ``fd``.

    With a ``deadline`` (a ``time.monotonic()`` value) the write never blocks past it: a
    reader that stops reading (the worker's loop, hijacked) is :class:`ChannelTimeout`.
    """
    body = json.dumps(message, allow_nan=True).encode("utf-8")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(body):,} bytes exceeds {MAX_MESSAGE_BYTES:,}")
    _check_containers(body)
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    if deadline is None:
        while view:
            written = os.write(fd, view)
            view = view[written:]
        return
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelTimeout()
            _, ready, _ = select.select([], [fd], [], remaining)
            if not ready:
                raise ChannelTimeout()
            try:
                written = os.write(fd, view[: 1 << 16])
            except BlockingIOError:
                continue
            view = view[written:]
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def _check_containers(body: bytes) -> None:
    if body.count(b"[") + body.count(b"{") > MAX_CONTAINERS:
        raise ProtocolError(
            f"the value holds more than {MAX_CONTAINERS:,} lists, tuples and dicts, the most "
            "the grader reads in one answer; return a numpy array instead of nested lists"
        )


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
    body = _read_exactly(fd, size, deadline)
    _check_containers(body)
    try:
        message = json.loads(body)
    except RecursionError:
        raise ProtocolError("message is nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, an integer of more than 4,300 digits
        raise ProtocolError(f"message is not JSON: {str(exc)[:200]}") from None
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
        self.written: list[str] = []  # names of the array files this side wrote, until discarded
        #: array bytes read by this codec in all, against MAX_SESSION_ARRAY_BYTES
        self.session_bytes = 0
        self._reply_bytes = 0
        self._reply_arrays = 0

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
        # The exchange folder belongs to the worker, which could plant a link or a folder
        # under a name it can guess: a fresh random name, created exclusively, no link
        # followed on the way.
        try:
            with safeio.open_dir(self.exchange_dir) as dir_fd:
                name, fd = safeio.create_exclusive(dir_fd, f"{self.side}-", ".npy")
        except (safeio.UnsafeEntry, OSError) as exc:
            raise ExchangeError(f"the exchange folder cannot be written: {exc}") from None
        self.written.append(name)
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        return {"__ndarray__": name}

    def discard_written(self) -> None:
        """Remove the array files this side wrote (the other side has answered: read)."""
        for name in self.written:
            safeio.remove(self.exchange_dir, name)
        self.written.clear()

    # decoding

    def decode(self, value: Any, depth: int = 0) -> Any:
        """The value a message holds; ``depth`` 0 starts a new reply's budget."""
        if depth == 0:
            self._reply_bytes = self._reply_arrays = 0
        if value is None or isinstance(value, bool | float | str):
            return value
        if isinstance(value, int):
            if not -MAX_INT < value < MAX_INT:
                raise ProtocolError(
                    f"an integer of about {value.bit_length() * 0.30103:,.0f} digits: "
                    "no float64 holds it"
                )
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
        raise ProtocolError(f"unknown tag in message: {sorted(value)[:8]!r:.200}")

    def _decode_handle(self, value: dict) -> Any:
        kind = value.get("type", "object")
        kind = kind[:200] if isinstance(kind, str) else "object"
        return Handle(value["__handle__"], kind, self.generation)

    def _read_array(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or not _NPY_NAME.fullmatch(name):
            raise ProtocolError(f"bad array file name {str(name)[:80]!r}")
        self._reply_arrays += 1
        if self._reply_arrays > MAX_REPLY_ARRAYS:
            raise BudgetExceeded(
                f"one answer named more than {MAX_REPLY_ARRAYS:,} arrays, the most the grader "
                f"reads for one call. {BUDGET_FIX}"
            )
        try:
            with safeio.open_dir(self.exchange_dir) as dir_fd:
                try:
                    # O_NONBLOCK, O_NOFOLLOW, fstat on the open file: a FIFO, a link or a
                    # folder planted under this name neither blocks nor misleads the grader
                    fd = safeio.open_regular(dir_fd, name, MAX_ARRAY_BYTES + MAX_NPY_HEADER + 64)
                except safeio.UnsafeEntry as exc:
                    raise ProtocolError(f"array file {name} cannot be opened: {exc}") from None
                try:
                    with os.fdopen(fd, "rb", closefd=True) as fh:
                        return self._read_budgeted(fh, name, os.fstat(fh.fileno()).st_size)
                finally:
                    safeio.remove(dir_fd, name)
        except safeio.UnsafeEntry as exc:
            raise ExchangeError(f"array file {name}: {exc}") from None

    def _read_budgeted(self, fh, name: str, size: int) -> np.ndarray:
        header = _npy_header(fh, name)
        nbytes = header.nbytes
        if nbytes > MAX_ARRAY_BYTES:
            raise BudgetExceeded(
                f"array file {name} declares {nbytes:,} bytes (shape {header.shape!r:.100}); the "
                f"cap is {MAX_ARRAY_BYTES:,} per array. {BUDGET_FIX}"
            )
        if self._reply_bytes + nbytes > MAX_REPLY_ARRAY_BYTES:
            raise BudgetExceeded(
                f"one answer holds arrays of more than {MAX_REPLY_ARRAY_BYTES / 2**30:g} GiB in "
                f"all (the cap for one call; {name} would make it "
                f"{(self._reply_bytes + nbytes) / 2**30:.2f} GiB). {BUDGET_FIX}"
            )
        if self.session_bytes + nbytes > MAX_SESSION_ARRAY_BYTES:
            raise BudgetExceeded(
                f"this grading session has read {self.session_bytes / 2**30:.1f} GiB of arrays "
                f"from your code; the cap is {MAX_SESSION_ARRAY_BYTES / 2**30:g} GiB and "
                f"{name} ({nbytes:,} bytes) would pass it. {BUDGET_FIX}"
            )
        self._reply_bytes += nbytes
        self.session_bytes += nbytes
        return _npy_data(fh, header, name, size)


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple
    fortran: bool
    dtype: np.dtype
    offset: int  # where the data starts
    count: int  # elements
    nbytes: int


def _npy_header(fh, name: str) -> _NpyHeader:
    """Parse an ``.npy`` header from ``fh`` (at most MAX_NPY_HEADER bytes of it)."""
    try:
        version = np.lib.format.read_magic(fh)
        # numpy evaluates the header as a Python literal: hostile text warns (bad escapes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, MAX_NPY_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, MAX_NPY_HEADER)
            else:
                raise ProtocolError(f"array file {name} has unsupported .npy version {version}")
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy's parser on hostile bytes: any failure
        raise ProtocolError(
            f"array file {name} is not a valid .npy file: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise ProtocolError(f"array file {name} holds Python objects; only plain arrays cross")
    if dtype.subdtype is not None:
        raise ProtocolError(f"array file {name} has a sub-array dtype {dtype}; send a plain array")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"array file {name} declares the shape {shape!r:.100}")
    count = math.prod(shape)
    # an element of 0 bytes ('S0') still costs the rubric a step each: count it as 1
    nbytes = count * max(dtype.itemsize, 1)
    return _NpyHeader(tuple(shape), bool(fortran), dtype, fh.tell(), count, nbytes)


def _npy_data(fh, header: _NpyHeader, name: str, size: int | None) -> np.ndarray:
    """The array's data, read once into memory of our own (the file may change meanwhile)."""
    data_bytes = header.count * header.dtype.itemsize
    if size is not None and size < header.offset + data_bytes:
        raise ProtocolError(
            f"array file {name} is truncated or corrupt: {size:,} bytes for a header that "
            f"declares {data_bytes:,} bytes of data"
        )
    if data_bytes == 0:
        return np.empty(header.shape, header.dtype, order="F" if header.fortran else "C")
    buffer = bytearray(data_bytes)
    view = memoryview(buffer)
    done = 0
    while done < data_bytes:
        got = fh.readinto(view[done : done + (1 << 26)])
        if not got:
            raise ProtocolError(
                f"array file {name} is truncated or corrupt: it ends after {done:,} of "
                f"{data_bytes:,} bytes of data"
            )
        done += got
    flat = np.frombuffer(buffer, dtype=header.dtype, count=header.count)
    if header.fortran:
        return flat.reshape(header.shape[::-1]).transpose()
    return flat.reshape(header.shape)


def read_npy(fh, name: str, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Read an ``.npy`` stream after checking its header: no objects, no huge shapes.

    The header is parsed once and the data read into memory of our own, so a file that
    changes after the check (the worker still owns it) cannot change what is allocated.
    """
    header = _npy_header(fh, name)
    if header.nbytes > max_bytes:
        raise ProtocolError(
            f"array file {name} declares {header.nbytes:,} bytes (shape {header.shape!r:.100}); "
            f"the cap is {max_bytes:,}"
        )
    return _npy_data(fh, header, name, None)


def read_word2vec_text(
    path: Path, max_words: int = 2_000_000, max_values: int = MAX_VECTOR_VALUES
) -> dict[str, np.ndarray]:
    """Parse word vectors the worker exported in word2vec *text* format.

    A header ``count dim``, then ``word v1 … vdim`` per line: data only. Anything else —
    not UTF-8, a bad header, a line of the wrong width or longer than ``dim`` numbers can
    be, a value that is not a number, a count that does not match, more than
    ``max_values`` numbers in all — raises :class:`ProtocolError` naming the line.
    """
    vectors: dict[str, np.ndarray] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline(200).split()
            if len(header) != 2 or not all(h.isdigit() and len(h) < 12 for h in header):
                raise ProtocolError(f"the first line is {' '.join(header)!r:.60}, not 'count dim'")
            count, dim = int(header[0]), int(header[1])
            if count > max_words or not 0 < dim <= 10_000 or count * dim > max_values:
                raise ProtocolError(
                    f"the header declares {count:,} words of {dim} dimensions; the grader reads "
                    f"at most {max_words:,} words, 10,000 dimensions and {max_values:,} numbers"
                )
            # a word, then dim numbers of at most 40 characters each: no line is longer
            longest = 1000 + 41 * dim
            number = 1
            while len(vectors) <= count:
                line = fh.readline(longest + 1)
                number += 1
                if not line:
                    break
                if len(line) > longest:
                    raise ProtocolError(f"line {number} is longer than {longest:,} characters")
                word, *values = line.rstrip("\n").rstrip(" ").split(" ")
                if len(values) != dim:
                    raise ProtocolError(f"line {number} holds {len(values)} values, not {dim}")
                try:
                    vectors[word] = np.array(values, dtype=np.float64)
                except ValueError:
                    raise ProtocolError(f"line {number} holds a value that is not a number")
    except UnicodeDecodeError:
        raise ProtocolError("the file is not UTF-8 text") from None
    if len(vectors) != count:
        raise ProtocolError(f"the header declares {count:,} words, the file holds {len(vectors):,}")
    return vectors


def _decode_scalar(value: dict) -> np.generic:
    name = value["dtype"]
    try:
        if not isinstance(name, str) or len(name) > 16:
            raise TypeError(name)
        dtype = np.dtype(name)
    except Exception:  # noqa: BLE001 - numpy's dtype parser on a hostile string
        raise ProtocolError(f"bad numpy scalar dtype {str(name)[:40]!r}") from None
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
