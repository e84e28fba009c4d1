"""Activity 2.01, written the way someone coming from PyTorch writes Keras 3.

Idioms: the labels from a ``class_to_idx`` dict over the sorted class names (torchvision's
habit), the MLP as a subclassed ``keras.Model`` — ``Dense`` and ``ReLU`` layers
(``nn.Linear`` and ``nn.ReLU()``) made in ``__init__`` in the order ``call()`` uses them,
like ``nn.Module``, the class registered for saving and given a ``get_config`` — built by
one dummy forward pass on a zero sample (PyTorch's lazy-module habit, so Keras records a
batch of 1 as its build shape), and ``train`` as a hand-written loop: a shuffled ``tf.data``
loader of batches of 32, a ``tf.GradientTape`` step compiled with ``tf.function``, the loss
written out as a criterion and the optimizer the model was compiled with (so it trains
whatever compiled model it is given), and a history dict of per-epoch means built by hand in
the shape of Keras's.
"""

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

BATCH_SIZE = 32


def load_data(path):
    frame = pd.read_csv(path)
    class_to_idx = {name: index for index, name in enumerate(sorted(frame["Class"].unique()))}
    features = frame.drop(columns=["Class"]).to_numpy(dtype=np.float32)
    labels = frame["Class"].map(class_to_idx).to_numpy(dtype=np.int64).reshape(-1, 1)
    return features, labels


@keras.saving.register_keras_serializable(package="activity_2_01")
class SonarMLP(keras.Model):
    def __init__(self, input_dim=60, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.fc1 = layers.Dense(300)
        self.relu1 = layers.ReLU()
        self.fc2 = layers.Dense(200)
        self.relu2 = layers.ReLU()
        self.fc3 = layers.Dense(100)
        self.relu3 = layers.ReLU()
        self.head = layers.Dense(1, activation="sigmoid")

    def call(self, x, training=False):
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        x = self.relu3(self.fc3(x))
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim}


def build_model(input_dim=60):
    model = SonarMLP(input_dim=input_dim)
    model(np.zeros((1, input_dim), dtype=np.float32))  # materialise the weights
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def train(model, X, y, *, epochs=30):
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
    loader = (
        tf.data.Dataset.from_tensor_slices((X, y))
        .shuffle(len(X), reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
    )
    criterion = keras.losses.BinaryCrossentropy()
    optimizer = model.optimizer

    @tf.function(reduce_retracing=True)
    def training_step(inputs, targets):
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)
            loss = criterion(targets, probs)
        params = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        correct = ops.sum(ops.cast(ops.equal(ops.cast(probs > 0.5, "float32"), targets), "float32"))
        return loss, correct

    history = {"loss": [], "accuracy": []}
    for _epoch in range(epochs):
        running_loss, running_correct, seen = 0.0, 0.0, 0
        for inputs, targets in loader:
            loss, correct = training_step(inputs, targets)
            count = int(inputs.shape[0])
            running_loss += float(loss) * count
            running_correct += float(correct)
            seen += count
        history["loss"].append(running_loss / seen)
        history["accuracy"].append(running_correct / seen)
    return history
