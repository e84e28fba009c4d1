"""The model side of the engine: one layer spec for the architecture and compile checks (read
from the model inspector's description), the grader's own models (dlgrade.sandbox.feeds), unbuilt
models, and errors a student's model causes on the grader's data."""

from __future__ import annotations

import pytest

from dlgrade import models
from dlgrade.errors import SubmissionError
from dlgrade.rubric import CheckFailed
from dlgrade.sandbox import WorkerSession, feeds
from dlgrade.submission import Submission

SPEC = [
    models.Layer("Dense", units=300, activation="relu"),
    models.Layer("Dense", units=1, activation="sigmoid"),
]


@pytest.fixture(scope="module")
def keras():
    return models.keras()


def inspected(model) -> models.InspectedModel:
    """What the model inspector tells the trusted side about ``model`` (its description,
    made here by the inspector's own code, and checked as the trusted side checks it)."""
    return models.InspectedModel.from_description(feeds.describe(model))


def sequential(keras, *layers, inputs=(60,), compile=None):
    model = keras.Sequential([keras.Input(shape=inputs), *layers])
    if compile is not None:
        model.compile(**compile)
    return inspected(model)


def test_the_books_model_matches_its_spec(keras):
    model = sequential(
        keras, keras.layers.Dense(300, activation="relu"), keras.layers.Dense(1, "sigmoid")
    )
    assert models.architecture_problems(model, SPEC) == []


def test_an_activation_layer_counts_as_the_layers_activation(keras):
    """The book's Dense(512) then Activation('relu') is Dense(512, activation='relu'); a
    trailing Activation('linear') changes nothing."""
    model = sequential(
        keras,
        keras.layers.Dense(300),
        keras.layers.Activation("relu"),
        keras.layers.Dense(1),
        keras.layers.Activation("sigmoid"),
        keras.layers.Activation("linear"),
    )
    assert models.architecture_problems(model, SPEC) == []


def test_an_activation_after_a_non_linear_layer_is_a_layer_of_its_own(keras):
    model = sequential(
        keras,
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Activation("relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    )
    problems = models.architecture_problems(model, SPEC)
    assert "layer 2: expected Dense(units=1, activation='sigmoid'), got Activation(" in (
        "\n".join(problems)
    )


def test_the_diff_names_each_layer_expected_and_got(keras):
    model = sequential(
        keras, keras.layers.Dense(30, activation="relu"), keras.layers.Dense(1, "relu")
    )
    with pytest.raises(CheckFailed) as failed:
        models.expect_architecture(model, SPEC, "build_model()", params=98_701)
    message = str(failed.value)
    assert "build_model() differs from the book's model (1,861 parameters, expected 98,701)" in (
        message
    )
    assert "layer 1: expected Dense(units=300, activation='relu'), got Dense(units=30, " in message
    assert "layer 2: expected Dense(units=1, activation='sigmoid'), got Dense(units=1, " in message


def test_a_missing_and_an_extra_layer_are_named(keras):
    short = sequential(keras, keras.layers.Dense(300, activation="relu"))
    assert any(
        "layer 2: expected Dense(units=1, activation='sigmoid'), got nothing" in line
        for line in models.architecture_problems(short, SPEC)
    )
    long = sequential(
        keras,
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
        keras.layers.Dropout(0.5),
    )
    assert any(
        "layer 3: extra Dropout" in line for line in models.architecture_problems(long, SPEC)
    )


def test_int_and_tuple_kernel_sizes_are_the_same(keras):
    spec = [models.Layer("Conv2D", filters=4, kernel_size=3, strides=1, activation="relu")]
    model = sequential(keras, keras.layers.Conv2D(4, (3, 3), activation="relu"), inputs=(8, 8, 1))
    assert models.architecture_problems(model, spec) == []
    other = sequential(keras, keras.layers.Conv2D(4, 5, activation="relu"), inputs=(8, 8, 1))
    assert models.architecture_problems(other, spec)


def test_compile_settings_are_named_one_by_one(keras):
    adam = keras.optimizers.Adam(learning_rate=0.01, beta_1=0.9)
    model = sequential(keras, keras.layers.Dense(1), compile={"optimizer": adam, "loss": "mse"})
    want = models.Compiled(
        optimizer="adam",
        learning_rate=0.0002,
        loss="binary_crossentropy",
        accuracy=True,
        optimizer_config=(("beta_1", 0.5),),
    )
    problems = models.compile_problems(model, want)
    assert problems == [
        "learning rate 0.01, expected 0.0002",
        "optimizer beta_1=0.9, expected 0.5",
        "loss 'mse', expected 'binary_crossentropy'",
        "metrics [], expected ['accuracy']",
    ]
    assert models.compile_problems(model, models.Compiled(optimizer="adam", loss="mse")) == []


def test_an_uncompiled_model_is_told_to_compile(keras):
    with pytest.raises(CheckFailed, match="is not compiled; call model.compile"):
        models.expect_compiled(sequential(keras, keras.layers.Dense(1)), models.Compiled(), "m()")


def test_an_error_the_students_model_causes_here_is_the_students(keras):
    """A head of the wrong width makes Keras raise on the trusted side: bad_model, not ours."""
    import numpy as np

    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(120, "softmax")])
    model.compile(loss="categorical_crossentropy")
    with pytest.raises(SubmissionError) as raised, models.student_model("build_model()"):
        model.evaluate(np.zeros((8, 4)), np.zeros((8, 5)), verbose=0)
    assert raised.value.reason == "bad_model"
    assert str(raised.value).startswith("the model from build_model() cannot be run on the ")


def test_an_error_of_ours_inside_the_guard_stays_ours():
    with pytest.raises(KeyError), models.student_model("build_model()"):
        {}["missing"]


# -- in a worker: the grader's models, unbuilt models ---------------------------------------

STUDENT = """
import keras


def unbuilt():
    model = keras.Sequential()
    model.add(keras.layers.Embedding(50, output_dim=4))
    model.add(keras.layers.LSTM(3))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    return model


def fit(model, X, y):
    return model.fit(X, y, epochs=1, verbose=0).history
"""


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    (folder / "student.py").write_text(STUDENT)
    session = WorkerSession(folder, preload=("keras",))
    submission = Submission(folder, session)
    submission.timeout = 120
    yield submission
    session.close()


@pytest.mark.slow
def test_an_unbuilt_model_is_built_with_the_activitys_shape(submission):
    built = submission.build_model(submission.module("student").unbuilt, unbuilt_shape=(None, 10))
    total, _, _ = models.param_counts(built.model)
    assert total == 50 * 4 + 4 * (4 * 3 + 3 * 3 + 3) + 4


@pytest.mark.slow
def test_an_unbuilt_model_without_a_shape_fails_with_the_fix(submission):
    with pytest.raises(SubmissionError) as raised:
        submission.build_model(submission.module("student").unbuilt)
    assert raised.value.reason == "unbuilt_model"
    assert "keras.Input(shape=...)" in str(raised.value)


@pytest.mark.slow
def test_the_graders_model_is_built_from_the_spec_and_trains_in_the_worker(submission):
    import numpy as np

    spec = [models.Layer("Dense", units=8, activation="relu"), *SPEC[1:]]
    compiled = models.Compiled(optimizer="adam", learning_rate=0.01, loss="binary_crossentropy")
    handle = submission.grader_model(spec, (5,), compiled)
    before = submission.load_model(handle)
    assert models.architecture_problems(before, spec) == []
    assert models.compile_problems(before, compiled) == []
    X = np.random.default_rng(0).normal(size=(32, 5))
    history = submission.module("student").fit(handle, X, (X[:, 0] > 0).astype(int))
    assert set(history) == {"loss"}
    after = submission.load_model(handle)
    assert not np.array_equal(before.get_weights()[0], after.get_weights()[0])


@pytest.mark.slow
def test_an_unknown_feed_is_refused(submission):
    from dlgrade.errors import SandboxError

    with pytest.raises((SubmissionError, SandboxError)):
        submission.feed("os.system", "true")
