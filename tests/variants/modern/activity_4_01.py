"""Activity 4.01, modern Python.

Idioms: the stop list as one list expression, a ``functools.cache``d ``frozenset`` for
membership, ``nltk.tokenize`` functions imported by name, and a generator pipeline;
stemming with a shared ``PorterStemmer``.
"""

import functools
import string

from nltk.corpus import stopwords
from nltk.stem import PorterStemmer
from nltk.tokenize import sent_tokenize, word_tokenize

_EXTRA = ("--", "said")


def stop_words():
    return [*string.punctuation, *stopwords.words("english"), *_EXTRA]


@functools.cache
def _stop_set():
    return frozenset(stop_words())


def drop_stop(input_tokens):
    stops = _stop_set()
    return [token for token in input_tokens if token not in stops]


def preprocess(raw_text):
    sentences = sent_tokenize(raw_text.lower(), language="english")
    return [drop_stop(word_tokenize(sentence, language="english")) for sentence in sentences]


@functools.cache
def _stemmer():
    return PorterStemmer()


def stem(sentences):
    stemmer = _stemmer()
    return [[stemmer.stem(token) for token in sentence] for sentence in sentences]
