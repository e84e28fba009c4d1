"""Activity 6.01, written with the book's idioms.

Idioms: ``word_tokenize`` on each lower-cased review, a stop list made by adding the list of
``string.punctuation`` characters to NLTK's English stop words, a ``drop_stop`` helper with a
list-membership comprehension, ``PorterStemmer().stem`` in a nested comprehension, and
``" ".join`` to rebuild each text; ``Tokenizer`` and ``pad_sequences`` from
``tensorflow.keras.preprocessing``; a ``Sequential()`` grown with ``.add``, opening with an
``Embedding`` of output size 32 and no ``Input`` (as in the book), the two Dense + Dropout
blocks added in a loop; the ``.history`` of the fit. Keras 3 forced one change:
``predict_classes`` no longer exists, so the predicted probabilities are cut at 0.5.
"""

from string import punctuation

from nltk.corpus import stopwords
from nltk.stem import PorterStemmer
from nltk.tokenize import word_tokenize
from tensorflow.keras.layers import LSTM, Dense, Dropout, Embedding, SpatialDropout1D
from tensorflow.keras.models import Sequential
from tensorflow.keras.preprocessing.sequence import pad_sequences
from tensorflow.keras.preprocessing.text import Tokenizer


def preprocess(texts):
    unwanted = list(punctuation) + stopwords.words("english")
    porter = PorterStemmer()

    def drop_stop(words):
        return [w for w in words if w not in unwanted]

    tokenised = [word_tokenize(text.lower()) for text in texts]
    kept = [drop_stop(words) for words in tokenised]
    stemmed = [[porter.stem(w) for w in words] for words in kept]
    return [" ".join(words) for words in stemmed]


def make_sequences(train_texts, test_texts, *, vocab_size=10_000, maxlen=100):
    tokenizer = Tokenizer(num_words=vocab_size)
    tokenizer.fit_on_texts(train_texts)  # the training texts only
    padded_train = pad_sequences(tokenizer.texts_to_sequences(train_texts), maxlen=maxlen)
    padded_test = pad_sequences(tokenizer.texts_to_sequences(test_texts), maxlen=maxlen)
    return padded_train, padded_test


def build_model(vocab_size=10_000):
    net = Sequential()
    net.add(Embedding(input_dim=vocab_size, output_dim=32))
    net.add(SpatialDropout1D(rate=0.4))
    net.add(LSTM(units=64, return_sequences=True))
    net.add(LSTM(units=64))
    net.add(Dropout(rate=0.4))
    for _block in range(2):
        net.add(Dense(units=32, activation="relu"))
        net.add(Dropout(rate=0.5))
    net.add(Dense(units=1, activation="sigmoid"))
    net.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    return net


def train(model, X, y, *, epochs=5, batch_size=128, validation_split=0.2):
    run = model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split, verbose=2
    )
    return run.history


def predict_labels(model, X):
    # Keras 3 has no predict_classes: threshold the sigmoid output instead
    probabilities = model.predict(X)
    return (probabilities.ravel() > 0.5).astype("int32")
