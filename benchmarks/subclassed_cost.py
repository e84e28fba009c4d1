"""What grading a subclassed keras.Model costs against the same model as a Sequential.

The reference solutions build Sequential/functional models; the PyTorch-style acceptance
variant (tests/variants/pytorch/) builds the same models as keras.Model subclasses, which
the worker traces into a functional model (dlgrade/tracing.py) and the trusted side checks
by comparing predictions (Submission._probe_traced). Each activity with a model is graded
with ``dlgrade check --tier T`` on both, alternating which goes first, and the table gives
the wall time of each run and the ratio, all measured in one run of this script.

    DLGRADE_DATA_DIR=../shared/data python benchmarks/subclassed_cost.py [--tier quick]
        [--activity 2.01 ...] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL_ACTIVITIES = ("2.01", "3.01", "3.02", "5.01", "6.01", "7.01")
SOURCES = {
    "Sequential (reference)": REPO / "reference",
    "subclassed (pytorch)": REPO / "tests" / "variants" / "pytorch",
}


def _folder(source: Path, activity: str, root: Path) -> Path:
    name = f"activity_{activity.replace('.', '_')}.py"
    folder = root / f"{source.name}-{activity}"
    folder.mkdir()
    shutil.copy(source / name, folder / name)
    return folder


def grade(folder: Path, activity: str, tier: str) -> tuple[float, str]:
    out = folder.parent / f"{folder.name}.json"
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dlgrade.cli",
            "check",
            str(folder),
            "--activity",
            activity,
            "--tier",
            tier,
            "--grade-json",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - started
    try:
        graded = json.loads(out.read_text())
        score = f"{graded['score']:g}/{graded['max_score']:g}"
    except (OSError, ValueError, KeyError):
        score = "no grade"
    return wall, score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="quick")
    parser.add_argument("--activity", action="append", choices=MODEL_ACTIVITIES)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    activities = args.activity or list(MODEL_ACTIVITIES)
    print(f"tier {args.tier}, {args.repeat} run(s) each, wall seconds of `dlgrade check`")
    print(f"{'activity':8}  {'Sequential':>12}  {'subclassed':>12}  {'ratio':>6}  scores")
    totals = {label: 0.0 for label in SOURCES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index, activity in enumerate(activities):
            walls = {label: [] for label in SOURCES}
            scores = {}
            order = list(SOURCES.items())
            for run in range(args.repeat):
                for label, source in order if (index + run) % 2 == 0 else order[::-1]:
                    (root / str(run)).mkdir(exist_ok=True)
                    folder = _folder(source, activity, root / str(run))
                    wall, scores[label] = grade(folder, activity, args.tier)
                    walls[label].append(wall)
            seq, sub = (min(walls[label]) for label in SOURCES)
            for label in SOURCES:
                totals[label] += min(walls[label])
            print(
                f"{activity:8}  {seq:12.1f}  {sub:12.1f}  {sub / seq:6.2f}  "
                + ", ".join(scores.values())
            )
    seq, sub = totals.values()
    print(f"{'all':8}  {seq:12.1f}  {sub:12.1f}  {sub / seq:6.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
