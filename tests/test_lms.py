"""Unpacking an LMS export: Canvas names, student folders, and an attacker's zip."""

from __future__ import annotations

import io
import json
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlgrade.classrun.lms import (
    MANIFEST,
    MARKER,
    LmsError,
    LmsImport,
    is_archive,
    unpack,
)
from dlgrade.errors import DlgradeError

Entries = list[tuple[str, bytes | str]]


def make_zip(path: Path, entries: Entries, method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip at ``path`` holding ``entries`` (name, content) in order, as zipfile writes them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of some tests
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, content in entries:
                zf.writestr(name, content)
    return path


def zip_bytes(entries: Entries) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries:
            zf.writestr(name, content)
    return buffer.getvalue()


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative and "/"-separated."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def by_id(imported: LmsImport) -> dict[str, object]:
    return {s.student: s for s in imported.students}


def reasons(imported: LmsImport) -> dict[str, str]:
    return dict(imported.unmapped)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "submissions.zip"


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "results" / ".lms" / "submissions"


def test_canvas_names_map_to_one_folder_per_lms_user_id(archive: Path, dest: Path) -> None:
    make_zip(
        archive,
        [
            ("smithjane_12345_900_activity_1_01.py", "jane = 1\n"),
            ("smithjane_12345_901_activity_1_02.py", "jane = 2\n"),
            ("doejohn_777_902_activity_1_01.py", "john = 1\n"),
        ],
    )
    imported = unpack(archive, dest)
    assert imported.root == dest
    assert [s.student for s in imported.students] == ["12345", "777"]
    jane = by_id(imported)["12345"]
    assert (jane.name, jane.lms_id, jane.folder) == ("smithjane", "12345", dest / "12345")
    assert jane.files == ("activity_1_01.py", "activity_1_02.py")
    assert (jane.folder / "activity_1_02.py").read_text() == "jane = 2\n"
    assert imported.unmapped == ()


def test_late_work_and_a_resubmission_keep_the_latest_upload(archive: Path, dest: Path) -> None:
    make_zip(
        archive,
        [
            ("smithjane_12345_100_activity_1_01.py", "first\n"),
            ("smithjane_LATE_12345_300_activity_1_01-2.py", "third\n"),
            ("smithjane_12345_200_activity_1_01-1.py", "second\n"),
            ("smithjane_LATE_12345_150_activity_2_01.py", "late\n"),
        ],
    )
    imported = unpack(archive, dest)
    (jane,) = imported.students
    assert jane.files == ("activity_1_01.py", "activity_2_01.py")
    assert (jane.folder / "activity_1_01.py").read_text() == "third\n"
    assert (jane.folder / "activity_2_01.py").read_text() == "late\n"
    assert [entry for entry, _ in imported.unmapped] == [
        "smithjane_12345_100_activity_1_01.py",
        "smithjane_12345_200_activity_1_01-1.py",
    ]
    for _, why in imported.unmapped:
        assert "earlier upload of activity_1_01.py" in why
        assert "smithjane_LATE_12345_300_activity_1_01-2.py" in why


def test_only_a_dash_number_right_before_the_extension_is_stripped(
    archive: Path, dest: Path
) -> None:
    make_zip(
        archive,
        [
            ("smithjane_1_10_notes-1", "a"),
            ("smithjane_1_11_model-v2.py", "b"),
            ("smithjane_1_12_data-3.csv", "c"),
            ("smithjane_1_13_-4.py", "d"),
        ],
    )
    (jane,) = unpack(archive, dest).students
    assert jane.files == ("-4.py", "data.csv", "model-v2.py", "notes-1")


def test_per_student_folders_keep_their_relative_paths(archive: Path, dest: Path) -> None:
    make_zip(
        archive,
        [
            ("Jane Smith_12345_assignsubmission_file_/activity_1_01.py", "a"),
            ("Jane Smith_12345_assignsubmission_file_/data/sub/notes.txt", "b"),
            ("doejohn_777/activity_1_01-1.py", "c"),
        ],
    )
    imported = unpack(archive, dest)
    jane, john = by_id(imported)["12345"], by_id(imported)["777"]
    assert (jane.name, jane.lms_id) == ("Jane Smith", "12345")
    assert jane.files == ("activity_1_01.py", "data/sub/notes.txt")
    assert (jane.folder / "data" / "sub" / "notes.txt").read_text() == "b"
    assert john.files == ("activity_1_01-1.py",)  # only Canvas's flat names are renamed


def test_an_export_zipped_again_inside_one_folder_is_read_through_that_folder(
    archive: Path, dest: Path
) -> None:
    make_zip(
        archive,
        [
            ("submissions/", ""),
            ("submissions/smithjane_1_2_activity_1_01-1.py", "a"),
            ("submissions/doejohn_7/b.py", "b"),
            ("__MACOSX/submissions/._doejohn_7", "meta"),
        ],
    )
    imported = unpack(archive, dest)
    assert [(s.student, s.files) for s in imported.students] == [
        ("1", ("activity_1_01.py",)),
        ("7", ("b.py",)),
    ]
    assert [entry for entry, _ in imported.unmapped] == ["__MACOSX/submissions/._doejohn_7"]


def test_an_export_of_one_student_folder_is_not_taken_for_a_wrapper(
    archive: Path, dest: Path
) -> None:
    make_zip(archive, [("smithjane_1/a.py", "a"), ("smithjane_1/b/c.py", "c")])
    (jane,) = unpack(archive, dest).students
    assert (jane.student, jane.files) == ("1", ("a.py", "b/c.py"))


def test_entries_that_match_nothing_are_reported_in_zip_order_with_a_reason(
    archive: Path, dest: Path
) -> None:
    make_zip(
        archive,
        [
            ("README.txt", "read me"),
            ("__MACOSX/smithjane_1_2_a.py", "x"),
            ("smithjane_1_2_a.py", "a"),
            ("smithjane_1_3_.DS_Store", "x"),
            ("smithjane_activity_1_01.py", "no id"),
            ("loose/activity_1_01.py", "no student folder"),
            ("emptyfolder/", ""),
        ],
    )
    imported = unpack(archive, dest)
    assert [entry for entry, _ in imported.unmapped] == [
        "README.txt",
        "__MACOSX/smithjane_1_2_a.py",
        "smithjane_1_3_.DS_Store",
        "smithjane_activity_1_01.py",
        "loose/activity_1_01.py",
    ]
    why = reasons(imported)
    assert "not a Canvas submission name" in why["README.txt"]
    assert "rename it to name_userid_" in why["README.txt"]
    assert "metadata" in why["__MACOSX/smithjane_1_2_a.py"]
    assert "metadata" in why["smithjane_1_3_.DS_Store"]
    assert "not a Canvas submission name" in why["smithjane_activity_1_01.py"]
    assert "'loose' does not start with name_userid" in why["loose/activity_1_01.py"]
    assert all("\n" not in w for w in why.values())
    assert [s.files for s in imported.students] == [("a.py",)]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.py",
        "/abs.py",
        "a/../../x.py",
        "smithjane_1/../../x.py",
        "smithjane_1_2_x/../../../x.py",
        "..\\evil.py",
        "smithjane_1\\..\\..\\x.py",
        "C:\\evil.py",
        "C:evil.py",
        "\\\\server\\share\\evil.py",
        "smithjane_1_2_..",
    ],
)
def test_a_name_that_climbs_out_is_refused_and_nothing_lands_outside_dest(
    tmp_path: Path, archive: Path, dest: Path, name: str
) -> None:
    make_zip(archive, [(name, "evil"), ("smithjane_1_2_ok.py", "ok")])
    imported = unpack(archive, dest)
    assert [entry for entry, _ in imported.unmapped] == [name]
    assert "refused" in imported.unmapped[0][1]
    outside = {p for p in tree(tmp_path) if not p.startswith("results")}
    assert outside == {"submissions.zip"}
    assert {p.name for p in dest.rglob("*") if p.is_file()} == {"ok.py", MANIFEST, MARKER}


def test_a_symlink_entry_is_refused_not_written(archive: Path, dest: Path) -> None:
    link = zipfile.ZipInfo("smithjane_1_2_activity_1_01.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(link, "/etc/passwd")
        zf.writestr("smithjane_1_3_activity_1_02.py", "ok")
    imported = unpack(archive, dest)
    assert reasons(imported) == {
        "smithjane_1_2_activity_1_01.py": (
            "a symbolic link; only regular files are imported (a link could point anywhere)"
        )
    }
    (jane,) = imported.students
    assert jane.files == ("activity_1_02.py",)
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_more_entries_than_max_entries_raise_lms_error(archive: Path, dest: Path) -> None:
    make_zip(archive, [(f"s_{i}_{i}_a.py", "x") for i in range(11)])
    with pytest.raises(LmsError, match=r"holds 11 entries, more than max_entries=10"):
        unpack(archive, dest, max_entries=10)
    assert not dest.exists()


def test_more_total_bytes_than_max_total_bytes_raise_lms_error(archive: Path, dest: Path) -> None:
    make_zip(archive, [("a_1_1_a.py", "x" * 600), ("b_2_2_b.py", "y" * 600)])
    with pytest.raises(LmsError, match=r"1,200 bytes, more than max_total_bytes=1,000"):
        unpack(archive, dest, max_total_bytes=1000)


def test_one_oversized_entry_is_skipped_and_the_rest_is_written(archive: Path, dest: Path) -> None:
    make_zip(archive, [("a_1_1_big.py", "x" * 5000), ("a_1_2_small.py", "y")])
    imported = unpack(archive, dest, max_file_bytes=1000)
    (student,) = imported.students
    assert student.files == ("small.py",)
    assert (
        "5,000 bytes uncompressed, over max_file_bytes=1,000" in reasons(imported)["a_1_1_big.py"]
    )


def test_a_highly_compressed_entry_is_skipped_as_a_bomb(archive: Path, dest: Path) -> None:
    make_zip(archive, [("a_1_1_bomb.py", b"\0" * (2 << 20)), ("a_1_2_ok.py", b"\0" * 4096)])
    imported = unpack(archive, dest)
    (student,) = imported.students
    assert student.files == ("ok.py",)  # small files may compress well: no ratio cap below 1 MiB
    assert "over max_ratio=200 (a zip bomb?)" in reasons(imported)["a_1_1_bomb.py"]


def test_a_header_that_understates_the_size_is_caught_as_damage(archive: Path, dest: Path) -> None:
    make_zip(archive, [("a_1_1_big.py", "x" * 5000)], method=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    struct.pack_into("<I", data, 22, 10)  # local header: uncompressed size
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, 10)  # central directory
    archive.write_bytes(bytes(data))
    with pytest.raises(LmsError, match=r"'a_1_1_big.py' is damaged .*download the submissions"):
        unpack(archive, dest, max_file_bytes=1000)
    assert tree(dest) == {MARKER}


def lie_about_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every entry inflates to 5,000 bytes, whatever its header says."""
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: io.BytesIO(b"x" * 5000))


def test_the_file_cap_counts_inflated_bytes_not_the_header(
    archive: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_zip(archive, [("a_1_1_small.py", "10 bytes..")])
    lie_about_sizes(monkeypatch)
    imported = unpack(archive, dest, max_file_bytes=1000)
    assert imported.students[0].files == ()
    assert "over max_file_bytes=1,000" in reasons(imported)["a_1_1_small.py"]
    assert not (dest / "1" / "small.py").exists()


def test_the_total_cap_counts_inflated_bytes_and_leaves_no_half_import(
    archive: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_zip(archive, [("a_1_1_one.py", "tiny"), ("b_2_2_two.py", "tiny")])
    lie_about_sizes(monkeypatch)
    with pytest.raises(LmsError, match=r"'b_2_2_two.py' takes the export past max_total_bytes"):
        unpack(archive, dest, max_total_bytes=8000)
    assert tree(dest) == {MARKER}


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"this is not a zip at all\n", r"not a zip archive .*pass the zip your LMS"),
        (lambda data: data[: len(data) // 2], r"not a zip archive .*download cut short"),
        (lambda data: data.replace(b"PK\x01\x02", b"PK\x09\x09"), r"a damaged zip archive"),
    ],
    ids=["not-a-zip", "truncated", "bad-central-directory"],
)
def test_an_archive_that_is_not_a_sound_zip_raises_lms_error_naming_the_fix(
    archive: Path, dest: Path, damage, message: str
) -> None:
    make_zip(archive, [("a_1_1_a.py", "x" * 1000), ("b_2_2_b.py", "y" * 1000)])
    archive.write_bytes(damage(archive.read_bytes()))
    with pytest.raises(LmsError, match=message) as caught:
        unpack(archive, dest)
    assert isinstance(caught.value, DlgradeError)
    assert str(caught.value).startswith(str(archive))
    assert not dest.exists()


def test_a_damaged_entry_raises_lms_error_not_a_traceback(archive: Path, dest: Path) -> None:
    text = "".join(f"line {i} of the student's code\n" for i in range(500))
    make_zip(archive, [("a_1_1_a.py", text)])
    data = bytearray(archive.read_bytes())
    start = 30 + len("a_1_1_a.py")
    for offset in range(start + 20, start + 40):
        data[offset] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(LmsError, match=r"entry 'a_1_1_a.py' is damaged"):
        unpack(archive, dest)


def test_a_students_zip_is_unpacked_one_level_into_their_folder(archive: Path, dest: Path) -> None:
    their_zip = zip_bytes(
        [
            ("my work/activity_1_01.py", "zipped"),
            ("my work/data/notes.txt", "notes"),
            ("my work/inner.zip", zip_bytes([("deeper.py", "x")])),
            ("__MACOSX/my work/._activity_1_01.py", "meta"),
            ("my work/../../escape.py", "evil"),
        ]
    )
    make_zip(
        archive,
        [
            ("smithjane_12345_100_work.zip", their_zip),
            ("doejohn_777/sub/theirs.zip", zip_bytes([("a.py", "john")])),
        ],
    )
    imported = unpack(archive, dest)
    jane, john = by_id(imported)["12345"], by_id(imported)["777"]
    assert jane.files == ("activity_1_01.py", "data/notes.txt")  # the zip's own folder dropped
    assert (jane.folder / "activity_1_01.py").read_text() == "zipped"
    assert john.files == ("sub/a.py",)
    why = reasons(imported)
    assert "only one level is unpacked" in why["smithjane_12345_100_work.zip::my work/inner.zip"]
    assert "metadata" in why["smithjane_12345_100_work.zip::__MACOSX/my work/._activity_1_01.py"]
    assert "'..'" in why["smithjane_12345_100_work.zip::my work/../../escape.py"]
    assert not (dest / ".lms-nested").exists()


def test_a_damaged_zip_from_a_student_is_reported_and_the_others_are_graded(
    archive: Path, dest: Path
) -> None:
    make_zip(archive, [("a_1_1_work.zip", "not a zip"), ("b_2_2_b.py", "fine")])
    imported = unpack(archive, dest)
    assert [(s.student, s.files) for s in imported.students] == [("1", ()), ("2", ("b.py",))]
    assert (dest / "1").is_dir()  # the student is still graded: their files are missing
    assert "cannot be opened as one" in reasons(imported)["a_1_1_work.zip"]


def test_a_students_zip_counts_toward_max_entries_and_over_it_is_skipped_for_them(
    archive: Path, dest: Path
) -> None:
    """A student's own zip is theirs: over the export's budget it is skipped and reported
    for that student; the others are imported (it used to fail the whole export)."""
    their_zip = zip_bytes([(f"f{i}.py", "x") for i in range(20)])
    make_zip(archive, [("a_1_1_work.zip", their_zip), ("b_2_2_activity_1_01.py", "x = 1")])
    imported = unpack(archive, dest, max_entries=10)
    assert [s.student for s in imported.students] == ["1", "2"]
    assert "a zip of 20 entries, more than what is left of max_entries=10" in reasons(imported)[
        "a_1_1_work.zip"
    ]


def test_a_file_that_is_also_a_folder_keeps_the_latest_upload(archive: Path, dest: Path) -> None:
    make_zip(
        archive,
        [
            ("a_1/data", "old file"),
            ("a_1_5_work.zip", zip_bytes([("data/x", "new"), ("y.py", "")])),
        ],
    )
    imported = unpack(archive, dest)
    assert imported.students[0].files == ("data/x", "y.py")
    assert "both a file and a folder" in reasons(imported)["a_1/data"]


def test_unpacking_the_same_zip_twice_gives_the_same_result(archive: Path, dest: Path) -> None:
    make_zip(
        archive,
        [
            ("smithjane_12345_100_activity_1_01.py", "a"),
            ("smithjane_12345_101_activity_1_01-1.py", "b"),
            ("README.txt", "c"),
        ],
    )
    first = unpack(archive, dest)
    manifest = (dest / MANIFEST).read_bytes()
    (dest / "12345" / "stale.py").write_text("from an earlier run")
    (dest / "999").mkdir()
    second = unpack(archive, dest)
    assert second == first
    assert (dest / MANIFEST).read_bytes() == manifest
    assert tree(dest) == {MARKER, MANIFEST, "12345", "12345/activity_1_01.py"}


def test_a_folder_that_is_not_an_earlier_import_is_never_cleared(
    archive: Path, tmp_path: Path
) -> None:
    make_zip(archive, [("a_1_1_a.py", "x")])
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(LmsError, match=r"not empty and not an earlier LMS import"):
        unpack(archive, precious)
    assert tree(precious) == {"chapter1.tex"}


def test_the_manifest_records_students_sources_and_unmapped_entries(
    archive: Path, dest: Path
) -> None:
    make_zip(archive, [("smithjane_12345_100_activity_1_01-1.py", "a"), ("README.txt", "b")])
    imported = unpack(archive, dest)
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["archive"] == "submissions.zip"
    assert manifest["caps"]["max_file_bytes"] == 100 * 2**20
    assert manifest["students"] == [
        {
            "student": "12345",
            "name": "smithjane",
            "lms_id": "12345",
            "folder": "12345",
            "files": ["activity_1_01.py"],
            "sources": {"activity_1_01.py": "smithjane_12345_100_activity_1_01-1.py"},
        }
    ]
    assert manifest["unmapped"] == [{"entry": "README.txt", "why": imported.unmapped[0][1]}]


def test_files_are_regular_with_mode_0644_and_no_temporary_names_remain(
    archive: Path, dest: Path
) -> None:
    executable = zipfile.ZipInfo("a_1_1_run.sh")
    executable.create_system = 3
    executable.external_attr = (stat.S_IFREG | 0o4777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(executable, "#!/bin/sh\n")
        zf.writestr("a_1/deep/er/file.py", "x")
    unpack(archive, dest)
    files = [p for p in (dest / "1").rglob("*") if not p.is_dir()]
    assert sorted(p.name for p in files) == ["file.py", "run.sh"]
    assert all(stat.S_IMODE(p.lstat().st_mode) == 0o644 for p in files)
    assert not [p for p in dest.rglob("*") if p.name.endswith((".part", ".tmp"))]


def test_is_archive_accepts_only_a_regular_zip_file(tmp_path: Path, archive: Path) -> None:
    make_zip(archive, [("a_1_1_a.py", "x")])
    (tmp_path / "notes.txt").write_text("not a zip")
    assert is_archive(archive)
    assert not is_archive(tmp_path / "notes.txt")
    assert not is_archive(tmp_path)
    assert not is_archive(tmp_path / "missing.zip")


_PIECES = st.sampled_from(
    ["..", ".", "", "/", "\\", "../", "..\\", "C:", "a", "b.py", "__MACOSX", "smithjane_12"]
)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
_RAW = st.lists(st.one_of(_PIECES, _TEXT), min_size=1, max_size=6).map("".join)
_NAMES = st.one_of(
    _RAW,
    _RAW.map(lambda n: "smithjane_12_34_" + n),
    _RAW.map(lambda n: "smithjane_12/" + n),
).filter(lambda name: name.split("\x00")[0])  # zipfile cuts a name at NUL


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_NAMES, min_size=1, max_size=6))
def test_every_written_file_resolves_inside_dest_whatever_the_names(
    tmp_path_factory: pytest.TempPathFactory, names: list[str]
) -> None:
    root = tmp_path_factory.mktemp("names")
    archive, dest = root / "s.zip", root / "out"
    make_zip(archive, [(name, "x") for name in names])
    imported = unpack(archive, dest)
    inside = dest.resolve()
    for path in root.rglob("*"):
        assert path == archive or path.resolve().is_relative_to(inside), path
        assert not path.is_symlink()
    for student in imported.students:
        for name in student.files:
            written = student.folder / name
            assert written.is_file() and written.resolve().is_relative_to(inside)
