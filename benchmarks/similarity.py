"""The similarity report: its calibration, and its time on a class of 300.

Calibration (the class of tests/planted.py): the acceptance variants (book, functional,
modern: written independently) and one disguised copy of each (identifiers renamed,
functions reordered, comments reworded, one function rewritten from the reference), per
activity. Positives are the (variant, its copy) pairs; negatives are the pairs of
independent solutions (two variants, or a copy and another variant). Two copies share the
reference's rewritten function by construction, so their pair is neither and is left out.
Prints precision and recall over thresholds.

Timing: a synthetic class of ``--students`` (default 300) over the nine activities, each
student's module a disguise (random seed) of one of the variants; prints the wall time of
`similarity.analyse` and how many pairs it compared and flagged.

    python benchmarks/similarity.py [--students 300]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dlgrade import similarity  # noqa: E402
from dlgrade.rubric import ACTIVITIES  # noqa: E402
from tests.planted import HONEST, REFERENCE, VARIANTS, calibration_class, disguise  # noqa: E402

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def calibrate(work: Path) -> None:
    root = work / "calibration"
    copies = calibration_class(root)
    students = sorted((p.name, p) for p in root.iterdir())
    report = similarity.analyse(students, list(ACTIVITIES), threshold=1e-9)
    found = {(p.activity, frozenset({p.a, p.b})): p.score for p in report.pairs}
    positives, negatives = [], []
    for activity in ACTIVITIES:
        positives += [found.get((activity, pair), 0.0) for pair in copies[activity]]
        honest = [frozenset(p) for p in itertools.combinations(HONEST, 2)]
        honest += [frozenset({f"copy-of-{a}", b}) for a in HONEST for b in HONEST if a != b]
        negatives += [found.get((activity, pair), 0.0) for pair in honest]
    print(
        f"calibration: {len(positives)} planted copies, {len(negatives)} independent pairs; "
        f"copies score {min(positives):.2f}–{max(positives):.2f}, independent pairs "
        f"{min(negatives):.2f}–{max(negatives):.2f}"
    )
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7}")
    for threshold in THRESHOLDS:
        tp = sum(s >= threshold for s in positives)
        fp = sum(s >= threshold for s in negatives)
        precision = tp / (tp + fp) if tp + fp else 1.0
        mark = "  ← default" if threshold == similarity.DEFAULT_THRESHOLD else ""
        print(f"{threshold:>9.2f} {precision:>9.2f} {tp / len(positives):>7.2f}{mark}")
    leaks = similarity.analyse(
        students, list(ACTIVITIES), reference=REFERENCE, threshold=1.1, leak_threshold=1e-9
    )
    honest = [p.score for p in leaks.pairs if p.flag == similarity.LEAK_FLAG and p.a in HONEST]
    print(
        f"independent solutions against the reference: at most {max(honest):.2f} "
        f"(leak threshold {similarity.DEFAULT_LEAK_THRESHOLD})"
    )


def timing(work: Path, count: int) -> None:
    root = work / "class"
    rng = random.Random(0)
    for n in range(count):
        folder = root / f"s{n:03d}"
        folder.mkdir(parents=True)
        for module, _title in ACTIVITIES.values():
            source = (VARIANTS / rng.choice(HONEST) / f"{module}.py").read_text()
            other = (REFERENCE / f"{module}.py").read_text()
            (folder / f"{module}.py").write_text(disguise(source, other, seed=n))
    students = sorted((p.name, p) for p in root.iterdir())
    began = time.perf_counter()
    report = similarity.analyse(students, list(ACTIVITIES), reference=REFERENCE)
    wall = time.perf_counter() - began
    print(
        f"class of {count} × {len(ACTIVITIES)} activities: {wall:.1f} s for "
        f"{report.compared:,} pairs ({len(report.pairs):,} flagged: every student is a "
        "disguise of one of three originals)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dlgrade-similarity-"))
    try:
        calibrate(work)
        timing(work, args.students)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
