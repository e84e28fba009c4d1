"""Activity 5.01, written with the book's idioms.

Idioms: ``pd.read_csv`` followed by ``sort_index(ascending=False)`` to turn the newest-first
file round, the ``Close`` column taken by attribute and reshaped with ``reshape(-1, 1)``, a
train/test cut at ``int(len(...) * 0.75)`` by slicing, ``MinMaxScaler`` with
``fit_transform`` on train and ``transform`` on test, the book's ``get_lookback`` recipe
(``DataFrame.shift`` for each lag, gathered in a loop, joined with ``pd.concat`` and cleaned
with ``fillna(0, inplace=True)``), a ``Sequential()`` grown with ``.add`` whose ``Reshape``
takes ``input_shape=``, ``fit(..., verbose=2, validation_split=0.1)``, and the book's RMSE
as the square root of ``model.evaluate`` (Keras's MSE, computed with dropout off).
"""

import math

import pandas as pd
from sklearn.preprocessing import MinMaxScaler
from tensorflow.keras.layers import Activation, Conv1D, Dense, Dropout, Reshape, SimpleRNN
from tensorflow.keras.models import Sequential


def load_series(path):
    prices = pd.read_csv(path)
    prices = prices.sort_index(ascending=False)  # file is newest first
    return prices.Close.values.reshape(-1, 1)


def split(series, train_fraction=0.75):
    cut = int(len(series) * train_fraction)
    return series[:cut], series[cut:]


def scale(train, test):
    minmax = MinMaxScaler()
    fitted_train = minmax.fit_transform(train)
    return fitted_train, minmax.transform(test)


def get_lookback(inp, look_back):
    frame = pd.DataFrame(inp)
    lags = []
    for step in range(1, look_back + 1):
        lags.append(frame.shift(step))
    windows = pd.concat(lags, axis=1)
    windows.fillna(0, inplace=True)
    return windows.values, frame.values


def build_model(look_back=10):
    net = Sequential()
    net.add(Reshape(target_shape=(look_back, 1), input_shape=(look_back,)))
    net.add(Conv1D(filters=5, kernel_size=3, activation="relu"))
    net.add(SimpleRNN(units=32))
    net.add(Dropout(rate=0.25))
    net.add(Dense(units=1))
    net.add(Activation("linear"))
    net.compile(optimizer="adam", loss="mean_squared_error")
    return net


def train(model, X, y, *, epochs=5, batch_size=1):
    run = model.fit(X, y, validation_split=0.1, epochs=epochs, batch_size=batch_size, verbose=2)
    return run.history


def rmse(model, X, y):
    mse = model.evaluate(X, y, verbose=0)
    return math.sqrt(mse)
