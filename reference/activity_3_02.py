"""Activity 3.02 — Fruits-360 with a frozen VGG16 base (transfer learning).

Keras 3 notes: ``ImageDataGenerator.flow_from_directory`` is replaced by
``keras.utils.image_dataset_from_directory`` with one-hot (``categorical``) labels and a
1/255 rescale in the pipeline; ``fit_generator`` by ``fit``. Book errata fixed: it uses an
undefined ``train_image_generator``, and computes steps per epoch from Fashion-MNIST's
``features_train`` — here the datasets know their own length.
"""

import keras

SEED = 8


def make_datasets(train_dir, val_dir, *, image_size=(100, 100), batch_size=16):
    options = {
        "image_size": tuple(image_size),
        "batch_size": batch_size,
        "label_mode": "categorical",
    }
    train = keras.utils.image_dataset_from_directory(train_dir, shuffle=True, seed=SEED, **options)
    val = keras.utils.image_dataset_from_directory(val_dir, shuffle=False, **options)

    def rescale(images, labels):
        return images / 255.0, labels

    return train.map(rescale), val.map(rescale)


def build_model(input_shape=(100, 100, 3), num_classes=120, *, weights="imagenet"):
    base = keras.applications.VGG16(weights=weights, include_top=False, input_shape=input_shape)
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
        optimizer=keras.optimizers.Adam(0.001),
        loss="categorical_crossentropy",
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
