"""Activity 4.01, functional style.

Idioms: ``nltk.sent_tokenize`` / ``nltk.word_tokenize`` through the top-level ``nltk``
module, the stop list unpacked into one literal, membership tested against a ``set``
(built once per call), ``filter`` for dropping and ``map`` for stemming.
"""

import string

import nltk
from nltk.corpus import stopwords
from nltk.stem.porter import PorterStemmer


def stop_words():
    return [*string.punctuation, *stopwords.words("english"), "--", "said"]


def drop_stop(input_tokens):
    stops = set(stop_words())
    return list(filter(lambda token: token not in stops, input_tokens))


def preprocess(raw_text):
    stops = set(stop_words())
    return [
        [token for token in nltk.word_tokenize(sentence) if token not in stops]
        for sentence in nltk.sent_tokenize(raw_text.lower())
    ]


def stem(sentences):
    porter = PorterStemmer()
    return [list(map(porter.stem, sentence)) for sentence in sentences]
