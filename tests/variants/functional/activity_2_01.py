"""Activity 2.01, functional style.

Idioms: ``df.drop(columns="Class")`` to a float32 array, labels by comparison
(``(df["Class"] == "Mine").astype(int)``, so Mine = 1 and Rock = 0 — the reverse of
LabelEncoder's alphabetical order, which the activity leaves free), and the model built with
the functional API (``keras.Input`` → ``Dense`` layers → ``keras.Model``), mixing
``from tensorflow import keras`` with ``tf.keras`` names as students do.
"""

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow import keras


def load_data(path):
    df = pd.read_csv(path)
    X = df.drop(columns="Class").to_numpy(dtype="float32")
    y = (df["Class"] == "Mine").astype(int).to_numpy()[:, np.newaxis]
    return X, y


def build_model(input_dim=60):
    inputs = keras.Input(shape=(input_dim,), name="bands")
    h = tf.keras.layers.Dense(300, activation="relu")(inputs)
    h = tf.keras.layers.Dense(200, activation="relu")(h)
    h = tf.keras.layers.Dense(100, activation="relu")(h)
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs, name="sonar_mlp")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(model, X, y, *, epochs=30):
    return model.fit(X, y, epochs=epochs, verbose=0).history
