"""Rubric for Activity 3.01 — the Fashion-MNIST CNN with augmentation (485,514 parameters).

Data: whatever Fashion-MNIST the worker's Keras reads — the real IDX files when the data
layer has them, otherwise the synthetic twin (``dlgrade.data.twins``, 60,000 / 10,000 images in
the same format, so the book's ``reshape(60000, 28, 28, 1)`` runs on it). The rubric reads
the same files itself, from the data layer (never from the worker's folders), to know the
right answer.

Each check tests one function with the grader's inputs: the training check gives the
student's ``train()`` the grader's own datasets and the book's model built by the grader, so
a mistake in ``make_datasets`` or ``build_model`` costs its own check's points only.

Comparisons: ``ImageDataGenerator(rescale=1./255)`` and ``Rescaling(1./255)`` multiply by
float32(1/255), one ulp away from ``x / 255.0`` on about half of the 256 pixel values, so
images are compared within 1e-6, not bit for bit. Validation images may come shuffled (the
book's ``flow`` shuffles): each is matched to the test image it is.

Calibration (reference model, the grader's un-augmented batches of 32 on the twin's first
2,000 training images, ``train(epochs=2)``, accuracy on 500 test images): untrained
0.07–0.17; trained ≥ 0.75 (with augmentation, as calibrated first: 0.746–0.832 over seeds
0–5) → threshold 0.50, and the loss must fall. Full tier: the book's 5 epochs on the real
data reach validation accuracy ≥ 0.80 (book 0.8334); ~120 s per epoch with augmentation on
2 cores.
"""

import numpy as np
import pytest

import dlgrade
from dlgrade import data, expect, models
from dlgrade.data import twins

ACTIVITY = dlgrade.activity("3.01", "Fashion-MNIST CNN")
PRELOAD = ("keras",)
DATASETS = ("fashion_mnist",)

BOOK_MODEL = [
    models.Layer("Conv2D", filters=64, kernel_size=3, activation="relu"),
    models.Layer("MaxPooling2D", pool_size=2),
    models.Layer("Conv2D", filters=128, kernel_size=3, activation="relu"),
    models.Layer("MaxPooling2D", pool_size=2),
    models.Layer("Flatten"),
    models.Layer("Dense", units=128, activation="relu"),
    models.Layer("Dense", units=10, activation="softmax"),
]
BOOK_COMPILE = models.Compiled(
    optimizer="adam", learning_rate=0.001, loss="sparse_categorical_crossentropy", accuracy=True
)
BOOK_PARAMS = 485_514
STANDARD_ACCURACY = 0.50
FULL_ACCURACY = 0.80
#: float32(x) * float32(1/255) and x / 255.0 differ by at most one ulp of 1.0 (6e-8)
PIXEL_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def fashion():
    """((x_train, y_train), (x_test, y_test)) as Keras loads them, channel axis added."""
    (x_train, y_train), (x_test, y_test), synthetic = twins.fashion_mnist_arrays()
    if synthetic:
        print("Fashion-MNIST is not here: grading on its synthetic twin (same format and size)")
    return (x_train[..., None], y_train), (x_test[..., None], y_test)


@dlgrade.check(
    points=2,
    feedback="load_data() must call keras.datasets.fashion_mnist.load_data() and add a "
    "channel axis: images (n, 28, 28, 1) for train and test, labels unchanged.",
)
def test_load_data_adds_the_channel_axis(student, fashion):
    """load_data gives (60000, 28, 28, 1) / (10000, 28, 28, 1) images and their labels."""
    (x_train, y_train), (x_test, y_test) = fashion
    result = expect.sequence("load_data()", student.load_data(), 2)
    train = expect.sequence("load_data()[0]", result[0], 2)
    test = expect.sequence("load_data()[1]", result[1], 2)
    for got, want, what in (
        (train[0], x_train, "x_train"),
        (train[1], y_train, "y_train"),
        (test[0], x_test, "x_test"),
        (test[1], y_test, "y_test"),
    ):
        got = expect.array(f"load_data(): {what}", got, shape=want.shape, kinds="uif")
        if not np.array_equal(got, want):
            dlgrade.fail(f"load_data(): {what} does not hold the Fashion-MNIST data in order")


def _batches(submission, student, fashion, batch_size, n=2):
    (x_train, y_train), (x_test, y_test) = fashion
    result = student.make_datasets(
        x_train[:256], y_train[:256], x_test[:128], y_test[:128], batch_size=batch_size
    )
    train, val = expect.sequence("make_datasets(...)", result, 2)
    out = []
    for handle, what in ((train, "train"), (val, "val")):
        handle = expect.handle(f"make_datasets(...): {what}", handle)
        items = submission.take(handle, n)
        if len(items) != n:
            dlgrade.fail(f"the {what} dataset yielded {len(items)} batches; expected at least {n}")
        batches = []
        for item in items:
            images, labels = expect.sequence(f"a {what} batch", item, 2)
            images = expect.array(f"{what} images", images, shape=(None, 28, 28, 1), kinds="f")
            labels = expect.array(f"{what} labels", labels, kinds="iuf").reshape(-1)
            batches.append((images, labels))
        out.append(batches)
    return out


@dlgrade.check(
    points=2,
    feedback="make_datasets must yield (images, labels) batches of `batch_size`, images "
    "rescaled to [0, 1] (divide by 255, or rescale=1./255), labels unchanged.",
)
def test_batches_are_rescaled_and_sized(submission, student, fashion):
    """Batches hold batch_size images in [0, 1] with integer labels."""
    train, val = _batches(submission, student, fashion, batch_size=8)
    for what, batches in (("train", train), ("val", val)):
        for images, labels in batches:
            if len(images) != 8 or len(labels) != 8:
                dlgrade.fail(f"a {what} batch holds {len(images)} images; batch_size=8 asks for 8")
            if images.min() < 0 or images.max() > 1 or images.max() < 0.2:
                dlgrade.fail(
                    f"{what} images range over [{images.min():.3g}, {images.max():.3g}]; "
                    "expected pixels rescaled to [0, 1]"
                )
            if not set(labels.tolist()) <= set(range(10)):
                dlgrade.fail(f"{what} labels {sorted(set(labels.tolist()))} are not classes 0–9")


def _match(image, originals, scales=(1 / 255, 1.0)):
    """Index of the original that ``image`` is, rescaled (by 1/255, or not: the batches
    check grades the rescale), within PIXEL_TOLERANCE; None if it is none of them."""
    flat = originals.reshape(len(originals), -1).astype(np.float64)
    pixels = image.reshape(-1).astype(np.float64)
    for scale in scales:
        distance = np.abs(flat * scale - pixels).max(axis=1)
        best = int(np.argmin(distance))
        if distance[best] <= PIXEL_TOLERANCE * max(1.0, 255 * scale):
            return best
    return None


@dlgrade.check(
    points=3,
    feedback="augment the training images only (rotation, shifts, shear, zoom, flip); "
    "validation images must be the test images rescaled, nothing else (the book's "
    "validation generator wrongly augments them).",
)
def test_train_is_augmented_and_validation_is_not(submission, student, fashion):
    """Validation batches are test images/255 (in any order) with their labels; training
    batches are augmented."""
    (x_train, _), (x_test, y_test) = fashion
    train, val = _batches(submission, student, fashion, batch_size=16, n=3)
    for images, labels in val:
        for image, label in zip(images, labels, strict=True):
            index = _match(image, x_test[:128])
            if index is None:
                dlgrade.fail(
                    "a validation image is not a test image divided by 255: is it augmented?",
                    fix="build the validation batches from a generator or pipeline that only "
                    "rescales (ImageDataGenerator(rescale=1./255), or Rescaling) — not from "
                    "the augmenting one",
                )
            if int(y_test[index]) != int(label):
                dlgrade.fail("a validation image came with another image's label")
    originals = x_train[:256]
    untouched = sum(_match(image, originals) is not None for batch in train for image in batch[0])
    if untouched == sum(len(batch[0]) for batch in train):
        dlgrade.fail(
            "every training image is an original image/255: no augmentation is applied",
            fix="augment the training batches with the book's settings (rotation 40, shifts "
            "0.1, shear 0.2, zoom 0.2, horizontal flip, fill 'nearest')",
        )


@dlgrade.check(
    points=3,
    feedback="build_model() must be Conv2D(64, 3, relu) → MaxPooling2D → Conv2D(128, 3, relu) "
    "→ MaxPooling2D → Flatten → Dense(128, relu) → Dense(10, softmax): 485,514 parameters.",
)
def test_model_architecture(submission, student):
    """The CNN has the book's layers, kernels and activations: 485,514 parameters."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, 28, 28, 1))
    models.expect_architecture(model, BOOK_MODEL, call, params=BOOK_PARAMS)


@dlgrade.check(
    points=1,
    feedback="compile with keras.optimizers.Adam(0.001), loss='sparse_categorical_crossentropy' "
    "and metrics=['accuracy'].",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with Adam(0.001), sparse categorical cross-entropy, accuracy."""
    model, call = submission.inspect_model(student.build_model, unbuilt_shape=(None, 28, 28, 1))
    models.expect_compiled(model, BOOK_COMPILE, call)


def _evaluate(model, x, y) -> tuple[float, float]:
    loss, accuracy = model.evaluate(x / 255.0, y, verbose=0)[:2]
    return float(loss), float(accuracy)


@dlgrade.check(
    points=4,
    tier="standard",
    timeout=900,
    feedback="train(model, train, val, epochs=...) must fit the model it is given on the "
    "training dataset (validation_data=val) and return history.history.",
)
def test_short_training_learns(submission, student, fashion):
    """train() fits the grader's model on the grader's batches: 2 epochs reach ≥ 0.50."""
    (x_train, y_train), (x_test, y_test) = fashion
    train = submission.feed("image_batches", x_train[:2000], y_train[:2000], batch_size=32)
    val = submission.feed("image_batches", x_test[:500], y_test[:500], batch_size=32)
    handle = submission.grader_model(BOOK_MODEL, (28, 28, 1), BOOK_COMPILE)
    before, _ = _evaluate(submission.load_model(handle), x_test[:500], y_test[:500])
    expect.mapping(
        "train(model, train, val, epochs=2)", student.train(handle, train, val, epochs=2)
    )
    after, accuracy = _evaluate(submission.load_model(handle), x_test[:500], y_test[:500])
    dlgrade.measured("test accuracy (500 images)", accuracy, STANDARD_ACCURACY)
    if not (after < before and accuracy >= STANDARD_ACCURACY):
        dlgrade.fail(
            f"after train(epochs=2) the test loss went {before:.3f} → {after:.3f} and accuracy "
            f"is {accuracy:.3f}; expected a lower loss and accuracy ≥ {STANDARD_ACCURACY}"
        )


@dlgrade.check(
    points=4,
    tier="full",
    timeout=3600,
    feedback="the book's 5 epochs at batch size 16 must reach validation accuracy ≥ 0.80 on "
    "the real Fashion-MNIST (book 0.8334).",
)
def test_book_training_reaches_validation_accuracy(submission, student, fashion):
    """The book's 5 epochs on the real data reach validation accuracy ≥ 0.80."""
    if twins.fashion_mnist_files()[1]:
        raise data.missing(data.dataset("fashion_mnist"), "the full tier needs the real data")
    (x_train, y_train), (x_test, y_test) = fashion
    train, val = expect.sequence(
        "make_datasets(...)", student.make_datasets(x_train, y_train, x_test, y_test), 2
    )
    handle, _, call = submission.build_model(student.build_model, unbuilt_shape=(None, 28, 28, 1))
    expect.mapping("train(...)", student.train(handle, train, val, epochs=5))
    with models.student_model(call):
        _, accuracy = _evaluate(submission.load_model(handle), x_test, y_test)
    dlgrade.measured("test accuracy", accuracy, FULL_ACCURACY)
    if accuracy < FULL_ACCURACY:
        dlgrade.fail(f"validation accuracy {accuracy:.4f}; expected ≥ {FULL_ACCURACY}")
