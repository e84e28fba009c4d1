"""Hidden checks' inputs never reach anything a student sees (issue 23, item 4).

The attack (``tests/attacks/hidden_inputs``): activity_1_01's ``solve()`` logs its
arguments in HOME, the working folder, /dev/shm and the worker's memory, prints them on
stdout and stderr and a second later again, and returns the log where a hidden check would
quote it; activity_2_01 prints the logs at import, in each function, and in the exception
each raises. Graded with the real rubrics (``checks/activity_1_01_hidden.py`` among them),
no hidden quadratic or iteration count may appear in ``feedback/``, the Gradescope JSON,
JUnit XML (the class's and pytest's) or the console.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import CHECKS, dlgrade, needs_jail

ATTACK = Path(__file__).parent / "attacks" / "hidden_inputs"
RUBRICS = ("activity_1_01.py", "activity_1_01_hidden.py", "activity_2_01.py")


def hidden_rubric():
    spec = importlib.util.spec_from_file_location(
        "hidden_rubric_1_01", CHECKS / "activity_1_01_hidden.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fingerprints() -> list[re.Pattern[str]]:
    """The hidden inputs as any report could spell them: each quadratic (a tuple or a list,
    escaped or not) and the iteration count the hidden check passes."""
    found = []
    for k, _start in hidden_rubric().OTHER_SQUARES:
        a, b, c = 1.0, -2.0 * k, k * k  # as the hidden check builds them
        found.append(re.compile(rf"{a!r},\s*{re.escape(repr(b))},\s*{re.escape(repr(c))}"))
    iterations = re.search(r"iterations=(\d+)", (CHECKS / "activity_1_01_hidden.py").read_text())
    found.append(re.compile(rf"iterations\W{{0,8}}{iterations.group(1)}\b"))
    return found


def leaks(text: str, where: str) -> list[str]:
    """Where the hidden inputs show in ``text`` (read as it is and with HTML unescaped)."""
    found = []
    for pattern in fingerprints():
        for form in (text, html.unescape(text)):
            match = pattern.search(form)
            if match:
                around = form[max(0, match.start() - 60) : match.end() + 20]
                found.append(f"{where}: {pattern.pattern!r} at …{around!r}…")
                break
    return found


def student_facing(out: Path) -> dict[str, str]:
    files = [*sorted((out / "feedback").iterdir()), *sorted((out / "gradescope").rglob("*.json"))]
    files.append(out / "junit.xml")
    return {str(f.relative_to(out)): f.read_text() for f in files}


@pytest.fixture
def rubrics(tmp_path: Path) -> Path:
    """A rubric folder with the real public and hidden checks of 1.01 and the public 2.01."""
    folder = tmp_path / "checks"
    folder.mkdir()
    for name in RUBRICS:
        shutil.copy(CHECKS / name, folder / name)
    return folder


def attackers(root: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(ATTACK, root / name)
    return root


def test_the_fingerprints_find_what_the_attack_logs():
    """The scan itself works: the log line solve() writes for a hidden call is caught."""
    k, start = hidden_rubric().OTHER_SQUARES[0]
    line = f"solve({[1.0, -2.0 * k, k * k]!r}, {dict(iterations=2000, start=start)!r})"
    assert len(leaks(line, "line")) == 2
    assert leaks("solve([1.0, -10.0, 25.0], {'iterations': 10000})", "public") == []


def test_a_class_run_shows_no_hidden_input_in_feedback_gradescope_junit_or_console(
    tmp_path, rubrics
):
    source = attackers(tmp_path / "submissions", "mallory")
    out = tmp_path / "results"
    run = dlgrade("grade", source, "--out", out, "--checks", rubrics, "--call-timeout", 60)
    assert (out / "junit.xml").exists(), run.stdout + run.stderr
    found = leaks(run.stdout + run.stderr, "console")
    for name, text in student_facing(out).items():
        found += leaks(text, name)
    assert found == [], "\n".join(found)
    # the attack did run: the hidden check failed on the log solve() returned, and the
    # printer's public checks failed quoting the (public) calls it had seen
    grades = (out / "grades.json").read_text()
    assert leaks(grades, "grades.json"), "the instructor's grades.json keeps the hidden feedback"
    feedback = (out / "feedback" / "mallory.md").read_text()
    assert "seen so far" in feedback and "solve([1.0, -10.0, 25.0]" in feedback


def test_dlgrade_check_shows_no_hidden_input_on_the_console_or_in_its_junit(tmp_path, rubrics):
    folder = attackers(tmp_path, "mallory") / "mallory"
    grade, junit = tmp_path / "grade.json", tmp_path / "junit.xml"
    run = dlgrade(
        "check",
        folder,
        "--checks",
        rubrics,
        "--grade-json",
        grade,
        "--junit-xml",
        junit,
        "--call-timeout",
        60,
    )
    assert grade.exists(), run.stdout + run.stderr
    found = leaks(run.stdout + run.stderr, "console") + leaks(junit.read_text(), "junit")
    assert found == [], "\n".join(found)
    assert "seen so far" in run.stdout
    assert leaks(grade.read_text(), "grade JSON"), "the grade JSON is the instructor's, in full"


@needs_jail
def test_students_graded_one_after_another_pass_no_hidden_input_between_them(tmp_path, rubrics):
    """The next student's public checks run after this one's hidden checks: only the jail's
    private HOME, working folder and /dev/shm keep the logs from them."""
    source = attackers(tmp_path / "submissions", "mallory", "trudy")
    out = tmp_path / "results"
    run = dlgrade("grade", source, "--out", out, "--checks", rubrics, "--call-timeout", 60)
    assert (out / "junit.xml").exists(), run.stdout + run.stderr
    found = leaks(run.stdout + run.stderr, "console")
    for name, text in student_facing(out).items():
        found += leaks(text, name)
    assert found == [], "\n".join(found)
