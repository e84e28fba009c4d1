"""Broken on purpose: loss_fn prints 50 MB before answering."""

import sys


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    line = "x" * 1023 + "\n"
    for _ in range(50 * 1024):
        sys.stdout.write(line)
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    # Fakes Adam's first steps (each moves x by about the learning rate) without TensorFlow.
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
