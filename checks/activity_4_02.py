"""Rubric for Activity 4.02 — word2vec with gensim, phrase vectors, GloVe in word2vec format.

The book's similarity numbers are not reproducible across gensim versions or thread
counts, so the checks grade structure, the parameters actually set on the model, exact
laws (a phrase vector is the mean, similarity is cosine) and agreement with a reference run
in the same environment (``workers=1``, seed 1, ``PYTHONHASHSEED=0`` in both workers).

How parameters cross without pickling: the model stays in the worker behind a handle; the
rubric reads plain attributes (``window``, ``sg``, ``seed``, ``workers``, ``vector_size``)
through the ``attributes`` request, and the vectors as word2vec *text* exported by gensim's
``save_word2vec_format`` — a format that carries no parameters and no code; the engine
parses it (``Submission.vectors``), so a malformed file is the student's ``bad_value``.

Each check tests one function: most_similar and the phrase functions get the grader's own
word2vec model (the book's defaults, built in the worker), train_vectors is compared with
the reference run through its exported vectors, and load_glove through the vectors it
loaded, so one mistake costs one check's points.
"""

import numpy as np
import pytest

import dlgrade
from dlgrade import data, expect
from dlgrade.sandbox import WorkerSession

ACTIVITY = dlgrade.activity("4.02", "word2vec on Alice")
DATASETS = ("nltk",)

#: the reference run, executed in its own worker so that it hashes like the student's
REFERENCE_RUN = """
from gensim.models import Word2Vec


def most_similar(sentences, word, topn):
    model = Word2Vec(sentences, window=5, sg=0, seed=1, workers=1)
    return [(w, float(s)) for w, s in model.wv.most_similar(word, topn=topn)]
"""


@pytest.fixture(scope="module")
def sentences():
    """The 4.01 pipeline's output on the real text (the book trains on it)."""
    data.path("nltk")
    import string

    import nltk
    from nltk.corpus import stopwords
    from nltk.tokenize import sent_tokenize, word_tokenize

    nltk.data.path.insert(0, str(data.nltk_data_dir()))
    text = (data.nltk_data_dir() / "corpora" / "gutenberg" / "carroll-alice.txt").read_text()
    stops = set(string.punctuation) | set(stopwords.words("english")) | {"--", "said"}
    return [[t for t in word_tokenize(s) if t not in stops] for s in sent_tokenize(text.lower())]


@pytest.fixture(scope="module")
def reference_rabbit(sentences, tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2v-reference")
    (folder / "w2v_reference.py").write_text(REFERENCE_RUN)
    session = WorkerSession(folder)
    try:
        return session.call("w2v_reference", "most_similar", (sentences, "rabbit", 5), timeout=300)
    finally:
        session.close()


#: the book's defaults, with one thread and a fixed seed so that a run is reproducible
BOOK_PARAMS = {"window": 5, "sg": 0, "seed": 1, "workers": 1}


@pytest.fixture
def trained(submission, sentences):
    """The grader's own word2vec model (the book's defaults), built in the worker, and its
    vectors read back as text: the input for the most_similar and phrase checks, so that a
    mistake in train_vectors costs only its own checks."""
    handle = submission.feed("word2vec", sentences, **BOOK_PARAMS)
    return handle, submission.vectors(_keyed(submission, handle))


def _keyed(submission, handle):
    return submission.attributes(handle, "wv")["wv"]


def top(vectors: dict[str, np.ndarray], word: str, n: int) -> list[tuple[str, float]]:
    """The ``n`` words nearest to ``word`` by cosine, computed here from the vectors."""
    words = [w for w in vectors if w != word]
    matrix = np.array([vectors[w] for w in words])
    query = vectors[word]
    scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")[:n]
    return [(words[i], float(scores[i])) for i in order]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _similar_list(value, what):
    __tracebackhide__ = True
    ok = isinstance(value, list) and all(
        isinstance(p, tuple | list)
        and len(p) == 2
        and isinstance(p[0], str)
        and isinstance(p[1], int | float | np.floating)
        for p in value
    )
    if not ok:
        dlgrade.fail(f"{what} returned {expect.describe(value)}; expected [(word, similarity)]")
    return [(w, float(s)) for w, s in value]


@dlgrade.check(
    points=2,
    feedback="train_vectors must pass window, sg, seed and workers to Word2Vec(...).",
)
def test_training_parameters_are_set_on_the_model(submission, student, sentences):
    """train_vectors(window=2) and (sg=1) set those parameters on the model."""
    for window, sg in ((2, 0), (5, 1)):
        what = f"train_vectors(sentences, window={window}, sg={sg}, seed=3)"
        handle = expect.handle(what, student.train_vectors(sentences, window=window, sg=sg, seed=3))
        got = submission.attributes(handle, "window", "sg", "seed", "workers")
        want = {"window": window, "sg": sg, "seed": 3, "workers": 1}
        if got != want:
            dlgrade.fail(f"{what} built a model with {got}; expected {want}")


@dlgrade.check(
    points=3,
    feedback="with the book's defaults (CBOW, window 5, gensim's other defaults) and "
    "workers=1, seed=1, the model from train_vectors(sentences) must match a reference run "
    "in the same environment; do not change vector_size, min_count or epochs.",
)
def test_agrees_with_the_reference_run(submission, student, sentences, reference_rabbit):
    """train_vectors' model puts the reference run's 5 words nearest to 'rabbit'."""
    handle = expect.handle("train_vectors(sentences)", student.train_vectors(sentences))
    vectors = submission.vectors(_keyed(submission, handle))
    if "rabbit" not in vectors:
        dlgrade.fail("the model from train_vectors(sentences) has no vector for 'rabbit'")
    got = top(vectors, "rabbit", 5)
    want = [(w, s) for w, s in reference_rabbit]
    shown = [(w, round(s, 4)) for w, s in got]
    reference = f"the reference run gives {[(w, round(s, 4)) for w, s in want]}"
    if [w for w, _ in got] != [w for w, _ in want]:
        dlgrade.fail(
            f"in the model from train_vectors(sentences) the words nearest to 'rabbit' are "
            f"{shown}; {reference}"
        )
    expect.allclose(
        "the similarities of the words nearest to 'rabbit' in train_vectors(sentences)",
        [s for _, s in got],
        [s for _, s in want],
        atol=1e-4,
        fix=f"got {shown}; {reference}",
    )


@dlgrade.check(
    points=2,
    feedback="most_similar(vectors, word, topn) must return topn (word, similarity) pairs, "
    "most similar first, never the word itself (KeyedVectors.most_similar).",
)
def test_most_similar_contract(student, trained):
    """most_similar returns topn distinct words, never the query, sorted cosine similarities."""
    handle, vectors = trained
    for word in ("rabbit", "queen", "alice", "tea"):
        what = f"most_similar(model, {word!r}, topn=7)"
        got = _similar_list(student.most_similar(handle, word, topn=7), what)
        words = [w for w, _ in got]
        scores = [s for _, s in got]
        if len(got) != 7 or len(set(words)) != 7 or word in words:
            dlgrade.fail(f"{what} returned {words}; expected 7 distinct words other than {word!r}")
        if any(not -1 <= s <= 1 for s in scores) or scores != sorted(scores, reverse=True):
            dlgrade.fail(f"{what} similarities {scores} must lie in [-1, 1], largest first")
        for w, s in got:
            if abs(cosine(vectors[word], vectors[w]) - s) > 1e-4:
                dlgrade.fail(f"{what} says {w!r} has {s:.4f}; the vectors' cosine is different")


@dlgrade.check(
    points=2,
    feedback="phrase_vector(vectors, words) must be the mean of the words' vectors "
    "(np.mean(..., axis=0)), shape (vector_size,).",
)
def test_phrase_vector_is_the_mean(student, trained):
    """phrase_vector is the mean of the word vectors, for random phrases."""
    handle, vectors = trained
    vocabulary = sorted(vectors)
    rng = np.random.default_rng(402)
    for _ in range(15):
        words = [vocabulary[i] for i in rng.integers(0, len(vocabulary), int(rng.integers(1, 5)))]
        what = f"phrase_vector(model, {words})"
        got = expect.array(what, student.phrase_vector(handle, words), shape=(100,), kinds="f")
        want = np.mean([vectors[w] for w in words], axis=0)
        expect.allclose(what, got, want, atol=1e-5, fix="expected the mean of the word vectors")


@dlgrade.check(
    points=2,
    feedback="phrase_similarity must be the cosine of the two phrase vectors, a float in "
    "[-1, 1], the same whichever phrase comes first.",
)
def test_phrase_similarity_is_symmetric_cosine(student, trained):
    """phrase_similarity is the cosine of the mean vectors, and symmetric."""
    handle, vectors = trained
    pairs = [(["white", "rabbit"], ["mad", "hatter"]), (["queen"], ["king", "court"])]
    for a, b in pairs:
        what = f"phrase_similarity(model, {a}, {b})"
        got = expect.scalar(what, student.phrase_similarity(handle, a, b))
        back = expect.scalar(
            f"phrase_similarity({b}, {a})", student.phrase_similarity(handle, b, a)
        )
        want = cosine(np.mean([vectors[w] for w in a], 0), np.mean([vectors[w] for w in b], 0))
        expect.close(what, got, want, 1e-5)
        expect.close("phrase_similarity with the phrases swapped", back, got, 1e-6)


def write_word2vec_text(path, words, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    vectors = {w: rng.normal(size=dim) for w in words}
    lines = [f"{len(words)} {dim}"] + [
        w + " " + " ".join(f"{v:.6f}" for v in vec) for w, vec in vectors.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return {w: np.round(v, 6) for w, v in vectors.items()}


@dlgrade.check(
    points=2,
    feedback="load_glove(path) must read the word2vec *text* file at `path` "
    "(KeyedVectors.load_word2vec_format(path, binary=False)) and return the KeyedVectors.",
)
def test_load_glove_reads_word2vec_text(submission, student, scratch):
    """load_glove reads a word2vec-format file: every word with its vector."""
    words = ["white", "rabbit", "mad", "hatter", "alice", "queen"] + [f"w{i}" for i in range(40)]
    vectors = write_word2vec_text(scratch / "glove.w2v.txt", words)
    path = str(submission.share(scratch / "glove.w2v.txt"))
    handle = expect.handle("load_glove(path)", student.load_glove(path))
    loaded = submission.vectors(handle)
    if sorted(loaded) != sorted(vectors):
        missing = sorted(set(vectors) - set(loaded))[:5]
        dlgrade.fail(
            f"load_glove(path) holds {len(loaded)} words; the file has {len(vectors)} "
            f"(missing e.g. {missing})"
        )
    for word, vector in vectors.items():
        expect.allclose(
            f"load_glove(path)[{word!r}]",
            loaded[word],
            vector,
            atol=1e-5,
            fix="expected the file's vector",
        )
