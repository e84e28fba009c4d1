"""Subclassed Keras models, traced into the functional graph of Keras's own layers they call.

Runs in the worker (the student's process). A ``keras.Model`` subclass cannot be rebuilt on
the trusted side without importing the student's class, which the grader never does. What
it *computes*, when its ``call()`` only chains Keras's own layers and ``keras.ops``, is a
functional model: calling ``call()`` once on a symbolic ``keras.Input`` records every layer
it goes through, in the order it goes through them, and ``keras.Model(inputs, outputs)``
over that graph holds the very same layers (the same weights) and nothing of the student's
class. That model saves as built-in layers only, so the model inspector loads it with
``safe_mode=True`` like any ``Sequential``, and the architecture, compile and freezing
checks read it the same way. A ``call()`` that skips, reorders or rewires layers shows in
the traced graph; one that computes something else than the graph it traced (Python that
branches on values, a layer that behaves differently when called eagerly) is caught on the
trusted side, which compares the student's model and the traced one on inputs the grader
chooses (:func:`dlgrade.submission.Submission._probe_traced`).

Refused, with :data:`TRACE_FIX`: a custom layer or model that owns weights of its own
(``add_weight``: tracing would drop them, and only a built-in layer's weights can be
rebuilt), and a ``call()`` that does not trace (TensorFlow functions on a symbolic tensor,
``.numpy()``, Python control flow on values).
"""

from __future__ import annotations

import inspect
from typing import Any

#: what a student whose subclassed model cannot be graded should write instead
TRACE_FIX = (
    "Write the model as a keras.Sequential, or with the functional API (x = keras.Input("
    "shape=...), then layers, then keras.Model(inputs, outputs)); or keep the subclass's "
    "call() to Keras's own layers (keras.layers.*) and keras.ops, with every weight inside "
    "a Keras layer."
)


class TraceError(Exception):
    """The model cannot be traced; the message says why, for the student."""


def is_subclassed(model: Any) -> bool:
    """A model whose class is not one of Keras's own (``Sequential``, ``Functional``)."""
    return not _is_keras_class(type(model))


def _is_keras_class(cls: type) -> bool:
    return (cls.__module__ or "").split(".", 1)[0] == "keras"


def _custom_layers(model: Any) -> list[Any]:
    found = [model]
    found += [
        layer
        for layer in model._flatten_layers(include_self=False)
        if not _is_keras_class(type(layer))
    ]
    return found


def _own_weights(layer: Any) -> list[Any]:
    """Weights of ``layer`` that belong to none of its sublayers (``add_weight``)."""
    inner = set()
    for sub in layer._flatten_layers(include_self=False):
        inner.update(id(w) for w in sub.weights)
    return [w for w in layer.weights if id(w) not in inner]


def input_shape(model: Any, fallback: Any = None) -> tuple:
    """The input shape the model was built with, batch dimension free."""
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) == 1:
        (shape,) = shapes.values()
        if isinstance(shape, list | tuple) and len(shape) >= 1:
            return (None, *tuple(shape)[1:])
    try:  # a functional model's subclass (keras.Model(inputs, outputs) in __init__)
        inputs = list(model.inputs or ())
    except Exception:  # noqa: BLE001 - a subclassed model has no inputs
        inputs = []
    if len(inputs) == 1 and getattr(inputs[0], "shape", None) is not None:
        return (None, *tuple(inputs[0].shape)[1:])
    if isinstance(fallback, list | tuple) and len(fallback) >= 1:
        return (None, *tuple(fallback)[1:])
    raise TraceError(
        f"your {type(model).__name__} model was built with more than one input, or its input "
        f"shape is not known (it was built with {sorted(shapes) or 'nothing'}); call it once "
        "on one batch of inputs before returning it. " + TRACE_FIX
    )


def trace(model: Any, shape: tuple) -> Any:
    """The functional model of the layers ``model.call`` chains, for inputs of ``shape``
    (batch dimension first, ``None``). Raises :class:`TraceError`."""
    import keras

    name = type(model).__name__
    custom = _custom_layers(model)
    for layer in custom:
        own = _own_weights(layer)
        if own:
            paths = ", ".join(sorted(w.path for w in own)[:3]) + (", …" if len(own) > 3 else "")
            raise TraceError(
                f"your {type(layer).__name__} holds weights of its own ({paths}), outside "
                "any Keras layer; the grader can only "
                f"rebuild a model from Keras's own layers, so your {name} cannot be graded. "
                + TRACE_FIX
            )
    classes = list(dict.fromkeys(type(layer) for layer in custom))
    saved = {cls: cls.__dict__.get("__call__") for cls in classes}
    inputs = keras.Input(shape=tuple(shape)[1:])
    try:
        # Layer.__call__ of a custom class would wrap its whole call() as one opaque node;
        # calling call() directly records the Keras layers inside it instead.
        for cls in classes:
            cls.__call__ = _call_through
        kwargs = {}
        if "training" in inspect.signature(model.call).parameters:
            kwargs["training"] = None  # leave the mode to the caller, as a functional model does
        outputs = model.call(inputs, **kwargs)
        traced = keras.Model(inputs, outputs, name=model.name)
    except Exception as exc:  # noqa: BLE001 - the student's call() did not trace
        raise TraceError(
            f"your {name}.call() could not be followed through Keras's layers on a symbolic "
            f"input of shape {tuple(shape)}: {type(exc).__name__}: {str(exc)[:500]}. " + TRACE_FIX
        ) from exc
    finally:
        for cls, original in saved.items():
            if original is None:
                if "__call__" in cls.__dict__:
                    del cls.__call__
            else:
                cls.__call__ = original
    if getattr(model, "compiled", False):
        config = model.get_compile_config()
        if config:
            try:
                traced.compile_from_config(config)
            except Exception as exc:  # noqa: BLE001 - the student's compile settings
                raise TraceError(
                    f"your {name} was compiled with settings the grader cannot carry over to "
                    f"the traced model: {type(exc).__name__}: {str(exc)[:300]}"
                ) from exc
    if not model.trainable:
        traced.trainable = False
    return traced


def _call_through(self, *args: Any, **kwargs: Any) -> Any:
    return self.call(*args, **kwargs)
