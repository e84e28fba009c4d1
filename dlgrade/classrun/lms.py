"""An LMS's "download all submissions" zip, unpacked safely into one folder per student.

The zip is the attacker's: entry names may climb out of the destination, entries may be
links, headers may lie about sizes and a few kilobytes may inflate to gigabytes. Every name
is checked before it becomes a path, only regular files are written (mode 0o644, under a
temporary name first, then renamed), and every entry is streamed in chunks under caps that
count the bytes actually inflated (a header is trusted to refuse an entry, never to admit
one). ``dest`` is cleared and rewritten on each run, so unpacking the same zip twice gives
the same folders and the same manifest.

Names understood: Canvas's ``name_userid_attachmentid_file`` (and ``name_LATE_...``) at the
top of the zip, and per-student folders ``name_userid[_anything]/...`` (Moodle-like). A
``.zip`` a student uploaded is unpacked one level deep into that student's folder, and a zip
whose entries all sit in one folder that is not a student's is read through that folder.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dlgrade.atomic import write_atomic
from dlgrade.errors import DlgradeError
from dlgrade.gradebook import safe_id
from dlgrade.text import dumps, shown_name

try:  # zipfile reads LZMA entries only when Python was built with lzma
    from lzma import LZMAError
except ImportError:  # pragma: no cover

    class LZMAError(Exception):  # type: ignore[no-redef]
        """Stands in when lzma is missing: never raised."""


#: the audit file written at the top of ``dest``
MANIFEST = "lms_import.json"
MANIFEST_VERSION = 1
#: written first: marks ``dest`` as ours, so a later run may clear it (even after a crash)
MARKER = ".dlgrade-lms-import"
#: where a student's own .zip is inflated before its entries are read (removed at the end)
NESTED_TMP = ".lms-nested"

MAX_ENTRIES = 10_000
MAX_TOTAL_BYTES = 1 << 30  # 1 GiB, every entry's real uncompressed size together
MAX_FILE_BYTES = 100 << 20  # 100 MiB for one entry
MAX_RATIO = 200  # uncompressed / compressed, for entries over RATIO_FLOOR
RATIO_FLOOR = 1 << 20  # small files compress well and harmlessly: no ratio cap below 1 MiB
#: a student's own zip, unpacked into their folder: at most this many entries, and headers
#: declaring at most this many bytes (over either, that zip is skipped for that student)
MAX_STUDENT_FILES = 1_000
MAX_STUDENT_BYTES = 256 << 20
#: path parts inside a student's folder: a file under at most five sub-folders
MAX_DEPTH = 6
CHUNK = 1 << 16

# Canvas: smithjane_12345_67890_activity_1_01.py, smithjane_LATE_12345_67890_activity_1_01.py
# (re.ASCII: \d is 0-9 only; "١٢٣" and "٤٥٦" would both clean to one id, merging two students)
_CANVAS = re.compile(
    r"(?P<name>[^_]+)_(?:LATE_)?(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)", re.ASCII | re.DOTALL
)
# a per-student folder: smithjane_12345/, Jane Smith_12345_assignsubmission_file_/
_FOLDER = re.compile(r"(?P<name>[^_]+)_(?:LATE_)?(?P<uid>\d+)(?:_.*)?", re.ASCII | re.DOTALL)
# Canvas's rename of a re-upload: activity_1_01-1.py is the second activity_1_01.py
_RESUBMISSION = re.compile(r"(?P<stem>.+)-\d+(?P<ext>\.[^.]+)", re.ASCII | re.DOTALL)
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_METADATA_FOLDERS = {"__MACOSX"}
_METADATA_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
#: what inflating a damaged entry raises, whatever its compression method
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, LZMAError)

_FIX_NAME = "rename it to name_userid_... or move it into a folder name_userid/ for its student"


class LmsError(DlgradeError):
    """The LMS export cannot be unpacked as a whole (not a zip, damaged, over a cap)."""


@dataclass(frozen=True)
class LmsStudent:
    """One student found in the export, and the files written for them."""

    student: str  # the id: folder name and gradebook key (the LMS user id)
    name: str  # display name from the export ("smithjane"), "" if unknown
    lms_id: str  # the LMS's user id ("12345"), "" if unknown
    folder: Path  # dest/<student>/
    files: tuple[str, ...]  # paths relative to folder, "/"-separated, sorted


@dataclass(frozen=True)
class LmsImport:
    """What ``unpack`` made of an export: the students and the entries it could not map."""

    root: Path
    students: tuple[LmsStudent, ...]
    unmapped: tuple[tuple[str, str], ...]  # (zip entry name, why), in zip order

    def to_dict(self) -> dict[str, Any]:
        return {
            "students": [
                {
                    "student": s.student,
                    "name": s.name,
                    "lms_id": s.lms_id,
                    "folder": s.folder.name,
                    "files": list(s.files),
                }
                for s in self.students
            ],
            "unmapped": [{"entry": entry, "why": why} for entry, why in self.unmapped],
        }


def is_archive(path: Path) -> bool:
    """True when ``path`` is a regular file that is a zip archive."""
    path = Path(path)
    try:
        return path.is_file() and zipfile.is_zipfile(path)
    except OSError:
        return False


def unpack(
    archive: Path,
    dest: Path,
    *,
    max_entries: int = MAX_ENTRIES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_ratio: float = MAX_RATIO,
) -> LmsImport:
    """Unpack ``archive`` into ``dest/<student>/`` (``dest`` is cleared first); return the map."""
    archive, dest = Path(archive), Path(dest)
    caps = _Caps(max_entries, max_total_bytes, max_file_bytes, max_ratio)
    if dest.resolve() in archive.resolve().parents:
        raise LmsError(
            f"{archive}: the archive lies inside the destination {dest}, which is cleared before "
            "unpacking; move the archive elsewhere or pick another destination"
        )
    with _open_archive(archive) as source:
        if len(source.infolist()) > caps.max_entries:
            raise LmsError(
                f"{archive}: holds {len(source.infolist()):,} entries, more than "
                f"max_entries={caps.max_entries:,} (a zip bomb?); check the file, or raise "
                "max_entries if the export is genuine"
            )
        try:
            _prepare(dest)
            unpacker = _Unpacker(archive, dest, caps)
            try:
                result = unpacker.run(source)
            finally:
                unpacker.close()
            _write_json(dest / MANIFEST, _manifest(archive, caps, result, unpacker.sources))
        except BaseException as exc:
            if (dest / MARKER).is_file():  # leave no half import for the grader to find
                _clear(dest)
            if isinstance(exc, OSError):  # the archive's read errors are LmsErrors already
                raise LmsError(
                    f"{dest}: cannot write the students' folders ({exc}); check free space and "
                    "permissions, or pass another destination"
                )
            raise
    return result


@dataclass(frozen=True)
class _Caps:
    max_entries: int
    max_total_bytes: int
    max_file_bytes: int
    max_ratio: float

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"{name}={value!r}: a cap must be a positive number")


@dataclass(frozen=True, eq=False)
class _Plan:
    """One entry bound for one file in one student's folder."""

    entry: str  # as reported: "outer" or "outer::inner" for a student's own zip
    order: tuple[int, int]  # zip order: (outer index, inner index or 0)
    student: str
    path: PurePosixPath  # inside the student's folder
    rank: tuple[int, int, int]  # (attachment id, outer index, inner index): highest wins
    source: zipfile.ZipFile
    info: zipfile.ZipInfo
    nested: bool  # inside a student's zip: damage is the student's, not the export's


class _Unpacker:
    """One run of ``unpack``: the running counts, the plans and the unmapped entries."""

    def __init__(self, archive: Path, dest: Path, caps: _Caps):
        self.archive = archive
        self.dest = dest
        self.root = dest.resolve()
        self.caps = caps
        self.entries = 0  # entries seen, nested zips' included
        self.spent = 0  # bytes inflated so far
        self.people: dict[str, str] = {}  # student → display name
        self.unmapped: list[tuple[tuple[int, int], str, str]] = []
        self.sources: dict[str, dict[str, str]] = {}  # student → {file: entry}
        self.opened: list[zipfile.ZipFile] = []

    def run(self, source: zipfile.ZipFile) -> LmsImport:
        infos = source.infolist()
        self.entries = len(infos)
        # an export unzipped and zipped again by hand: submissions/smithjane_1_2_a.py
        names = [_safe_parts(i.filename)[0] for i in infos if not _is_folder(i)]
        wrapper = _wrapper([parts for parts in names if parts and not _metadata_why(parts)])
        if wrapper and _FOLDER.fullmatch(wrapper):  # the one student's folder, not a wrapper
            wrapper = ""
        plans = self._resolve(
            [p for i, info in enumerate(infos) if (p := self._plan(source, i, info, wrapper))]
        )
        expanded: list[_Plan] = []
        for plan in plans:
            expanded += self._expand(plan) if _is_zip_name(plan.path.name) else [plan]
        plans = self._separate(self._resolve(expanded))
        planned = self.spent + sum(p.info.file_size for p in plans if not self._header_why(p))
        if planned > self.caps.max_total_bytes:
            raise LmsError(
                f"{self.archive}: would unpack to {planned:,} bytes, more than "
                f"max_total_bytes={self.caps.max_total_bytes:,} (a zip bomb?); check the file, "
                "or raise max_total_bytes if the export is genuine"
            )
        written: dict[str, dict[str, str]] = {student: {} for student in self.people}
        for plan in sorted(plans, key=lambda p: p.order):
            if self._write(plan):
                written[plan.student][str(plan.path)] = plan.entry
        students = []
        for student in sorted(self.people):
            folder = self.dest / student
            folder.mkdir(exist_ok=True)
            self.sources[student] = dict(sorted(written[student].items()))
            files = tuple(self.sources[student])
            students.append(LmsStudent(student, self.people[student], student, folder, files))
        unmapped = tuple((entry, why) for _, entry, why in sorted(self.unmapped))
        return LmsImport(self.dest, tuple(students), unmapped)

    def close(self) -> None:
        for source in self.opened:
            source.close()
        shutil.rmtree(self.dest / NESTED_TMP, ignore_errors=True)

    def _skip(self, order: tuple[int, int], entry: str, why: str) -> None:
        self.unmapped.append((order, entry, why))

    def _plan(
        self, source: zipfile.ZipFile, index: int, info: zipfile.ZipInfo, wrapper: str
    ) -> _Plan | None:
        """The plan for one entry of the export, or None (a folder, or reported unmapped)."""
        order, entry = (index, 0), info.filename
        if _is_folder(info):
            return None
        parts, why = _safe_parts(entry)
        if not why:
            why = _metadata_why(parts)
        if why:
            self._skip(order, entry, why)
            return None
        if wrapper:
            parts = parts[1:]
        match = _CANVAS.fullmatch(parts[0]) if len(parts) == 1 else _FOLDER.fullmatch(parts[0])
        if match is None:
            why = (
                "not a Canvas submission name (name_userid_attachmentid_file) and not inside a "
                f"student's folder; {_FIX_NAME}"
                if len(parts) == 1
                else f"its folder {parts[0]!r} does not start with name_userid; rename the folder "
                "to name_userid (e.g. smithjane_12345)"
            )
            self._skip(order, entry, why)
            return None
        student = safe_id(match["uid"])
        self.people.setdefault(student, "")
        self.people[student] = self.people[student] or shown_name(match["name"])
        if len(parts) == 1:
            canvas = _RESUBMISSION.fullmatch(match["file"])
            rel = (canvas["stem"] + canvas["ext"],) if canvas else (match["file"],)
            aid = int(match["aid"])
        else:
            rel, aid = parts[1:], -1
        why = _dots_why(rel) or _metadata_why(rel) or _type_why(info) or _depth_why(rel)
        if why:
            self._skip(order, entry, why)
            return None
        path = PurePosixPath(*rel)
        return _Plan(entry, order, student, path, (aid, index, 0), source, info, nested=False)

    def _expand(self, plan: _Plan) -> list[_Plan]:
        """The plans for the entries of a student's own zip, one level deep."""
        (self.dest / NESTED_TMP).mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.dest / NESTED_TMP, suffix=".zip")
        with os.fdopen(fd, "wb") as fh:
            why = self._stream(plan, fh.write)
        if why:
            self._skip(plan.order, plan.entry, why)
            return []
        try:
            inner = zipfile.ZipFile(name)
            infos = inner.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, *_DAMAGED) as exc:
            self._skip(
                plan.order,
                plan.entry,
                f"named .zip but cannot be opened as one ({exc}); ask the student to upload it "
                "again, or their files one by one",
            )
            return []
        self.opened.append(inner)
        # a student's own zip is the student's: over a budget, it is skipped for them (and
        # reported), never an error of the whole export
        why = self._nested_why(infos)
        if why:
            self._skip(plan.order, plan.entry, why)
            return []
        self.entries += len(infos)
        found = []
        for j, info in enumerate(infos, start=1):
            order, entry = (plan.order[0], j), f"{plan.entry}::{info.filename}"
            if _is_folder(info):
                continue
            parts, why = _safe_parts(info.filename)
            why = why or _metadata_why(parts) or _type_why(info)
            if not why and _is_zip_name(parts[-1]):
                why = (
                    "a zip inside a zip inside the export: only one level is unpacked; ask the "
                    "student to upload their files, or one zip of them"
                )
            if why:
                self._skip(order, entry, why)
            else:
                found.append((j, order, entry, info, parts))
        # a student who zipped their folder: activity1/activity_1_01.py → activity_1_01.py
        strip = 1 if _wrapper([parts for *_, parts in found]) else 0
        plans = []
        for j, order, entry, info, parts in found:
            rel = plan.path.parent.parts + parts[strip:]
            why = _depth_why(rel)
            if why:
                self._skip(order, entry, why)
                continue
            rank = (*plan.rank[:2], j)
            path = PurePosixPath(*rel)
            plans.append(_Plan(entry, order, plan.student, path, rank, inner, info, nested=True))
        return plans

    def _nested_why(self, infos: list[zipfile.ZipInfo]) -> str:
        """Why a student's own zip is over a budget ('' when it is not): its entries, or what
        its headers declare (a header is trusted to refuse, never to admit)."""
        room = min(MAX_STUDENT_FILES, self.caps.max_entries - self.entries)
        if len(infos) > room:
            where = (
                f"the {MAX_STUDENT_FILES:,} files one student may hand in"
                if room == MAX_STUDENT_FILES
                else f"what is left of max_entries={self.caps.max_entries:,} for the export"
            )
            return (
                f"a zip of {len(infos):,} entries, more than {where} (a zip bomb?); skipped: "
                "ask the student for their activity files, not a folder of everything"
            )
        declared = sum(i.file_size for i in infos)
        if declared > MAX_STUDENT_BYTES:
            return (
                f"a zip declaring {declared:,} bytes uncompressed, more than the "
                f"{MAX_STUDENT_BYTES:,} one student may hand in (a zip bomb?); skipped: ask "
                "the student for their activity files only"
            )
        return ""

    def _resolve(self, plans: list[_Plan]) -> list[_Plan]:
        """Keep, for each file of each student, the latest upload; report the others."""
        best: dict[tuple[str, PurePosixPath], _Plan] = {}
        for plan in plans:
            key = (plan.student, plan.path)
            if key not in best or plan.rank > best[key].rank:
                best[key] = plan
        kept = []
        for plan in plans:
            winner = best[(plan.student, plan.path)]
            if winner is plan:
                kept.append(plan)
            else:
                self._skip(
                    plan.order,
                    plan.entry,
                    f"an earlier upload of {plan.path} for student {plan.student}: kept "
                    f"{winner.entry}, the latest",
                )
        return kept

    def _separate(self, plans: list[_Plan]) -> list[_Plan]:
        """Drop a file whose path is another kept file's folder (or the reverse), latest wins."""
        files: set[tuple[str, PurePosixPath]] = set()
        folders: set[tuple[str, PurePosixPath]] = set()
        kept = []
        for plan in sorted(plans, key=lambda p: p.rank, reverse=True):
            parents = [(plan.student, p) for p in plan.path.parents if p != PurePosixPath(".")]
            if (plan.student, plan.path) in folders or any(p in files for p in parents):
                self._skip(
                    plan.order,
                    plan.entry,
                    f"{plan.path} is both a file and a folder for student {plan.student}; kept "
                    "the latest upload",
                )
                continue
            files.add((plan.student, plan.path))
            folders.update(parents)
            kept.append(plan)
        return kept

    def _header_why(self, plan: _Plan) -> str:
        """Why the header alone refuses the entry (trusted to refuse, never to admit)."""
        info, caps = plan.info, self.caps
        if info.file_size > caps.max_file_bytes:
            return _too_big(info.file_size, caps)
        if info.file_size > RATIO_FLOOR and info.file_size > caps.max_ratio * max(
            info.compress_size, 1
        ):
            return _too_dense(info.file_size, info.compress_size, caps)
        return ""

    def _stream(self, plan: _Plan, write: Callable[[bytes], object]) -> str:
        """Inflate one entry through ``write`` under the caps; '' when done, else why it stopped."""
        why = self._header_why(plan)
        if why:
            return why
        caps, info = self.caps, plan.info
        try:
            stream = plan.source.open(info)
        except NotImplementedError as exc:
            return f"compressed with a method Python cannot read ({exc}); ask for a plain zip"
        except RuntimeError as exc:  # encrypted
            return f"cannot be read ({exc}); ask the student to upload it without a password"
        except _DAMAGED as exc:
            return self._damaged(plan, exc)
        count = 0
        with stream:
            while True:
                try:
                    chunk = stream.read(CHUNK)
                except _DAMAGED as exc:
                    self.spent += count
                    return self._damaged(plan, exc)
                if not chunk:
                    break
                count += len(chunk)
                why = ""
                if self.spent + count > caps.max_total_bytes:
                    if plan.nested:  # the student's zip lied in its headers: theirs to lose
                        self.spent += count
                        return (
                            f"inflates past what its zip's headers declared, taking the export "
                            f"past max_total_bytes={caps.max_total_bytes:,} (a zip bomb?); skipped"
                        )
                    raise LmsError(
                        f"{self.archive}: {plan.entry!r} takes the export past "
                        f"max_total_bytes={caps.max_total_bytes:,} uncompressed (a zip bomb?); "
                        "remove that entry from the export, or raise max_total_bytes if it is "
                        "genuine"
                    )
                if count > caps.max_file_bytes:
                    why = _too_big(count, caps, at_least=True)
                elif count > RATIO_FLOOR and count > caps.max_ratio * max(info.compress_size, 1):
                    why = _too_dense(count, info.compress_size, caps, at_least=True)
                if why:
                    self.spent += count
                    return why
                write(chunk)
        self.spent += count
        return ""

    def _damaged(self, plan: _Plan, exc: BaseException) -> str:
        if plan.nested:
            return f"damaged inside the student's zip ({exc}); ask the student to upload it again"
        raise LmsError(
            f"{self.archive}: entry {plan.entry!r} is damaged ({exc}); download the submissions "
            "again from your LMS, or remove that entry from the zip"
        )

    def _write(self, plan: _Plan) -> bool:
        """Write one plan's file under a temporary name, then rename it; False if skipped."""
        folder = self.dest / plan.student / plan.path.parent
        target = folder / plan.path.name
        if not target.resolve().is_relative_to(self.root):  # _safe_parts makes this impossible
            raise LmsError(f"{self.archive}: refusing to write {plan.entry!r} outside {self.dest}")
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".lms-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                why = self._stream(plan, fh.write)
                if not why:
                    fh.flush()
                    os.fsync(fh.fileno())
            if why:
                Path(name).unlink()
                self._skip(plan.order, plan.entry, why)
                return False
            os.chmod(name, 0o644)
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return True


def _open_archive(archive: Path) -> zipfile.ZipFile:
    fix = "pass the zip your LMS exported, or a folder with one sub-folder per student"
    if not archive.is_file():
        raise LmsError(f"{archive}: no such file; {fix}")
    try:
        if not zipfile.is_zipfile(archive):
            raise LmsError(
                f"{archive}: not a zip archive (no zip directory at its end: another kind of "
                f"file, or a download cut short); {fix}"
            )
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, *_DAMAGED) as exc:
        raise LmsError(
            f"{archive}: a damaged zip archive ({exc}); download the submissions again from "
            "your LMS"
        )


def _prepare(dest: Path) -> None:
    """Make ``dest`` an empty folder marked as ours; refuse a folder that is someone else's."""
    if dest.exists() and not dest.is_dir():
        raise LmsError(f"{dest}: exists and is not a folder; pass a new or empty folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise LmsError(
            f"{dest}: not empty and not an earlier LMS import (no {MARKER} in it); this folder "
            "is cleared before unpacking, so pass a new or empty folder"
        )
    dest.mkdir(parents=True, exist_ok=True)
    _clear(dest)
    (dest / MARKER).write_text("dlgrade unpacks LMS exports here and clears it on each run\n")


def _clear(dest: Path) -> None:
    """Remove everything under ``dest`` but the marker."""
    for child in dest.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _safe_parts(name: str) -> tuple[tuple[str, ...], str]:
    """The parts of a zip entry name, or why the name is unsafe as a path."""
    path = name.replace("\\", "/")  # Windows tools (PowerShell's Compress-Archive) write "\"
    if path.startswith("/"):
        return (), "an absolute path; refused so that nothing is written outside the destination"
    raw = path.split("/")
    if _DRIVE.match(raw[0]):
        return (), "starts with a drive letter; refused so that nothing is written elsewhere"
    if ".." in raw:
        return (), "a '..' in the path would climb out of the destination; refused"
    parts = tuple(p for p in raw if p not in ("", "."))
    if not parts:
        return (), f"an empty file name; {_FIX_NAME}"
    if any(_CONTROL.search(p) for p in parts):
        return (), f"control characters in the name; {_FIX_NAME}"
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        return (), "a name longer than 255 bytes, which no file system accepts; shorten it"
    return parts, ""


def _dots_why(rel: tuple[str, ...]) -> str:
    if any(part in (".", "..") for part in rel):  # Canvas's file part may be ".." itself
        return "'.' or '..' as a file name would climb out of the student's folder; refused"
    return ""


def _metadata_why(parts: tuple[str, ...]) -> str:
    if _METADATA_FOLDERS & set(parts) or parts[-1] in _METADATA_FILES or parts[-1].startswith("._"):
        return "operating-system metadata (__MACOSX, ._*, .DS_Store), not a submission"
    return ""


def _type_why(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link; only regular files are imported (a link could point anywhere)"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return f"not a regular file (type {stat.S_IFMT(mode):#o}); only regular files are imported"
    if info.flag_bits & 0x1:
        return "encrypted; ask the student to upload it without a password"
    return ""


def _depth_why(rel: tuple[str, ...]) -> str:
    if len(rel) > MAX_DEPTH:
        return (
            f"{len(rel) - 1} folders deep inside the student's folder, more than "
            f"{MAX_DEPTH - 1}; ask the student for a flatter layout"
        )
    return ""


def _wrapper(names: list[tuple[str, ...]]) -> str:
    """The one folder every name sits in, or '' (none, or names outside it)."""
    tops = {parts[0] for parts in names if len(parts) > 1}
    if len(tops) == 1 and all(len(parts) > 1 for parts in names):
        return tops.pop()
    return ""


def _is_folder(info: zipfile.ZipInfo) -> bool:
    # not info.is_dir(): it raises IndexError on an empty name (zipfile cuts a name at NUL)
    return info.filename.endswith("/") or stat.S_ISDIR(info.external_attr >> 16)


def _is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def _too_big(size: int, caps: _Caps, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (
        f"{more}{size:,} bytes uncompressed, over max_file_bytes={caps.max_file_bytes:,}; "
        "skipped: ask the student for a smaller file"
    )


def _too_dense(size: int, packed: int, caps: _Caps, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (
        f"inflates {more}{size / max(packed, 1):,.0f}:1 ({size:,} bytes from {packed:,}), over "
        f"max_ratio={caps.max_ratio:g} (a zip bomb?); skipped: ask the student for the file "
        "as it is"
    )


def _manifest(
    archive: Path, caps: _Caps, result: LmsImport, sources: dict[str, dict[str, str]]
) -> dict[str, Any]:
    data: dict[str, Any] = {"version": MANIFEST_VERSION, "archive": archive.name}
    data["caps"] = {
        "max_entries": caps.max_entries,
        "max_total_bytes": caps.max_total_bytes,
        "max_file_bytes": caps.max_file_bytes,
        "max_ratio": caps.max_ratio,
    }
    data.update(result.to_dict())
    for student in data["students"]:
        student["sources"] = sources.get(student["student"], {})  # file → the zip entry
    return data


def _write_json(target: Path, data: dict[str, Any]) -> None:
    text = dumps(data, indent=2) + "\n"
    write_atomic(target, text, mode=0o644)
