"""Attack: loss_fn raises a bare BaseException, which `except Exception` does not catch.

Expected: the student's exception, reported as such (student_exception); the worker lives.
"""


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    raise BaseException("escape the grader's except Exception")


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
