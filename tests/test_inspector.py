"""The model inspector: a student's ``.keras`` file is never loaded by the grader's process.

Hostile archives (not zips, zip bombs, thousands of members, config.json nested 100,000
deep, bytes flipped anywhere) and hostile descriptions (what a compromised inspector could
answer) all end as the student's ``bad_model`` (or ``unsafe_model``), never as an exception
of the grader's, never as a hang.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlgrade import models
from dlgrade.errors import SubmissionError
from dlgrade.rubric import CheckFailed
from dlgrade.sandbox import WorkerSession, feeds, inspector
from dlgrade.sandbox.inspector import ARCHIVE_MESSAGE, ModelInspector, check_archive
from dlgrade.submission import Submission

#: examples per property test: small for CI, DLGRADE_FUZZ_EXAMPLES for a long run
FUZZ_EXAMPLES = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 60
#: examples of the property tests that load each archive in a real inspector
FUZZ_LOADS = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 8
FIX = ARCHIVE_MESSAGE.split("so the grader cannot inspect it. ")[1]
SPEC = [
    models.Layer("Dense", units=3, activation="relu"),
    models.Layer("Dense", units=1, activation="sigmoid"),
]


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A real, tiny saved model (Keras writes it here, in the test process)."""
    keras = models.keras()
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def members(saved) -> dict[str, bytes]:
    with zipfile.ZipFile(saved) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def refused(path: Path) -> SubmissionError:
    with pytest.raises(SubmissionError) as raised:
        check_archive(path)
    assert raised.value.reason == "bad_model"
    assert path.name in str(raised.value) and FIX in str(raised.value)
    return raised.value


# -- the trusted side's pre-check: the zip directory only, bounded --------------------------


def test_a_real_saved_model_passes_the_archive_check(saved):
    check_archive(saved)


def test_a_file_that_is_not_a_zip_is_the_students_bad_model(tmp_path):
    path = tmp_path / "model-1-1.keras"
    path.write_bytes(b"not a zip at all" * 100)
    assert "is not a zip archive" in str(refused(path))


def test_thousands_of_members_are_refused_before_the_directory_is_parsed(tmp_path):
    path = tmp_path / "many.keras"
    path.write_bytes(zip_of({f"m{i}": b"" for i in range(5_000)} | {"config.json": b"{}"}))
    assert "holds 5,001 files" in str(refused(path))


def test_a_zip_bomb_is_refused_by_its_declared_sizes(tmp_path):
    path = tmp_path / "bomb.keras"
    zeros = b"\0" * (64 * 2**20)  # 64 MiB that DEFLATE stores in about 64 KiB
    bomb = {"config.json": b"{}", "model.weights.h5": zeros}
    path.write_bytes(zip_of(bomb, zipfile.ZIP_DEFLATED))
    assert "a zip bomb" in str(refused(path))


def test_a_huge_config_json_is_refused_by_its_declared_size(tmp_path):
    path = tmp_path / "big.keras"
    path.write_bytes(zip_of({"config.json": b" " * (inspector.MAX_CONFIG_BYTES + 1)}))
    assert "has a config.json of" in str(refused(path))


def test_an_archive_without_config_json_is_refused(tmp_path):
    path = tmp_path / "empty.keras"
    path.write_bytes(zip_of({"weights.h5": b"x"}))
    assert "has no config.json" in str(refused(path))


def test_a_duplicated_member_is_refused(tmp_path, members):
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        archive.writestr("config.json", members["config.json"])
        archive.writestr("config.json", b"{}")
    path = tmp_path / "twice.keras"
    path.write_bytes(buffer.getvalue())
    assert "holds 'config.json' twice" in str(refused(path))


def test_a_fifo_or_a_link_in_place_of_the_file_never_blocks_the_grader(tmp_path, saved):
    fifo = tmp_path / "fifo.keras"
    os.mkfifo(fifo)
    assert "not a regular file" in str(refused(fifo))
    link = tmp_path / "link.keras"
    link.symlink_to(saved)
    assert "cannot be opened" in str(refused(link))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_bytes_pass_the_archive_check_or_are_the_students_bad_model(data, tmp_path_factory):
    """Random bytes, real archives cut short or with bytes flipped anywhere (the central
    directory included), and zips of random members: a pass or bad_model, nothing else."""
    kind = data.draw(st.sampled_from(["random", "flipped", "cut", "members"]))
    base = zip_of(
        {"metadata.json": b'{"keras_version": "3"}', "config.json": b"{}", "w.h5": b"x" * 300}
    )
    if kind == "random":
        content = data.draw(st.binary(max_size=2000))
    elif kind == "flipped":
        content = bytearray(base)
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(content) - 1))
            content[at] = data.draw(st.integers(0, 255))
        content = bytes(content)
    elif kind == "cut":
        content = base[: data.draw(st.integers(0, len(base)))]
    else:
        # names zipfile can write (it cuts at NUL and cannot encode surrogates)
        writable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
        name = st.text(writable, min_size=1, max_size=30)
        names = name | st.sampled_from(["config.json", "metadata.json"])
        content = zip_of(
            data.draw(st.dictionaries(names, st.binary(max_size=200), max_size=12)),
            data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])),
        )
    path = tmp_path_factory.mktemp("fuzz") / "model-1-2.keras"
    path.write_bytes(content)
    try:
        check_archive(path)
    except SubmissionError as exc:
        assert exc.reason == "bad_model" and "model-1-2.keras" in str(exc)


# -- descriptions: checked before they are believed ----------------------------------------


def test_the_description_of_a_real_model_reads_like_the_model():
    keras = models.keras()
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    found = models.InspectedModel.from_description(feeds.describe(model))
    assert found.input_shape == (None, 4) and found.output_shape == (None, 1)
    assert [layer.class_name for layer in found.layers] == ["Dense", "Dense"]
    assert models.param_counts(found) == (19, 19, 0)
    assert models.architecture_problems(found, SPEC) == []
    assert [w.shape for w in found.weights] == [(4, 3), (3,), (3, 1), (1,)]
    assert models.compile_settings(found).optimizer == "adam"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


def _forge(description: dict, data) -> dict:
    """A real description with one field anywhere replaced by arbitrary data."""
    path, node = [], description
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        key = data.draw(st.sampled_from(keys))
        path.append(key)
        node = node[key]
    forged = json.loads(json.dumps(description))  # a copy (tuples become lists: also forged)
    if not path:
        return data.draw(json_values)
    target = forged
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(json_values)
    return forged


@pytest.fixture(scope="module")
def description() -> dict:
    keras = models.keras()
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])
    return feeds.describe(model)


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_forged_description_is_bad_model_or_graded_never_our_error(data, description):
    """Whatever a compromised inspector answers, the trusted side refuses it as the
    student's bad_model, or grades it: the rubric helpers fail the check, nothing else."""
    forged = _forge(description, data)
    try:
        found = models.InspectedModel.from_description(forged, source="model-1-3.keras")
    except SubmissionError as exc:
        assert exc.reason == "bad_model" and "model-1-3.keras" in str(exc)
        return
    want = models.Compiled(optimizer="adam", learning_rate=0.001, loss="mse", accuracy=True)
    models.layers(found)
    models.param_counts(found)
    models.compile_settings(found)
    models.architecture_problems(found, SPEC)
    models.compile_problems(found, want)
    for expectation in (
        lambda: models.expect_architecture(found, SPEC, "build()", params=19),
        lambda: models.expect_compiled(found, want, "build()"),
    ):
        try:
            expectation()
        except CheckFailed:
            pass


# -- in a jailed inspector --------------------------------------------------------------------

STUDENT = """
import keras


def build():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model
"""


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    (folder / "student.py").write_text(STUDENT)
    session = WorkerSession(folder, preload=("keras",))
    submission = Submission(folder, session)
    submission.timeout = 120
    yield submission
    session.close()


@pytest.fixture(scope="module")
def jailed():
    """One inspector for the archive tests (as one student's would be)."""
    found = ModelInspector()
    yield found
    found.close()


@pytest.mark.slow
def test_config_json_nested_100000_deep_is_the_students_bad_model(tmp_path, members, jailed):
    """Loaded here this was a RecursionError in the grader: rubric_error, exit 3."""
    path = tmp_path / "deep.keras"
    deep = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    path.write_bytes(zip_of({**members, "config.json": deep}))
    with pytest.raises(SubmissionError) as raised:
        models.load(path, jailed)
    assert raised.value.reason == "bad_model"
    assert "deep.keras" in str(raised.value)


@pytest.mark.slow
def test_an_inspector_that_hangs_is_the_students_bad_model(saved, jailed, monkeypatch):
    jailed.load(saved)  # TensorFlow is loaded: what follows is the load itself
    monkeypatch.setattr(inspector, "LOAD_SECONDS", 0.001)
    with pytest.raises(SubmissionError) as raised:
        models.load(saved, jailed)
    assert raised.value.reason == "bad_model"
    assert "model inspector failed while loading your saved model (model.keras)" in str(
        raised.value
    )


@pytest.mark.slow
@settings(max_examples=FUZZ_LOADS, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_mutated_archive_loads_or_is_the_students_bad_model(
    data, members, jailed, tmp_path_factory
):
    """Archives whose config.json, metadata.json or weights are mutated, loaded in the
    inspector: a model (graded), or bad_model / unsafe_model — never our error."""
    member = data.draw(st.sampled_from(sorted(members)))
    content = bytearray(members[member])
    how = data.draw(st.sampled_from(["flip", "cut", "json"]))
    if how == "json" or not content:
        value = data.draw(json_values)
        content = bytearray(json.dumps(value).encode())
    elif how == "cut":
        content = content[: data.draw(st.integers(0, len(content)))]
    else:
        for _ in range(data.draw(st.integers(1, 6))):
            at = data.draw(st.integers(0, len(content) - 1))
            content[at] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("mutated") / "model-2-1.keras"
    path.write_bytes(zip_of({**members, member: bytes(content)}))
    try:
        found = models.load(path, jailed)
    except SubmissionError as exc:
        assert exc.reason in ("bad_model", "unsafe_model"), exc
        return
    models.architecture_problems(found, SPEC)
    models.param_counts(found)


@pytest.mark.slow
def test_the_inspector_runs_the_model_on_the_graders_data(student):
    built = student.build_model(student.module("student").build)
    spec = [*SPEC[:1], models.Layer("Dense", units=1)]
    assert models.architecture_problems(built.model, spec) == []
    x = np.random.default_rng(0).normal(size=(8, 4))
    assert built.model.predict(x).shape == (8, 1)
    assert isinstance(built.model.evaluate(x, x[:, :1]), float)
    with pytest.raises(SubmissionError) as raised, models.student_model("build()"):
        built.model.predict(np.zeros((8, 7)))
    assert raised.value.reason == "bad_model"
    assert str(raised.value).startswith("the model from build() cannot be run on the grader's")


@pytest.mark.slow
def test_an_inspected_snapshot_cannot_be_run(student):
    from dlgrade.errors import RubricError

    model, _ = student.inspect_model(student.module("student").build)
    with pytest.raises(RubricError, match="snapshot"):
        model.predict(np.zeros((1, 4)))


def test_each_student_has_an_inspector_of_their_own_closed_with_their_session(tmp_path):
    sessions = []
    for name in ("ann", "bob"):
        (tmp_path / name).mkdir()
        sessions.append(WorkerSession(tmp_path / name))
    found = [Submission(s.submission_dir, s).model_inspector() for s in sessions]
    assert found[0] is not found[1]
    found[0].start()
    process = found[0].session._proc.proc
    assert process.poll() is None
    for session in sessions:
        session.close()
    assert found[0].session is None and process.poll() is not None


@pytest.mark.slow
def test_the_grader_imports_no_keras_to_inspect_and_run_a_model(tmp_path):
    """In a fresh grader process: build, inspect, predict — and no Keras, no TensorFlow."""
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "student.py").write_text(STUDENT)
    script = f"""
import sys
import numpy as np
from dlgrade import models
from dlgrade.sandbox import WorkerSession
from dlgrade.submission import Submission

session = WorkerSession({str(tmp_path / "student")!r}, preload=("keras",))
submission = Submission(session.submission_dir, session)
submission.timeout = 120
built = submission.build_model(submission.module("student").build)
assert models.param_counts(built.model) == (19, 19, 0)
assert built.model.predict(np.zeros((2, 4))).shape == (2, 1)
session.close()
print("keras" in sys.modules, "tensorflow" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["False", "False"]
