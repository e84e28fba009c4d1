"""The model inspector: student-made ``.keras`` files are loaded and run in a jail, not here.

A ``.keras`` archive is the most complex thing a submission hands the grader, and Keras's
``safe_mode=True`` has been bypassed four times in two years (CVE-2024-3660, CVE-2025-1550,
CVE-2025-8747/9906, CVE-2025-9905). So the trusted process never loads one: it reads only
the archive's zip central directory, with bounds (:func:`check_archive`), and hands the file
to the student's **model inspector** — a worker of that student's session, started through
the same jail, over an empty folder (no student code is ever imported there), whose only
requests are the ``inspect`` ones of :data:`dlgrade.sandbox.feeds.INSPECTIONS`. It loads the file
with ``safe_mode=True`` and answers with data: a description of the model
(:class:`dlgrade.models.InspectedModel`), and, for checks that run a model on the grader's
data, predictions, losses and weights as arrays and floats.

A Keras bug that a crafted archive triggers gains its author that inspector: it sees only
that student's models, and its answers are checked like any worker's (the protocol's
bounds) and believed as that student's data, nothing more. Whatever happens there — an
exception, a crash, a hang, the memory limit — is the student's ``bad_model`` (or
``unsafe_model``), never the grader's fault.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import struct
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from dlgrade import profile
from dlgrade.errors import MachineBusy, SandboxError, SubmissionError
from dlgrade.sandbox.folders import MAX_MODEL_BYTES
from dlgrade.sandbox.limits import Limits
from dlgrade.sandbox.protocol import Handle
from dlgrade.sandbox.session import WorkerSession

#: members a saved model may hold (Keras writes three: metadata, config, weights)
MAX_MEMBERS = 256
#: bytes of the zip central directory the trusted side reads, at most
MAX_CENTRAL_DIRECTORY_BYTES = 256 * 1024
#: the declared size of ``config.json`` (the book's largest model's is about 20 KB)
MAX_CONFIG_BYTES = 8 * 1024 * 1024
#: all members together, as declared (4 bytes for each of 200 million parameters)
MAX_UNPACKED_BYTES = 800_000_000
#: a member that declares more than this many times its stored size is a zip bomb (Keras
#: stores members uncompressed; DEFLATE cannot exceed about 1,032)
MAX_EXPANSION = 100
EXPANSION_FLOOR_BYTES = 1024 * 1024
#: the inspector's own limit for loading and describing one model (TensorFlow's import
#: has its own: the preload's)
LOAD_SECONDS = 180.0

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"

#: a saved model whose archive the trusted side refuses before anything loads it
ARCHIVE_MESSAGE = (
    "the saved form of your model ({name}) {problem}, so the grader cannot inspect it. "
    "Return a plain Keras model (keras.Sequential or the functional API, built from "
    "Keras's own layers) and do not change how Keras saves models."
)
#: a model with a Lambda layer (or another layer that carries code): refused, not loaded
UNSAFE_MESSAGE = (
    "your model contains a Lambda layer (or other layer that carries Python code); the "
    "grader refuses to load code. Use Keras's built-in layers."
)
#: Keras, in the inspector, could not rebuild the model from its saved form
LOAD_MESSAGE = (
    "your model could not be rebuilt from its saved form ({name}): {error}. Use Keras's "
    "built-in layers only (no custom classes)."
)
#: the inspector crashed, hung, ran out of memory or broke the protocol with this model
INSPECTOR_MESSAGE = (
    "the grader's model inspector failed while {doing} your saved model ({name}): {error}. "
    "Return a plain Keras model built from Keras's own layers, of the size the activity "
    "asks for."
)
#: running the model on the grader's data failed (outside a ``student_model`` guard)
RUN_MESSAGE = "your model cannot be run on the grader's data: {error}"


class ModelRunError(SubmissionError):
    """The student's model failed on the grader's data in the inspector (``bad_model``).

    ``detail`` is what failed (``ValueError: ...``); :class:`dlgrade.models.student_model`
    names the call that built the model in front of it.
    """

    def __init__(self, detail: str):
        super().__init__(RUN_MESSAGE.format(error=detail), reason="bad_model")
        self.detail = detail


def _refuse(name: str, problem: str) -> SubmissionError:
    return SubmissionError(ARCHIVE_MESSAGE.format(name=name, problem=problem), reason="bad_model")


def check_archive(path: Path, name: str | None = None) -> None:
    """Refuse a saved model whose zip structure is not a plausible ``.keras`` file.

    Reads the end-of-central-directory record and the central directory only, each
    bounded, and never decompresses or parses a member: the member count, the declared
    sizes (in all, of ``config.json``, against what is stored), duplicate names,
    encryption. The inspector parses the rest. Raises the student's ``bad_model``.
    """
    name = name or Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise _refuse(name, f"cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(name, "is not a regular file")
        if info.st_size > MAX_MODEL_BYTES:
            raise _refuse(name, f"is {info.st_size:,} bytes, more than {MAX_MODEL_BYTES:,}")
        _check_end_record(fh, info.st_size, name)
        try:
            with zipfile.ZipFile(fh) as archive:
                members = archive.infolist()
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            ValueError,
            struct.error,
            OSError,
            EOFError,
            UnicodeDecodeError,
            NotImplementedError,
            OverflowError,
            IndexError,
            KeyError,
        ) as exc:
            problem = f"is not a valid zip archive ({type(exc).__name__}: {exc})"
            raise _refuse(name, problem) from None
    _check_members(members, name)


def _check_end_record(fh, size: int, name: str) -> None:
    """The end-of-central-directory record: a zip at all, not ZIP64, a small directory."""
    window = min(size, _EOCD.size + 0xFFFF)
    fh.seek(size - window)
    tail = fh.read(window)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        raise _refuse(name, "is not a zip archive (a .keras file is one)")
    _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    zip64 = 0xFFFF in (disk, cd_disk, entries) or 0xFFFFFFFF in (cd_size, cd_offset)
    if zip64 or (at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR_SIGNATURE):
        raise _refuse(name, "is a ZIP64 archive, which Keras never writes for a model this size")
    if disk or cd_disk:
        raise _refuse(name, "is a multi-part zip archive")
    if entries > MAX_MEMBERS:
        raise _refuse(name, f"holds {entries:,} files; a Keras model holds 3")
    if cd_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise _refuse(name, f"has a zip directory of {cd_size:,} bytes; a Keras model's is tiny")


def _check_members(members: list[zipfile.ZipInfo], name: str) -> None:
    if len(members) > MAX_MEMBERS:
        raise _refuse(name, f"holds {len(members):,} files; a Keras model holds 3")
    names = [m.filename for m in members]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise _refuse(name, f"holds {twice!r} twice")
    if "config.json" not in names:
        raise _refuse(name, "has no config.json (it is not a saved Keras model)")
    total = 0
    for member in members:
        shown = member.filename[:80]
        if member.flag_bits & 0x1:
            raise _refuse(name, f"holds an encrypted member ({shown!r})")
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _refuse(name, f"compresses {shown!r} with an unusual method")
        if member.file_size > EXPANSION_FLOOR_BYTES and (
            member.file_size > MAX_EXPANSION * max(member.compress_size, 1)
        ):
            raise _refuse(
                name,
                f"declares {member.file_size:,} bytes for {shown!r} but stores only "
                f"{member.compress_size:,} (a zip bomb)",
            )
        if member.filename == "config.json" and member.file_size > MAX_CONFIG_BYTES:
            raise _refuse(
                name,
                f"has a config.json of {member.file_size:,} bytes (at most {MAX_CONFIG_BYTES:,})",
            )
        total += member.file_size
    if total > MAX_UNPACKED_BYTES:
        raise _refuse(
            name, f"unpacks to {total:,} bytes; no activity needs more than {MAX_UNPACKED_BYTES:,}"
        )


class InspectorSession(WorkerSession):
    """A worker session over an empty folder that is only ever asked to inspect models."""

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def inspect(self, name: str, args=(), kwargs=None, *, timeout: float, label: str) -> Any:
        self._ready()
        request = {
            "op": "inspect",
            "name": name,
            "args": self._encode(list(args)),
            "kwargs": self._encode(dict(kwargs or {})),
        }
        return self._request(request, timeout, label)


class ModelInspector:
    """One student's model inspector: started the first time a check needs a model, closed
    with the student's session, never shared with another student.

    ``limits``, ``hidden`` and ``isolation`` are the student's worker's: the inspector is
    jailed exactly as it is, and also cannot see the student's own folder.
    """

    def __init__(
        self, limits: Limits | None = None, hidden=(), isolation: str | None = None
    ):
        self.limits = limits or Limits()
        self.hidden = [Path(p) for p in hidden]
        self.isolation = isolation
        self.loads = 0
        self.load_seconds = 0.0
        self._session: InspectorSession | None = None
        self._empty: Path | None = None
        self._dirty = 0  # the generation that has loaded a student's file (0: none)
        self._released: list[Handle] = []
        self._seeded: tuple | None = None
        self._seed_next: tuple | None = None  # (seed, check) to send before the next request

    @classmethod
    def for_session(cls, student: WorkerSession) -> ModelInspector:
        """The inspector of ``student``'s session, closed when that session closes."""
        inspector = cls(
            student.limits,
            hidden=[*student.hidden, student.submission_dir, student.submission_dir.parent],
            isolation=student.mode,
        )
        student.companions.append(inspector)
        return inspector

    @property
    def session(self) -> InspectorSession | None:
        return self._session

    def start(self) -> None:
        """Start the inspector (its TensorFlow loads meanwhile) if it is not running."""
        if self._session is None:
            self._empty = Path(tempfile.mkdtemp(prefix="dlgrade-inspector-"))
            self._session = InspectorSession(
                self._empty,
                self.limits,
                preload=("keras",),
                hidden=self.hidden,
                isolation=self.isolation,
            )
        self._session.start()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._empty is not None:
            shutil.rmtree(self._empty, ignore_errors=True)
            self._empty = None

    def seed(self, seed: int | None, check: str = "") -> None:
        """Seed the inspector's Keras for the running check, before its next request."""
        if seed is not None and (seed, check) != self._seeded:
            self._seed_next = self._seeded = (seed, check)

    def release(self, handle: Handle) -> None:
        """The trusted side no longer needs the model behind ``handle`` (sent later)."""
        self._released.append(handle)

    # -- requests ------------------------------------------------------------------------

    def load(self, path: Path) -> tuple[Handle, Any]:
        """Load the saved model at ``path`` (the trusted copy) in the inspector: its handle
        there and its description (data, to be checked by the caller)."""
        name = Path(path).name
        check_archive(path, name)
        self.start()
        session = self._session
        inbox = session.exchange_dir / "inbox"
        inside = inbox / f"model-{secrets.token_hex(6)}.keras"
        _copy_exclusive(Path(path), inside)
        began = time.perf_counter()
        try:
            value = self._inspect(
                "load", [str(inside)], timeout=LOAD_SECONDS, doing="loading", name=name, load=True
            )
        finally:
            inside.unlink(missing_ok=True)
            self.loads += 1
            self.load_seconds += time.perf_counter() - began
        profile.op("inspect model", time.perf_counter() - began)
        if (
            not isinstance(value, dict)
            or set(value) != {"model", "description"}
            or not isinstance(value["model"], Handle)
        ):
            raise SubmissionError(
                INSPECTOR_MESSAGE.format(
                    doing="loading", name=name, error="it answered something else than a model"
                ),
                reason="bad_model",
            )
        return value["model"], value["description"]

    def run(self, what: str, handle: Handle, args=(), kwargs=None, *, timeout: float) -> Any:
        """``predict``, ``evaluate``, ``fit`` or ``weights`` on the model behind ``handle``."""
        session = self._session
        if session is None or handle.generation != session.generation or not session.alive():
            raise ModelRunError(
                "the grader's model inspector stopped after an earlier failure and no longer "
                "holds this model"
            )
        return self._inspect(
            what, [handle, *args], kwargs, timeout=timeout, doing=f"running ({what})", name=""
        )

    def _inspect(
        self, what, args, kwargs=None, *, timeout, doing: str, name: str, load: bool = False
    ) -> Any:
        session = self._session
        try:
            if self._seed_next is not None:
                session.start_check(*self._seed_next)  # sent with the next request
                self._seed_next = None
            self._send_releases()
            session.ready()  # may start a fresh inspector: nothing of the student's in it yet
            if load:
                self._dirty = session.generation  # from here on, its answers are the student's
            return session.inspect(what, args, kwargs, timeout=timeout, label=f"{doing} a model")
        except MachineBusy:
            raise
        except (SubmissionError, SandboxError) as exc:
            if session.generation != self._dirty:
                raise  # an inspector that never held the student's file: its failure is ours
            raise self._students(exc, doing, name, load) from None

    def _send_releases(self) -> None:
        released, self._released = self._released, []
        for handle in released:
            self._session.release(handle)

    @staticmethod
    def _students(exc: Exception, doing: str, name: str, load: bool) -> SubmissionError:
        """Any failure of an inspector that has held the student's file: theirs."""
        reason = getattr(exc, "reason", "")
        text = " ".join(str(exc).split())[:1500]
        if reason == "unsafe_model":
            return SubmissionError(UNSAFE_MESSAGE, reason="unsafe_model")
        if not load:
            return ModelRunError(text if reason == "bad_model" else f"{reason}: {text}")
        if reason == "bad_model":
            return SubmissionError(LOAD_MESSAGE.format(name=name, error=text), reason="bad_model")
        return SubmissionError(
            INSPECTOR_MESSAGE.format(doing=doing, name=name, error=text), reason="bad_model"
        )


def _copy_exclusive(source: Path, target: Path) -> None:
    """Copy our own file to ``target``, created anew (never through what is there)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
        shutil.copyfileobj(src, dst, 1 << 20)
