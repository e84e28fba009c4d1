"""Activity 5.01, functional style.

Idioms: ``df["Close"].iloc[::-1]`` to put the oldest day first, ``np.split`` at the cut,
``MinMaxScaler().fit(train)`` then ``transform`` on each part, ``get_lookback`` written with
numpy shifting (a zero-filled array, each column a slice of the series) instead of pandas,
and the model built with the functional API (``keras.Input`` → Reshape → Conv1D → SimpleRNN
→ Dropout → Dense → Activation → ``keras.Model``).
"""

import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.preprocessing import MinMaxScaler
from tensorflow import keras


def load_series(path):
    closes = pd.read_csv(path)["Close"].iloc[::-1]
    return closes.to_numpy(dtype=float).reshape(-1, 1)


def split(series, train_fraction=0.75):
    train, test = np.split(series, [int(len(series) * train_fraction)])
    return train, test


def scale(train, test):
    scaler = MinMaxScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def get_lookback(inp, look_back):
    series = np.asarray(inp, dtype=float).reshape(-1)
    X = np.zeros((len(series), look_back))
    for k in range(1, min(look_back, len(series)) + 1):
        X[k:, k - 1] = series[: len(series) - k]
    return X, series.reshape(-1, 1)


def build_model(look_back=10):
    inputs = keras.Input(shape=(look_back,))
    x = keras.layers.Reshape((look_back, 1))(inputs)
    x = keras.layers.Conv1D(filters=5, kernel_size=3, activation="relu")(x)
    x = keras.layers.SimpleRNN(32)(x)
    x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Dense(1)(x)
    outputs = tf.keras.layers.Activation("linear")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="mean_squared_error", optimizer="adam")
    return model


def train(model, X, y, *, epochs=5, batch_size=1):
    return model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_split=0.1, verbose=0
    ).history


def rmse(model, X, y):
    residual = model.predict(X, verbose=0).reshape(-1) - np.asarray(y).reshape(-1)
    return float(np.sqrt(np.mean(np.square(residual))))
