"""Where one `dlgrade check` run's time goes, against the direct-call baseline.

    DLGRADE_DATA_DIR=../shared/data python benchmarks/profile_check.py [--tier quick] [--repeat 3]
        [--submission reference] [--activity 2.01 ...] [--json out.json]

Runs ``dlgrade check SUBMISSION --tier T`` once with ``DLGRADE_PROFILE`` set (every round
trip to the worker, every model load and every check is timed; dlgrade/profile.py) and,
in the same run, ``import tensorflow, keras`` in a fresh Python three times. Prints:

- the phases: pytest start-up, collection, the trusted side's Keras import, the worker's
  start and TensorFlow import, the session's end;
- per activity: the checks' time split into the student's functions (worker-timed calls),
  the grader's inputs built in the worker (feeds), exporting models, copying them to the
  trusted side, loading them there, round trips (trusted wall minus the worker's own time
  for every op), waiting for TensorFlow, and the rubric's own work (the rest);
- the ratio asked of issue 13: wall / direct, where *direct* is one process, one
  TensorFlow import and the same calls: one ``import tensorflow, keras`` plus the time
  the student's functions and the grader's feeds took inside the worker.

Every figure comes from this one run; the machines are shared and noisy, compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: ops whose worker time a direct script would spend too: the student's code, the inputs
DIRECT_OPS = ("call", "call_method", "feed", "take", "attributes", "import")
COLUMNS = (
    ("student", ("call", "call_method")),
    ("feeds", ("feed", "take", "attributes")),
    ("export", ("export_model",)),
)


def import_seconds(repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import tensorflow, keras"],
            check=True,
            capture_output=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def run_check(submission: Path, tier: str, activities: list[str]) -> tuple[float, dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        grade, prof = Path(tmp) / "grade.json", Path(tmp) / "profile.json"
        command = [sys.executable, "-m", "dlgrade.cli", "check", str(submission), "--tier", tier]
        for activity in activities:
            command += ["--activity", activity]
        command += ["--grade-json", str(grade)]
        env = {**os.environ, "DLGRADE_PROFILE": str(prof), "DLGRADE_PROFILE_T0": str(time.time())}
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - began
        if not prof.exists() or not grade.exists():
            sys.exit(
                f"dlgrade check failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return wall, json.loads(grade.read_text()), json.loads(prof.read_text())


def table(wall: float, tf_import: float, grade: dict, prof: dict) -> dict:
    ops = prof["ops"]
    print(f"dlgrade check: exit score {grade['score']:g}/{grade['max_score']:g}, wall {wall:.1f} s")
    print(f"`import tensorflow, keras` in a fresh Python, median of 3: {tf_import:.2f} s\n")
    print("phases (seconds since the command started, or a duration)")
    for name, seconds in sorted(prof["phases"].items(), key=lambda kv: kv[1]):
        print(f"  {name:42} {seconds:7.2f}")

    per_activity: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for check, seconds in prof["checks"].items():
        row = per_activity[check.split("/")[0]]
        row["checks"] += 1
        row["time"] += seconds
        spent = 0.0
        for op, (count, trusted, worker) in ops.get(check, {}).items():
            counts[op] += count
            totals[op] += trusted
            spent += trusted
            column = next((name for name, members in COLUMNS if op in members), None)
            if column is not None:
                row[column] += worker
                row["round trips"] += trusted - worker
            elif op == "copy file to trusted side":
                row["copy"] += trusted
            elif op == "load model (trusted side)":
                row["load"] += trusted
            elif op.startswith("wait for") or op == "worker start":
                row["waiting"] += trusted
            else:  # seed, import, release: the harness's own round trips
                row["round trips"] += trusted
                if op == "import":
                    row["student"] += worker
                    row["round trips"] -= worker
            if op in DIRECT_OPS:
                row["direct"] += worker
        row["rubric"] += seconds - spent
        row["requests"] += sum(
            c
            for op, (c, _, _) in ops.get(check, {}).items()
            if op not in ("copy file to trusted side", "load model (trusted side)")
            and not op.startswith("wait for")
        )

    columns = (
        "checks",
        "requests",
        "time",
        "student",
        "feeds",
        "export",
        "copy",
        "load",
        "round trips",
        "waiting",
        "rubric",
    )
    print("\nper activity (seconds; student/feeds/export: the worker's own time)")
    print("  act   " + " ".join(f"{c:>11}" for c in columns))
    sums: dict[str, float] = defaultdict(float)
    for activity in sorted(per_activity):
        row = per_activity[activity]
        for c in (*columns, "direct"):
            sums[c] += row[c]
        print(
            f"  {activity:5} "
            + " ".join(
                f"{row[c]:11.0f}" if c in ("checks", "requests") else f"{row[c]:11.2f}"
                for c in columns
            )
        )
    print(
        "  all   "
        + " ".join(
            f"{sums[c]:11.0f}" if c in ("checks", "requests") else f"{sums[c]:11.2f}"
            for c in columns
        )
    )
    print("\nrequests per op (count, trusted wall s):")
    for op in sorted(counts, key=lambda o: -totals[o]):
        print(f"  {op:42} {counts[op]:5d} {totals[op]:8.2f}")

    direct = tf_import + sums["direct"]
    print(
        f"\ndirect = one TensorFlow import {tf_import:.2f} s + the same calls "
        f"{sums['direct']:.2f} s = {direct:.2f} s"
    )
    print(
        f"wall / direct = {wall / direct:.2f}    wall / TensorFlow import = {wall / tf_import:.2f}"
    )
    return {
        "wall": wall,
        "tf_import": tf_import,
        "direct": direct,
        "ratio": wall / direct,
        "imports": wall / tf_import,
        "score": grade["score"],
        "max_score": grade["max_score"],
        "phases": prof["phases"],
        "per_activity": per_activity,
        "checks": prof["checks"],
        "ops": ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="quick")
    parser.add_argument("--submission", type=Path, default=ROOT / "reference")
    parser.add_argument("--activity", action="append", default=[])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs (each with its own import timing)"
    )
    args = parser.parse_args()
    runs = []
    for index in range(args.repeat):
        if args.repeat > 1:
            print(f"\n=== run {index + 1} of {args.repeat}")
        tf_import = import_seconds()
        wall, grade, prof = run_check(args.submission, args.tier, args.activity)
        runs.append(table(wall, tf_import, grade, prof))
    if args.repeat > 1:
        print("\nrun   wall s  import s  wall/direct  wall/import")
        for index, run in enumerate(runs, 1):
            print(
                f"{index:3}  {run['wall']:7.1f}  {run['tf_import']:8.2f}  {run['ratio']:11.2f}"
                f"  {run['imports']:11.2f}"
            )
        ratios = statistics.median(r["ratio"] for r in runs)
        imports = statistics.median(r["imports"] for r in runs)
        print(f"median            {ratios:11.2f}  {imports:11.2f}")
    if args.json:
        args.json.write_text(json.dumps(runs if args.repeat > 1 else runs[0], indent=1))


if __name__ == "__main__":
    main()
