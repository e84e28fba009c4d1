"""Activity 5.01 — predict IBM's closing price with Conv1D + SimpleRNN.

The book's pipeline: reverse the newest-first CSV, take Close as an (n, 1) series, split
75/25 in time order, fit a MinMaxScaler on the training part only, turn each series into
lookback features with ``get_lookback`` (columns = the series shifted by 1..look_back, zeros
for the missing head), and fit Reshape → Conv1D(5, 3, relu) → SimpleRNN(32) → Dropout(0.25)
→ Dense(1) → linear (1,269 parameters) with MSE and adam, 5 epochs at batch size 1.

Book erratum: it prints ``model.summary()`` of the wrong variable (the earlier model) before
training this one; here the summary would be of this model. Keras 3 note: the first layer
needs an explicit ``keras.Input`` instead of ``input_shape=``.
"""

import keras
import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler


def load_series(path):
    frame = pd.read_csv(path)
    return frame["Close"].to_numpy(dtype=np.float64)[::-1].reshape(-1, 1).copy()


def split(series, train_fraction=0.75):
    cut = int(len(series) * train_fraction)
    return series[:cut], series[cut:]


def scale(train, test):
    scaler = MinMaxScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def get_lookback(inp, look_back):
    y = pd.DataFrame(inp)
    shifted = [y.shift(i) for i in range(1, look_back + 1)]
    X = pd.concat(shifted, axis=1).fillna(0)
    return X.to_numpy(), y.to_numpy()


def build_model(look_back=10):
    model = keras.Sequential(
        [
            keras.Input(shape=(look_back,)),
            keras.layers.Reshape((look_back, 1)),
            keras.layers.Conv1D(5, 3, activation="relu"),
            keras.layers.SimpleRNN(32),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(1),
            keras.layers.Activation("linear"),
        ]
    )
    model.compile(loss="mean_squared_error", optimizer="adam")
    return model


def train(model, X, y, *, epochs=5, batch_size=1):
    history = model.fit(X, y, epochs=epochs, batch_size=batch_size, validation_split=0.1, verbose=0)
    return history.history


def rmse(model, X, y):
    predicted = model.predict(X, verbose=0)
    return float(np.sqrt(np.mean((predicted - y) ** 2)))
