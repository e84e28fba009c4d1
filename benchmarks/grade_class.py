"""How fast `dlgrade grade` grades a class, and where the time goes.

Builds a class of M copies of the reference and a few mutants (tests/mutants), grades it at
the quick tier (``--tier`` for another) with ``--jobs 1`` and ``--jobs 2`` (one run each,
same machine, one after the other) and prints a table:

- submissions per minute (wall clock of the whole `dlgrade grade` command);
- TensorFlow starts per student (worker starts) and the share of the students' wall time
  that start-up took: spawning the worker plus the TensorFlow import that held a check up
  (``preload_wait``), and the whole import as the worker timed it (``preload``, partly
  hidden behind the grader's own set-up);
- the harness overhead over running the same reference functions directly in one Python
  process: "direct" is one TensorFlow import plus the time the submission's functions
  spent running (the worker times each call itself), so everything else — the sandbox,
  the exchange of values and models, the rubric's own work on its side, pytest — is
  counted as overhead.

Set ``DLGRADE_LOOK_AHEAD=0`` to measure without the look-ahead (the next student's worker
starts while this one is graded, where a core is free; docs/architecture.md).

``--executor local dask`` grades the class with each executor in turn (dask: a
``LocalCluster`` of ``--jobs`` workers on this machine), prints the ratio of students per
minute, and what a Dask task costs per student: packing and shipping the files, unpacking
and checking them on the worker, the grading subprocess's own start (its wall time less the
student's own), and the record's size on the way back (docs/cluster.md).

``--zygote off on`` grades with workers started fresh (each imports TensorFlow) and forked
from the grading process's zygote (dlgrade/sandbox/zygote.py; the default), one after the
other; ``--executor check`` grades each student with its own ``dlgrade check`` (what a
course's CI does per student).

    DLGRADE_DATA_DIR=../shared/data python benchmarks/grade_class.py [--copies 20]
        [--activity 2.01 --activity 7.01] [--mutants 3] [--jobs 1 2] [--tier quick]
        [--executor local dask check] [--zygote off on]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dlgrade import gradebook  # noqa: E402
from dlgrade.rubric import ACTIVITIES  # noqa: E402
from tests.helpers import MUTANT_FILES, Mutant  # noqa: E402


def build_class(root: Path, activities: list[str], copies: int, mutants: int) -> list[str]:
    """M reference copies and the first few mutants of the chosen activities."""
    modules = [f"{ACTIVITIES[a][0]}.py" for a in activities]
    for index in range(copies):
        folder = root / f"ref{index:02d}"
        folder.mkdir(parents=True)
        for module in modules:
            shutil.copy(REPO / "reference" / module, folder / module)
    chosen = [Mutant.parse(p) for p in MUTANT_FILES if p.stem.split("-", 1)[0] in activities]
    names = []
    for mutant in chosen[:mutants]:
        folder = mutant.write(root / f"mutant-{mutant.name}")
        for module in modules:  # the other activities stay the reference's
            if not (folder / module).exists():
                shutil.copy(REPO / "reference" / module, folder / module)
        names.append(mutant.name)
    return names


def tensorflow_import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def grade(
    root: Path,
    out: Path,
    activities: list[str],
    jobs: int,
    tier: str,
    executor: str = "local",
    zygote: str = "on",
) -> float:
    env = dict(os.environ, DLGRADE_ZYGOTE="1" if zygote == "on" else "0")
    if executor == "dask-subprocess":  # each task in a `dlgrade grade` subprocess of its own
        env["DLGRADE_SERVER"] = "0"
        executor = "dask"
    began = time.monotonic()
    if executor == "check":  # one `dlgrade check` per student, one after the other
        out.mkdir(parents=True, exist_ok=True)
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            command = [sys.executable, "-m", "dlgrade.cli", "check", str(folder), "--tier", tier]
            command += ["--grade-json", str(out / f"{folder.name}.json")]
            for activity in activities:
                command += ["--activity", activity]
            run = subprocess.run(command, capture_output=True, text=True, env=env)
            if run.returncode not in (0, 1):
                sys.exit(f"dlgrade check failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
        return time.monotonic() - began
    command = [sys.executable, "-m", "dlgrade.cli", "grade", str(root), "--out", str(out)]
    command += ["--tier", tier, "--jobs", str(jobs), "--executor", executor]
    for activity in activities:
        command += ["--activity", activity]
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.monotonic() - began
    if run.returncode not in (0, 1):
        sys.exit(f"dlgrade grade failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return wall


def task_costs(records: list[gradebook.StudentRecord]) -> None:
    """What one Dask task added per student (the records' ``worker.task``)."""
    tasks = [(r, r.worker["task"]) for r in records if "task" in r.worker]
    if not tasks:
        return
    mean = statistics.mean
    # a task's time that was no student's own grading, per student (a task grades a batch)
    start = [t["outside_s"] if "outside_s" in t else t["grade_s"] - r.wall_s for r, t in tasks]
    batch = mean(t.get("students", 1) for _, t in tasks)
    print(
        f"     per Dask task: pack {mean(t['pack_s'] for _, t in tasks) * 1000:.1f} ms, "
        f"files {mean(t['files_bytes'] for _, t in tasks) / 1000:.1f} kB out, "
        f"unpack+verify {mean(t['unpack_s'] for _, t in tasks) * 1000:.1f} ms, "
        f"record {mean(t['record_bytes'] for _, t in tasks) / 1000:.1f} kB back; "
        f"{batch:.1f} student(s) a task; grading "
        f"({', '.join(sorted({t.get('graded_in', 'subprocess') for _, t in tasks}))}) "
        f"{mean(t['grade_s'] / t.get('students', 1) for _, t in tasks):.1f} s a student, of which "
        f"{mean(start):.1f} s outside the student's own grading (process start, pytest, "
        f"collection, the trusted Keras) beyond the student's "
        f"{mean(r.wall_s for r, _ in tasks):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--mutants", type=int, default=3)
    parser.add_argument("--activity", action="append")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tier", default="quick", help="default: quick")
    parser.add_argument("--keep", type=Path, help="keep the class and results here")
    parser.add_argument(
        "--executor",
        nargs="+",
        default=["local"],
        choices=["local", "dask", "dask-subprocess", "check"],
        help="default: local; dask-subprocess = each Dask task in a `dlgrade grade` "
        "subprocess of its own (DLGRADE_SERVER=0, as before the grading server); check = one "
        "`dlgrade check` per student, one after the other",
    )
    parser.add_argument(
        "--zygote",
        nargs="+",
        default=["on"],
        choices=["on", "off"],
        help="workers forked from a zygote (on, the default) or started fresh (off)",
    )
    args = parser.parse_args()
    activities = args.activity or ["2.01", "7.01"]
    work = args.keep or Path(tempfile.mkdtemp(prefix="dlgrade-bench-"))
    root = work / "class"
    shutil.rmtree(root, ignore_errors=True)
    mutant_names = build_class(root, activities, args.copies, args.mutants)
    students = args.copies + len(mutant_names)
    print(
        f"class: {args.copies} reference copies + {len(mutant_names)} mutants "
        f"({', '.join(mutant_names)}) = {students} students; activities "
        f"{', '.join(activities)}; {args.tier} tier; {os.cpu_count()} CPUs"
    )
    tf_import = tensorflow_import_seconds()
    print(f"a fresh `import tensorflow` here: {tf_import:.1f} s")
    print()
    header = (
        f"{'executor':>15} {'zygote':>6} {'jobs':>4} {'wall s':>7} {'subs/min':>8} "
        f"{'TF starts/student':>17} {'start-up share':>14} {'(whole import)':>14} "
        f"{'overhead':>9} {'w/o start-up':>12} {'own code':>8} {'s/student':>9} "
        f"{'refs 100%':>9}"
    )
    print(header)
    print("-" * len(header))
    baseline = None
    runs = [
        (jobs, executor, zygote)
        for jobs in args.jobs
        for executor in args.executor
        for zygote in args.zygote
        if not (executor == "check" and jobs != args.jobs[0])
    ]
    for jobs, executor, zygote in runs:
        out = work / f"results-{executor}-j{jobs}-z{zygote}"
        shutil.rmtree(out, ignore_errors=True)
        wall = grade(root, out, activities, jobs, args.tier, executor, zygote)
        if executor == "check":
            print(
                f"{executor:>15} {zygote:>6} {1:>4} {wall:>7.1f} {students / wall * 60:>8.1f} "
                "(one process per student: no records; see the grade JSONs)"
            )
            baseline = baseline or wall
            continue
        records = gradebook.load_records(out)
        assert len(records) == students, f"{len(records)} records for {students} students"
        student_wall = sum(r.wall_s for r in records)
        starts = [r.worker.get("starts", 0) for r in records]
        held = sum(r.worker.get("start_s", 0) + r.worker.get("preload_wait_s", 0) for r in records)
        whole = sum(r.worker.get("start_s", 0) + r.worker.get("preload_s", 0) for r in records)
        busy = sum(r.worker.get("busy_s", 0) for r in records)
        direct = tf_import + busy  # one process, one import, the same calls
        # the harness's time for the same work: every student's wall time, plus what the
        # run spent outside any student (pytest, collection, the grader's own Keras), per
        # job; divided among the jobs that ran side by side
        harness = wall * jobs
        overhead = harness / direct - 1
        # the same without TensorFlow's start-up: what the students' checks took beyond
        # their own functions' time
        steady = (student_wall - held) / busy - 1 if busy else float("nan")
        refs = [r for r in records if r.student.startswith("ref")]
        scores_ok = bool(refs) and all(r.score == r.max_score for r in refs)
        # the students' own code: what their functions ran, of the machine the run held
        own = busy / harness
        overhead_per_student = (harness - busy) / students
        print(
            f"{executor:>15} {zygote:>6} {jobs:>4} {wall:>7.1f} {students / wall * 60:>8.1f} "
            f"{statistics.mean(starts):>17.2f} {held / student_wall:>14.1%} "
            f"{whole / student_wall:>14.1%} {overhead:>9.1%} {steady:>12.1%} {own:>8.1%} "
            f"{overhead_per_student:>9.1f} {str(scores_ok):>9}"
        )
        mutants = [f"{r.student}: {r.score:g}/{r.max_score:g}" for r in records if r not in refs]
        if mutants:
            print(f"     mutants (quick tier kills some only): {'; '.join(mutants)}")
        if executor.startswith("dask"):
            task_costs(records)
        if baseline is None:
            baseline = wall
        else:
            print(
                f"     students per minute over the first run ({runs[0][1]}, jobs="
                f"{runs[0][0]}, zygote {runs[0][2]}): {baseline / wall:.2f}×"
            )
    print()
    print(
        "direct = one TensorFlow import + the submission's functions' own time (worker-timed, "
        f"{busy:.1f} s in the last run); overhead = wall × jobs / direct − 1; w/o start-up = "
        "(students' wall − start-up that held a check) / the functions' own time − 1; own "
        "code = the functions' own time / (wall × jobs); s/student = (wall × jobs − the "
        "functions' own time) / students, the per-student overhead"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
