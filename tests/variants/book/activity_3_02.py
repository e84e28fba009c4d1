"""Activity 3.02, written with the book's idioms.

Idioms: the legacy ``ImageDataGenerator`` reading each folder with
``.flow_from_directory(...)`` (labels one-hot, the ``categorical`` default), an augmenting
generator for training and a rescale-only one for validation as in the book, ``VGG16`` from
``tensorflow.keras.applications`` frozen by setting its ``trainable`` flag to ``False``, a
``tf.keras.Sequential([...])`` whose first entry is that base (no ``Input``), and
``tf.keras.optimizers.Adam(0.001)``. Keras 3 forced ``fit`` in place of ``fit_generator``.
Two book slips are corrected: the training generator exists before it is used, and the step
counts are not derived from Fashion-MNIST sizes (``None`` lets each generator report its own
length).
"""

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers
from tensorflow.keras.applications import VGG16
from tensorflow.keras.preprocessing.image import ImageDataGenerator


def make_datasets(train_dir, val_dir, *, image_size=(100, 100), batch_size=16):
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
    train_batches = augmenter.flow_from_directory(
        train_dir, target_size=tuple(image_size), batch_size=batch_size
    )
    val_batches = rescaler.flow_from_directory(
        val_dir, target_size=tuple(image_size), batch_size=batch_size
    )
    return train_batches, val_batches


def build_model(input_shape=(100, 100, 3), num_classes=120, *, weights="imagenet"):
    np.random.seed(8)
    tf.random.set_seed(8)
    vgg_base = VGG16(include_top=False, weights=weights, input_shape=input_shape)
    vgg_base.trainable = False
    classifier = tf.keras.Sequential(
        [
            vgg_base,
            layers.Flatten(),
            layers.Dense(units=1000, activation="relu"),
            layers.Dense(units=num_classes, activation="softmax"),
        ]
    )
    adam = tf.keras.optimizers.Adam(0.001)
    classifier.compile(optimizer=adam, loss="categorical_crossentropy", metrics=["accuracy"])
    return classifier


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
