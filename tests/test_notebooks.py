"""Notebook submissions: `activity_X_YY.ipynb` is graded the way `activity_X_YY.py` is."""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from dlgrade.rubric import ACTIVITIES
from dlgrade.sandbox import notebook
from tests.helpers import LIGHT, SUBMISSIONS, dlgrade
from tests.notebooks import TRY_IT, as_student_notebook, cells_of, notebook_text

MODULE = "activity_1_01"


def good_source() -> str:
    """A TensorFlow-free 1.01 that passes the light rubric."""
    return (
        (SUBMISSIONS / "broken" / "wrong_type" / f"{MODULE}.py")
        .read_text()
        .replace('return f"{abs(a * x**2 + b * x + c)}"', "return abs(a * x**2 + b * x + c)")
    )


def hand_in(folder: Path, text: str, name: str = f"{MODULE}.ipynb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text) if isinstance(text, str) else (folder / name).write_bytes(text)
    return folder


def check(folder: Path, *extra, tmp_path: Path) -> tuple[object, dict]:
    out = tmp_path / "grade.json"
    run = dlgrade("check", folder, "--checks", LIGHT, "--grade-json", out, *extra)
    return run, json.loads(out.read_text()) if out.exists() else {}


def outcomes(grade: dict) -> dict[str, tuple[str, str]]:
    return {c["id"].split("/")[1]: (c["outcome"], c["reason"]) for c in grade["checks"]}


# -- reading a notebook ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "runs"),
    [
        ("%matplotlib inline", "pass"),
        ("!pip install tensorflow", "pass"),
        ("    !ls", "    pass"),
        ("files = !ls", "pass"),
        ("x = 100 % 7", "x = 100 % 7"),  # an operator, not a magic
        ("print('!')", "print('!')"),
    ],
)
def test_magics_and_shell_lines_become_pass_in_place(line, runs):
    python, magics = notebook.runnable(f"a = 1\n{line}\n")
    assert python == f"a = 1\n{runs}\n"
    assert magics == (() if runs == line else (line.strip(),))


def test_a_cell_magic_keeps_the_whole_cell_from_running():
    python, magics = notebook.runnable("%%bash\necho hi\nrm -rf /\n")
    assert python.strip() == "" and python.count("\n") == 3 and magics == ("%%bash",)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe binary", "not valid JSON"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(), "notebook format 3"),
        (json.dumps({"hello": "world"}).encode(), "not a Jupyter notebook"),
        (notebook_text([]).encode(), "has no code cells"),
        (json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [{"x": 1}]}).encode(), "valid"),
    ],
    ids=["invalid-json", "binary", "nbformat-3", "other-json", "no-code-cells", "invalid-cell"],
)
def test_a_notebook_that_cannot_be_read_says_what_is_wrong(tmp_path, content, words):
    path = tmp_path / f"{MODULE}.ipynb"
    path.write_bytes(content)
    with pytest.raises(notebook.NotebookError, match=words):
        notebook.read_cells(path)


def test_a_zip_named_ipynb_is_called_a_zip(tmp_path):
    path = tmp_path / f"{MODULE}.ipynb"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{MODULE}.ipynb", as_student_notebook(good_source()))
    with pytest.raises(notebook.NotebookError, match="is a zip archive"):
        notebook.read_cells(path)


# -- grading a notebook ------------------------------------------------------------------------


def test_a_notebook_is_graded_like_its_module_and_its_magics_are_noted_once(tmp_path):
    folder = hand_in(tmp_path / "nb", as_student_notebook(good_source()))
    run, grade = check(folder, tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert grade["score"] == grade["max_score"] == 3
    assert grade["notes"] == [
        f"{MODULE}.ipynb: not run when graded (magics, shell lines): %matplotlib inline, "
        "!pip install --quiet tensorflow, %load_ext autoreload, %%time"
    ]
    assert run.stdout.count("not run when graded") == 1
    module = tmp_path / "py"
    module.mkdir()
    (module / f"{MODULE}.py").write_text(good_source())
    run, as_module = check(module, tmp_path=tmp_path)
    assert outcomes(as_module) == outcomes(grade) and "notes" not in as_module


def test_a_syntax_error_names_the_cell_and_its_line(tmp_path):
    cells = cells_of(good_source())
    cells.insert(1, "# my helper\ndef helper(:\n    return 1\n")
    folder = hand_in(tmp_path / "nb", notebook_text(cells))
    run, grade = check(folder, tmp_path=tmp_path)
    assert run.returncode == 1
    feedback = grade["checks"][0]["feedback"]
    assert grade["checks"][0]["reason"] == "syntax_error"
    # the markdown cell is cell 1, the imports cell 2: the helper is cell 3, its line 2
    assert f"{MODULE}.ipynb, cell 3 ('# my helper'), line 2" in feedback, feedback
    assert "def helper(:" in feedback


def test_a_traceback_names_the_cell_and_the_line_within_it(tmp_path):
    source = good_source().replace(
        "    a, b, c = coefficients\n", "    a, b, c = coefficients\n    1 / 0\n", 1
    )
    assert "1 / 0" in source
    folder = hand_in(tmp_path / "nb", notebook_text(cells_of(source)))
    run, grade = check(folder, tmp_path=tmp_path)
    failed = [c for c in grade["checks"] if c["reason"] == "student_exception"]
    assert failed, grade
    feedback = failed[0]["feedback"]
    assert "ZeroDivisionError" in feedback
    assert f"{MODULE}.ipynb, cell 3 ('def loss_fn(" in feedback, feedback
    assert ", line 3, in loss_fn" in feedback and "1 / 0" in feedback
    assert "#cell" not in feedback and "/tmp" not in feedback  # no generated file names


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (["%pip install numpy\n!ls"], "missing_function"),  # magics only
        (["import sys\nsys.exit(0)"], "exit"),  # exits at import
        (["import os\nos._exit(0)"], "worker_died"),  # kills its own worker at import
        (["raise ValueError('unguarded try-it code')"], "import_error"),
    ],
    ids=["magics-only", "sys-exit-at-import", "os-exit-at-import", "raises-at-import"],
)
def test_a_broken_notebook_fails_its_checks_cleanly(tmp_path, cells, reason):
    folder = hand_in(tmp_path / "nb", notebook_text(cells))
    run, grade = check(folder, tmp_path=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert {c["reason"] for c in grade["checks"]} == {reason}, grade["checks"][0]["feedback"]
    assert "INTERNAL ERROR" not in run.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}), "format 3"),
        (notebook_text([]), "has no code cells"),
    ],
    ids=["invalid-json", "nbformat-3", "no-code-cells"],
)
def test_an_unreadable_notebook_is_a_failed_check_with_the_fix(tmp_path, content, words):
    folder = hand_in(tmp_path / "nb", content)
    run, grade = check(folder, tmp_path=tmp_path)
    assert run.returncode == 1
    assert {c["reason"] for c in grade["checks"]} == {"bad_notebook"}
    assert words in grade["checks"][0]["feedback"]


def test_stored_outputs_are_ignored_even_50_mb_of_them(tmp_path):
    notebook_json = json.loads(as_student_notebook(good_source()))
    code = next(c for c in notebook_json["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * 50_000_000}]
    folder = hand_in(tmp_path / "nb", json.dumps(notebook_json))
    assert (folder / f"{MODULE}.ipynb").stat().st_size > 50_000_000
    run, grade = check(folder, tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert grade["score"] == grade["max_score"]


def test_a_folder_with_both_forms_of_an_activity_is_a_usage_error_naming_both(tmp_path):
    folder = hand_in(tmp_path / "both", as_student_notebook(good_source()))
    (folder / f"{MODULE}.py").write_text(good_source())
    run = dlgrade("check", folder, "--checks", LIGHT)
    assert run.returncode == 2
    assert f"{MODULE}.py and {MODULE}.ipynb" in run.stderr


def test_an_import_that_runs_out_of_time_names_the_cell_and_the_guard(tmp_path):
    cells = cells_of(good_source()) + ["import time\ntime.sleep(3600)  # train for an hour"]
    slow = 1 + len(cells)  # the markdown cell is cell 1
    folder = hand_in(tmp_path / "nb", notebook_text(cells))
    # the import's limit (180 s) made 4 s, in the grading process only
    code = (
        "import dataclasses, sys\n"
        "from dlgrade.sandbox import limits\n"
        "configured = limits.Limits.configured\n"
        "limits.Limits.configured = classmethod(\n"
        "    lambda cls, **kw: dataclasses.replace(configured(**kw), import_timeout=4.0))\n"
        "from dlgrade.cli import main\n"
        f"sys.exit(main(['check', {str(folder)!r}, '--checks', {str(LIGHT)!r}, "
        f"'--grade-json', {str(tmp_path / 'g.json')!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    grade = json.loads((tmp_path / "g.json").read_text())
    first = grade["checks"][0]
    assert first["outcome"] == "timeout", first
    assert f"still running cell {slow} ('import time')" in first["feedback"], first["feedback"]
    assert 'if __name__ == "__main__":' in first["feedback"]
    # the next check does not wait again, and says the same
    assert grade["checks"][1]["reason"] == "hung_before"
    assert f"cell {slow}" in grade["checks"][1]["feedback"]


# -- class runs, skeletons, the kit ------------------------------------------------------------


def test_a_class_of_notebooks_and_an_lms_export_of_them_are_graded(tmp_path):
    root = tmp_path / "class"
    hand_in(root / "ann", as_student_notebook(good_source()))
    (root / "bob").mkdir()
    (root / "bob" / f"{MODULE}.py").write_text(good_source())
    out = tmp_path / "results"
    run = dlgrade("grade", root, "--out", out, "--checks", LIGHT)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(out / "gradebook.csv", newline="") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert rows["ann"]["total"] == rows["bob"]["total"] == "3"
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"smithann_1001_77_{MODULE}.ipynb", as_student_notebook(good_source()))
    run = dlgrade("grade", archive, "--out", tmp_path / "lms", "--checks", LIGHT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 student(s): 1 graded · mean 100.0%" in run.stdout


def test_new_writes_nine_notebooks_to_fill_in(tmp_path):
    run = dlgrade("new", tmp_path / "mine", "--notebook")
    assert run.returncode == 0, run.stderr
    from dlgrade.skeletons import __file__ as skeletons_init

    skeletons = Path(skeletons_init).parent
    for module, _title in ACTIVITIES.values():
        path = tmp_path / "mine" / f"{module}.ipynb"
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        assert book.cells[0].cell_type == "markdown"
        code = [c.source for c in book.cells if c.cell_type == "code"]
        functions = [
            n
            for n in ast.parse((skeletons / f"{module}.py").read_text()).body
            if isinstance(n, ast.FunctionDef)
        ]
        for function in functions:  # one cell per contract function, docstring and all
            cell = [c for c in code if c.lstrip().startswith(f"def {function.name}(")]
            assert len(cell) == 1, (module, function.name)
            assert ast.get_docstring(function).splitlines()[0] in cell[0]
        assert code[-1].startswith('if __name__ == "__main__":')
    run, grade = check(tmp_path / "mine", "--activity", "1.01", tmp_path=tmp_path)
    assert {c["outcome"] for c in grade["checks"]} == {"not_implemented"}
    again = dlgrade("new", tmp_path / "mine")  # modules beside the notebooks: never both
    assert "wrote 0 skeleton(s)" in again.stdout and "never both" in again.stdout


def test_the_try_it_guard_runs_in_jupyter_and_not_when_graded(tmp_path):
    # the guard's condition in a kernel (__main__) and in grading (the module's name)
    namespace = {"__name__": "__main__"}
    with pytest.raises(RuntimeError, match="try-it cell ran"):
        exec(TRY_IT, namespace)  # noqa: S102
    exec(TRY_IT, {"__name__": MODULE})  # noqa: S102
