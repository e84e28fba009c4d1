"""Activity 4.02 — word2vec on the Alice sentences, phrase vectors, and GloVe.

The book's calls with gensim 4: ``Word2Vec(sentences)`` (CBOW, window 5), then window 2,
then skip-gram (``sg=1``); ``wv.most_similar("rabbit", topn=5)``; a phrase's vector is the
mean of its words' vectors, compared by cosine. gensim 4 note: the model's vectors live in
``model.wv`` (``model.most_similar`` is gone), and ``size=`` is now ``vector_size=``. The
book's similarity numbers (~0.99) depend on the gensim version and thread count; with
``workers=1`` and a fixed seed a run is reproducible in one environment.
"""

import numpy as np
from gensim.models import KeyedVectors, Word2Vec


def _keyed(vectors):
    return vectors.wv if isinstance(vectors, Word2Vec) else vectors


def train_vectors(sentences, *, window=5, sg=0, seed=1, workers=1):
    return Word2Vec(sentences, window=window, sg=sg, seed=seed, workers=workers)


def most_similar(vectors, word, topn=5):
    return [(w, float(s)) for w, s in _keyed(vectors).most_similar(word, topn=topn)]


def phrase_vector(vectors, words):
    keyed = _keyed(vectors)
    return np.mean([keyed[w] for w in words], axis=0)


def phrase_similarity(vectors, phrase_a, phrase_b):
    a, b = phrase_vector(vectors, phrase_a), phrase_vector(vectors, phrase_b)
    return float(KeyedVectors.cosine_similarities(a, np.array([b]))[0])


def load_glove(path):
    return KeyedVectors.load_word2vec_format(path, binary=False)
