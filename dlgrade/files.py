"""Which files make up a submission: one answer for the key it is graded under
(:mod:`dlgrade.classrun.roster`) and the copy its worker runs in
(:mod:`dlgrade.sandbox.folders`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

#: folders and files inside a student's folder that do not belong to the submission: caches,
#: version control, environments, and what editors and archivers leave behind
IGNORED_NAMES = frozenset(
    {
        "__pycache__",
        ".git",
        ".ipynb_checkpoints",
        ".pytest_cache",
        ".venv",
        ".DS_Store",
        "__MACOSX",
    }
)


def submission_files(folder: Path) -> Iterator[Path]:
    """The regular files that make a submission, in a stable order: no symbolic links (to
    a file or a folder: nothing outside the folder is read), no ignored names, no ``.pyc``.
    Lazy, so that a caller can stop at a size or count limit."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in IGNORED_NAMES and not os.path.islink(os.path.join(dirpath, d))
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name in IGNORED_NAMES or name.endswith(".pyc") or path.is_symlink():
                continue
            if path.is_file():
                yield path
