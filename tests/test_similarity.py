"""The similarity report: planted copies are flagged, independent solutions are not."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from dlgrade.rubric import ACTIVITIES
from tests.helpers import LIGHT, REFERENCE, dlgrade
from tests.notebooks import as_student_notebook
from tests.planted import HONEST, VARIANTS, calibration_class, disguise

similarity = pytest.importorskip("dlgrade.similarity")
pytest.importorskip("copydetect", reason='the similarity extra: pip install ".[similarity]"')

ALL = list(ACTIVITIES)


def scores(report) -> dict[tuple[str, frozenset], float]:
    return {(p.activity, frozenset({p.a, p.b})): p.score for p in report.pairs}


def folders(root: Path) -> list[tuple[str, Path]]:
    return sorted((p.name, p) for p in root.iterdir() if p.is_dir())


def test_planted_copies_are_flagged_and_independent_solutions_are_not(tmp_path):
    copies = calibration_class(tmp_path / "class")
    report = similarity.analyse(folders(tmp_path / "class"), ALL, threshold=0.0)
    found = scores(report)
    threshold = similarity.DEFAULT_THRESHOLD
    for activity in ALL:
        for pair in copies[activity]:  # renamed, reordered, recommented, one function new
            assert found.get((activity, pair), 0) >= threshold, (activity, sorted(pair))
        honest = [frozenset(p) for p in itertools.combinations(HONEST, 2)]
        honest += [frozenset({f"copy-of-{a}", b}) for a in HONEST for b in HONEST if a != b]
        for pair in honest:  # written independently (the copy's original is another author)
            assert found.get((activity, pair), 0) < threshold, (activity, sorted(pair))


def test_the_reference_disguised_is_flagged_as_a_leak_and_honest_work_is_not(tmp_path):
    root = tmp_path / "class"
    for name in HONEST:
        (root / name).mkdir(parents=True)
        for module, _title in ACTIVITIES.values():
            (root / name / f"{module}.py").write_text(
                (VARIANTS / name / f"{module}.py").read_text()
            )
    (root / "leaker").mkdir()
    for module, _title in ACTIVITIES.values():
        reference = (REFERENCE / f"{module}.py").read_text()
        (root / "leaker" / f"{module}.py").write_text(disguise(reference, reference, seed=7))
    report = similarity.analyse(folders(root), ALL, reference=REFERENCE)
    leaks = {(p.activity, p.a) for p in report.pairs if p.flag == similarity.LEAK_FLAG}
    assert leaks == {(activity, "leaker") for activity in ALL}


def test_untouched_skeletons_are_not_a_pair(tmp_path):
    for name in ("ann", "bob"):
        assert dlgrade("new", tmp_path / "class" / name).returncode == 0
    assert dlgrade("new", tmp_path / "class" / "cat", "--notebook").returncode == 0
    report = similarity.analyse(folders(tmp_path / "class"), ALL, threshold=0.01)
    assert report.pairs == [] and report.compared == 3 * len(ALL)


def test_a_notebooks_code_cells_count(tmp_path):
    module = ACTIVITIES["2.01"][0]
    source = (VARIANTS / "book" / f"{module}.py").read_text()
    for name, text, suffix in (
        ("ann", source, ".py"),
        ("bob", as_student_notebook(source), ".ipynb"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{module}{suffix}").write_text(text)
    report = similarity.analyse(folders(tmp_path), ["2.01"])
    assert [(p.a, p.b) for p in report.pairs] == [("ann", "bob")]
    assert report.pairs[0].score > 0.9


def test_unreadable_binary_and_broken_files_are_skipped_with_a_note(tmp_path):
    module = ACTIVITIES["1.01"][0]
    for name in ("binary", "latin1", "broken", "both"):
        (tmp_path / name).mkdir()
    (tmp_path / "binary" / f"{module}.py").write_bytes(b"\x7fELF\x00\x00binary")
    (tmp_path / "latin1" / f"{module}.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (tmp_path / "broken" / f"{module}.ipynb").write_text("{not json")
    (tmp_path / "both" / f"{module}.py").write_text("x = 1\n")
    (tmp_path / "both" / f"{module}.ipynb").write_text(as_student_notebook("x = 1\n"))
    report = similarity.analyse(folders(tmp_path), ["1.01"])
    notes = "\n".join(report.skipped)
    assert "binary: activity_1_01.py is binary" in notes
    assert "latin1: activity_1_01.py is not UTF-8 text" in notes
    assert "broken: activity_1_01.ipynb could not be read" in notes
    assert "both: both activity_1_01.py and activity_1_01.ipynb" in notes
    assert report.pairs == []


def test_the_report_files_and_the_class_summary_link_but_nothing_student_facing(tmp_path):
    root = tmp_path / "class"
    module = "activity_1_01"
    good = (
        (Path(__file__).parent / "submissions" / "broken" / "wrong_type" / f"{module}.py")
        .read_text()
        .replace('return f"{abs(a * x**2 + b * x + c)}"', "return abs(a * x**2 + b * x + c)")
    )
    for name, text in (("ann", good), ("bob", disguise(good, good, seed=3))):
        (root / name).mkdir(parents=True)
        (root / name / f"{module}.py").write_text(text)
    out = tmp_path / "results"
    run = dlgrade("grade", root, "--out", out, "--checks", LIGHT, "--similarity")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "similarity: 1 similar pair(s)" in run.stdout
    with open(out / "similarity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(similarity.CSV_COLUMNS)
    assert {(r["student_a"], r["student_b"]) for r in rows} == {("ann", "bob")}
    page = (out / "similarity.html").read_text()
    assert "<mark>" in page and "http" not in page and "<script" not in page
    assert 'href="similarity.html"' in (out / "summary.html").read_text()
    student_facing = [*(out / "feedback").iterdir(), *(out / "gradescope").rglob("*.json")]
    student_facing += [out / "canvas.csv", out / "gradebook.csv"]
    for path in student_facing:
        assert "similar" not in path.read_text().lower(), path
    alone = dlgrade("similarity", root, "--out", tmp_path / "alone", "--threshold", "0.99")
    assert alone.returncode == 0, alone.stderr
    assert "0 similar pair(s)" in alone.stdout
    assert dlgrade("similarity", root, "--threshold", "2").returncode == 2


def test_the_scores_are_the_same_in_every_process():
    """k-gram hashes must not depend on Python's per-process string hash salt."""
    import subprocess
    import sys

    code = "from dlgrade.similarity import kgram_hashes; print(kgram_hashes('V=V+F(V)'*9).sum())"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1 and runs.pop().strip() != "0"
