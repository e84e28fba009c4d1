"""Activity 4.01 — Preprocessing the text of Alice in Wonderland with NLTK.

Build a stop-word list, then lower-case, sentence- and word-tokenise, filter and stem the
text. The grader calls `stop_words`, `drop_stop`, `preprocess` and `stem`, passing the raw
text in, with NLTK's data (gutenberg `carroll-alice.txt`, `stopwords`, `punkt_tab`) already
on NLTK's path. Do not call `nltk.download` in these functions: the grader has no network.

To try it yourself, get the data once (`dlgrade data fetch nltk`, or your course's data
folder through `DLGRADE_DATA_DIR`) and point NLTK at it; importing `dlgrade.data` alone
does not (you would see `LookupError: Resource 'gutenberg' not found`):

    import nltk
    from dlgrade import data

    nltk.data.path.insert(0, str(data.path("nltk")))  # or: export NLTK_DATA=...
    alice = nltk.corpus.gutenberg.raw("carroll-alice.txt")

`dlgrade data path nltk` prints the folder, for `export NLTK_DATA="$(dlgrade data path nltk)"`.
"""


def stop_words():
    """Return the stop-word list as a ``list`` of ``str``.

    In the book's order: each single character of ``string.punctuation``, then
    ``nltk.corpus.stopwords.words("english")``, then ``["--", "said"]``.
    """
    raise NotImplementedError("activity_4_01.stop_words is not implemented yet")


def drop_stop(input_tokens):
    """Return the tokens of ``input_tokens`` that are not in ``stop_words()``.

    Keep the remaining tokens in their original order, duplicates included; return a ``list``
    of ``str``. Use your own ``stop_words()``: the grader checks ``drop_stop`` and
    ``preprocess`` against your list, and the list itself separately.
    """
    raise NotImplementedError("activity_4_01.drop_stop is not implemented yet")


def preprocess(raw_text):
    """Turn ``raw_text`` into a list of token lists, one per sentence.

    Lower-case the whole text, split it with ``nltk.sent_tokenize``, split each sentence with
    ``nltk.word_tokenize`` and apply ``drop_stop``. On Alice this gives 1,623 sentences; the
    first starts ``['alice', "'s", 'adventures', 'wonderland', 'lewis', 'carroll', ...]`` and
    the third is ``['nothing', 'remarkable', 'alice', 'think', 'much', 'way', 'hear',
    'rabbit', 'say', 'oh', 'dear']``. Today's tokenizer splits a leading single quote, so you
    get ``'oh'`` where the book printed ``"'oh"``: the grader expects today's output.
    """
    raise NotImplementedError("activity_4_01.preprocess is not implemented yet")


def stem(sentences):
    """Porter-stem every token and return a list of token lists of the same shape.

    Use ``nltk.stem.PorterStemmer().stem`` on each token of each sentence in ``sentences``,
    e.g. ``'alice'`` -> ``'alic'``, ``'adventures'`` -> ``'adventur'``, ``'sitting'`` ->
    ``'sit'``.
    """
    raise NotImplementedError("activity_4_01.stem is not implemented yet")
