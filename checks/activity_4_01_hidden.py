"""Hidden checks for Activity 4.01 — preprocessing passages the student never sees.

Hidden checks live in their own file so that the student kit (``dlgrade kit``) can leave
them out whole. Expected values are computed here, on the trusted side, with the public
rubric's copy of the book's pipeline (imported, with its fixtures). Deterministic: no
thresholds.
"""

from activity_4_01 import _first_difference, _token_lists, accepted_preprocessings

# fixtures: pytest looks fixtures up by name in the module that uses them
from activity_4_01 import alice as alice
from activity_4_01 import nltk_ready as nltk_ready

import dlgrade

ACTIVITY = "4.01"
DATASETS = ("nltk",)

#: passages the student never sees — slices of later chapters and made-up text
HIDDEN_SLICES = [(61_000, 62_500), (98_200, 99_400), (131_000, 132_300)]
HIDDEN_TEXT = (
    "Mr. Dodgson rowed up the Isis on 4 July 1862 -- three girls aboard. 'Tell us a story!' "
    "said Lorina. The Dormouse (who was asleep) didn't answer; the Hatter said: \"It's "
    "always six o'clock now.\" Is it 3.30 p.m. yet? No -- it's tea-time, e.g. at 5 p.m. "
    "Ask Dr. Liddell, or the Queen of Hearts herself!"
)


@dlgrade.check(
    points=3,
    visibility="hidden",
    feedback="preprocess must work on any text, not only the book's opening: lower-case the "
    "whole text first, then sentence- and word-tokenise with NLTK and drop stop words.",
)
def test_preprocess_on_unseen_passages(student, alice, nltk_ready):
    """preprocess() matches the book's pipeline on passages you have not seen."""
    passages = [alice[a:b] for a, b in HIDDEN_SLICES] + [HIDDEN_TEXT]
    for index, passage in enumerate(passages):
        what = f"preprocess(hidden passage {index + 1})"
        got = _token_lists(student.preprocess(passage), what)
        book, options = accepted_preprocessings(student, nltk_ready, passage)
        if got not in options:
            _first_difference(got, book, what)
