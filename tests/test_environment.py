"""The book's environment wherever student code runs, and a header that says when the
grading environment is not the one the rubrics pin (issue 24, item 5)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest

from dlgrade import environment
from tests.helpers import REFERENCE, REPO
from tests.notebooks import MAGICS, cells_of, notebook_text

#: a first cell as the book's notebooks open: plotting and IPython's display imported
BOOK_FIRST_CELL = (
    "import matplotlib.pyplot as plt\n"
    "import pandas as pd\n"
    "from IPython.core.display import display, HTML\n"
    "import numpy as np\n"
)
#: solve() that plots its path, shows the plot and saves it, as a student trying things does
PLOTTING_SOLVE_TAIL = (
    "    plt.plot([0.0, float(x.numpy())])\n"
    "    plt.title('x over the iterations')\n"
    "    plt.savefig('path.png')\n"
    "    plt.show()\n"
    "    display(HTML('<b>done</b>'))\n"
)


def _core_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = set()
    for line in project["dependencies"]:
        names.add(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower())
    return names


def test_the_core_dependencies_hold_every_library_the_books_activities_import():
    """The kit and a plain `pip install dlgrade` install the core dependencies only: an
    extra (similarity, test) is no place for a library the book's code imports."""
    core = _core_dependencies()
    missing = {
        module: distributions
        for module, distributions in environment.BOOK_IMPORTS.items()
        if not core & set(distributions)
    }
    assert not missing, f"not in [project] dependencies: {missing}"


def test_every_pinned_library_is_installed_here_within_its_pin():
    assert environment.differences() == []
    assert environment.describe.__wrapped__().startswith("environment: as the rubrics pin it")


def test_the_header_names_a_library_that_is_missing_or_outside_its_pin(monkeypatch):
    real_version = metadata.version

    def version(name: str) -> str:
        if name == "matplotlib":
            raise metadata.PackageNotFoundError(name)
        if name == "keras":
            return "3.9.0"
        return real_version(name)

    monkeypatch.setattr(environment.metadata, "version", version)
    found = {d.name: d for d in environment.differences()}
    assert set(found) == {"matplotlib", "keras"}
    assert str(found["matplotlib"]) == "matplotlib not installed (the rubrics pin >=3.8)"
    assert str(found["keras"]).startswith("keras 3.9.0 (the rubrics pin ")
    line = environment.describe.__wrapped__()
    assert line.startswith("environment: WARNING differs from the one the rubrics pin")
    assert "matplotlib not installed" in line and "keras 3.9.0" in line


@pytest.mark.slow
def test_a_book_style_notebook_that_plots_and_displays_scores_full_marks(tmp_path, grade):
    """matplotlib headless in the worker: plt.show() opens nothing, plt.savefig writes in the
    scratch copy, IPython's display prints; the book's imports all resolve."""
    source = (REFERENCE / "activity_1_01.py").read_text()
    cells = cells_of(source)
    solve = next(i for i, c in enumerate(cells) if c.startswith("def solve"))
    body, last = cells[solve].rsplit("\n", 1)
    assert last.strip() == "return float(x.numpy())"
    cells[solve] = body + "\n" + PLOTTING_SOLVE_TAIL + last
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "activity_1_01.ipynb").write_text(
        notebook_text([MAGICS, BOOK_FIRST_CELL, *cells])
    )
    graded = grade(folder, ("1.01",), "quick")
    failed = {c["id"]: c["feedback"] for c in graded.grade["checks"] if c["outcome"] != "pass"}
    assert not failed, failed
    assert graded.grade["score"] == graded.grade["max_score"] > 0
