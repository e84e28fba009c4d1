"""An activity is data: a tenth chapter is added without editing anything under dlgrade/.

The toy activity 10.01 lives in a rubric folder of its own in tmp_path (copying nothing of
dlgrade/): its rubric declares ``ACTIVITY = dlgrade.activity("10.01", "Toy")``, and beside
it are a reference, a skeleton, one variant and one mutant. ``dlgrade check --checks DIR``
grades them, ``dlgrade new --checks DIR`` writes its skeleton and ``dlgrade kit --checks DIR``
ships its rubric.
"""

import hashlib
import json
from pathlib import Path

import pytest

from dlgrade import activities
from dlgrade.errors import RubricError
from tests.helpers import REPO, dlgrade

RUBRIC = '''"""Toy activity 10.01: add and double, two cheap checks (no TensorFlow)."""

import dlgrade

ACTIVITY = dlgrade.activity("10.01", "Toy")


@dlgrade.check(points=2, feedback="add(a, b) must return a + b.")
def test_add(student):
    """add(2, 3) is 5."""
    got = student.add(2.0, 3.0)
    if got != 5.0:
        dlgrade.fail(f"add(2, 3) returned {got!r}; expected 5")


@dlgrade.check(points=1, feedback="double(x) must return 2 x.")
def test_double(student):
    """double(4) is 8."""
    got = student.double(4.0)
    if got != 8.0:
        dlgrade.fail(f"double(4) returned {got!r}; expected 8")
'''

REFERENCE = '''"""Activity 10.01, the reference."""


def add(a, b):
    return a + b


def double(x):
    return 2 * x
'''

VARIANT = '''"""Activity 10.01 as another student writes it."""


def add(a, b):
    return sum((a, b))


def double(x):
    return x + x
'''

SKELETON = '''"""Activity 10.01: two functions to write."""


def add(a, b):
    """Return a + b."""
    raise NotImplementedError("add")


def double(x):
    """Return 2 x."""
    raise NotImplementedError("double")
'''

#: the reference with one mistake, which test_double must catch (and test_add must not)
MUTANT = ("return 2 * x", "return 3 * x")


def package_hashes() -> dict[str, str]:
    return {
        path.relative_to(REPO).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((REPO / "dlgrade").rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A rubric folder holding only activity 10.01 (and its skeleton)."""
    checks = tmp_path / "toy" / "checks"
    (checks / "skeletons").mkdir(parents=True)
    (checks / "activity_10_01.py").write_text(RUBRIC)
    (checks / "skeletons" / "activity_10_01.py").write_text(SKELETON)
    return checks


def submission(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "activity_10_01.py").write_text(source)
    return folder


def graded(folder: Path, checks: Path, out: Path) -> dict:
    run = dlgrade("check", folder, "--checks", checks, "--grade-json", out)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    assert "Activity 10.01 — Toy" in run.stdout, run.stdout
    grade = json.loads(out.read_text())
    assert {c["activity"] for c in grade["checks"]} == {"10.01"}, grade["checks"]
    return grade


def test_the_registry_reads_a_tenth_activity_without_importing_it(toy):
    (toy / "activity_10_01.py").write_text(RUBRIC.replace("import dlgrade\n", "import nope\n"))
    assert activities.registry(toy) == {"10.01": ("activity_10_01", "Toy")}
    assert activities.sort_key("2.01") < activities.sort_key("10.01")


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("activity_10_01.py", 'ACTIVITY = dlgrade.activity("10.1", "Toy")', "not an activity"),
        ("activity_10_01.py", 'ACTIVITY = dlgrade.activity("10.02", "Toy")', "activity_10_02.py"),
        ("activity_10_01.py", 'ACTIVITY = dlgrade.activity("10.01", "")', "title is empty"),
        ("activity_10_01.py", "ACTIVITY = NUMBER", "two literal strings"),
        ("activity_10_01.py", "", "must set ACTIVITY"),
        ("activity_10_01.py", 'ACTIVITY = "10.01"\nACTIVITY = "10.01"', "set 2 times"),
        ("activity_010_01.py", 'ACTIVITY = dlgrade.activity("10.01", "Toy")', "rename it"),
    ],
)
def test_a_malformed_declaration_names_the_rubric_and_the_fix(tmp_path, file, line, message):
    (tmp_path / file).write_text(f"import dlgrade\n\n{line}\n")
    with pytest.raises(RubricError, match=message) as raised:
        activities.registry(tmp_path)
    assert file in str(raised.value)


def test_the_packaged_activities_keep_their_shape():
    from dlgrade.rubric import ACTIVITIES

    assert ACTIVITIES["1.01"] == ("activity_1_01", "Quadratic solved by an optimizer")
    assert list(ACTIVITIES)[0] == "1.01" and len(ACTIVITIES) == len(dict(ACTIVITIES)) >= 9
    assert activities.registry(REPO / "checks") == dict(ACTIVITIES)


@pytest.mark.slow
def test_a_tenth_activity_grades_ships_and_leaves_the_package_alone(toy, tmp_path):
    before = package_hashes()

    reference = graded(submission(tmp_path / "reference", REFERENCE), toy, tmp_path / "r.json")
    assert reference["score"] == reference["max_score"] == 3, reference["checks"]

    variant = graded(submission(tmp_path / "variant", VARIANT), toy, tmp_path / "v.json")
    assert variant["score"] == variant["max_score"] == 3, variant["checks"]

    assert REFERENCE.count(MUTANT[0]) == 1
    mutant_source = REFERENCE.replace(*MUTANT)
    mutant = graded(submission(tmp_path / "mutant", mutant_source), toy, tmp_path / "m.json")
    outcomes = {c["id"]: c["outcome"] for c in mutant["checks"]}
    assert outcomes == {"10.01/add": "pass", "10.01/double": "fail"}, mutant["checks"]

    new = dlgrade("new", tmp_path / "started", "--checks", toy)
    assert new.returncode == 0, new.stderr
    assert (tmp_path / "started" / "activity_10_01.py").read_text() == SKELETON
    assert sorted(p.name for p in (tmp_path / "started").iterdir()) == ["activity_10_01.py"]

    kit = dlgrade("kit", tmp_path / "kit", "--checks", toy)
    assert kit.returncode == 0, kit.stdout + kit.stderr
    assert (tmp_path / "kit" / "checks" / "activity_10_01.py").read_text() == RUBRIC
    skeleton = tmp_path / "kit" / "checks" / "skeletons" / "activity_10_01.py"
    assert skeleton.read_text() == SKELETON
    manifest = json.loads((tmp_path / "kit" / "KIT_MANIFEST.json").read_text())
    rubrics = sorted(f["path"] for f in manifest["files"] if f["path"].startswith("checks/"))
    assert rubrics == ["checks/activity_10_01.py", "checks/skeletons/activity_10_01.py"]
    assert "public rubrics: 1;" in kit.stdout, kit.stdout

    assert package_hashes() == before, "adding an activity changed a file under dlgrade/"
