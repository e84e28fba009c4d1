"""The student kit: the package, the public rubrics and the students' docs, nothing else.

``dlgrade kit OUT/`` writes what students get, so that they can run locally exactly the
public checks that grade them. The kit is built from an allow-list (``KIT``): a file ships
only because a rule below names it, so whatever else the repository holds — references,
hidden rubrics (``checks/*_hidden.py``), the tests and their mutants (near-copies of the
references), benchmarks, submissions, history — stays out until someone decides otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dlgrade.errors import DlgradeError

MANIFEST_NAME = "KIT_MANIFEST.json"
RUBRIC_PATH = re.compile(r"checks/activity_[1-9][0-9]*_[0-9]{2}\.py")


class KitError(DlgradeError):
    """The kit cannot be written as asked (a non-empty folder, a missing file...)."""


@dataclass(frozen=True)
class Rule:
    """The repository's files matching ``pattern`` ship at the same path, or at ``target``."""

    pattern: str
    target: str | None = None


#: the rule of the public rubrics: read from the rubric folder's declarations, not globbed
RUBRICS = "checks/activity_*.py"
#: a rubric folder's own skeletons (an activity the package has none for) ship beside it
SKELETONS = "skeletons/*.py"

#: everything the kit holds; each rule must match at least one file
KIT = (
    Rule("pyproject.toml"),
    Rule("dlgrade/*.py"),
    Rule("dlgrade/classrun/*.py"),
    Rule("dlgrade/data/*.py"),
    Rule("dlgrade/reports/*.py"),
    Rule("dlgrade/sandbox/*.py"),
    Rule("dlgrade/skeletons/*.py"),
    Rule("dlgrade/schema/*.json"),
    # public rubrics only, those the rubric folder declares (any chapter: activity_10_01.py);
    # activity_1_01_hidden.py never ships
    Rule("checks/activity_*.py"),
    Rule("docs/submission-contract.md"),
    Rule("docs/data.md"),
    Rule("docs/keras3-migration.md"),
    Rule("docs/security.md"),
    Rule("docs/ci.md"),
    Rule("docs/ci/github-actions.yml"),
    Rule("docs/kit/README.md", target="README.md"),
)


@dataclass(frozen=True)
class KitFile:
    path: str  # relative to the kit, with forward slashes
    sha256: str
    size: int


@dataclass(frozen=True)
class KitManifest:
    """What a kit holds, and where it came from; written to ``KIT_MANIFEST.json``."""

    files: tuple[KitFile, ...]
    version: str
    git_commit: str | None  # None where the repository is not a git checkout
    git_dirty: bool | None  # the kit's sources differ from that commit

    def to_json(self) -> str:
        return json.dumps(
            {
                "dlgrade_version": self.version,
                "git_commit": self.git_commit,
                "git_dirty": self.git_dirty,
                "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
            },
            indent=2,
        )


def default_repo() -> Path:
    """The repository this package runs from."""
    return Path(__file__).resolve().parent.parent


def _public_rubrics(checks: Path) -> list[Path]:
    """The public rubric of every activity ``checks`` declares (dlgrade/activities.py)."""
    from dlgrade.activities import registry
    from dlgrade.errors import RubricError

    try:
        known = registry(checks)
    except RubricError as exc:
        raise KitError(str(exc)) from None
    return [checks / f"{module}.py" for module, _title in known.values()]


def kit_sources(repo: Path, checks: Path | None = None) -> dict[str, Path]:
    """Kit path → the repository file it is copied from, by the allow-list ``KIT``.

    ``checks``: the rubric folder whose public rubrics ship as ``checks/`` (an instructor's
    ``--checks DIR``), with its ``skeletons/``; default the repository's ``checks/``.
    """
    from dlgrade.rubric import is_hidden_rubric

    sources: dict[str, Path] = {}
    checks = Path(checks).resolve() if checks else repo / "checks"
    for own in sorted(checks.glob(SKELETONS)) if checks != repo / "checks" else []:
        if own.is_file() and not own.is_symlink():
            sources[f"checks/{own.relative_to(checks).as_posix()}"] = own
    for rule in KIT:
        if rule.pattern == RUBRICS:
            matches = _public_rubrics(checks)
            for path in matches:
                if path.is_symlink() or is_hidden_rubric(path):
                    raise KitError(f"{path}: the kit ships regular public rubrics only")
                sources[f"checks/{path.name}"] = path
            if not matches:
                raise KitError(f"the kit needs {rule.pattern}, which {checks} lacks")
            continue
        matches = sorted(p for p in repo.glob(rule.pattern) if p.is_file() or p.is_symlink())
        if not matches:
            raise KitError(f"the kit needs {rule.pattern}, which {repo} lacks")
        for path in matches:
            if path.is_symlink():
                raise KitError(f"{path} is a symbolic link; the kit copies regular files only")
            if path.parent.name == "checks" and is_hidden_rubric(path):
                raise KitError(
                    f"{path} holds hidden checks; the kit rule {rule!r} must not match it"
                )
            sources[rule.target or path.relative_to(repo).as_posix()] = path
    return sources


def export_kit(
    out: Path, *, repo: Path | None = None, force: bool = False, checks: Path | None = None
) -> KitManifest:
    """Write the student kit to ``out``: build it beside ``out``, then rename it into place.

    ``out`` must be missing or empty unless ``force``, which replaces it whole. ``checks``:
    the rubric folder whose public rubrics ship (default the repository's ``checks/``).
    """
    repo = (repo or default_repo()).resolve()
    out = Path(out)
    _check_target(out, repo, force)
    sources = kit_sources(repo, checks)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        files = []
        for name, source in sorted(sources.items()):
            content = source.read_bytes()  # hash what is written, even if the source changes
            target = build / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            files.append(KitFile(name, hashlib.sha256(content).hexdigest(), len(content)))
        commit, dirty = _git_state(repo, sorted(sources.values()))
        from dlgrade import __version__

        manifest = KitManifest(tuple(files), __version__, commit, dirty)
        (build / MANIFEST_NAME).write_text(manifest.to_json() + "\n")
        build.chmod(0o755)  # mkdtemp made it private
        _move_into_place(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return manifest


def _check_target(out: Path, repo: Path, force: bool) -> None:
    resolved = out.resolve()
    if resolved == repo or resolved in repo.parents:
        raise KitError(f"{out} holds the repository {repo}; write the kit to a folder outside it")
    if repo in resolved.parents:
        top = resolved.relative_to(repo).parts[0]
        if top == ".git" or top in {rule.pattern.split("/")[0] for rule in KIT}:
            raise KitError(
                f"{out} is inside {repo / top}, which the kit is built from; "
                "write the kit to another folder"
            )
    if out.exists() and not out.is_dir():
        raise KitError(f"{out} exists and is not a folder; choose a folder for the kit")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KitError(
            f"{out} is not empty; choose an empty or new folder, or pass --force to replace "
            "everything in it with the kit"
        )


def _move_into_place(build: Path, out: Path) -> None:
    if not out.exists() or not any(out.iterdir()):
        os.replace(build, out)  # POSIX rename replaces an empty folder in one step
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
    os.replace(out, old)  # onto the empty folder mkdtemp made
    try:
        os.replace(build, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _git_state(repo: Path, sources: list[Path]) -> tuple[str | None, bool | None]:
    """The repository's commit, and whether the kit's sources differ from it."""

    def git(*args: str) -> str | None:
        try:
            run = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return run.stdout if run.returncode == 0 else None

    commit = git("rev-parse", "--verify", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--", *(str(p) for p in sources))
    return commit.strip(), None if status is None else bool(status.strip())


def run_kit(args: argparse.Namespace) -> int:
    """``dlgrade kit OUT [--force]``: 0 written, 2 refused (the message says why)."""
    from dlgrade.errors import EXIT_OK, EXIT_USAGE

    try:
        manifest = export_kit(args.out, force=args.force, checks=getattr(args, "checks", None))
    except KitError as exc:
        print(f"dlgrade kit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rubrics = [f.path for f in manifest.files if RUBRIC_PATH.fullmatch(f.path)]
    checks = getattr(args, "checks", None) or default_repo() / "checks"
    hidden = sorted(p.name for p in Path(checks).glob("*_hidden.py"))
    source = manifest.git_commit[:12] if manifest.git_commit else "no git commit"
    if manifest.git_dirty:
        source += ", with uncommitted changes"
    print(f"dlgrade kit: wrote {len(manifest.files)} files to {args.out} ({source})")
    print(f"  public rubrics: {len(rubrics)}; left out: {len(hidden)} hidden rubrics,")
    print("  reference/, tests/, benchmarks/, submissions/ and anything else not in the kit's list")
    print(f"  every file and its sha256: {Path(args.out) / MANIFEST_NAME}")
    return EXIT_OK
