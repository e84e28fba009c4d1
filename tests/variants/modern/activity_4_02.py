"""Activity 4.02, modern gensim and sklearn.

Idioms: ``KeyedVectors.get_mean_vector(words, pre_normalize=False)`` for the plain mean of
the word vectors (the default ``pre_normalize=True`` would average unit vectors instead),
``sklearn.metrics.pairwise.cosine_similarity`` for the phrase similarity, an ``isinstance``
test to accept a ``Word2Vec`` model or ``KeyedVectors``.
"""

import numpy as np
from gensim.models import KeyedVectors, Word2Vec
from sklearn.metrics.pairwise import cosine_similarity


def _kv(vectors) -> KeyedVectors:
    return vectors if isinstance(vectors, KeyedVectors) else vectors.wv


def train_vectors(sentences, *, window=5, sg=0, seed=1, workers=1):
    return Word2Vec(sentences, window=window, sg=sg, seed=seed, workers=workers)


def most_similar(vectors, word, topn=5):
    return [(w, float(s)) for w, s in _kv(vectors).most_similar(positive=[word], topn=topn)]


def phrase_vector(vectors, words):
    return _kv(vectors).get_mean_vector(list(words), pre_normalize=False)


def phrase_similarity(vectors, phrase_a, phrase_b):
    a = phrase_vector(vectors, phrase_a)
    b = phrase_vector(vectors, phrase_b)
    return float(cosine_similarity(a[np.newaxis], b[np.newaxis])[0, 0])


def load_glove(path):
    return KeyedVectors.load_word2vec_format(path, binary=False, no_header=False)
