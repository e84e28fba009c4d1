"""Book-era APIs that Keras 3 (and gensim 4, NLTK 3.9) removed or renamed, and their fixes.

The book was written for TensorFlow 2.1 and gensim 3. A student who follows it line by line
meets errors that say what is missing but not what replaced it; each row here recognises one
such error in the text of the student's exception and names the replacement in one line.
The table is the single source for the feedback and for docs/keras3-migration.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Replacement:
    """One removed or renamed API: how its error reads, and what to write instead."""

    old: str
    new: str
    #: the release that removed or renamed it
    since: str
    #: matched against ``"ExceptionType: message"`` of the student's exception
    pattern: str
    #: the test in tests/test_migration.py that raises the real error and checks the hint
    test: str

    def matches(self, text: str) -> bool:
        return re.search(self.pattern, text) is not None

    @property
    def hint(self) -> str:
        return f"Hint: {self.old} is gone since {self.since}: {self.new}."


REPLACEMENTS: tuple[Replacement, ...] = (
    Replacement(
        old="optimizer.minimize(loss, var_list)",
        new="compute the loss inside `with tf.GradientTape() as tape:`, then "
        "`optimizer.apply_gradients(zip(tape.gradient(loss, [x]), [x]))`",
        since="Keras 3",
        pattern=r"object has no attribute 'minimize'",
        test="test_minimize",
    ),
    Replacement(
        old="model.fit_generator(...)",
        new="call model.fit(...) with the same generator or dataset and arguments",
        since="Keras 3",
        pattern=r"object has no attribute 'fit_generator'",
        test="test_fit_generator",
    ),
    Replacement(
        old="model.evaluate_generator / predict_generator",
        new="call model.evaluate(...) / model.predict(...) with the generator or dataset",
        since="Keras 3",
        pattern=r"object has no attribute '(evaluate|predict)_generator'",
        test="test_evaluate_generator",
    ),
    Replacement(
        old="model.predict_classes(X)",
        new="threshold the probabilities: `(model.predict(X) > 0.5).astype(int)` (sigmoid) or "
        "`model.predict(X).argmax(axis=-1)` (softmax)",
        since="Keras 3",
        pattern=r"object has no attribute 'predict_classes'",
        test="test_predict_classes",
    ),
    Replacement(
        old="model.predict_proba(X)",
        new="`model.predict(X)` returns the probabilities",
        since="Keras 3",
        pattern=r"object has no attribute 'predict_proba'",
        test="test_predict_proba",
    ),
    Replacement(
        old="an optimizer's lr= argument",
        new="spell it learning_rate=, e.g. `Adam(learning_rate=0.0002, beta_1=0.5)`",
        since="Keras 3",
        pattern=r"Argument\(s\) not recognized: \{'lr'",
        test="test_lr_argument",
    ),
    Replacement(
        old="ImageDataGenerator from keras.preprocessing.image",
        new="import the legacy class from tensorflow.keras.preprocessing.image (it still "
        "works), or use preprocessing layers (Rescaling, RandomRotation, ...) in a tf.data "
        "pipeline",
        since="Keras 3",
        pattern=r"(cannot import name 'ImageDataGenerator' from 'keras|"
        r"module 'keras\.preprocessing\.image' has no attribute 'ImageDataGenerator')",
        test="test_image_data_generator_import",
    ),
    Replacement(
        old="Word2Vec(size=...)",
        new="gensim 4 spells it vector_size= (and iter= is epochs=)",
        since="gensim 4",
        pattern=r"unexpected keyword argument 'size'",
        test="test_word2vec_size",
    ),
    Replacement(
        old="Word2Vec(iter=...)",
        new="gensim 4 spells it epochs=",
        since="gensim 4",
        pattern=r"unexpected keyword argument 'iter'",
        test="test_word2vec_iter",
    ),
    Replacement(
        old="model.most_similar(...) on a Word2Vec model",
        new="the vectors live in model.wv: `model.wv.most_similar(word, topn=5)`",
        since="gensim 4",
        pattern=r"'Word2Vec' object has no attribute '(most_similar|similarity|"
        r"similar_by_word)'",
        test="test_word2vec_most_similar",
    ),
)


def hint(text: str) -> str | None:
    """The one-line fix for a removed or renamed API named in ``text``, if one matches."""
    for replacement in REPLACEMENTS:
        if replacement.matches(text):
            return replacement.hint
    return None
