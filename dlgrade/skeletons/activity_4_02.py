"""Activity 4.02 — Word embeddings with word2vec (and GloVe) in gensim.

Train word2vec vectors on the Alice sentences from Activity 4.01, query them, and compare
phrases by the mean of their word vectors. The grader calls `train_vectors`, `most_similar`,
`phrase_vector`, `phrase_similarity` and `load_glove`, passing sentences and file paths in.

Hint: `from gensim.models import Word2Vec, KeyedVectors` inside your functions.
"""


def train_vectors(sentences, *, window=5, sg=0, seed=1, workers=1):
    """Train and return a gensim ``Word2Vec`` model on ``sentences`` (a list of token lists).

    Call ``Word2Vec(sentences, window=window, sg=sg, seed=seed, workers=workers)`` and keep
    gensim's other defaults (CBOW when ``sg=0``, skip-gram when ``sg=1``). The grader reads
    these settings back from the model and compares your vectors with a reference run in the
    same environment, so do pass every argument through: one worker and a fixed seed make
    the run reproducible.
    """
    raise NotImplementedError("activity_4_02.train_vectors is not implemented yet")


def most_similar(vectors, word, topn=5):
    """Return the ``topn`` words closest to ``word`` as a list of ``(word, similarity)``.

    ``vectors`` is either a ``Word2Vec`` model (use its ``.wv``) or a ``KeyedVectors``;
    accept both. Return a ``list`` of ``(str, float)`` tuples, most similar first, as
    ``KeyedVectors.most_similar(word, topn=topn)`` does (the book asks for ``"rabbit"``).
    """
    raise NotImplementedError("activity_4_02.most_similar is not implemented yet")


def phrase_vector(vectors, words):
    """Return the mean of the word vectors of ``words`` as a 1-D numpy array.

    ``vectors`` is a ``Word2Vec`` model or a ``KeyedVectors``; ``words`` is a list of words,
    e.g. ``["white", "rabbit"]``. The result has shape ``(vector_size,)``.
    """
    raise NotImplementedError("activity_4_02.phrase_vector is not implemented yet")


def phrase_similarity(vectors, phrase_a, phrase_b):
    """Return the cosine similarity of two phrases' mean vectors as a Python ``float``.

    ``phrase_a`` and ``phrase_b`` are lists of words; use ``phrase_vector`` for each and
    compare them (e.g. with ``KeyedVectors.cosine_similarities``). The result lies in
    [-1, 1]. With GloVe 6B 100d, ``["white", "rabbit"]`` vs. ``["mad", "hatter"]`` gives
    0.4514577.
    """
    raise NotImplementedError("activity_4_02.phrase_similarity is not implemented yet")


def load_glove(path):
    """Load word vectors in word2vec text format from ``path`` and return ``KeyedVectors``.

    Use ``KeyedVectors.load_word2vec_format(path, binary=False)``. The grader passes a small
    file in that format (it never downloads the 822 MB GloVe zip); use the ``path`` you are
    given rather than a hard-coded one.
    """
    raise NotImplementedError("activity_4_02.load_glove is not implemented yet")
