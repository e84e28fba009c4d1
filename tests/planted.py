"""Planted copies for calibrating the similarity report: what students do to hide a copy.

``disguise`` renames every identifier the contract does not fix, reorders the functions,
rewords the comments and rewrites one function (taking the reference's version of it, so
that the copy shares that function with no classmate).
The honest class is the acceptance variants (tests/variants: book, functional, modern),
written independently of each other.
"""

from __future__ import annotations

import ast
import builtins
import random
from pathlib import Path

from dlgrade.rubric import ACTIVITIES

VARIANTS = Path(__file__).parent / "variants"
REFERENCE = Path(__file__).parent.parent / "reference"
HONEST = ("book", "functional", "modern")


class _Renamer(ast.NodeTransformer):
    def __init__(self, keep: set[str], rng: random.Random):
        self.keep, self.rng, self.names = keep, rng, {}

    def _new(self, name: str) -> str:
        if name in self.keep or name.startswith("__"):
            return name
        if name not in self.names:
            self.names[name] = f"{self.rng.choice(['val', 'tmp', 'my', 'x'])}_{len(self.names)}"
        return self.names[name]

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        if node.arg not in ("self",):
            node.arg = self._new(node.arg)
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.keyword:
        self.generic_visit(node)  # keyword names belong to the callee: kept
        return node


def _fixed_names(tree: ast.Module) -> set[str]:
    """Names a copier cannot rename: builtins, imports, and the contract's functions."""
    keep = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            keep |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and node in tree.body:
            keep.add(node.name)
    return keep


def disguise(source: str, other: str, *, seed: int) -> str:
    """``source`` disguised: identifiers renamed, functions reordered, comments reworded,
    and one function replaced by ``other``'s version of it."""
    rng = random.Random(seed)
    tree = ast.parse(source)
    theirs = {n.name: n for n in ast.parse(other).body if isinstance(n, ast.FunctionDef)}
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    shared = [f for f in functions if f.name in theirs]
    if shared:  # one function rewritten: another author's version of it
        swap = rng.choice(shared)
        tree.body[tree.body.index(swap)] = theirs[swap.name]
    keep = _fixed_names(ast.parse(other)) | _fixed_names(tree)
    _Renamer(keep, rng).visit(tree)
    head = [n for n in tree.body if not isinstance(n, ast.FunctionDef)]
    tail = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    rng.shuffle(tail)
    tree.body = head + tail
    ast.fix_missing_locations(tree)
    lines = []
    for line in ast.unparse(tree).splitlines():  # the comments are gone; new ones come in
        if line.startswith("def "):
            lines.append(f"# {rng.choice(['helper', 'my solution', 'step', 'part'])}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def calibration_class(root: Path) -> dict[str, set[frozenset[str]]]:
    """Write the honest variants and one disguised copy of each, one folder per student;
    return, per activity, the pairs that are copies."""
    copies: dict[str, set[frozenset[str]]] = {}
    for activity, (module, _title) in ACTIVITIES.items():
        copies[activity] = set()
        for n, name in enumerate(HONEST):
            source = (VARIANTS / name / f"{module}.py").read_text()
            other = (REFERENCE / f"{module}.py").read_text()  # the rewritten function's source
            for who, text in ((name, source), (f"copy-of-{name}", disguise(source, other, seed=n))):
                folder = root / who
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{module}.py").write_text(text)
            copies[activity].add(frozenset({name, f"copy-of-{name}"}))
    return copies
