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
    try:
        return args.run(args)
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
    check.set_defaults(run=run_check)
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


def run_check(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"submission folder {directory} does not exist")
    activities = select_activities(directory, args.activity)
    rubric_root = checks_dir(args.checks)
    files = []
    for activity in activities:
        rubric = rubric_root / f"{ACTIVITIES[activity][0]}.py"
        if not rubric.is_file():
            raise UsageError(f"no rubric for activity {activity} in {rubric_root}")
        files.append(str(rubric))
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
