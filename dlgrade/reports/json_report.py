"""The grade as JSON (``--grade-json``), with its schema in ``dlgrade/schema``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from dlgrade.atomic import write_atomic
from dlgrade.rubric import Score
from dlgrade.text import dumps


def schema() -> dict:
    """The JSON Schema every grade file satisfies (documented in docs/grade-json.md)."""
    text = resources.files("dlgrade").joinpath("schema/grade.schema.json").read_text()
    return json.loads(text)


def write(score: Score, target: Path) -> None:
    """Write atomically: a reader never sees half a grade."""
    write_atomic(Path(target), dumps(score.to_dict(), indent=2) + "\n")
