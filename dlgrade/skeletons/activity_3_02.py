"""Activity 3.02 — Fruit classification with transfer learning from VGG16.

Build image pipelines from the Fruits-360 folders and put a new classifier head on a frozen,
ImageNet-trained VGG16 base. The grader calls `make_datasets`, `build_model` and `train`,
and passes the image folders in for you: never hard-code a path.
"""


def make_datasets(train_dir, val_dir, *, image_size=(100, 100), batch_size=16):
    """Return ``(train, val)``: iterables of ``(images, labels)`` batches from two folders.

    Each folder (the book's ``fruits360_filtered/Training`` and ``.../Test``) holds one
    subfolder per class. Read the training batches from ``train_dir`` and the validation
    batches from ``val_dir`` (the grader checks that one pass over ``val`` yields each image of
    ``val_dir`` once), resized to ``image_size``, in batches of ``batch_size``: images
    ``(batch, height, width, 3)`` as floats, labels one-hot ``(batch, num_classes)``. Either
    ``keras.utils.image_dataset_from_directory(..., label_mode="categorical")`` or the book's
    ``ImageDataGenerator(...).flow_from_directory(..., class_mode="categorical")`` works.

    Preprocess training and validation images the same way, in one of two ways: the book's
    rescale to [0, 1] (divide by 255, or ``rescale=1./255``), or
    ``keras.applications.vgg16.preprocess_input`` (the preprocessing VGG16's ImageNet weights
    were trained with). Raw 0-255 pixels are not accepted. Augmenting the training batches, as
    the book does, is allowed; the validation batches must not be augmented.
    """
    raise NotImplementedError("activity_3_02.make_datasets is not implemented yet")


def build_model(input_shape=(100, 100, 3), num_classes=120, *, weights="imagenet"):
    """Build and return the compiled transfer-learning model.

    Base: ``keras.applications.VGG16(weights=weights, include_top=False,
    input_shape=input_shape)`` with ``trainable = False``. Pass ``weights`` through: the
    grader uses ``weights=None`` to avoid the 58 MB download. Head: Flatten ->
    Dense(1000, relu) -> Dense(num_classes, softmax). With the defaults: 14,714,688
    non-trainable, 4,729,120 trainable, 19,443,808 parameters in total. Compile with
    ``Adam(learning_rate=0.001)``, ``"categorical_crossentropy"`` and
    ``metrics=["accuracy"]``.
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_3_02.build_model is not implemented yet")


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    """Fit ``model`` on ``train``, validate on ``val``, and return ``history.history``.

    Train the model you are given, leaving its VGG16 base frozen: the grader passes its own
    copy of the book's model and its own batches (a ``tf.data.Dataset``). Call ``model.fit``
    with ``epochs``, ``steps_per_epoch`` and ``validation_steps`` passed through (``None``
    means one full pass; repeat a ``tf.data`` pipeline when steps are given). The book's
    notebook computes its steps as ``total_train // batch_size`` from hard-coded image counts;
    here the caller passes them. Return the plain dict with ``"loss"``, ``"accuracy"``,
    ``"val_loss"`` and ``"val_accuracy"``. After the book's 5 epochs: train accuracy about
    0.9106, test about 0.8920 (one epoch takes about 700 s on a 2-core CPU).
    """
    raise NotImplementedError("activity_3_02.train is not implemented yet")
