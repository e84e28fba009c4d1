"""``dlgrade gradescope build OUT.zip``: a Gradescope autograder; ``dlgrade gradescope run``:
the grader it runs inside Gradescope.

The zip is what Gradescope's "Configure Autograder" page takes (docs/gradescope.md):

- ``setup.sh`` — run once, as root, when Gradescope builds the image: a virtual environment
  (``DLGRADE_VENV``, default ``/opt/dlgrade-venv``) with this checkout's wheel installed
  under ``constraints.txt``, the data of the chosen activities fetched ahead where the
  network allows, and ``dlgrade`` linked onto ``PATH`` (``DLGRADE_BIN_DIR``, default
  ``/usr/local/bin``).
- ``run_autograder`` — run for each submission, from ``source/``: ``dlgrade gradescope run``
  grades ``$DLGRADE_GRADESCOPE_ROOT/submission`` (default ``/autograder``) with the public
  and hidden checks and writes ``results/results.json``. It always writes one: a grade that
  crashes or passes the time limit gives a score of 0 and says why, and if even Python
  fails the script writes a minimal one itself.
- the wheel, ``constraints.txt`` (every distribution dlgrade's core requirements pull in,
  pinned to the version installed where the zip was built), ``checks/`` (public and hidden
  rubrics), ``dlgrade_gradescope.json`` (activities, tier, time limit) and
  ``MANIFEST.json`` (every file's sha256 and the git commit, as the student kit's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from dlgrade.errors import DlgradeError

CONFIG_NAME = "dlgrade_gradescope.json"
MANIFEST_NAME = "MANIFEST.json"
CONSTRAINTS_NAME = "constraints.txt"
SETUP_NAME = "setup.sh"
RUN_NAME = "run_autograder"
DEFAULT_ROOT = "/autograder"

#: the whole grade of one submission, in seconds, by tier (``--time-limit`` overrides):
#: past it the grade stops and the student gets 0 with a message. Gradescope's own timeout
#: must be longer (:data:`GRADESCOPE_TIMEOUT_MARGIN`), so that this message is what they see.
DEFAULT_TIME_LIMIT = {"quick": 900, "standard": 1800, "full": 3600}
GRADESCOPE_TIMEOUT_MARGIN = 120

#: Measured here (2-core x86_64, TensorFlow 2.21 CPU, tier quick) with ``run_autograder`` on
#: the reference solutions of all nine activities (111/111): the memory of every process of
#: the grade together, sampled twice a second (proportional set size: TensorFlow's shared
#: libraries counted once; ``gradescope run`` logs it), and the wall time. ``/usr/bin/time
#: -v`` said 720 MiB: the largest single process, not the grade. The numbers the build
#: prints, and docs/gradescope.md, come from these.
MEASURED_PEAK_MIB = 2139
MEASURED_WALL_S = 44
RECOMMENDED_MEMORY_GIB = 4  # the peak, plus TensorFlow's variation and the OS
RECOMMENDED_CPUS = 2


class GradescopeBuildError(DlgradeError):
    """The autograder zip cannot be built as asked."""


# -- the pins ------------------------------------------------------------------------------


def _requirement_names(dist: str, extras: tuple[str, ...] = ("",)) -> list[str]:
    """The distributions ``dist`` requires here (markers evaluated on this machine)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in extras
        ):
            continue
        names.append(requirement.name)
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(requirements: list[str] | None = None) -> dict[str, str]:
    """Every distribution dlgrade's core requirements pull in (transitively), and the
    version installed here: ``{canonical name: version}``. ``requirements``: the top-level
    names (default: dlgrade's own, extras left out)."""
    todo = list(requirements if requirements is not None else _requirement_names("dlgrade"))
    if not todo:
        raise GradescopeBuildError(
            "gradescope_build.pinned_versions: dlgrade is not installed in this environment, so "
            "its requirements are unknown; run `pip install -e .` in the checkout first"
        )
    pins: dict[str, str] = {}
    while todo:
        name = _canonical(todo.pop())
        if name in pins:
            continue
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # required only where a marker we evaluated differently applies
        todo += _requirement_names(name)
    return dict(sorted(pins.items()))


def constraints_text(pins: dict[str, str]) -> str:
    lines = [
        "# dlgrade's Gradescope autograder: every distribution dlgrade's core requirements",
        "# pull in, pinned to the version installed where the autograder was built",
        "# (dlgrade gradescope build). setup.sh installs with `pip install -c` this file.",
    ]
    lines += [f"{name}=={version}" for name, version in pins.items()]
    return "\n".join(lines) + "\n"


# -- the wheel -----------------------------------------------------------------------------


def package_sources(repo: Path) -> dict[str, Path]:
    """Path in the build tree → the checkout's file, for building the wheel: pyproject,
    README and the package (no caches, nothing else)."""
    sources = {"pyproject.toml": repo / "pyproject.toml", "README.md": repo / "README.md"}
    for path in sorted((repo / "dlgrade").rglob("*")):
        if "__pycache__" in path.parts or not path.is_file() or path.is_symlink():
            continue
        if path.suffix in (".py", ".json"):
            sources[path.relative_to(repo).as_posix()] = path
    for name, path in sources.items():
        if not path.is_file():
            raise GradescopeBuildError(f"{repo}: {name} is missing; build from a dlgrade checkout")
    return sources


def build_wheel(repo: Path, dest: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the checkout's package (the checkout itself gets
    no build/ folder); returns the wheel."""
    with tempfile.TemporaryDirectory(prefix="dlgrade-wheel-") as tmp:
        tree = Path(tmp) / "src"
        for name, source in package_sources(repo).items():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        wheels = Path(tmp) / "wheels"
        base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels)]
        errors = []
        # without build isolation first: no network needed where setuptools is installed
        for extra in (["--no-build-isolation"], []):
            run = subprocess.run(
                [*base, *extra, str(tree)], capture_output=True, text=True, timeout=600
            )
            built = sorted(wheels.glob("dlgrade-*.whl"))
            if run.returncode == 0 and built:
                dest.mkdir(parents=True, exist_ok=True)
                return Path(shutil.copy2(built[0], dest / built[0].name))
            errors.append((run.stderr or run.stdout).strip()[-800:])
    raise GradescopeBuildError(
        "gradescope_build.build_wheel: `pip wheel --no-deps` failed:\n"
        + "\n".join(errors)
        + "\ninstall setuptools>=68 in this environment (or allow pip to fetch it) and retry"
    )


# -- the scripts ---------------------------------------------------------------------------

SETUP_SH = r"""#!/usr/bin/env bash
# dlgrade's Gradescope autograder: setup.sh (written by `dlgrade gradescope build`).
# Gradescope runs it once, as root, when it builds the autograder image.
#   DLGRADE_VENV     the virtual environment (default /opt/dlgrade-venv)
#   DLGRADE_BIN_DIR  where the dlgrade command is linked (default /usr/local/bin, on PATH)
#   DLGRADE_PYTHON   the Python to use (default: python3.12, python3.11 or python3, >= 3.11)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${DLGRADE_VENV:-/opt/dlgrade-venv}"
BIN="${DLGRADE_BIN_DIR:-/usr/local/bin}"
DATASETS="@DATASETS@"
began=$(date +%s)

recent() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
PY="${DLGRADE_PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && recent "$candidate"; then PY="$candidate"; break; fi
  done
fi
if [ -z "$PY" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup.sh: no Python >= 3.11 here; installing python3.11 with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv
  PY=python3.11
fi
if [ -z "$PY" ] || ! recent "$PY"; then
  echo "setup.sh: error: dlgrade needs Python 3.11 or newer; choose Gradescope's" \
    "Ubuntu 24.04 base image, or set DLGRADE_PYTHON" >&2
  exit 1
fi
if ! "$PY" -m venv --help >/dev/null 2>&1 && command -v apt-get >/dev/null \
    && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(basename "$PY")-venv"
fi

echo "setup.sh: virtual environment $VENV ($("$PY" -V))"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  --constraint "$HERE/@CONSTRAINTS@" "$HERE"/@WHEEL@
mkdir -p "$BIN"
ln -sf "$VENV/bin/dlgrade" "$BIN/dlgrade"
"$BIN/dlgrade" --help >/dev/null

# data fetched ahead where the network allows; a failure here only means grading fetches
# it later (or the checks that need it fail with a message saying so)
for name in $DATASETS; do
  if command -v timeout >/dev/null; then guard="timeout 900"; else guard=""; fi
  $guard "$VENV/bin/dlgrade" data fetch "$name" \
    || echo "setup.sh: could not fetch dataset $name now (no network?);" \
      "it is fetched when grading needs it"
done

version="$("$VENV/bin/python" -c 'import dlgrade; print(dlgrade.__version__)')"
echo "setup.sh: dlgrade $version installed in $(( $(date +%s) - began )) s; dlgrade is $BIN/dlgrade"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# dlgrade's Gradescope autograder: run_autograder (written by `dlgrade gradescope build`).
# Gradescope runs it from /autograder/source for each submission. It always leaves a valid
# results/results.json: dlgrade writes it, and if dlgrade itself fails, this script does.
#   DLGRADE_GRADESCOPE_ROOT        Gradescope's folder (default /autograder)
#   DLGRADE_GRADESCOPE_TIME_LIMIT  seconds for the whole grade (default: the build's)
ROOT="${DLGRADE_GRADESCOPE_ROOT:-/autograder}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIMIT="${DLGRADE_GRADESCOPE_TIME_LIMIT:-@TIME_LIMIT@}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
cd "$ROOT/source" 2>/dev/null || cd "$HERE"

status=127
if command -v dlgrade >/dev/null; then
  # dlgrade stops the grade at LIMIT itself; this guard is for dlgrade hanging
  guard=""
  if command -v timeout >/dev/null; then guard="timeout -s KILL $(( LIMIT + 60 ))"; fi
  # Gradescope copies this script to $ROOT/run_autograder: the build's files are in source/
  $guard dlgrade gradescope run --root "$ROOT" --config "$PWD/@CONFIG@" --time-limit "$LIMIT"
  status=$?
else
  echo "run_autograder: the dlgrade command is not on PATH; did setup.sh finish?" >&2
fi

CHECK='import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (isinstance(d, dict) and ("score" in d or "tests" in d)))'
valid() {
  [ -s "$RESULTS" ] || return 1
  for py in python3 python; do
    if command -v "$py" >/dev/null; then
      "$py" -c "$CHECK" "$RESULTS"
      return $?
    fi
  done
  return 0
}
if ! valid; then
  echo "run_autograder: dlgrade wrote no valid results.json (exit $status); writing one" >&2
  why="The autograder itself failed (dlgrade exit status $status) before it could grade"
  why="$why this submission, so it scored 0. This is not a verdict on your code: tell your"
  why="$why instructor, who can see the log, and resubmit once it is fixed."
  printf '{"score": 0, "visibility": "visible", "stdout_visibility": "hidden", %s}\n' \
    "\"tests\": [], \"output\": \"$why\"" > "$RESULTS"
fi
exit 0
"""


def render_script(template: str, **values: str) -> str:
    text = template
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if re.search(r"@[A-Z_]+@", text):
        raise GradescopeBuildError(f"gradescope_build.render_script: unfilled {text!r:.80}")
    return text


# -- the build -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """What ``build`` wrote."""

    out: Path
    config: dict[str, Any]
    manifest: Any  # dlgrade.kit.KitManifest
    pins: dict[str, str]
    wheel: str


def datasets_for(activities: list[str]) -> list[str]:
    from dlgrade import data

    return [n for n, e in data.REGISTRY.items() if set(e.activities) & set(activities)]


def build(
    out: Path,
    *,
    activities: list[str] | None = None,
    tier: str = "quick",
    time_limit: int | None = None,
    repo: Path | None = None,
) -> Build:
    """Write the autograder zip to ``out`` (replaced if it exists)."""
    from dlgrade import __version__
    from dlgrade.activities import module_name, registry
    from dlgrade.errors import RubricError
    from dlgrade.kit import KitFile, KitManifest, _git_state, default_repo
    from dlgrade.rubric import TIERS

    repo = (repo or default_repo()).resolve()
    out = Path(out)
    if out.suffix != ".zip":
        raise GradescopeBuildError(
            f"{out}: name the autograder file OUT.zip (Gradescope takes a zip)"
        )
    if tier not in TIERS:
        raise GradescopeBuildError(f"--tier {tier}: choose one of {', '.join(TIERS)}")
    checks = repo / "checks"
    try:  # what the rubrics declare (ACTIVITY = dlgrade.activity(...))
        known = registry(checks)
    except RubricError as exc:
        raise GradescopeBuildError(str(exc)) from None
    activities = list(dict.fromkeys(activities or known))
    unknown = [a for a in activities if a not in known]
    if unknown:
        raise GradescopeBuildError(
            f"unknown activity {', '.join(unknown)}; known: {', '.join(known)}"
        )
    limit = int(time_limit or DEFAULT_TIME_LIMIT[tier])
    if limit < 10:
        raise GradescopeBuildError("--time-limit must be at least 10 seconds")
    rubrics = sorted(p for p in checks.glob("*.py") if p.is_file() and not p.is_symlink())
    for activity in activities:
        if not (checks / f"{module_name(activity)}.py").is_file():
            raise GradescopeBuildError(f"{checks} has no rubric for activity {activity}")
    pins = pinned_versions()
    members: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="dlgrade-gradescope-") as tmp:
        wheel = build_wheel(repo, Path(tmp))
        members[wheel.name] = wheel.read_bytes()
    commit, dirty = _git_state(repo, [*package_sources(repo).values(), *rubrics])
    config = {
        "dlgrade_version": __version__,
        "activities": activities,
        "tier": tier,
        "time_limit_s": limit,
        "datasets": datasets_for(activities),
        "git_commit": commit,
    }
    members[CONFIG_NAME] = (json.dumps(config, indent=2, allow_nan=False) + "\n").encode()
    members[CONSTRAINTS_NAME] = constraints_text(pins).encode()
    for rubric in rubrics:
        members[f"checks/{rubric.name}"] = rubric.read_bytes()
    members[SETUP_NAME] = render_script(
        SETUP_SH,
        DATASETS=" ".join(config["datasets"]),
        CONSTRAINTS=CONSTRAINTS_NAME,
        WHEEL=wheel.name,
    ).encode()
    members[RUN_NAME] = render_script(
        RUN_AUTOGRADER, TIME_LIMIT=str(limit), CONFIG=CONFIG_NAME
    ).encode()
    files = tuple(
        KitFile(name, hashlib.sha256(content).hexdigest(), len(content))
        for name, content in sorted(members.items())
    )
    manifest = KitManifest(files, __version__, commit, dirty)
    members[MANIFEST_NAME] = (manifest.to_json() + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            executable = name in (SETUP_NAME, RUN_NAME)
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    os.replace(partial, out)
    return Build(out, config, manifest, pins, wheel.name)


def settings_text(config: dict[str, Any]) -> str:
    """The container settings the instructor chooses on Gradescope, for this build."""
    limit = config["time_limit_s"]
    memory = RECOMMENDED_MEMORY_GIB if config["tier"] == "quick" else 2 * RECOMMENDED_MEMORY_GIB
    return "\n".join(
        [
            "Gradescope settings to choose (Configure Autograder → Autograder settings):",
            "  base image: Ubuntu 24.04 (Python 3.12; 22.04 works, setup.sh then installs "
            "python3.11 with apt)",
            f"  memory: at least {memory} GiB (measured peak of one full-marks grade of all "
            f"nine activities at tier quick: {MEASURED_PEAK_MIB} MiB, all processes "
            f"together, in {MEASURED_WALL_S} s)",
            f"  CPUs: {RECOMMENDED_CPUS} (TensorFlow uses what it gets; quick tier needs no "
            "more)",
            f"  timeout: at least {limit + GRADESCOPE_TIMEOUT_MARGIN} s (dlgrade stops the "
            f"grade at {limit} s and writes a score-0 result saying so; Gradescope's own "
            "timeout must come later)",
            "  internet: on while the image builds (pip, datasets); grading needs none",
        ]
    )


# -- the grader inside Gradescope (`dlgrade gradescope run`) -------------------------------

#: the top-level output of a result that did not come from a grade
TIMEOUT_TEXT = (
    "Grading stopped: it did not finish within the autograder's time limit of {limit} s, so "
    "this submission scored 0. Usually a loop that never ends, or training far longer than "
    "the activity's arguments ask (epochs, iterations). Run `dlgrade check` on your folder "
    "with the student kit to see which function is slow, fix it and resubmit."
)
CRASH_TEXT = (
    "The grader failed before it could grade this submission (exit status {code}), so it "
    "scored 0. This is not a verdict on your code: tell your instructor, who can see the "
    "log, and resubmit once it is fixed."
)
UPLOAD_TEXT = (
    "Your upload could not be unpacked, so nothing was graded and it scored 0: {why}. "
    "Upload your activity_X_YY.py or .ipynb files, or one ordinary zip of them."
)
NOTHING_TEXT = (
    "No activity file found in your submission: upload {names} (a .py module or an .ipynb "
    "notebook each, or one zip of them), named exactly so."
)


def header(config: dict[str, Any], *, device: str, sandbox: str) -> str:
    from dlgrade import __version__

    return (
        f"dlgrade {__version__} · tier {config.get('tier', '?')} · device {device or 'CPU'} · "
        f"activities {', '.join(config.get('activities', ()))}\n{sandbox}"
    )


def sandbox_line() -> str:
    """How the workers are isolated here, fallback said (Gradescope's container usually
    has no namespaces): dlgrade.sandbox.limits.describe, which never raises here."""
    try:
        import warnings

        from dlgrade.sandbox.limits import Limits, describe

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return describe(Limits())
    except Exception as exc:  # noqa: BLE001 - the result must still be written
        return f"sandbox: unknown ({type(exc).__name__}: {exc})"


def fallback_results(message: str, *, head: str = "", elapsed: float | None = None) -> dict:
    """A valid Gradescope result with score 0 and ``message`` (no tests)."""
    from dlgrade.text import printable

    result: dict[str, Any] = {
        "score": 0,
        "output": printable(f"{head}\n\n{message}" if head else message),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    }
    if elapsed is not None:
        result["execution_time"] = round(elapsed)
    return result


def write_results(path: Path, result: dict[str, Any]) -> Path:
    from dlgrade.atomic import write_atomic
    from dlgrade.text import dumps

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, dumps(result, indent=2) + "\n")


def collect_submission(submission: Path, dest: Path) -> Path | None:
    """The student's files from Gradescope's ``submission/`` — loose, in folders, or in a
    zip they uploaded — unpacked safely (dlgrade.classrun.lms: caps, no links, no climbing out) into
    ``dest``; returns the folder holding their activity files, or None."""
    from dlgrade.classrun import lms

    dest.mkdir(parents=True, exist_ok=True)
    wrapped = dest / "upload.zip"
    # the upload as an export of one student ("submission_1/..."), so that lms.unpack's
    # checks and its one-level unpacking of a student's zip apply unchanged
    with zipfile.ZipFile(wrapped, "w", zipfile.ZIP_DEFLATED) as archive:
        count = 0
        for path in sorted(submission.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            count += 1
            if count > lms.MAX_STUDENT_FILES:
                break
            archive.write(path, "submission_1/" + path.relative_to(submission).as_posix())
    unpacked = lms.unpack(wrapped, dest / "class")
    if not unpacked.students:
        return None
    folder = unpacked.students[0].folder
    candidates = sorted(
        {p.parent for p in folder.rglob("activity_*") if p.suffix in (".py", ".ipynb")},
        key=lambda p: (len(p.parts), str(p)),
    )
    if not candidates:
        return None
    chosen = candidates[0]
    if chosen == folder:
        return folder
    moved = dest / "class" / "submission_2"  # one folder per student, activity files on top
    shutil.move(str(chosen), moved)
    shutil.rmtree(folder, ignore_errors=True)
    return moved


class _PeakMemory(threading.Thread):
    """Samples, twice a second, the memory of a process and all its descendants together
    (Linux ``/proc``; elsewhere it measures nothing)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    @staticmethod
    def tree(pid: int) -> list[int]:
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                try:
                    todo += [int(c) for c in task.read_text().split()]
                except (OSError, ValueError):
                    pass
        return found

    @staticmethod
    def resident(pid: int) -> int:
        """The process's proportional share of resident memory (PSS: pages it shares with
        others, TensorFlow's libraries among them, counted once overall), else its RSS."""
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return 0
        return pages * os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, sum(self.resident(p) for p in self.tree(self.pid)))


def grade_submission(
    root: Path, config: dict[str, Any], time_limit: float, checks: Path
) -> tuple[dict[str, Any], int]:
    """The Gradescope result for ``root/submission``, and dlgrade grade's exit status."""
    from dlgrade import gradebook
    from dlgrade.activities import module_name
    from dlgrade.reports import gradescope

    began = time.monotonic()
    sandbox = sandbox_line()
    head = header(config, device="CPU", sandbox=sandbox)
    work = Path(tempfile.mkdtemp(prefix="dlgrade-gradescope-"))
    try:
        from dlgrade.classrun.lms import LmsError

        try:
            folder = collect_submission(root / "submission", work / "upload")
        except LmsError as exc:  # the upload itself: too big, damaged, a zip bomb
            return fallback_results(UPLOAD_TEXT.format(why=exc), head=head), 0
        if folder is None:
            names = ", ".join(f"{module_name(a)}.py" for a in config["activities"])
            return fallback_results(NOTHING_TEXT.format(names=names), head=head), 0
        out = work / "results"
        command = [
            sys.executable, "-m", "dlgrade.cli", "grade", str(folder.parent),
            "--out", str(out), "--tier", config["tier"], "--checks", str(checks), "--force",
        ]
        for activity in config["activities"]:
            command += ["--activity", activity]
        print(f"dlgrade gradescope run: {' '.join(command)}", flush=True)
        child = subprocess.Popen(command, start_new_session=True)
        meter = _PeakMemory(child.pid)
        meter.start()
        try:
            code = child.wait(timeout=max(1.0, time_limit - (time.monotonic() - began)))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
            code = None
        finally:
            meter.done.set()
            meter.join(2)
        if meter.peak:
            print(f"dlgrade gradescope run: peak memory of the grade {meter.peak / 2**20:.0f} MiB")
        elapsed = time.monotonic() - began
        if code is None:
            text = TIMEOUT_TEXT.format(limit=round(time_limit))
            return fallback_results(text, head=head, elapsed=elapsed), 124
        records = gradebook.load_records(out)
        if not records:
            return fallback_results(CRASH_TEXT.format(code=code), head=head, elapsed=elapsed), code
        record = records[0]
        result = gradescope.results(record)
        head = header(config, device=record.device, sandbox=sandbox)
        result["output"] = f"{head}\n\n{result.get('output', '')}"
        result["execution_time"] = round(elapsed)
        return result, code
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_gradescope(root: Path, config_path: Path, time_limit: float | None) -> int:
    """Grade, and write ``root/results/results.json`` whatever happens; 0 once it is written."""
    results = root / "results" / "results.json"
    began = time.monotonic()
    config: dict[str, Any] = {}
    try:
        config = json.loads(config_path.read_text())
        limit = float(time_limit or config["time_limit_s"])
        result, code = grade_submission(root, config, limit, config_path.parent / "checks")
        print(f"dlgrade gradescope run: dlgrade grade exit status {code}")
    except Exception as exc:  # noqa: BLE001 - a result must be written, whatever broke
        import traceback

        traceback.print_exc()
        result = fallback_results(
            CRASH_TEXT.format(code=f"{type(exc).__name__}: {exc}"),
            head=header(config, device="CPU", sandbox=sandbox_line()) if config else "",
            elapsed=time.monotonic() - began,
        )
    write_results(results, result)
    print(f"dlgrade gradescope run: score {result['score']} → {results}")
    return 0


# -- the command ---------------------------------------------------------------------------


def run_cli(args: argparse.Namespace) -> int:
    from dlgrade.errors import EXIT_OK, EXIT_USAGE

    if args.verb == "run":
        root = Path(args.root or os.environ.get("DLGRADE_GRADESCOPE_ROOT") or DEFAULT_ROOT)
        config = args.config or Path.cwd() / CONFIG_NAME
        return run_gradescope(root, Path(config), args.time_limit)
    try:
        made = build(
            args.out, activities=args.activity, tier=args.tier, time_limit=args.time_limit
        )
    except GradescopeBuildError as exc:
        print(f"dlgrade gradescope build: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    source = made.manifest.git_commit[:12] if made.manifest.git_commit else "no git commit"
    if made.manifest.git_dirty:
        source += ", with uncommitted changes"
    size = made.out.stat().st_size
    print(
        f"dlgrade gradescope build: wrote {made.out} ({size / 1e6:.1f} MB, "
        f"{len(made.manifest.files) + 1} files, {source})"
    )
    print(
        f"  activities {', '.join(made.config['activities'])} · tier {made.config['tier']} · "
        f"time limit {made.config['time_limit_s']} s · {made.wheel}"
    )
    print(f"  {len(made.pins)} distributions pinned in {CONSTRAINTS_NAME}; every file's sha256 "
          f"in {MANIFEST_NAME}")
    print("  public and hidden checks ship in checks/ (hidden ones shown after publishing)")
    print(settings_text(made.config))
    return EXIT_OK
