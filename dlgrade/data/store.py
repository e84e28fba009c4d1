"""The datasets' store: where each lives here, how it is checked, and how it is fetched.

Lookup order for a dataset: the read-only mirror (``DLGRADE_DATA_DIR``, e.g. a lab's copy
of ``shared/data``), then the cache (``DLGRADE_CACHE_DIR``, default ``~/.cache/dlgrade``),
then a download into the cache. Downloads are written to a temporary name, checked, then
renamed (archives are unpacked into a temporary folder, then renamed), so an interrupted
fetch never leaves anything that counts as complete. Files with fixed content carry their
sha256, or the git blob id the book's repository gives them, and are verified wherever they
are found; the mirror is never written. Every way a fetch can fail (no network, an HTTP
error, a short or wrong download, NLTK's own downloader) ends in one ``DataError`` that
names the dataset and the fix, which a rubric reports as ``data_missing``.

Student code and rubrics use the same entry point: ``dlgrade.data.path("sonar")``.
This module imports neither TensorFlow nor numpy: ``dlgrade data list`` stays instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from dlgrade.data.registry import (
    BELOW_FULL,
    TWINS,
    Archive,
    DataFile,
    Dataset,
    dataset,
)
from dlgrade.errors import DataError

# -- where things are --------------------------------------------------------------------


def mirror_dir() -> Path | None:
    """``DLGRADE_DATA_DIR``, made absolute: the worker runs in another folder, so a relative
    mirror (``DLGRADE_DATA_DIR=../shared/data``) must not be handed on as written."""
    value = os.environ.get("DLGRADE_DATA_DIR")
    return Path(os.path.abspath(Path(value).expanduser())) if value else None


def cache_dir() -> Path:
    value = os.environ.get("DLGRADE_CACHE_DIR")
    if value:
        return Path(os.path.abspath(Path(value).expanduser()))
    return Path.home() / ".cache" / "dlgrade"


def roots() -> list[Path]:
    mirror = mirror_dir()
    return ([mirror] if mirror else []) + [cache_dir()]


def locate(name: str) -> Path | None:
    """The root (mirror or cache) that holds every file of ``name``, or None."""
    entry = dataset(name)
    for root in roots():
        if _complete(entry, root):
            return root
    return None


def _complete(entry: Dataset, root: Path) -> bool:
    files_ok = all((root / f.relpath).is_file() for f in entry.files)
    folders_ok = all(
        (root / folder).is_dir() and sum(1 for _ in (root / folder).iterdir()) >= count
        for folder, count in entry.folders
    )
    if root == cache_dir() and entry.archive is not None:
        return files_ok and folders_ok and (root / _marker(entry)).is_file()
    return files_ok and folders_ok


def _marker(entry: Dataset) -> str:
    return f".complete/{entry.name}"


def path(name: str, *, download: bool = True) -> Path:
    """Where dataset ``name`` lives, verified; fetch it into the cache if allowed."""
    entry = dataset(name)
    root = locate(name)
    if root is None:
        if not download:
            raise missing(entry, "downloads are disabled")
        root = fetch(name)
    verify(name, root)
    return root / (entry.main or entry.files[0].relpath)


def file_path(name: str, relpath: str, *, download: bool = True) -> Path:
    """One file of a dataset (e.g. one of Fashion-MNIST's four), verified."""
    entry = dataset(name)
    if not any(f.relpath == relpath for f in entry.files):
        raise DataError(f"dataset {name!r} has no file {relpath!r}")
    path(name, download=download)  # present and verified, or DataError
    return locate(name) / relpath


def missing(entry: Dataset, why: str) -> DataError:
    searched = "\n  ".join(
        str(root / (entry.files[0].relpath if entry.files else entry.main)) for root in roots()
    )
    needed = entry.files[0].relpath if entry.files else entry.main
    return DataError(
        f"dataset {entry.name!r} (needed by activity {', '.join(entry.activities)}) is not "
        f"available: {needed} was not found in\n  {searched}\nand {why}. Fix: set "
        f"DLGRADE_DATA_DIR to a folder holding {entry.layout.split(';')[0].split(' (')[0]}, or run "
        f"`dlgrade data fetch {entry.name}` on a machine with internet access."
    )


# -- checking ----------------------------------------------------------------------------


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_of(file: Path) -> str:
    """The id git gives the content of ``file``: sha1 of ``b"blob <size>\\0"`` and the bytes."""
    digest = hashlib.sha1(f"blob {file.stat().st_size}\0".encode())
    with open(file, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(file: Path, spec: DataFile | Archive) -> str | None:
    """How ``file`` differs from what ``spec`` pins (size, sha256, git blob id), or None."""
    size = file.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"{size:,} bytes, expected {spec.size:,}"
    if spec.sha256 is not None:
        got = sha256_of(file)
        if got != spec.sha256:
            return f"sha256 {got[:12]}…, expected {spec.sha256[:12]}…"
    if spec.git_blob is not None:
        got = git_blob_of(file)
        if got != spec.git_blob:
            return f"git blob id {got[:12]}…, expected {spec.git_blob[:12]}…"
    return None


def _pin(spec: DataFile | Archive) -> str:
    if spec.sha256 is not None:
        return "sha256"
    if spec.git_blob is not None:
        return "git blob id"
    return "size only" if spec.size is not None else "none"


_PIN_STRENGTH = ("none", "size only", "git blob id", "sha256")


def pinning(name: str) -> str:
    """How the bytes of ``name`` are pinned: sha256, git blob id, size only or none.

    The weakest pin among its files decides. A dataset whose files are unpacked from a zip
    and carry no pins of their own is as good as the zip's pin, and says so.
    """
    entry = dataset(name)
    weakest = min((_pin(f) for f in entry.files), key=_PIN_STRENGTH.index, default="none")
    if weakest == "none" and entry.archive is not None and _pin(entry.archive) != "none":
        return f"{_pin(entry.archive)} (of the zip)"
    return weakest


def verify(name: str, root: Path | None = None) -> list[str]:
    """Check every pinned file of ``name`` under ``root``; raise DataError on the first bad one.

    Returns what was hashed (sha256 or git blob id), relative to ``root``; files pinned by
    size only are size-checked. In the cache, the downloaded zip a dataset came from is
    checked too, where it is kept.
    """
    entry = dataset(name)
    root = root or locate(name)
    if root is None:
        raise missing(entry, "it has not been fetched")
    checked = []
    for spec in entry.files:
        file = root / spec.relpath
        if not file.is_file():
            raise missing(entry, f"{file} is missing")
        problem = _mismatch(file, spec)
        if problem is not None:
            raise _corrupt(entry, file, problem)
        if spec.sha256 is not None or spec.git_blob is not None:
            checked.append(spec.relpath)
    if root == cache_dir():
        for bundle in (entry.archive, entry.fallback):
            zipped = root / _DOWNLOADS / bundle.filename if bundle is not None else None
            if zipped is None or not zipped.is_file() or _pin(bundle) == "none":
                continue
            problem = _mismatch(zipped, bundle)
            if problem is not None:
                raise _corrupt(entry, zipped, problem)
            checked.append(f"{_DOWNLOADS}/{bundle.filename}")
    if entry.nltk_packages:
        _check_nltk_permissions(root / "nltk_data", root == mirror_dir())
    return checked


def _corrupt(entry: Dataset, file: Path, detail: str) -> DataError:
    return DataError(
        f"dataset {entry.name!r}: {file} is corrupt, truncated or a different version "
        f"({detail}). Delete it and run `dlgrade data fetch {entry.name}`, or copy a good "
        "file into the mirror."
    )


def _check_nltk_permissions(folder: Path, is_mirror: bool) -> None:
    """NLTK ≥ 3.10 refuses data that is group- or world-writable: fix the cache, flag a mirror."""
    writable = []
    for dirpath, _dirs, files in os.walk(folder):
        for item in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            if os.stat(item).st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                writable.append(item)
    if not writable:
        return
    if is_mirror:
        raise DataError(
            f"NLTK refuses data that is group- or world-writable, and {len(writable)} item(s) "
            f"under {folder} are (e.g. {writable[0]}). Fix: chmod -R go-w {folder}"
        )
    for item in writable:
        os.chmod(item, os.stat(item).st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))


# -- fetching ----------------------------------------------------------------------------

#: where downloaded zips are kept in the cache (re-used, and re-checked by `data verify`)
_DOWNLOADS = ".downloads"
#: seconds a server may stay silent before the next URL is tried
TIMEOUT = 30
#: what a download can raise: URLError/HTTPError, socket and TLS errors, timeouts and a full
#: disk are OSErrors; a broken HTTP stream is an HTTPException; a malformed URL or header a
#: ValueError
_DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, ValueError)
#: what reading a zip can raise besides OSError: not a zip, bad deflate data, an unsupported
#: method, an encrypted member, a truncated stream
_ZIP_ERRORS = (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError)


class _Unfetched(Exception):
    """Why a step of a fetch failed; ``fetch`` turns it into the dataset's ``DataError``."""


def open_url(url: str, timeout: float):
    """Open ``url`` for reading: the one place this module reaches the network.

    Tests replace it (``monkeypatch.setattr(data, "open_url", ...)``) to play a server that is
    absent, answers 404 or breaks off mid-file.
    """
    return urllib.request.urlopen(url, timeout=timeout)


def fetch(name: str, *, progress=None) -> Path:
    """Download ``name`` into the cache (never the mirror); return the cache root.

    However it fails, the result is a ``DataError`` naming the dataset, what was tried and
    the fix.
    """
    entry = dataset(name)
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if entry.nltk_packages:
            _fetch_nltk(entry, root)
        elif entry.archive is not None:
            _fetch_archive(entry, root, progress)
        else:
            _fetch_files(entry, root, progress)
    except _Unfetched as exc:
        raise missing(entry, str(exc)) from None
    except OSError as exc:  # the cache itself: a read-only home, a full disk
        raise missing(entry, f"writing to the cache {root} failed ({exc})") from None
    if not _complete(entry, root):
        raise missing(entry, "the fetched files are incomplete")
    return root


def _fetch_files(entry: Dataset, root: Path, progress) -> None:
    if not any(spec.urls for spec in entry.files) and entry.fallback is None:
        raise _Unfetched("it has no download source: copy it into the mirror by hand")
    errors = []
    for spec in entry.files:
        if not (root / spec.relpath).is_file():
            errors += _try_urls(spec, root / spec.relpath, progress)
    if not errors:
        return
    failed = "the download failed (" + "; ".join(errors) + ")"
    if entry.fallback is None:
        raise _Unfetched(failed)
    try:
        _take_from_zip(entry, root, progress)
    except _Unfetched as second:
        raise _Unfetched(f"{failed}; then the second source failed: {second}") from None


def _try_urls(spec: DataFile | Archive, target: Path, progress) -> list[str]:
    """Fetch ``spec`` to ``target`` from the first of its URLs that gives the pinned bytes.

    Returns why each URL failed ([] once one worked). Bytes go to a hidden ``.part`` file
    that becomes ``target`` only once every pin holds: ``target`` is complete or absent.
    """
    if not spec.urls:
        return [f"{target.name} has no download source"]
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            _copy_url(url, fd, spec.size, target.name, progress)
            problem = _mismatch(Path(partial), spec)
            if problem is not None:
                errors.append(
                    f"{url}: checksum mismatch, the download is not the pinned file ({problem})"
                )
                continue
            os.chmod(partial, 0o644)
            os.replace(partial, target)  # atomic: a file at `target` is always complete
            return []
        except _DOWNLOAD_ERRORS as exc:
            errors.append(f"{url}: {_why(exc)}")
        finally:
            Path(partial).unlink(missing_ok=True)
    return errors


def _copy_url(url: str, fd: int, size: int | None, label: str, progress) -> None:
    """Copy ``url`` into the open file ``fd``; a short or oversized body is an OSError."""
    limit = 2 * size if size else None
    with os.fdopen(fd, "wb") as out, open_url(url, timeout=TIMEOUT) as response:
        headers = getattr(response, "headers", None) or {}
        announced = int(headers.get("Content-Length") or 0) or None
        written = 0
        while chunk := response.read(1 << 20):
            written += len(chunk)
            if limit is not None and written > limit:
                raise OSError(f"more than {limit:,} bytes; expected {size:,}")
            out.write(chunk)
            if progress is not None:
                progress(label, written, announced or size or 0)
    if announced is not None and written != announced:
        raise OSError(f"the connection closed after {written:,} of {announced:,} bytes")


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()  # it holds the error page's open response
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    return str(exc) or type(exc).__name__


def _fetch_zip(bundle: Archive, root: Path, progress) -> Path:
    """The downloaded ``bundle``, its pins checked, kept under the cache's .downloads/."""
    zipped = root / _DOWNLOADS / bundle.filename
    if zipped.is_file() and _mismatch(zipped, bundle) is not None:
        zipped.unlink()  # damaged, or left by a registry that pinned other bytes: fetch anew
    if not zipped.is_file():
        errors = _try_urls(bundle, zipped, progress)
        if errors:
            raise _Unfetched(
                f"the download of {bundle.filename} failed (" + "; ".join(errors) + ")"
            )
    return zipped


def _fetch_archive(entry: Dataset, root: Path, progress) -> None:
    archive = entry.archive
    zipped = _fetch_zip(archive, root, progress)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{entry.name}."))
    try:
        try:
            _unpack(zipped, staging)
        except _Unfetched:
            if archive.sha256 is None and archive.git_blob is None:
                zipped.unlink()  # nothing vouches for these bytes (an error page?): not kept
            raise
        if entry.name == "glove":
            _glove_to_word2vec(staging / "glove.6B.100d.txt", staging / "glove.6B.100d.w2v.txt")
        wanted = sorted(
            {Path(f.relpath).parts[0] for f in entry.files}
            | {Path(folder).parts[0] for folder, _ in entry.folders}
        )
        absent = [item for item in wanted if not (staging / item).exists()]
        if absent:
            held = sorted(p.name for p in staging.iterdir())
            raise _Unfetched(
                f"{archive.filename} holds no {', '.join(absent)} at its top level; it holds "
                f"{_names(held)}"
            )
        for item in wanted:
            destination = root / item
            if destination.exists():
                shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
            os.replace(staging / item, destination)
        (root / ".complete").mkdir(exist_ok=True)
        (root / _marker(entry)).write_text(archive.filename + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _names(names: list[str], shown: int = 12) -> str:
    if not names:
        return "nothing"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _unpack(zipped: Path, target: Path, max_bytes: int = 8 * 2**30) -> None:
    """Unzip refusing path traversal, links and zip bombs."""
    try:
        with zipfile.ZipFile(zipped) as archive:
            total = 0
            for info in archive.infolist():
                name = Path(info.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise _Unfetched(
                        f"{zipped}: refusing entry {info.filename!r} (leaves the folder)"
                    )
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise _Unfetched(f"{zipped}: refusing symbolic link {info.filename!r}")
                total += info.file_size
                if total > max_bytes:
                    raise _Unfetched(f"{zipped}: unpacks to more than {max_bytes:,} bytes")
            archive.extractall(target)
    except _ZIP_ERRORS as exc:
        raise _Unfetched(f"{zipped} cannot be unpacked ({exc})") from None


def _take_from_zip(entry: Dataset, root: Path, progress) -> None:
    """Take the files still missing out of ``entry.fallback``, found by base name anywhere in
    the zip; each is accepted only if its own pins hold, so the zip's layout is not assumed."""
    bundle = entry.fallback
    zipped = _fetch_zip(bundle, root, progress)
    problems = []
    try:
        with zipfile.ZipFile(zipped) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            for spec in entry.files:
                target = root / spec.relpath
                if target.is_file():
                    continue
                base = PurePosixPath(spec.relpath).name
                found = [i for i in members if PurePosixPath(i.filename).name == base]
                why = [_take_member(archive, info, spec, target) for info in found]
                if not found:
                    problems.append(f"no {base}")
                elif all(why):
                    problems.extend(why)
    except _ZIP_ERRORS as exc:
        raise _Unfetched(f"{zipped} cannot be read as a zip ({exc})") from None
    if problems:
        raise _Unfetched(
            f"{bundle.filename} does not hold the files with their pinned checksums ("
            + "; ".join(problems)
            + f"); it holds {_names([i.filename for i in members])}"
        )


def _take_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, spec: DataFile, target: Path):
    """Extract one zip member to ``target`` if its pins hold; else say why (None = taken)."""
    if target.is_file():
        return None  # an earlier member of the same name was the right one
    if spec.sha256 is None and spec.git_blob is None:
        return f"{info.filename}: {spec.relpath} has no checksum to accept it by"
    if spec.size is not None and info.file_size != spec.size:
        return f"{info.filename} is {info.file_size:,} bytes, expected {spec.size:,}"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as member:
            limit = (spec.size or info.file_size) + 1  # the header may lie: never inflate more
            while chunk := member.read(min(1 << 20, limit)):
                out.write(chunk)
                limit -= len(chunk)
                if limit <= 0:
                    return f"{info.filename} inflates to more than it declares"
        problem = _mismatch(Path(partial), spec)
        if problem is not None:
            return f"{info.filename}: {problem}"
        os.chmod(partial, 0o644)
        os.replace(partial, target)
        return None
    finally:
        Path(partial).unlink(missing_ok=True)


def _glove_to_word2vec(source: Path, target: Path) -> None:
    """word2vec text format is GloVe's with a first line '<words> <dimensions>'."""
    with open(source, encoding="utf-8") as fh:
        count = sum(1 for _ in fh)
    with open(source, encoding="utf-8") as fh:
        first = fh.readline()
    dimensions = len(first.split()) - 1
    with open(target, "w", encoding="utf-8") as out, open(source, encoding="utf-8") as fh:
        out.write(f"{count} {dimensions}\n")
        shutil.copyfileobj(fh, out)


def _fetch_nltk(entry: Dataset, root: Path) -> None:
    try:
        import nltk
    except ImportError:
        raise _Unfetched("nltk is not installed (pip install nltk)") from None
    target = root / "nltk_data"
    for package in entry.nltk_packages:
        said = io.StringIO()
        try:
            # NLTK's downloader prints to sys.stdout and to the sys.stderr of when nltk was
            # first imported (a default argument), which pytest's capture may have closed
            # since ("I/O operation on closed file"): it talks to a buffer instead, and
            # what it said goes into the error
            with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
                ok = nltk.download(
                    package,
                    download_dir=str(target),
                    quiet=True,
                    raise_on_error=False,
                    print_error_to=said,
                )
        # whatever stops NLTK's downloader (its own bugs included), the data is not here
        except Exception as exc:  # noqa: BLE001
            ok = False
            said.write(f" {type(exc).__name__}: {exc}")
        if not ok:
            told = " ".join(said.getvalue().split())[-300:]
            raise _Unfetched(f"nltk.download({package!r}) failed" + (f": {told}" if told else ""))
        zipped = next(target.glob(f"*/{package}.zip"), None)
        if zipped is not None:  # nltk leaves the zip beside the unpacked folder
            zipped.unlink()
    _check_nltk_permissions(target, is_mirror=False)


def status(name: str) -> tuple[str, Path | None]:
    """('mirror'|'cache'|'missing', root) without hashing anything."""
    root = locate(name)
    if root is None:
        return "missing", None
    return ("mirror" if root == mirror_dir() else "cache"), root


def _download_urls(entry: Dataset) -> list[str]:
    """The first URL of each download a fetch of ``entry`` would make, second source last."""
    specs = [entry.archive] if entry.archive is not None else list(entry.files)
    if entry.fallback is not None:
        specs.append(entry.fallback)
    return [spec.urls[0] for spec in specs if spec.urls]


def source(name: str) -> str:
    """Where ``name`` comes from now: its mirror or cache path, else what a fetch would try."""
    entry = dataset(name)
    where, root = status(name)
    if root is not None:
        return f"{where} {root / (entry.main or entry.files[0].relpath)}"
    if entry.nltk_packages:
        return f"download with nltk.download({', '.join(entry.nltk_packages)})"
    urls = _download_urls(entry)
    if not urls:
        return "no download source"
    first = urls[:-1] if entry.fallback is not None and entry.fallback.urls else urls
    text = f"download {first[0]}" + (f" (+{len(first) - 1} more)" if len(first) > 1 else "")
    return text + (f", else {urls[-1]}" if first is not urls else "")


def describe_sources(names, tier: str = "quick") -> str:
    """One report-header line: each dataset real (and where), synthetic, or missing.

    It says what grading will read without hashing anything; the checks verify on use.
    """
    parts = []
    for name in names:
        entry = dataset(name)
        if tier != "full" and name in BELOW_FULL:
            parts.append(f"{name} {BELOW_FULL[name]}")
            continue
        try:
            where, root = status(name)
        except OSError as exc:
            parts.append(f"{name} unreadable ({exc})")
            continue
        if root is not None:
            parts.append(f"{name} real ({where} {root / (entry.main or entry.files[0].relpath)})")
        elif name in TWINS:
            parts.append(f"{name} {TWINS[name]}")
        elif entry.nltk_packages or _download_urls(entry):
            parts.append(f"{name} missing (download on first use)")
        else:
            parts.append(f"{name} missing (no download source)")
    return "data: " + (", ".join(parts) if parts else "none")


def nltk_data_dir() -> Path | None:
    """The nltk_data folder to give NLTK (NLTK_DATA), if the data is here."""
    root = locate("nltk")
    return root / "nltk_data" if root is not None else None


def progress_bar(label: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr for `dlgrade data fetch`."""
    if total:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(
            f"\r  {label}: [{'#' * filled}{'.' * (width - filled)}] "
            f"{done / 2**20:6.1f}/{total / 2**20:.1f} MiB"
        )
    else:
        sys.stderr.write(f"\r  {label}: {done / 2**20:6.1f} MiB")
    sys.stderr.flush()
