"""Activity 5.01, modern numpy, sklearn and Keras 3.

Idioms: ``pd.read_csv(..., skipinitialspace=True)`` for the spaced header and
``np.flipud``; sklearn's ``train_test_split(shuffle=False)`` for the time-ordered cut (it
floors ``train_size * n``, like the book's ``int``); ``get_lookback`` with
``numpy.lib.stride_tricks.sliding_window_view`` over a zero-padded series, windows reversed
so column k-1 holds the value k steps back; ``keras.Sequential`` with ``keras.Input``;
``sklearn.metrics.root_mean_squared_error`` for the RMSE.
"""

import keras
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler


def load_series(path):
    frame = pd.read_csv(path, skipinitialspace=True, usecols=["Close"])
    return np.flipud(frame.to_numpy(dtype=np.float64))


def split(series, train_fraction=0.75):
    train, test = train_test_split(series, train_size=train_fraction, shuffle=False)
    return train, test


def scale(train, test):
    scaler = MinMaxScaler()
    return scaler.fit_transform(train), scaler.transform(test)


def get_lookback(inp, look_back):
    series = np.ravel(inp)
    padded = np.concatenate([np.zeros(look_back), series])
    # window t covers series[t - look_back : t]; reversed, column k-1 is series[t - k]
    X = sliding_window_view(padded, look_back)[: len(series), ::-1]
    return np.ascontiguousarray(X), series.reshape(-1, 1)


def build_model(look_back=10):
    model = keras.Sequential(
        [
            keras.Input(shape=(look_back,)),
            keras.layers.Reshape((look_back, 1)),
            keras.layers.Conv1D(5, kernel_size=3, activation="relu"),
            keras.layers.SimpleRNN(32),
            keras.layers.Dropout(rate=0.25),
            keras.layers.Dense(1),
            keras.layers.Activation("linear"),
        ]
    )
    model.compile(loss=keras.losses.MeanSquaredError(), optimizer=keras.optimizers.Adam())
    return model


def train(model, X, y, *, epochs=5, batch_size=1):
    return model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_split=0.1, verbose=0
    ).history


def rmse(model, X, y):
    return float(root_mean_squared_error(np.ravel(y), np.ravel(model.predict(X, verbose=0))))
