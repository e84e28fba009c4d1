"""Activity 4.01, written with the book's idioms.

Idioms: ``from nltk import tokenize`` with ``tokenize.sent_tokenize`` on the lower-cased text
and ``tokenize.word_tokenize`` per sentence, a stop list concatenated from three plain lists
(the characters of ``string.punctuation``, NLTK's English stop words, the book's extra
``"--"`` and ``"said"``) once at import time, a ``drop_stop`` that tests membership in that
list inside a list comprehension, and a single module-level ``PorterStemmer`` applied in a
nested comprehension. The book's steps are the same; only the function wrapping is new.
"""

from string import punctuation

from nltk import tokenize
from nltk.corpus import stopwords
from nltk.stem import PorterStemmer

punct_chars = list(punctuation)
english_words = stopwords.words("english")
alice_extras = ["--", "said"]
STOP_LIST = punct_chars + english_words + alice_extras

porter = PorterStemmer()


def stop_words():
    return STOP_LIST


def drop_stop(input_tokens):
    return [word for word in input_tokens if word not in STOP_LIST]


def preprocess(raw_text):
    sentences = tokenize.sent_tokenize(raw_text.lower())
    return [drop_stop(tokenize.word_tokenize(sentence)) for sentence in sentences]


def stem(sentences):
    return [[porter.stem(word) for word in sentence] for sentence in sentences]
