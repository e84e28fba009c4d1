"""Any name a file system or a zip can hold is graded: every student keeps one row, every
name is shown escaped, and nothing is written outside results/."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlgrade import gradebook
from dlgrade.classrun import lms, roster
from dlgrade.gradebook import Gradebook, safe_id
from dlgrade.reports.exports import write_exports
from dlgrade.text import BIDI_CONTROLS
from tests.helpers import LIGHT, check, good_code

FUZZ_EXAMPLES = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 25
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MODULE = "activity_1_01.py"

#: folder names as bytes: not UTF-8, a newline, escape sequences, a bidi override, the
#: longest a file system holds, and names that collide once cleaned, by case or by NFC/NFD
HOSTILE_FOLDERS = [
    b"r\xe9sum\xe9",
    "résumé".encode(),
    unicodedata.normalize("NFD", "résumé").encode(),
    b"Alice",
    b"alice",
    b"a\nb",
    b"\x1b[2J\x1b]52;c;ZXZpbA==\x07x",
    "\u202eevil".encode(),
    b"x" * 255,
    b"x" * 254 + b"y",
    b"\xff" * 255,
    b"-2+3",
    b"=cmd|' /C calc'!A0",
    b"student",
]


def controls(text: str) -> list[str]:
    return [
        c
        for c in text
        if c not in "\n\t"
        and (unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS or "\ud800" <= c <= "\udfff")
    ]


def strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def make_folders(root: Path, names: list[bytes], *, code: str = "x = 1\n") -> list[Path]:
    folders = []
    for name in names:
        folder = Path(os.fsdecode(os.fsencode(root) + b"/" + name))
        folder.mkdir(parents=True)
        (folder / MODULE).write_text(code)
        folders.append(folder)
    return folders


def assert_results_are_safe(out: Path) -> None:
    """Every file under ``out`` is inside it, valid UTF-8 without control characters, and
    every JSON among them strict."""
    root = out.resolve()
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(root), path
        if not path.is_file() or ".lms" in path.parts or ".run" in path.parts:
            continue
        text = path.read_bytes().decode("utf-8")  # strict
        assert controls(text) == [], path
        if path.suffix == ".json":
            strict_json(text)


# ----------------------------------------------------------------------- keys and rows


def test_a_file_whose_name_is_not_utf8_is_hashed_into_the_key(tmp_path):
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / MODULE).write_text("x = 1\n")
    for name in (b"r\xe9sum\xe9.py", b"a\nb.txt", b"\x1b[2J.txt"):
        Path(os.fsdecode(os.fsencode(folder) + b"/" + name)).write_bytes(b"notes\n")
    before = roster.files_digest(folder)
    Path(os.fsdecode(os.fsencode(folder) + b"/r\xe9sum\xe9.py")).write_bytes(b"changed\n")
    assert roster.files_digest(folder) != before


def test_folders_that_clean_to_one_id_each_keep_a_distinct_file_safe_id(tmp_path):
    make_folders(tmp_path, HOSTILE_FOLDERS)
    found = roster.find_students(tmp_path)
    assert len(found) == len(HOSTILE_FOLDERS)
    ids = [student for student, _, _ in found]
    assert len({i.casefold() for i in ids}) == len(ids)  # distinct on a case-blind disk too
    for student, folder, name in found:
        assert safe_id(student) == student and len(student) <= 100
        assert folder.is_dir()
        assert controls(name) == [] and "\n" not in name
        name.encode("utf-8")
    names = {os.fsencode(folder.name): name for _, folder, name in found}
    assert names[b"r\xe9sum\xe9"] == "r\\xe9sum\\xe9" and names[b"a\nb"] == "a\\nb"
    assert names[b"Alice"] == ""  # an id that is the folder's own name needs no display name
    assert names[b"alice"] == "alice"  # its id had to change: "alice-" and a hash


def test_ids_are_the_same_in_every_run(tmp_path):
    make_folders(tmp_path, HOSTILE_FOLDERS)
    assert roster.find_students(tmp_path) == roster.find_students(tmp_path)


def test_export_names_derived_from_students_stay_under_results_and_are_distinct(tmp_path):
    students = ["../x", "a/b", "a_b", "..", "", "\udce9", "A_B", "x" * 300, "/etc/passwd"]
    records = [
        gradebook.StudentRecord(
            student=s, folder="/f", status="graded", key="k", tier="quick",
            rubric_version="1", seed=1, activities=("1.01",),
            checks=(check("1.01/x", "fail", feedback="f"),),
        )
        for s in students
    ]
    out = tmp_path / "results"
    written = write_exports(out, Gradebook.of(records))
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written)
    assert len(list((out / "feedback").glob("*.html"))) == len(students)
    assert len(list((out / "gradescope").glob("*/results.json"))) == len(students)
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert not (tmp_path / "x").exists() and not (tmp_path / "feedback").exists()
    assert_results_are_safe(out)
    links = re.findall(r'href="(feedback/[^"]+)"', summary)
    assert links and all((out / unquote(link)).is_file() for link in links)


def test_a_class_with_hostile_names_is_graded_with_every_export(tmp_path):
    """One real run, the light rubric (no TensorFlow): every student graded, one row each."""
    names = [b"r\xe9sum\xe9", b"a\nb", b"Alice", b"alice", "José".encode(),
             unicodedata.normalize("NFD", "José").encode(), b"\x1b[2Jx", b"y" * 255]
    source = tmp_path / "submissions"
    folders = make_folders(source, names, code=good_code())
    Path(os.fsdecode(os.fsencode(folders[2]) + b"/notes \xe9\n.txt")).write_bytes(b"hi\n")
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, "-m", "dlgrade.cli", "grade", str(source), "--out", str(out),
         "--checks", str(LIGHT), "--call-timeout", "5"],
        capture_output=True, env=env, timeout=600,
    )
    said = (run.stdout + run.stderr).decode("utf-8")  # strict: no surrogate reached the terminal
    assert run.returncode == 0, said
    assert controls(said) == [], said
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(names)
    assert {r["status"] for r in rows} == {"graded"} and {r["total"] for r in rows} == {"3"}
    shown = {r["name"] for r in rows}
    assert {"r\\xe9sum\\xe9", "a\\nb"} <= shown
    assert len(list((out / "feedback").glob("*.html"))) == len(names)
    assert_results_are_safe(out)
    again = subprocess.run(  # a re-run keeps every one of them: the keys are stable
        [sys.executable, "-m", "dlgrade.cli", "grade", str(source), "--out", str(out),
         "--checks", str(LIGHT)],
        capture_output=True, env=env, timeout=600,
    )
    assert b"8 student(s) unchanged" in again.stdout, again.stdout


# -------------------------------------------------------------------------------- LMS zips


def raw_zip(path: Path, entries: list[tuple[bytes, bytes, bool]]) -> Path:
    """A stored zip whose entry names are exactly these bytes, each with the UTF-8 flag
    (bit 11) as given: what Windows tools and old LMS exports write, which zipfile cannot."""
    body, central = bytearray(), bytearray()
    for name, content, utf8 in entries:
        flags, crc, size = 0x800 if utf8 else 0, zlib.crc32(content), len(content)
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, 33, crc, size, size,
                            len(name), 0) + name + content
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x314, 20, flags, 0, 0, 33,
                               crc, size, size, len(name), 0, 0, 0, 0, 0o100644 << 16,
                               offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                      len(body), 0)
    path.write_bytes(bytes(body + central + end))
    return path


def test_lms_entries_named_in_cp437_or_latin1_are_mapped_to_their_students(tmp_path):
    code = good_code().encode()
    archive = raw_zip(tmp_path / "export.zip", [
        (b"smith_101_1_activity_1_01.py", code, False),
        (b"jos\x82_102_2_activity_1_01.py", code, False),  # cp437 é (a Windows zip)
        (b"ren\xe9e_103_3_activity_1_01.py", code, False),  # Latin-1 é, read as cp437
        (b"m\xfcller_104/activity_1_01.py", code, False),
        (b"m\xfcller_104/r\xe9sum\xe9.txt", b"cv\n", False),
    ])
    imported = lms.unpack(archive, tmp_path / "dest")
    assert [s.student for s in imported.students] == ["101", "102", "103", "104"]
    assert imported.unmapped == ()
    assert [s.name for s in imported.students][:2] == ["smith", "josé"]
    assert (imported.students[3].folder / MODULE).is_file()
    strict_json((tmp_path / "dest" / lms.MANIFEST).read_text(encoding="utf-8"))


def test_two_user_ids_in_another_scripts_digits_are_not_merged_into_one_student(tmp_path):
    archive = raw_zip(tmp_path / "export.zip", [
        ("a_١٢٣_1_activity_1_01.py".encode(), b"x = 1\n", True),
        ("b_٤٥٦_2_activity_1_01.py".encode(), b"x = 2\n", True),
    ])
    imported = lms.unpack(archive, tmp_path / "dest")
    assert imported.students == ()  # neither is a Canvas user id: both reported, none merged
    assert len(imported.unmapped) == 2
    assert all("not a Canvas submission name" in why for _, why in imported.unmapped)


def test_an_export_whose_names_claim_utf8_but_are_not_is_refused_plainly(tmp_path):
    archive = raw_zip(tmp_path / "export.zip", [(b"s_1_1_r\xe9sum\xe9.py", b"x\n", True)])
    with pytest.raises(lms.LmsError, match="damaged zip archive.*download the submissions again"):
        lms.unpack(archive, tmp_path / "dest")


def test_a_students_own_zip_with_such_names_is_skipped_for_that_student_only(tmp_path):
    inner = raw_zip(tmp_path / "inner.zip", [(b"r\xe9sum\xe9.py", b"x\n", True)]).read_bytes()
    archive = raw_zip(tmp_path / "export.zip", [
        (b"s_1_1_work.zip", inner, False),
        (b"t_2_2_activity_1_01.py", b"x = 1\n", False),
    ])
    imported = lms.unpack(archive, tmp_path / "dest")
    assert [s.student for s in imported.students] == ["1", "2"]
    ((entry, why),) = imported.unmapped
    assert entry == "s_1_1_work.zip" and "cannot be opened as one" in why


def test_a_display_name_with_controls_or_a_bidi_override_is_shown_escaped(tmp_path):
    archive = raw_zip(tmp_path / "export.zip", [
        ("\u202eevil\x85_7_1_activity_1_01.py".encode(), b"x = 1\n", True),
    ])
    (student,) = lms.unpack(archive, tmp_path / "dest").students
    assert student.name == "\\u202eevil\\u0085"


# ------------------------------------------------------------------------------- fuzzing

#: a name a file system can hold: no "/" or NUL, not "." or "..", and not hidden (find_students
#: skips folders starting with "." or "_", as the OS's and tools' own)
folder_names = st.binary(min_size=1, max_size=255).filter(
    lambda b: b"/" not in b and b"\0" not in b and not b.startswith((b".", b"_"))
) | st.text(min_size=1, max_size=60).map(str.encode).filter(
    lambda b: len(b) <= 255 and b"/" not in b and b"\0" not in b and not b.startswith((b".", b"_"))
)


@FUZZ
@given(names=st.lists(folder_names, min_size=1, max_size=6, unique=True),
       files=st.lists(folder_names, max_size=3, unique=True),
       text=st.text(max_size=80))
def test_any_folder_names_each_get_one_row_and_safe_exports(tmp_path_factory, names, files, text):
    """Property: roster → keys → records → gradebook → every export, for any names."""
    root = tmp_path_factory.mktemp("class")
    source = root / "submissions"
    folders = make_folders(source, names)
    for name in files:  # student files with hostile names too
        if name != MODULE.encode():
            Path(os.fsdecode(os.fsencode(folders[0]) + b"/" + name)).write_bytes(b"x\n")
    found = roster.find_students(source)
    assert len(found) == len(names)
    out = root / "results"
    plan = roster.Roster(str(out), "run", "quick", 1, "v", ("1.01",))
    for student, folder, name in found:
        key = roster.files_digest(folder)
        record = plan.record(
            roster.Student(student, str(folder), key=key, name=name),
            status=gradebook.GRADED,
            checks=(check("1.01/x", "fail", feedback=text, stdout=text),),
        )
        gradebook.write_record(out, record)
    records = gradebook.load_records(out)
    assert sorted(r.student for r in records) == sorted(s for s, _, _ in found)
    write_exports(out, Gradebook.of(records))
    book = list(csv.DictReader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8"))))
    assert len(book) == len(names)
    assert_results_are_safe(out)


zip_names = st.binary(min_size=1, max_size=60) | st.builds(
    lambda name, uid, rest: f"{name}_{uid}_1_{rest}".encode("utf-8", "surrogatepass"),
    st.text(max_size=8), st.integers(0, 5), st.text(min_size=1, max_size=20),
)


@FUZZ
@given(entries=st.lists(st.tuples(zip_names, st.binary(max_size=50), st.booleans()),
                        min_size=1, max_size=8))
def test_any_zip_entry_names_unpack_inside_dest_or_fail_as_lms_error(tmp_path_factory, entries):
    root = tmp_path_factory.mktemp("zip")
    archive = raw_zip(root / "export.zip", entries)
    dest = root / "results" / "submissions"
    try:
        imported = lms.unpack(archive, dest)
    except lms.LmsError as exc:
        str(exc).encode("utf-8")
        return
    for student in imported.students:
        assert student.folder.is_dir() and safe_id(student.student) == student.student
        assert controls(student.name) == []
    assert len(imported.students) + len(imported.unmapped) <= len(entries) + 8
    for path in root.rglob("*"):
        assert path in (archive, dest.parent) or path.is_relative_to(dest), path
    strict_json((dest / lms.MANIFEST).read_text(encoding="utf-8"))


def test_a_students_zip_over_the_per_student_budgets_is_skipped_for_them_only(
    tmp_path, monkeypatch
):
    many = raw_zip(tmp_path / "many.zip", [(b"f%d.py" % i, b"x", False) for i in range(1_001)])
    big = raw_zip(tmp_path / "big.zip", [(b"data.csv", b"y" * 300, False)])
    archive = raw_zip(tmp_path / "export.zip", [
        (b"a_1_1_work.zip", many.read_bytes(), False),
        (b"b_2_2_work.zip", big.read_bytes(), False),
        (b"c_3_3_activity_1_01.py", b"x = 1\n", False),
    ])
    monkeypatch.setattr(lms, "MAX_STUDENT_BYTES", 200)
    imported = lms.unpack(archive, tmp_path / "dest")
    assert [s.student for s in imported.students] == ["1", "2", "3"]
    why = dict(imported.unmapped)
    assert "1,001 entries, more than the 1,000 files one student" in why["a_1_1_work.zip"]
    assert "declaring 300 bytes uncompressed, more than the 200" in why["b_2_2_work.zip"]
    assert imported.students[2].files == (MODULE,)
