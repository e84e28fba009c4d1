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
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlgrade.errors import RunnerError, SubmissionError

MAX_PARAMS = 200_000_000

_import_thread: threading.Thread | None = None
_seed: int | None = None
_seeded = False


def preload() -> None:
    """Import Keras in a background thread, so it loads while the worker does the same."""
    global _import_thread
    if "keras" in sys.modules or _import_thread is not None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _import_thread = threading.Thread(target=_import_quietly, name="dlgrade-keras", daemon=True)
    _import_thread.start()


def _import_quietly() -> None:
    try:
        importlib.import_module("keras")
    except Exception:  # noqa: BLE001 - keras() raises it again where it is needed
        pass


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
    if _import_thread is not None:
        _import_thread.join()
    module = importlib.import_module("keras")
    if _seed is not None and not _seeded:
        module.utils.set_random_seed(_seed)
        _seeded = True
    return module


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


#: what a check that needs a GPU says on a machine without one (outcome error, reason runner)
NO_GPU_MESSAGE = "{why}; no GPU is visible to TensorFlow here. Run this tier on a GPU runner."


def require_gpu(why: str) -> None:
    """Stop the running check as a runner problem (not the student's) unless a GPU is here."""
    keras()  # TensorFlow, loaded the way every trusted-side check loads it
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise RunnerError(NO_GPU_MESSAGE.format(why=why))


def load(path: Path):
    """Load an exported model; refuse code-carrying layers with a message for the student."""
    _refuse_oversized(path)
    try:
        return keras().models.load_model(path, safe_mode=True, compile=True)
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
