"""Attack (or a careless loop): fill the process limit with children that keep running,
then use TensorFlow, which cannot start its threads and dies in native code.

Expected: the check fails with reason process_limit, and the feedback says how many
processes and threads the code had running (not "killed by SIGSEGV"); the next check runs
in a fresh worker.
"""

import os
import time


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    children = 0
    while True:
        try:
            pid = os.fork()
        except OSError:
            break  # the limit: the student's code does not notice, and goes on
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        children += 1
    import tensorflow as tf

    # A fresh thread pool: TensorFlow cannot create its threads now.
    with tf.device("/CPU:0"):
        numbers = tf.range(1000, dtype=tf.float32)
        values = tf.map_fn(lambda v: v * 2.0, numbers, parallel_iterations=64)
    return float(tf.reduce_sum(values)) + children


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations
