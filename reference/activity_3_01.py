"""Activity 3.01 — a CNN for Fashion-MNIST, trained with data augmentation.

Keras 3 note: ``ImageDataGenerator`` and ``fit_generator`` are gone. The same augmentation
(rescale 1/255, rotation 40°, width/height shift 0.1, shear 0.2, zoom 0.2, horizontal flip,
fill "nearest") is built from Keras preprocessing layers applied in a ``tf.data`` pipeline,
and ``model.fit`` takes the datasets. Book erratum: its validation generator is built from
the *augmenting* generator; here validation images are only rescaled.
"""

import keras
import numpy as np
import tensorflow as tf

SEED = 8


def load_data():
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return (x_train[..., np.newaxis], y_train), (x_test[..., np.newaxis], y_test)


def _augmenter():
    fill = {"fill_mode": "nearest", "seed": SEED}
    return keras.Sequential(
        [
            keras.layers.RandomRotation(40 / 360, **fill),
            keras.layers.RandomTranslation(0.1, 0.1, **fill),
            keras.layers.RandomShear(x_factor=0.2, y_factor=0.2, **fill),
            keras.layers.RandomZoom(0.2, **fill),
            keras.layers.RandomFlip("horizontal", seed=SEED),
        ]
    )


def make_datasets(x_train, y_train, x_test, y_test, *, batch_size=16):
    augment = _augmenter()

    def rescale(images, labels):
        return tf.cast(images, tf.float32) / 255.0, labels

    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=SEED)
        .batch(batch_size)
        .map(rescale)
        .map(lambda images, labels: (augment(images, training=True), labels))
    )
    val = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(batch_size).map(rescale)
    return train, val


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(128, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    if steps_per_epoch is not None:
        train = train.repeat()
    if validation_steps is not None:
        val = val.repeat()
    history = model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        verbose=0,
    )
    return history.history
