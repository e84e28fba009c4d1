"""Which rubric grades what: the rubric folder, the activities of a run, their rubric files,
and the pytest options every grading session runs with (``dlgrade check`` and ``grade``)."""

from __future__ import annotations

import os
from pathlib import Path

from dlgrade import activities as registry
from dlgrade.errors import RubricError, UsageError
from dlgrade.sandbox.notebook import ambiguity, module_path


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


def known_activities(rubric_root: Path | None) -> dict[str, tuple[str, str]]:
    """The activities ``rubric_root`` declares (the packaged ``checks/`` for None); a
    malformed declaration is a usage error naming the rubric and the fix."""
    try:
        return registry.registry(rubric_root or registry.packaged_root())
    except RubricError as exc:
        raise UsageError(str(exc)) from None


def select_activities(
    directory: Path, requested: list[str] | None, rubric_root: Path | None = None
) -> list[str]:
    """The activities to grade: those asked for, else those ``directory`` holds, of the
    activities ``rubric_root`` declares."""
    known = known_activities(rubric_root)
    if requested:
        unknown = [a for a in requested if a not in known]
        if unknown:
            raise UsageError(f"unknown activity {', '.join(unknown)}; known: {', '.join(known)}")
        return list(dict.fromkeys(requested))
    present = [a for a, (module, _) in known.items() if module_path(directory, module)]
    if not present:
        raise UsageError(
            f"{directory} holds no activity_*.py or activity_*.ipynb file; run `dlgrade new "
            f"{directory}` for skeletons, or pass --activity"
        )
    return present


def refuse_ambiguous(directory: Path, activities: list[str]) -> None:
    """A folder holding both ``activity_X_YY.py`` and ``.ipynb`` for an activity to grade."""
    for activity in activities:
        both = ambiguity(directory, registry.module_name(activity))
        if both:
            raise UsageError(both)


def quiet_pytest(rubric_root: Path) -> list[str]:
    """pytest's options for a grading session: dlgrade prints the report, nothing else."""
    return [
        "--tb=no",
        "-rN",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:warnings",
        # its unconfigure runs a full garbage collection (seconds with TensorFlow loaded)
        # to report unraisable exceptions, which a grading session never shows
        "-p",
        "no:unraisableexception",
        # Hypothesis's plugin imports Hypothesis to write its summary (1.5 s here); no
        # rubric uses it, and a student's kit does not have it
        "-p",
        "no:hypothesispytest",
        "-o",
        "addopts=",
        "--rootdir",
        str(rubric_root),
    ]


def rubric_files(rubric_root: Path, activities: list[str]) -> list[Path]:
    """Each activity's rubric, and its hidden checks where this rubric folder has them."""
    from dlgrade.rubric import hidden_name

    files = []
    for activity in activities:
        rubric = rubric_root / f"{registry.module_name(activity)}.py"
        if not rubric.is_file():
            raise UsageError(f"no rubric for activity {activity} in {rubric_root}")
        files.append(rubric)
        hidden = rubric_root / hidden_name(rubric.name)
        if hidden.is_file():
            files.append(hidden)
    return files
