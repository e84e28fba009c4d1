"""Rubric for Activity 4.01 — preprocessing *Alice in Wonderland* with NLTK.

The book prints the first three sentences after stop-word removal and the first five
Porter-stemmed. Today's NLTK (3.9+) splits a leading single quote off a word, so exactly
three printed tokens change: ``'and`` disappears (the quote and ``and`` are both stop
words), ``'without`` becomes ``without`` and ``'oh`` becomes ``oh``. The rubric grades
against the book's lists with exactly that change applied (``MODERN_CHANGES``); the test
suite asserts that the reference reproduces them on the real text, so a further change in
NLTK is noticed rather than silently graded.

``drop_stop`` is graded against the student's own stop list, and ``preprocess`` may apply
the book's list, the student's list or the student's ``drop_stop``: the list and
``drop_stop`` have their own checks, so one mistake there costs its own points only.

Deterministic: no thresholds.
"""

import functools
import string

import numpy as np
import pytest

import dlgrade
from dlgrade import data, expect

ACTIVITY = dlgrade.activity("4.01", "Alice in Wonderland preprocessing")
DATASETS = ("nltk",)

EXTRA_STOPS = ["--", "said"]

BOOK_FIRST_THREE = [
    ["alice", "'s", "adventures", "wonderland", "lewis", "carroll", "1865", "chapter", "i.",
     "rabbit-hole", "alice", "beginning", "get", "tired", "sitting", "sister", "bank",
     "nothing", "twice", "peeped", "book", "sister", "reading", "pictures", "conversations",
     "'and", "use", "book", "thought", "alice", "'without", "pictures", "conversation"],
    ["considering", "mind", "well", "could", "hot", "day", "made", "feel", "sleepy", "stupid",
     "whether", "pleasure", "making", "daisy-chain", "would", "worth", "trouble", "getting",
     "picking", "daisies", "suddenly", "white", "rabbit", "pink", "eyes", "ran", "close"],
    ["nothing", "remarkable", "alice", "think", "much", "way", "hear", "rabbit", "say", "'oh",
     "dear"],
]  # fmt: skip
BOOK_STEMMED_FIVE = [
    ["alic", "'s", "adventur", "wonderland", "lewi", "carrol", "1865", "chapter", "i.",
     "rabbit-hol", "alic", "begin", "get", "tire", "sit", "sister", "bank", "noth", "twice",
     "peep", "book", "sister", "read", "pictur", "convers", "'and", "use", "book", "thought",
     "alic", "'without", "pictur", "convers"],
    ["consid", "mind", "well", "could", "hot", "day", "made", "feel", "sleepi", "stupid",
     "whether", "pleasur", "make", "daisy-chain", "would", "worth", "troubl", "get", "pick",
     "daisi", "suddenli", "white", "rabbit", "pink", "eye", "ran", "close"],
    ["noth", "remark", "alic", "think", "much", "way", "hear", "rabbit", "say", "'oh", "dear"],
    ["oh", "dear"],
    ["shall", "late"],
]  # fmt: skip
#: book token → today's token (None: gone), for the only tokens NLTK 3.9+ changes here
MODERN_CHANGES = {"'and": None, "'without": "without", "'oh": "oh"}


def modernise(sentences):
    """The book's printed lists as today's NLTK produces them."""
    return [
        [MODERN_CHANGES.get(t, t) for t in s if MODERN_CHANGES.get(t, t) is not None]
        for s in sentences
    ]


@pytest.fixture(scope="module")
def nltk_ready():
    """NLTK on the trusted side, reading the same verified data the worker gets."""
    data.path("nltk")
    import nltk

    nltk.data.path.insert(0, str(data.nltk_data_dir()))
    return nltk


@pytest.fixture(scope="module")
def alice(nltk_ready):
    return (data.nltk_data_dir() / "corpora" / "gutenberg" / "carroll-alice.txt").read_text()


def reference_stops(nltk) -> list[str]:
    from nltk.corpus import stopwords

    return list(string.punctuation) + stopwords.words("english") + EXTRA_STOPS


@functools.lru_cache(maxsize=4)
def tokenised(raw_text: str) -> tuple[tuple[str, ...], ...]:
    """The book's tokenisation (lower-case, sentences, words), once per text: tokenising
    all of Alice takes a good part of a second and several checks need it."""
    from nltk.tokenize import sent_tokenize, word_tokenize

    return tuple(tuple(word_tokenize(s)) for s in sent_tokenize(raw_text.lower()))


def reference_preprocess(nltk, raw_text, stops=None):
    """The book's pipeline; ``stops``: another stop list than the book's (the student's)."""
    stops = set(reference_stops(nltk) if stops is None else stops)
    return [[t for t in sentence if t not in stops] for sentence in tokenised(raw_text)]


def student_stops(student, nltk) -> list[str]:
    """The student's own stop list, to grade drop_stop and preprocess against.

    Those functions apply the stop list; whether the list is the book's is test_stop_list's
    business, so a wrong list costs its own points only. A stop_words() that fails or
    returns something else than strings leaves the book's list.
    """
    try:
        got = student.stop_words()
    except dlgrade.SubmissionError:
        return reference_stops(nltk)
    if isinstance(got, list) and got and all(isinstance(t, str) for t in got):
        return got
    return reference_stops(nltk)


def _token_lists(value, what):
    __tracebackhide__ = True
    if not isinstance(value, list) or not all(
        isinstance(s, list) and all(isinstance(t, str) for t in s) for s in value
    ):
        dlgrade.fail(f"{what} returned {expect.describe(value)}; expected a list of token lists")
    return value


def _first_difference(got, want, what):
    __tracebackhide__ = True
    for index, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            dlgrade.fail(f"{what}: sentence {index + 1} is {g}; expected {w}")
    if len(got) != len(want):
        dlgrade.fail(f"{what} returned {len(got)} sentences; expected {len(want)}")


@dlgrade.check(
    points=2,
    feedback="stop_words() must be every character of string.punctuation, then "
    "stopwords.words('english'), then ['--', 'said'].",
)
def test_stop_list(student, nltk_ready):
    """stop_words() is punctuation + NLTK English + ['--', 'said']."""
    got = student.stop_words()
    if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
        dlgrade.fail(f"stop_words() returned {expect.describe(got)}; expected a list of str")
    want = reference_stops(nltk_ready)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        dlgrade.fail(f"stop_words() lacks {missing[:10]} and has extra {extra[:10]}")


@dlgrade.check(
    points=3,
    feedback="drop_stop(tokens) must return the tokens that are not stop words, in their "
    "order, keeping repeats: [t for t in tokens if t not in stops].",
)
def test_drop_stop_laws(student, nltk_ready):
    """drop_stop keeps order and repeats, drops every stop word, and is idempotent."""
    stops = student_stops(student, nltk_ready)
    words = ["rabbit", "alice", "queen", "tea", "hatter", "croquet", "Said", "ALICE", "'s", "—"]
    rng = np.random.default_rng(401)
    for case in range(40):
        # Half stop words, half a small vocabulary, so kept words often repeat.
        size = int(rng.integers(0, 25))
        tokens = [
            words[int(rng.integers(len(words)))]
            if rng.random() < 0.5
            else stops[int(rng.integers(len(stops)))]
            for _ in range(size)
        ]
        got = student.drop_stop(tokens)
        what = f"drop_stop({tokens})"
        if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
            dlgrade.fail(f"{what} returned {expect.describe(got)}; expected a list of str")
        want = [t for t in tokens if t not in set(stops)]
        if got != want:
            dlgrade.fail(f"{what} returned {got}; expected {want}")
        if case < 10 and student.drop_stop(got) != got:
            dlgrade.fail(f"drop_stop is not idempotent: drop_stop({got}) changed it")


def accepted_preprocessings(student, nltk, raw_text, sentences=None):
    """What preprocess(raw_text) may return: the book's pipeline with the book's stop list,
    with the student's own stop list, or with the student's own drop_stop — so a mistake in
    stop_words or drop_stop (each graded by its own check) does not cost preprocess too."""
    book = reference_preprocess(nltk, raw_text)[:sentences]
    options = [book, reference_preprocess(nltk, raw_text, student_stops(student, nltk))]
    options[1] = options[1][:sentences]
    try:
        sentences_tokens = [list(tokens) for tokens in tokenised(raw_text)][:sentences]
        options.append([student.drop_stop(tokens) for tokens in sentences_tokens])
    except dlgrade.SubmissionError:
        pass
    return book, options


@dlgrade.check(
    points=3,
    feedback="preprocess(text) must lower-case the raw text, sent_tokenize it, word_tokenize "
    "each sentence and drop stop words (drop_stop).",
)
def test_preprocess_reproduces_the_books_first_sentences(student, alice, nltk_ready):
    """preprocess(Alice) gives the book's first three sentences (modern NLTK)."""
    got = _token_lists(student.preprocess(alice), "preprocess(alice)")
    _, options = accepted_preprocessings(student, nltk_ready, alice, sentences=3)
    if got[:3] not in options:
        _first_difference(got[:3], modernise(BOOK_FIRST_THREE), "preprocess(alice)")


@dlgrade.check(
    points=2,
    feedback="stem(sentences) must Porter-stem every token (nltk.stem.PorterStemmer), "
    "keeping the sentence structure.",
)
def test_stem_reproduces_the_books_first_five(student, alice, nltk_ready):
    """stem() of the first five sentences gives the book's stems; it is Porter, token by token."""
    from nltk.stem import PorterStemmer

    sentences = reference_preprocess(nltk_ready, alice)[:5]
    got = _token_lists(student.stem(sentences), "stem(first five sentences)")
    _first_difference(got, modernise(BOOK_STEMMED_FIVE), "stem(first five sentences)")
    vocabulary = sorted({t for s in reference_preprocess(nltk_ready, alice) for t in s})
    sample = [vocabulary[i::97][:25] for i in range(4)]
    got = _token_lists(student.stem(sample), "stem(vocabulary sample)")
    stemmer = PorterStemmer()
    _first_difference(got, [[stemmer.stem(t) for t in s] for s in sample], "stem(sample)")
