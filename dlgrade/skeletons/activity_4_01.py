"""Activity 4.01 — Preprocessing the text of Alice in Wonderland with NLTK.

Build a stop-word list, then lower-case, sentence- and word-tokenise, filter and stem the
text. The grader calls `stop_words`, `drop_stop`, `preprocess` and `stem`, passing the raw
text in. To try it yourself, let `dlgrade.data` locate NLTK's data (gutenberg
`carroll-alice.txt`, `stopwords`, `punkt_tab`) instead of hard-coding a path.
"""


def stop_words():
    """Return the stop-word list as a ``list`` of ``str``.

    In the book's order: each single character of ``string.punctuation``, then
    ``nltk.corpus.stopwords.words("english")``, then ``["--", "said"]``.
    """
    raise NotImplementedError("activity_4_01.stop_words is not implemented yet")


def drop_stop(input_tokens):
    """Return the tokens of ``input_tokens`` that are not in ``stop_words()``.

    Keep the remaining tokens in their original order, duplicates included; return a
    ``list`` of ``str``.
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
