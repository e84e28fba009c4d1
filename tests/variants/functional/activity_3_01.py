"""Activity 3.01, functional style.

Idioms: ``tf.data`` pipelines where rescaling is an explicit ``keras.layers.Rescaling(1./255)``
layer mapped over the batches (train and validation alike) and augmentation is a
``keras.Sequential`` of preprocessing layers mapped over the training batches only; the CNN
built with the functional API. ``np.expand_dims`` adds the channel axis. The datasets repeat
only when the caller passes step counts.
"""

import keras
import numpy as np
import tensorflow as tf

SEED = 8
AUTOTUNE = tf.data.AUTOTUNE


def load_data():
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return (np.expand_dims(x_train, -1), y_train), (np.expand_dims(x_test, -1), y_test)


def make_datasets(x_train, y_train, x_test, y_test, *, batch_size=16):
    rescale = keras.layers.Rescaling(1.0 / 255)
    augment = keras.Sequential(
        [
            keras.layers.RandomRotation(40 / 360, fill_mode="nearest", seed=SEED),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=SEED),
            keras.layers.RandomShear(x_factor=0.2, y_factor=0.2, fill_mode="nearest", seed=SEED),
            keras.layers.RandomZoom(0.2, fill_mode="nearest", seed=SEED),
            keras.layers.RandomFlip("horizontal", seed=SEED),
        ],
        name="augmentation",
    )
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(buffer_size=len(x_train), seed=SEED)
        .batch(batch_size)
        .map(lambda x, y: (rescale(x), y), num_parallel_calls=AUTOTUNE)
        .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
    )
    val = (
        tf.data.Dataset.from_tensor_slices((x_test, y_test))
        .batch(batch_size)
        .map(lambda x, y: (rescale(x), y), num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
    )
    return train, val


def build_model(input_shape=(28, 28, 1), num_classes=10):
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(64, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(128, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    fit = model.fit(
        train.repeat() if steps_per_epoch else train,
        validation_data=val.repeat() if validation_steps else val,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        verbose=0,
    )
    return fit.history
