"""Activity 1.01, written the way someone coming from PyTorch writes Keras 3.

Idioms: the unknown as a trainable ``tf.Variable`` (PyTorch's ``requires_grad=True``
tensor), the loss in ``keras.ops`` arithmetic, and an explicit training loop — forward
under a ``tf.GradientTape`` (``loss.backward()``), ``tape.gradient``, then
``optimizer.apply_gradients`` (``optimizer.step()``) — with the step compiled by
``tf.function``, as ``torch.compile`` would, and the loop itself left in Python.
"""

import keras
import tensorflow as tf
from keras import ops


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = (float(v) for v in coefficients)
    x = ops.convert_to_tensor(x, dtype="float32")
    return ops.abs(a * x * x + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    x = tf.Variable(float(start), dtype=tf.float32, trainable=True, name="x")
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    params = [x]

    @tf.function
    def training_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(x, coefficients)
        grads = tape.gradient(loss, params)
        optimizer.apply_gradients(zip(grads, params))
        return loss

    for _step in range(int(iterations)):
        training_step()
    return float(x.numpy())
