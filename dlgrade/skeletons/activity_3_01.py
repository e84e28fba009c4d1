"""Activity 3.01 — Fashion-MNIST classification with a CNN and data augmentation.

Load Fashion-MNIST, build augmented training and plain validation pipelines, then build and
train a small convolutional network. The grader calls `load_data`, `make_datasets`,
`build_model` and `train`. Load the images with `keras.datasets.fashion_mnist.load_data()`:
`dlgrade.data` points Keras' dataset cache at the right files, so never hard-code a path.
"""


def load_data():
    """Load Fashion-MNIST and return ``((x_train, y_train), (x_test, y_test))``.

    Call ``keras.datasets.fashion_mnist.load_data()`` and add a channel axis, so the images
    are ``(60000, 28, 28, 1)`` and ``(10000, 28, 28, 1)``: ``x[..., None]``, or the book's
    ``reshape(60000, 28, 28, 1)`` (where the real data is missing, the grader serves a synthetic
    twin of the same size). Keep the pixel values as loaded (0-255; ``make_datasets``
    rescales them) and the labels as integer class ids 0-9 of shape ``(60000,)`` and
    ``(10000,)``.
    """
    raise NotImplementedError("activity_3_01.load_data is not implemented yet")


def make_datasets(x_train, y_train, x_test, y_test, *, batch_size=16):
    """Return ``(train, val)``: iterables of ``(images, labels)`` batches of ``batch_size``.

    Images must come out as floats in [0, 1] (rescale by 1/255) with shape
    ``(batch, 28, 28, 1)``; labels stay integer class ids. Augment the training batches only,
    with the book's settings: rotation up to 40 degrees, width and height shift 0.1, shear 0.2,
    zoom 0.2, horizontal flip, fill mode "nearest"; use seed 8. The validation batches are
    only rescaled, never augmented (the book builds them from the augmenting generator by
    mistake): the grader checks that each validation image is a test image divided by 255, in
    any order, with its own label.

    Either way is right: the book's ``ImageDataGenerator(...).flow(x, y, batch_size=...)``
    (Keras 3 keeps it as a legacy class: import it from
    ``tensorflow.keras.preprocessing.image``), or a ``tf.data.Dataset`` with ``Rescaling`` and
    augmentation layers such as ``RandomRotation``, ``RandomTranslation``, ``RandomShear``,
    ``RandomZoom`` and ``RandomFlip("horizontal")`` (``fill_mode="nearest"``).
    """
    raise NotImplementedError("activity_3_01.make_datasets is not implemented yet")


def build_model(input_shape=(28, 28, 1), num_classes=10):
    """Build and return the compiled CNN.

    Layers: Conv2D(64, 3, relu) -> MaxPooling2D -> Conv2D(128, 3, relu) -> MaxPooling2D ->
    Flatten -> Dense(128, relu) -> Dense(num_classes, softmax), on ``input_shape`` (start with
    ``keras.Input(shape=input_shape)``, or pass ``input_shape=`` to the first layer as the
    book does). With the defaults that is 485,514 parameters. Compile with
    ``Adam(learning_rate=0.001)``, ``"sparse_categorical_crossentropy"`` and
    ``metrics=["accuracy"]``.
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_3_01.build_model is not implemented yet")


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    """Fit ``model`` on ``train``, validate on ``val``, and return ``history.history``.

    Train the model you are given on the batches you are given: the grader passes its own copy
    of the book's model and its own batches (a ``tf.data.Dataset``). Call ``model.fit``
    (``fit_generator`` is gone in Keras 3), passing ``epochs``, ``steps_per_epoch`` and
    ``validation_steps`` through. Return the plain dict with ``"loss"``, ``"accuracy"``,
    ``"val_loss"`` and ``"val_accuracy"``, one value per epoch. After the book's 5 epochs:
    train accuracy about 0.8271, validation about 0.8334.
    """
    raise NotImplementedError("activity_3_01.train is not implemented yet")
