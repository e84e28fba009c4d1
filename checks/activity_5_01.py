"""Rubric for Activity 5.01 — IBM closing prices with Conv1D + SimpleRNN (1,269 parameters).

Data: the real IBM.csv (2,518 rows, newest first) from the data layer, or its synthetic twin
(``dlgrade.data.synth.ibm``: the same rows, header and number formats) where it is not here; the
structure checks also use small series made here, where the right answer is known by
construction. The full tier needs the real prices.

Calibration (reference, ``benchmarks`` table in docs/writing-checks.md):
* standard — one epoch at batch size 1 on the first 400 scaled training windows: MSE on
  those windows falls from 0.0016–0.42 to 0.0008–0.0017; after/before 0.008–0.72 over seeds
  0–11 → the check asks after ≤ 0.85 × before and after ≤ 0.01.
* full — the book's 5 epochs at batch size 1: test RMSE 0.042 measured here (book 0.03) →
  threshold 0.06. One fit takes ~36 s on 2 cores.
"""

import numpy as np
import pandas as pd
import pytest

import dlgrade
from dlgrade import data, expect, models
from dlgrade.data import twins

ACTIVITY = dlgrade.activity("5.01", "IBM stock with Conv1D + SimpleRNN")
PRELOAD = ("keras",)
DATASETS = ("ibm",)

ROWS, TRAIN_ROWS, TEST_ROWS = 2518, 1888, 630
BOOK_PARAMS = 1_269
#: the book ends with Dense(1) then Activation("linear"): the same as a linear Dense(1)
BOOK_MODEL = [
    models.Layer("Reshape", target_shape=(10, 1)),
    models.Layer("Conv1D", filters=5, kernel_size=3, activation="relu"),
    models.Layer("SimpleRNN", units=32),
    models.Layer("Dropout", rate=0.25),
    models.Layer("Dense", units=1, activation="linear"),
]
BOOK_COMPILE = models.Compiled(optimizer="adam", loss="mean_squared_error")
STANDARD_WINDOWS = 400
STANDARD_RATIO = 0.85
STANDARD_MSE = 0.01
FULL_RMSE = 0.06


@pytest.fixture(scope="module")
def ibm_csv(tmp_path_factory):
    """The real IBM.csv, or its synthetic twin (same rows and format) when it is not here."""
    return twins.file_or_twin("ibm", tmp_path_factory.mktemp("ibm"))


@pytest.fixture(scope="module")
def closes(ibm_csv):
    """Close prices, oldest first, computed here from the CSV."""
    return pd.read_csv(ibm_csv)["Close"].to_numpy(dtype=np.float64)[::-1].reshape(-1, 1)


def _series(value, what, rows=None):
    __tracebackhide__ = True
    return expect.array(what, value, shape=(rows, 1), kinds="fiu").astype(np.float64)


def book_lookback(series: np.ndarray, look_back: int) -> tuple[np.ndarray, np.ndarray]:
    """The book's semantics: column j is the series shifted down by j + 1, zeros on top."""
    flat = series.reshape(-1)
    X = np.zeros((len(flat), look_back))
    for j in range(look_back):
        X[j + 1 :, j] = flat[: len(flat) - j - 1]
    return X, series.reshape(-1, 1)


@dlgrade.check(
    points=2,
    feedback="load_series(path) must read the CSV it is given, reverse it (the file is newest "
    "first) and return the Close column as an (n, 1) array, oldest first.",
)
def test_load_series_is_oldest_first(submission, student, ibm_csv, closes):
    """load_series gives 2,518 closes as (n, 1), oldest first."""
    got = _series(student.load_series(str(submission.share(ibm_csv))), "load_series(path)", ROWS)
    if np.allclose(got, closes[::-1]):
        dlgrade.fail(
            "load_series(path) is newest first; reverse it so the oldest close comes first"
        )
    expect.allclose(
        "load_series(path)",
        got,
        closes,
        fix=f"it starts {got[:3, 0]} and ends {got[-3:, 0]}; expected the Close column oldest "
        f"first: {closes[:3, 0]} … {closes[-3:, 0]}",
    )


@dlgrade.check(
    points=2,
    feedback="split(series, train_fraction) must cut at int(len(series) * train_fraction), "
    "keeping time order: the first part trains, the rest tests.",
)
def test_split_sizes_and_order(student, closes):
    """split gives 1,888 / 630 in time order, and honours train_fraction."""
    train, test = expect.sequence("split(series)", student.split(closes), 2)
    train = _series(train, "split(series)[0]")
    test = _series(test, "split(series)[1]")
    if (len(train), len(test)) != (TRAIN_ROWS, TEST_ROWS):
        dlgrade.fail(f"split(series) gives {len(train)} / {len(test)}; expected 1,888 / 630")
    if not (
        np.array_equal(train, closes[:TRAIN_ROWS]) and np.array_equal(test, closes[TRAIN_ROWS:])
    ):
        dlgrade.fail("split(series) must keep time order (no shuffling): train first, then test")
    half = expect.sequence("split(series, 0.5)", student.split(closes, train_fraction=0.5), 2)
    if len(_series(half[0], "split(series, 0.5)[0]")) != ROWS // 2:
        dlgrade.fail("split(series, train_fraction=0.5) must give 1,259 training values")


@dlgrade.check(
    points=2,
    feedback="scale(train, test) must fit MinMaxScaler on the training part only and apply it "
    "to both; fitting on all the data leaks the future into training.",
)
def test_scaler_is_fitted_on_train_only(student):
    """scale() fits on train only: test values outside the training range go outside [0, 1]."""
    train = np.arange(10, 20, dtype=np.float64).reshape(-1, 1)  # 10 … 19
    test = np.array([[5.0], [19.0], [28.0]])
    got = expect.sequence("scale(train, test)", student.scale(train, test), 2)
    train_scaled = _series(got[0], "scale(train, test)[0]", len(train))
    test_scaled = _series(got[1], "scale(train, test)[1]", len(test))
    want_train = (train - 10) / 9
    want_test = (test - 10) / 9  # -0.556, 1.0, 2.0
    expect.allclose(
        "scale(train, test)[0]",
        train_scaled,
        want_train,
        fix=f"scale() maps train 10…19 to {train_scaled[[0, -1], 0]}; expected 0 … 1",
    )
    expect.allclose(
        "scale(train, test)[1]",
        test_scaled,
        want_test,
        fix=f"scale() maps test [5, 19, 28] to {test_scaled[:, 0].round(3)}; with the scaler "
        f"fitted on train only that is {want_test[:, 0].round(3)}",
    )


@dlgrade.check(
    points=3,
    feedback="get_lookback(inp, k) must return X whose column j is the series shifted down by "
    "j + 1 (zeros for the missing head), and y = the series itself; shapes (n, k) and (n, 1).",
)
def test_lookback_semantics_and_shapes(student, closes):
    """get_lookback shifts by exactly 1..k with zeros on top; y is the series."""
    rng = np.random.default_rng(501)
    cases = [
        (rng.normal(size=(int(rng.integers(1, 30)), 1)), int(rng.integers(1, 8))) for _ in range(12)
    ]
    cases.append((closes[:TRAIN_ROWS], 10))
    cases.append((closes[TRAIN_ROWS:], 10))
    for series, k in cases:
        what = f"get_lookback(series of {len(series)}, {k})"
        X, y = expect.sequence(what, student.get_lookback(series, k), 2)
        X = expect.array(f"{what}[0]", X, shape=(len(series), k), kinds="fiu")
        y = expect.array(f"{what}[1]", y, shape=(len(series), 1), kinds="fiu")
        want_X, want_y = book_lookback(series, k)
        expect.allclose(f"{what}[1]", y, want_y, fix="it must be the series itself")
        for j in range(k):
            expect.allclose(
                f"{what}[0] column {j}",
                X[:, j],
                want_X[:, j],
                fix=f"it is {X[:4, j].round(3)} …; expected the series shifted down by {j + 1} "
                f"with zeros on top: {want_X[:4, j].round(3)} …",
            )


@dlgrade.check(
    points=2,
    feedback="build_model(look_back=10) must be Reshape((10, 1)) → Conv1D(5, 3, relu) → "
    "SimpleRNN(32) → Dropout(0.25) → Dense(1) → Activation('linear'): 1,269 parameters.",
)
def test_model_architecture(submission, student):
    """The model is Reshape → Conv1D(5, 3) → SimpleRNN(32) → Dropout → Dense(1): 1,269 params."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, 10))
    models.expect_architecture(model, BOOK_MODEL, call, params=BOOK_PARAMS)


@dlgrade.check(
    points=1,
    feedback="compile with loss='mean_squared_error' and optimizer='adam'.",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with MSE and adam."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, 10))
    models.expect_compiled(model, BOOK_COMPILE, call)


def _scaled_windows(closes):
    train = closes[:TRAIN_ROWS]
    low, high = train.min(), train.max()
    train_X, train_y = book_lookback((train - low) / (high - low), 10)
    test_X, test_y = book_lookback((closes[TRAIN_ROWS:] - low) / (high - low), 10)
    return train_X, train_y, test_X, test_y


def _mse(model, X, y) -> float:
    return float(np.mean((model.predict(X, verbose=0) - y) ** 2))


@dlgrade.check(
    points=3,
    tier="standard",
    feedback="train(model, X, y, epochs=1, batch_size=1) must fit the model it is given on "
    "X, y with that batch size (the book: validation_split=0.1) and return history.history.",
)
def test_one_epoch_lowers_the_loss(submission, student, closes):
    """train() fits the grader's model: one epoch on 400 windows lowers their MSE."""
    X, y, _, _ = _scaled_windows(closes)
    X, y = X[:STANDARD_WINDOWS], y[:STANDARD_WINDOWS]
    handle = submission.grader_model(BOOK_MODEL, (10,), BOOK_COMPILE)
    before = _mse(submission.load_model(handle), X, y)
    history = expect.mapping(
        "train(model, X, y, epochs=1)", student.train(handle, X, y, epochs=1, batch_size=1)
    )
    if "val_loss" not in history:
        dlgrade.fail(
            f"train() returned a history with keys {sorted(history)}; with the book's "
            "validation_split=0.1 Keras also reports val_loss",
            fix="pass validation_split=0.1 to model.fit, as the book does",
        )
    after = _mse(submission.load_model(handle), X, y)
    dlgrade.measured("training MSE after fitting", after, STANDARD_MSE, at_most=True)
    if not (after <= STANDARD_RATIO * before and after <= STANDARD_MSE):
        dlgrade.fail(
            f"one epoch of train() took the MSE on its data from {before:.4f} to {after:.4f}; "
            f"expected at most {STANDARD_RATIO} × before and at most {STANDARD_MSE}"
        )


@dlgrade.check(
    points=2,
    feedback="rmse(model, X, y) must return the root of the mean squared error of "
    "model.predict(X) against y, as a float: np.sqrt(np.mean((model.predict(X) - y) ** 2)).",
)
def test_rmse_is_the_root_mean_squared_error(submission, student, closes):
    """rmse() of the grader's model on 200 windows equals the RMSE computed here."""
    X, y, _, _ = _scaled_windows(closes)
    X, y = X[:200], y[:200]
    handle = submission.grader_model(BOOK_MODEL, (10,), BOOK_COMPILE)
    want = float(np.sqrt(_mse(submission.load_model(handle), X, y)))
    got = expect.scalar("rmse(model, X, y)", student.rmse(handle, X, y))
    expect.close("rmse(model, X, y)", got, want, 1e-5 + 1e-3 * want)


@dlgrade.check(
    points=4,
    tier="full",
    timeout=1800,
    feedback="with the book's 5 epochs at batch size 1 the model must predict the scaled test "
    "series with RMSE ≤ 0.06 (the book: 0.03); check the scaling, lookback and model.",
)
def test_book_training_reaches_test_rmse(submission, student, closes):
    """The book's 5 epochs at batch 1 reach test RMSE ≤ 0.06 on the scaled series."""
    data.path("ibm")  # the book's threshold holds for the real prices, not the twin's
    X, y, test_X, test_y = _scaled_windows(closes)
    handle, _, call = submission.build_model(student.build_model, unbuilt_shape=(None, 10))
    expect.mapping("train(...)", student.train(handle, X, y, epochs=5, batch_size=1))
    with models.student_model(call):
        rmse = float(np.sqrt(_mse(submission.load_model(handle), test_X, test_y)))
    dlgrade.measured("test RMSE", rmse, FULL_RMSE, at_most=True)
    if rmse > FULL_RMSE:
        dlgrade.fail(f"test RMSE after the book's training is {rmse:.4f}; expected ≤ {FULL_RMSE}")
