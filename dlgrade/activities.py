"""Which activities a rubric folder grades: each public rubric declares its own.

An activity is data. ``checks/activity_10_01.py`` says, right after its imports::

    ACTIVITY = dlgrade.activity("10.01", "Toy")

and that line is all dlgrade needs to know about activity 10.01: its module name is
``activity_10_01`` (a submission's ``activity_10_01.py`` or ``.ipynb``), its title heads its
report. :func:`registry` reads these declarations from a rubric folder (the packaged
``checks/`` or an instructor's ``--checks DIR``) with :mod:`ast`, without importing the rubric:
reading it is cheap and never loads TensorFlow. A hidden rubric (``activity_10_01_hidden.py``)
belongs to its public one and declares ``ACTIVITY = "10.01"``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from dlgrade.errors import RubricError

#: an activity number: chapter (1 or more, no leading zero) and two digits
NUMBER = re.compile(r"[1-9][0-9]*\.[0-9]{2}")
#: a public rubric's file name, ``activity_<chapter>_<two digits>.py``
RUBRIC_FILE = re.compile(r"activity_([1-9][0-9]*)_([0-9]{2})\.py")
#: a submitted module's name (``activity_10_01``), whatever its suffix
MODULE = re.compile(r"activity_([1-9][0-9]*)_([0-9]{2})")
DECLARATION = 'ACTIVITY = dlgrade.activity("N.NN", "Title")'

#: hidden checks live in their own rubric files (``activity_1_01_hidden.py``), so that the
#: student kit can leave them out whole: no hidden input or expected value can ship
HIDDEN_SUFFIX = "_hidden"


def hidden_name(rubric_file: str) -> str:
    """``activity_1_01.py`` → ``activity_1_01_hidden.py``, the file of its hidden checks."""
    return rubric_file.removesuffix(".py") + HIDDEN_SUFFIX + ".py"


def is_hidden_rubric(path: str | Path) -> bool:
    return Path(path).stem.endswith(HIDDEN_SUFFIX)


_cache: dict[Path, tuple[tuple, dict[str, tuple[str, str]]]] = {}
_in_use: Path | None = None


def module_name(number: str) -> str:
    """``"10.01"`` → ``"activity_10_01"``, the module a submission holds for it."""
    return "activity_" + number.replace(".", "_")


def number_of(module: str) -> str | None:
    """``"activity_10_01"`` → ``"10.01"``; None for any other name."""
    match = MODULE.fullmatch(module)
    return f"{match[1]}.{match[2]}" if match else None


def sort_key(number: str) -> tuple[int, int, str]:
    """The book's order: 2.01 before 10.01 (a string sort puts 10.01 first)."""
    if NUMBER.fullmatch(number):
        chapter, index = number.split(".")
        return (int(chapter), int(index), "")
    return (10**9, 0, number)


def activity(number: str, title: str) -> str:
    """Declare the rubric's activity: ``ACTIVITY = dlgrade.activity("1.01", "Title")``.

    Returns ``number``, so ``ACTIVITY`` stays the activity's number. dlgrade reads the
    declaration from the source (:func:`registry`); this call only checks it.
    """
    if not isinstance(number, str) or not NUMBER.fullmatch(number):
        raise RubricError(
            f"dlgrade.activity({number!r}, ...): the number must look like 1.01 or 10.01 "
            "(chapter, a dot, two digits)"
        )
    if not isinstance(title, str) or not title.strip():
        raise RubricError(f"dlgrade.activity({number!r}, {title!r}): give the activity a title")
    return number


def _declared(path: Path) -> tuple[str, str]:
    """The (number, title) ``path`` declares; :class:`RubricError` naming the fix if none."""
    fix = f"declare it once, right after the imports: {DECLARATION}"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise RubricError(f"{path}: cannot read the rubric's activity ({exc}); {fix}") from None
    found = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "ACTIVITY"
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    if not found:
        raise RubricError(
            f"{path}: a rubric must set ACTIVITY, to say which activity it grades; {fix}"
        )
    if len(found) > 1:
        lines = ", ".join(str(node.lineno) for node in found)
        raise RubricError(f"{path}: ACTIVITY is set {len(found)} times (lines {lines}); {fix}")
    value = found[0].value
    where = f"{path}:{found[0].lineno}"
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        # the older form, ACTIVITY = "1.01": still read, titled from the packaged rubrics
        number, title = value.value, ""
    elif (
        isinstance(value, ast.Call)
        and (
            (isinstance(value.func, ast.Attribute) and value.func.attr == "activity")
            or (isinstance(value.func, ast.Name) and value.func.id == "activity")
        )
        and len(value.args) == 2
        and not value.keywords
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in value.args)
    ):
        number, title = (a.value for a in value.args)
        if not title.strip():
            raise RubricError(f"{where}: the activity's title is empty; {fix}")
    else:
        raise RubricError(
            f"{where}: ACTIVITY must be dlgrade.activity() with two literal strings, got "
            f"{ast.unparse(value)!r}; {fix}"
        )
    if not NUMBER.fullmatch(number):
        raise RubricError(
            f"{where}: {number!r} is not an activity number (chapter, a dot, two digits: "
            f"1.01, 10.01); {fix}"
        )
    if path.name != f"{module_name(number)}.py":
        raise RubricError(
            f"{where}: ACTIVITY = {number!r} belongs in {module_name(number)}.py, got {number!r} "
            f"in {path.name}: rename the file, or correct the number"
        )
    return number, title.strip()


def _rubric_paths(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("activity_*.py") if p.is_file() and not is_hidden_rubric(p))


def registry(rubric_root: Path | str) -> dict[str, tuple[str, str]]:
    """Activity number → (module name, title) for every public rubric in ``rubric_root``,
    in the book's order. Read with :mod:`ast` (nothing is imported); cached until a rubric
    file changes. :class:`RubricError` for a malformed or duplicated declaration."""
    root = Path(rubric_root).resolve()
    paths = _rubric_paths(root) if root.is_dir() else []
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    cached = _cache.get(root)
    if cached and cached[0] == stamp:
        return dict(cached[1])
    found: dict[str, tuple[str, str, Path]] = {}
    for path in paths:
        if not RUBRIC_FILE.fullmatch(path.name):
            raise RubricError(
                f"{path}: a public rubric is named activity_<chapter>_<two digits>.py "
                "(activity_1_01.py, activity_10_01.py); rename it, or move it out of the "
                f"rubric folder {root} if it is a helper"
            )
        number, title = _declared(path)
        if number in found:
            raise RubricError(
                f"{path}: activity {number} is already declared by {found[number][2]}; "
                "keep one rubric per activity"
            )
        found[number] = (module_name(number), title, path)
    packaged_titles = _packaged_titles(root)
    result = {
        number: (module, title or packaged_titles.get(number) or f"Activity {number}")
        for number, (module, title, _path) in sorted(found.items(), key=lambda i: sort_key(i[0]))
    }
    _cache[root] = (stamp, result)
    return dict(result)


def packaged_root() -> Path:
    """The rubric folder that ships beside the package (``checks/``)."""
    return Path(__file__).resolve().parent.parent / "checks"


def _packaged_titles(root: Path) -> dict[str, str]:
    """Titles of the packaged rubrics, for a rubric still in the older ``ACTIVITY = "1.01"``."""
    packaged = packaged_root().resolve()
    if root == packaged or not packaged.is_dir():
        return {}
    try:
        return {number: title for number, (_m, title) in registry(packaged).items()}
    except RubricError:
        return {}


def use(rubric_root: Path | str | None) -> None:
    """Make ``rubric_root`` the folder whose activities this process grades (its titles head
    the reports); None goes back to the packaged ``checks/``."""
    global _in_use
    _in_use = Path(rubric_root).resolve() if rubric_root is not None else None


def current() -> dict[str, tuple[str, str]]:
    """The activities of the rubric folder in use (:func:`use`), else the packaged ones."""
    return registry(_in_use or packaged_root())


def title(number: str) -> str:
    """The activity's title in the rubric folder in use, or ``""`` if it has none."""
    try:
        return current().get(number, ("", ""))[1]
    except RubricError:
        return ""


class PackagedActivities(Mapping):
    """``dlgrade.rubric.ACTIVITIES``: the packaged rubrics' activities, read on first use.

    The same shape as it always had (number → (module name, title)); code that grades with
    another rubric folder asks :func:`registry` for that folder instead.
    """

    def _data(self) -> dict[str, tuple[str, str]]:
        return registry(packaged_root())

    def __getitem__(self, number: str) -> tuple[str, str]:
        return self._data()[number]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return f"ACTIVITIES({self._data()!r})"
