"""Example student work for Activity 2.01 (graded by the README's quick start)."""

import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder
from tensorflow import keras


def load_data(path):
    df = pd.read_csv(path)
    features = df.iloc[:, :60].values.astype("float32")
    labels = LabelEncoder().fit_transform(df["Class"].values)
    return features, np.reshape(labels, (-1, 1))


def build_model(input_dim=60):
    inputs = keras.Input(shape=(input_dim,))
    hidden = inputs
    for width in (300, 200, 100):
        hidden = keras.layers.Dense(width, activation="relu")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(model, X, y, *, epochs=30):
    return model.fit(X, y, epochs=epochs, batch_size=32, verbose=0).history
