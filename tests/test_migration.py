"""Book-era APIs that Keras 3 and gensim 4 removed: each error the student's code raises is
recognised and answered with its replacement (dlgrade.migration, docs/keras3-migration.md).

Each row of the table has its test here, named in the row, which raises the real error with
today's libraries and checks the hint that comes back.
"""

from __future__ import annotations

import pytest

from dlgrade import migration, models
from tests.helpers import SUBMISSIONS


def raised(call) -> str:
    """``"ExceptionType: message"`` of what ``call`` raises, as the worker reports it."""
    with pytest.raises(Exception) as excinfo:  # noqa: PT011 - any error the old API raises
        call()
    return f"{type(excinfo.value).__name__}: {excinfo.value}"


def hint_for(test_name: str) -> str:
    (row,) = [r for r in migration.REPLACEMENTS if r.test == test_name]
    return row.hint


@pytest.fixture(scope="module")
def keras():
    return models.keras()


@pytest.fixture(scope="module")
def model(keras):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])


def test_minimize(keras):
    text = raised(lambda: keras.optimizers.Adam(0.01).minimize)
    assert migration.hint(text) == hint_for("test_minimize")
    assert "GradientTape" in migration.hint(text)


def test_fit_generator(model):
    assert migration.hint(raised(lambda: model.fit_generator)) == hint_for("test_fit_generator")


def test_evaluate_generator(model):
    for name in ("evaluate_generator", "predict_generator"):
        text = raised(lambda name=name: getattr(model, name))
        assert migration.hint(text) == hint_for("test_evaluate_generator")


def test_predict_classes(model):
    text = raised(lambda: model.predict_classes)
    assert migration.hint(text) == hint_for("test_predict_classes")


def test_predict_proba(model):
    assert migration.hint(raised(lambda: model.predict_proba)) == hint_for("test_predict_proba")


def test_lr_argument(keras):
    text = raised(lambda: keras.optimizers.Adam(lr=0.0002, beta_1=0.5))
    assert migration.hint(text) == hint_for("test_lr_argument")
    assert "learning_rate=" in migration.hint(text)


def test_image_data_generator_import(keras):
    def old_import():
        from keras.preprocessing.image import ImageDataGenerator  # noqa: F401

    text = raised(old_import)
    assert migration.hint(text) == hint_for("test_image_data_generator_import")


def test_word2vec_size():
    from gensim.models import Word2Vec

    text = raised(lambda: Word2Vec([["a", "b"]], size=10, min_count=1))
    assert migration.hint(text) == hint_for("test_word2vec_size")


def test_word2vec_iter():
    from gensim.models import Word2Vec

    text = raised(lambda: Word2Vec([["a", "b"]], iter=3, min_count=1))
    assert migration.hint(text) == hint_for("test_word2vec_iter")


def test_word2vec_most_similar():
    from gensim.models import Word2Vec

    model = Word2Vec([["a", "b"]], vector_size=10, min_count=1)
    text = raised(lambda: model.most_similar("a"))
    assert migration.hint(text) == hint_for("test_word2vec_most_similar")


def test_every_row_has_its_test_here():
    names = {row.test for row in migration.REPLACEMENTS}
    assert names <= set(globals()), names - set(globals())


def test_an_unrelated_error_gets_no_hint():
    assert migration.hint("AttributeError: 'Sequential' object has no attribute 'fitt'") is None
    assert migration.hint("ValueError: Argument(s) not recognized: {'lrr': 0.1}") is None


def test_the_docs_table_lists_every_row():
    from tests.helpers import REPO

    text = (REPO / "docs" / "keras3-migration.md").read_text()
    for row in migration.REPLACEMENTS:
        assert row.test in text and row.old in text, row.old


@pytest.mark.slow
def test_the_books_minimize_line_is_answered_with_its_replacement(grade, tmp_path):
    """Graded as a student hands it in: one book line, and the feedback names the fix."""
    import shutil

    submission = tmp_path / "book_era"
    shutil.copytree(SUBMISSIONS / "book_era", submission)
    graded = grade(submission, ("1.01",), "quick", "--call-timeout", "60", "-k", "start")
    start = graded.check("start_is_honoured")
    assert (start["outcome"], start["reason"]) == ("error", "student_exception")
    assert hint_for("test_minimize") in start["feedback"]
    assert "'Adam' object has no attribute 'minimize'" in start["feedback"]
