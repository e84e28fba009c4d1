"""Broken on purpose: loss_fn never returns."""


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    while True:
        x = x + 1


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    # Fakes Adam's first steps (each moves x by about the learning rate) without TensorFlow.
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
