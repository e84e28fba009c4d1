"""Activity 1.01 as the book writes it: ``optimizer.minimize``, gone in Keras 3."""

import tensorflow as tf


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return tf.abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    x = tf.Variable(float(start))
    optimizer = tf.optimizers.Adam(learning_rate)
    for _ in range(iterations):
        optimizer.minimize(lambda: loss_fn(x, coefficients), [x])
    return float(x.numpy())
