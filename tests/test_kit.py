"""The student kit holds the package, the public rubrics and the students' docs: nothing from
which a reference solution or a hidden check's inputs can be read."""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlgrade import kit as kits
from dlgrade.kit import MANIFEST_NAME, KitError, export_kit, run_kit
from dlgrade.rubric import ACTIVITIES
from tests.helpers import CHECKS, REFERENCE, REPO

#: the students' docs, by name: a new doc ships only when this list (and the kit's) says so
STUDENT_DOCS = {
    "docs/submission-contract.md",
    "docs/data.md",
    "docs/keras3-migration.md",
    "docs/security.md",
    "docs/ci.md",
    "docs/ci/github-actions.yml",
}


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit") / "dlgrade-kit"
    export_kit(out)
    return out


def kit_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def planted(kit, tmp_path) -> Path:
    """A copy of the kit to plant leaks in."""
    return Path(shutil.copytree(kit, tmp_path / "planted"))


# -- (1) no reference solution -----------------------------------------------------------


def function_bodies(source: str) -> dict[str, str]:
    """``ast.dump`` of each function's body (names included, docstring dropped) → its name.

    Functions inside string constants that parse as Python count too: a rubric may carry
    code to run in a worker (4.02's reference run), and a copied solution could hide there.
    """
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if body:
                found[ast.dump(ast.Module(body=body, type_ignores=[]))] = node.name
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and "def " in node.value
        ):
            try:
                found.update(function_bodies(node.value))
            except SyntaxError:
                pass
    return found


def reference_leaks(folder: Path) -> list[str]:
    """Every file of ``folder`` that is a reference file, or holds a reference function."""
    references = {p.read_bytes(): p.name for p in REFERENCE.rglob("*") if p.is_file()}
    bodies = {
        dump: f"reference/{path.name}:{name}"
        for path in sorted(REFERENCE.glob("activity_*.py"))
        for dump, name in function_bodies(path.read_text()).items()
    }
    assert bodies, "no reference functions found: the scan would prove nothing"
    leaks = []
    for name, path in kit_files(folder).items():
        content = path.read_bytes()
        if content in references:
            leaks.append(f"{name} is reference/{references[content]}")
        if path.suffix == ".py":
            for dump, function in function_bodies(content.decode()).items():
                if dump in bodies:
                    leaks.append(f"{name}:{function} has the body of {bodies[dump]}")
    return leaks


def test_the_kit_holds_no_reference_file_or_function(kit):
    assert reference_leaks(kit) == []


def test_the_reference_scan_catches_a_planted_copy(planted):
    """A reference function renamed, with a new docstring, in a package module; a whole file."""
    tree = ast.parse((REFERENCE / "activity_2_01.py").read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    function.name = "fit_for_a_while"
    function.body.insert(0, ast.Expr(ast.Constant("Nothing to see here.")))
    with (planted / "dlgrade" / "data" / "synth.py").open("a") as module:
        module.write("\n\n" + ast.unparse(function) + "\n")
    shutil.copy(REFERENCE / "activity_1_01.py", planted / "docs" / "example.py")
    # and as a string, the way a rubric carries code for a worker
    source = ast.unparse(next(n for n in tree.body if isinstance(n, ast.FunctionDef)))
    (planted / "dlgrade" / "carried.py").write_text(f"CODE = {source!r}\n")
    leaks = reference_leaks(planted)
    planted_copy = "dlgrade/data/synth.py:fit_for_a_while"
    assert f"{planted_copy} has the body of reference/activity_2_01.py:train" in leaks
    assert "docs/example.py is reference/activity_1_01.py" in leaks
    assert any(leak.startswith("dlgrade/carried.py:") for leak in leaks), leaks


# -- (2) no hidden check, no hidden input --------------------------------------------------


def module_constants(path: Path) -> list[tuple[str, object, str]]:
    """(name, value, source text) of each literal assigned at module level."""
    source = path.read_text()
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    found.append((target.id, value, ast.get_source_segment(source, node.value)))
    return found


def fingerprints(value: object, text: str) -> list[re.Pattern[bytes]]:
    """What a copy of ``value`` would look like in a file, spelled as here or as repr()."""
    spellings = {text, repr(value)} if text else {repr(value)}
    if isinstance(value, str):
        # four-word windows, so a copy split over other lines or strings is still found
        words = value.split()
        windows = {" ".join(words[i : i + 4]) for i in range(max(1, len(words) - 3))}
        return [re.compile(re.escape(w.encode())) for w in windows if len(w) >= 16]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        if abs(value) < 1000:
            return []  # too short to tell a copy from a coincidence (0.7, 3, 2.5)
        return [
            re.compile(rb"(?<![\w.])" + re.escape(s.encode()) + rb"(?![\w])") for s in spellings
        ]
    if isinstance(value, tuple | list):
        patterns = [re.compile(re.escape(s.encode())) for s in spellings]
        for item in value:
            if isinstance(item, tuple | list | str):
                patterns += fingerprints(item, "")
            elif isinstance(item, int | float):
                patterns += fingerprints(item, "")
        return patterns
    return [re.compile(re.escape(s.encode())) for s in spellings]


def hidden_constants() -> dict[str, list[re.Pattern[bytes]]]:
    """``file:NAME`` → fingerprints, for each constant of a hidden rubric its public file lacks."""
    found = {}
    for hidden in sorted(CHECKS.glob("*_hidden.py")):
        public = hidden.with_name(hidden.name.replace("_hidden", ""))
        public_values = {repr(value) for _, value, _ in module_constants(public)}
        for name, value, text in module_constants(hidden):
            # ACTIVITY: the number its public rubric declares (dlgrade.activity()), no secret
            if name != "ACTIVITY" and repr(value) not in public_values:
                found[f"{hidden.name}:{name}"] = fingerprints(value, text)
    return found


def hidden_leaks(folder: Path) -> list[str]:
    constants = hidden_constants()
    leaks = []
    for name, path in kit_files(folder).items():
        content = path.read_bytes()
        for constant, patterns in constants.items():
            hits = [p.pattern.decode() for p in patterns if p.search(content)]
            if hits:
                leaks.append(f"{name} holds {constant} ({hits[0]!r})")
    return leaks


def hidden_decorations(folder: Path) -> list[str]:
    """Every ``visibility="hidden"`` keyword in the folder's Python files."""
    found = []
    for name, path in kit_files(folder).items():
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.keyword)
                    and node.arg == "visibility"
                    and isinstance(node.value, ast.Constant)
                    and node.value.value == "hidden"
                ):
                    found.append(f"{name}:{node.value.lineno}")
    return found


def test_the_kit_holds_no_hidden_check(kit):
    assert list(kit.rglob("*_hidden.py")) == []
    assert hidden_decorations(kit) == []


def test_no_hidden_input_or_expected_value_is_in_the_kit(kit):
    constants = hidden_constants()
    # what the scan looks for: if these go, the scan has silently stopped looking
    assert {
        "activity_1_01_hidden.py:OTHER_SQUARES",
        "activity_2_01_hidden.py:HIDDEN_SPLIT_SEED",
        "activity_4_01_hidden.py:HIDDEN_SLICES",
        "activity_4_01_hidden.py:HIDDEN_TEXT",
    } <= set(constants)
    assert all(constants.values()), [name for name, p in constants.items() if not p]
    assert hidden_leaks(kit) == []


def test_the_hidden_scans_catch_planted_leaks(planted):
    rubric = planted / "checks" / "activity_1_01.py"
    rubric.write_text(
        rubric.read_text() + '\n\n@dlgrade.check(points=1, visibility="hidden", feedback="f")\n'
        "def test_secret(student):\n    pass\n"
    )
    append(planted / "dlgrade" / "data" / "store.py", "\nSPLIT = 72011\n")
    append(
        planted / "docs" / "data.md",  # re-wrapped, as a copy pasted into prose would be
        "\nSee how it copes: The Dormouse (who was asleep)\ndidn't answer; the Hatter said\n",
    )
    append(planted / "docs" / "security.md", "\nsolve for k in [(7.0, 1.0)]\n")
    assert [d.split(":")[0] for d in hidden_decorations(planted)] == ["checks/activity_1_01.py"]
    leaks = " | ".join(hidden_leaks(planted))
    assert "dlgrade/data/store.py holds activity_2_01_hidden.py:HIDDEN_SPLIT_SEED" in leaks
    assert "docs/data.md holds activity_4_01_hidden.py:HIDDEN_TEXT" in leaks
    assert "docs/security.md holds activity_1_01_hidden.py:OTHER_SQUARES" in leaks


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


# -- (3) exactly the allow-list ------------------------------------------------------------


def test_the_kit_holds_exactly_the_package_the_public_rubrics_and_the_students_docs(kit):
    package = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "dlgrade").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    rubrics = {f"checks/{module}.py" for module, _ in ACTIVITIES.values()}
    expected = {"pyproject.toml", "README.md", MANIFEST_NAME} | package | rubrics | STUDENT_DOCS
    assert set(kit_files(kit)) == expected
    assert (kit / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    assert (kit / "README.md").read_bytes() == (REPO / "docs" / "kit" / "README.md").read_bytes()


def test_the_manifest_lists_every_file_with_its_sha256_and_the_commit(kit):
    manifest = json.loads((kit / MANIFEST_NAME).read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = kit_files(kit)
    assert set(listed) == set(on_disk) - {MANIFEST_NAME}
    for name, entry in listed.items():
        content = on_disk[name].read_bytes()
        assert entry["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert entry["size"] == len(content), name
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True)
    if git.returncode == 0:  # others may commit meanwhile: the commit must exist, not be HEAD
        assert re.fullmatch(r"[0-9a-f]{40}", manifest["git_commit"])
        exists = ["git", "-C", str(REPO), "cat-file", "-e", manifest["git_commit"] + "^{commit}"]
        assert subprocess.run(exists).returncode == 0
        assert isinstance(manifest["git_dirty"], bool)


def test_the_kit_leaves_out_what_students_must_not_get(kit):
    names = set(kit_files(kit))
    for top in ("reference/", "tests/", "benchmarks/", "submissions/", ".git", ".ci", ".venv"):
        assert not [n for n in names if n.startswith(top)], top
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".egg-info"))]


def test_a_missing_kit_file_is_named(tmp_path):
    repo = tmp_path / "repo"
    for name, source in kits.kit_sources(REPO).items():
        if name != "docs/ci.md":
            target = repo / source.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    with pytest.raises(KitError, match=re.escape(f"the kit needs docs/ci.md, which {repo}")):
        export_kit(tmp_path / "out", repo=repo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


# -- (4) the kit grades on its own ----------------------------------------------------------


@pytest.mark.slow
def test_dlgrade_check_from_the_kit_grades_with_the_kits_public_checks(kit, tmp_path):
    out = tmp_path / "grade.json"
    script = (
        "import sys, dlgrade, dlgrade.cli as cli\n"
        "print('package:', dlgrade.__file__)\n"
        "print('checks:', cli.checks_dir(None))\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(kit)}
    env.pop("DLGRADE_CHECKS", None)
    run = subprocess.run(
        [sys.executable, "-c", script, "check", str(REPO / "submissions" / "example"),
         "--activity", "1.01", "--tier", "quick", "--grade-json", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert f"package: {kit / 'dlgrade' / '__init__.py'}" in run.stdout, run.stdout + run.stderr
    assert f"checks: {(kit / 'checks').resolve()}" in run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    grade = json.loads(out.read_text())
    public = {
        f"1.01/{node.name.removeprefix('test_')}"
        for node in ast.parse((kit / "checks" / "activity_1_01.py").read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }
    assert {c["id"] for c in grade["checks"]} == public
    assert {c["visibility"] for c in grade["checks"]} == {"public"}
    assert "1.01/other_perfect_squares" not in public
    assert grade["score"] == grade["max_score"] > 0


@pytest.mark.slow
def test_pip_install_e_of_the_kit_alone_finds_its_rubrics(kit, tmp_path):
    """The kit's own pyproject installs it; the installed dlgrade finds the kit's checks/."""
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the libraries (and setuptools) come from this environment: no network, no downloads
    libraries = next(p for p in sys.path if p.endswith("site-packages"))
    Path(purelib, "libraries.pth").write_text(libraries + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
    install += ["--no-build-isolation", "--no-index", "-e", str(kit)]
    run = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    script = "import dlgrade, dlgrade.cli as c; print(dlgrade.__file__); print(c.checks_dir(None))"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DLGRADE_CHECKS")}
    where = subprocess.run(
        [python, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert where.stdout.split() == [
        str(kit.resolve() / "dlgrade" / "__init__.py"),
        str((kit / "checks").resolve()),
    ], where.stdout + where.stderr
    assert (venv / "bin" / "dlgrade").is_file()


# -- (5) where the kit may be written --------------------------------------------------------


def test_a_non_empty_folder_is_refused_without_force_and_replaced_with_it(tmp_path, capsys):
    out = tmp_path / "kit"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = run_kit(argparse.Namespace(out=out, force=False))
    assert code == 2
    message = capsys.readouterr().err
    assert f"{out} is not empty" in message and "--force" in message
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]  # nothing built beside it either

    assert run_kit(argparse.Namespace(out=out, force=True)) == 0
    assert not (out / "notes.txt").exists() and (out / MANIFEST_NAME).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]


def test_an_empty_or_new_folder_is_written(tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "kit"):
        manifest = export_kit(out)
        assert {f.path for f in manifest.files} == set(kit_files(out)) - {MANIFEST_NAME}


def test_a_failed_build_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "kit"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(kits, "_git_state", broken)
    with pytest.raises(OSError, match="disk full"):
        export_kit(out, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "out",
    [REPO, REPO.parent, REPO / "docs" / "kit-out", REPO / "checks" / "kit"],
    ids=["the-repository", "above-it", "inside-docs", "inside-checks"],
)
def test_the_kit_is_never_written_over_its_own_sources(out):
    before = out.exists()
    with pytest.raises(KitError, match="outside it|which the kit is built from"):
        export_kit(out, force=True)
    assert out.exists() == before


# -- the CI workflow the kit ships ----------------------------------------------------------


def test_the_ci_workflow_grades_with_min_score_and_junit_and_publishes_the_report():
    text = (REPO / "docs" / "ci" / "github-actions.yml").read_text()
    assert "\t" not in text
    assert all((len(line) - len(line.lstrip(" "))) % 2 == 0 for line in text.splitlines())
    import yaml  # pyyaml: a test dependency

    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["grade"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert {"actions/checkout", "actions/setup-python", "actions/upload-artifact"} <= set(uses)
    assert any(s.get("with", {}).get("python-version") == "3.11" for s in steps)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install -e" in runs
    assert re.search(r"dlgrade check \. .*--min-score .*--junit-xml report\.xml", runs)
    upload = steps[uses.index("actions/upload-artifact")]
    assert upload["with"]["path"] == "report.xml" and upload["if"] == "${{ !cancelled() }}"
