"""Activity 3.02, functional style.

Idioms: ``keras.utils.image_dataset_from_directory`` with ``label_mode="categorical"`` for
both folders, and one explicit ``keras.layers.Rescaling(1./255)`` layer mapped over both
pipelines (the contract wants the pipelines, not the model, to rescale); the model is
functional (``keras.Input`` → ``base(x, training=False)`` → Flatten → Dense → Dense →
``keras.Model``), the pattern of Keras's transfer-learning guide.
"""

import tensorflow as tf
from tensorflow import keras

SEED = 8


def make_datasets(train_dir, val_dir, *, image_size=(100, 100), batch_size=16):
    common = dict(image_size=image_size, batch_size=batch_size, label_mode="categorical")
    train = keras.utils.image_dataset_from_directory(train_dir, seed=SEED, **common)
    val = keras.utils.image_dataset_from_directory(val_dir, shuffle=False, **common)
    rescale = keras.layers.Rescaling(1.0 / 255)

    def prepare(dataset):
        return dataset.map(lambda x, y: (rescale(x), y)).prefetch(tf.data.AUTOTUNE)

    return prepare(train), prepare(val)


def build_model(input_shape=(100, 100, 3), num_classes=120, *, weights="imagenet"):
    base = keras.applications.VGG16(include_top=False, weights=weights, input_shape=input_shape)
    base.trainable = False
    inputs = keras.Input(shape=input_shape)
    x = base(inputs, training=False)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(1000, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    if steps_per_epoch:
        train = train.repeat()
    if validation_steps:
        val = val.repeat()
    return model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val,
        validation_steps=validation_steps,
        verbose=0,
    ).history
