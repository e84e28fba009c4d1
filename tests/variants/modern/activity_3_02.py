"""Activity 3.02, modern Keras 3.

Idioms: ``keras.utils.image_dataset_from_directory`` (one-hot labels) and the documented
preprocessing for ImageNet-trained VGG16, ``keras.applications.vgg16.preprocess_input``
(RGB→BGR, ImageNet mean subtracted), mapped over training and validation alike;
``keras.applications.VGG16`` frozen under a ``keras.Sequential`` head; ``prefetch``.
"""

import keras
import tensorflow as tf
from keras.applications import vgg16

SEED = 8


def make_datasets(train_dir, val_dir, *, image_size=(100, 100), batch_size=16):
    def load(directory, shuffle):
        dataset = keras.utils.image_dataset_from_directory(
            directory,
            label_mode="categorical",
            image_size=image_size,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=SEED,
        )
        return dataset.map(
            lambda images, labels: (vgg16.preprocess_input(images), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)

    return load(train_dir, shuffle=True), load(val_dir, shuffle=False)


def build_model(input_shape=(100, 100, 3), num_classes=120, *, weights="imagenet"):
    base = vgg16.VGG16(weights=weights, include_top=False, input_shape=input_shape)
    base.trainable = False
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            base,
            keras.layers.Flatten(),
            keras.layers.Dense(1000, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    if steps_per_epoch is not None:
        train = train.repeat()
    if validation_steps is not None:
        val = val.repeat()
    return model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        verbose=0,
    ).history
