"""Subclassed keras.Models (issue 24, item 1): graded by the Keras layers their call() goes
through (dlgrade/tracing.py, in the worker), checked on the trusted side against what the
student's model computes on the grader's random inputs, and refused with the fix where
they cannot be graded that way."""

from __future__ import annotations

import numpy as np
import pytest

from dlgrade import models, tracing
from dlgrade.errors import SubmissionError
from dlgrade.sandbox import WorkerSession, feeds
from dlgrade.submission import Submission

SPEC = [
    models.Layer("Dense", units=8, activation="relu"),
    models.Layer("Dense", units=6, activation="relu"),
    models.Layer("Dense", units=1, activation="sigmoid"),
]

# A student's module: the same MLP four ways, and three that cannot be graded by tracing.
STUDENT = '''
import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="student")
class Block(keras.layers.Layer):
    """A custom layer made of Keras layers only (nested subclassing)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return keras.ops.relu(self.dense(x))


@keras.saving.register_keras_serializable(package="student")
class Net(keras.Model):
    def __init__(self, skip=False, **kwargs):
        super().__init__(**kwargs)
        self.skip = skip
        self.block = Block(8)
        self.fc = keras.layers.Dense(6)
        self.act = keras.layers.ReLU()
        self.head = keras.layers.Dense(1, activation="sigmoid")

    def call(self, x, training=False):
        x = self.block(x)
        x = self.fc(x)
        if not self.skip:
            x = self.act(x)
        return self.head(x)


@keras.saving.register_keras_serializable(package="student")
class Sneaky(Net):
    """Computes one thing when traced and another when run: the probe must see it."""

    def call(self, x, training=False):
        out = super().call(x, training=training)
        if isinstance(x, keras.KerasTensor):
            return out
        return 1.0 - out


class Scaled(keras.layers.Layer):
    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale


class OwnWeights(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scaled = Scaled()
        self.head = keras.layers.Dense(1, activation="sigmoid")

    def call(self, x):
        return self.head(self.scaled(x))


class RawTensorFlow(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = keras.layers.Dense(1)

    def call(self, x):
        return tf.nn.sigmoid(self.head(x))


def built(model, compile=True):
    model(np.zeros((1, 5), dtype="float32"))
    if compile:
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def net():
    return built(Net())


def net_skipping_a_relu():
    return built(Net(skip=True))


def sneaky():
    return built(Sneaky())


def own_weights():
    return built(OwnWeights())


def raw_tensorflow():
    return built(RawTensorFlow())


def frozen():
    model = built(Net())
    model.trainable = False
    return model
'''


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    (folder / "student.py").write_text(STUDENT)
    return folder


@pytest.fixture(scope="module")
def module(student):
    """The student's module imported here, for the tracing functions run in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tracing_student", student / "student.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


# -- the trace, in-process --------------------------------------------------------------


def test_a_subclassed_model_traces_to_its_own_layers(module):
    model = module.net()
    traced = tracing.trace(model, tracing.input_shape(model))
    assert type(traced).__name__ == "Functional"
    assert traced.count_params() == model.count_params() == 5 * 8 + 8 + 8 * 6 + 6 + 7
    x = np.random.default_rng(0).uniform(-1, 1, (16, 5)).astype("float32")
    np.testing.assert_allclose(traced.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    # the custom classes are callable as before: the trace put their __call__ back
    assert "__call__" not in type(model).__dict__ and "__call__" not in module.Block.__dict__
    model(x)
    # keras.ops.relu in Block.call reads as the Dense's activation, ReLU() as the next one
    assert models.architecture_problems(_described(traced), SPEC) == []
    assert traced.get_compile_config()["optimizer"]["class_name"] == "Adam"


def test_a_call_that_skips_a_layer_shows_in_the_architecture(module):
    traced = tracing.trace(module.net_skipping_a_relu(), (None, 5))
    problems = models.architecture_problems(_described(traced), SPEC)
    assert any("layer 2: expected Dense(units=6, activation='relu')" in p for p in problems), (
        problems
    )


def test_a_frozen_subclassed_model_stays_frozen(module):
    traced = tracing.trace(module.frozen(), (None, 5))
    assert traced.trainable is False and not traced.trainable_weights


def test_a_layer_with_weights_of_its_own_is_refused_with_the_fix(module):
    with pytest.raises(tracing.TraceError) as raised:
        tracing.trace(module.own_weights(), (None, 5))
    assert "Scaled holds weights of its own" in str(raised.value)
    assert "keras.Sequential" in str(raised.value)


def test_a_call_that_cannot_be_followed_is_refused_with_the_fix(module):
    with pytest.raises(tracing.TraceError) as raised:
        tracing.trace(module.raw_tensorflow(), (None, 5))
    assert "RawTensorFlow.call() could not be followed" in str(raised.value)
    assert "functional API" in str(raised.value)
    assert "__call__" not in module.RawTensorFlow.__dict__


def test_a_malformed_operations_list_is_the_students_bad_model(module):
    description = feeds.describe(tracing.trace(module.net(), (None, 5)))
    assert description["operations"], "Block's keras.ops.relu is an operation of the graph"
    description["operations"][1] = {"layer": 999}
    with pytest.raises(SubmissionError) as raised:
        models.InspectedModel.from_description(description)
    assert raised.value.reason == "bad_model"


def test_outputs_are_compared_with_a_tolerance_fitted_to_the_dtype():
    ref = np.linspace(-3, 3, 12, dtype="float32").reshape(4, 3)
    assert models.compare_outputs(ref + 1e-4, ref) is None
    assert "largest difference" in models.compare_outputs(ref + 0.1, ref)
    assert models.compare_outputs(ref.astype("float16"), ref.astype("float16") + 0.05) is None
    assert "shape" in models.compare_outputs(ref[:2], ref)
    assert "not an array" in models.compare_outputs("forged", ref)


def _described(model) -> models.InspectedModel:
    return models.InspectedModel.from_description(feeds.describe(model))


# -- in a worker and the inspector --------------------------------------------------------


@pytest.fixture(scope="module")
def submission(student):
    session = WorkerSession(student, preload=("keras",))
    submission = Submission(student, session)
    submission.timeout = 120
    yield submission
    session.close()


@pytest.mark.slow
def test_a_subclassed_model_is_graded_like_a_sequential(submission):
    inspected, _ = submission.inspect_model(submission.module("student").net)
    assert inspected.class_name == "Net"
    assert models.architecture_problems(inspected, SPEC) == []
    assert models.param_counts(inspected) == (109, 109, 0)
    assert models.compile_settings(inspected).optimizer == "adam"


@pytest.mark.slow
def test_a_model_that_computes_something_else_than_its_trace_is_caught(submission):
    with pytest.raises(SubmissionError) as raised:
        submission.inspect_model(submission.module("student").sneaky)
    assert raised.value.reason == "bad_model"
    assert str(raised.value).startswith("your Sneaky was graded by the Keras layers")
    assert "largest difference" in str(raised.value)


@pytest.mark.slow
@pytest.mark.parametrize("function", ["own_weights", "raw_tensorflow"])
def test_an_untraceable_model_fails_its_check_with_the_fix(submission, function):
    with pytest.raises(SubmissionError) as raised:
        submission.inspect_model(getattr(submission.module("student"), function))
    assert raised.value.reason == "untraceable_model"
    assert "functional API" in str(raised.value)
