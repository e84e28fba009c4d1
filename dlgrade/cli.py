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

from dlgrade.rubric import ACTIVITIES, TIERS, Score

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """The command line asks for something that cannot be done; exit 2."""


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
        print(f"dlgrade {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"dlgrade {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlgrade", description="Grade The Deep Learning Workshop's activities."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    new = commands.add_parser("new", help="write skeleton modules for all nine activities")
    new.add_argument("directory", type=Path)
    new.add_argument("--force", action="store_true", help="overwrite existing files")
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
    check.set_defaults(run=run_check)

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
    synth = verbs.add_parser("synth", help="write small synthetic datasets in the real formats")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--scale", choices=["small"], default="small")
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
    written, kept = [], []
    for module, _title in ACTIVITIES.values():
        destination = target / f"{module}.py"
        if destination.exists() and not args.force:
            kept.append(destination.name)
            continue
        destination.write_text(skeletons.joinpath(f"{module}.py").read_text())
        written.append(destination.name)
    print(f"wrote {len(written)} skeleton(s) to {target}: {', '.join(written) or 'none'}")
    if kept:
        print(f"kept your existing {', '.join(kept)} (use --force to overwrite)")
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
    print(f"{'dataset':15} {'activities':15} {'size':>10}  {'where':7} verified")
    for name, entry in data.REGISTRY.items():
        where, root = data.status(name)
        if root is None:
            verified = f"no — run `dlgrade data fetch {name}`"
        else:
            try:
                hashed = data.verify(name, root)
                verified = "yes (sha256)" if hashed else "present (no fixed checksum)"
            except DataError as exc:
                verified = f"NO: {str(exc).splitlines()[0][:60]}…"
        size = entry.download_size or sum(f.size or 0 for f in entry.files) or None
        print(f"{name:15} {', '.join(entry.activities):15} {_size(size):>10}  {where:7} {verified}")
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
            print(f"{name}: OK in the {where} ({len(hashed)} file(s) checked by sha256)")
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

    from dlgrade import synth

    began = time.monotonic()
    written = synth.write_all(args.out_dir, seed=args.seed)
    total = sum(
        f.stat().st_size for f in args.out_dir.rglob("*") if f.is_file() and not f.is_symlink()
    )
    for name, where in written.items():
        print(f"{name:15} {where}")
    print(f"wrote {_size(total)} in {time.monotonic() - began:.1f} s to {args.out_dir}")
    return EXIT_OK


# -- check -------------------------------------------------------------------------------


def checks_dir(explicit: Path | None) -> Path:
    candidates = [explicit] if explicit else []
    if os.environ.get("DLGRADE_CHECKS"):
        candidates.append(Path(os.environ["DLGRADE_CHECKS"]))
    candidates += [Path(__file__).resolve().parent.parent / "checks", Path.cwd() / "checks"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise UsageError(
        "no rubric folder found; pass --checks DIR or set DLGRADE_CHECKS "
        f"(looked in: {', '.join(str(c) for c in candidates)})"
    )


def select_activities(directory: Path, requested: list[str] | None) -> list[str]:
    if requested:
        unknown = [a for a in requested if a not in ACTIVITIES]
        if unknown:
            raise UsageError(
                f"unknown activity {', '.join(unknown)}; known: {', '.join(ACTIVITIES)}"
            )
        return list(dict.fromkeys(requested))
    present = [a for a, (module, _) in ACTIVITIES.items() if (directory / f"{module}.py").exists()]
    if not present:
        raise UsageError(
            f"{directory} holds no activity_*.py file; run `dlgrade new {directory}` for "
            "skeletons, or pass --activity"
        )
    return present


def rubric_files(rubric_root: Path, activities: list[str]) -> list[Path]:
    """Each activity's rubric, and its hidden checks where this rubric folder has them."""
    from dlgrade.plugin import hidden_name

    files = []
    for activity in activities:
        rubric = rubric_root / f"{ACTIVITIES[activity][0]}.py"
        if not rubric.is_file():
            raise UsageError(f"no rubric for activity {activity} in {rubric_root}")
        files.append(rubric)
        hidden = rubric_root / hidden_name(rubric.name)
        if hidden.is_file():
            files.append(hidden)
    return files


def run_check(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"submission folder {directory} does not exist")
    activities = select_activities(directory, args.activity)
    rubric_root = checks_dir(args.checks)
    files = [str(f) for f in rubric_files(rubric_root, activities)]
    pytest_args = files + [
        "--submission",
        str(directory),
        "--tier",
        args.tier,
        "--dlgrade-live",
        "-q",
        "--tb=no",
        "-rN",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:warnings",
        "-o",
        "addopts=",
        "--rootdir",
        str(rubric_root),
    ]
    if args.seed is not None:
        pytest_args += ["--dlgrade-seed", str(args.seed)]
    if args.grade_json:
        pytest_args += ["--grade-json", str(args.grade_json)]
    if args.junit_xml:
        pytest_args += ["--junit-xml", str(args.junit_xml)]
    if args.call_timeout:
        pytest_args += ["--call-timeout", str(args.call_timeout)]
    for name in ("memory_limit", "disk_limit"):
        if getattr(args, name) is not None and not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of GiB")
    if args.memory_limit:
        pytest_args += ["--memory-limit", str(args.memory_limit)]
    if args.disk_limit:
        pytest_args += ["--disk-limit", str(args.disk_limit)]
    if args.allow_network:
        pytest_args.append("--allow-network")
    return grade(pytest_args, args.min_score)


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
        return 130  # Ctrl-C during grading
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


if __name__ == "__main__":
    sys.exit(main())
