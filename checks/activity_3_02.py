"""Rubric for Activity 3.02 — Fruits-360 transfer learning on a frozen VGG16 base.

Structure is checked with ``weights=None`` (no 58 MB download): a frozen base of 14,714,688
parameters, a trainable head of 4,729,120, 19,443,808 in all for 120 classes. Data for the
quick and standard tiers is a synthetic Fruits-360-like tree (``dlgrade.synth.fruits``,
5 classes of 100×100 JPEGs, 40 training / 10 test images each).

Calibration (standard; reference, ``weights=None`` so the base is random but frozen, 6
steps of batch 16): the cross-entropy on the 200 training images falls every time, by
a ratio after/before of 0.9960–0.9986 over seeds 0–5 (a random frozen base gives the head
weak features, so the fall is small but never absent), while every base weight stays
bit-for-bit equal → the check asks for a lower loss, an unchanged base and a changed
head. Full tier: real data with ImageNet weights, train ≥ 0.88 / test ≥ 0.85 (book
0.9106 / 0.8920). One epoch takes ~700 s on 2 CPU cores, so the full tier refuses to run
without a GPU and says so.
"""

import numpy as np
import pytest

import dlgrade
from dlgrade import data, expect, models, synth

ACTIVITY = "3.02"
PRELOAD = ("keras",)

BASE_PARAMS = 14_714_688
HEAD_PARAMS = 4_729_120
TOTAL_PARAMS = 19_443_808
CLASSES = 5
FULL_TRAIN, FULL_TEST = 0.88, 0.85


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return synth.fruits(tmp_path_factory.mktemp("fruits"), classes=CLASSES)


@pytest.fixture(scope="module")
def shared_tree(submission, tree):
    """The tree copied where the worker can read it; (training dir, test dir) as it sees them."""
    import shutil

    target = submission.session.exchange_dir / "inbox" / "fruits360_filtered"
    if not target.exists():
        shutil.copytree(tree, target)
    return str(target / "Training"), str(target / "Test")


def _datasets(submission, student, shared_tree, batch_size=16):
    result = student.make_datasets(*shared_tree, batch_size=batch_size)
    train, val = expect.sequence(result, 2, "make_datasets(train_dir, val_dir)")
    return (
        expect.handle(train, "make_datasets(...): train"),
        expect.handle(val, "make_datasets(...): val"),
    )


@dlgrade.check(
    points=3,
    feedback="make_datasets must read the class-per-folder trees (image_dataset_from_directory) "
    "at image_size, with one-hot labels (label_mode='categorical') and pixels rescaled to "
    "[0, 1], in batches of batch_size.",
)
def test_datasets_from_a_class_per_folder_tree(submission, student, shared_tree):
    """Batches hold 100×100×3 images in [0, 1] with one-hot labels as wide as the classes."""
    train, val = _datasets(submission, student, shared_tree, batch_size=8)
    for handle, what in ((train, "train"), (val, "val")):
        (item,) = submission.take(handle, 1) or [None]
        images, labels = expect.sequence(item, 2, f"a {what} batch")
        images = expect.array(images, f"{what} images", shape=(8, 100, 100, 3), kinds="f")
        labels = expect.array(labels, f"{what} labels", shape=(8, CLASSES), kinds="fiu")
        if images.min() < 0 or images.max() > 1:
            dlgrade.fail(
                f"{what} images range over [{images.min():.3g}, {images.max():.3g}]; "
                "expected [0, 1] (divide by 255)"
            )
        if not np.array_equal(labels.sum(axis=1), np.ones(8)) or set(np.unique(labels)) - {0, 1}:
            dlgrade.fail(f"{what} labels are not one-hot rows of width {CLASSES}")


@dlgrade.check(
    points=3,
    feedback="build_model must put a VGG16 base (include_top=False) with base.trainable = "
    "False under Flatten → Dense(1000, relu) → Dense(num_classes, softmax): 14,714,688 "
    "frozen + 4,729,120 trainable parameters for 120 classes.",
)
def test_frozen_base_and_trainable_head(submission, student):
    """VGG16 frozen (14,714,688), head trainable (4,729,120), 19,443,808 in all."""
    _, model, call = submission.build_model(student.build_model, weights=None)
    total, trainable, frozen = models.param_counts(model)
    if (total, trainable, frozen) != (TOTAL_PARAMS, HEAD_PARAMS, BASE_PARAMS):
        dlgrade.fail(
            f"{call} has {total:,} parameters, {trainable:,} trainable and {frozen:,} frozen; "
            f"expected {TOTAL_PARAMS:,}, {HEAD_PARAMS:,} and {BASE_PARAMS:,}"
        )
    names = [type(layer).__name__ for layer in model.layers]
    if names[-3:] != ["Flatten", "Dense", "Dense"]:
        dlgrade.fail(f"{call} ends with {names[-3:]}; expected Flatten, Dense, Dense")


@dlgrade.check(
    points=2,
    feedback="build_model(num_classes=n) must size the output layer from num_classes.",
)
def test_number_of_classes_follows_the_data(submission, student):
    """build_model(num_classes=5) gives a 5-way softmax head."""
    _, model, call = submission.build_model(student.build_model, num_classes=CLASSES, weights=None)
    if tuple(model.output_shape) != (None, CLASSES):
        dlgrade.fail(f"{call} outputs shape {model.output_shape}; expected (None, {CLASSES})")
    if model.layers[-1].get_config().get("activation") != "softmax":
        dlgrade.fail(f"{call}'s last layer must use softmax")


@dlgrade.check(
    points=1,
    feedback="compile with Adam(0.001), loss='categorical_crossentropy', metrics=['accuracy'].",
)
def test_model_compile_settings(submission, student):
    """The model is compiled with Adam(0.001) and categorical cross-entropy."""
    _, model, call = submission.build_model(student.build_model, num_classes=CLASSES, weights=None)
    settings = models.compile_settings(model)
    if not (
        settings.optimizer == "adam"
        and settings.learning_rate is not None
        and abs(settings.learning_rate - 0.001) < 1e-7
        and settings.loss == "categorical_crossentropy"
    ):
        dlgrade.fail(
            f"{call} is compiled with {settings}; expected Adam(0.001) and categorical_crossentropy"
        )


def _training_images(tree):
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        tree / "Training",
        image_size=(100, 100),
        label_mode="categorical",
        shuffle=False,
        verbose=False,
    )
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(images) / 255.0, np.concatenate(labels)


@dlgrade.check(
    points=4,
    tier="standard",
    timeout=600,
    feedback="train(model, train, val, epochs=1, steps_per_epoch=6, validation_steps=1) must "
    "fit the model (repeat the datasets when steps are given) and leave the frozen VGG16 "
    "base unchanged.",
)
def test_a_few_steps_train_the_head_only(submission, student, shared_tree, tree):
    """Six steps lower the loss, change the head and leave every base weight unchanged."""
    x, y = _training_images(tree)
    train, val = _datasets(submission, student, shared_tree)
    handle, before_model, _ = submission.build_model(
        student.build_model, num_classes=CLASSES, weights=None
    )
    before = float(before_model.evaluate(x, y, verbose=0)[0])
    expect.mapping(
        student.train(handle, train, val, epochs=1, steps_per_epoch=6, validation_steps=1),
        "train(...)",
    )
    after_model = submission.load_model(handle)
    after = float(after_model.evaluate(x, y, verbose=0)[0])
    base_before = [w for layer in before_model.layers[:-3] for w in layer.get_weights()]
    base_after = [w for layer in after_model.layers[:-3] for w in layer.get_weights()]
    if not all(np.array_equal(p, q) for p, q in zip(base_before, base_after, strict=True)):
        dlgrade.fail(
            "training changed the VGG16 base's weights: freeze it (base.trainable = False)"
        )
    head_before = before_model.layers[-1].get_weights()[0]
    if np.array_equal(head_before, after_model.layers[-1].get_weights()[0]):
        dlgrade.fail("train() did not change the head's weights: it must fit the model")
    if not after < before:
        dlgrade.fail(
            f"six steps took the training loss from {before:.4f} to {after:.4f}; "
            "expected it to fall"
        )


@dlgrade.check(
    points=4,
    tier="full",
    timeout=7200,
    feedback="with ImageNet weights and the real Fruits-360 data the book reaches train "
    "0.9106 / test 0.8920; the check asks for ≥ 0.88 / ≥ 0.85.",
)
def test_book_training_reaches_accuracy(submission, student):
    """The book's 5 epochs on the real data reach train ≥ 0.88 / test ≥ 0.85 (GPU runners)."""
    models.require_gpu(
        "the full tier of 3.02 trains VGG16 on 11,398 images: about 700 s per epoch on 2 CPU "
        "cores, an hour for the book's 5"
    )
    root = data.path("fruits360")
    train, val = _datasets(submission, student, (str(root / "Training"), str(root / "Test")))
    handle = expect.handle(student.build_model(), "build_model()")
    history = expect.mapping(student.train(handle, train, val, epochs=5), "train(...)")
    model = submission.load_model(handle)
    test_accuracy = float(model.evaluate(*_all_batches(submission, val), verbose=0)[1])
    train_accuracy = max(history.get("accuracy", [0.0]))
    if train_accuracy < FULL_TRAIN or test_accuracy < FULL_TEST:
        dlgrade.fail(
            f"train {train_accuracy:.4f} / test {test_accuracy:.4f}; expected ≥ "
            f"{FULL_TRAIN} / {FULL_TEST}"
        )


def _all_batches(submission, handle):
    items = submission.take(handle, 10_000)
    return np.concatenate([i[0] for i in items]), np.concatenate([i[1] for i in items])
