"""The package's layout (issue 25): no import circles among dlgrade's modules.

Every import counts — at the top of a module, inside a function (a "lazy" import is still a
dependency: the two modules cannot be understood, or moved, apart), and under
``TYPE_CHECKING``. The package root ``dlgrade`` is left out: it is the public surface
(``dlgrade.check``, ``dlgrade.fail``...) that re-exports from the modules, and a module
that reads ``dlgrade.__version__`` depends on no module in particular.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dlgrade"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the dlgrade modules it imports anywhere in its text."""
    known = modules(package)
    root = package.name
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
                    base = ".".join([*parts, *([base] if base else [])])
                # `from pkg import sub` depends on pkg.sub, not on what pkg/__init__ holds
                subs = [f"{base}.{alias.name}" for alias in node.names]
                targets = [*([] if all(s in known for s in subs) else [base]), *subs]
            else:
                continue
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target not in (name, root):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_circle_finder_finds_a_circle_through_a_lazy_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    (package / "d.py").write_text("import pkg.a\n")
    assert circles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_dlgrade_has_no_import_circles():
    assert circles(import_graph()) == [], (
        "modules that import each other (directly or around a circle): break the circle by "
        "moving what both need into a module of its own (see docs/architecture.md)"
    )


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for child in graph.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_the_grading_plugin_never_reaches_the_class_run():
    """The class run is a plugin of its own beside the grading plugin (issue 25): the grading
    plugin, and whatever it imports, know nothing of it but the stash keys they share."""
    graph = import_graph()
    reached = reaches(graph, "dlgrade.plugin")
    assert not {m for m in reached if m.startswith("dlgrade.classrun")}, sorted(reached)
    assert "dlgrade.plugin" in reaches(graph, "dlgrade.classrun.plugin")  # the one way round


def test_the_packages_hold_their_modules():
    """The map of docs/architecture.md: the trust boundary, the class run and the data layer
    each in a package of its own, and nothing of theirs left at the top."""
    found = set(modules())
    for package, members in {
        "dlgrade.sandbox": ("worker", "protocol", "feeds", "notebook", "jail", "zygote",
                            "session", "process", "inspector"),
        "dlgrade.classrun": ("engine", "plugin", "events", "progress", "cluster", "roster",
                             "lms"),
        "dlgrade.data": ("registry", "store", "twins", "synth"),
    }.items():
        for member in members:
            assert f"{package}.{member}" in found, f"{package}.{member}"
            if member != "plugin":  # dlgrade.plugin is the grading plugin
                assert f"dlgrade.{member}" not in found, f"dlgrade.{member} is still at the top"


def test_a_rubric_still_imports_the_moved_modules_by_their_old_names():
    """Rubrics import a stable surface (issue 25): what moved into dlgrade.data stays
    importable from the package root, as the same module."""
    from dlgrade import synth, twins
    from dlgrade.data import synth as data_synth
    from dlgrade.data import twins as data_twins

    assert synth is data_synth and twins is data_twins
    import dlgrade

    try:
        dlgrade.not_a_module  # noqa: B018
    except AttributeError as exc:
        assert "not_a_module" in str(exc)
    else:
        raise AssertionError("dlgrade.__getattr__ invented a module")


def test_no_test_module_imports_another():
    """What several test modules share lives in tests/helpers.py or tests/conftest.py
    (issue 25): a test module that imports another drags its fixtures and collection along."""
    tests = REPO / "tests"
    found = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            found += [
                f"{path.name} imports {name}"
                for name in names
                if name.split(".")[-1].startswith("test_") and name.startswith("tests")
            ]
    assert found == [], found


# -- reasons and exit codes are types, not loose strings ----------------------------------

REPO = PACKAGE.parent
#: callables whose first argument is a failure's kind (the worker's and the inspector's)
_KIND_FIRST = ("_Failure", "InspectionFailed")
#: a worker kind that is never a check's reason (the trusted side makes it harness_error)
_WORKER_ONLY = {"harness"}


def reason_literals(*folders: Path) -> dict[str, set[str]]:
    """Every string the code gives as a reason: ``reason="..."``, ``reason = "..."``, a
    failure's kind (``_Failure("...")``, ``{"kind": "..."}``) → the files that say it."""
    found: dict[str, set[str]] = {}

    def note(value, path):
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.setdefault(value.value, set()).add(str(path))

    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.keyword) and node.arg == "reason":
                    note(node.value, path)
                elif isinstance(node, ast.Call) and node.args:
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in _KIND_FIRST:
                        note(node.args[0], path)
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value in ("kind", "reason"):
                            note(value, path)
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        named = getattr(target, "id", None) or getattr(target, "attr", None)
                        if named == "reason":
                            note(node.value, path)
    return found


def test_every_reason_the_code_gives_is_a_member_of_reason():
    from dlgrade.reasons import Reason

    members = {r.value for r in Reason} | _WORKER_ONLY
    loose = {
        value: files
        for value, files in reason_literals(PACKAGE, REPO / "checks").items()
        if value not in members
    }
    assert not loose, f"reasons that are not members of dlgrade.reasons.Reason: {loose}"


def test_the_reason_scan_finds_loose_reasons(tmp_path):
    (tmp_path / "m.py").write_text(
        'raise SubmissionError("x", reason="made_up")\n'
        '_Failure("another", "m")\n'
        'reply = {"ok": False, "error": {"kind": "third"}}\n'
        'exc.reason = "fourth"\n'
    )
    found = reason_literals(tmp_path)
    assert set(found) == {"made_up", "another", "third", "fourth"}


def test_the_worker_kinds_and_the_reason_sets_are_reasons():
    from dlgrade.reasons import GRADER_FAULTS, LIMIT_REASONS, REGRADE_REASONS, Reason
    from dlgrade.sandbox.session import WORKER_KINDS

    assert WORKER_KINDS - _WORKER_ONLY <= {r.value for r in Reason}
    assert set(REGRADE_REASONS) <= set(GRADER_FAULTS)
    assert not set(GRADER_FAULTS) & WORKER_KINDS  # a worker can never report our fault
    assert set(LIMIT_REASONS) <= WORKER_KINDS


def test_the_grade_schema_and_its_docs_list_exactly_the_reasons():
    import json

    from dlgrade.reasons import Reason

    schema = json.loads((PACKAGE / "schema" / "grade.schema.json").read_text())
    check = schema["properties"]["checks"]["items"]["properties"]
    assert check["reason"]["enum"] == ["", *(r.value for r in Reason)]
    docs = (REPO / "docs" / "grade-json.md").read_text()
    row = next(line for line in docs.splitlines() if line.startswith("| `checks[].reason`"))
    assert {r.value for r in Reason} == set(re.findall(r"`([a-z_]+)`", row)) - {"checks"}


def test_exit_codes_are_one_type():
    from dlgrade import classrun, errors
    from dlgrade.reasons import ExitCode

    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_INTERNAL) == (
        ExitCode.OK,
        ExitCode.FAILED,
        ExitCode.USAGE,
        ExitCode.INTERNAL,
    )
    assert classrun.EXIT_INTERRUPTED is ExitCode.INTERRUPTED
    literal_130 = [
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Return)
        and isinstance(node.value, ast.Constant)
        and node.value.value == 130
    ]
    assert not literal_130, f"`return 130` instead of ExitCode.INTERRUPTED in {literal_130}"
