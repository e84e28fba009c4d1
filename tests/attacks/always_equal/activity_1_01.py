"""Attack: return an object equal to everything and close to every number.

`__eq__`, the comparisons and `__sub__`/`__abs__` are rigged, so `got == want` and
`abs(got - want) <= tol` are true whatever `want` is.
Expected: it is not data, so it stays in the worker as a handle, and the check fails.
"""


class Everything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __le__ = __ge__ = __eq__
    __lt__ = __gt__ = __ne__
    __hash__ = object.__hash__

    def __sub__(self, other):
        return 0.0

    __rsub__ = __sub__

    def __abs__(self):
        return 0.0

    def __float__(self):
        return 0.0


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    return Everything()


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
