"""Activity 4.01, written the way someone coming from PyTorch writes Keras 3.

There is no model here, so the habits are those of a torchtext user's plain-Python
preprocessing: ``nltk`` imported as a module and called by its dotted names, the stop list
built with explicit ``for`` loops and ``append``/``extend`` (order kept, as the book's),
membership tested against a ``set`` built once per call, and the tokenise–filter and stem
passes written as nested loops rather than comprehensions.
"""

import string

import nltk


def stop_words():
    words = []
    for char in string.punctuation:
        words.append(char)
    words.extend(nltk.corpus.stopwords.words("english"))
    words.extend(["--", "said"])
    return words


def drop_stop(input_tokens):
    stops = set(stop_words())
    kept = []
    for token in input_tokens:
        if token not in stops:
            kept.append(token)
    return kept


def preprocess(raw_text):
    stops = set(stop_words())
    sentences = []
    for sentence in nltk.sent_tokenize(raw_text.lower()):
        tokens = []
        for token in nltk.word_tokenize(sentence):
            if token not in stops:
                tokens.append(token)
        sentences.append(tokens)
    return sentences


def stem(sentences):
    stemmer = nltk.stem.PorterStemmer()
    stemmed = []
    for sentence in sentences:
        stemmed.append([stemmer.stem(token) for token in sentence])
    return stemmed
