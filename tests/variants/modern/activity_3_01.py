"""Activity 3.01, modern Keras 3.

Idioms: ``tf.data`` throughout; pixels to floats with ``tf.image.convert_image_dtype``
(uint8 → float32 in [0, 1]); augmentation as a ``keras.layers.Pipeline`` of preprocessing
layers applied image by image before batching, training only; ``cache``/``prefetch``;
``keras.Sequential`` with ``keras.Input``; ``keras.optimizers.Adam(learning_rate=1e-3)``;
``repeat()`` when the caller fixes the step counts.
"""

import keras
import tensorflow as tf

SEED = 8


def load_data():
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return (x_train[..., None], y_train), (x_test[..., None], y_test)


def _to_float(image, label):
    return tf.image.convert_image_dtype(image, tf.float32), label


def make_datasets(x_train, y_train, x_test, y_test, *, batch_size=16):
    augment = keras.layers.Pipeline(
        [
            keras.layers.RandomRotation(40 / 360, fill_mode="nearest", seed=SEED),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=SEED),
            keras.layers.RandomShear(0.2, 0.2, fill_mode="nearest", seed=SEED),
            keras.layers.RandomZoom(0.2, fill_mode="nearest", seed=SEED),
            keras.layers.RandomFlip("horizontal", seed=SEED),
        ]
    )
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .map(_to_float)
        .cache()
        .shuffle(len(x_train), seed=SEED, reshuffle_each_iteration=True)
        .map(lambda image, label: (augment(image, training=True), label))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = (
        tf.data.Dataset.from_tensor_slices((x_test, y_test))
        .map(_to_float)
        .batch(batch_size)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(64, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Conv2D(128, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
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
