"""Activity 1.01, written with the book's idioms.

Idioms: a ``tf.Variable`` for the unknown, ``tf.optimizers.Adam`` (the book's spelling),
Python's built-in ``abs`` applied to a tensor expression, a zero-argument lambda as the loss,
and a plain eager ``for`` loop with no ``tf.function``. Keras 3 forced one change: its
optimizers lost ``minimize``, so every step records the loss on a ``GradientTape`` and hands
the gradient to ``apply_gradients``.
"""

import tensorflow as tf


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    # a float turns into a float32 tensor; a tf.Variable passes through and stays watched
    x = tf.cast(x, tf.float32)
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    guess = tf.Variable(float(start))
    objective = lambda: loss_fn(guess, coefficients)  # noqa: E731 - lambda loss, as in the book
    adam = tf.optimizers.Adam(learning_rate)
    for _step in range(iterations):
        # no optimizer.minimize(objective, guess) in Keras 3: tape, then apply
        with tf.GradientTape() as tape:
            current = objective()
        slope = tape.gradient(current, [guess])
        adam.apply_gradients(zip(slope, [guess], strict=True))
    return float(guess.numpy())
