"""Inspect a student's model on the trusted side, from a ``.keras`` file loaded safely.

Loading uses ``safe_mode=True``: a ``Lambda`` layer (which carries code) or a custom class
is refused, so nothing of the student's runs here. Only Keras's own layers are rebuilt.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlgrade import profile
from dlgrade.errors import RunnerError, SubmissionError

MAX_PARAMS = 200_000_000

_import_thread: threading.Thread | None = None
_seed: int | None = None
_seeded = False
_off_gpus = False


def preload() -> None:
    """Import Keras in a background thread, so it loads while the worker does the same."""
    global _import_thread
    if "keras" in sys.modules or _import_thread is not None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _import_thread = threading.Thread(target=_import_quietly, name="dlgrade-keras", daemon=True)
    _import_thread.start()


def _import_quietly() -> None:
    began = time.perf_counter()
    try:
        importlib.import_module("keras")
    except Exception:  # noqa: BLE001 - keras() raises it again where it is needed
        pass
    profile.phase("trusted Keras import", time.perf_counter() - began)


def _ready() -> bool:
    if _import_thread is not None and _import_thread.is_alive():
        return False
    return "keras" in sys.modules


def set_check_seed(seed: int) -> None:
    """Seed the trusted side's Keras for the running check (now, or when it is imported)."""
    global _seed, _seeded
    _seed, _seeded = seed, False
    if _ready():
        keras()


def keras():
    """The trusted side's ``keras`` module, seeded for the running check."""
    global _seeded
    if _import_thread is not None and _import_thread.is_alive():
        with profile.timed("wait for the trusted Keras"):
            _import_thread.join()
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
    """The trusted side only loads and inspects models: it leaves every GPU to the workers.

    TensorFlow takes nearly all of a GPU's memory in the first process that uses it; a
    grader that loaded a student's model onto the GPU would starve the worker training on it.
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


def load(path: Path):
    """Load an exported model; refuse code-carrying layers with a message for the student."""
    _refuse_oversized(path)
    module = keras()  # imported and seeded outside the load's own timing
    try:
        with profile.timed("load model (trusted side)"):
            return module.models.load_model(path, safe_mode=True, compile=True)
    except ValueError as exc:
        text = str(exc)
        if "Lambda" in text or "safe_mode" in text or "unsafe" in text.lower():
            raise SubmissionError(
                "your model contains a Lambda layer (or other layer that carries Python "
                "code); the grader refuses to load code. Use Keras's built-in layers.",
                reason="unsafe_model",
            ) from None
        raise SubmissionError(
            f"your model could not be rebuilt from its saved form: {text[:500]}. Use "
            "Keras's built-in layers only (no custom classes).",
            reason="bad_model",
        ) from None
    except (TypeError, OSError, KeyError) as exc:
        raise SubmissionError(
            f"your model could not be rebuilt from its saved form: {exc}", reason="bad_model"
        ) from None


def _refuse_oversized(path: Path) -> None:
    """Reject a file whose weights alone would be absurd before Keras allocates anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SubmissionError("the saved model is not a valid .keras file", reason="bad_model")
    if size > 4 * MAX_PARAMS:
        raise SubmissionError(
            f"the saved model unpacks to {size:,} bytes; no activity needs that much",
            reason="model_too_large",
        )


def layers(model) -> list[LayerInfo]:
    """The model's layers in order, excluding the implicit input layer."""
    out = []
    for layer in model.layers:
        config = layer.get_config()
        activation = config.get("activation")
        if isinstance(activation, dict):  # a serialised activation object
            activation = activation.get("config", {}).get("name") or activation.get("class_name")
        kernel = config.get("kernel_size")
        out.append(
            LayerInfo(
                class_name=type(layer).__name__,
                units=config.get("units") or config.get("filters"),
                activation=activation,
                kernel_size=tuple(kernel) if kernel is not None else None,
                params=int(layer.count_params()),
                trainable=bool(layer.trainable),
            )
        )
    return out


def param_counts(model) -> tuple[int, int, int]:
    """(total, trainable, non-trainable) parameter counts."""
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return trainable + frozen, trainable, frozen


def compile_settings(model) -> CompileSettings:
    """What ``model.compile`` was given, read back from the saved compile config."""
    config: dict[str, Any] = model.get_compile_config() or {}
    optimizer = config.get("optimizer")
    name = lr = None
    if isinstance(optimizer, dict):
        name = optimizer.get("class_name")
        lr = optimizer.get("config", {}).get("learning_rate")
    elif isinstance(optimizer, str):
        name = optimizer
    if isinstance(lr, dict):  # a learning-rate schedule
        lr = None
    return CompileSettings(
        optimizer=name.lower() if isinstance(name, str) else None,
        learning_rate=float(lr) if isinstance(lr, int | float) else None,
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
            value = (config or {}).get("name") or value.get("class_name")
    if not isinstance(value, str):
        return None
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", value).lower()
    return snake.replace("cross_entropy", "crossentropy")


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
    (``Submission.grader_model``, :func:`dlgrade.feeds.sequential`).
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
        """These settings as data for :func:`dlgrade.feeds.sequential` (the grader's model)."""
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
        value = value.get("config", {}).get("name") or value.get("class_name")
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


def _student_layers(model) -> list[tuple[str, dict]]:
    """(class name, config) per layer, the input layer dropped and an ``Activation`` (or a
    plain ``ReLU``) folded into the layer before it when that one is linear: the book's
    ``Dense(512)`` then ``Activation("relu")`` is ``Dense(512, activation="relu")``."""
    out: list[tuple[str, dict]] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        config = dict(layer.get_config())
        folded = None
        if kind == "Activation":
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


def architecture_problems(model, spec: list[Layer]) -> list[str]:
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
    model, spec: list[Layer], call: str, *, params: int | None = None, trainable: int | None = None
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


def compile_problems(model, want: Compiled) -> list[str]:
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
        config = (model.get_compile_config() or {}).get("optimizer") or {}
        given = config.get("config", {}) if isinstance(config, dict) else {}
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


def expect_compiled(model, want: Compiled, call: str) -> None:
    """Fail the check, naming each differing setting, unless ``model`` is compiled as ``want``."""
    __tracebackhide__ = True
    from dlgrade.rubric import fail

    if not (model.get_compile_config() or {}):
        fail(f"{call} is not compiled; call model.compile({want}) before returning it")
    problems = compile_problems(model, want)
    if problems:
        fail(f"{call} is compiled with " + "; ".join(problems))


# -- running the student's model on the trusted side ------------------------------------------


class student_model:
    """``with models.student_model("build_model(num_classes=5)"):`` around Keras calls on a
    student's model (evaluate, predict, fit): an error there is the model's — a head of the
    wrong width, a wrong input shape — and is reported as the student's, never as ours."""

    def __init__(self, call: str):
        self.call = call

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or not isinstance(exc, (ValueError, TypeError, *_tf_errors())):
            return False
        text = " ".join(str(exc).split())
        raise SubmissionError(
            f"the model from {self.call} cannot be run on the grader's data: "
            f"{type(exc).__name__}: {text[:600]}",
            reason="bad_model",
        ) from None


def _tf_errors() -> tuple[type, ...]:
    tf = sys.modules.get("tensorflow")
    error = getattr(getattr(tf, "errors", None), "OpError", None)
    return (error,) if isinstance(error, type) else ()
