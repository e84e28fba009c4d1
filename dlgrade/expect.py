"""Typed expectations for rubrics: turn what the worker returned into checked values.

Values from the worker are untrusted data of any type. These helpers either return the
value in the form the rubric wants or fail the check with a message that names the
function, what was expected and what was got — never a TypeError inside the rubric.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlgrade.protocol import Handle
from dlgrade.rubric import fail


def describe(value: Any) -> str:
    """A short, safe description of a value for feedback."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, Handle):
        return f"a {value.type_name}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"a {type(value).__name__} ({text})"


def scalar(value: Any, what: str) -> float:
    """``value`` as a finite float; a 0-d or one-element array counts (a tensor's value)."""
    __tracebackhide__ = True
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(()).item()
    if isinstance(value, np.generic) and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(f"{what} returned {describe(value)}; it must return a number")
    if not math.isfinite(value):
        fail(f"{what} returned {value}; it must return a finite number")
    return float(value)


def array(
    value: Any,
    what: str,
    *,
    shape: tuple[int | None, ...] | None = None,
    kinds: str = "fiub",
) -> np.ndarray:
    """``value`` as an ndarray of the given shape (None = any size) and dtype kinds.

    Array-likes count where the activity's intent is met: a (nested) list or tuple of
    numbers is converted here; pandas objects and tensors already crossed as arrays (the
    worker sends them as ``.npy``).
    """
    __tracebackhide__ = True
    if isinstance(value, list | tuple) and not any(isinstance(v, Handle) for v in _flat(value)):
        try:
            converted = np.array(value)
        except ValueError:  # ragged: rows of different lengths
            converted = None
        if converted is not None and converted.dtype.kind in "fiub":
            value = converted
    if not isinstance(value, np.ndarray):
        fail(f"{what} is {describe(value)}; expected a numpy array")
    if value.dtype.kind not in kinds:
        fail(f"{what} has dtype {value.dtype}; expected {_kinds(kinds)}")
    if shape is not None:
        ok = len(value.shape) == len(shape) and all(
            want is None or want == got for want, got in zip(shape, value.shape, strict=True)
        )
        if not ok:
            wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            fail(f"{what} has shape {value.shape}; expected {wanted}")
    return value


def handle(value: Any, what: str) -> Handle:
    """``value`` must be an object left in the worker (a model, a dataset...)."""
    __tracebackhide__ = True
    if not isinstance(value, Handle):
        fail(f"{what} returned {describe(value)}; expected a Keras model object")
    return value


def sequence(value: Any, length: int, what: str) -> tuple:
    """``value`` as a tuple of ``length`` items (a tuple or list was returned)."""
    __tracebackhide__ = True
    if not isinstance(value, tuple | list) or len(value) != length:
        fail(f"{what} returned {describe(value)}; expected a tuple of {length} values")
    return tuple(value)


def mapping(value: Any, what: str) -> dict:
    __tracebackhide__ = True
    if not isinstance(value, dict):
        fail(f"{what} returned {describe(value)}; expected a dict")
    return value


def close(got: float, want: float, tolerance: float, what: str) -> None:
    """``|got - want| <= tolerance``, with a message naming both values."""
    __tracebackhide__ = True
    if not abs(got - want) <= tolerance:
        fail(f"{what} returned {got:.6g}; expected {want:.6g} (± {tolerance:g})")


def _flat(value: Any, depth: int = 0):
    """The leaves of nested lists and tuples (a handle among them means: not data)."""
    if isinstance(value, list | tuple) and depth < 8:
        for item in value:
            yield from _flat(item, depth + 1)
    else:
        yield value


def _kinds(kinds: str) -> str:
    names = {"f": "float", "i": "int", "u": "unsigned int", "b": "bool"}
    return " or ".join(names.get(k, k) for k in kinds)
