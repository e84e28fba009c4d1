"""The class exports of ``dlgrade grade``: what each file holds, and what students never see."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dlgrade.gradebook import HIDDEN_FEEDBACK, INCOMPLETE, Gradebook, StudentRecord
from dlgrade.reports import summary_html
from dlgrade.reports.exports import write_exports
from dlgrade.reports.feedback import INCOMPLETE_TEXT
from tests.helpers import check, record

SECRET_FEEDBACK = "HIDDEN-INPUT-42"
SECRET_STDOUT = "SECRET-STDOUT"
EVIL_NAME = "=cmd|' /C calc'!A0"
SCRIPT = "<script>alert('pwned')</script>"


# ------------------------------------------------------------------------------- factory


def hidden_quadratics(outcome: str = "fail", reason: str = "") -> dict:
    return check(
        "1.01/other_quadratics",
        outcome,
        3,
        visibility="hidden",
        reason=reason,
        feedback=f"solve() on the hidden quadratic {SECRET_FEEDBACK} returned 7; expected 1.5",
        stdout=f"epoch 1 {SECRET_STDOUT}\n",
    )


def class_records() -> list[StudentRecord]:
    return [
        record(
            "carol",
            [check("1.01/returns_a_float"), check("1.01/converges", "fail", 3)],
            status=INCOMPLETE,
            note="the grader was interrupted (SIGTERM) during 2.01",
            wall_s=12.0,
        ),
        record(
            "alice",
            [
                check("1.01/returns_a_float"),
                check(
                    "1.01/converges",
                    "fail",
                    3,
                    feedback="solve() returned 5; expected 0.955 (± 0.05)\nWhat to fix: use Adam",
                    stdout=f"loss: nan\n{SCRIPT}\n",
                ),
                hidden_quadratics(),
                check("2.01/model_shape", max_points=3),
                check("2.01/accuracy", max_points=2.5, duration_s=31.25),
            ],
            name="Alice Liddell",
            lms_id="1001",
            wall_s=95.5,
        ),
        record(
            "bob",
            [
                check("1.01/returns_a_float"),
                check("1.01/converges", max_points=3),
                hidden_quadratics("crash", "memory_limit"),
                check("2.01/model_shape", max_points=3),
                check(
                    "2.01/accuracy",
                    "timeout",
                    2.5,
                    reason="timeout",
                    feedback="fit() did not return within 300 s",
                ),
            ],
            name=EVIL_NAME,
            wall_s=301.0,
        ),
        record(
            "dave",
            [
                check("1.01/returns_a_float"),
                check("1.01/converges", max_points=3),
                hidden_quadratics("pass"),
                check("2.01/model_shape", max_points=3),
                check("2.01/accuracy", max_points=2.5),
            ],
            lms_id="1004",
            wall_s=40.0,
        ),
        record(
            "erin",
            [
                check(
                    "1.01/returns_a_float",
                    "error",
                    reason="student_exception",
                    feedback="Your code raised ZeroDivisionError: division by zero",
                    stdout="about to divide\n",
                ),
                check(
                    "1.01/converges",
                    "not_implemented",
                    3,
                    reason="not_implemented",
                    feedback="Not implemented yet",
                ),
                hidden_quadratics("error", "student_exception"),
            ],
            wall_s=5.0,
        ),
    ]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    write_exports(tmp_path / "results", Gradebook.of(class_records()))
    return tmp_path / "results"


def student_facing(out: Path) -> list[Path]:
    files = sorted((out / "feedback").iterdir()) + sorted((out / "gradescope").glob("*/*"))
    files.append(out / "junit.xml")  # CI dashboards are read by students too (issue 23)
    assert files
    return files


# ----------------------------------------------------------------------- gradebook.csv


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_gradebook_csv_has_stable_columns_and_one_row_per_student(out):
    header, *rows = read_csv(out / "gradebook.csv")
    assert header == [
        "student",
        "name",
        "lms_id",
        "status",
        "1.01",
        "2.01",
        "total",
        "max_total",
        "percent",
        "reason",
    ]
    assert [row[0] for row in rows] == ["alice", "bob", "carol", "dave", "erin"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_id["alice"] == {
        "student": "alice",
        "name": "Alice Liddell",
        "lms_id": "1001",
        "status": "graded",
        "1.01": "2",
        "2.01": "5.5",
        "total": "7.5",
        "max_total": "13.5",
        "percent": "55.6",
        "reason": "",
    }
    assert by_id["dave"]["percent"] == "100.0"
    assert by_id["carol"]["status"] == "incomplete"
    assert by_id["carol"]["2.01"] == ""  # never graded: empty, not 0
    assert by_id["carol"]["reason"].startswith("incomplete: the grader was interrupted")
    assert by_id["bob"]["reason"] == "crash (memory_limit); timeout (timeout)"


def test_gradebook_csv_defuses_formulas_in_student_text(out):
    rows = read_csv(out / "gradebook.csv")
    bob = next(row for row in rows if row[0] == "bob")
    assert bob[1] == "'" + EVIL_NAME
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


# ------------------------------------------------------------------------- grades.json


def test_grades_json_holds_every_record_in_full(out):
    data = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    assert data["tier"] == "standard"
    assert data["rubric_version"] == "2026.1"
    assert data["activities"] == ["1.01", "2.01"]
    assert [s["student"] for s in data["students"]] == ["alice", "bob", "carol", "dave", "erin"]
    assert StudentRecord.from_dict(data["students"][0]) == class_records()[1]
    text = (out / "grades.json").read_text(encoding="utf-8")
    assert SECRET_FEEDBACK in text and SECRET_STDOUT in text


# ----------------------------------------------------------------- hidden checks stay hidden


def test_hidden_feedback_and_output_reach_no_student_facing_file(out):
    for path in student_facing(out):
        data = path.read_bytes()
        for secret in (SECRET_FEEDBACK, SECRET_STDOUT):
            assert secret.encode() not in data, f"{secret} leaked into {path}"
        # the seed is an input of the hidden check too
        assert b"20211" not in data, f"the seed leaked into {path}"


def test_instructor_files_keep_the_hidden_feedback(out):
    for name in ("grades.json",):
        text = (out / name).read_text(encoding="utf-8")
        assert SECRET_FEEDBACK in text and SECRET_STDOUT in text, name


def test_a_failed_hidden_check_shows_the_hidden_feedback_constant(out):
    assert HIDDEN_FEEDBACK in (out / "feedback" / "alice.md").read_text(encoding="utf-8")
    page = (out / "feedback" / "alice.html").read_text(encoding="utf-8")
    assert HIDDEN_FEEDBACK.replace("'", "&#x27;") in page
    dave = (out / "feedback" / "dave.md").read_text(encoding="utf-8")
    assert HIDDEN_FEEDBACK not in dave  # passed: nothing to fix


# ------------------------------------------------------------------------------ gradescope


def test_gradescope_results_have_the_required_keys_and_scores_that_sum(out):
    students = sorted(p.name for p in (out / "gradescope").iterdir())
    assert students == ["alice", "bob", "carol", "dave", "erin"]
    for student in students:
        data = json.loads((out / "gradescope" / student / "results.json").read_text("utf-8"))
        assert {"score", "output", "visibility", "stdout_visibility", "tests"} <= set(data)
        assert data["visibility"] == "visible" and data["stdout_visibility"] == "hidden"
        for test in data["tests"]:
            assert set(test) == {
                "name",
                "number",
                "score",
                "max_score",
                "status",
                "output",
                "visibility",
            }
            assert test["status"] in ("passed", "failed")
        assert sum(t["score"] for t in data["tests"]) == pytest.approx(data["score"])


def test_gradescope_shows_public_feedback_and_hides_hidden_checks(out):
    data = json.loads((out / "gradescope" / "alice" / "results.json").read_text("utf-8"))
    tests = {t["number"]: t for t in data["tests"]}
    assert data["score"] == 7.5
    assert tests["1.01/returns_a_float"]["output"] == "Passed."
    assert "expected 0.955" in tests["1.01/converges"]["output"]
    assert "loss: nan" in tests["1.01/converges"]["output"]
    hidden = tests["1.01/other_quadratics"]
    assert hidden["visibility"] == "after_published"
    assert hidden["output"] == HIDDEN_FEEDBACK
    assert hidden["status"] == "failed" and hidden["max_score"] == 3
    dave = json.loads((out / "gradescope" / "dave" / "results.json").read_text("utf-8"))
    assert {t["number"]: t for t in dave["tests"]}["1.01/other_quadratics"]["output"] == "Passed."


# ---------------------------------------------------------------------------------- canvas


def test_canvas_csv_has_the_import_columns_and_points_possible(out):
    header, points, *rows = read_csv(out / "canvas.csv")
    assert header == [
        "Student",
        "ID",
        "SIS User ID",
        "SIS Login ID",
        "Section",
        "Activity 1.01 (dlgrade)",
        "Activity 2.01 (dlgrade)",
    ]  # no total column: Canvas would count it as one more assignment
    assert points == ["Points Possible", "", "", "", "", "8", "5.5"]
    by_id = {row[1]: row for row in rows if row[1]}
    assert by_id["1001"] == ["Alice Liddell", "1001", "", "", "", "2", "5.5"]
    assert by_id["1004"][0] == "dave"  # no name: the student id
    assert len(rows) == 5
    assert ["'" + EVIL_NAME, "", "", "", "", "5", "3"] in rows
    carol = next(row for row in rows if row[0] == "carol")
    assert carol[5:] == ["", ""]  # incomplete: no partial grade reaches the LMS


# ----------------------------------------------------------------------------------- junit


def test_junit_parses_and_counts_failures_and_errors(out):
    root = ET.parse(out / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert sorted(suites) == ["alice", "bob", "carol", "dave", "erin"]
    counts = {
        name: (len(s.findall("testcase")), len(s.findall(".//failure")), len(s.findall(".//error")))
        for name, s in suites.items()
    }
    assert counts == {
        "alice": (5, 2, 0),
        "bob": (5, 0, 2),
        "carol": (2, 1, 0),
        "dave": (5, 0, 0),
        "erin": (3, 1, 2),
    }
    for name, suite in suites.items():
        assert suite.get("tests") == str(counts[name][0])
        assert suite.get("failures") == str(counts[name][1])
        assert suite.get("errors") == str(counts[name][2])
    bob = suites["bob"]
    case = bob.find("testcase[@name='2.01/accuracy']")
    assert case.get("classname") == "bob.2.01"
    assert case.find("error").get("message") == "timeout: timeout"
    assert bob.find("testcase[@name='1.01/other_quadratics']/error").get("message") == (
        "crash: memory_limit"
    )


def test_junit_strips_characters_xml_cannot_hold(tmp_path):
    dirty = check("1.01/converges", "fail", feedback="got \x00\x1b[31mred\x07", stdout="\x0c")
    write_exports(tmp_path, Gradebook.of([record("zed", [dirty])]))
    failure = ET.parse(tmp_path / "junit.xml").getroot().find(".//failure")
    assert failure.text == "got red"  # the escape sequence goes whole, not just ESC


# -------------------------------------------------------------------------------- feedback


def test_feedback_escapes_what_the_student_printed(out):
    page = (out / "feedback" / "alice.html").read_text(encoding="utf-8")
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    markdown = (out / "feedback" / "alice.md").read_text(encoding="utf-8")
    fenced = re.search(r"```text\n(.*?)\n *```", markdown.split("Your code printed:")[1], re.S)
    assert fenced and SCRIPT in fenced.group(1)  # inside a code block, shown literally


def test_feedback_pages_are_self_contained(out):
    for path in (out / "feedback").glob("*.html"):
        page = path.read_text(encoding="utf-8")
        assert "http://" not in page and "https://" not in page
        assert "<script" not in page.lower() and " src=" not in page


def test_feedback_shows_activity_points_and_marks(out):
    markdown = (out / "feedback" / "alice.md").read_text(encoding="utf-8")
    assert "Score: **7.5/13.5** (55.6%)" in markdown
    assert "## Activity 1.01 — Quadratic solved by an optimizer — 2/8" in markdown
    assert "- ✓ Returns a float: 2/2" in markdown
    assert "- ✗ Converges: 0/3" in markdown
    assert "- ✗ Other quadratics (hidden): 0/3" in markdown
    erin = (out / "feedback" / "erin.md").read_text(encoding="utf-8")
    assert "- ✗ Converges: 0/3 — not implemented" in erin
    assert "about to divide" in erin


def test_incomplete_feedback_says_so_at_the_top(out):
    for suffix in ("md", "html"):
        text = (out / "feedback" / f"carol.{suffix}").read_text(encoding="utf-8")
        top = text[: text.index("Activity 1.01")]
        assert INCOMPLETE_TEXT in top
        assert "the grader was interrupted (SIGTERM) during 2.01" in top
    assert INCOMPLETE_TEXT not in (out / "feedback" / "alice.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------- summary


EXTERNAL = re.compile(
    r"""(src|href)\s*=\s*["']?\s*(https?:)?//|@import|url\(\s*["']?\s*(https?:)?//""", re.I
)


def test_summary_fetches_nothing_and_has_a_chart_per_activity(out):
    page = (out / "summary.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(page)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    # one histogram per activity, the pass-rate chart, one bar per slow submission
    assert page.count("<svg") == 2 + 1 + 5
    for label in ("students", "graded", "incomplete", "mean", "median", "rubric version"):
        assert f'<div class="label">{label}</div>' in page
    assert "score on the activity (%)" in page


def test_summary_sorts_pass_rates_hardest_first():
    rates = summary_html.pass_rates(Gradebook.of(class_records()))
    assert [r.rate for r in rates] == sorted(r.rate for r in rates)
    by_id = {r.id: (r.passed, r.total) for r in rates}
    # carol is INCOMPLETE: counted nowhere
    assert by_id["1.01/returns_a_float"] == (3, 4)
    assert by_id["1.01/other_quadratics"] == (1, 4)
    assert by_id["2.01/accuracy"] == (2, 3)


def test_summary_lists_abnormal_runs_with_links_to_feedback(out):
    page = (out / "summary.html").read_text(encoding="utf-8")
    abnormal = page[page.index("Runs that ended abnormally") :]
    for student in ("bob", "carol"):
        assert f'<a href="feedback/{student}.html">{student}</a>' in abnormal
    assert "memory_limit" in abnormal and "SIGTERM" in abnormal
    assert ">alice<" not in abnormal and ">dave<" not in abnormal
    # slowest first
    slow = page[page.index("Slowest submissions") : page.index("Runs that ended abnormally")]
    order = [m for m in re.findall(r">(alice|bob|carol|dave|erin)</a>", slow)]
    assert order == ["bob", "alice", "dave", "carol", "erin"]


def test_summary_escapes_student_text(tmp_path):
    weird = record("mallory", [check("1.01/converges", "crash", reason="worker_died")])
    weird = StudentRecord.from_dict({**weird.to_dict(), "status": INCOMPLETE, "note": SCRIPT})
    write_exports(tmp_path, Gradebook.of([weird]))
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert SCRIPT not in page and "&lt;script&gt;" in page


def test_summary_renders_with_no_students(tmp_path):
    write_exports(tmp_path, Gradebook.of([]))
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert summary_html.NO_STUDENTS in page
    assert read_csv(tmp_path / "gradebook.csv") == [
        ["student", "name", "lms_id", "status", "total", "max_total", "percent", "reason"]
    ]


# ---------------------------------------------------------------------------- write_exports


def test_write_exports_is_idempotent_and_leaves_no_temporary_files(tmp_path):
    book = Gradebook.of(class_records())
    first = write_exports(tmp_path, book)
    before = {p: p.read_bytes() for p in first}
    second = write_exports(tmp_path, Gradebook.of(list(reversed(class_records()))))
    assert second == first
    assert {p: p.read_bytes() for p in second} == before
    everything = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert everything == sorted(first)  # no .tmp left behind, nothing unlisted


def test_write_exports_drops_pages_of_students_without_a_record(tmp_path):
    write_exports(tmp_path, Gradebook.of(class_records()))
    write_exports(tmp_path, Gradebook.of(class_records()[:2]))
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == [
        "alice.html",
        "alice.md",
        "carol.html",
        "carol.md",
    ]
    assert sorted(p.name for p in (tmp_path / "gradescope").iterdir()) == ["alice", "carol"]


# ------------------------------------------------------------------------ headless browser

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 2000)


def chromium_screenshot(page: Path, shot: Path, profile: Path) -> subprocess.CompletedProcess:
    """Render ``page`` in headless Chromium, offline, into the PNG ``shot``."""
    browser = shutil.which("chromium") or str(CHROMIUM)
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"
)
def test_summary_renders_in_a_headless_browser(out, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    done = chromium_screenshot(out / "summary.html", shot, tmp_path / "profile")
    assert shot.is_file(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}"
    with Image.open(shot) as image:
        assert image.format == "PNG"
        assert image.size == WINDOW
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=WINDOW[0] * WINDOW[1])
    assert len(colours) > 20, "the page rendered (almost) blank"
    present = {rgb for _, rgb in colours}
    for hex_colour in (summary_html.BAR, summary_html.SLOW_BAR, summary_html.RATE_COLOURS[0][1]):
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in present, f"no {hex_colour} bars in the screenshot"


def test_a_record_holds_check_results_and_reads_back_what_it_wrote(tmp_path):
    """One result type end to end: a record's checks are CheckResults, written as the grade
    JSON's form plus the title, read back equal; scores are added up in one place."""
    from dlgrade import gradebook
    from dlgrade.rubric import CheckResult, Score

    written = record(
        "alice",
        [check("1.01/loss_fn", "pass", 2), check("1.01/solve", "timeout", 3, reason="timeout")],
    )
    assert all(isinstance(c, CheckResult) for c in written.checks)
    assert (written.score, written.max_score) == (2, 5)
    assert [c.id for c in written.abnormal()] == ["1.01/solve"]
    path = gradebook.write_record(tmp_path, written)
    stored = json.loads(path.read_text())
    assert stored["checks"][0]["title"] == "Loss fn" and "seed" not in stored["checks"][0]
    again = gradebook.read_record(path)
    assert again == written
    same = Score(submission="", tier="quick", seed=0, checks=written.checks)
    assert (same.score, same.max_score, same.percent) == (2, 5, written.percent)
