"""Activity 4.02, written the way someone coming from PyTorch writes Keras 3.

No model to subclass here either: gensim for the training, then the vector arithmetic by
hand as one would with ``torch.nn.functional`` — the phrase vector a ``numpy`` mean over a
stacked ``(words, dim)`` array, the cosine ``a·b / (|a| |b|)`` written out with
``np.dot`` and ``np.linalg.norm`` — and ``hasattr(vectors, "wv")`` (duck typing) to accept a
``Word2Vec`` model or ``KeyedVectors``.
"""

import numpy as np
from gensim.models import KeyedVectors, Word2Vec


def _word_vectors(vectors):
    return vectors.wv if hasattr(vectors, "wv") else vectors


def train_vectors(sentences, *, window=5, sg=0, seed=1, workers=1):
    model = Word2Vec(sentences=sentences, window=window, sg=sg, seed=seed, workers=workers)
    return model


def most_similar(vectors, word, topn=5):
    neighbours = _word_vectors(vectors).most_similar(word, topn=topn)
    return [(str(w), float(score)) for w, score in neighbours]


def phrase_vector(vectors, words):
    wv = _word_vectors(vectors)
    stacked = np.stack([np.asarray(wv[w], dtype=np.float32) for w in words])
    return stacked.mean(axis=0)


def phrase_similarity(vectors, phrase_a, phrase_b):
    a = phrase_vector(vectors, phrase_a).astype(np.float64)
    b = phrase_vector(vectors, phrase_b).astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def load_glove(path):
    return KeyedVectors.load_word2vec_format(path, binary=False)
