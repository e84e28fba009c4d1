"""Attack: loss_fn raises KeyboardInterrupt, which in the grader would stop pytest.

Expected: it happens in the worker; student_exception, and the session goes on.
"""


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    raise KeyboardInterrupt


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
