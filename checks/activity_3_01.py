"""Rubric for Activity 3.01 — the Fashion-MNIST CNN with augmentation (485,514 parameters).

Data: whatever Fashion-MNIST the worker's Keras reads — the real IDX files when the data
layer has them (60,000 / 10,000 images), otherwise the synthetic twin
(``dlgrade.synth.fashion_mnist``, 2,000 / 500 images, same format); the rubric reads the same
files on the trusted side to know the right answer.

Calibration (reference on the twin, ``make_datasets(batch_size=32)``, ``train(epochs=2)``,
accuracy of the returned weights on the rescaled test images): untrained 0.07–0.17;
trained 0.746–0.832 over seeds 0–5 → threshold 0.50, and the loss must fall. Full tier:
the book's 5 epochs on the real data reach validation accuracy ≥ 0.80 (book 0.8334);
~120 s per epoch with augmentation on 2 cores.
"""

import gzip

import numpy as np
import pytest

import dlgrade
from dlgrade import data, expect, models

ACTIVITY = "3.01"
PRELOAD = ("keras",)
DATASETS = ("fashion_mnist",)

BOOK_PARAMS = 485_514
BOOK_LAYERS = [
    ("Conv2D", 64, "relu", (3, 3)),
    ("MaxPooling2D", None, None, None),
    ("Conv2D", 128, "relu", (3, 3)),
    ("MaxPooling2D", None, None, None),
    ("Flatten", None, None, None),
    ("Dense", 128, "relu", None),
    ("Dense", 10, "softmax", None),
]
STANDARD_ACCURACY = 0.50
FULL_ACCURACY = 0.80


def read_idx(path) -> np.ndarray:
    """An IDX file (gzip): magic 2049 (labels) or 2051 (images), big-endian sizes, uint8."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


@pytest.fixture(scope="module")
def fashion(submission):
    folder = submission.keras_home / "datasets" / "fashion-mnist"
    if (folder / data.SYNTHETIC_MARK).exists():
        print("Fashion-MNIST is not here: grading on its synthetic twin (same format)")
    parts = {
        name: read_idx(folder / f"{name}.gz")
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    return (
        (parts["train-images-idx3-ubyte"][..., None], parts["train-labels-idx1-ubyte"]),
        (parts["t10k-images-idx3-ubyte"][..., None], parts["t10k-labels-idx1-ubyte"]),
    )


@dlgrade.check(
    points=2,
    feedback="load_data() must call keras.datasets.fashion_mnist.load_data() and add a "
    "channel axis: images (n, 28, 28, 1) for train and test, labels unchanged.",
)
def test_load_data_adds_the_channel_axis(student, fashion):
    """load_data gives (n, 28, 28, 1) images and their labels (60,000 / 10,000 for real)."""
    (x_train, y_train), (x_test, y_test) = fashion
    result = expect.sequence(student.load_data(), 2, "load_data()")
    train = expect.sequence(result[0], 2, "load_data()[0]")
    test = expect.sequence(result[1], 2, "load_data()[1]")
    for got, want, what in (
        (train[0], x_train, "x_train"),
        (train[1], y_train, "y_train"),
        (test[0], x_test, "x_test"),
        (test[1], y_test, "y_test"),
    ):
        got = expect.array(got, f"load_data(): {what}", shape=want.shape, kinds="uif")
        if not np.array_equal(got, want):
            dlgrade.fail(f"load_data(): {what} does not hold the Fashion-MNIST data in order")


def _batches(submission, student, fashion, batch_size, n=2):
    (x_train, y_train), (x_test, y_test) = fashion
    result = student.make_datasets(
        x_train[:256], y_train[:256], x_test[:128], y_test[:128], batch_size=batch_size
    )
    train, val = expect.sequence(result, 2, "make_datasets(...)")
    out = []
    for handle, what in ((train, "train"), (val, "val")):
        handle = expect.handle(handle, f"make_datasets(...): {what}")
        items = submission.take(handle, n)
        if len(items) != n:
            dlgrade.fail(f"the {what} dataset yielded {len(items)} batches; expected at least {n}")
        batches = []
        for item in items:
            images, labels = expect.sequence(item, 2, f"a {what} batch")
            images = expect.array(images, f"{what} images", shape=(None, 28, 28, 1), kinds="f")
            labels = expect.array(labels, f"{what} labels", kinds="iu").reshape(-1)
            batches.append((images, labels))
        out.append(batches)
    return out


@dlgrade.check(
    points=2,
    feedback="make_datasets must yield (images, labels) batches of `batch_size`, images "
    "rescaled to [0, 1] (divide by 255), labels unchanged.",
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


@dlgrade.check(
    points=3,
    feedback="augment the training images only (rotation, shifts, shear, zoom, flip); "
    "validation images must be the test images rescaled, nothing else (the book's "
    "validation generator wrongly augments them).",
)
def test_train_is_augmented_and_validation_is_not(submission, student, fashion):
    """Validation batches are exactly image/255 with its label; training batches are augmented."""
    (x_train, _), (x_test, y_test) = fashion
    train, val = _batches(submission, student, fashion, batch_size=16, n=3)
    originals = {
        (x_test[i] / 255.0).astype(np.float32).tobytes(): int(y_test[i]) for i in range(128)
    }
    for images, labels in val:
        for image, label in zip(images, labels, strict=True):
            key = image.astype(np.float32).tobytes()
            if key not in originals:
                dlgrade.fail(
                    "a validation image is not a test image divided by 255: is it augmented?"
                )
            if originals[key] != int(label):
                dlgrade.fail("a validation image came with another image's label")
    plain = {(x_train[i] / 255.0).astype(np.float32).tobytes() for i in range(256)}
    untouched = sum(image.astype(np.float32).tobytes() in plain for b in train for image in b[0])
    if untouched == sum(len(b[0]) for b in train):
        dlgrade.fail("every training image is an original image/255: no augmentation is applied")


@dlgrade.check(
    points=3,
    feedback="build_model() must be Conv2D(64, 3, relu) → MaxPooling2D → Conv2D(128, 3, relu) "
    "→ MaxPooling2D → Flatten → Dense(128, relu) → Dense(10, softmax): 485,514 parameters.",
)
def test_model_architecture(submission, student):
    """The CNN has the book's layers, kernels and activations: 485,514 parameters."""
    _, model, _ = submission.build_model(student.build_model)
    got = [
        (layer.class_name, layer.units, layer.activation, layer.kernel_size)
        for layer in models.layers(model)
        if layer.class_name != "InputLayer"
    ]
    total, _, _ = models.param_counts(model)
    if got != BOOK_LAYERS or total != BOOK_PARAMS:
        dlgrade.fail(
            f"build_model() is {got} with {total:,} parameters; the book's is {BOOK_LAYERS} "
            f"with {BOOK_PARAMS:,}"
        )


@dlgrade.check(
    points=1,
    feedback="compile with keras.optimizers.Adam(0.001), loss='sparse_categorical_crossentropy' "
    "and metrics=['accuracy'].",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with Adam(0.001), sparse categorical cross-entropy, accuracy."""
    _, model, _ = submission.build_model(student.build_model)
    settings = models.compile_settings(model)
    ok = (
        settings.optimizer == "adam"
        and settings.learning_rate is not None
        and abs(settings.learning_rate - 0.001) < 1e-7
        and settings.loss == "sparse_categorical_crossentropy"
        and {"accuracy", "acc", "sparse_categorical_accuracy"} & set(settings.metrics)
    )
    if not ok:
        dlgrade.fail(
            f"build_model() is compiled with {settings}; expected Adam(0.001), "
            "sparse_categorical_crossentropy and accuracy"
        )


def _evaluate(model, x, y) -> tuple[float, float]:
    loss, accuracy = model.evaluate(x / 255.0, y, verbose=0)[:2]
    return float(loss), float(accuracy)


@dlgrade.check(
    points=4,
    tier="standard",
    timeout=900,
    feedback="train(model, train, val, epochs=...) must fit the model you are given on the "
    "training dataset (validation_data=val) and return history.history.",
)
def test_short_training_learns(submission, student, fashion):
    """Two epochs on the data lower the loss and reach test accuracy ≥ 0.50 (chance 0.10)."""
    (x_train, y_train), (x_test, y_test) = fashion
    train, val = expect.sequence(
        student.make_datasets(
            x_train[:2000], y_train[:2000], x_test[:500], y_test[:500], batch_size=32
        ),
        2,
        "make_datasets(...)",
    )
    handle, untrained, _ = submission.build_model(student.build_model)
    before, _ = _evaluate(untrained, x_test[:500], y_test[:500])
    expect.mapping(
        student.train(handle, train, val, epochs=2), "train(model, train, val, epochs=2)"
    )
    after, accuracy = _evaluate(submission.load_model(handle), x_test[:500], y_test[:500])
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
    if (submission.keras_home / "datasets" / "fashion-mnist" / data.SYNTHETIC_MARK).exists():
        raise data.missing(data.dataset("fashion_mnist"), "the full tier needs the real data")
    (x_train, y_train), (x_test, y_test) = fashion
    train, val = expect.sequence(
        student.make_datasets(x_train, y_train, x_test, y_test), 2, "make_datasets(...)"
    )
    handle, _, _ = submission.build_model(student.build_model)
    expect.mapping(student.train(handle, train, val, epochs=5), "train(...)")
    _, accuracy = _evaluate(submission.load_model(handle), x_test, y_test)
    if accuracy < FULL_ACCURACY:
        dlgrade.fail(f"validation accuracy {accuracy:.4f}; expected ≥ {FULL_ACCURACY}")
