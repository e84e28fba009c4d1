"""Rubric for Activity 3.02 — Fruits-360 transfer learning on a frozen VGG16 base.

Structure is checked with ``weights=None`` (no 58 MB download): a frozen base of 14,714,688
parameters, a trainable head of 4,729,120, 19,443,808 in all for 120 classes. Data for the
quick and standard tiers is a small synthetic Fruits-360-like tree (``dlgrade.data.synth.fruits``,
5 classes of 100×100 JPEGs, 40 training and 10 test images each: the two folders differ in
size and content, so a validation set read from the wrong folder shows).

Preprocessing: the book rescales by 1/255; ``keras.applications.vgg16.preprocess_input``
(the documented preprocessing for ImageNet weights: RGB → BGR, ImageNet means subtracted) is
as correct. Either is accepted, as long as training and validation get the same. Images are
matched to the folder's files decoded both as PIL (``ImageDataGenerator``) and as TensorFlow
(``image_dataset_from_directory``) decode them: the two decoders differ by up to 20 levels
on a pixel, so each pipeline is compared with the decoder it used.

Each check tests one function with the grader's inputs: the training check gives the
student's ``train()`` the grader's batches and the book's model built by the grader.

Calibration (standard; the book's model, random frozen base, 6 steps of batch 16): the
cross-entropy on the 200 training images falls every time, by a ratio after/before of
0.9960–0.9986 over seeds 0–5 (a random frozen base gives the head weak features, so the
fall is small but never absent), while every base weight stays bit-for-bit equal → the
check asks for a lower loss, an unchanged base and a changed head. Full tier: real data
with ImageNet weights, train ≥ 0.88 / test ≥ 0.85 (book 0.9106 / 0.8920). One epoch takes
~700 s on 2 CPU cores, so the full tier refuses to run without a GPU and says so.
"""

import numpy as np
import pytest

import dlgrade
from dlgrade import data, expect, models
from dlgrade.data import synth

ACTIVITY = dlgrade.activity("3.02", "Fruits-360 transfer learning with VGG16")
PRELOAD = ("keras",)
DATASETS = ("fruits360", "vgg16_notop")  # the full tier builds VGG16 with ImageNet weights

BASE_PARAMS = 14_714_688
HEAD_PARAMS = 4_729_120
TOTAL_PARAMS = 19_443_808
CLASSES = 5
TRAINING_PER_CLASS, TEST_PER_CLASS = 40, 10
BOOK_HEAD = [
    models.Layer("Flatten"),
    models.Layer("Dense", units=1000, activation="relu"),
    models.Layer("Dense", units=CLASSES, activation="softmax"),
]
BOOK_COMPILE = models.Compiled(
    optimizer="adam", learning_rate=0.001, loss="categorical_crossentropy", accuracy=True
)
FULL_TRAIN, FULL_TEST = 0.88, 0.85
#: ImageNet's channel means in BGR order, as vgg16.preprocess_input subtracts them
CAFFE_MEANS = np.array([103.939, 116.779, 123.68])
#: mean absolute difference, in 0–255 levels, under which a batch image is the file it
#: came from (the same decoder gives 0; the nearest other twin image is 3.7 away)
SAME_IMAGE_LEVELS = 0.5


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return synth.fruits(
        tmp_path_factory.mktemp("fruits"),
        classes=CLASSES,
        train_per_class=TRAINING_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
    )


@pytest.fixture(scope="module")
def shared_tree(submission, tree):
    """The tree copied where the worker can read it; (training dir, test dir) as it sees them."""
    import shutil

    target = submission.session.exchange_dir / "inbox" / "fruits360_filtered"
    if not target.exists():
        shutil.copytree(tree, target)
    return str(target / "Training"), str(target / "Test")


@pytest.fixture(scope="module")
def validation_images(tree):
    """The Test folder's images decoded as PIL and as TensorFlow decode them, and labels."""
    import tensorflow as tf
    from PIL import Image

    files = sorted(
        (file, index)
        for index, folder in enumerate(sorted((tree / "Test").iterdir()))
        for file in folder.iterdir()
    )
    pil = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float64) for f, _ in files])
    native = np.stack(
        [tf.io.decode_jpeg(tf.io.read_file(str(f)), channels=3).numpy() for f, _ in files]
    ).astype(np.float64)
    return pil, native, np.array([index for _, index in files])


def _datasets(submission, student, shared_tree, batch_size=16):
    result = student.make_datasets(*shared_tree, batch_size=batch_size)
    train, val = expect.sequence("make_datasets(train_dir, val_dir)", result, 2)
    return (
        expect.handle("make_datasets(...): train", train),
        expect.handle("make_datasets(...): val", val),
    )


def _preprocessing(images, *, raw_too: bool = False) -> str | None:
    """'rescale' (pixels in [0, 1]), 'caffe' (vgg16.preprocess_input) or None; with
    ``raw_too``, 'raw' for unprocessed 0–255 pixels (another check grades that)."""
    if images.min() >= 0 and images.max() <= 1:
        return "rescale"
    low = -CAFFE_MEANS.max() - 1e-3
    high = 255 - CAFFE_MEANS.min() + 1e-3
    if images.min() >= low and images.max() <= high and images.min() < 0:
        return "caffe"
    if raw_too and images.min() >= 0 and images.max() <= 255:
        return "raw"
    return None


def _raw(images, mode) -> np.ndarray:
    """Batch images back in 0–255 RGB, undoing the preprocessing ``mode``."""
    images = images.astype(np.float64)
    if mode == "rescale":
        return images * 255
    if mode == "raw":
        return images
    return (images + CAFFE_MEANS)[..., ::-1]


def _classes(labels) -> np.ndarray:
    """Class indices from one-hot rows or from integer labels (the format has its own check)."""
    return labels.argmax(axis=1) if labels.ndim == 2 else labels.reshape(-1).astype(int)


PREPROCESSING_FIX = (
    "preprocess training and validation images the same way: rescale to [0, 1] (the "
    "book's 1/255) or keras.applications.vgg16.preprocess_input (ImageNet's preprocessing)"
)


@dlgrade.check(
    points=3,
    feedback="make_datasets must read the class-per-folder trees (image_dataset_from_directory "
    "or ImageDataGenerator.flow_from_directory) at image_size, with one-hot labels "
    "(label_mode='categorical' / class_mode='categorical') in batches of batch_size, and "
    + PREPROCESSING_FIX
    + ".",
)
def test_datasets_from_a_class_per_folder_tree(submission, student, shared_tree):
    """Batches hold 100×100×3 images, preprocessed alike, with one-hot labels per class."""
    train, val = _datasets(submission, student, shared_tree, batch_size=8)
    modes = {}
    for handle, what in ((train, "train"), (val, "val")):
        (item,) = submission.take(handle, 1) or [None]
        images, labels = expect.sequence(f"a {what} batch", item, 2)
        images = expect.array(f"{what} images", images, shape=(8, 100, 100, 3), kinds="f")
        labels = expect.array(f"{what} labels", labels, shape=(8, CLASSES), kinds="fiu")
        modes[what] = _preprocessing(images)
        if modes[what] is None:
            dlgrade.fail(
                f"{what} images range over [{images.min():.3g}, {images.max():.3g}]; expected "
                "[0, 1] (divide by 255) or vgg16.preprocess_input's range",
                fix=PREPROCESSING_FIX,
            )
        if not np.array_equal(labels.sum(axis=1), np.ones(8)) or set(np.unique(labels)) - {0, 1}:
            dlgrade.fail(f"{what} labels are not one-hot rows of width {CLASSES}")
    if modes["train"] != modes["val"]:
        dlgrade.fail(
            f"training images are preprocessed as {modes['train']!r} and validation images as "
            f"{modes['val']!r}; the model must see both the same way",
            fix=PREPROCESSING_FIX,
        )


@dlgrade.check(
    points=2,
    feedback="make_datasets(train_dir, val_dir) must read the validation batches from "
    "val_dir (the Test folder) — every image of it once per pass — and the training "
    "batches from train_dir.",
)
def test_validation_batches_are_the_validation_folder(
    submission, student, shared_tree, validation_images
):
    """One pass over val yields each of the validation folder's 50 images once, labelled."""
    pil, native, labels = validation_images
    _, val = _datasets(submission, student, shared_tree, batch_size=10)
    items = submission.take(val, len(labels) // 10)
    seen = []
    for item in items:
        images, got_labels = expect.sequence("a val batch", item, 2)
        images = expect.array("val images", images, shape=(None, 100, 100, 3), kinds="fiu")
        got_labels = expect.array("val labels", got_labels, kinds="fiu")
        mode = _preprocessing(images, raw_too=True)
        if mode is None:
            dlgrade.fail("validation images are neither rescaled to [0, 1] nor preprocess_input's")
        raw, classes = _raw(images, mode), _classes(got_labels)
        if len(classes) != len(raw):
            dlgrade.fail(f"a val batch holds {len(raw)} images and {len(classes)} labels")
        for image, label in zip(raw, classes, strict=True):
            distance = np.minimum(
                np.abs(pil - image).mean(axis=(1, 2, 3)),
                np.abs(native - image).mean(axis=(1, 2, 3)),
            )
            index = int(np.argmin(distance))
            if distance[index] > SAME_IMAGE_LEVELS:
                dlgrade.fail(
                    "a validation image is not one of the validation folder's images: read "
                    "the validation batches from val_dir (and do not augment them)"
                )
            if labels[index] != label:
                dlgrade.fail("a validation image came with another class's label")
            seen.append(index)
    if sorted(seen) != list(range(len(labels))):
        dlgrade.fail(
            f"one pass over the validation batches gave {len(set(seen))} of the folder's "
            f"{len(labels)} images ({len(seen) - len(set(seen))} repeated)"
        )


@dlgrade.check(
    points=3,
    feedback="build_model must put a VGG16 base (include_top=False) with base.trainable = "
    "False under Flatten → Dense(1000, relu) → Dense(num_classes, softmax): 14,714,688 "
    "frozen + 4,729,120 trainable parameters for 120 classes.",
)
def test_frozen_base_and_trainable_head(submission, student):
    """VGG16 frozen (14,714,688), head trainable (4,729,120), 19,443,808 in all."""
    model, call = submission.inspect_model(student.build_model, weights=None)
    total, trainable, frozen = models.param_counts(model)
    if (total, trainable, frozen) != (TOTAL_PARAMS, HEAD_PARAMS, BASE_PARAMS):
        dlgrade.fail(
            f"{call} has {total:,} parameters, {trainable:,} trainable and {frozen:,} frozen; "
            f"expected {TOTAL_PARAMS:,}, {HEAD_PARAMS:,} and {BASE_PARAMS:,}"
        )
    names = [layer.class_name for layer in model.layers]
    if names[-3:] != ["Flatten", "Dense", "Dense"]:
        dlgrade.fail(f"{call} ends with {names[-3:]}; expected Flatten, Dense, Dense")


@dlgrade.check(
    points=2,
    feedback="build_model(num_classes=n) must size the output layer from num_classes.",
)
def test_number_of_classes_follows_the_data(submission, student):
    """build_model(num_classes=5) gives a 5-way softmax head."""
    model, call = submission.inspect_model(student.build_model, num_classes=CLASSES, weights=None)
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
    model, call = submission.inspect_model(student.build_model, num_classes=CLASSES, weights=None)
    models.expect_compiled(model, BOOK_COMPILE, call)


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
    "fit the model it is given (repeat the datasets when steps are given) and leave the "
    "frozen VGG16 base as it is (do not set it trainable).",
)
def test_a_few_steps_train_the_head_only(submission, student, shared_tree, tree):
    """train() on the grader's model: six steps lower the loss, change the head only."""
    x, y = _training_images(tree)
    train = submission.feed("directory_batches", shared_tree[0], batch_size=16, seed=8)
    val = submission.feed("directory_batches", shared_tree[1], batch_size=16)
    handle = submission.grader_model(
        [models.Layer("VGG16"), *BOOK_HEAD], (100, 100, 3), BOOK_COMPILE
    )
    before_model = submission.load_model(handle)
    before = float(before_model.evaluate(x, y, verbose=0)[0])
    expect.mapping(
        "train(...)",
        student.train(handle, train, val, epochs=1, steps_per_epoch=6, validation_steps=1),
    )
    after_model = submission.load_model(handle)
    after = float(after_model.evaluate(x, y, verbose=0)[0])
    base_before = [w for layer in before_model.layers[:-3] for w in layer.get_weights()]
    base_after = [w for layer in after_model.layers[:-3] for w in layer.get_weights()]
    if not all(np.array_equal(p, q) for p, q in zip(base_before, base_after, strict=True)):
        dlgrade.fail(
            "training changed the frozen VGG16 base's weights: leave base.trainable False "
            "in train()"
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
    gpu=True,
    feedback="with ImageNet weights and the real Fruits-360 data the book reaches train "
    "0.9106 / test 0.8920; the check asks for ≥ 0.88 / ≥ 0.85.",
)
def test_book_training_reaches_accuracy(submission, student):
    """The book's 5 epochs on the real data reach train ≥ 0.88 / test ≥ 0.85 (GPU runners)."""
    models.require_gpu(
        "the full tier of 3.02 trains VGG16 on 11,398 images: about 700 s per epoch on 2 CPU "
        "cores, an hour for the book's 5",
        submission,
    )
    root = data.path("fruits360")
    train, val = _datasets(submission, student, (str(root / "Training"), str(root / "Test")))
    handle, _, call = submission.build_model(student.build_model)
    history = expect.mapping("train(...)", student.train(handle, train, val, epochs=5))
    model = submission.load_model(handle)
    with models.student_model(call):
        test_accuracy = float(model.evaluate(*_all_batches(submission, val), verbose=0)[1])
    train_accuracy = max(history.get("accuracy", [0.0]))
    dlgrade.measured("test accuracy", test_accuracy, FULL_TEST)
    if train_accuracy < FULL_TRAIN or test_accuracy < FULL_TEST:
        dlgrade.fail(
            f"train {train_accuracy:.4f} / test {test_accuracy:.4f}; expected ≥ "
            f"{FULL_TRAIN} / {FULL_TEST}"
        )


def _all_batches(submission, handle, images=4_752, batch_size=16):
    """One pass over the real test set (a generator from flow_from_directory never ends)."""
    items = submission.take(handle, -(-images // batch_size))
    x = np.concatenate([i[0] for i in items])[:images]
    return x, np.concatenate([i[1] for i in items])[:images]
