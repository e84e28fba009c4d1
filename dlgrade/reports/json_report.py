"""The grade as JSON (``--grade-json``), with its schema in ``dlgrade/schema``."""

from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path

from dlgrade.rubric import Score


def schema() -> dict:
    """The JSON Schema every grade file satisfies (documented in docs/grade-json.md)."""
    text = resources.files("dlgrade").joinpath("schema/grade.schema.json").read_text()
    return json.loads(text)


def write(score: Score, target: Path) -> None:
    """Write atomically: a reader never sees half a grade."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(score.to_dict(), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, target)
