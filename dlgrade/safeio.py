"""Touching the worker's folders from the trusted side without trusting what is in them.

The exchange folder, the worker's home and its scratch copy are written by the student's
process: any name in them may be a symlink, a folder, a FIFO, a device or a sparse file of
any size, and may change between two system calls. Every read, write and removal the
grader does there goes through here:

- opened relative to a folder descriptor with ``O_NOFOLLOW`` (the folder itself opened
  with ``O_DIRECTORY|O_NOFOLLOW``), so no link is ever followed;
- ``O_NONBLOCK``, and a regular file is checked with ``fstat`` on the open descriptor, so a
  FIFO or a device never blocks the grader and a swapped file is caught;
- sizes capped before reading, and read in a bounded loop (the file may grow meanwhile);
- the grader's own files created under unpredictable names with ``O_CREAT|O_EXCL``;
- removals that fail (a folder planted under a file's name, a permission) are ignored:
  cleaning up is never an error of the check.

Stdlib only; nothing here raises anything but :class:`UnsafeEntry` (and, from
:func:`create_exclusive`, ``OSError`` when the folder itself is unusable).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class UnsafeEntry(Exception):
    """A name in a worker's folder is not the regular file of bounded size it should be."""


def _describe(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return what
    return "not a regular file"


@contextlib.contextmanager
def open_dir(folder: Path) -> Iterator[int]:
    """A descriptor on ``folder`` itself, never through a link in its last component."""
    try:
        fd = os.open(folder, _DIR_FLAGS)
    except OSError as exc:
        raise UnsafeEntry(f"the folder {Path(folder).name} cannot be opened: {exc.strerror}")
    try:
        yield fd
    finally:
        os.close(fd)


def check_name(name: object) -> str:
    """``name`` if it is a plain file name (one component, no NUL, not hidden)."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 255
        or "/" in name
        or "\0" in name
        or name.startswith(".")
    ):
        raise UnsafeEntry(f"{str(name)[:80]!r} is not a plain file name")
    return name


def open_regular(dir_fd: int, name: str, max_bytes: int) -> int:
    """Open ``name`` in ``dir_fd`` for reading: a regular file of at most ``max_bytes``.

    The caller owns (and closes) the descriptor.
    """
    check_name(name)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeEntry(f"{name} is a symbolic link") from None
        raise UnsafeEntry(f"{name} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeEntry(f"{name} is {_describe(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeEntry(
                f"{name} holds {info.st_size:,} bytes; at most {max_bytes:,} are read"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(fd: int, max_bytes: int, name: str = "the file") -> bytes:
    """All of ``fd`` up to its end, refusing more than ``max_bytes`` (it may grow as we read)."""
    chunks, total = [], 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
        except OSError as exc:
            raise UnsafeEntry(f"{name} cannot be read: {exc.strerror}") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise UnsafeEntry(f"{name} holds more than {max_bytes:,} bytes")
        chunks.append(chunk)


def read_file(folder: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``folder/name``, at most ``max_bytes``."""
    with open_dir(folder) as dir_fd:
        fd = open_regular(dir_fd, name, max_bytes)
        try:
            return read_bounded(fd, max_bytes, name)
        finally:
            os.close(fd)


def create_exclusive(dir_fd: int, prefix: str, suffix: str, mode: int = 0o644) -> tuple[str, int]:
    """A new file in ``dir_fd`` under a name nobody could guess: (name, writable fd).

    128 random bits: a worker cannot plant a link or a folder under the next name.
    """
    for _ in range(8):
        name = f"{prefix}{secrets.token_hex(16)}{suffix}"
        try:
            return name, os.open(name, _CREATE_FLAGS, mode, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no fresh name in the exchange folder")


def remove(folder: Path | int, name: str) -> None:
    """Remove ``name`` from ``folder`` (a path or a descriptor), whatever it is; never raises.

    A folder planted under the name is removed without following any link inside it; what
    cannot be removed (a permission, a sticky folder) is left for the session's cleanup.
    """
    try:
        check_name(name)
        if isinstance(folder, int):
            _remove_at(folder, name)
        else:
            with open_dir(folder) as dir_fd:
                _remove_at(dir_fd, name)
    except (OSError, UnsafeEntry):
        pass


def _remove_at(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)  # fd-based: links not followed
    except PermissionError as exc:
        # Linux says EISDIR for a folder; others EPERM. Only a folder is worth a second try.
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise exc from None
        shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)


def remove_tree(folder: Path) -> bool:
    """Remove ``folder`` and everything in it, links not followed; True when it is gone.

    Root removes anything the worker made. Without root the worker shares our uid and may
    have ``chmod 0``'ed its own folders: those are made writable again (nothing is gained
    by racing that with a link: the worker could chmod our files itself).
    """

    def retry(function, path, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)

    if not os.path.lexists(folder):
        return True
    if os.path.islink(folder) or not os.path.isdir(folder):
        with contextlib.suppress(OSError):
            os.unlink(folder)
    else:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder, onerror=None if os.geteuid() == 0 else retry)
    return not os.path.lexists(folder)
