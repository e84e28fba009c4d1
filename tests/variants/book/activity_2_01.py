"""Activity 2.01, written with the book's idioms.

Idioms: ``pd.read_csv`` into a DataFrame whose feature part ``iloc[:, :-1]`` is returned as
it is (Keras fits on a DataFrame directly), the ``Class`` column's ``.values`` turned into
0/1 with sklearn's ``LabelEncoder`` and reshaped into one column, a ``Sequential()`` model
grown layer by layer with ``.add`` and ``input_dim=`` on its first ``Dense``, imports from
``tensorflow.keras``, and the ``.history`` dict of the object ``fit`` returns. The book
reshapes to a fixed 208 rows; here the row count is read off the frame, so any sonar-shaped
CSV loads, as the contract asks.
"""

import pandas as pd
from sklearn.preprocessing import LabelEncoder
from tensorflow.keras.layers import Dense
from tensorflow.keras.models import Sequential


def load_data(path):
    sonar = pd.read_csv(path)
    features = sonar.iloc[:, :-1]
    encoder = LabelEncoder()
    targets = encoder.fit_transform(sonar["Class"].values)
    return features, targets.reshape([sonar.shape[0], 1])


def build_model(input_dim=60):
    mlp = Sequential()
    mlp.add(Dense(300, activation="relu", input_dim=input_dim))
    for width in (200, 100):
        mlp.add(Dense(width, activation="relu"))
    mlp.add(Dense(1, activation="sigmoid"))
    mlp.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return mlp


def train(model, X, y, *, epochs=30):
    run = model.fit(X, y, epochs=epochs, verbose=0)
    return run.history
