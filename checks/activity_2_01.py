"""Rubric for Activity 2.01 — the sonar MLP (Dense 300/200/100/1, 98,701 parameters).

Data: the real sonar.csv when the data layer finds it (mirror or cache), otherwise a
learnable synthetic twin of the same shape (``dlgrade.data.synth.sonar``); the
check's output says which. Training thresholds were calibrated on the reference over seeds
0–9 by ``benchmarks/calibrate_activity_2_01.py`` (table in docs/writing-checks.md); on the
synthetic twin the reference scores 1.000 on every measure below (seeds 0–4).

* 30 epochs on all 208 real rows: the best epoch's training accuracy in the history is
  0.986–1.000 (the book: 1.0) → threshold 0.95. The last epoch alone dips to 0.94 on some
  seeds (Adam overshoots), so "reaches" means the best epoch, not the last.
* The history is the student's word, so the trained weights must back it: the returned
  model classifies 0.938–1.000 of the training rows (0.779 once in a worker run, where
  Adam's last step overshot; untrained: 0.42–0.54; after 3 epochs 0.71–0.81) → floor
  0.70, which a forged history on an untrained model does not reach.

Each check tests one function with the grader's own inputs: the training check trains the
book's model built by the grader (``BOOK_MODEL``) on the rows the grader read, so a mistake
in ``load_data`` or ``build_model`` costs its own check's points only.

Weights: reading the file it is given is as much ``load_data``'s job as parsing it (a
``load_data`` that reads a fixed path works on the student's laptop only), so both are 2;
an ignored ``input_dim`` is an ignored argument, 2 like the others.
"""

import numpy as np
import pandas as pd
import pytest

import dlgrade
from dlgrade import expect, models
from dlgrade.data import synth, twins

ACTIVITY = dlgrade.activity("2.01", "Sonar mines vs. rocks MLP")
PRELOAD = ("keras",)
DATASETS = ("sonar",)

BOOK_MODEL = [
    models.Layer("Dense", units=300, activation="relu"),
    models.Layer("Dense", units=200, activation="relu"),
    models.Layer("Dense", units=100, activation="relu"),
    models.Layer("Dense", units=1, activation="sigmoid"),
]
BOOK_COMPILE = models.Compiled(
    optimizer="adam", learning_rate=0.001, loss="binary_crossentropy", accuracy=True
)
BOOK_PARAMS = 98_701
TRAIN_ACCURACY = 0.95
TRAINED_WEIGHTS_FLOOR = 0.70


@pytest.fixture(scope="module")
def sonar_csv(tmp_path_factory):
    """The real sonar.csv, or a synthetic twin when the data layer cannot find it."""
    return twins.file_or_twin("sonar", tmp_path_factory.mktemp("sonar"))


def _expected(csv):
    frame = pd.read_csv(csv)
    return frame.drop(columns=["Class"]).to_numpy(dtype=np.float64), frame["Class"].to_numpy()


def _labels(classes) -> np.ndarray:
    """The grader's own 0/1 labels, a column (LabelEncoder's order: sorted class names)."""
    return (classes == np.unique(classes)[1]).astype(np.int64).reshape(-1, 1)


def _load(submission, student, csv, *, y_shape=True):
    result = student.load_data(str(submission.share(csv)))
    X, y = expect.sequence("load_data(path)", result, 2)
    rows = len(pd.read_csv(csv))
    X = expect.array("load_data(path)[0] (X)", X, shape=(rows, 60), kinds="fiu")
    shape = (rows, 1) if y_shape else None
    y = expect.array("load_data(path)[1] (y)", y, shape=shape, kinds="iubf")
    if y.dtype.kind == "f" and not np.all(np.isin(y, (0.0, 1.0))):
        values = sorted(set(np.unique(y).tolist()))[:6]
        dlgrade.fail(f"y holds the values {values}; expected 0 and 1")
    return X, y


@dlgrade.check(
    points=2,
    feedback="load_data(path) must read the CSV it is given and return X, the 60 feature "
    "columns in order (an array or the DataFrame df.iloc[:, :-1]), shape (n, 60), and y as "
    "0/1 labels of shape (n, 1) encoded from the Class column (LabelEncoder, then "
    "reshape(-1, 1)).",
)
def test_load_data_shapes_and_labels(submission, student, sonar_csv):
    """load_data returns X (208, 60) floats and y (208, 1) labels matching Class."""
    X, y = _load(submission, student, sonar_csv)
    want_X, classes = _expected(sonar_csv)
    expect.allclose(
        "load_data(path)[0] (X)",
        X,
        want_X,
        atol=1e-5,
        fix="X must hold the 60 feature columns of the CSV in order",
    )
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        dlgrade.fail(f"y holds the values {sorted(values)}; expected only 0 and 1")
    for label in np.unique(classes):
        encoded = set(y[classes == label, 0].tolist())
        if len(encoded) != 1:
            dlgrade.fail(f"rows with Class {label!r} got different labels {sorted(encoded)} in y")
    if len(set(y[:, 0].tolist())) != len(np.unique(classes)):
        dlgrade.fail("Mine and Rock rows got the same label in y")


@dlgrade.check(
    points=2,
    feedback="load_data(path) must read the file at `path`, not a fixed location: the grader "
    "passes its own copy, and another machine has no file where yours is.",
)
def test_load_data_reads_the_given_path(submission, student, scratch):
    """load_data reads the file it is given (a 50-row CSV gives 50 rows)."""
    csv = synth.sonar(scratch / "other_sonar.csv", rows=50, seed=3)
    X, _ = _load(submission, student, csv, y_shape=False)  # y's shape has its own check
    expect.allclose(
        "load_data(path)[0] (X) on a 50-row CSV",
        X,
        _expected(csv)[0],
        atol=1e-5,
        fix="X must hold the rows of the file at `path`",
    )


@dlgrade.check(
    points=3,
    feedback="build_model() must stack Dense(300, relu) → Dense(200, relu) → Dense(100, relu) "
    "→ Dense(1, sigmoid) on 60 inputs: 98,701 parameters.",
)
def test_model_architecture(submission, student):
    """The model is Dense 300/200/100 relu + Dense 1 sigmoid with 98,701 parameters."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, 60))
    models.expect_architecture(model, BOOK_MODEL, call, params=BOOK_PARAMS)
    if tuple(model.input_shape) != (None, 60):
        dlgrade.fail(f"{call} takes inputs of shape {model.input_shape}; expected (None, 60)")


@dlgrade.check(
    points=2,
    feedback="compile the model with optimizer='adam' (learning rate 0.001, Adam's default), "
    "loss='binary_crossentropy' and metrics=['accuracy'].",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with adam (0.001), binary cross-entropy and accuracy."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, 60))
    models.expect_compiled(model, BOOK_COMPILE, call)


@dlgrade.check(
    points=2,
    feedback="build_model(input_dim=n) must size the input layer from `input_dim` "
    "(keras.Input(shape=(input_dim,)), or input_dim=input_dim on the first Dense).",
)
def test_model_input_dim_is_honoured(submission, student):
    """build_model(input_dim=30) takes 30 inputs."""
    _, model, call = submission.build_model(
        student.build_model, unbuilt_shape=(None, 30), input_dim=30
    )
    # only the input width: the layer sizes have their own check
    kernel = next((w for w in model.weights if len(w.shape) == 2), None)
    if tuple(model.input_shape) != (None, 30) or kernel is None or kernel.shape[0] != 30:
        dlgrade.fail(
            f"{call} takes inputs of shape {model.input_shape}; expected (None, 30), with a "
            "first layer that reads all 30"
        )


@dlgrade.check(
    points=4,
    tier="standard",
    feedback="train(model, X, y, epochs=30) must fit the model it is given on X, y for "
    "`epochs` epochs and return history.history; the book's model reaches training accuracy "
    "1.0 in 30 epochs.",
)
def test_training_reaches_book_accuracy(submission, student, sonar_csv):
    """train() fits the grader's book model for 30 epochs: accuracy ≥ 0.95, backed by weights."""
    X, classes = _expected(sonar_csv)
    y = _labels(classes)
    handle = submission.grader_model(BOOK_MODEL, (60,), BOOK_COMPILE)
    history = expect.mapping(
        "train(model, X, y, epochs=30)", student.train(handle, X, y, epochs=30)
    )
    curve = [k for k in history if k in models.ACCURACY]
    if not curve:
        dlgrade.fail(f"train() returned a history with keys {sorted(history)}; expected 'accuracy'")
    values = history[curve[0]]
    if not isinstance(values, list) or len(values) != 30:
        dlgrade.fail(
            f"history[{curve[0]!r}] is {expect.describe(values)}; expected a list with one "
            "value per epoch (30)"
        )
    best = max(expect.scalar(f"history[{curve[0]!r}]", v) for v in values)
    dlgrade.measured("best training accuracy", best, TRAIN_ACCURACY)
    if best < TRAIN_ACCURACY:
        dlgrade.fail(
            f"the best training accuracy over 30 epochs is {best:.3f}; the book's model "
            f"reaches 1.0 (threshold {TRAIN_ACCURACY})"
        )
    # The history is the student's word; the trained weights are evidence.
    trained = submission.load_model(handle)
    accuracy = float(np.mean((trained.predict(X, verbose=0) > 0.5).astype(int) == y))
    if accuracy < TRAINED_WEIGHTS_FLOOR:
        dlgrade.fail(
            f"train() reports accuracy {best:.3f}, but the model it was given classifies only "
            f"{accuracy:.3f} of the training rows correctly afterwards; train the model you "
            "are given and return its real history"
        )
