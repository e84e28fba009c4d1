"""Activity 6.01 — Amazon review sentiment with a stacked LSTM.

The book's pipeline: lower-case and ``word_tokenize`` each review, drop punctuation and
NLTK's English stop words, Porter-stem, join; ``Tokenizer(num_words=10000)`` fitted on the
training texts only, ``pad_sequences(maxlen=100)``; Embedding(10000, 32) →
SpatialDropout1D(0.4) → LSTM(64, return_sequences) → LSTM(64) → Dropout(0.4) →
Dense(32, relu) → Dropout(0.5) → Dense(32, relu) → Dropout(0.5) → Dense(1, sigmoid):
381,025 parameters, rmsprop, binary cross-entropy, batch 128, validation split 0.2.

Keras 3 note: ``predict_classes`` is gone; ``predict_labels`` thresholds the predicted
probability at 0.5. ``Tokenizer`` and ``pad_sequences`` are the legacy ones that
``tensorflow.keras.preprocessing`` still provides in TF 2.21.
"""

import string

import keras
import numpy as np
from nltk.corpus import stopwords
from nltk.stem import PorterStemmer
from nltk.tokenize import word_tokenize
from tensorflow.keras.preprocessing.sequence import pad_sequences
from tensorflow.keras.preprocessing.text import Tokenizer


def preprocess(texts):
    stops = set(string.punctuation) | set(stopwords.words("english"))
    stemmer = PorterStemmer()
    cleaned = []
    for text in texts:
        tokens = [token for token in word_tokenize(text.lower()) if token not in stops]
        cleaned.append(" ".join(stemmer.stem(token) for token in tokens))
    return cleaned


def make_sequences(train_texts, test_texts, *, vocab_size=10_000, maxlen=100):
    tokenizer = Tokenizer(num_words=vocab_size)
    tokenizer.fit_on_texts(train_texts)
    X_train = pad_sequences(tokenizer.texts_to_sequences(train_texts), maxlen=maxlen)
    X_test = pad_sequences(tokenizer.texts_to_sequences(test_texts), maxlen=maxlen)
    return X_train, X_test


def build_model(vocab_size=10_000):
    model = keras.Sequential(
        [
            keras.Input(shape=(None,)),
            keras.layers.Embedding(vocab_size, 32),
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
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(model, X, y, *, epochs=5, batch_size=128, validation_split=0.2):
    history = model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split, verbose=0
    )
    return history.history


def predict_labels(model, X):
    return (model.predict(X, verbose=0) > 0.5).astype(np.int64).reshape(-1)
