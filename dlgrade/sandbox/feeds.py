"""Inputs the grader builds inside the worker, so a check can test one function alone.

A check of ``train(model, train, val)`` needs a model and datasets, objects that cannot
cross the boundary. If it took them from the student's ``build_model`` and
``make_datasets``, one mistake there would fail the training check too — one mistake, two
deductions, and feedback that blames ``train()``. Instead the rubric asks the worker to build
them here, from data it sends (a layer spec, arrays, a folder): the student's function under
test gets the grader's inputs.

This module runs in the worker (it imports Keras there, never on import). Only the functions
in :data:`FEEDS` can be asked for, by name; their arguments are data.
"""

from __future__ import annotations

import math
from typing import Any


def image_batches(images, labels, *, batch_size: int = 16, scale: float = 1 / 255):
    """A ``tf.data.Dataset`` of ``(images × scale as float32, labels)`` batches, in order."""
    import tensorflow as tf

    def rescale(x, y):
        return tf.cast(x, tf.float32) * scale, y

    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).map(rescale)


def directory_batches(
    folder: str,
    *,
    image_size=(100, 100),
    batch_size: int = 16,
    scale: float = 1 / 255,
    seed: int | None = None,
):
    """Batches of a class-per-folder tree with one-hot labels, rescaled; shuffled with
    ``seed`` (so a few steps see every class), in folder order without."""
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder,
        image_size=tuple(image_size),
        batch_size=batch_size,
        label_mode="categorical",
        shuffle=seed is not None,
        seed=seed,
        verbose=False,
    )
    return dataset.map(lambda x, y: (x * scale, y))


def sequential(layers: list, input_shape, compiled: dict | None = None):
    """A ``keras.Sequential`` built from ``[[kind, config], ...]`` and compiled as asked.

    ``kind`` is a ``keras.layers`` class, or ``"VGG16"`` for a frozen VGG16 base without
    its top (random weights: a check never downloads ImageNet's).
    """
    import keras

    stack: list[Any] = [keras.Input(shape=tuple(input_shape))]
    for kind, config in layers:
        if kind == "VGG16":
            base = keras.applications.VGG16(
                weights=None, include_top=False, input_shape=tuple(input_shape)
            )
            base.trainable = False
            stack.append(base)
        else:
            stack.append(getattr(keras.layers, kind)(**config))
    model = keras.Sequential(stack)
    if compiled:
        _compile(model, compiled)
    return model


def gan(generator, discriminator, compiled: dict):
    """The book's GAN: ``Sequential([generator, discriminator])``, the discriminator frozen."""
    import keras

    discriminator.trainable = False
    model = keras.Sequential([generator, discriminator])
    _compile(model, compiled)
    return model


def word2vec(sentences, **params):
    """A gensim ``Word2Vec`` model trained as asked (e.g. the book's defaults, workers=1)."""
    from gensim.models import Word2Vec

    return Word2Vec(sentences, **params)


def keyed_vectors(path: str):
    """gensim ``KeyedVectors`` read from a word2vec text file the grader wrote."""
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(path, binary=False)


def _compile(model, compiled: dict) -> None:
    import keras

    optimizer = keras.optimizers.get(
        {"class_name": compiled["optimizer"], "config": dict(compiled.get("config") or {})}
    )
    model.compile(
        optimizer=optimizer, loss=compiled["loss"], metrics=list(compiled.get("metrics") or [])
    )


#: what a rubric may ask the worker to build, by name
FEEDS = {
    "image_batches": image_batches,
    "directory_batches": directory_batches,
    "sequential": sequential,
    "gan": gan,
    "word2vec": word2vec,
    "keyed_vectors": keyed_vectors,
}


# -- the model inspector's side ----------------------------------------------------------
#
# These run in the model inspector (:mod:`dlgrade.sandbox.inspector`): a worker of the
# student's session that imports no student code and only loads the ``.keras`` files the
# grader puts in its inbox. A Keras deserialisation bug that a crafted archive triggers
# there gains the attacker that worker, whose answers are that student's data and nothing
# more. Everything below answers with data: a description, arrays, floats.

#: how deep a layer's config may nest in a description (deeper parts are left out)
CONFIG_DEPTH = 24
#: the most layers (and weights) a description lists
MAX_LAYERS = 4096
#: the largest array a config may carry into a description as numbers
CONFIG_ARRAY_ITEMS = 1024


class InspectionFailed(Exception):
    """The saved model cannot be loaded or run: the student's, with ``kind`` its reason."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def load_saved(path: str) -> dict:
    """Load a saved model with ``safe_mode=True``: the model (it stays here, behind a
    handle) and its description (data)."""
    import keras

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=True)
    except ValueError as exc:
        text = str(exc)
        if "Lambda" in text or "safe_mode" in text or "unsafe" in text.lower():
            raise InspectionFailed("unsafe_model", text[:2000]) from exc
        raise InspectionFailed("bad_model", f"{type(exc).__name__}: {text[:2000]}") from exc
    except RecursionError:
        raise InspectionFailed("bad_model", "its configuration is nested too deeply") from None
    except MemoryError:
        raise  # the worker reports it as the memory limit
    except Exception as exc:  # noqa: BLE001 - whatever a hostile archive makes Keras raise
        raise InspectionFailed("bad_model", f"{type(exc).__name__}: {str(exc)[:2000]}") from exc
    if not isinstance(model, keras.Model):
        raise InspectionFailed("bad_model", f"the file holds a {type(model).__name__}, not a model")
    return {"model": model, "description": describe(model)}


def describe(model) -> dict:
    """What the rubric helpers read of a model, as data (:class:`dlgrade.models.InspectedModel`)."""
    trainable_ids = {id(w) for w in model.trainable_weights}
    layers = []
    for layer in list(model.layers)[:MAX_LAYERS]:
        try:
            params = int(layer.count_params())
        except ValueError:  # a layer that was never built has no weights
            params = 0
        layers.append(
            {
                "class_name": type(layer).__name__[:200],
                "name": str(layer.name)[:200],
                "config": _plain(layer.get_config()),
                "params": params,
                "trainable": bool(layer.trainable),
                "weights": [_weight(w, trainable_ids) for w in layer.weights][:MAX_LAYERS],
                "digest": _digest(layer.get_weights()),
            }
        )
    described = {
        "class_name": type(model).__name__[:200],
        "input_shape": _shape(model, "input_shape"),
        "output_shape": _shape(model, "output_shape"),
        "layers": layers,
        "weights": [_weight(w, trainable_ids) for w in model.weights][:MAX_LAYERS],
        "trainable_params": _size(model.trainable_weights),
        "non_trainable_params": _size(model.non_trainable_weights),
        "compile_config": _plain(model.get_compile_config() or None),
    }
    operations = _operations(model)
    if operations is not None:
        described["operations"] = operations
    return described


def _operations(model) -> list | None:
    """A functional model's graph in order, where it holds operations that are not layers
    (``keras.ops.relu(x)`` in a traced subclassed model's ``call()``): each entry is the
    index of a layer in ``model.layers``, or an operation's class and config. None where
    every operation is a layer (the description then has no ``operations``)."""
    ops = getattr(model, "operations", None)
    if type(model).__name__ != "Functional" or not isinstance(ops, list):
        return None
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    if all(id(op) in index for op in ops):
        return None
    out: list = []
    for op in ops[:MAX_LAYERS]:
        if id(op) in index:
            out.append({"layer": index[id(op)]})
            continue
        try:
            config = op.get_config()
        except Exception:  # noqa: BLE001 - an operation without a config
            config = {}
        out.append(
            {"op": type(op).__name__[:200], "name": str(op.name)[:200], "config": _plain(config)}
        )
    return out


def predict(model, x, batch_size=None):
    """``model.predict(x)``: the model's outputs on the grader's inputs."""
    return _run(lambda: model.predict(x, batch_size=batch_size, verbose=0))


def evaluate(model, x, y, batch_size=None):
    """``model.evaluate(x, y)``: the loss (and metrics) as floats."""
    result = _run(lambda: model.evaluate(x, y, batch_size=batch_size, verbose=0))
    if isinstance(result, list | tuple):
        return [float(v) for v in result]
    return float(result)


def fit(model, x, y, epochs=1, batch_size=None, validation_split=0.0, shuffle=True):
    """``model.fit(x, y, ...)`` on the inspector's copy; its history as lists of floats."""
    history = _run(
        lambda: model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            shuffle=shuffle,
            verbose=0,
        )
    )
    return {str(k): [float(v) for v in values] for k, values in history.history.items()}


def weights(model, layer=None):
    """The weights (arrays) of the model, or of its layer number ``layer``."""
    target = model if layer is None else model.layers[int(layer)]
    return [_array(w) for w in target.get_weights()]


def _run(step):
    try:
        return step()
    except MemoryError:
        raise  # the worker reports it as the memory limit
    except Exception as exc:  # noqa: BLE001 - the model failed on the grader's data
        text = " ".join(str(exc).split())
        raise InspectionFailed("bad_model", f"{type(exc).__name__}: {text[:600]}") from exc


def _array(value):
    import numpy as np

    return np.asarray(value)


def _size(variables) -> int:
    return sum(math.prod(int(d) for d in v.shape) for v in variables)


def _weight(variable, trainable_ids: set) -> dict:
    return {
        "path": str(getattr(variable, "path", getattr(variable, "name", "")))[:300],
        "shape": tuple(int(d) for d in variable.shape),
        "dtype": str(getattr(variable.dtype, "name", variable.dtype))[:40],
        "trainable": id(variable) in trainable_ids,
    }


def _digest(arrays) -> str:
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _shape(model, attribute: str):
    try:
        shape = getattr(model, attribute)
    except Exception:  # noqa: BLE001 - a model without a defined input or output
        return None
    return _plain(shape)


def _plain(value, depth: int = 0):
    """``value`` as data the protocol carries (dicts, lists, tuples, numbers, strings)."""
    import numpy as np

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= CONFIG_DEPTH:
        return "…"
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind in "biuf" else str(value)[:200]
    if isinstance(value, dict):
        return {str(k)[:200]: _plain(v, depth + 1) for k, v in list(value.items())[:MAX_LAYERS]}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value[:MAX_LAYERS]]
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value[:MAX_LAYERS])
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if value.size <= CONFIG_ARRAY_ITEMS:
            return _plain(value.tolist(), depth)
        return f"<array of shape {value.shape}>"
    return repr(value)[:200]


#: what the trusted side may ask the model inspector to do, by name
INSPECTIONS = {
    "load": load_saved,
    "predict": predict,
    "evaluate": evaluate,
    "fit": fit,
    "weights": weights,
}
