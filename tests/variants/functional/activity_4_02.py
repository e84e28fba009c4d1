"""Activity 4.02, functional style.

Idioms: keyword arguments to ``Word2Vec(sentences=...)``, ``getattr(vectors, "wv", vectors)``
to accept a model or ``KeyedVectors``, a phrase vector as ``np.vstack(...).mean(axis=0)``,
cosine similarity written out with numpy (dot product over the norms).
"""

import numpy as np
from gensim.models import KeyedVectors, Word2Vec


def _keyed(vectors):
    return getattr(vectors, "wv", vectors)


def train_vectors(sentences, *, window=5, sg=0, seed=1, workers=1):
    return Word2Vec(sentences=sentences, window=window, sg=sg, seed=seed, workers=workers)


def most_similar(vectors, word, topn=5):
    return [(other, float(score)) for other, score in _keyed(vectors).most_similar(word, topn=topn)]


def phrase_vector(vectors, words):
    keyed = _keyed(vectors)
    return np.vstack([keyed[word] for word in words]).mean(axis=0)


def phrase_similarity(vectors, phrase_a, phrase_b):
    a = phrase_vector(vectors, phrase_a)
    b = phrase_vector(vectors, phrase_b)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def load_glove(path):
    return KeyedVectors.load_word2vec_format(path, binary=False)
