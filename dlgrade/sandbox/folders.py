"""The worker's folders: a scratch copy of the submission, its home, the exchange folder
for arrays and models, and a trusted folder of ours it cannot read."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from dlgrade import safeio
from dlgrade.data import twins
from dlgrade.errors import SubmissionError
from dlgrade.files import submission_files

MAX_SUBMISSION_BYTES = 200 * 1024 * 1024
MAX_SUBMISSION_FILES = 5_000
MAX_MODEL_BYTES = 512 * 1024 * 1024
#: more entries than this in the worker's folders counts as filling the disk
MAX_WORKER_FILES = 100_000
#: how often the trusted side adds up what the worker wrote, while a call runs
DISK_CHECK_SECONDS = 0.5


class WorkerFolders:
    """Everything the worker may write lives under ``root``; ``trusted`` is ours alone.

    ``owner``: (uid, gid) of the worker in the jail, or None (no jail: one uid for both).
    """

    def __init__(self, submission_dir: Path, datasets, owner: tuple[int, int] | None):
        self.submission_dir = submission_dir
        self.datasets = tuple(datasets)
        self.owner = owner
        self.root = Path(tempfile.mkdtemp(prefix="dlgrade-"))
        self.scratch_dir = self.root / "submission"
        self.exchange_dir = self.root / "exchange"
        self.home_dir = self.root / "home"
        self.trusted_dir = self.root / "trusted"
        self.trusted_dir.mkdir(mode=0o700)
        if owner is not None:
            self.root.chmod(0o711)  # the worker may enter its folders, not list or read ours
        self.keras_home = self.home_dir / ".keras"
        self.prepare()

    def prepare(self) -> None:
        """The worker's writable folders, fresh: the scratch copy, home and exchange."""
        for folder in (self.scratch_dir, self.home_dir, self.exchange_dir):
            if not safeio.remove_tree(folder):
                # what the last worker left cannot be removed (yet): out of the way, it is
                # removed with the session's folder; the next worker starts clean
                folder.rename(self.root / f"stale-{secrets.token_hex(8)}")
        self.exchange_dir.mkdir()
        self.home_dir.mkdir()
        (self.exchange_dir / "inbox").mkdir(mode=0o755)  # files rubrics share (read-only)
        copy_submission(self.submission_dir, self.scratch_dir)
        # Keras finds Fashion-MNIST and the VGG16 weights here without a download; a
        # dataset the rubrics need that is not here gets its synthetic twin instead.
        self.keras_home = twins.keras_home(self.home_dir / ".keras", twins=self.datasets)
        if self.owner is not None:
            self.hand_over(*self.owner)

    def hand_over(self, uid: int, gid: int) -> None:
        """Give the worker's uid its folders, but not the grader's files inside them.

        The scratch copy becomes the worker's. Home, KERAS_HOME and the exchange folder
        stay the grader's, sticky and group-writable for the worker: it adds and removes its
        own files, but cannot change, move or replace the Keras data and the shared inputs
        that rubrics read back or write to as root.
        """
        _chown_tree(self.scratch_dir, uid, gid)
        for folder in (self.keras_home, self.exchange_dir / "inbox"):
            for dirpath, dirnames, filenames in os.walk(folder):
                for name in dirnames:
                    os.chmod(os.path.join(dirpath, name), 0o755)
                for name in filenames:
                    if not os.path.islink(os.path.join(dirpath, name)):
                        os.chmod(os.path.join(dirpath, name), 0o644)
        (self.exchange_dir / "inbox").chmod(0o755)
        for folder in (self.home_dir, self.keras_home, self.exchange_dir):
            os.chown(folder, -1, gid)
            folder.chmod(0o1770)

    def disk_used(self) -> int:
        """Bytes in the worker's folders (symlinks not followed); too many files counts as full."""
        total = files = 0
        # In the jail the grader's own files there (Keras data, shared inputs) do not count.
        grader = os.geteuid() if self.owner is not None else None
        stack = [self.scratch_dir, self.home_dir, self.exchange_dir]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue
            for entry in entries:
                files += 1
                if files > MAX_WORKER_FILES:
                    return 2**62
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif (info := entry.stat(follow_symlinks=False)).st_uid != grader:
                        total += info.st_size
                except OSError:
                    continue
        return total

    def remove(self) -> None:
        """Remove every folder of the session; what cannot be removed is never an error."""
        safeio.remove_tree(self.root)


def _python_paths() -> set[str]:
    """Where this Python and its packages live: the worker must see them to start."""
    return {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}


def _chown_tree(folder: Path, uid: int, gid: int) -> None:
    os.chown(folder, uid, gid)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def copy_submission(source: Path, target: Path) -> None:
    """Copy the submission's files (:func:`dlgrade.files.submission_files`: regular files
    only, no links, so nothing outside the folder is read), within the size and count caps."""
    total = files = 0
    target.mkdir()
    for src in submission_files(source):
        total += src.stat().st_size
        files += 1
        if total > MAX_SUBMISSION_BYTES or files > MAX_SUBMISSION_FILES:
            raise SubmissionError(
                f"the submission folder {source} holds more than "
                f"{MAX_SUBMISSION_BYTES // 2**20} MiB or {MAX_SUBMISSION_FILES} files; "
                "submit only your code",
                reason="submission_too_large",
            )
        destination = target / src.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, destination)
