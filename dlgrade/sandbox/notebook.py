"""Notebook submissions: ``activity_X_YY.ipynb`` is graded the way ``activity_X_YY.py`` is.

The notebook is the student's code, so it runs only in the worker, as a module: nbformat
reads it, its code cells run in order in one module namespace (``__name__`` is the module's
name, so a cell guarded by ``if __name__ == "__main__":`` runs in Jupyter and not when
graded), stored outputs are ignored, and no Jupyter kernel is involved. IPython magics and
shell lines (``%matplotlib inline``, ``%%time``, ``!pip install …``) do not run; they are
listed once in the report. Every cell is compiled under its own name, so a traceback or a
syntax error names the cell — its number and first line — and the line within it.

This module is imported in the worker (``dlgrade/sandbox/worker.py``) and by the trusted side (the
skeleton writer, the notes it reports); nbformat is imported only when a notebook is read.
"""

from __future__ import annotations

import json
import linecache
import math
import re
import sys
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

from dlgrade.errors import DlgradeError

#: the suffixes a submission's activity module may have, in the order they are looked for
SUFFIXES = (".py", ".ipynb")
#: a cell's compiled name: the notebook's path, then this, then the cell's number
CELL_MARK = "#cell"
#: the file in the worker's exchange folder that says which cell an import is running
PROGRESS_FILE = "notebook-progress.json"
#: a notebook whose import takes longer than this gets a note naming its slowest cells
SLOW_IMPORT_SECONDS = 10.0
#: budgets for reading a notebook: a real one is far inside them (an activity's notebook with
#: its outputs is well under 1 MiB, a dozen levels deep, a few hundred cells)
MAX_NOTEBOOK_BYTES = 64 << 20
MAX_NOTEBOOK_DEPTH = 100
MAX_NOTEBOOK_CELLS = 10_000
#: the fix for a notebook over a budget
CLEAR_OUTPUTS_HINT = (
    "clear its outputs (Kernel → Restart Kernel and Clear Outputs) and save it, or hand in "
    "the activity as a .py file"
)
GUARD_HINT = (
    'put try-it code (training runs, plots, prints) in a cell under `if __name__ == "__main__":`'
    " — it still runs in Jupyter, and not when graded"
)

_ASSIGNED_MAGIC = re.compile(r"^[\w.\[\], ]+=\s*[!%]")


class NotebookError(DlgradeError):
    """A notebook that cannot be read as code (not JSON, another format, no code cells)."""


@dataclass(frozen=True)
class Cell:
    """One code cell: its number among all the notebook's cells (1-based), as run."""

    number: int
    source: str  # the cell's text
    python: str  # what runs: the text, magics and shell lines replaced by `pass`
    magics: tuple[str, ...]  # the magic and shell lines that do not run

    @property
    def first_line(self) -> str:
        for line in self.source.splitlines():
            if line.strip():
                return line.strip()[:60]
        return ""

    def label(self) -> str:
        return f"cell {self.number} ({self.first_line!r})"


def runnable(source: str) -> tuple[str, tuple[str, ...]]:
    """(the Python that runs, the magic and shell lines that do not) for one cell's text.

    A cell magic (``%%time``, ``%%bash``, ``%%writefile``) keeps the whole cell from running
    — its body is not always Python. A line magic or shell line (``%matplotlib inline``,
    ``!pip install x``, ``files = !ls``) becomes ``pass`` at its indentation, so line numbers
    and blocks stay as written."""
    lines = source.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("%%"):
        return "\n" * len(lines), (first,)
    python, magics = [], []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or _ASSIGNED_MAGIC.match(stripped):
            magics.append(stripped)
            python.append(line[: len(line) - len(stripped)] + "pass")
        else:
            python.append(line)
    return "\n".join(python) + "\n", tuple(magics)


def read_cells(path: Path) -> list[Cell]:
    """The code cells of the notebook at ``path``; :class:`NotebookError` says what is wrong."""
    from dlgrade.safeio import UnsafeEntry, read_file

    path = Path(path)
    name = path.name
    try:  # never through a link, never blocking on a FIFO, never more than the budget
        raw = read_file(path.parent, name, MAX_NOTEBOOK_BYTES)
    except UnsafeEntry as exc:
        raise NotebookError(
            f"{name} cannot be read as a notebook ({exc}); hand in the .ipynb file itself, "
            f"at most {MAX_NOTEBOOK_BYTES >> 20} MiB: {CLEAR_OUTPUTS_HINT}"
        ) from None
    if raw[:4] == b"PK\x03\x04":
        raise NotebookError(
            f"{name} is a zip archive, not a notebook; hand in the .ipynb file itself "
            "(File → Download → .ipynb in Jupyter), not a compressed copy"
        )
    too_deep = False
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:  # nested deeper than Python's parser goes: refused just below
        data, too_deep = None, True
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(
            f"{name} is not a notebook: its text is not valid JSON ({exc}); open it in Jupyter "
            "and save it again, or hand in the .ipynb Jupyter wrote"
        ) from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if isinstance(cells, list) and len(cells) > MAX_NOTEBOOK_CELLS:
        raise NotebookError(
            f"{name} has {len(cells):,} cells, more than the {MAX_NOTEBOOK_CELLS:,} dlgrade "
            "reads; keep the activity's code in fewer cells and save it again"
        )
    if too_deep or _depth(data) > MAX_NOTEBOOK_DEPTH:
        raise NotebookError(
            f"{name} is JSON nested more than {MAX_NOTEBOOK_DEPTH} levels deep, which no "
            f"notebook is; {CLEAR_OUTPUTS_HINT}"
        )
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise NotebookError(f"{name} is JSON but not a Jupyter notebook (no cells)")
    major = data.get("nbformat")
    if major != 4:
        raise NotebookError(
            f"{name} is in notebook format {major}; dlgrade reads format 4 (Jupyter since "
            "2015): open it in Jupyter or JupyterLab and save it, which converts it"
        )
    import nbformat

    try:
        notebook = nbformat.from_dict(data)
        with warnings.catch_warnings():  # e.g. cells without ids (format 4.0–4.4): fine
            warnings.simplefilter("ignore")
            nbformat.validate(notebook, relax_add_props=True)
    except Exception as exc:  # noqa: BLE001 - nbformat's validation errors vary by version
        reason = str(exc).splitlines()[0][:200]
        raise NotebookError(
            f"{name} is not a valid format-4 notebook ({reason}); open it in Jupyter and "
            "save it again"
        ) from None
    cells = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        python, magics = runnable(source)
        cells.append(Cell(number, source, python, magics))
    if not cells:
        raise NotebookError(
            f"{name} has no code cells; write the activity's functions in code cells "
            "(`dlgrade new DIR --notebook` writes a notebook to start from)"
        )
    return cells


def _depth(data: object) -> int:
    """How deep a JSON value nests (up to one past the budget), walked without recursion so
    that no depth can exhaust the stack."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NOTEBOOK_DEPTH:
            return depth
        deepest = max(deepest, depth)
        if isinstance(value, dict | list):
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def cell_filename(path: Path, cell: Cell) -> str:
    """The name a cell is compiled under (its tracebacks' ``File``)."""
    return f"{path}{CELL_MARK}{cell.number}"


def describe_location(filename: str, lineno: int | None) -> str | None:
    """``activity_1_01.ipynb, cell 3 ('def loss_fn(x):'), line 2`` for a cell's compiled
    name, or None for any other file."""
    if CELL_MARK not in filename:
        return None
    path, _, number = filename.rpartition(CELL_MARK)
    first = ""
    for line in linecache.getlines(filename):
        if line.strip():
            first = line.strip()[:60]
            break
    where = f"{Path(path).name}, cell {number}" + (f" ({first!r})" if first else "")
    return where + (f", line {lineno}" if lineno else "")


@dataclass
class Loaded:
    """A notebook imported as a module, and what the report says about it."""

    module: types.ModuleType
    magics: list[str]
    seconds: list[tuple[Cell, float]]  # each cell and how long it ran

    def notes(self, name: str) -> list[str]:
        notes = []
        if self.magics:
            shown = ", ".join(dict.fromkeys(self.magics))
            notes.append(f"{name}.ipynb: not run when graded (magics, shell lines): {shown}")
        total = sum(seconds for _, seconds in self.seconds)
        if total > SLOW_IMPORT_SECONDS:
            notes.append(f"{name}.ipynb took {total:.0f} s to import; {slowest(self.seconds)}")
        return notes


def slowest(seconds: list[tuple[Cell, float]], count: int = 3) -> str:
    """Which cells took the time, and the guard that keeps try-it code out of grading."""
    ranked = sorted(seconds, key=lambda pair: -pair[1])[:count]
    named = ", ".join(f"{cell.label()} {spent:.1f} s" for cell, spent in ranked)
    return f"the time went in {named}: {GUARD_HINT}"


def load(name: str, path: Path, progress: Path | None = None) -> Loaded:
    """Import the notebook at ``path`` as module ``name`` (into ``sys.modules``).

    ``progress``: a file rewritten before each cell with the cells run so far and their
    times, so that the trusted side can say where an import that ran out of time was."""
    path = Path(path)
    cells = read_cells(path)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    loaded = Loaded(module, [m for cell in cells for m in cell.magics], [])
    try:
        for cell in cells:
            filename = cell_filename(path, cell)
            lines = cell.python.splitlines(keepends=True)
            linecache.cache[filename] = (len(cell.python), None, lines, filename)
            code = compile(cell.python, filename, "exec", dont_inherit=True)
            if progress is not None:
                _write_progress(progress, loaded.seconds, cell)
            began = time.perf_counter()
            try:
                exec(code, module.__dict__)  # noqa: S102 - the student's own code, in the worker
            finally:
                loaded.seconds.append((cell, time.perf_counter() - began))
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return loaded


def _write_progress(progress: Path, done: list[tuple[Cell, float]], running: Cell) -> None:
    record = {
        "done": [[cell.number, cell.first_line, round(s, 3)] for cell, s in done],
        "running": [running.number, running.first_line, time.time()],
    }
    try:
        progress.write_text(json.dumps(record))
    except OSError:
        pass  # only a diagnosis; a full disk must not fail the import


def timeout_hint(progress: Path) -> str:
    """For an import that ran out of time: the cell that was running, the slowest before it.

    The file is the worker's: opened without following links or blocking (a FIFO planted
    there must not hang the grader), at most 1 MiB, and anything malformed gives no hint.
    """
    from dlgrade import safeio

    try:
        record = json.loads(safeio.read_file(Path(progress).parent, Path(progress).name, 2**20))
        number, first, started = record["running"]
        done = record["done"]
        if not (
            isinstance(number, int)
            and isinstance(first, str)
            and isinstance(started, int | float)
            and math.isfinite(started)
            and isinstance(done, list)
            and all(
                isinstance(entry, list)
                and len(entry) == 3
                and isinstance(entry[0], int)
                and isinstance(entry[1], str)
                and isinstance(entry[2], int | float)
                and math.isfinite(entry[2])
                for entry in done
            )
        ):
            return ""
    except (safeio.UnsafeEntry, ValueError, KeyError, TypeError, RecursionError):
        return ""
    ranked = sorted(done, key=lambda entry: -entry[2])[:2]
    before = "".join(f"; before it, cell {n} ({f[:80]!r}) took {s:.1f} s" for n, f, s in ranked)
    return (
        f"The import was still running cell {number} ({first[:80]!r}) after "
        f"{time.time() - started:.0f} s{before}. {GUARD_HINT[0].upper()}{GUARD_HINT[1:]}."
    )


def module_path(folder: Path, module: str) -> Path | None:
    """The file that is ``module`` in a submission folder: ``.py`` or ``.ipynb`` (None if
    neither). Both at once is ambiguous: :func:`ambiguity` says so."""
    for suffix in SUFFIXES:
        candidate = Path(folder) / f"{module}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def ambiguity(folder: Path, module: str) -> str:
    """The message for a folder that holds both forms of one activity ('' when it does not)."""
    found = [f"{module}{s}" for s in SUFFIXES if (Path(folder) / f"{module}{s}").is_file()]
    if len(found) < 2:
        return ""
    return (
        f"{Path(folder)} holds both {found[0]} and {found[1]} for the same activity; keep "
        "the one you want graded and delete or rename the other"
    )


def skeleton(module_source: str) -> str:
    """A skeleton notebook (JSON text) from a skeleton module: the module's docstring as a
    markdown cell, its imports and constants in one code cell, one code cell per function
    (docstring and all), and one guarded try-it cell."""
    import ast

    import nbformat
    from nbformat import v4

    tree = ast.parse(module_source)
    lines = module_source.splitlines(keepends=True)
    cells = []
    doc = ast.get_docstring(tree)
    if doc:
        title, _, rest = doc.partition("\n")
        cells.append(v4.new_markdown_cell(f"# {title.strip()}\n\n{rest.strip()}".rstrip()))
    body = tree.body[1:] if doc else tree.body
    preamble, functions = [], []
    for node in body:
        start = (
            node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
        )
        text = "".join(lines[start - 1 : node.end_lineno]).rstrip()
        (functions if isinstance(node, ast.FunctionDef | ast.ClassDef) else preamble).append(
            (text, node)
        )
    if preamble:
        cells.append(v4.new_code_cell("\n".join(text for text, _ in preamble)))
    for text, _ in functions:
        cells.append(v4.new_code_cell(text))
    names = [node.name for _, node in functions if isinstance(node, ast.FunctionDef)]
    calls = "\n".join(f"    # {name}(...)" for name in names)
    cells.append(
        v4.new_code_cell(
            'if __name__ == "__main__":\n'
            "    # Try your functions here: this cell runs in Jupyter, and not when graded.\n"
            f"{calls}\n    pass"
        )
    )
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return nbformat.writes(notebook) + "\n"
