"""What a rubric knows of a student's model: data read back from the jailed model inspector.

The trusted side never loads a student's ``.keras`` file. The student's worker saves the
model; the trusted side checks the archive's zip directory (bounded) and hands the file to
that student's model inspector (:mod:`dlgrade.sandbox.inspector`), a jailed worker that
imports no student code, loads it with ``safe_mode=True`` (a ``Lambda`` layer or a custom
class is refused) and describes it. The rubric gets an :class:`InspectedModel`: frozen data
(layers, configs, parameter counts, compile settings, shapes), and for the checks that run
a model on the grader's data, ``predict``/``evaluate``/``fit`` that run in the inspector.
"""

from __future__ import annotations

import copy
import importlib
import math
import re
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlgrade import profile
from dlgrade.errors import RubricError, RunnerError, SubmissionError

_seed: int | None = None
_seeded = False
_off_gpus = False


def preload() -> None:
    """Nothing to do any more: models are loaded and inspected in the student's jailed
    model inspector, not here, so the trusted side no longer imports Keras beside the
    worker. A rubric that uses TensorFlow on its own data imports it when it needs it
    (:func:`keras`)."""


def set_check_seed(seed: int) -> None:
    """Seed the running check: the model inspector before its next request, the trusted
    side's Keras now if a rubric has imported it (or when :func:`keras` imports it)."""
    global _seed, _seeded
    _seed, _seeded = seed, False
    if "keras" in sys.modules:
        keras()


def check_seed() -> int | None:
    """The running check's seed (None outside a check)."""
    return _seed


def keras():
    """The trusted side's ``keras`` module, seeded for the running check (for a rubric's
    own data; a student's model is never loaded here)."""
    global _seeded
    if "keras" not in sys.modules:
        with profile.timed("trusted Keras import (in a check)"):
            importlib.import_module("keras")
    module = sys.modules["keras"]
    _keep_off_gpus()
    if _seed is not None and not _seeded:
        module.utils.set_random_seed(_seed)
        _seeded = True
    return module


def _keep_off_gpus() -> None:
    """The trusted side leaves every GPU to the workers.

    TensorFlow takes nearly all of a GPU's memory in the first process that uses it; a
    grader that put its own tensors on the GPU would starve the worker training on it.
    """
    global _off_gpus
    if _off_gpus:
        return
    _off_gpus = True
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    try:
        if tf.config.list_physical_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):  # the runtime started already: nothing to hide now
        pass


@dataclass(frozen=True)
class LayerInfo:
    """One layer as a rubric compares it: class, size, activation, kernel, parameters."""

    class_name: str
    units: int | None
    activation: str | None
    kernel_size: tuple[int, ...] | None
    params: int
    trainable: bool


@dataclass(frozen=True)
class CompileSettings:
    optimizer: str | None
    learning_rate: float | None
    loss: str | None
    metrics: tuple[str, ...]


#: what a check that needs a GPU says without one (outcome error, reason runner)
NO_GPU_MESSAGE = "{why}; the worker has no GPU ({device}). Run this tier on a GPU runner."


def require_gpu(why: str, submission=None) -> None:
    """Stop the running check as a runner problem (not the student's) unless the worker has
    a GPU: one was given to this grading process (:func:`dlgrade.gpu.current`) and, with
    ``submission``, TensorFlow in the worker found it when it loaded."""
    from dlgrade import gpu

    device = gpu.current()
    if not device.is_gpu:
        raise RunnerError(NO_GPU_MESSAGE.format(why=why, device=device.summary()))
    session = getattr(submission, "session", None)
    if session is not None:
        session.ready()  # the worker's answer to its preload says what TensorFlow found
        if session.worker_gpus == []:
            raise RunnerError(NO_GPU_MESSAGE.format(why=why, device=session.device_label()))


# -- the inspected model: data from the inspector, checked before it is believed ----------

#: the inspector's description did not have the shape of one (a broken or forged answer)
BAD_DESCRIPTION_MESSAGE = (
    "the grader's model inspector described your saved model ({name}) in a form that is "
    "not a model's ({problem}). Return a plain Keras model built from Keras's own layers."
)
#: a subclassed model whose traced functional graph computes something else than it does
TRACED_MISMATCH_MESSAGE = (
    "your {cls} was graded by the Keras layers its call() goes through (the grader never "
    "runs your class itself), but on {n} random inputs the grader chose, those layers and "
    "your {cls} disagree: {detail}. So call() computes something besides its layers (Python "
    "that branches on values, TensorFlow code outside Keras layers, a layer that behaves "
    "differently when called eagerly). Write the model as a keras.Sequential or with the "
    "functional API, or keep call() to Keras's own layers and keras.ops."
)
#: how many random inputs a traced model is compared on
PROBE_BATCH = 4
#: a rubric asked to run a model it only inspected (our bug, never the student's)
SNAPSHOT_MESSAGE = (
    "{what}() on a model from Submission.inspect_model: that is a snapshot to look at; use "
    "Submission.build_model or load_model for a model to run"
)
_MAX_LAYERS = 4096
_MAX_NAME = 300


@dataclass(frozen=True)
class WeightInfo:
    """One weight (variable) of a model: where it sits, its shape and dtype, trainable."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    trainable: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class InspectedOperation:
    """A step of a functional graph that is not a layer: ``keras.ops.relu(x)`` is
    ``InspectedOperation("Relu", "relu", {...})``."""

    class_name: str
    name: str
    config: dict = field(repr=False)


#: keras.ops activations (their operation classes) folded like an ``Activation`` layer
_OPERATION_ACTIVATIONS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softmax": "softmax",
    "Elu": "elu",
    "Selu": "selu",
    "Gelu": "gelu",
    "Silu": "silu",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "LeakyRelu": "leaky_relu",
}


@dataclass(frozen=True, eq=False)
class InspectedLayer:
    """One layer of an inspected model: its Keras class, config (data) and weights."""

    class_name: str
    name: str
    config: dict = field(repr=False)
    params: int
    trainable: bool
    weights: tuple[WeightInfo, ...] = field(repr=False)
    #: sha256 of the layer's weight values: equal digests, equal weights
    digest: str = field(repr=False)
    index: int = 0
    runner: Any = field(default=None, repr=False, compare=False)

    def get_config(self) -> dict:
        return copy.deepcopy(self.config)

    def count_params(self) -> int:
        return self.params

    def get_weights(self) -> list[np.ndarray]:
        """The layer's weight values, read from the inspector."""
        return _weights(self.runner, self.index)


@dataclass(frozen=True, eq=False)
class InspectedModel:
    """A student's model as the inspector described it: frozen data, plus (when ``runner``
    is set) ``predict``/``evaluate``/``fit``/``get_weights``, which run in the inspector.

    It reads like the Keras model it describes (``layers``, ``input_shape``,
    ``output_shape``, ``weights``, ``get_compile_config()``, ``count_params()``), so a
    rubric reads the same; a layer's class is ``layer.class_name``.
    """

    class_name: str
    input_shape: Any
    output_shape: Any
    layers: tuple[InspectedLayer, ...] = field(repr=False)
    weights: tuple[WeightInfo, ...] = field(repr=False)
    trainable_params: int
    non_trainable_params: int
    compile_config: dict | None = field(repr=False)
    #: the saved file it was read from (for messages)
    source: str = ""
    runner: Any = field(default=None, repr=False, compare=False)
    #: a functional graph with operations that are not layers (``keras.ops.relu`` in a
    #: traced ``call()``), in order: a layer's index in ``layers``, or an
    #: :class:`InspectedOperation`. Empty where every step is a layer.
    operations: tuple = field(default=(), repr=False)

    @classmethod
    def from_description(cls, description: Any, *, source: str = "", runner=None):
        """Check the inspector's answer field by field; a malformed one is the student's
        ``bad_model`` (the inspector held their file), never an exception of ours."""
        try:
            return cls._parse(description, source, runner)
        except _Malformed as exc:
            raise SubmissionError(
                BAD_DESCRIPTION_MESSAGE.format(name=source or "the model", problem=exc),
                reason="bad_model",
            ) from None

    @classmethod
    def _parse(cls, d: Any, source: str, runner) -> InspectedModel:
        d = _mapping(d, "the description")
        model = cls(
            class_name=_text(d.get("class_name"), "class_name"),
            input_shape=_shape(d.get("input_shape"), "input_shape"),
            output_shape=_shape(d.get("output_shape"), "output_shape"),
            layers=(),
            weights=tuple(_weight(w) for w in _items(d.get("weights"), "weights")),
            trainable_params=_count(d.get("trainable_params"), "trainable_params"),
            non_trainable_params=_count(d.get("non_trainable_params"), "non_trainable_params"),
            compile_config=(
                None
                if d.get("compile_config") is None
                else _mapping(d.get("compile_config"), "compile_config")
            ),
            source=source,
            runner=runner,
        )
        layers = []
        for index, raw in enumerate(_items(d.get("layers"), "layers")):
            raw = _mapping(raw, f"layer {index + 1}")
            layers.append(
                InspectedLayer(
                    class_name=_text(raw.get("class_name"), "a layer's class_name"),
                    name=_text(raw.get("name"), "a layer's name"),
                    config=_mapping(raw.get("config"), "a layer's config"),
                    params=_count(raw.get("params"), "a layer's params"),
                    trainable=_flag(raw.get("trainable"), "a layer's trainable"),
                    weights=tuple(_weight(w) for w in _items(raw.get("weights"), "weights")),
                    digest=_text(raw.get("digest"), "a layer's digest"),
                    index=index,
                    runner=runner,
                )
            )
        object.__setattr__(model, "layers", tuple(layers))
        operations = []
        raw_ops = d.get("operations")
        for index, raw in enumerate(_items(raw_ops, "operations") if raw_ops is not None else ()):
            raw = _mapping(raw, f"operation {index + 1}")
            if "layer" in raw:
                at = raw.get("layer")
                if type(at) is not int or not 0 <= at < len(layers):
                    raise _Malformed(f"operation {index + 1} names no layer")
                operations.append(at)
            else:
                operations.append(
                    InspectedOperation(
                        class_name=_text(raw.get("op"), "an operation's class"),
                        name=_text(raw.get("name"), "an operation's name"),
                        config=_mapping(raw.get("config"), "an operation's config"),
                    )
                )
        object.__setattr__(model, "operations", tuple(operations))
        return model

    # -- as Keras reads -------------------------------------------------------------------

    def count_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    def get_compile_config(self) -> dict | None:
        return copy.deepcopy(self.compile_config)

    @property
    def trainable_weights(self) -> tuple[WeightInfo, ...]:
        return tuple(w for w in self.weights if w.trainable)

    @property
    def non_trainable_weights(self) -> tuple[WeightInfo, ...]:
        return tuple(w for w in self.weights if not w.trainable)

    # -- run in the inspector ------------------------------------------------------------

    def predict(self, x, batch_size=None, verbose=0) -> np.ndarray:
        """``model.predict(x)`` in the inspector (``verbose`` is always 0 there)."""
        return self._run("predict", x, batch_size=batch_size)

    def evaluate(self, x, y, batch_size=None, verbose=0):
        """``model.evaluate(x, y)`` in the inspector: the loss, or [loss, *metrics]."""
        result = self._run("evaluate", x, y, batch_size=batch_size)
        if isinstance(result, list):
            return [_number(v) for v in result]
        return _number(result)

    def fit(self, x, y, epochs=1, batch_size=None, verbose=0, validation_split=0.0, shuffle=True):
        """``model.fit`` on the inspector's copy (the description keeps the state it was
        read in); returns the history, as ``History.history``."""
        return self._run(
            "fit",
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            shuffle=shuffle,
        )

    def get_weights(self) -> list[np.ndarray]:
        """The model's weight values, read from the inspector."""
        return _weights(self.runner, None)

    def _run(self, what: str, *args, **kwargs):
        if self.runner is None:
            raise RubricError(SNAPSHOT_MESSAGE.format(what=what))
        return self.runner(what, args, kwargs)


def _weights(runner, layer: int | None) -> list[np.ndarray]:
    if runner is None:
        raise RubricError(SNAPSHOT_MESSAGE.format(what="get_weights"))
    values = runner("weights", (layer,), {})
    if not isinstance(values, list) or not all(isinstance(v, np.ndarray) for v in values):
        from dlgrade.sandbox.inspector import ModelRunError

        raise ModelRunError("the inspector answered something else than weights")
    return values


class _Malformed(Exception):
    pass


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _Malformed(f"{what} is not a mapping")
    return value


def _items(value: Any, what: str) -> list:
    if not isinstance(value, list) or len(value) > _MAX_LAYERS:
        raise _Malformed(f"{what} is not a list of at most {_MAX_LAYERS:,} items")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_NAME:
        raise _Malformed(f"{what} is not a short string")
    return value


def _count(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 10**12:
        raise _Malformed(f"{what} is not a count")
    return value


def _flag(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise _Malformed(f"{what} is not true or false")
    return value


def _dims(value: Any, what: str) -> tuple:
    if not isinstance(value, tuple | list) or len(value) > 32:
        raise _Malformed(f"{what} is not a shape")
    if not all(d is None or (type(d) is int and 0 <= d <= 2**40) for d in value):
        raise _Malformed(f"{what} is not a shape")
    return tuple(value)


def _shape(value: Any, what: str):
    """A shape, a list of shapes (a model with several inputs), or None (not defined)."""
    if value is None:
        return None
    several = isinstance(value, tuple | list) and all(isinstance(v, tuple | list) for v in value)
    if several and value:
        if len(value) > 64:
            raise _Malformed(f"{what} lists too many shapes")
        return [_dims(v, what) for v in value]
    return _dims(value, what)


def _weight(value: Any) -> WeightInfo:
    value = _mapping(value, "a weight")
    shape = _dims(value.get("shape"), "a weight's shape")
    if None in shape:
        raise _Malformed("a weight's shape is not defined")
    return WeightInfo(
        path=_text(value.get("path"), "a weight's path"),
        shape=shape,
        dtype=_text(value.get("dtype"), "a weight's dtype"),
        trainable=_flag(value.get("trainable"), "a weight's trainable"),
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        from dlgrade.sandbox.inspector import ModelRunError

        raise ModelRunError(f"the inspector answered {type(value).__name__} for a number")
    return float(value)


def load(path: Path, inspector=None, *, runner=None, check=None) -> InspectedModel:
    """The saved model at ``path`` (a trusted copy), loaded and described by ``inspector``
    (a :class:`~dlgrade.sandbox.inspector.ModelInspector`); a malformed archive, a
    ``Lambda`` layer or anything that fails in the inspector is the student's error
    (``bad_model``, ``unsafe_model``).

    ``runner(handle)``: what runs the loaded model (``predict`` and friends); None: a
    snapshot, released in the inspector at once. Without ``inspector`` a throwaway one
    is started for this model alone (seconds: it imports TensorFlow).
    """
    from dlgrade.sandbox.inspector import ModelInspector, check_archive

    path = Path(path)
    check_archive(path)
    if inspector is None:
        inspector = ModelInspector()
        try:
            return load(path, inspector)
        finally:
            inspector.close()
    handle, description = inspector.load(path)
    run = runner(handle) if runner is not None else None
    try:
        model = InspectedModel.from_description(description, source=path.name, runner=run)
        if check is not None:  # e.g. a traced model's probe, on the loaded copy
            model = check(handle, model)
    except BaseException:
        inspector.release(handle)
        raise
    if run is None:
        inspector.release(handle)
    else:  # the runner lives as long as the model or one of its layers does
        weakref.finalize(run, inspector.release, handle)
    return model


def probe_inputs(model: InspectedModel, seed: int | None) -> np.ndarray:
    """:data:`PROBE_BATCH` random inputs for ``model`` chosen by the grader: token ids below
    the vocabulary size when the model starts with an ``Embedding``, else uniform in
    [-1, 1] (float32)."""
    shape = model.input_shape
    if not isinstance(shape, tuple) or not shape or not all(
        type(d) is int and 0 < d <= 4096 for d in shape[1:]
    ):
        raise SubmissionError(
            f"your model's input shape {shape!r} cannot be probed: every dimension but the "
            "batch must be known (give keras.Input a full shape)",
            reason="bad_model",
        )
    count = PROBE_BATCH * math.prod(shape[1:])
    if count > 2**24:
        raise SubmissionError(
            f"your model's input shape {shape!r} is too large to probe ({count} values)",
            reason="bad_model",
        )
    rng = np.random.default_rng([seed or 0, 24_01])
    first = next((layer for layer in model.layers if layer.class_name != "InputLayer"), None)
    if first is not None and first.class_name == "Embedding":
        vocabulary = first.config.get("input_dim")
        if type(vocabulary) is int and vocabulary > 0:
            return rng.integers(0, vocabulary, size=(PROBE_BATCH, *shape[1:])).astype("int32")
    return rng.uniform(-1.0, 1.0, size=(PROBE_BATCH, *shape[1:])).astype("float32")


def compare_outputs(student: Any, traced: Any) -> str | None:
    """Why the student's outputs and the traced model's differ (None: they agree), with a
    tolerance fitted to the traced output's dtype (float32 rounding in a different order
    of operations; 16-bit floats much coarser)."""
    if not isinstance(student, np.ndarray) or student.dtype.kind not in "fiub":
        return f"your model's predict() gave {type(student).__name__}, not an array of numbers"
    if not isinstance(traced, np.ndarray):
        return "the traced model gave no array"
    if student.shape != traced.shape:
        return f"outputs of shape {student.shape} from your model, {traced.shape} from its layers"
    coarse = traced.dtype.itemsize <= 2 or student.dtype.itemsize <= 2
    rtol = 5e-2 if coarse else 2e-3
    want = traced.astype("float64")
    got = student.astype("float64")
    finite = want[np.isfinite(want)]
    atol = rtol * max(1.0, float(np.max(np.abs(finite))) if finite.size else 1.0)
    if np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        return None
    with np.errstate(invalid="ignore"):
        gap = np.abs(got - want)
    worst = float(np.nanmax(gap)) if np.isfinite(gap).any() else float("nan")
    return f"the largest difference is {worst:.3g} (tolerance {atol:.3g})"


def layers(model: InspectedModel) -> list[LayerInfo]:
    """The model's layers in order, excluding the implicit input layer."""
    out = []
    for layer in model.layers:
        config = layer.config
        activation = config.get("activation")
        if isinstance(activation, dict):  # a serialised activation object
            activation = _activation_name(activation)
        kernel = config.get("kernel_size")
        out.append(
            LayerInfo(
                class_name=layer.class_name,
                units=config.get("units") or config.get("filters"),
                activation=activation,
                kernel_size=tuple(kernel) if isinstance(kernel, list | tuple) else None,
                params=layer.params,
                trainable=layer.trainable,
            )
        )
    return out


def param_counts(model: InspectedModel) -> tuple[int, int, int]:
    """(total, trainable, non-trainable) parameter counts."""
    trainable, frozen = model.trainable_params, model.non_trainable_params
    return trainable + frozen, trainable, frozen


def compile_settings(model: InspectedModel) -> CompileSettings:
    """What ``model.compile`` was given, read back from the saved compile config."""
    config: dict[str, Any] = model.compile_config or {}
    optimizer = config.get("optimizer")
    name = lr = None
    if isinstance(optimizer, dict):
        name = optimizer.get("class_name")
        inner = optimizer.get("config")
        lr = inner.get("learning_rate") if isinstance(inner, dict) else None
    elif isinstance(optimizer, str):
        name = optimizer
    if isinstance(lr, bool) or not isinstance(lr, int | float):  # a schedule, or not set
        lr = None
    return CompileSettings(
        optimizer=name.lower() if isinstance(name, str) else None,
        learning_rate=float(lr) if lr is not None else None,
        loss=_name_of(config.get("loss")),
        metrics=tuple(n for n in (_name_of(m) for m in _flat(config.get("metrics"))) if n),
    )


def _flat(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [item for v in value for item in _flat(v)]
    if isinstance(value, dict) and "class_name" not in value:
        return [item for v in value.values() for item in _flat(v)]
    return [value]


def _name_of(value: Any) -> str | None:
    """'binary_crossentropy' for the string, the function or the BinaryCrossentropy class."""
    if value is None:
        return None
    if isinstance(value, dict):
        config = value.get("config")
        if isinstance(config, str):  # a plain function, e.g. keras.losses.binary_crossentropy
            value = config
        else:
            inner = config.get("name") if isinstance(config, dict) else None
            value = inner or value.get("class_name")
    if not isinstance(value, str):
        return None
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", value).lower()
    return snake.replace("cross_entropy", "crossentropy")


def _activation_name(value: dict) -> Any:
    """The name in a serialised activation (``{"class_name": ..., "config": {"name": ...}}``)."""
    config = value.get("config")
    return (config.get("name") if isinstance(config, dict) else None) or value.get("class_name")


# -- what a rubric expects of a model: one spec for the architecture and compile checks ------

#: metric names that all mean "accuracy" (Keras picks the variant from the loss)
ACCURACY = frozenset(
    {"accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"}
)
#: loss spellings that mean the same loss
_LOSS_SYNONYMS = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}
#: Keras's optimizer class for each name compile_settings reports
_OPTIMIZER_CLASSES = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD", "adamw": "AdamW"}
#: config keys whose int form Keras stores as a tuple
_TUPLE_KEYS = ("kernel_size", "strides", "pool_size", "dilation_rate")


@dataclass(frozen=True)
class Layer:
    """One expected layer: its Keras class and the constructor settings a rubric cares about.

    ``Layer("Dense", units=300, activation="relu")``. Settings not given are not compared;
    the same spec builds the grader's own copy of the model in the worker
    (``Submission.grader_model``, :func:`dlgrade.sandbox.feeds.sequential`).
    """

    kind: str
    config: tuple[tuple[str, Any], ...] = ()

    def __init__(self, kind: str, **config: Any):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "config", tuple(config.items()))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={_show(v)}" for k, v in self.config)
        return f"{self.kind}({inner})"


@dataclass(frozen=True)
class Compiled:
    """What ``model.compile`` must have been given. None: not compared."""

    optimizer: str | None = None
    learning_rate: float | None = None
    loss: str | None = None
    accuracy: bool = False
    #: other optimizer settings, e.g. ``{"beta_1": 0.5}``
    optimizer_config: tuple[tuple[str, float], ...] = ()

    def as_feed(self) -> dict:
        """These settings as data for :func:`dlgrade.sandbox.feeds.sequential` (the grader's
        model)."""
        config = dict(self.optimizer_config)
        if self.learning_rate is not None:
            config["learning_rate"] = self.learning_rate
        return {
            "optimizer": _OPTIMIZER_CLASSES.get(self.optimizer or "adam", self.optimizer),
            "config": config,
            "loss": self.loss,
            "metrics": ["accuracy"] if self.accuracy else [],
        }

    def __str__(self) -> str:
        parts = []
        if self.optimizer:
            settings = dict(self.optimizer_config)
            if self.learning_rate is not None:
                settings = {"learning_rate": self.learning_rate, **settings}
            inner = ", ".join(f"{k}={v:g}" for k, v in settings.items())
            parts.append(f"optimizer {self.optimizer.title()}({inner})")
        if self.loss:
            parts.append(f"loss {self.loss!r}")
        if self.accuracy:
            parts.append("metrics ['accuracy']")
        return ", ".join(parts)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _normalised(key: str, value: Any) -> Any:
    if key in _TUPLE_KEYS and isinstance(value, int):
        return (value,)
    if isinstance(value, list):
        return tuple(value)
    if key == "activation" and isinstance(value, dict):  # a serialised activation object
        value = _activation_name(value)
    if key == "activation" and value is None:
        return "linear"
    return value


def _same(key: str, want: Any, got: Any) -> bool:
    want, got = _normalised(key, want), _normalised(key, got)
    if key in _TUPLE_KEYS and isinstance(want, tuple) and len(want) == 1 and got:
        want = want * len(got)  # kernel_size=3 means (3, 3) on a Conv2D
    if isinstance(want, float) or isinstance(got, float):
        try:
            return abs(float(want) - float(got)) <= 1e-7 * max(1.0, abs(float(want)))
        except (TypeError, ValueError):
            return False
    return want == got


def _student_layers(model: InspectedModel) -> list[tuple[str, dict]]:
    """(class name, config) per layer, the input layer dropped and an ``Activation`` (or a
    plain ``ReLU``) folded into the layer before it when that one is linear: the book's
    ``Dense(512)`` then ``Activation("relu")`` is ``Dense(512, activation="relu")``."""
    out: list[tuple[str, dict]] = []
    steps = [
        model.layers[step] if isinstance(step, int) else step
        for step in (model.operations or range(len(model.layers)))
    ]
    for layer in steps:
        kind = layer.class_name
        if kind == "InputLayer":
            continue
        config = copy.deepcopy(layer.config)
        folded = None
        if isinstance(layer, InspectedOperation):
            folded = _OPERATION_ACTIVATIONS.get(kind)
            if kind == "Softmax" and config.get("axis", -1) != -1:
                folded = None
            if kind == "LeakyRelu" and config.get("negative_slope", 0.2) != 0.2:
                folded = None
            if folded is not None:  # keras.ops.relu(x) reads as Activation("relu")
                kind, config = "Activation", {"activation": folded}
            else:
                kind = f"keras.ops.{_snake(kind)}"
        elif kind == "Activation":
            folded = _normalised("activation", config.get("activation"))
        elif kind == "ReLU" and not config.get("max_value") and not config.get("negative_slope"):
            folded = "relu"
        if folded is not None and out and "activation" in out[-1][1]:
            previous = _normalised("activation", out[-1][1]["activation"])
            if previous == "linear":
                out[-1][1]["activation"] = folded
                continue
            if folded == "linear":
                continue  # a linear Activation after anything changes nothing
        out.append((kind, config))
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _spec_layers(spec: list[Layer]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for layer in spec:
        settings = dict(layer.settings)
        if layer.kind == "Activation" and out and "activation" in out[-1][1]:
            if _normalised("activation", out[-1][1]["activation"]) == "linear":
                out[-1][1]["activation"] = settings.get("activation", "linear")
                continue
        out.append((layer.kind, settings))
    return out


def _describe_layer(kind: str, config: dict, keys) -> str:
    shown = [f"{k}={_show(_normalised(k, config.get(k)))}" for k in keys if k in config]
    return f"{kind}({', '.join(shown)})"


def architecture_problems(model: InspectedModel, spec: list[Layer]) -> list[str]:
    """Per-layer differences between ``model`` and ``spec``, as diff lines (empty: equal)."""
    got = _student_layers(model)
    want = _spec_layers(spec)
    lines, differs = [], False
    for index in range(max(len(got), len(want))):
        g = got[index] if index < len(got) else None
        w = want[index] if index < len(want) else None
        keys = list(w[1]) if w else []
        if w is None:
            differs = True
            extra = _describe_layer(g[0], g[1], ["units", "filters", "activation"])
            lines.append(f"  layer {index + 1}: extra {extra}")
            continue
        shown_want = f"{w[0]}({', '.join(f'{k}={_show(v)}' for k, v in w[1].items())})"
        if g is None:
            differs = True
            lines.append(f"  layer {index + 1}: expected {shown_want}, got nothing")
            continue
        ok = g[0] == w[0] and all(_same(k, v, g[1].get(k)) for k, v in w[1].items())
        if ok:
            lines.append(f"  layer {index + 1}: {shown_want}  ✓")
        else:
            differs = True
            shown_got = _describe_layer(g[0], g[1], keys)
            lines.append(f"  layer {index + 1}: expected {shown_want}, got {shown_got}")
    return lines if differs else []


def expect_architecture(
    model: InspectedModel,
    spec: list[Layer],
    call: str,
    *,
    params: int | None = None,
    trainable: int | None = None,
) -> None:
    """Fail the check, with a per-layer diff, unless ``model`` has ``spec``'s layers and
    (when given) ``params`` parameters of which ``trainable`` are trainable."""
    __tracebackhide__ = True
    from dlgrade.rubric import fail

    problems = architecture_problems(model, spec)
    total, got_trainable, _ = param_counts(model)
    counts = []
    if params is not None and total != params:
        counts.append(f"{total:,} parameters, expected {params:,}")
    if trainable is not None and got_trainable != trainable:
        counts.append(f"{got_trainable:,} trainable, expected {trainable:,}")
    if problems or counts:
        detail = "\n".join(problems)
        fail(
            f"{call} differs from the book's model"
            + (f" ({'; '.join(counts)})" if counts else "")
            + (":\n" + detail if detail else "")
        )


def compile_problems(model: InspectedModel, want: Compiled) -> list[str]:
    """What differs between ``model``'s compile settings and ``want`` (empty: as expected)."""
    settings = compile_settings(model)
    problems = []
    if want.optimizer and settings.optimizer != want.optimizer:
        problems.append(f"optimizer {settings.optimizer!r}, expected {want.optimizer!r}")
    if want.learning_rate is not None and (
        settings.learning_rate is None
        or abs(settings.learning_rate - want.learning_rate) > 1e-6 * want.learning_rate
    ):
        got = "not set" if settings.learning_rate is None else f"{settings.learning_rate:.6g}"
        problems.append(f"learning rate {got}, expected {want.learning_rate:g}")
    if want.optimizer_config:
        config = (model.compile_config or {}).get("optimizer") or {}
        given = config.get("config") if isinstance(config, dict) else None
        given = given if isinstance(given, dict) else {}
        for key, value in want.optimizer_config:
            got = given.get(key)
            if not isinstance(got, int | float) or abs(float(got) - value) > 1e-7:
                shown = f"{got:.6g}" if isinstance(got, int | float) else got
                problems.append(f"optimizer {key}={shown}, expected {value:g}")
    if want.loss:
        loss = _LOSS_SYNONYMS.get(settings.loss or "", settings.loss)
        if loss != _LOSS_SYNONYMS.get(want.loss, want.loss):
            problems.append(f"loss {settings.loss!r}, expected {want.loss!r}")
    if want.accuracy and not ACCURACY & set(settings.metrics):
        problems.append(f"metrics {list(settings.metrics)}, expected ['accuracy']")
    return problems


def expect_compiled(model: InspectedModel, want: Compiled, call: str) -> None:
    """Fail the check, naming each differing setting, unless ``model`` is compiled as ``want``."""
    __tracebackhide__ = True
    from dlgrade.rubric import fail

    if not (model.compile_config or {}):
        fail(f"{call} is not compiled; call model.compile({want}) before returning it")
    problems = compile_problems(model, want)
    if problems:
        fail(f"{call} is compiled with " + "; ".join(problems))


# -- running the student's model ----------------------------------------------------------


class student_model:
    """``with models.student_model("build_model(num_classes=5)"):`` around ``predict``,
    ``evaluate`` or ``fit`` of a student's model: an error there is the model's — a head of
    the wrong width, a wrong input shape — and is reported as the student's (``bad_model``,
    naming the call that built it), never as ours. The model runs in the student's model
    inspector; Keras errors raised here (a rubric's own Keras) count the same."""

    def __init__(self, call: str):
        self.call = call

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        from dlgrade.sandbox.inspector import ModelRunError

        if isinstance(exc, ModelRunError):
            detail = exc.detail
        elif exc is not None and isinstance(exc, (ValueError, TypeError, *_tf_errors())):
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}"
        else:
            return False
        raise SubmissionError(
            f"the model from {self.call} cannot be run on the grader's data: {detail}",
            reason="bad_model",
        ) from None


def _tf_errors() -> tuple[type, ...]:
    tf = sys.modules.get("tensorflow")
    error = getattr(getattr(tf, "errors", None), "OpError", None)
    return (error,) if isinstance(error, type) else ()
