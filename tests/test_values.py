"""What the student's code returns, as the rubric sees it: array-likes accepted where the
activity's intent is met, and worker-written bytes (vectors, arrays, models) parsed by the
engine, a malformed file being the student's ``bad_value``, never an error of ours."""

from __future__ import annotations

import numpy as np
import pytest

from dlgrade import expect, models
from dlgrade.errors import SubmissionError
from dlgrade.rubric import CheckFailed
from dlgrade.sandbox import WorkerSession
from dlgrade.sandbox.protocol import ProtocolError, read_word2vec_text
from dlgrade.submission import Submission

STUDENT = '''
import pandas as pd


def frame():
    return pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}), pd.Series([0, 1])


def words():
    return pd.DataFrame({"w": ["x", "y"]})


class Vectors:
    """Answers save_word2vec_format with a file that is not word2vec text."""

    def __init__(self, body):
        self.body = body

    def save_word2vec_format(self, path, binary=False):
        with open(path, "wb") as fh:
            fh.write(self.body)


def vectors(body):
    return Vectors(body.encode("latin-1"))
'''


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    (folder / "student.py").write_text(STUDENT)
    session = WorkerSession(folder)
    submission = Submission(folder, session)
    submission.timeout = 60
    yield submission
    session.close()


@pytest.mark.slow
def test_a_dataframe_crosses_as_an_array(submission):
    """The book returns df.iloc[:, :-1]: numbers in a DataFrame are data, and cross as such."""
    X, y = submission.module("student").frame()
    assert isinstance(X, np.ndarray) and X.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert isinstance(y, np.ndarray) and y.tolist() == [0, 1]


@pytest.mark.slow
def test_a_dataframe_of_strings_stays_in_the_worker(submission):
    from dlgrade.sandbox.protocol import Handle

    assert isinstance(submission.module("student").words(), Handle)


def test_a_list_of_numbers_counts_as_an_array():
    got = expect.array("f()", [[1, 2], [3, 4]], shape=(2, 2), kinds="i")
    assert isinstance(got, np.ndarray) and got.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("value", [[[1, 2], [3]], ["a", "b"], [{"x": 1}]])
def test_a_list_that_is_not_an_array_of_numbers_fails_the_check(value):
    with pytest.raises(CheckFailed, match="expected a numpy array"):
        expect.array("f()", value)


# -- word vectors --------------------------------------------------------------------------


def write(tmp_path, text: str | bytes):
    path = tmp_path / "vectors.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_word2vec_text_is_read_word_by_word(tmp_path):
    vectors = read_word2vec_text(write(tmp_path, "2 3\nwhite 1 0 0\nrabbit 0.5 -1 2e-3\n"))
    assert list(vectors) == ["white", "rabbit"]
    assert vectors["rabbit"].tolist() == [0.5, -1.0, 0.002]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2 3\nwhite 1 0\n", "line 2 holds 2 values, not 3"),
        ("2 3\nwhite 1 0 zero\nrabbit 1 1 1\n", "line 2 holds a value that is not a number"),
        ("3 3\nwhite 1 0 0\n", "declares 3 words, the file holds 1"),
        ("white 1 0 0\n", "not 'count dim'"),
        ("", "not 'count dim'"),
        (b"1 1\n\xff\xfe 1\n", "not UTF-8"),
        ("99999999 3\n", "declares 99,999,999 words"),
    ],
)
def test_malformed_word2vec_text_is_a_protocol_error_naming_what_is_wrong(tmp_path, text, words):
    with pytest.raises(ProtocolError, match=words):
        read_word2vec_text(write(tmp_path, text))


@pytest.mark.slow
def test_malformed_vectors_from_the_worker_are_the_students_bad_value(submission):
    """4.02's rubric once parsed this itself and reported a bug in the grader (exit 3)."""
    handle = submission.module("student").vectors("2 3\nwhite 1 0\n")
    with pytest.raises(SubmissionError) as raised:
        submission.vectors(handle)
    assert raised.value.reason == "bad_value"
    assert "line 2 holds 2 values, not 3" in str(raised.value)


# -- models --------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not a zip", b"PK\x03\x04 truncated"])
def test_a_model_file_that_is_not_a_keras_file_is_the_students_bad_model(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(SubmissionError) as raised:
        models.load(path)
    assert raised.value.reason == "bad_model"
