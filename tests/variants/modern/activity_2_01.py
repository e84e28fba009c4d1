"""Activity 2.01, modern Keras 3.

Idioms: sklearn's ``LabelBinarizer`` (two classes give a ready ``(n, 1)`` column of 0/1),
``DataFrame.pop`` for the label column, ``keras.Input`` in a ``keras.Sequential`` list,
and compile settings given as Keras objects (``keras.optimizers.Adam()``,
``keras.losses.BinaryCrossentropy()``, ``keras.metrics.BinaryAccuracy(name="accuracy")``).
"""

import keras
import pandas as pd
from sklearn.preprocessing import LabelBinarizer


def load_data(path):
    frame = pd.read_csv(path)
    classes = frame.pop("Class")
    y = LabelBinarizer().fit_transform(classes)
    return frame.to_numpy("float32"), y


def build_model(input_dim=60):
    model = keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(200, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="sonar",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


def train(model, X, y, *, epochs=30):
    history = model.fit(X, y, epochs=epochs, verbose=0)
    return history.history
