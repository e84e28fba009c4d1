"""Rubric for Activity 6.01 — Amazon review sentiment with a stacked LSTM (381,025 params).

Data: the book's first training review (``amazon_first_review.txt`` in the data mirror,
title and body) for preprocessing; a synthetic review set (``dlgrade.synth.amazon_reviews``,
2,000 train / 500 test, balanced) for the standard tier; the real CSVs for the full tier.

The book prints the first review's tokens after stop-word removal and its stemmed join;
today's NLTK reproduces both exactly (its printed join says "recommend" where the review
and the code give "recomend": a typo in the book, not a difference in NLTK).

Calibration (reference, standard tier: the student's whole pipeline on the synthetic set,
``train(epochs=3, batch_size=32)``, accuracy of the returned weights on the 500 test
reviews): 0.958–0.978 over seeds 0–5 (see docs/writing-checks.md) → threshold 0.75,
chance being 0.5. Full tier: 5 epochs at batch 128 on the real 25,000 reviews, test
accuracy ≥ 0.83 (book 0.85864).
"""

import numpy as np
import pandas as pd
import pytest

import dlgrade
from dlgrade import data, expect, models, synth

ACTIVITY = "6.01"
PRELOAD = ("keras",)

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
BOOK_LAYERS = [
    ("Embedding", None), ("SpatialDropout1D", 0.4), ("LSTM", 64), ("LSTM", 64),
    ("Dropout", 0.4), ("Dense", 32), ("Dropout", 0.5), ("Dense", 32), ("Dropout", 0.5),
    ("Dense", 1),
]  # fmt: skip
BOOK_PARAMS = 381_025
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
        student.make_sequences(SEQ_TRAIN, SEQ_TEST, vocab_size=4, maxlen=6), 2, what
    )
    X_train = expect.array(got[0], f"{what}[0]", shape=(3, 6), kinds="iu")
    X_test = expect.array(got[1], f"{what}[1]", shape=(2, 6), kinds="iu")
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
    _, model, _ = submission.build_model(student.build_model)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    got = []
    for layer in layers:
        config = layer.get_config()
        size = config.get("rate", config.get("units"))
        got.append((type(layer).__name__, None if type(layer).__name__ == "Embedding" else size))
    total, _, _ = models.param_counts(model)
    if got != BOOK_LAYERS or total != BOOK_PARAMS:
        dlgrade.fail(
            f"build_model() is {got} with {total:,} parameters; expected {BOOK_LAYERS} "
            f"with {BOOK_PARAMS:,}"
        )
    if layers[0].get_config()["output_dim"] != 32 or not layers[2].get_config()["return_sequences"]:
        dlgrade.fail("the Embedding must have 32 dimensions and the first LSTM return sequences")
    if layers[-1].get_config()["activation"] != "sigmoid":
        dlgrade.fail("the output layer must be Dense(1, activation='sigmoid')")


@dlgrade.check(
    points=1,
    feedback="compile with optimizer='rmsprop', loss='binary_crossentropy', metrics=['accuracy'].",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with rmsprop and binary cross-entropy."""
    _, model, _ = submission.build_model(student.build_model)
    settings = models.compile_settings(model)
    if settings.optimizer != "rmsprop" or settings.loss != "binary_crossentropy":
        dlgrade.fail(
            f"build_model() is compiled with {settings.optimizer!r} and {settings.loss!r}; "
            "expected rmsprop and binary_crossentropy"
        )


@dlgrade.check(
    points=2,
    feedback="predict_labels(model, X) must return an int array of 0/1, one per row "
    "(threshold model.predict(X) at 0.5; predict_classes no longer exists).",
)
def test_predict_labels_are_thresholded_probabilities(submission, student):
    """predict_labels returns 0/1 ints that match the model's probabilities at 0.5."""
    handle, model, _ = submission.build_model(student.build_model)
    X = np.random.default_rng(601).integers(1, 10_000, size=(64, 100))
    got = expect.array(student.predict_labels(handle, X), "predict_labels(model, X)", kinds="iub")
    if got.shape not in ((64,), (64, 1)):
        dlgrade.fail(f"predict_labels(model, X) has shape {got.shape}; expected (64,) or (64, 1)")
    want = (model.predict(X, verbose=0) > 0.5).astype(int).reshape(-1)
    if not np.array_equal(got.reshape(-1).astype(int), want):
        dlgrade.fail("predict_labels(model, X) does not match model.predict(X) > 0.5")


def _pipeline(submission, student, train_frame, test_frame, **train_kwargs):
    train_texts = _texts(
        student.preprocess(train_frame.review_text.tolist()), len(train_frame), "preprocess(train)"
    )
    test_texts = _texts(
        student.preprocess(test_frame.review_text.tolist()), len(test_frame), "preprocess(test)"
    )
    X_train, X_test = expect.sequence(
        student.make_sequences(train_texts, test_texts), 2, "make_sequences(train, test)"
    )
    X_train = expect.array(X_train, "X_train", shape=(len(train_frame), 100), kinds="iu")
    X_test = expect.array(X_test, "X_test", shape=(len(test_frame), 100), kinds="iu")
    handle, _, _ = submission.build_model(student.build_model)
    y = train_frame.label.to_numpy()
    expect.mapping(student.train(handle, X_train, y, **train_kwargs), "train(...)")
    trained = submission.load_model(handle)
    predicted = (trained.predict(X_test, verbose=0) > 0.5).astype(int).reshape(-1)
    return float(np.mean(predicted == test_frame.label.to_numpy()))


@dlgrade.check(
    points=4,
    tier="standard",
    timeout=600,
    feedback="your pipeline (preprocess → make_sequences → build_model → train) must learn "
    "to tell positive from negative reviews: check the labels you train on, the tokenizer "
    "and the model.",
)
def test_short_training_beats_chance(submission, student, reviews):
    """3 epochs on 2,000 synthetic reviews classify the 500 test reviews ≥ 0.75 (chance 0.5)."""
    train_frame, test_frame = reviews
    accuracy = _pipeline(submission, student, train_frame, test_frame, epochs=3, batch_size=32)
    if accuracy < STANDARD_ACCURACY:
        dlgrade.fail(
            f"after train(epochs=3, batch_size=32) the model classifies {accuracy:.3f} of the "
            f"test reviews correctly; the book's model reaches 0.96 (threshold "
            f"{STANDARD_ACCURACY}, chance 0.5)"
        )


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
    if accuracy < FULL_ACCURACY:
        dlgrade.fail(f"test accuracy {accuracy:.4f}; expected ≥ {FULL_ACCURACY} (book 0.85864)")
