"""Activity 2.01 — an MLP that tells sonar returns from mines and rocks apart.

Keras 3 note: the book passes ``input_dim=60`` to the first ``Dense``; Keras 3 wants an
explicit ``keras.Input`` instead. Everything else is the book's: LabelEncoder labels
reshaped to a column, Dense 300/200/100 relu + Dense 1 sigmoid (98,701 parameters), adam,
binary cross-entropy, 30 epochs.
"""

import keras
import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder


def load_data(path):
    frame = pd.read_csv(path)
    X = frame.drop(columns=["Class"]).to_numpy(dtype=np.float32)
    y = LabelEncoder().fit_transform(frame["Class"]).reshape(-1, 1).astype(np.int64)
    return X, y


def build_model(input_dim=60):
    model = keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(200, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(model, X, y, *, epochs=30):
    history = model.fit(X, y, epochs=epochs, verbose=0)
    return history.history
