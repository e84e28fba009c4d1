"""``dlgrade gradescope build``: the autograder zip, its pins and manifest, and (slow) the
autograder run end to end the way Gradescope runs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest

from dlgrade import gradescope_build as gb
from dlgrade.cli import main

REPO = Path(__file__).resolve().parent.parent

#: Gradescope's results.json, written down from Gradescope's "Autograder Specifications",
#: section "Output format" (https://gradescope-autograders.readthedocs.io/en/latest/specs/;
#: its source: github.com/gradescope/autograder_samples, docs/specs.md). Every field is
#: optional there except that a score is needed at the top or on every test; the
#: visibility values are those of "Controlling Test Case Visibility"; ``status`` per test
#: ("passed"/"failed") and the ``*_format`` fields are from the current page.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
GRADESCOPE_RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": FORMAT,
        "test_output_format": FORMAT,
        "test_name_format": FORMAT,
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": FORMAT,
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": FORMAT,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
        "leaderboard": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "value"],
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": ["number", "string"]},
                    "order": {"enum": ["asc", "desc"]},
                },
            },
        },
    },
    # "score": optional, but required if not on each test case
    "anyOf": [
        {"required": ["score"]},
        {
            "required": ["tests"],
            "properties": {"tests": {"items": {"required": ["score"]}}},
        },
    ],
}


def validate(result: dict) -> None:
    jsonschema.validate(result, GRADESCOPE_RESULTS_SCHEMA)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, gb.Build]:
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    return out, gb.build(out, activities=["1.01", "2.01"], tier="quick", time_limit=600)


# -- the zip -------------------------------------------------------------------------------


def test_zip_holds_scripts_wheel_pins_rubrics_and_manifest(built):
    out, made = built
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        config = json.loads(archive.read(gb.CONFIG_NAME))
    assert {gb.SETUP_NAME, gb.RUN_NAME, gb.CONSTRAINTS_NAME, gb.MANIFEST_NAME} <= names
    wheels = [n for n in names if n.endswith(".whl")]
    assert wheels == [made.wheel] and made.wheel.startswith("dlgrade-")
    # Gradescope needs both scripts at the zip's root, executable
    assert modes[gb.SETUP_NAME] & 0o111 and modes[gb.RUN_NAME] & 0o111
    # public and hidden rubrics both ship: this zip is the instructor's
    rubrics = sorted(p.name for p in (REPO / "checks").glob("*.py"))
    assert sorted(n.removeprefix("checks/") for n in names if n.startswith("checks/")) == rubrics
    assert "checks/activity_1_01_hidden.py" in names
    assert config["activities"] == ["1.01", "2.01"] and config["tier"] == "quick"
    assert config["time_limit_s"] == 600
    assert config["datasets"] == gb.datasets_for(["1.01", "2.01"]) and config["datasets"]
    # nothing of the repository beyond the rubrics and the package
    assert not any(n.startswith(("reference/", "tests/", "submissions/")) for n in names)


def test_wheel_holds_the_package_and_nothing_of_the_rubrics(built):
    out, made = built
    with zipfile.ZipFile(out) as archive, zipfile.ZipFile(
        __import__("io").BytesIO(archive.read(made.wheel))
    ) as wheel:
        members = wheel.namelist()
        shipped = wheel.read("dlgrade/gradescope_build.py")
    assert "dlgrade/cli.py" in members and "dlgrade/schema/" not in members
    assert any(m.startswith("dlgrade/schema/") and m.endswith(".json") for m in members)
    assert not any(m.startswith(("checks/", "reference/", "tests/")) for m in members)
    assert shipped == (REPO / "dlgrade" / "gradescope_build.py").read_bytes()


def test_manifest_hashes_every_file_of_the_zip(built):
    out, made = built
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read(gb.MANIFEST_NAME))
        contents = {n: archive.read(n) for n in archive.namelist() if n != gb.MANIFEST_NAME}
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(contents)
    for name, content in contents.items():
        assert listed[name]["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert listed[name]["size"] == len(content)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    expected = head.stdout.strip() if head.returncode == 0 else None
    assert manifest["git_commit"] == expected
    assert manifest["dlgrade_version"] == metadata.version("dlgrade")


def test_constraints_pin_what_is_installed_here(built):
    out, made = built
    with zipfile.ZipFile(out) as archive:
        lines = archive.read(gb.CONSTRAINTS_NAME).decode().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    # every core requirement of dlgrade is pinned, at the version installed here
    core = {gb._canonical(n) for n in gb._requirement_names("dlgrade")}
    assert core and core <= set(pins)
    for name in ("keras", "numpy", "nltk", "gensim", "pytest"):
        assert pins[name] == metadata.version(name)
    # CPU TensorFlow where this machine installs it
    if "tensorflow-cpu" in core:
        assert pins["tensorflow-cpu"] == metadata.version("tensorflow-cpu")
    # transitive: what keras needs is pinned too
    assert pins["h5py"] == metadata.version("h5py")
    # nothing outside the closure: the test extra's hypothesis is not a core dependency
    assert "hypothesis" not in pins


def test_scripts_are_filled_in_and_parse_as_bash(built):
    out, made = built
    with zipfile.ZipFile(out) as archive:
        setup = archive.read(gb.SETUP_NAME).decode()
        run = archive.read(gb.RUN_NAME).decode()
    for text in (setup, run):
        assert "@" not in "".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        check = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
    assert made.wheel in setup and "sonar" in setup  # 2.01's data fetched ahead
    assert "DLGRADE_GRADESCOPE_ROOT" in run and "600" in run


def test_build_refuses_an_unknown_activity_and_a_non_zip(tmp_path, capsys):
    assert main(["gradescope", "build", str(tmp_path / "a.zip"), "--activity", "9.99"]) == 2
    assert "unknown activity 9.99" in capsys.readouterr().err
    assert main(["gradescope", "build", str(tmp_path / "a.tar")]) == 2
    assert "OUT.zip" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_build_prints_the_container_settings(tmp_path, capsys):
    assert main(["gradescope", "build", str(tmp_path / "a.zip"), "--activity", "1.01"]) == 0
    said = capsys.readouterr().out
    assert f"memory: at least {gb.RECOMMENDED_MEMORY_GIB} GiB" in said
    assert f"{gb.MEASURED_PEAK_MIB} MiB" in said
    assert f"timeout: at least {900 + gb.GRADESCOPE_TIMEOUT_MARGIN} s" in said
    assert "CPUs:" in said and zipfile.is_zipfile(tmp_path / "a.zip")


# -- the grader's fallbacks ----------------------------------------------------------------


def test_fallback_results_are_valid_and_say_why(tmp_path):
    config = {"tier": "quick", "activities": ["1.01"]}
    head = gb.header(config, device="CPU", sandbox="sandbox: WARNING resource limits only (x)")
    result = gb.fallback_results(gb.TIMEOUT_TEXT.format(limit=40), head=head, elapsed=41.2)
    path = gb.write_results(tmp_path / "results" / "results.json", result)
    written = json.loads(path.read_text())
    validate(written)
    assert written["score"] == 0 and written["tests"] == []
    assert "time limit of 40 s" in written["output"] and "tier quick" in written["output"]
    assert "resource limits only" in written["output"] and written["execution_time"] == 41


def test_run_writes_results_even_when_the_config_is_missing(tmp_path, capsys):
    (tmp_path / "submission").mkdir()
    code = main(["gradescope", "run", "--root", str(tmp_path), "--config", str(tmp_path / "x")])
    assert code == 0
    written = json.loads((tmp_path / "results" / "results.json").read_text())
    validate(written)
    assert written["score"] == 0 and "grader failed" in written["output"]


def test_run_with_no_activity_file_says_what_to_upload(tmp_path, monkeypatch):
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "notes.txt").write_text("hello")
    config = tmp_path / "source" / gb.CONFIG_NAME
    config.parent.mkdir()
    config.write_text(json.dumps({"tier": "quick", "activities": ["1.01"], "time_limit_s": 60}))
    monkeypatch.setattr(gb, "sandbox_line", lambda: "sandbox: test")
    assert gb.run_gradescope(tmp_path, config, None) == 0
    written = json.loads((tmp_path / "results" / "results.json").read_text())
    validate(written)
    assert written["score"] == 0 and "activity_1_01.py" in written["output"]


def test_an_upload_that_cannot_be_unpacked_is_the_students_zero(tmp_path, monkeypatch):
    from dlgrade.classrun.lms import LmsError

    (tmp_path / "submission").mkdir()
    config = tmp_path / "source" / gb.CONFIG_NAME
    config.parent.mkdir()
    config.write_text(json.dumps({"tier": "quick", "activities": ["1.01"], "time_limit_s": 60}))
    monkeypatch.setattr(gb, "sandbox_line", lambda: "sandbox: test")

    def refuse(submission, dest):
        raise LmsError("would unpack to 2,000,000,000 bytes (a zip bomb?)")

    monkeypatch.setattr(gb, "collect_submission", refuse)
    assert gb.run_gradescope(tmp_path, config, None) == 0
    written = json.loads((tmp_path / "results" / "results.json").read_text())
    validate(written)
    assert written["score"] == 0 and "could not be unpacked" in written["output"]
    assert "zip bomb" in written["output"] and "grader failed" not in written["output"]


def test_submission_in_a_zip_with_a_folder_is_found(tmp_path):
    submission = tmp_path / "submission"
    submission.mkdir()
    with zipfile.ZipFile(submission / "work.zip", "w") as archive:
        archive.writestr("my_work/activity_1_01.py", "x = 1\n")
        archive.writestr("my_work/activity_2_01.ipynb", "{}")
        archive.writestr("../escape.py", "bad")
    os.symlink("/etc/passwd", submission / "link.py")
    folder = gb.collect_submission(submission, tmp_path / "work")
    assert folder is not None
    assert sorted(p.name for p in folder.iterdir()) == ["activity_1_01.py", "activity_2_01.ipynb"]
    assert (folder / "activity_1_01.py").read_text() == "x = 1\n"
    assert not (tmp_path / "escape.py").exists()


def _script(root: Path, name: str, env: dict, *, timeout: float) -> subprocess.CompletedProcess:
    """Run one of the zip's scripts as Gradescope does: bash, from ``source/``."""
    return subprocess.run(
        ["bash", str(root / "source" / name)],
        cwd=root / "source",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_bash_fallback_writes_results_when_dlgrade_is_missing(built, tmp_path):
    out, _ = built
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    with zipfile.ZipFile(out) as archive:
        archive.extractall(root / "source")
    env = {"PATH": "/usr/bin:/bin", "DLGRADE_GRADESCOPE_ROOT": str(root)}
    done = _script(root, gb.RUN_NAME, env, timeout=60)
    assert done.returncode == 0
    written = json.loads((root / "results" / "results.json").read_text())
    validate(written)
    assert written["score"] == 0 and "exit status 127" in written["output"]
    assert "not on PATH" in done.stderr


def test_schema_rejects_what_gradescope_rejects():
    with pytest.raises(jsonschema.ValidationError):
        validate({"tests": [{"name": "no score"}]})
    with pytest.raises(jsonschema.ValidationError):
        validate({"score": 1, "tests": [{"score": 1, "visibility": "secret"}]})
    validate({"tests": [{"score": 1, "max_score": 1}]})


# -- end to end (slow): setup.sh into a fresh venv, run_autograder on four submissions ------

WRONG = '''
import tensorflow as tf


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return a * x**2 + b * x + c  # no abs


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    return 3.0
'''
CRASHING = '''
import os


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    os._exit(3)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    os._exit(3)
'''
HANGING = '''
import time

while True:  # at import: the whole grade hangs
    time.sleep(1)
'''


def _run_autograder(root: Path, bin_dir: Path, limit: int) -> tuple[dict, str]:
    results = root / "results" / "results.json"
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}:/usr/bin:/bin",
        DLGRADE_GRADESCOPE_ROOT=str(root),
        DLGRADE_GRADESCOPE_TIME_LIMIT=str(limit),
    )
    env.pop("VIRTUAL_ENV", None)
    done = _script(root, gb.RUN_NAME, env, timeout=limit + 180)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(results.read_text())
    validate(result)
    return result, done.stdout + done.stderr


def _submit(root: Path, files: dict[str, str], *, zipped: bool = False) -> None:
    submission = root / "submission"
    shutil.rmtree(submission, ignore_errors=True)
    submission.mkdir()
    if zipped:
        with zipfile.ZipFile(submission / "submission.zip", "w") as archive:
            for name, text in files.items():
                archive.writestr(f"hw1/{name}", text)
        return
    for name, text in files.items():
        (submission / name).write_text(text)


@pytest.mark.slow
def test_end_to_end_setup_and_run_autograder(tmp_path):
    out = tmp_path / "autograder.zip"
    gb.build(out, activities=["1.01"], tier="quick")
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "results").mkdir()
    with zipfile.ZipFile(out) as archive:
        archive.extractall(root / "source")
    for script in (gb.SETUP_NAME, gb.RUN_NAME):
        path = root / "source" / script
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    venv, bin_dir = tmp_path / "venv", tmp_path / "bin"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(DLGRADE_VENV=str(venv), DLGRADE_BIN_DIR=str(bin_dir), DLGRADE_PYTHON=sys.executable)
    setup = _script(root, gb.SETUP_NAME, env, timeout=1800)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert (bin_dir / "dlgrade").is_symlink()
    assert os.path.realpath(bin_dir / "dlgrade") == str((venv / "bin" / "dlgrade").resolve())
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
         "print(m.version('keras'), m.version('numpy'))"],
        capture_output=True, text=True,
    )
    assert installed.stdout.split() == [metadata.version("keras"), metadata.version("numpy")]

    # correct: the reference, uploaded as a loose .py
    _submit(root, {"activity_1_01.py": (REPO / "reference" / "activity_1_01.py").read_text()})
    correct, log = _run_autograder(root, bin_dir, 600)
    total = sum(t["max_score"] for t in correct["tests"])
    assert total > 0 and correct["score"] == total, log
    assert all(t["status"] == "passed" for t in correct["tests"])
    hidden = [t for t in correct["tests"] if t["visibility"] == "after_published"]
    assert hidden and len(hidden) < len(correct["tests"])
    head = correct["output"].splitlines()
    assert head[0].startswith(f"dlgrade {metadata.version('dlgrade')} · tier quick · device ")
    assert head[1].startswith("sandbox: ")  # namespaces, or the fallback said as such

    # wrong: in a zip, inside a folder
    _submit(root, {"activity_1_01.py": WRONG}, zipped=True)
    wrong, log = _run_autograder(root, bin_dir, 600)
    assert len(wrong["tests"]) == len(correct["tests"]), log
    assert 0 <= wrong["score"] < total
    assert any(t["status"] == "failed" and t["output"] != "Passed." for t in wrong["tests"])
    # a hidden check's output never carries its inputs
    for test in wrong["tests"]:
        if test["visibility"] == "after_published" and test["status"] == "failed":
            assert "hidden check" in test["output"]

    # crashing: the worker dies in every call
    _submit(root, {"activity_1_01.py": CRASHING})
    crashed, log = _run_autograder(root, bin_dir, 600)
    assert crashed["score"] < total and crashed["tests"], log
    assert all(t["status"] == "failed" for t in crashed["tests"][:2])

    # hanging: the whole grade passes the time limit
    _submit(root, {"activity_1_01.py": HANGING})
    hung, log = _run_autograder(root, bin_dir, 45)
    assert hung["score"] == 0 and hung["tests"] == [], log
    assert "time limit of 45 s" in hung["output"] and "sandbox: " in hung["output"]
