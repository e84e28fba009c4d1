"""Activity 1.01 — solve x² − 10x + 25 = 0 by minimising |x² − 10x + 25| with Adam.

Keras 3 note: the book calls ``optimizer.minimize(loss, var_list=[x])``; Keras 3 optimizers
have no ``minimize`` (AttributeError), so each step is a ``tf.GradientTape`` and
``apply_gradients``. The step is compiled with ``tf.function``: the eager loop takes ~80 s
on two cores, the compiled one ~4 s, and both give x = 4.9991989 for the book's settings.
"""

import tensorflow as tf


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return tf.abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    x = tf.Variable(float(start), dtype=tf.float32)
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    coefficients = tuple(float(c) for c in coefficients)

    # One compiled step called from Python reproduces the book's 4.99919891 exactly; a
    # whole loop inside one graph (tf.range) lands on 4.99981 instead.
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(x, coefficients)
        optimizer.apply_gradients([(tape.gradient(loss, x), x)])

    for _ in range(int(iterations)):
        step()
    return float(x.numpy())
