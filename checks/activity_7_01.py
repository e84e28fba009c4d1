"""Rubric for Activity 7.01 — a DCGAN on Fashion-MNIST.

Structure: generator 1,727,233 parameters (1,719,873 trainable, 7,360 batch-norm
statistics) ending in tanh; discriminator 1,658,753, sigmoid, BCE + Adam(2e-4, beta_1=0.5);
GAN = Sequential(G, D), 3,385,986 parameters of which 1,719,873 trainable (D frozen inside).

The Keras 3 trap the book falls into: ``D.trainable = False`` before building the GAN also
freezes D's own ``train_on_batch``, so D never learns. The standard check exports D before
and after a short ``train_gan`` and fails if its weights did not move.

Data: the worker's Keras reads the real Fashion-MNIST when the data layer has it, otherwise
the synthetic twin (``DATASETS`` below).

Calibration (reference on the twin, ``train_gan(epochs=101, batch=16)``, seeds 0–4; table in
docs/writing-checks.md): discriminator probabilities in the trace 0.500–0.574; largest
discriminator weight change 0.013–0.022 (0 when Keras 3 froze it); per-pixel standard
deviation across 64 generated samples 0.122–0.204 → the check asks for a trace within
[0.15, 0.85], a discriminator change > 1e-4 and a sample spread > 0.05 (one image repeated
gives 0).
"""

import numpy as np
import pytest

import dlgrade
from dlgrade import expect, models

ACTIVITY = "7.01"
PRELOAD = ("keras",)
DATASETS = ("fashion_mnist",)

G_PARAMS, G_TRAINABLE = 1_727_233, 1_719_873
D_PARAMS = 1_658_753
GAN_PARAMS, GAN_TRAINABLE = 3_385_986, 1_719_873
BAND = (0.15, 0.85)
D_MOVES = 1e-4
SPREAD = 0.05
FULL_BAND = (0.35, 0.65)


@dlgrade.check(
    points=2,
    feedback="realData(batch) must return `batch` training images of shape (28, 28, 1), "
    "scaled (x − 127.5) / 127.5 into [-1, 1], drawn at random (load the data once, not per "
    "call).",
)
def test_real_data_batches(student):
    """realData gives (batch, 28, 28, 1) in [-1, 1], a different batch each call."""
    first = expect.array(student.realData(16), "realData(16)", shape=(16, 28, 28, 1), kinds="f")
    second = expect.array(student.realData(16), "realData(16)", shape=(16, 28, 28, 1), kinds="f")
    if first.min() < -1 or first.max() > 1 or first.min() > -0.9:
        dlgrade.fail(
            f"realData(16) ranges over [{first.min():.3g}, {first.max():.3g}]; expected "
            "(x − 127.5) / 127.5, i.e. [-1, 1] with black at -1"
        )
    if np.array_equal(first, second):
        dlgrade.fail("realData returned the same batch twice: draw random images each call")


@dlgrade.check(
    points=2,
    feedback="fakeInputs(batch, infeats) must return uniform noise in [-1, 1] of shape "
    "(batch, infeats).",
)
def test_fake_inputs_shape_and_bounds(student):
    """fakeInputs is uniform in [-1, 1] with shape (batch, infeats), for many sizes."""
    rng = np.random.default_rng(701)
    for _ in range(10):
        batch, infeats = int(rng.integers(1, 300)), int(rng.integers(1, 200))
        what = f"fakeInputs({batch}, {infeats})"
        noise = expect.array(
            student.fakeInputs(batch, infeats), what, shape=(batch, infeats), kinds="f"
        )
        if noise.min() < -1 or noise.max() > 1:
            dlgrade.fail(
                f"{what} ranges over [{noise.min():.3g}, {noise.max():.3g}]; expected [-1, 1]"
            )
    big = student.fakeInputs(200, 100)
    big = expect.array(big, "fakeInputs(200, 100)", shape=(200, 100), kinds="f")
    if big.min() > -0.95 or big.max() < 0.95 or abs(big.mean()) > 0.05:
        dlgrade.fail("fakeInputs does not look uniform over [-1, 1] (use np.random.uniform(-1, 1))")


def _load(submission, handle, what):
    return submission.load_model(expect.handle(handle, what))


@dlgrade.check(
    points=2,
    feedback="genModel(100) must be the book's generator: Dense 512 → BN → Dense 3136 → BN → "
    "Reshape (7, 7, 64) → Conv2DTranspose(32, 5, strides 2) → BN → Conv2DTranspose(1, 5, "
    "strides 2, tanh): 1,727,233 parameters, output (batch, 28, 28, 1).",
)
def test_generator(submission, student):
    """The generator has 1,727,233 parameters (1,719,873 trainable), ends in tanh, 28×28×1."""
    model = _load(submission, student.genModel(100), "genModel(100)")
    total, trainable, _ = models.param_counts(model)
    if (total, trainable) != (G_PARAMS, G_TRAINABLE):
        dlgrade.fail(
            f"genModel(100) has {total:,} parameters ({trainable:,} trainable); "
            f"expected {G_PARAMS:,} ({G_TRAINABLE:,})"
        )
    if tuple(model.output_shape) != (None, 28, 28, 1):
        dlgrade.fail(f"genModel(100) outputs {model.output_shape}; expected (None, 28, 28, 1)")
    if model.layers[-1].get_config().get("activation") != "tanh":
        dlgrade.fail("the generator's last layer must use tanh (images in [-1, 1])")


@dlgrade.check(
    points=2,
    feedback="discModel() must be the book's discriminator (1,658,753 parameters, sigmoid "
    "output), compiled with binary cross-entropy and Adam(learning_rate=0.0002, beta_1=0.5).",
)
def test_discriminator(submission, student):
    """The discriminator has 1,658,753 parameters, sigmoid, BCE + Adam(2e-4, beta_1=0.5)."""
    model = _load(submission, student.discModel(), "discModel()")
    total, _, _ = models.param_counts(model)
    if total != D_PARAMS or model.layers[-1].get_config().get("activation") != "sigmoid":
        dlgrade.fail(
            f"discModel() has {total:,} parameters; expected {D_PARAMS:,} ending in sigmoid"
        )
    config = model.get_compile_config() or {}
    optimizer = (config.get("optimizer") or {}).get("config", {})
    settings = models.compile_settings(model)
    if not (
        settings.loss == "binary_crossentropy"
        and settings.optimizer == "adam"
        and abs(float(optimizer.get("learning_rate", 0)) - 0.0002) < 1e-8
        and abs(float(optimizer.get("beta_1", 0)) - 0.5) < 1e-8
    ):
        dlgrade.fail(
            f"discModel() is compiled with {settings.loss!r} and {optimizer}; expected "
            "binary_crossentropy and Adam(learning_rate=0.0002, beta_1=0.5)"
        )


@dlgrade.check(
    points=2,
    feedback="ganModel(G, D) must stack G then D in a Sequential with D frozen inside "
    "(D.trainable = False before compiling the GAN): 3,385,986 parameters, 1,719,873 "
    "trainable.",
)
def test_gan_stacks_generator_then_frozen_discriminator(submission, student):
    """The GAN is G then D: 3,385,986 parameters, only the generator's 1,719,873 trainable."""
    generator = expect.handle(student.genModel(100), "genModel(100)")
    discriminator = expect.handle(student.discModel(), "discModel()")
    model = _load(submission, student.ganModel(generator, discriminator), "ganModel(G, D)")
    total, trainable, _ = models.param_counts(model)
    if (total, trainable) != (GAN_PARAMS, GAN_TRAINABLE):
        dlgrade.fail(
            f"ganModel(G, D) has {total:,} parameters ({trainable:,} trainable); "
            f"expected {GAN_PARAMS:,} ({GAN_TRAINABLE:,}): D must be frozen inside"
        )
    if tuple(model.input_shape) != (None, 100) or tuple(model.output_shape) != (None, 1):
        dlgrade.fail(
            f"ganModel(G, D) maps {model.input_shape} → {model.output_shape}; "
            "expected noise (None, 100) → probability (None, 1)"
        )


@pytest.fixture(scope="module")
def short_run(submission):
    """Build G, D and the GAN, run train_gan briefly; weights before and after, and the trace.

    Module-scoped: the two standard checks read one run (its setup counts in the first).
    """
    student = submission.activity(ACTIVITY)
    generator = expect.handle(student.genModel(100), "genModel(100)")
    discriminator = expect.handle(student.discModel(), "discModel()")
    gan = expect.handle(student.ganModel(generator, discriminator), "ganModel(G, D)")
    before = {
        "G": submission.load_model(generator).get_weights(),
        "D": submission.load_model(discriminator).get_weights(),
    }
    trace = student.train_gan(generator, discriminator, gan, epochs=101, batch=16, infeats=100)
    after = {
        "G": submission.load_model(generator).get_weights(),
        "D": submission.load_model(discriminator).get_weights(),
    }
    samples = student.fakedataGenerator(generator, 64, 100)
    return before, after, trace, samples


def _moved(before, after) -> float:
    return max(float(np.abs(p - q).max()) for p, q in zip(before, after, strict=True))


@dlgrade.check(
    points=4,
    tier="standard",
    timeout=900,
    feedback="train_gan must, every epoch, train D on real + fake images (D trainable) and "
    "then the GAN on noise labelled real (D frozen); in Keras 3, set D.trainable = True for "
    "D's step and False for the GAN's, or D never learns. Return the mean D probability "
    "every 50 epochs.",
)
def test_short_training_moves_both_and_stays_balanced(short_run):
    """101 epochs change G and D, keep D's probability in [0.15, 0.85], trace every 50."""
    before, after, trace, _ = short_run
    if not isinstance(trace, list) or len(trace) != 3:
        dlgrade.fail(
            f"train_gan(epochs=101) returned {expect.describe(trace)}; expected one "
            "mean probability per 50 epochs (epochs 0, 50, 100: 3 values)"
        )
    values = [expect.scalar(v, "train_gan trace value") for v in trace]
    if _moved(before["D"], after["D"]) <= D_MOVES:
        dlgrade.fail(
            "the discriminator's weights did not change: it never learned (Keras 3 "
            "freezes its train_on_batch once D.trainable is False)"
        )
    if _moved(before["G"], after["G"]) <= D_MOVES:
        dlgrade.fail("the generator's weights did not change: train the GAN on noise")
    if not all(BAND[0] <= v <= BAND[1] for v in values):
        dlgrade.fail(
            f"the discriminator's mean probability went {values}; expected it to stay "
            f"within {list(BAND)} (not collapsed to 0 or 1)"
        )


@dlgrade.check(
    points=2,
    tier="standard",
    timeout=900,
    feedback="fakedataGenerator(G, batch, infeats) must return G.predict(fakeInputs(...)): "
    "(batch, 28, 28, 1) images in [-1, 1], a different image for each noise vector.",
)
def test_generated_samples_are_diverse(short_run):
    """Generated samples are (64, 28, 28, 1) in [-1, 1] and not one image repeated."""
    *_, samples = short_run
    samples = expect.array(
        samples, "fakedataGenerator(G, 64, 100)", shape=(64, 28, 28, 1), kinds="f"
    )
    if samples.min() < -1 or samples.max() > 1:
        dlgrade.fail("generated images must lie in [-1, 1] (tanh output)")
    spread = float(np.mean(np.std(samples, axis=0)))
    if spread <= SPREAD:
        dlgrade.fail(
            f"the 64 generated images differ by {spread:.4f} per pixel on average; "
            f"expected more than {SPREAD} (one image repeated gives 0)"
        )


@dlgrade.check(
    points=4,
    tier="full",
    timeout=7200,
    feedback="the book's 5,000 iterations of batch 128 must end with the discriminator's "
    "mean probability in [0.35, 0.65].",
)
def test_book_training_ends_balanced(submission, student):
    """5,000 iterations end with the discriminator's probability in [0.35, 0.65]."""
    models.require_gpu("the full tier of 7.01 runs 5,000 GAN iterations of batch 128")
    generator = expect.handle(student.genModel(100), "genModel(100)")
    discriminator = expect.handle(student.discModel(), "discModel()")
    gan = expect.handle(student.ganModel(generator, discriminator), "ganModel(G, D)")
    trace = student.train_gan(generator, discriminator, gan)
    final = expect.scalar(trace[-1] if isinstance(trace, list) and trace else None, "trace[-1]")
    if not FULL_BAND[0] <= final <= FULL_BAND[1]:
        dlgrade.fail(
            f"the final mean probability is {final:.3f}; expected within {list(FULL_BAND)}"
        )
