"""The ``dlgrade`` command: ``new`` writes skeletons, ``check`` grades a folder.

Exit codes follow pytest's spirit: 0 every selected check passed (or the score reached
``--min-score``), 1 a check failed or the student's code errored, 2 usage error, 3 an
internal error of the grader (a rubric bug or a harness failure).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from dlgrade.errors import (  # noqa: F401
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from dlgrade.reasons import ExitCode
from dlgrade.rubric import TIERS, Score
from dlgrade.selection import (
    checks_dir,
    known_activities,
    quiet_pytest,
    refuse_ambiguous,
    rubric_files,
    select_activities,
)
from dlgrade.text import printable


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    from dlgrade.errors import DataError

    try:
        return args.run(args)
    except DataError as exc:  # an unknown dataset name
        print(f"dlgrade {args.command}: error: {printable(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"dlgrade {args.command}: error: {printable(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlgrade", description="Grade The Deep Learning Workshop's activities."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    new = commands.add_parser("new", help="write skeleton modules for every activity")
    new.add_argument("directory", type=Path)
    new.add_argument("--force", action="store_true", help="overwrite existing files")
    new.add_argument(
        "--notebook",
        action="store_true",
        help="write Jupyter notebooks (activity_X_YY.ipynb) instead of modules",
    )
    new.add_argument(
        "--checks",
        type=Path,
        metavar="DIR",
        help="rubric folder whose activities get skeletons (its skeletons/ first)",
    )
    new.set_defaults(run=run_new)

    check = commands.add_parser("check", help="grade a submission folder")
    check.add_argument("directory", type=Path, help="the folder holding activity_*.py")
    check.add_argument(
        "--activity",
        action="append",
        metavar="N.NN",
        help="grade only this activity (repeatable; default: every activity_*.py present)",
    )
    check.add_argument("--tier", choices=TIERS, default="quick", help="default: quick")
    check.add_argument(
        "--min-score",
        type=float,
        metavar="P",
        help="exit 0 when the score reaches P percent, even if some checks fail",
    )
    check.add_argument("--grade-json", type=Path, metavar="PATH", help="write the grade as JSON")
    check.add_argument("--junit-xml", type=Path, metavar="PATH", help="write JUnit XML")
    check.add_argument("--checks", type=Path, metavar="DIR", help="rubric folder (checks/)")
    check.add_argument("--seed", type=int, help="session seed (default: the plugin's)")
    check.add_argument("--call-timeout", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    check.add_argument(
        "--memory-limit", type=float, metavar="GIB", help="memory of each worker process, in GiB"
    )
    check.add_argument(
        "--disk-limit",
        type=float,
        metavar="GIB",
        help="what the submission may write in all, in GiB",
    )
    check.add_argument(
        "--allow-network", action="store_true", help="let the submission use the network"
    )
    check.add_argument(
        "--gpus",
        metavar="LIST",
        help="GPUs for the workers of full-tier checks: 'all' (default), 'none', or numbers "
        "such as 0,1 (see docs/gpu.md)",
    )
    check.set_defaults(run=run_check)

    grade = commands.add_parser(
        "grade",
        help="grade a whole class: one folder per student, or an LMS export zip",
    )
    grade.add_argument(
        "source",
        type=Path,
        help="a folder holding one folder per student, or the zip an LMS exported",
    )
    grade.add_argument("--out", type=Path, default=Path("results"), help="default: results/")
    grade.add_argument("--tier", choices=TIERS, default="quick", help="default: quick")
    grade.add_argument(
        "--jobs",
        "-j",
        metavar="N",
        help="students graded in parallel ('auto': one per CPU; default 1, or with "
        "--executor dask one worker per CPU)",
    )
    grade.add_argument(
        "--activity",
        action="append",
        metavar="N.NN",
        help="grade only this activity (repeatable; default: every activity any student has)",
    )
    grade.add_argument(
        "--force", action="store_true", help="regrade every student, even unchanged ones"
    )
    grade.add_argument("--checks", type=Path, metavar="DIR", help="rubric folder (checks/)")
    grade.add_argument("--seed", type=int, help="session seed (default: the plugin's)")
    grade.add_argument("--call-timeout", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    grade.add_argument("--memory-limit", type=float, metavar="GIB", help="per worker, in GiB")
    grade.add_argument("--disk-limit", type=float, metavar="GIB", help="per student, in GiB")
    grade.add_argument(
        "--allow-network", action="store_true", help="let submissions use the network"
    )
    grade.add_argument(
        "--gpus",
        metavar="LIST",
        help="GPUs for the workers of full-tier checks: 'all' (default), 'none', or numbers "
        "such as 0,1, given round robin to the --jobs (see docs/gpu.md)",
    )
    grade.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local: this machine (default); dask: a Dask cluster, see docs/cluster.md "
        '(pip install "dlgrade[dask]")',
    )
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler, e.g. tcp://HOST:8786 (default with --executor dask: a "
        "local cluster of --jobs workers)",
    )
    grade.set_defaults(run=run_grade)

    grade.add_argument(
        "--similarity",
        action="store_true",
        help="also write the similarity report (see `dlgrade similarity`)",
    )
    similarity_options(grade)

    similar = commands.add_parser(
        "similarity",
        help="pairs of students whose code is similar, per activity (instructors only)",
    )
    similar.add_argument("source", type=Path, help="a class folder or an LMS export zip")
    similar.add_argument("--out", type=Path, default=Path("results"), help="default: results/")
    similar.add_argument("--activity", action="append", metavar="N.NN")
    similar.add_argument("--checks", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    similarity_options(similar)
    similar.set_defaults(run=run_similarity)

    _add_calibrate_parser(commands)

    kit = commands.add_parser("kit", help="export the student kit (no reference, no hidden checks)")
    kit.add_argument("out", type=Path, help="folder to write the kit to")
    kit.add_argument("--force", action="store_true", help="replace a non-empty folder")
    kit.add_argument(
        "--checks", type=Path, metavar="DIR", help="rubric folder to ship (default: checks/)"
    )
    kit.set_defaults(run=run_kit)
    _add_canvas_parser(commands)
    _add_gradescope_parser(commands)

    data = commands.add_parser("data", help="datasets: list, fetch, verify, path, synth")
    mirror = argparse.ArgumentParser(add_help=False)
    mirror.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="read-only mirror (sets DLGRADE_DATA_DIR)"
    )
    verbs = data.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser(
        "list", parents=[mirror], help="each dataset, its activities, size and status"
    ).set_defaults(run=run_data_list)
    fetch = verbs.add_parser(
        "fetch", parents=[mirror], help="download into the cache, verify, unpack"
    )
    fetch.add_argument("name", help="a dataset name, or 'all'")
    fetch.set_defaults(run=run_data_fetch)
    verify = verbs.add_parser(
        "verify", parents=[mirror], help="re-check the checksums of what is here"
    )
    verify.add_argument("name", nargs="?", help="one dataset (default: all present)")
    verify.set_defaults(run=run_data_verify)
    where = verbs.add_parser("path", parents=[mirror], help="print where a dataset lives")
    where.add_argument("name")
    where.set_defaults(run=run_data_path)
    synth = verbs.add_parser(
        "synth", help="write synthetic twins of the datasets, in the real formats and sizes"
    )
    synth.add_argument("out_dir", type=Path)
    synth.add_argument(
        "--scale",
        choices=["book", "small"],
        default="book",
        help="book: the real datasets' sizes (about a minute, 130 MB); small: a few files each",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=run_data_synth)
    return parser


# -- new ---------------------------------------------------------------------------------


def run_new(args: argparse.Namespace) -> int:
    target: Path = args.directory
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    target.mkdir(parents=True, exist_ok=True)
    skeletons = resources.files("dlgrade").joinpath("skeletons")
    rubric_root = checks_dir(getattr(args, "checks", None))
    written, kept, other = [], [], []
    suffix, twin = (".ipynb", ".py") if args.notebook else (".py", ".ipynb")
    for activity, (module, _title) in known_activities(rubric_root).items():
        # a rubric folder's own skeletons/ (an activity the package does not have) first
        own = rubric_root / "skeletons" / f"{module}.py"
        packaged = skeletons.joinpath(f"{module}.py")
        if not own.is_file() and not packaged.is_file():
            raise UsageError(
                f"no skeleton for activity {activity}: write {own} (the contract's functions, "
                "each raising NotImplementedError)"
            )
        destination = target / f"{module}{suffix}"
        if (target / f"{module}{twin}").exists():
            other.append(f"{module}{twin}")  # both would be ambiguous: the student's stays
            continue
        if destination.exists() and not args.force:
            kept.append(destination.name)
            continue
        source = (own if own.is_file() else packaged).read_text()
        if args.notebook:
            from dlgrade.sandbox import notebook

            destination.write_text(notebook.skeleton(source))
        else:
            destination.write_text(source)
        written.append(destination.name)
    print(f"wrote {len(written)} skeleton(s) to {target}: {', '.join(written) or 'none'}")
    if kept:
        print(f"kept your existing {', '.join(kept)} (use --force to overwrite)")
    if other:
        print(
            f"kept your existing {', '.join(other)}: an activity is one file, module or "
            "notebook, never both"
        )
    print(f"next: edit them, then run `dlgrade check {target}`")
    return EXIT_OK


# -- data ----------------------------------------------------------------------------------


def _data_env(args: argparse.Namespace) -> None:
    if getattr(args, "data_dir", None) is not None:
        if not args.data_dir.is_dir():
            raise UsageError(f"--data-dir {args.data_dir}: no such folder")
        os.environ["DLGRADE_DATA_DIR"] = str(args.data_dir.resolve())


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return "?"


def run_data_list(args: argparse.Namespace) -> int:
    from dlgrade import data
    from dlgrade.errors import DataError

    _data_env(args)
    print(f"mirror: {data.mirror_dir() or '(DLGRADE_DATA_DIR not set)'}")
    print(f"cache:  {data.cache_dir()}")
    print(f"{'dataset':15} {'activities':15} {'size':>10}  {'where':8} {'pinned by':24} verified")
    for name, entry in data.REGISTRY.items():
        where, root = data.status(name)
        pinned = data.pinning(name)
        if root is None:
            verified = f"no — run `dlgrade data fetch {name}`"
        else:
            try:
                hashed = data.verify(name, root)
                verified = "yes" if hashed else "present (nothing to hash here)"
            except DataError as exc:
                verified = f"NO: {str(exc).splitlines()[0][:60]}…"
        size = entry.download_size or sum(f.size or 0 for f in entry.files) or None
        print(
            f"{name:15} {', '.join(entry.activities):15} {_size(size):>10}  {where:8} "
            f"{pinned:24} {verified}"
        )
        print(f"{'':15} source: {data.source(name)}")
    return EXIT_OK


def run_data_fetch(args: argparse.Namespace) -> int:
    from dlgrade import data
    from dlgrade.errors import DataError

    _data_env(args)
    names = list(data.REGISTRY) if args.name == "all" else [data.dataset(args.name).name]
    failed = 0
    for name in names:
        where, root = data.status(name)
        if root is not None:
            print(f"{name}: already in the {where} ({root})")
            continue
        try:
            root = data.fetch(name, progress=data.progress_bar)
            data.verify(name, root)
            print(f"\n{name}: fetched and verified in {root}")
        except DataError as exc:
            failed += 1
            print(f"\n{name}: {exc}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def run_data_verify(args: argparse.Namespace) -> int:
    from dlgrade import data
    from dlgrade.errors import DataError

    _data_env(args)
    names = [data.dataset(args.name).name] if args.name else list(data.REGISTRY)
    bad = 0
    for name in names:
        where, root = data.status(name)
        if root is None:
            if args.name:
                print(f"{name}: not here; run `dlgrade data fetch {name}`", file=sys.stderr)
                bad += 1
            continue
        try:
            hashed = data.verify(name, root)
            print(
                f"{name}: OK in the {where} (pinned by {data.pinning(name)}; "
                f"{len(hashed)} file(s) hashed)"
            )
        except DataError as exc:
            bad += 1
            print(f"{name}: {exc}", file=sys.stderr)
    return EXIT_FAILED if bad else EXIT_OK


def run_data_path(args: argparse.Namespace) -> int:
    from dlgrade import data
    from dlgrade.errors import DataError

    _data_env(args)
    data.dataset(args.name)  # an unknown name is a usage error (exit 2)
    try:
        print(data.path(args.name, download=False))
    except DataError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_data_synth(args: argparse.Namespace) -> int:
    import time

    from dlgrade.data import synth

    began = time.monotonic()
    written = synth.write_all(args.out_dir, seed=args.seed, small=args.scale == "small")
    total = sum(
        f.stat().st_size for f in args.out_dir.rglob("*") if f.is_file() and not f.is_symlink()
    )
    for name, where in written.items():
        print(f"{name:15} {where}")
    print(f"wrote {_size(total)} in {time.monotonic() - began:.1f} s to {args.out_dir}")
    return EXIT_OK


# -- check -------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"submission folder {directory} does not exist")
    rubric_root = checks_dir(args.checks)
    activities = select_activities(directory, args.activity, rubric_root)
    refuse_ambiguous(directory, activities)
    files = [str(f) for f in rubric_files(rubric_root, activities)]
    pytest_args = files + [
        "--submission",
        str(directory),
        "--tier",
        args.tier,
        "--dlgrade-live",
        "-q",
        *quiet_pytest(rubric_root),
        # only dlgrade's plugin: whatever else this environment has installed (a plugin
        # that reorders or reruns tests, say) has no say in a grade, and loading them all
        # costs most of a second
        "--disable-plugin-autoload",
        "-p",
        "dlgrade.plugin",
    ]
    if args.seed is not None:
        pytest_args += ["--dlgrade-seed", str(args.seed)]
    if args.grade_json:
        pytest_args += ["--grade-json", str(args.grade_json)]
    if args.junit_xml:
        pytest_args += ["--junit-xml", str(args.junit_xml)]
    if args.call_timeout:
        pytest_args += ["--call-timeout", str(args.call_timeout)]
    pytest_args += limit_options(args)
    return grade(pytest_args, args.min_score)


def limit_options(args: argparse.Namespace) -> list[str]:
    """The sandbox's options, validated, as pytest arguments."""
    options = []
    for name in ("memory_limit", "disk_limit"):
        if getattr(args, name) is not None and not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of GiB")
    if args.memory_limit:
        options += ["--memory-limit", str(args.memory_limit)]
    if args.disk_limit:
        options += ["--disk-limit", str(args.disk_limit)]
    if args.allow_network:
        options.append("--allow-network")
    if args.gpus is not None:
        from dlgrade import gpu

        try:  # said here, before pytest starts
            gpu.choose(gpu.discover(), args.gpus)
        except gpu.GpuOptionError as exc:
            raise UsageError(str(exc)) from None
        options += ["--gpus", args.gpus]
    return options


# -- grade (a class) ---------------------------------------------------------------------


def _add_calibrate_parser(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="measure each check's false-fail rate on correct work and its mutants' catch "
        "rate over many seeds (writes checks/calibration.json)",
    )
    calibrate.add_argument(
        "--activity",
        action="append",
        metavar="N.NN",
        help="calibrate this activity (repeatable; default: every activity)",
    )
    calibrate.add_argument("--tier", choices=TIERS, default="standard", help="default: standard")
    calibrate.add_argument(
        "--seeds", type=int, default=20, metavar="N", help="session seeds to grade (default 20)"
    )
    calibrate.add_argument(
        "--first-seed", type=int, default=1, metavar="S", help="seeds S, S+1, ... (default 1)"
    )
    calibrate.add_argument(
        "--solutions",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of correct activity files, graded as correct work (repeatable)",
    )
    calibrate.add_argument(
        "--mutants",
        type=Path,
        metavar="DIR",
        help="folder of *.mutant files (default: tests/mutants/ beside the rubric folder)",
    )
    calibrate.add_argument("--no-mutants", action="store_true", help="grade no mutant")
    calibrate.add_argument("--jobs", "-j", metavar="N", help="students graded in parallel")
    calibrate.add_argument(
        "--out",
        type=Path,
        default=Path("results") / "calibrate",
        help="the class folders and each seed's records (default: results/calibrate/); "
        "a seed graded there before is kept",
    )
    calibrate.add_argument(
        "--checks",
        type=Path,
        metavar="DIR",
        help="rubric folder (checks/); calibration.json is written there",
    )
    calibrate.add_argument(
        "--table",
        type=Path,
        metavar="FILE",
        help="also write the markdown table (docs/calibration.md)",
    )
    calibrate.add_argument(
        "--only-table",
        action="store_true",
        help="grade nothing: write --table from the calibration file as it is",
    )
    calibrate.set_defaults(run=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from dlgrade import calibrate

    rubric_root = checks_dir(args.checks)
    if args.only_table:
        if args.table is None:
            raise UsageError("--only-table needs --table FILE")
        return calibrate.table_only(rubric_root, args.table)
    return calibrate.run(
        activities=args.activity,
        tier=args.tier,
        seeds=args.seeds,
        first_seed=args.first_seed,
        solutions=args.solutions,
        mutants=args.mutants,
        no_mutants=args.no_mutants,
        jobs=_jobs(args.jobs or "1"),
        out=args.out,
        rubric_root=rubric_root,
        table_path=args.table,
    )


def _jobs(value: str) -> int:
    if value == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise UsageError(f"--jobs {value}: give a number of parallel jobs (1 or more) or 'auto'")
    return jobs


#: ``--gpus`` values that mean the same on every machine (a Dask cluster's workers)
GPUS_ANYWHERE = ("all", "auto", "none", "cpu")


def run_grade(args: argparse.Namespace) -> int:
    from dlgrade import classrun

    jobs = _jobs(args.jobs or "1")
    if args.scheduler and args.executor != "dask":
        raise UsageError("--scheduler needs --executor dask")
    if args.executor == "dask" and (args.gpus or "all").strip().lower() not in GPUS_ANYWHERE:
        raise UsageError(
            f"--gpus {args.gpus}: with --executor dask each worker uses the GPUs it was started "
            "with (CUDA_VISIBLE_DEVICES, or dask-cuda's one GPU per worker); give 'all' or "
            "'none' here"
        )
    options = list(limit_options(args))
    if args.call_timeout:
        options += ["--call-timeout", str(args.call_timeout)]
    if args.scheduler and args.jobs:
        raise UsageError(
            "--jobs sizes the cluster dlgrade starts; with --scheduler the cluster's workers "
            "decide how many students run at once"
        )
    if args.executor == "dask":
        from dlgrade.classrun import cluster

        # raises UsageError where the dask extra is not installed
        executor = cluster.DaskExecutor(args.scheduler, workers=jobs if args.jobs else None)
    else:
        executor = classrun.LocalExecutor(jobs)
    job = classrun.plan(
        args.source,
        args.out,
        activities=args.activity,
        checks=args.checks,
        tier=args.tier,
        seed=args.seed,
        force=args.force,
        options=tuple(options),
    )
    code = classrun.run(job, executor)
    if args.similarity:
        students = [(s.student, Path(s.folder)) for s in job.students]
        similarity_report(students, list(job.activities), job.rubric_root, job.out, args)
    return code


def similarity_options(parser: argparse.ArgumentParser) -> None:
    from dlgrade import similarity

    parser.add_argument(
        "--threshold",
        type=float,
        default=similarity.DEFAULT_THRESHOLD,
        metavar="F",
        help="report a pair when either holds this share of the other "
        f"(default {similarity.DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--leak-threshold",
        type=float,
        default=similarity.DEFAULT_LEAK_THRESHOLD,
        metavar="F",
        help="report a submission holding this share of the reference solution "
        f"(default {similarity.DEFAULT_LEAK_THRESHOLD})",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="the reference solutions (default: reference/ beside the rubric folder)",
    )


def similarity_report(students, activities, rubric_root: Path, out: Path, args) -> None:
    """Write results/similarity.csv and .html, and link them from summary.html."""
    import time

    from dlgrade import gradebook, similarity
    from dlgrade.reports.exports import write_exports

    for name in ("threshold", "leak_threshold"):
        if not 0 < getattr(args, name) <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a share between 0 and 1")
    reference = args.reference or rubric_root.parent / "reference"
    if args.reference is not None and not args.reference.is_dir():
        raise UsageError(f"--reference {args.reference}: no such folder")
    began = time.monotonic()
    report = similarity.analyse(
        students,
        activities,
        reference=reference if reference.is_dir() else None,
        threshold=args.threshold,
        leak_threshold=args.leak_threshold,
    )
    similarity.write(out, report)
    records = gradebook.load_records(out)
    if records:  # a graded class: its summary links the report
        write_exports(out, gradebook.Gradebook.of(records), rubric_root)
    pairs = sum(p.flag == similarity.COPY_FLAG for p in report.pairs)
    leaks = len(report.pairs) - pairs
    print(
        f"similarity: {pairs} similar pair(s), {leaks} like the reference, of "
        f"{report.compared} pair(s) compared in {time.monotonic() - began:.1f} s → "
        f"{out / similarity.SIMILARITY_HTML}"
    )
    for note in report.skipped:
        print(f"  not compared: {printable(note)}")


def run_similarity(args: argparse.Namespace) -> int:
    from dlgrade import classrun
    from dlgrade.classrun import roster

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    students = classrun.class_students(args.source, out)
    rubric_root = checks_dir(args.checks)
    activities = args.activity or roster.activities_present(
        [Path(s.folder) for s in students], rubric_root
    )
    activities = select_activities(args.source, activities, rubric_root)
    similarity_report(
        [(s.student, Path(s.folder)) for s in students], activities, rubric_root, out, args
    )
    return EXIT_OK


def _add_canvas_parser(commands) -> None:
    """``dlgrade canvas push``: grades into a Canvas assignment (dlgrade/canvas_push.py)."""
    canvas = commands.add_parser("canvas", help="push grades to a Canvas assignment")
    verbs = canvas.add_subparsers(dest="verb", metavar="VERB", required=True)
    push = verbs.add_parser(
        "push",
        help="post each fully graded student's score and a short comment (token: $CANVAS_TOKEN)",
        description="Post each fully graded student's score to a Canvas assignment, only "
        "where it differs, and read it back. The token is read from $CANVAS_TOKEN only. "
        "See docs/lms.md.",
    )
    push.add_argument("results", type=Path, help="the results folder of `dlgrade grade`")
    push.add_argument(
        "--url", required=True, help="Canvas's address, e.g. https://canvas.example.edu"
    )
    push.add_argument("--course", required=True, metavar="ID", help="the Canvas course id")
    push.add_argument("--assignment", required=True, metavar="ID", help="the Canvas assignment id")
    push.add_argument(
        "--roster",
        type=Path,
        metavar="CSV",
        help="student id → Canvas user id (columns student, canvas_id); "
        "default: each record's lms_id",
    )
    push.add_argument(
        "--dry-run", action="store_true", help="show what would change; write nothing"
    )
    push.add_argument(
        "--feedback-url",
        metavar="TEMPLATE",
        help="where students read their feedback, e.g. https://host/fb/{stem}.html "
        "(default: the comment names feedback/<stem>.html)",
    )

    def run(args: argparse.Namespace) -> int:
        from dlgrade.canvas_push import run_canvas_push

        return run_canvas_push(args)

    push.set_defaults(run=run)


def _add_gradescope_parser(commands) -> None:
    """``dlgrade gradescope build|run``: a Gradescope autograder (dlgrade/gradescope_build.py)."""
    gradescope = commands.add_parser("gradescope", help="build a Gradescope autograder zip")
    verbs = gradescope.add_subparsers(dest="verb", metavar="VERB", required=True)
    build = verbs.add_parser(
        "build",
        help="write OUT.zip for Gradescope: setup.sh, run_autograder, wheel, pins, rubrics",
        description="Write a Gradescope autograder for the chosen activities and tier. "
        "See docs/gradescope.md.",
    )
    build.add_argument("out", type=Path, help="the zip to write, e.g. autograder.zip")
    build.add_argument(
        "--activity", action="append", metavar="N.NN", help="repeatable; default: all nine"
    )
    build.add_argument("--tier", choices=TIERS, default="quick", help="default: quick")
    build.add_argument(
        "--time-limit",
        type=int,
        metavar="SECONDS",
        help="the whole grade of one submission (default by tier: quick 900, standard 1800, "
        "full 3600)",
    )
    run = verbs.add_parser(
        "run", help="inside Gradescope (run_autograder): grade submission/, write results.json"
    )
    run.add_argument("--root", type=Path, help="default: $DLGRADE_GRADESCOPE_ROOT or /autograder")
    run.add_argument("--config", type=Path, help="default: ./dlgrade_gradescope.json")
    run.add_argument("--time-limit", type=float, metavar="SECONDS", help="default: the build's")

    def dispatch(args: argparse.Namespace) -> int:
        from dlgrade.gradescope_build import run_cli

        return run_cli(args)

    build.set_defaults(run=dispatch)
    run.set_defaults(run=dispatch)


def run_kit(args: argparse.Namespace) -> int:
    from dlgrade import kit

    return kit.run_kit(args)


class _ScoreCollector:
    """Receives the session's score from the plugin once pytest is done."""

    score: Score | None = None

    def pytest_sessionfinish(self, session) -> None:
        from dlgrade.plugin import STATE

        state = session.config.stash.get(STATE, None)
        if state is not None and state.active:
            self.score = state.score()


def grade(pytest_args: list[str], min_score: float | None) -> int:
    import pytest

    collector = _ScoreCollector()
    try:
        code = pytest.main(pytest_args, plugins=[collector])
    except Exception as exc:  # noqa: BLE001 - anything escaping pytest is a harness bug
        print(f"dlgrade: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return exit_code(code, collector.score, min_score)


def exit_code(pytest_code: int, score: Score | None, min_score: float | None) -> int:
    import pytest

    if pytest_code == pytest.ExitCode.INTERRUPTED and score is not None and score.checks:
        return ExitCode.INTERRUPTED  # Ctrl-C during grading
    if pytest_code in (
        pytest.ExitCode.USAGE_ERROR,
        pytest.ExitCode.INTERNAL_ERROR,
        pytest.ExitCode.INTERRUPTED,
    ):
        print("dlgrade: the rubric could not be run (see above); this is a grader bug.")
        return EXIT_INTERNAL
    if score is None or not score.checks:
        print("dlgrade: no checks ran at this tier.")
        return EXIT_OK if pytest_code == pytest.ExitCode.NO_TESTS_COLLECTED else EXIT_INTERNAL
    if any(result.is_internal_error for result in score.checks):
        return EXIT_INTERNAL
    if all(result.passed for result in score.checks):
        return EXIT_OK
    if min_score is not None and score.percent >= min_score:
        print(f"dlgrade: score {score.percent:.1f}% reaches --min-score {min_score:g}%")
        return EXIT_OK
    return EXIT_FAILED


def entry() -> None:
    """The ``dlgrade`` command. With Keras loaded (the rubric's models), Python's own exit
    spends a second or more tearing TensorFlow down after every result is written; the
    command leaves at once instead, its output flushed. ``main()`` returns normally, for
    callers in the same process."""
    code = main()
    if "tensorflow" in sys.modules:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
