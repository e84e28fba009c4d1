"""Activity 5.01 — Predicting IBM's stock price with Conv1D and a SimpleRNN.

Turn the IBM closing prices into scaled look-back windows and train a small Conv1D +
SimpleRNN regressor. The grader calls `load_series`, `split`, `scale`, `get_lookback`,
`build_model`, `train` and `rmse`, passing the CSV path in. To try it yourself, get the path
from the data layer (`from dlgrade.data import path`, then `path("ibm")`) rather than
hard-coding one.
"""


def load_series(path):
    """Read ``IBM.csv`` at ``path`` and return the Close prices, oldest first, shape ``(n, 1)``.

    The file has 2,518 rows, newest first, with header ``Date,Close, Volume, Open, High, Low``
    (note the spaces). Reverse the rows so the oldest day comes first and return the
    ``Close`` column as a float numpy array of shape ``(n, 1)``.
    """
    raise NotImplementedError("activity_5_01.load_series is not implemented yet")


def split(series, train_fraction=0.75):
    """Split ``series`` in time order and return ``(train, test)``.

    The first ``int(len(series) * train_fraction)`` rows are ``train``, the rest ``test``; no
    shuffling. For IBM that is 1,888 and 630 rows, each still of shape ``(rows, 1)``.
    """
    raise NotImplementedError("activity_5_01.split is not implemented yet")


def scale(train, test):
    """Return ``(train_scaled, test_scaled)`` using a ``MinMaxScaler`` fitted on train only.

    Fit sklearn's ``MinMaxScaler`` on ``train`` and transform both arrays with it; shapes are
    unchanged. ``train_scaled`` lies in [0, 1]; ``test_scaled`` may go outside that range.
    Never fit on the test data.
    """
    raise NotImplementedError("activity_5_01.scale is not implemented yet")


def get_lookback(inp, look_back):
    """Return ``(X, y)``: lagged copies of ``inp`` as features and ``inp`` itself as target.

    ``inp`` has shape ``(n, 1)``. Column ``k - 1`` of ``X`` is ``inp`` shifted down by ``k``
    rows, for ``k = 1 .. look_back`` (the book uses ``pandas.DataFrame.shift``), with the
    missing leading values set to 0. ``X`` has shape ``(n, look_back)``; ``y`` is ``inp``
    with shape ``(n, 1)``. For IBM with ``look_back=10``: X is ``(1888, 10)`` and
    ``(630, 10)``.
    """
    raise NotImplementedError("activity_5_01.get_lookback is not implemented yet")


def build_model(look_back=10):
    """Build and return the compiled Conv1D + SimpleRNN regressor.

    Layers: Reshape((look_back, 1)) -> Conv1D(5, 3, relu) -> SimpleRNN(32) -> Dropout(0.25) ->
    Dense(1) -> Activation("linear"), taking inputs of shape ``(look_back,)`` (start with
    ``keras.Input(shape=(look_back,))``). With ``look_back=10`` that is 1,269 parameters.
    Compile with loss ``"mean_squared_error"`` and optimizer ``"adam"``.
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_5_01.build_model is not implemented yet")


def train(model, X, y, *, epochs=5, batch_size=1):
    """Fit ``model`` on ``(X, y)`` and return ``history.history``.

    Train the model you are given (the grader passes its own copy of the book's model and its
    own windows) with the given ``epochs`` and ``batch_size`` and the book's
    ``validation_split=0.1``. Return the plain dict with ``"loss"`` and ``"val_loss"``, one
    value per epoch.
    """
    raise NotImplementedError("activity_5_01.train is not implemented yet")


def rmse(model, X, y):
    """Return the root-mean-squared error of ``model.predict(X)`` against ``y`` as a float.

    Compare on the scaled values, as the book does: ``sqrt(mean((prediction - y) ** 2))``.
    The book reports about 0.03 on train and test after 5 epochs.
    """
    raise NotImplementedError("activity_5_01.rmse is not implemented yet")
