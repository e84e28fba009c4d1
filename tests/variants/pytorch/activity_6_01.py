"""Activity 6.01, written the way someone coming from PyTorch writes Keras 3.

Idioms: the vocabulary built by hand as a torchtext user would — a ``Counter`` over the
training texts only, words ranked by frequency (ties in order of first appearance), index 0
kept for padding, only the ``vocab_size - 1`` most frequent kept, unknown words dropped —
and the padding written out (zeros and truncation at the front, as ``pad_sequences`` does);
the classifier as a subclassed ``keras.Model`` with its layers (``ReLU`` ones after the
hidden ``Dense``, as ``nn.ReLU()``) made in ``__init__`` in the order ``call()`` uses them,
registered with a ``get_config``, built by a dummy forward pass on one zero sequence;
``train`` as a ``tf.GradientTape`` loop with the last ``validation_split`` of the rows held
out (as ``fit`` does), reshuffled ``tf.data`` batches, the cross-entropy as a criterion and
the model's own optimizer; ``predict_labels`` as batched forward passes with
``training=False``, thresholded with ``keras.ops``.
"""

import math
import string
from collections import Counter

import keras
import nltk
import numpy as np
import tensorflow as tf
from keras import layers, ops

PUNCTUATION = set(string.punctuation)


def preprocess(texts):
    stops = PUNCTUATION | set(nltk.corpus.stopwords.words("english"))
    stemmer = nltk.stem.PorterStemmer()
    cleaned = []
    for text in texts:
        tokens = [t for t in nltk.word_tokenize(text.lower()) if t not in stops]
        cleaned.append(" ".join(stemmer.stem(t) for t in tokens))
    return cleaned


def _tokens(text):
    # the same split Keras's Tokenizer makes: its filter characters become spaces
    for char in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n':
        text = text.replace(char, " ")
    return text.lower().split()


def make_sequences(train_texts, test_texts, *, vocab_size=10_000, maxlen=100):
    counts = Counter()
    for text in train_texts:
        counts.update(_tokens(text))
    ranked = [word for word, _ in counts.most_common(vocab_size - 1)]
    vocab = {word: index for index, word in enumerate(ranked, start=1)}

    def encode(texts):
        out = np.zeros((len(texts), maxlen), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [vocab[w] for w in _tokens(text) if w in vocab][-maxlen:]
            if ids:
                out[row, maxlen - len(ids) :] = ids
        return out

    return encode(train_texts), encode(test_texts)


@keras.saving.register_keras_serializable(package="activity_6_01")
class SentimentLSTM(keras.Model):
    def __init__(self, vocab_size=10_000, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding = layers.Embedding(vocab_size, 32)
        self.embedding_dropout = layers.SpatialDropout1D(0.4)
        self.lstm1 = layers.LSTM(64, return_sequences=True)
        self.lstm2 = layers.LSTM(64)
        self.dropout1 = layers.Dropout(0.4)
        self.fc1 = layers.Dense(32)
        self.relu1 = layers.ReLU()
        self.dropout2 = layers.Dropout(0.5)
        self.fc2 = layers.Dense(32)
        self.relu2 = layers.ReLU()
        self.dropout3 = layers.Dropout(0.5)
        self.head = layers.Dense(1, activation="sigmoid")

    def call(self, x, training=False):
        x = self.embedding(x)
        x = self.embedding_dropout(x, training=training)
        x = self.lstm1(x, training=training)
        x = self.lstm2(x, training=training)
        x = self.dropout1(x, training=training)
        x = self.relu1(self.fc1(x))
        x = self.dropout2(x, training=training)
        x = self.relu2(self.fc2(x))
        x = self.dropout3(x, training=training)
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


def build_model(vocab_size=10_000):
    model = SentimentLSTM(vocab_size=vocab_size)
    model(np.zeros((1, 100), dtype=np.int32))  # materialise the weights
    model.compile(
        optimizer=keras.optimizers.RMSprop(),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def train(model, X, y, *, epochs=5, batch_size=128, validation_split=0.2):
    X = np.asarray(X, dtype=np.int32)
    y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
    cut = int(math.ceil(len(X) * (1 - validation_split)))
    train_loader = (
        tf.data.Dataset.from_tensor_slices((X[:cut], y[:cut]))
        .shuffle(cut, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    val_loader = tf.data.Dataset.from_tensor_slices((X[cut:], y[cut:])).batch(batch_size)
    criterion = keras.losses.BinaryCrossentropy()
    optimizer = model.optimizer

    def hits(targets, probs):
        same = ops.equal(ops.cast(probs > 0.5, "float32"), targets)
        return ops.sum(ops.cast(same, "float32"))

    @tf.function(reduce_retracing=True)
    def training_step(sequences, targets):
        with tf.GradientTape() as tape:
            probs = model(sequences, training=True)
            loss = criterion(targets, probs)
        params = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss, hits(targets, probs)

    @tf.function(reduce_retracing=True)
    def validation_step(sequences, targets):
        probs = model(sequences, training=False)
        return criterion(targets, probs), hits(targets, probs)

    def run(loader, step):
        total_loss, total_hits, seen = 0.0, 0.0, 0
        for sequences, targets in loader:
            loss, correct = step(sequences, targets)
            count = int(sequences.shape[0])
            total_loss += float(loss) * count
            total_hits += float(correct)
            seen += count
        return total_loss / max(seen, 1), total_hits / max(seen, 1)

    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for _epoch in range(epochs):
        loss, accuracy = run(train_loader, training_step)
        val_loss, val_accuracy = run(val_loader, validation_step)
        for key, value in zip(history, (loss, accuracy, val_loss, val_accuracy), strict=True):
            history[key].append(value)
    return history


def predict_labels(model, X):
    labels = []
    for batch in tf.data.Dataset.from_tensor_slices(np.asarray(X)).batch(256):
        probs = model(batch, training=False)
        labels.append(ops.convert_to_numpy(ops.cast(probs > 0.5, "int64")))
    return np.concatenate(labels).reshape(-1)
