"""Activity 5.01, written the way someone coming from PyTorch writes Keras 3.

Idioms: the CSV read with pandas and its header names stripped, min-max scaling written by
hand from the training part's min and max (no sklearn scaler), ``get_lookback`` as a loop of
shifted copies into a zero array, the regressor as a subclassed ``keras.Model`` — Reshape →
Conv1D → a ``ReLU`` layer → SimpleRNN → Dropout → Dense → a linear ``Activation``, layers
made in ``__init__`` in the order ``call()`` uses them, registered with a ``get_config``,
built by a dummy forward pass — and ``train`` as a ``tf.GradientTape`` loop: the last tenth
of the rows held out for validation (what ``validation_split=0.1`` does), a reshuffled
``tf.data`` loader of ``batch_size`` rows, the MSE written out as a criterion, the model's
own optimizer; ``rmse`` in ``keras.ops`` on a forward pass with ``training=False``
(``model.eval()`` under ``torch.no_grad()``).
"""

import math

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

VALIDATION_SPLIT = 0.1


def load_series(path):
    frame = pd.read_csv(path)
    frame.columns = [name.strip() for name in frame.columns]
    closes = frame["Close"].to_numpy(dtype=np.float64)
    return closes[::-1].copy().reshape(-1, 1)


def split(series, train_fraction=0.75):
    cut = int(len(series) * train_fraction)
    return series[:cut], series[cut:]


def scale(train, test):
    low, high = np.min(train), np.max(train)
    span = high - low
    return (train - low) / span, (test - low) / span


def get_lookback(inp, look_back):
    series = np.asarray(inp, dtype=np.float64).reshape(-1)
    X = np.zeros((len(series), look_back))
    for lag in range(1, look_back + 1):
        if lag < len(series):
            X[lag:, lag - 1] = series[:-lag]
    return X, series.reshape(-1, 1)


@keras.saving.register_keras_serializable(package="activity_5_01")
class StockRegressor(keras.Model):
    def __init__(self, look_back=10, **kwargs):
        super().__init__(**kwargs)
        self.look_back = look_back
        self.reshape = layers.Reshape((look_back, 1))
        self.conv = layers.Conv1D(5, 3)
        self.relu = layers.ReLU()
        self.rnn = layers.SimpleRNN(32)
        self.dropout = layers.Dropout(0.25)
        self.fc = layers.Dense(1)
        self.linear = layers.Activation("linear")

    def call(self, x, training=False):
        x = self.reshape(x)
        x = self.relu(self.conv(x))
        x = self.rnn(x)
        x = self.dropout(x, training=training)
        x = self.fc(x)
        return self.linear(x)

    def get_config(self):
        return {**super().get_config(), "look_back": self.look_back}


def build_model(look_back=10):
    model = StockRegressor(look_back=look_back)
    model(np.zeros((1, look_back), dtype=np.float32))  # materialise the weights
    model.compile(loss=keras.losses.MeanSquaredError(), optimizer=keras.optimizers.Adam())
    return model


def train(model, X, y, *, epochs=5, batch_size=1):
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
    cut = int(math.ceil(len(X) * (1 - VALIDATION_SPLIT)))
    train_loader = (
        tf.data.Dataset.from_tensor_slices((X[:cut], y[:cut]))
        .shuffle(cut, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    val_loader = tf.data.Dataset.from_tensor_slices((X[cut:], y[cut:])).batch(max(batch_size, 32))
    criterion = keras.losses.MeanSquaredError()
    optimizer = model.optimizer

    @tf.function(reduce_retracing=True)
    def training_step(windows, targets):
        with tf.GradientTape() as tape:
            loss = criterion(targets, model(windows, training=True))
        params = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    @tf.function(reduce_retracing=True)
    def validation_step(windows, targets):
        return criterion(targets, model(windows, training=False))

    def run(loader, step):
        total, seen = 0.0, 0
        for windows, targets in loader:
            count = int(windows.shape[0])
            total += float(step(windows, targets)) * count
            seen += count
        return total / seen

    history = {"loss": [], "val_loss": []}
    for _epoch in range(epochs):
        history["loss"].append(run(train_loader, training_step))
        history["val_loss"].append(run(val_loader, validation_step))
    return history


def rmse(model, X, y):
    predicted = model(ops.convert_to_tensor(np.asarray(X, dtype=np.float32)), training=False)
    target = ops.convert_to_tensor(np.asarray(y, dtype=np.float32).reshape(-1, 1))
    error = ops.reshape(predicted, (-1, 1)) - target
    return float(ops.sqrt(ops.mean(ops.square(error))))
