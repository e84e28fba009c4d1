"""Files that are never seen half-written: records, exports, rosters, grade JSON."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(target: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to a temporary file beside ``target``, fsync it, then rename it
    into place: a reader never sees half a file, and a crash leaves the old one whole.
    ``mode``: the file's permissions (default: the temporary file's, 0o600)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
