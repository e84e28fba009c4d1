"""Activity 3.01, written the way someone coming from PyTorch writes Keras 3.

Idioms: augmentation as a torchvision-style ``Compose`` — a ``keras.Sequential`` of random
preprocessing layers — applied per sample in a ``tf.data`` map before batching (a
``Dataset.__getitem__`` transform), the validation loader only rescaled; the CNN as a
subclassed ``keras.Model`` — convolutions, ``ReLU`` layers (``nn.ReLU()``), pooling — with
its layers made in ``__init__`` in the order ``call()`` uses them, registered for saving
with a ``get_config``, built by a dummy forward pass; and ``train`` as a hand-written loop
over the loaders: a ``tf.GradientTape`` step compiled with ``tf.function``, the sparse
cross-entropy written out as a criterion, the model's own optimizer, a validation pass with
``training=False`` after each epoch, ``steps_per_epoch`` and ``validation_steps`` honoured
by repeating the loaders and taking that many batches, and the history dict (loss, accuracy,
val_loss, val_accuracy per epoch) built by hand.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

SEED = 8


def load_data():
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return (np.expand_dims(x_train, -1), y_train), (np.expand_dims(x_test, -1), y_test)


def _train_transform():
    return keras.Sequential(
        [
            layers.RandomRotation(40 / 360, fill_mode="nearest", seed=SEED),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=SEED),
            layers.RandomShear(x_factor=0.2, y_factor=0.2, fill_mode="nearest", seed=SEED),
            layers.RandomZoom(0.2, fill_mode="nearest", seed=SEED),
            layers.RandomFlip("horizontal", seed=SEED),
        ],
        name="train_transform",
    )


def make_datasets(x_train, y_train, x_test, y_test, *, batch_size=16):
    transform = _train_transform()

    def to_float(image, label):
        return tf.cast(image, tf.float32) / 255.0, label

    def augment(image, label):
        return transform(image, training=True), label

    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=SEED, reshuffle_each_iteration=True)
        .map(to_float)
        .map(augment)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = tf.data.Dataset.from_tensor_slices((x_test, y_test)).map(to_float).batch(batch_size)
    return train, val


@keras.saving.register_keras_serializable(package="activity_3_01")
class FashionCNN(keras.Model):
    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.conv1 = layers.Conv2D(64, 3)
        self.relu1 = layers.ReLU()
        self.pool1 = layers.MaxPooling2D()
        self.conv2 = layers.Conv2D(128, 3)
        self.relu2 = layers.ReLU()
        self.pool2 = layers.MaxPooling2D()
        self.flatten = layers.Flatten()
        self.fc = layers.Dense(128)
        self.relu3 = layers.ReLU()
        self.classifier = layers.Dense(num_classes, activation="softmax")

    def call(self, x, training=False):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu3(self.fc(x))
        return self.classifier(x)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = FashionCNN(num_classes=num_classes)
    model(np.zeros((1, *input_shape), dtype=np.float32))  # materialise the weights
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    criterion = keras.losses.SparseCategoricalCrossentropy()
    optimizer = model.optimizer

    def hits(labels, probs):
        predicted = ops.argmax(probs, axis=-1)
        labels = ops.cast(ops.reshape(labels, (-1,)), predicted.dtype)
        return ops.sum(ops.cast(ops.equal(predicted, labels), "float32"))

    @tf.function(reduce_retracing=True)
    def training_step(images, labels):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss = criterion(labels, probs)
        params = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss, hits(labels, probs)

    @tf.function(reduce_retracing=True)
    def validation_step(images, labels):
        probs = model(images, training=False)
        return criterion(labels, probs), hits(labels, probs)

    def run(loader, step):
        total_loss, total_hits, seen = 0.0, 0.0, 0
        for images, labels in loader:
            loss, correct = step(images, labels)
            count = int(images.shape[0])
            total_loss += float(loss) * count
            total_hits += float(correct)
            seen += count
        return total_loss / seen, total_hits / seen

    # one iterator for the whole run, as fit() does: later epochs continue where it stopped
    stream = iter(train.repeat()) if steps_per_epoch is not None else None
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for _epoch in range(epochs):
        if stream is None:
            epoch_batches = train
        else:
            epoch_batches = (next(stream) for _ in range(steps_per_epoch))
        loss, accuracy = run(epoch_batches, training_step)
        val_batches = val if validation_steps is None else val.repeat().take(validation_steps)
        val_loss, val_accuracy = run(val_batches, validation_step)
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
    return history
