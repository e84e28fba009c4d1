"""The rubric helpers of dlgrade.expect: one shape, ``(what, got, ...)``, and on any value
the worker can send (or a forger can make up) either the checked value or the rubric's
``CheckFailed`` — never a TypeError, OverflowError or RecursionError inside the rubric,
which would be reported as our bug (``rubric_error``)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlgrade import expect
from dlgrade.errors import RubricError
from dlgrade.rubric import CheckFailed
from dlgrade.sandbox.protocol import Handle

#: examples per property test: small for CI, DLGRADE_FUZZ_EXAMPLES for a long run
FUZZ_EXAMPLES = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 150
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

MODEL = Handle(7, "Sequential")


def failure(call, *args, **kwargs) -> str:
    """The message of the CheckFailed that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(CheckFailed) as excinfo:
        call(*args, **kwargs)
    return str(excinfo.value)


class Explosive:
    """An object every conversion of which raises (no worker sends one; a rubric might)."""

    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array here")

    def __len__(self):
        raise RuntimeError("no length")

    def __float__(self):
        raise RuntimeError("no float")

    def __repr__(self):
        raise RuntimeError("no repr")


def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


# -- one shape: what first, then the value, then what it is compared with ------------------


def test_scalar_takes_what_then_the_value():
    assert expect.scalar("solve()", np.float32(2.5)) == 2.5
    assert expect.scalar("solve()", np.array([[3]])) == 3.0
    assert failure(expect.scalar, "solve()", "5") == (
        "solve() returned a str ('5'); it must return a number"
    )
    assert failure(expect.scalar, "solve()", float("nan")) == (
        "solve() returned nan; it must return a finite number"
    )


def test_scalar_of_an_int_no_float_holds_fails_the_check():
    assert "it must return a finite number" in failure(expect.scalar, "solve()", 10**400)


def test_array_takes_what_then_the_value_then_shape_and_kinds():
    got = expect.array("f()", [[1, 2], [3, 4]], shape=(2, None), kinds="i")
    assert got.tolist() == [[1, 2], [3, 4]]
    assert failure(expect.array, "f()", np.zeros((2, 3)), shape=(None, 60)) == (
        "f() has shape (2, 3); expected (n, 60)"
    )
    assert failure(expect.array, "f()", np.zeros(2), kinds="iu") == (
        "f() has dtype float64; expected int or unsigned int"
    )
    assert failure(expect.array, "f()", None) == "f() is a NoneType (None); expected a numpy array"


def test_handle_takes_what_then_the_value():
    assert expect.handle("build_model()", MODEL) is MODEL
    assert failure(expect.handle, "build_model()", [1]) == (
        "build_model() returned a list ([1]); expected a Keras model object"
    )


def test_sequence_takes_what_then_the_value_then_the_length():
    assert expect.sequence("load_data()", [1, 2], 2) == (1, 2)
    assert failure(expect.sequence, "load_data()", (1, 2, 3), 2) == (
        "load_data() returned a tuple ((1, 2, 3)); expected a tuple of 2 values"
    )


def test_mapping_takes_what_then_the_value():
    assert expect.mapping("train(...)", {"loss": [1.0]}) == {"loss": [1.0]}
    assert failure(expect.mapping, "train(...)", MODEL) == (
        "train(...) returned a Sequential; expected a dict"
    )


def test_close_takes_what_then_got_then_want_then_the_tolerance():
    expect.close("solve()", 5.004, 5.0, 0.01)
    assert failure(expect.close, "solve()", 5.2, 5.0, 0.01) == (
        "solve() returned 5.2; expected 5 (± 0.01)"
    )
    assert failure(expect.close, "solve()", "5", 5.0, 0.01) == (
        "solve() returned a str ('5'); it must return a number"
    )
    assert "expected 5" in failure(expect.close, "solve()", math.nan, 5.0, 0.01)


HELPERS = (
    expect.scalar,
    expect.array,
    expect.handle,
    expect.sequence,
    expect.mapping,
    expect.close,
    expect.allclose,
)


@pytest.mark.parametrize("helper", HELPERS, ids=[h.__name__ for h in HELPERS])
def test_every_helper_shows_an_example_of_its_shape(helper):
    """``Examples:`` with ``what`` first: a string literal right after the parenthesis."""
    example = helper.__doc__.split("Examples: ", 1)[1]
    assert f'expect.{helper.__name__}("' in example


# -- allclose -------------------------------------------------------------------------------


def test_allclose_passes_within_the_tolerance():
    expect.allclose("f()", [[1.0, 2.0], [3.0, 4.0]], np.array([[1, 2], [3, 4 + 1e-9]]))
    expect.allclose("f()", np.float32(0.5), 0.5)
    expect.allclose("f()", [math.inf, -math.inf], [math.inf, -math.inf])
    expect.allclose("f()", np.array([1.0]), np.array([1.00001]), atol=1e-4)


def test_allclose_names_the_first_differing_index_both_values_and_the_count():
    got = np.zeros((4, 3))
    want = got.copy()
    want[3, 1], want[3, 2] = 0.25, 1e-9
    want[2, 0] = -7.5
    assert failure(expect.allclose, "load_series(path)", got, want) == (
        "load_series(path) differs from the expected values at [2, 0]: got 0, expected -7.5; "
        "2 of 12 elements differ (tolerance atol=1e-08, rtol=1e-05)"
    )


def test_allclose_keeps_the_tolerance_it_is_given():
    message = failure(expect.allclose, "f()", [1.0], [1.001], atol=1e-5, rtol=0)
    assert message.endswith("(tolerance atol=1e-05, rtol=0)")


def test_allclose_appends_the_activitys_advice():
    message = failure(expect.allclose, "scale()[1]", [0.0], [1.0], fix="fit on train only")
    assert message.endswith("; fit on train only")
    assert failure(expect.allclose, "f()", [1.0, 2.0], [1.0], fix="advice").endswith("; advice")


def test_nan_is_never_close_not_even_to_nan():
    assert "got nan, expected nan; 1 of 1 elements" in failure(
        expect.allclose, "f()", math.nan, math.nan
    )


def test_allclose_does_not_broadcast_a_shape_mismatch_fails_naming_both():
    assert failure(expect.allclose, "X", np.ones((60, 1)), np.ones(60)) == (
        "X has shape (60, 1); expected shape (60,)"
    )
    assert failure(expect.allclose, "X", [1.0], np.ones(3)) == (
        "X has shape (1,); expected shape (3,)"
    )


@pytest.mark.parametrize(
    ("got", "shown"),
    [
        ("abc", "a str ('abc')"),
        (None, "a NoneType (None)"),
        ({"a": 1}, "a dict ({'a': 1})"),
        ([[1.0], [2.0, 3.0]], "a list ([[1.0], [2.0, 3.0]])"),
        ([1.0, "2"], "a list ([1.0, '2'])"),
        (np.array([1, 2], dtype=object), "an array of shape (2,) and dtype object"),
        (np.array([1j]), "an array of shape (1,) and dtype complex128"),
        (MODEL, "a Sequential"),
        ([MODEL], "a list ([<handle #7 to a Sequential>])"),
        (10**400, "an int (1000"),
        ([Explosive()], "a list ([<Explosive instance at"),
    ],
    ids=[
        "str", "none", "dict", "ragged", "mixed", "object", "complex", "handle", "handles",
        "huge-int", "explosive",
    ],
)
def test_allclose_of_what_is_not_numbers_fails_describing_it(got, shown):
    message = failure(expect.allclose, "f()", got, np.zeros(2))
    assert message.startswith(f"f() is {shown}")
    assert "expected numbers (an array of shape (2,))" in message


def test_allclose_of_a_list_100000_deep_fails_the_check():
    assert "is a list ([[[[...]]]])" in failure(expect.allclose, "f()", deep(100_000), [1.0])


def test_allclose_counts_across_chunks(monkeypatch):
    """A large array is compared a chunk at a time; the index and count span all chunks."""
    monkeypatch.setattr(expect, "CHUNK", 7)
    got = np.zeros((5, 6))
    want = got.copy()
    want[2, 3] = want[4, 5] = 1.0  # flat 15 (third chunk) and 29 (last)
    assert "at [2, 3]: got 0, expected 1; 2 of 30 elements" in failure(
        expect.allclose, "f()", got, want
    )


def test_an_expected_value_that_is_not_numbers_is_the_rubrics_bug():
    with pytest.raises(RubricError, match=r"expect.allclose\('f\(\)'\).*pass the grader's array"):
        expect.allclose("f()", [1.0], "1.0")


# -- properties ----------------------------------------------------------------------------

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.complex_numbers()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.just(MODEL)
    | st.builds(Explosive)
    | st.sampled_from([1_000, 100_000]).map(deep)
    | hnp.arrays(
        hnp.scalar_dtypes() | st.just(np.dtype(object)),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    )
    | st.lists(st.integers(), max_size=4).map(lambda v: np.array(v + [None], dtype=object))
)
HOSTILE = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)
WANTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
)


def fails_or_returns(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except CheckFailed:
        pass


@FUZZ
@given(got=HOSTILE, want=WANTS)
def test_every_helper_on_any_value_returns_or_fails_the_check(got, want):
    """Anything else raised here would be a rubric_error: our bug, charged to no one."""
    fails_or_returns(expect.scalar, "f()", got)
    fails_or_returns(expect.array, "f()", got)
    fails_or_returns(expect.array, "f()", got, shape=(None, 2), kinds="f")
    fails_or_returns(expect.handle, "f()", got)
    fails_or_returns(expect.sequence, "f()", got, 2)
    fails_or_returns(expect.mapping, "f()", got)
    fails_or_returns(expect.close, "f()", got, 1.0, 0.1)
    fails_or_returns(expect.allclose, "f()", got, want)
    fails_or_returns(expect.allclose, "f()", got, want, atol=0.0, rtol=0.0, fix="advice")
    assert isinstance(expect.describe(got), str)


NUMERIC_DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint16, bool])


@st.composite
def same_shape_pairs(draw):
    """Two numeric arrays of one shape, often close (a small nudge), sometimes far apart."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
    got = draw(hnp.arrays(draw(NUMERIC_DTYPES), shape))
    kind = draw(st.sampled_from(["nudged", "independent"]))
    if kind == "independent":
        return got, draw(hnp.arrays(np.float64, shape))
    with np.errstate(all="ignore"):
        scale = draw(st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 1e-5, 1e-3]))
        noise = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)))
        want = got.astype(np.float64) * (1 + scale * noise) + scale * noise
    return got, want


@FUZZ
@given(
    pair=same_shape_pairs(),
    as_list=st.booleans(),
    atol=st.sampled_from([1e-8, 0.0, 1e-5, 1e-4]),
    rtol=st.sampled_from([1e-5, 0.0, 1e-3]),
)
def test_allclose_passes_exactly_when_np_allclose_does(pair, as_list, atol, rtol):
    got, want = pair
    with np.errstate(all="ignore"):
        agrees = bool(np.allclose(got, want, atol=atol, rtol=rtol))
    given_got = got.tolist() if as_list else got
    if agrees:
        expect.allclose("f()", given_got, want, atol=atol, rtol=rtol)
    else:
        message = failure(expect.allclose, "f()", given_got, want, atol=atol, rtol=rtol)
        assert message.startswith("f() differs from the expected values")
