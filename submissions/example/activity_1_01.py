"""Example student work for Activity 1.01 (graded by the README's quick start)."""

import tensorflow as tf


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = (tf.constant(v, dtype=tf.float32) for v in coefficients)
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    return tf.math.abs(a * tf.square(x) + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    x = tf.Variable(start, dtype=tf.float32)
    adam = tf.keras.optimizers.Adam(learning_rate=learning_rate)

    @tf.function
    def one_step():
        with tf.GradientTape() as tape:
            value = loss_fn(x, coefficients)
        gradient = tape.gradient(value, [x])
        adam.apply_gradients(zip(gradient, [x], strict=True))

    for _ in range(iterations):
        one_step()
    print(f"x after {iterations} steps: {x.numpy():.6f}")
    return float(x.numpy())
