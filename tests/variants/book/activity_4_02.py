"""Activity 4.02, written with the book's idioms.

Idioms: ``from gensim.models import word2vec`` and a ``word2vec.Word2Vec(...)`` model whose
vectors are read through ``.wv``, a phrase vector made the book's way by adding word vectors
and dividing by how many there are (the book's two-word average, for any length),
``cosine_similarities(a, [b])`` on the keyed vectors, and ``KeyedVectors`` imported from
``gensim.models.keyedvectors``. gensim 4 keeps the vectors in ``.wv``.
"""

from gensim.models import word2vec
from gensim.models.keyedvectors import KeyedVectors


def _keyed(vectors):
    # a trained Word2Vec carries its KeyedVectors in .wv; GloVe already is one
    return vectors.wv if isinstance(vectors, word2vec.Word2Vec) else vectors


def train_vectors(sentences, *, window=5, sg=0, seed=1, workers=1):
    w2v = word2vec.Word2Vec(sentences, sg=sg, window=window, workers=workers, seed=seed)
    return w2v


def most_similar(vectors, word, topn=5):
    return _keyed(vectors).most_similar(word, topn=topn)


def phrase_vector(vectors, words):
    kv = _keyed(vectors)
    total = kv[words[0]].copy()
    for other in words[1:]:
        total = total + kv[other]
    return total / len(words)


def phrase_similarity(vectors, phrase_a, phrase_b):
    vec_a = phrase_vector(vectors, phrase_a)
    vec_b = phrase_vector(vectors, phrase_b)
    sims = _keyed(vectors).cosine_similarities(vec_a, [vec_b])
    return float(sims[0])


def load_glove(path):
    glove = KeyedVectors.load_word2vec_format(path, binary=False)
    return glove
