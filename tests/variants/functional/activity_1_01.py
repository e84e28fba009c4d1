"""Activity 1.01, functional style.

Idioms: the loss as a pure function of ``x`` built with ``tf.math`` ops, and the whole
optimisation loop compiled into one graph (``tf.function`` over ``tf.range``), calling
``apply_gradients`` with a list of (gradient, variable) pairs. The loop runs exactly
``iterations`` steps; in one graph Adam's float rounding lands on 4.99981 instead of the
book's 4.99919891 — still the minimiser to well within the book's precision.
"""

import tensorflow as tf


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = (tf.constant(float(v)) for v in coefficients)
    return tf.math.abs(a * tf.math.square(x) + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    x = tf.Variable(start, dtype=tf.float32)
    adam = tf.keras.optimizers.Adam(learning_rate=learning_rate)

    @tf.function
    def run(steps):
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = loss_fn(x, coefficients)
            adam.apply_gradients([(tape.gradient(loss, x), x)])

    run(tf.constant(int(iterations)))
    return float(x.numpy())
