"""Rubric for Activity 6.01 — Amazon review sentiment with a stacked LSTM (381,025 params).

Data: the book's first training review (``amazon_first_review.txt`` in the data mirror,
title and body) for preprocessing; a synthetic review set (``dlgrade.data.synth.amazon_reviews``,
2,000 train / 500 test, balanced) for the standard tier; the real CSVs for the full tier.

The book prints the first review's tokens after stop-word removal and its stemmed join;
today's NLTK reproduces both exactly (its printed join says "recommend" where the review
and the code give "recomend": a typo in the book, not a difference in NLTK).

Each check tests one function with the grader's inputs: predict_labels and train get the
book's model built by the grader (``BOOK_MODEL``), and train gets sequences the grader made
with its own tokenizer, so one mistake costs one check's points. The book's Sequential
starts with ``Embedding`` and no ``Input``: Keras 3 leaves such a model unbuilt (0
parameters) until it sees data, so the grader builds it for inputs of the book's padded
length (``MAXLEN``) before reading it — the book's code is correct.

Calibration (reference, standard tier: the student's whole pipeline on the synthetic set,
``train(epochs=3, batch_size=32)``, accuracy of the returned weights on the 500 test
reviews): 0.958–0.978 over seeds 0–5 (see docs/writing-checks.md) → threshold 0.75,
chance being 0.5 (measured again with the grader's sequences: docs/writing-checks.md).
Full tier: 5 epochs at batch 128 on the real 25,000 reviews, test
accuracy ≥ 0.83 (book 0.85864).
"""

import numpy as np
import pandas as pd
import pytest

import dlgrade
from dlgrade import data, expect, models
from dlgrade.data import synth

ACTIVITY = dlgrade.activity("6.01", "Amazon reviews stacked LSTM")
PRELOAD = ("keras",)
DATASETS = ("nltk", "amazon_reviews")

BOOK_TOKENS = [
    "stuning", "even", "non-gamer", "sound", "track", "beautiful", "paints", "senery", "mind",
    "well", "would", "recomend", "even", "people", "hate", "vid", "game", "music", "played",
    "game", "chrono", "cross", "games", "ever", "played", "best", "music", "backs", "away",
    "crude", "keyboarding", "takes", "fresher", "step", "grate", "guitars", "soulful",
    "orchestras", "would", "impress", "anyone", "cares", "listen", "^_^",
]  # fmt: skip
BOOK_JOIN = (
    "stune even non-gam sound track beauti paint seneri mind well would recomend even peopl "
    "hate vid game music play game chrono cross game ever play best music back away crude "
    "keyboard take fresher step grate guitar soul orchestra would impress anyon care listen ^_^"
)
BOOK_MODEL = [
    models.Layer("Embedding", input_dim=10_000, output_dim=32),
    models.Layer("SpatialDropout1D", rate=0.4),
    models.Layer("LSTM", units=64, return_sequences=True),
    models.Layer("LSTM", units=64, return_sequences=False),
    models.Layer("Dropout", rate=0.4),
    models.Layer("Dense", units=32, activation="relu"),
    models.Layer("Dropout", rate=0.5),
    models.Layer("Dense", units=32, activation="relu"),
    models.Layer("Dropout", rate=0.5),
    models.Layer("Dense", units=1, activation="sigmoid"),
]
BOOK_COMPILE = models.Compiled(optimizer="rmsprop", loss="binary_crossentropy", accuracy=True)
BOOK_PARAMS = 381_025
#: the book's padded length: a Sequential without an Input is built for it (see below)
MAXLEN = 100
STANDARD_ACCURACY = 0.75
FULL_ACCURACY = 0.83


@pytest.fixture(scope="module")
def first_review():
    mirror = data.mirror_dir()
    path = mirror / "amazon_first_review.txt" if mirror else None
    if path is None or not path.is_file():
        raise dlgrade.DataError(
            "amazon_first_review.txt (the book's first training review) was not found in the "
            f"data mirror {mirror}; set DLGRADE_DATA_DIR to a folder holding it"
        )
    return path.read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    folder = synth.amazon_reviews(tmp_path_factory.mktemp("reviews"), train=2000, test=500)
    return (
        pd.read_csv(folder / "Amazon_reviews_train.csv"),
        pd.read_csv(folder / "Amazon_reviews_test.csv"),
    )


def _texts(value, n, what):
    __tracebackhide__ = True
    if not isinstance(value, list) or len(value) != n or not all(isinstance(t, str) for t in value):
        dlgrade.fail(f"{what} returned {expect.describe(value)}; expected a list of {n} strings")
    return value


@dlgrade.check(
    points=3,
    feedback="preprocess(texts) must lower-case each text, word_tokenize it, drop "
    "string.punctuation characters and NLTK's English stop words, Porter-stem the rest and "
    "join with single spaces.",
)
def test_preprocess_reproduces_the_books_first_review(student, first_review):
    """preprocess() of the book's first review gives its stemmed, joined tokens."""
    (got,) = _texts(student.preprocess([first_review]), 1, "preprocess([first review])")
    if got != BOOK_JOIN:
        got_tokens, want_tokens = got.split(" "), BOOK_JOIN.split(" ")
        where = next(
            (i for i, (g, w) in enumerate(zip(got_tokens, want_tokens, strict=False)) if g != w),
            min(len(got_tokens), len(want_tokens)),
        )
        dlgrade.fail(
            f"preprocess([first review]) differs from the book at token {where + 1}: got "
            f"{got_tokens[where : where + 4]}, expected {want_tokens[where : where + 4]} "
            f"(before stemming the book's tokens are {BOOK_TOKENS[where : where + 4]})"
        )


# Train texts where the frequency order is known: a > b > c > d > e; "zzz" only in test,
# and "e" so common in test that a tokenizer fitted on test too would rank it first.
SEQ_TRAIN = ["a a a a b b b c c d", "a b c d e", "e a b"]
SEQ_TEST = ["zzz e e e e e e a", "e d c b a a b c d e"]


@dlgrade.check(
    points=3,
    feedback="make_sequences must fit Tokenizer(num_words=vocab_size) on the training texts "
    "only, turn both sets into sequences, and pad_sequences(maxlen=maxlen) (Keras's default: "
    "pad and truncate at the front).",
)
def test_make_sequences_vocabulary_cap_and_padding(student):
    """make_sequences: train-only vocabulary, vocab_size cap, Keras's pre-padding/truncation."""
    what = "make_sequences(train, test, vocab_size=4, maxlen=6)"
    got = expect.sequence(
        what, student.make_sequences(SEQ_TRAIN, SEQ_TEST, vocab_size=4, maxlen=6), 2
    )
    X_train = expect.array(f"{what}[0]", got[0], shape=(3, 6), kinds="iu")
    X_test = expect.array(f"{what}[1]", got[1], shape=(2, 6), kinds="iu")
    # Index by frequency in train: a=1, b=2, c=3, d=4, e=5; num_words=4 keeps indices 1..3.
    want_train = [[1, 2, 2, 2, 3, 3], [0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 1, 2]]
    want_test = [[0, 0, 0, 0, 0, 1], [3, 2, 1, 1, 2, 3]]
    if X_train.tolist() != want_train or X_test.tolist() != want_test:
        dlgrade.fail(
            f"{what} gave train {X_train.tolist()} and test {X_test.tolist()}; expected "
            f"{want_train} and {want_test} (indices by training frequency, only the 3 most "
            "frequent kept, unseen words dropped, zeros and truncation at the front)"
        )


@dlgrade.check(
    points=3,
    feedback="build_model() must be Embedding(10000, 32) → SpatialDropout1D(0.4) → LSTM(64, "
    "return_sequences=True) → LSTM(64) → Dropout(0.4) → Dense(32, relu) → Dropout(0.5) → "
    "Dense(32, relu) → Dropout(0.5) → Dense(1, sigmoid): 381,025 parameters.",
)
def test_model_architecture(submission, student):
    """The model is the book's stacked LSTM with its dropout rates: 381,025 parameters."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, MAXLEN))
    models.expect_architecture(model, BOOK_MODEL, call, params=BOOK_PARAMS)


@dlgrade.check(
    points=1,
    feedback="compile with optimizer='rmsprop', loss='binary_crossentropy', metrics=['accuracy'].",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with rmsprop, binary cross-entropy and accuracy."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, MAXLEN))
    models.expect_compiled(model, BOOK_COMPILE, call)


@dlgrade.check(
    points=2,
    feedback="predict_labels(model, X) must return an int array of 0/1, one per row "
    "(threshold model.predict(X) at 0.5; predict_classes no longer exists).",
)
def test_predict_labels_are_thresholded_probabilities(submission, student):
    """predict_labels returns 0/1 ints that match the model's probabilities at 0.5."""
    handle = submission.grader_model(BOOK_MODEL, (MAXLEN,), BOOK_COMPILE)
    model = submission.load_model(handle)
    X = np.random.default_rng(601).integers(1, 10_000, size=(64, MAXLEN))
    got = expect.array("predict_labels(model, X)", student.predict_labels(handle, X), kinds="iub")
    if got.shape not in ((64,), (64, 1)):
        dlgrade.fail(f"predict_labels(model, X) has shape {got.shape}; expected (64,) or (64, 1)")
    want = (model.predict(X, verbose=0) > 0.5).astype(int).reshape(-1)
    if not np.array_equal(got.reshape(-1).astype(int), want):
        dlgrade.fail("predict_labels(model, X) does not match model.predict(X) > 0.5")


def grader_sequences(train_texts, test_texts, vocab_size=10_000, maxlen=MAXLEN):
    """The grader's own tokenizer: words by training frequency, pre-padded and truncated."""
    import re
    from collections import Counter

    def words(text):
        return re.findall(r"[a-z0-9']+", text.lower())

    counts = Counter(w for text in train_texts for w in words(text))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - 1]
    index = {w: i + 1 for i, w in enumerate(ranked)}

    def pad(texts):
        out = np.zeros((len(texts), maxlen), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [index[w] for w in words(text) if w in index][-maxlen:]
            if ids:
                out[row, -len(ids) :] = ids
        return out

    return pad(train_texts), pad(test_texts)


@dlgrade.check(
    points=4,
    tier="standard",
    timeout=600,
    feedback="train(model, X, y, epochs=..., batch_size=..., validation_split=0.2) must fit "
    "the model it is given on X and the labels y, with those settings, and return "
    "history.history.",
)
def test_short_training_beats_chance(submission, student, reviews):
    """train() fits the grader's model on the grader's sequences: ≥ 0.75 on 500 test reviews."""
    train_frame, test_frame = reviews
    X_train, X_test = grader_sequences(
        train_frame.review_text.tolist(), test_frame.review_text.tolist()
    )
    y = train_frame.label.to_numpy()
    handle = submission.grader_model(BOOK_MODEL, (MAXLEN,), BOOK_COMPILE)
    history = expect.mapping(
        "train(model, X, y, epochs=3, batch_size=32)",
        student.train(handle, X_train, y, epochs=3, batch_size=32),
    )
    if not any(key.startswith("val_") for key in history):
        dlgrade.fail(
            f"train() returned a history with keys {sorted(history)}; with validation_split="
            "0.2 (the default) Keras also reports val_loss and val_accuracy"
        )
    trained = submission.load_model(handle)
    predicted = (trained.predict(X_test, verbose=0) > 0.5).astype(int).reshape(-1)
    accuracy = float(np.mean(predicted == test_frame.label.to_numpy()))
    dlgrade.measured("test accuracy", accuracy, STANDARD_ACCURACY)
    if accuracy < STANDARD_ACCURACY:
        dlgrade.fail(
            f"after train(epochs=3, batch_size=32) the model classifies {accuracy:.3f} of the "
            f"test reviews correctly; the book's model reaches 0.96 (threshold "
            f"{STANDARD_ACCURACY}, chance 0.5)"
        )


def _pipeline(submission, student, train_frame, test_frame, **train_kwargs):
    """The student's whole pipeline, end to end (the full tier's book run)."""
    train_texts = _texts(
        student.preprocess(train_frame.review_text.tolist()), len(train_frame), "preprocess(train)"
    )
    test_texts = _texts(
        student.preprocess(test_frame.review_text.tolist()), len(test_frame), "preprocess(test)"
    )
    X_train, X_test = expect.sequence(
        "make_sequences(train, test)", student.make_sequences(train_texts, test_texts), 2
    )
    X_train = expect.array("X_train", X_train, shape=(len(train_frame), 100), kinds="iu")
    X_test = expect.array("X_test", X_test, shape=(len(test_frame), 100), kinds="iu")
    handle, _, call = submission.build_model(student.build_model, unbuilt_shape=(None, MAXLEN))
    y = train_frame.label.to_numpy()
    expect.mapping("train(...)", student.train(handle, X_train, y, **train_kwargs))
    trained = submission.load_model(handle)
    with models.student_model(call):
        predicted = (trained.predict(X_test, verbose=0) > 0.5).astype(int).reshape(-1)
    return float(np.mean(predicted == test_frame.label.to_numpy()))


@dlgrade.check(
    points=4,
    tier="full",
    timeout=3600,
    feedback="with the book's settings (5 epochs, batch 128, validation split 0.2) on the "
    "real 25,000 reviews the model must reach test accuracy ≥ 0.83 (book 0.85864).",
)
def test_book_training_reaches_test_accuracy(submission, student):
    """The book's 5 epochs on the real reviews reach test accuracy ≥ 0.83."""
    folder = data.path("amazon_reviews").parent
    train_frame = pd.read_csv(folder / "Amazon_reviews_train.csv")
    test_frame = pd.read_csv(folder / "Amazon_reviews_test.csv")
    accuracy = _pipeline(submission, student, train_frame, test_frame, epochs=5)
    dlgrade.measured("test accuracy", accuracy, FULL_ACCURACY)
    if accuracy < FULL_ACCURACY:
        dlgrade.fail(f"test accuracy {accuracy:.4f}; expected ≥ {FULL_ACCURACY} (book 0.85864)")
