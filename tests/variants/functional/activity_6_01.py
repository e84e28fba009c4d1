"""Activity 6.01, functional style.

Idioms: one cleaning function per review mapped over the texts, stop words in a ``set``
(``set(string.punctuation) | set(stopwords)``); ``tf.keras.preprocessing`` names through the
``tf.keras`` namespace; the classifier built with the functional API from
``keras.Input(shape=(None,), dtype="int32")``; labels by ``np.where(p > 0.5, 1, 0)``.
"""

import string

import keras
import numpy as np
import tensorflow as tf
from nltk import word_tokenize
from nltk.corpus import stopwords
from nltk.stem import PorterStemmer


def preprocess(texts):
    drop = set(string.punctuation) | set(stopwords.words("english"))
    porter = PorterStemmer()

    def clean(text):
        return " ".join(porter.stem(t) for t in word_tokenize(text.lower()) if t not in drop)

    return list(map(clean, texts))


def make_sequences(train_texts, test_texts, *, vocab_size=10_000, maxlen=100):
    tokenizer = tf.keras.preprocessing.text.Tokenizer(num_words=vocab_size)
    tokenizer.fit_on_texts(train_texts)
    pad = tf.keras.preprocessing.sequence.pad_sequences
    return (
        pad(tokenizer.texts_to_sequences(train_texts), maxlen=maxlen),
        pad(tokenizer.texts_to_sequences(test_texts), maxlen=maxlen),
    )


def build_model(vocab_size=10_000):
    tokens = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(input_dim=vocab_size, output_dim=32)(tokens)
    x = keras.layers.SpatialDropout1D(0.4)(x)
    x = keras.layers.LSTM(64, return_sequences=True)(x)
    x = keras.layers.LSTM(64)(x)
    x = keras.layers.Dropout(0.4)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    score = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(tokens, score)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(model, X, y, *, epochs=5, batch_size=128, validation_split=0.2):
    return model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split, verbose=0
    ).history


def predict_labels(model, X):
    return np.where(model.predict(X, verbose=0) > 0.5, 1, 0).reshape(-1)
