"""Activity 6.01, modern Keras 3.

Idioms: a ``frozenset`` of stop words and a list comprehension per review; the legacy
``Tokenizer`` (no Keras 3 layer reproduces its num_words indexing) with Keras 3's own
``keras.utils.pad_sequences``; ``keras.Sequential`` with ``keras.Input(shape=(None,))``;
compile settings as Keras objects; labels by rounding the probabilities (``np.round``
rounds 0.5 down to 0, like ``> 0.5``).
"""

import string

import keras
import numpy as np
from nltk.corpus import stopwords
from nltk.stem import PorterStemmer
from nltk.tokenize import word_tokenize
from tensorflow.keras.preprocessing.text import Tokenizer


def preprocess(texts):
    stops = frozenset(string.punctuation).union(stopwords.words("english"))
    stemmer = PorterStemmer()
    return [
        " ".join(stemmer.stem(token) for token in word_tokenize(text.lower()) if token not in stops)
        for text in texts
    ]


def make_sequences(train_texts, test_texts, *, vocab_size=10_000, maxlen=100):
    tokenizer = Tokenizer(num_words=vocab_size)
    tokenizer.fit_on_texts(train_texts)
    return tuple(
        keras.utils.pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=maxlen)
        for texts in (train_texts, test_texts)
    )


def build_model(vocab_size=10_000):
    model = keras.Sequential(
        [
            keras.Input(shape=(None,)),
            keras.layers.Embedding(input_dim=vocab_size, output_dim=32),
            keras.layers.SpatialDropout1D(0.4),
            keras.layers.LSTM(64, return_sequences=True),
            keras.layers.LSTM(64),
            keras.layers.Dropout(0.4),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


def train(model, X, y, *, epochs=5, batch_size=128, validation_split=0.2):
    return model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split, verbose=0
    ).history


def predict_labels(model, X):
    return np.round(model.predict(X, verbose=0)).astype(int).ravel()
