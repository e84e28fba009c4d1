"""Activity 3.01, written with the book's idioms.

Idioms: ``fashion_mnist.load_data()`` from ``tensorflow.keras.datasets`` with the channel axis
added by a hard-coded ``reshape(60000, ...)`` / ``reshape(10000, ...)`` as in the book, the
legacy ``ImageDataGenerator`` (from ``tensorflow.keras.preprocessing.image``) feeding
batches through ``.flow(...)``, a ``tf.keras.Sequential`` built from a list whose first layer
takes ``input_shape=``, and ``tf.keras.optimizers.Adam(0.001)``. Keras 3 forced ``fit`` in
place of ``fit_generator``. One book slip is corrected: the validation batches come from a
rescale-only generator, not from the augmenting one. Seed 8 goes to ``flow`` and, following
the book, to numpy and TensorFlow just before the network is built.
"""

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers
from tensorflow.keras.datasets import fashion_mnist
from tensorflow.keras.preprocessing.image import ImageDataGenerator

img_height = 28
img_width = 28


def load_data():
    (train_imgs, train_ids), (test_imgs, test_ids) = fashion_mnist.load_data()
    train_imgs = train_imgs.reshape(60000, img_height, img_width, 1)
    test_imgs = test_imgs.reshape(10000, img_height, img_width, 1)
    return (train_imgs, train_ids), (test_imgs, test_ids)


def make_datasets(x_train, y_train, x_test, y_test, *, batch_size=16):
    augmenter = ImageDataGenerator(
        rescale=1 / 255.0,
        rotation_range=40,
        width_shift_range=0.1,
        height_shift_range=0.1,
        shear_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
    )
    rescaler = ImageDataGenerator(rescale=1 / 255.0)
    train_batches = augmenter.flow(x_train, y_train, seed=8, batch_size=batch_size)
    val_batches = rescaler.flow(x_test, y_test, seed=8, batch_size=batch_size)
    return train_batches, val_batches


def build_model(input_shape=(28, 28, 1), num_classes=10):
    np.random.seed(8)
    tf.random.set_seed(8)
    cnn = tf.keras.Sequential(
        [
            layers.Conv2D(filters=64, kernel_size=3, activation="relu", input_shape=input_shape),
            layers.MaxPooling2D(),
            layers.Conv2D(filters=128, kernel_size=3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(units=128, activation="relu"),
            layers.Dense(units=num_classes, activation="softmax"),
        ]
    )
    adam = tf.keras.optimizers.Adam(0.001)
    cnn.compile(optimizer=adam, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return cnn


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    # Keras 3 dropped fit_generator; fit accepts the generators as they are
    run = model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        verbose=0,
    )
    return run.history
