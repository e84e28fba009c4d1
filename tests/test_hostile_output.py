"""Text from a submission reaches no terminal as commands and no report as markup; every
JSON dlgrade writes is strict; a notebook no reader can parse is the student's outcome."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlgrade import gradebook, similarity
from dlgrade.gradebook import Gradebook
from dlgrade.reports import json_report
from dlgrade.reports.exports import render_all, write_exports
from dlgrade.rubric import CheckResult, Score
from dlgrade.sandbox import notebook
from dlgrade.text import BIDI_CONTROLS, dumps, printable, shown_name
from tests.helpers import LIGHT, SUBMISSIONS, check, record

#: examples per property test: small for CI, DLGRADE_FUZZ_EXAMPLES for a long run
FUZZ_EXAMPLES = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 60
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ESCAPES = SUBMISSIONS / "hostile" / "escape_sequences"
EVIL = (
    "\x1b[2J\x1b[H\r\u2713 every check passed\x1b]52;c;ZXZpbA==\x07\u202etxt.exe"
    "\x9b31m\x1bP+q\x1b\\\x07\x08\x7f"
)


def controls(text: str) -> list[str]:
    """The characters of ``text`` a terminal or a viewer would obey (not \\n or \\t)."""
    return [
        c
        for c in text
        if c not in "\n\t"
        and (unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS or "\ud800" <= c <= "\udfff")
    ]


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity, as strict readers (JavaScript) do."""

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------ printable


def test_printable_drops_escape_sequences_and_controls_and_keeps_newlines_and_tabs():
    assert printable(EVIL) == "\n\u2713 every check passedtxt.exe"
    assert printable("epoch 1\tloss 0.5\r\nepoch 2\n") == "epoch 1\tloss 0.5\nepoch 2\n"
    assert printable("10/10 [====]\r") == "10/10 [====]\n"  # a progress bar's \r: no overwrite


def test_an_unterminated_osc_sequence_swallows_only_its_own_line():
    assert printable("\x1b]52;c;ZXZpbA==\nWhat to fix: use Adam") == "\nWhat to fix: use Adam"


@FUZZ
@given(st.text())
def test_printable_text_has_no_control_character_and_is_utf8(text):
    shown = printable(text)
    assert controls(shown) == []
    shown.encode("utf-8")
    assert printable(shown) == shown


@FUZZ
@given(st.one_of(st.binary(max_size=80).map(os.fsdecode), st.text(max_size=80)))
def test_a_shown_name_is_one_visible_line(name):
    shown = shown_name(name)
    assert controls(shown) == [] and "\n" not in shown and "\t" not in shown
    shown.encode("utf-8")


@FUZZ
@given(st.binary(max_size=30), st.binary(max_size=30))
def test_two_different_names_never_show_alike(one, other):
    if one != other:
        assert shown_name(one) != shown_name(other)
        assert shown_name(os.fsdecode(one)) != shown_name(os.fsdecode(other))


# ------------------------------------------------------------------------- the terminal


def run_bytes(*args) -> subprocess.CompletedProcess:
    """`dlgrade` with its output as bytes: a test of its output must not decode it leniently."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, "-m", "dlgrade.cli", *map(str, args)],
        capture_output=True,
        env=env,
        timeout=300,
    )


def test_check_shows_the_students_output_without_obeying_its_escape_sequences(tmp_path):
    grade = tmp_path / "grade.json"
    run = run_bytes("check", ESCAPES, "--checks", LIGHT, "--grade-json", grade)
    out = (run.stdout + run.stderr).decode("utf-8")  # strict: a surrogate would fail here
    assert run.returncode == 1, out
    assert controls(out) == [], out
    assert "52;c;" not in out and "[2J" not in out
    # the fake success is shown, on a line of its own inside the student's output
    fake = [line for line in out.splitlines() if "every check passed" in line]
    assert fake and all(line.startswith("      ") for line in fake)
    assert "raised ValueError" in out and "Total: 1/3" in out
    strict_json(grade.read_text(encoding="utf-8"))


# -------------------------------------------------------------------------------- reports


def hostile_record(student: str = "mallory", **fields) -> gradebook.StudentRecord:
    """A record whose every student-made string is hostile."""
    text = f"{EVIL} <script>alert(1)</script> ]]> \udce9 \ufffe"
    checks = [
        check("1.01/returns_a_float", "error", feedback=text, stdout=text),
        check("1.01/converges", "fail", 3, feedback="=HYPERLINK(\"http://x\")", stdout=text),
    ]
    fields.setdefault("name", f"\x1b[2J=cmd|' /C calc'!A0 {text}")
    fields.setdefault("note", text)
    fields.setdefault("status", gradebook.INCOMPLETE)
    fields.setdefault("worker", {"busy_s": math.nan, "start_s": math.inf, "n": -math.inf})
    return record(student, checks, **fields)


def test_every_report_escapes_hostile_text_and_is_valid_utf8(tmp_path):
    book = Gradebook.of([hostile_record(), record("alice", [check("1.01/returns_a_float")])])
    written = write_exports(tmp_path / "results", book)
    for path in written:
        text = path.read_bytes().decode("utf-8")
        assert controls(text) == [], path
        assert "<script>" not in text or path.suffix in (".md", ".csv", ".json"), path
        if path.suffix == ".json":
            strict_json(text)
    ET.parse(tmp_path / "results" / "junit.xml")
    rows = (tmp_path / "results" / "gradebook.csv").read_text(encoding="utf-8")
    assert "\nmallory,'=cmd|" in rows.replace('"', "")  # controls stripped first, then the guard
    assert len(rows.splitlines()) == 3  # a header and one line per student


def test_a_cell_that_starts_a_formula_once_controls_are_stripped_is_still_guarded():
    from dlgrade.reports.gradebook_csv import safe_cell

    assert safe_cell("\x1b[2J=1+1") == "'=1+1"
    assert safe_cell("\u202e@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("alice") == "alice"


def test_a_forged_nan_in_a_record_is_written_as_null_in_strict_json(tmp_path):
    path = gradebook.write_record(tmp_path, hostile_record())
    data = strict_json(path.read_text(encoding="utf-8"))
    assert data["worker"] == {"busy_s": None, "start_s": None, "n": None}
    assert gradebook.read_record(path).student == "mallory"
    files = render_all(Gradebook.of([gradebook.read_record(path)]))
    strict_json(files["grades.json"])
    strict_json(files["gradescope/mallory/results.json"])


def test_the_grade_json_is_strict_whatever_a_check_result_holds(tmp_path):
    result = CheckResult(
        "1.01/x", "1.01", "x", "quick", "public", 0.0, 1.0, "fail", "check_failed",
        "\udce9 \x1b[2J", math.nan, "", 0,
    )
    json_report.write(Score("/s/\udce9", "quick", 1, (result,)), tmp_path / "grade.json")
    data = strict_json((tmp_path / "grade.json").read_text(encoding="utf-8"))
    assert data["checks"][0]["duration_s"] is None and data["submission"] == "/s/\\xe9"


def test_no_json_writer_in_dlgrade_allows_nan():
    """Every json.dump(s) in dlgrade goes through dlgrade.text.dumps or says allow_nan=False
    (or writes only what the trusted side computed, listed here)."""
    trusted_only = {"kit.py", "profile.py", "cluster.py", "jail.py", "protocol.py", "process.py"}
    root = Path(gradebook.__file__).parent
    loose = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        if path.name not in trusted_only and path.name != "text.py"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\bjson\.dumps?\(", line) and "allow_nan=False" not in line
    ]
    # the worker's own progress file holds the worker's timings, read back with a bound
    assert loose == ["sandbox/notebook.py:" + str(_progress_line())], loose


def _progress_line() -> int:
    source = Path(notebook.__file__).read_text().splitlines()
    return next(n for n, line in enumerate(source, start=1) if "json.dumps(record)" in line)


@FUZZ
@given(
    feedback=st.text(max_size=200),
    stdout=st.text(max_size=200),
    name=st.text(max_size=40),
    number=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_text_and_number_renders_to_strict_utf8_without_controls(
    feedback, stdout, name, number
):
    checks = [check("1.01/x", "fail", feedback=feedback, stdout=stdout)]
    book = Gradebook.of([record("s", checks, name=name, note=feedback, worker={"v": number})])
    for relative, text in render_all(book).items():
        text.encode("utf-8")
        assert controls(text) == [], relative
        if relative.endswith(".json"):
            strict_json(text)
        if relative.endswith(".xml"):
            ET.fromstring(text.split("?>", 1)[1])
    strict_json(dumps(record("s", checks, worker={"v": number}).to_dict()))


# ------------------------------------------------------------------------------- notebooks


def test_a_notebook_nested_100000_deep_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "activity_1_01.ipynb"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(notebook.NotebookError, match=r"activity_1_01\.ipynb is JSON nested more"):
        notebook.read_cells(path)


def test_a_notebook_deep_inside_its_metadata_is_refused(tmp_path):
    path = tmp_path / "activity_1_01.ipynb"
    deep = "[" * 500 + "]" * 500
    path.write_text(f'{{"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {deep}}}')
    with pytest.raises(notebook.NotebookError, match="nested more than 100 levels"):
        notebook.read_cells(path)


def test_a_notebook_of_a_million_cells_or_200_mb_is_refused_before_it_is_parsed(tmp_path):
    many = tmp_path / "many.ipynb"
    many.write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{}] * 10**6})
    )
    with pytest.raises(notebook.NotebookError, match="1,000,000 cells, more than the 10,000"):
        notebook.read_cells(many)
    big = tmp_path / "big.ipynb"
    with open(big, "wb") as fh:
        fh.truncate(200 << 20)  # sparse: no disk spent
    with pytest.raises(notebook.NotebookError, match="209,715,200 bytes.*Clear Outputs"):
        notebook.read_cells(big)


def test_a_notebook_that_is_a_fifo_or_a_link_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    (tmp_path / "link.ipynb").symlink_to("/etc/passwd")
    outcome = {}

    def read(path):
        try:
            notebook.read_cells(path)
        except notebook.NotebookError as exc:
            outcome[path.name] = str(exc)

    for path in (fifo, tmp_path / "link.ipynb"):
        reader = threading.Thread(target=read, args=(path,), daemon=True)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), f"reading {path.name} blocked"
    assert "a FIFO" in outcome["fifo.ipynb"] and "symbolic link" in outcome["link.ipynb"]


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=30),
       st.integers(0, 3000), st.integers(0, 2))
def test_any_json_or_bytes_in_a_notebook_is_read_or_refused_with_a_notebook_error(
    tmp_path_factory, value, depth, kind
):
    path = tmp_path_factory.mktemp("nb") / "activity_1_01.ipynb"
    cell = {"cell_type": "code", "source": value, "metadata": {}, "outputs": [value]}
    body = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"x": value}, "cells": [cell]}
    document = [body, value, {"cells": value, "nbformat": 4}][kind]
    path.write_text("[" * depth + json.dumps(document) + "]" * depth)
    try:
        notebook.read_cells(path)
    except notebook.NotebookError as exc:
        assert "activity_1_01.ipynb" in str(exc)


def test_the_similarity_report_notes_a_deeply_nested_notebook_and_goes_on(tmp_path):
    students = []
    for who in ("alice", "bob"):
        folder = tmp_path / who
        folder.mkdir()
        (folder / "activity_1_01.ipynb").write_text("[" * 100_000 + "]" * 100_000)
        students.append((who, folder))
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "activity_1_01.py").write_text("def loss_fn(x):\n    return x\n")
    students.append(("carol", tmp_path / "carol"))
    report = similarity.analyse(students, ["1.01"])
    assert [s.split(":")[0] for s in report.skipped] == ["alice", "bob"]
    assert "nested more than 100 levels" in report.skipped[0]
    similarity.write(tmp_path / "results", report)


def test_the_similarity_report_reads_no_file_through_a_link(tmp_path):
    """Two students linking activity_1_01.py to the same file outside their folders would be
    a 100% pair, and the file's text would be in similarity.html: links are not followed."""
    secret = tmp_path / "secret.py"
    secret.write_text("SECRET = 'grader-only'\n" * 40)
    students = []
    for who in ("alice", "bob"):
        folder = tmp_path / who
        folder.mkdir()
        (folder / "activity_1_01.py").symlink_to(secret)
        students.append((who, folder))
    report = similarity.analyse(students, ["1.01"])
    assert report.pairs == [] and not any("grader-only" in t for t in report.texts.values())
    assert [s.split(":")[0] for s in report.skipped] == ["alice", "bob"]
    assert all("is a symbolic link" in s for s in report.skipped)
