"""Activity 4.01 — preprocess *Alice's Adventures in Wonderland* with NLTK.

The book's pipeline, unchanged: lower-case the raw text, ``sent_tokenize``, ``word_tokenize``
each sentence, drop stop words (every character of ``string.punctuation``, NLTK's English
stop words, and ``"--"`` and ``"said"``), then Porter-stem.

NLTK note: since NLTK 3.9 the tokenizers need ``punkt_tab`` (not ``punkt``), and
``word_tokenize`` now splits a leading single quote, so three of the book's printed tokens
(``'and``, ``'without``, ``'oh``) come out as ``and`` (then dropped), ``without`` and ``oh``.
"""

import string

from nltk.corpus import stopwords
from nltk.stem import PorterStemmer
from nltk.tokenize import sent_tokenize, word_tokenize


def stop_words():
    return list(string.punctuation) + stopwords.words("english") + ["--", "said"]


def drop_stop(input_tokens):
    stops = set(stop_words())
    return [token for token in input_tokens if token not in stops]


def preprocess(raw_text):
    sentences = sent_tokenize(raw_text.lower())
    return [drop_stop(word_tokenize(sentence)) for sentence in sentences]


def stem(sentences):
    stemmer = PorterStemmer()
    return [[stemmer.stem(token) for token in sentence] for sentence in sentences]
