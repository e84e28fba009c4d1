"""Typed expectations for rubrics: turn what the worker returned into checked values.

Values from the worker are untrusted data of any type. These helpers either return the
value in the form the rubric wants or fail the check with a message that names the
function, what was expected and what was got — never a TypeError inside the rubric.

Every helper has one shape: ``what`` (the call or value, as the student reads it) first,
then the value got, then what it is compared with (PrairieLearn's ``code_feedback``).
"""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any

import numpy as np

from dlgrade.errors import RubricError
from dlgrade.rubric import fail
from dlgrade.sandbox.protocol import Handle

#: elements compared at a time by :func:`allclose` (bounds its temporary arrays)
CHUNK = 1 << 20
#: dtype kinds that count as numeric data for :func:`allclose`
NUMERIC = "fiub"


def _bounded_repr() -> reprlib.Repr:
    """A repr that stops early: a value 100,000 lists deep or a million items long is cut."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxtuple, bounded.maxlist, bounded.maxdict = 3, 12, 12, 8
    bounded.maxstring = bounded.maxlong = bounded.maxother = 100
    return bounded


_REPR = _bounded_repr()


def describe(value: Any) -> str:
    """A short, safe description of a value for feedback.

    Examples: ``fail(f"{what} returned {expect.describe(raw)}; expected a dict")``
    """
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, Handle):
        return f"a {value.type_name}"
    try:
        text = _REPR.repr(value)
    except Exception:  # an object whose __repr__ raises: say what it is, not what it says
        text = "…"
    if len(text) > 80:
        text = text[:77] + "..."
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name} ({text})"


def scalar(what: str, value: Any) -> float:
    """``value`` as a finite float; a 0-d or one-element array counts (a tensor's value).

    Examples: ``x = expect.scalar("solve()", student.solve())``
    """
    __tracebackhide__ = True
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(()).item()
    if isinstance(value, np.generic) and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(f"{what} returned {describe(value)}; it must return a number")
    try:
        number = float(value)
    except OverflowError:  # an int no float holds (10**400)
        fail(f"{what} returned {describe(value)}; it must return a finite number")
    if not math.isfinite(number):
        fail(f"{what} returned {value}; it must return a finite number")
    return number


def array(
    what: str,
    value: Any,
    *,
    shape: tuple[int | None, ...] | None = None,
    kinds: str = "fiub",
) -> np.ndarray:
    """``value`` as an ndarray of the given shape (None = any size) and dtype kinds.

    Array-likes count where the activity's intent is met: a (nested) list or tuple of
    numbers is converted here; pandas objects and tensors already crossed as arrays (the
    worker sends them as ``.npy``).

    Examples: ``X = expect.array("load_data(path)[0]", X, shape=(None, 60), kinds="f")``
    """
    __tracebackhide__ = True
    if isinstance(value, list | tuple):
        converted = _numbers(value)
        if converted is not None:
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


def handle(what: str, value: Any) -> Handle:
    """``value`` must be an object left in the worker (a model, a dataset...).

    Examples: ``model = expect.handle("build_model()", student.build_model())``
    """
    __tracebackhide__ = True
    if not isinstance(value, Handle):
        fail(f"{what} returned {describe(value)}; expected a Keras model object")
    return value


def sequence(what: str, value: Any, length: int) -> tuple:
    """``value`` as a tuple of ``length`` items (a tuple or list was returned).

    Examples: ``X, y = expect.sequence("load_data(path)", student.load_data(path), 2)``
    """
    __tracebackhide__ = True
    if not isinstance(value, tuple | list) or len(value) != length:
        fail(f"{what} returned {describe(value)}; expected a tuple of {length} values")
    return tuple(value)


def mapping(what: str, value: Any) -> dict:
    """``value`` must be a dict (a Keras ``History.history``, say).

    Examples: ``history = expect.mapping("train(...)", student.train(model, X, y))``
    """
    __tracebackhide__ = True
    if not isinstance(value, dict):
        fail(f"{what} returned {describe(value)}; expected a dict")
    return value


def close(what: str, got: Any, want: float, tolerance: float) -> None:
    """``|got - want| <= tolerance``, with a message naming both values.

    Examples: ``expect.close("solve()", x, 5.0, 0.01)``
    """
    __tracebackhide__ = True
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        fail(f"{what} returned {describe(got)}; it must return a number")
    try:
        got = float(got)
    except OverflowError:
        fail(f"{what} returned {describe(got)}; it must return a finite number")
    if not abs(got - want) <= tolerance:
        fail(f"{what} returned {got:.6g}; expected {want:.6g} (± {tolerance:g})")


def allclose(
    what: str, got: Any, want: Any, *, atol: float = 1e-8, rtol: float = 1e-5, fix: str = ""
) -> None:
    """``got`` equals ``want`` element by element within ``atol + rtol * |want|``.

    The rule of ``np.allclose`` (NaN is never close; an infinity is close to the same
    infinity), but the shapes must be equal (no broadcasting). ``got`` may be an array or
    a (nested) list of numbers; anything else fails, as does a shape mismatch. The failure
    names the first differing index, both values there and how many elements differ;
    ``fix`` (the activity's advice) is appended to it.

    Examples: ``expect.allclose("phrase_vector(model, words)", got, want, atol=1e-5)``
    """
    __tracebackhide__ = True
    then = f"; {fix}" if fix else ""
    wanted = _numeric(want)
    if wanted is None:
        raise RubricError(
            f"expect.allclose({what!r}): the expected value is {describe(want)}, not numbers; "
            "pass the grader's array as `want` (the third argument)"
        )
    values = _numeric(got)
    if values is None:
        wanted_text = f"an array of shape {wanted.shape}" if wanted.ndim else "a number"
        fail(f"{what} is {describe(got)}; expected numbers ({wanted_text}){then}")
    if values.shape != wanted.shape:
        fail(f"{what} has shape {values.shape}; expected shape {wanted.shape}{then}")
    flat_got, flat_want = values.reshape(-1), wanted.reshape(-1)
    first, differ = None, 0
    for start in range(0, flat_got.size, CHUNK):
        a, b = flat_got[start : start + CHUNK], flat_want[start : start + CHUNK]
        with np.errstate(all="ignore"):  # np.isclose converts as np.allclose does
            bad = ~np.isclose(a, b, rtol=rtol, atol=atol)
        count = int(np.count_nonzero(bad))
        if count and first is None:
            first = start + int(np.argmax(bad))
        differ += count
    if first is None:
        return
    where = np.unravel_index(first, values.shape)
    index = "[" + ", ".join(str(int(i)) for i in where) + "]"
    at = f" at {index}" if values.shape else ""
    fail(
        f"{what} differs from the expected values{at}: got {float(flat_got[first]):.6g}, "
        f"expected {float(flat_want[first]):.6g}; {differ:,} of {values.size:,} elements "
        f"differ (tolerance atol={atol:g}, rtol={rtol:g}){then}"
    )


def _numeric(value: Any) -> np.ndarray | None:
    """``value`` as an ndarray of numbers (kinds :data:`NUMERIC`), or None if it is not."""
    if isinstance(value, np.ndarray):
        array_ = value
    elif isinstance(value, list | tuple):
        array_ = _numbers(value)
    elif isinstance(value, bool | int | float | np.generic):
        try:
            array_ = np.asarray(value)
        except Exception:  # noqa: BLE001 - data conversion: anything wrong is "not numbers"
            return None
    else:
        return None
    if array_ is None or array_.dtype.kind not in NUMERIC:
        return None
    return np.asarray(array_)


def _numbers(value: list | tuple) -> np.ndarray | None:
    """A (nested) list or tuple of numbers as an array; None if it is anything else.

    numpy reads the nesting (it refuses more than its maximum dimensions); a ragged list, a
    handle, a string or an int no int64 holds gives None (a handle: a model is not data).
    """
    if any(isinstance(v, Handle) for v in _flat(value)):
        return None
    try:
        converted = np.array(value)
    except Exception:  # noqa: BLE001 - ragged, too deep, an element that cannot convert
        return None
    return converted if converted.dtype.kind in NUMERIC else None


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
