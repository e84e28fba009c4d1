"""Notebooks as students write them, built from modules (the references, the attacks)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
from nbformat import v4

#: a cell a student leaves at the top of an activity notebook: none of it may run
MAGICS = "%matplotlib inline\n!pip install --quiet tensorflow\n%load_ext autoreload\n"
#: a cell magic: its body is not run either
CELL_MAGIC = "%%time\nraise RuntimeError('a %%time cell ran during grading')\n"
#: try-it code, guarded as the kit tells students: runs in Jupyter, never when graded
TRY_IT = (
    'if __name__ == "__main__":\n'
    "    # trying things out in Jupyter\n"
    "    raise RuntimeError('the try-it cell ran during grading')\n"
)


def cells_of(source: str) -> list[str]:
    """The module's text cut before each top-level function or class (decorators and all):
    the imports and constants first, then one cell per function."""
    tree = ast.parse(source)
    starts = [
        (node.decorator_list[0].lineno if node.decorator_list else node.lineno)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    lines = source.splitlines(keepends=True)
    bounds = [1, *[s for s in starts if s > 1], len(lines) + 1]
    pieces = [
        "".join(lines[a - 1 : b - 1]).strip("\n") for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    return [piece for piece in pieces if piece.strip()]


def notebook_text(code_cells: list[str], *, markdown: str = "# My activity") -> str:
    notebook = v4.new_notebook()
    notebook.cells = [v4.new_markdown_cell(markdown)] + [v4.new_code_cell(c) for c in code_cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nbformat.writes(notebook)


def as_student_notebook(source: str) -> str:
    """A module's code as a notebook a student would hand in: magics first, the code in
    cells, a %%time cell and a guarded try-it cell last — none of which may run."""
    return notebook_text([MAGICS, *cells_of(source), CELL_MAGIC, TRY_IT])


def convert(folder: Path, module: str) -> Path:
    """Replace ``folder/module.py`` by ``folder/module.ipynb`` (the same code)."""
    source_path = folder / f"{module}.py"
    target = folder / f"{module}.ipynb"
    target.write_text(as_student_notebook(source_path.read_text()))
    source_path.unlink()
    return target
