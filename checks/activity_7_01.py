"""Rubric for Activity 7.01 — a DCGAN on Fashion-MNIST.

Structure: generator 1,727,233 parameters (1,719,873 trainable, 7,360 batch-norm
statistics) ending in tanh; discriminator 1,658,753, sigmoid, BCE + Adam(2e-4, beta_1=0.5);
GAN = Sequential(G, D), 3,385,986 parameters of which 1,719,873 trainable (D frozen inside).
The book writes ``Dense(512)`` then ``Activation("relu")``; that is ``Dense(512,
activation="relu")``, and the architecture checks count it so.

The Keras 3 trap the book falls into: ``D.trainable = False`` before building the GAN also
freezes D's own ``train_on_batch``, so D never learns. The standard checks run the
student's ``train_gan`` on the grader's own G, D and GAN (the book's, D frozen inside the
GAN as the book builds it): weights before and after, the trace, and samples. Whether both
networks learned and whether the trace is recorded as asked are separate checks, so a
schedule mistake does not cost the training points. ``train_gan`` calls the student's
``realData``, ``fakeInputs`` and ``fakedataGenerator``: a mistake there can also move the
trace (listed as a knock-on in the mutants).

Data: the worker's Keras reads the real Fashion-MNIST when the data layer has it, otherwise
the synthetic twin (``DATASETS`` below).

Calibration (reference on the twin, ``train_gan(epochs=101, batch=16)``, seeds 0–4; table in
docs/writing-checks.md): discriminator probabilities in the trace 0.500–0.574; largest
discriminator weight change 0.013–0.022 (0 when Keras 3 froze it); per-pixel standard
deviation across 64 generated samples 0.122–0.204 → the checks ask for a trace within
[0.15, 0.85], a discriminator change > 1e-4 and a sample spread > 0.05 (one image repeated
gives 0).
"""

import numpy as np
import pytest

import dlgrade
from dlgrade import expect, models

ACTIVITY = dlgrade.activity("7.01", "DCGAN on Fashion-MNIST")
PRELOAD = ("keras",)
DATASETS = ("fashion_mnist",)

GENERATOR = [
    models.Layer("Dense", units=512, activation="relu"),
    models.Layer("BatchNormalization"),
    models.Layer("Dense", units=3136, activation="relu"),
    models.Layer("BatchNormalization"),
    models.Layer("Reshape", target_shape=(7, 7, 64)),
    models.Layer(
        "Conv2DTranspose",
        filters=32,
        kernel_size=5,
        strides=2,
        padding="same",
        activation="relu",
    ),
    models.Layer("BatchNormalization"),
    models.Layer(
        "Conv2DTranspose", filters=1, kernel_size=5, strides=2, padding="same", activation="tanh"
    ),
]
DISCRIMINATOR = [
    models.Layer("Conv2D", filters=32, kernel_size=5, strides=2, padding="same"),
    models.Layer("LeakyReLU", negative_slope=0.2),
    models.Layer("Conv2D", filters=64, kernel_size=5, strides=2, padding="same"),
    models.Layer("LeakyReLU", negative_slope=0.2),
    models.Layer("Flatten"),
    models.Layer("Dense", units=512),
    models.Layer("LeakyReLU", negative_slope=0.2),
    models.Layer("Dense", units=1, activation="sigmoid"),
]
DISCRIMINATOR_COMPILE = models.Compiled(
    optimizer="adam",
    learning_rate=0.0002,
    loss="binary_crossentropy",
    optimizer_config=(("beta_1", 0.5),),
)
GAN_COMPILE = models.Compiled(optimizer="adam", loss="binary_crossentropy")
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
    first = expect.array("realData(16)", student.realData(16), shape=(16, 28, 28, 1), kinds="f")
    second = expect.array("realData(16)", student.realData(16), shape=(16, 28, 28, 1), kinds="f")
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
            what, student.fakeInputs(batch, infeats), shape=(batch, infeats), kinds="f"
        )
        if noise.min() < -1 or noise.max() > 1:
            dlgrade.fail(
                f"{what} ranges over [{noise.min():.3g}, {noise.max():.3g}]; expected [-1, 1]"
            )
    big = student.fakeInputs(200, 100)
    big = expect.array("fakeInputs(200, 100)", big, shape=(200, 100), kinds="f")
    if big.min() > -0.95 or big.max() < 0.95 or abs(big.mean()) > 0.05:
        dlgrade.fail("fakeInputs does not look uniform over [-1, 1] (use np.random.uniform(-1, 1))")


@dlgrade.check(
    points=2,
    feedback="genModel(100) must be the book's generator: Dense 512 → BN → Dense 3136 → BN → "
    "Reshape (7, 7, 64) → Conv2DTranspose(32, 5, strides 2) → BN → Conv2DTranspose(1, 5, "
    "strides 2, tanh): 1,727,233 parameters, output (batch, 28, 28, 1).",
)
def test_generator(submission, student):
    """The generator has 1,727,233 parameters (1,719,873 trainable), ends in tanh, 28×28×1."""
    handle = expect.handle("genModel(100)", student.genModel(100))
    model = submission.load_model(handle, unbuilt_shape=(None, 100))
    models.expect_architecture(
        model, GENERATOR, "genModel(100)", params=G_PARAMS, trainable=G_TRAINABLE
    )
    if tuple(model.output_shape) != (None, 28, 28, 1):
        dlgrade.fail(f"genModel(100) outputs {model.output_shape}; expected (None, 28, 28, 1)")


@dlgrade.check(
    points=2,
    feedback="discModel() must be the book's discriminator (1,658,753 parameters, sigmoid "
    "output), compiled with binary cross-entropy and Adam(learning_rate=0.0002, beta_1=0.5).",
)
def test_discriminator(submission, student):
    """The discriminator has 1,658,753 parameters, sigmoid, BCE + Adam(2e-4, beta_1=0.5)."""
    handle = expect.handle("discModel()", student.discModel())
    model = submission.load_model(handle, unbuilt_shape=(None, 28, 28, 1))
    models.expect_architecture(model, DISCRIMINATOR, "discModel()", params=D_PARAMS)
    models.expect_compiled(model, DISCRIMINATOR_COMPILE, "discModel()")


@dlgrade.check(
    points=2,
    feedback="ganModel(G, D) must stack G then D in a Sequential with D frozen inside "
    "(D.trainable = False before compiling the GAN): 3,385,986 parameters, 1,719,873 "
    "trainable.",
)
def test_gan_stacks_generator_then_frozen_discriminator(submission, student):
    """The GAN is G then D: 3,385,986 parameters, only the generator's 1,719,873 trainable.

    Built from the grader's own G and D (the book's), so that a mistake in genModel or
    discModel costs their own checks, not this one too: this check grades ganModel alone.
    """
    generator = submission.grader_model(GENERATOR, (100,))
    discriminator = submission.grader_model(DISCRIMINATOR, (28, 28, 1), DISCRIMINATOR_COMPILE)
    gan = expect.handle("ganModel(G, D)", student.ganModel(generator, discriminator))
    model = submission.load_model(gan)
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


def grader_gan(submission):
    """The book's G, D (compiled) and GAN (D frozen inside), built by the grader."""
    generator = submission.grader_model(GENERATOR, (100,))
    discriminator = submission.grader_model(DISCRIMINATOR, (28, 28, 1), DISCRIMINATOR_COMPILE)
    gan = submission.feed("gan", generator, discriminator, GAN_COMPILE.as_feed())
    return generator, discriminator, gan


@pytest.fixture(scope="module")
def short_run(submission):
    """train_gan(epochs=101, batch=16) on the grader's G, D and GAN; weights before and
    after, the trace, and samples from the trained G.

    Module-scoped: the standard checks read one run (its setup counts in the first).
    """
    student = submission.activity(ACTIVITY)
    generator, discriminator, gan = grader_gan(submission)
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
    points=3,
    tier="standard",
    timeout=900,
    feedback="train_gan must, every iteration, train D on real + fake images (D trainable) "
    "and then the GAN on noise labelled real (D frozen).",
)
def test_short_training_moves_both_networks(short_run):
    """101 iterations of train_gan change the discriminator's and the generator's weights."""
    before, after, _, _ = short_run
    if _moved(before["D"], after["D"]) <= D_MOVES:
        dlgrade.fail(
            "the discriminator's weights did not change: it never learned",
            fix="in Keras 3, D.trainable = False (set before building the GAN) also freezes "
            "D's own train_on_batch: set Discmodel.trainable = True before D's step and "
            "False again before the GAN's step",
        )
    if _moved(before["G"], after["G"]) <= D_MOVES:
        dlgrade.fail(
            "the generator's weights did not change",
            fix="train gan_model on fresh noise labelled 1 (real) after each discriminator step",
        )


@dlgrade.check(
    points=2,
    tier="standard",
    timeout=900,
    feedback="train_gan must record the discriminator's mean probability on a mixed real + "
    "fake batch at iterations 0, 50, 100, … (when i % 50 == 0) and return that list; a "
    "balanced GAN keeps it near 0.5.",
)
def test_trace_is_recorded_every_50_iterations_and_stays_balanced(short_run):
    """The trace has one value at iterations 0, 50 and 100, each within [0.15, 0.85]."""
    _, _, trace, _ = short_run
    if not isinstance(trace, list) or len(trace) != 3:
        dlgrade.fail(
            f"train_gan(epochs=101) returned {expect.describe(trace)}; expected one mean "
            "probability at iterations 0, 50 and 100: 3 values",
            fix="record when i % 50 == 0 (iterations 0, 50, 100, …), as the book does: 100 "
            "values for the default 5,000 iterations",
        )
    values = [expect.scalar("train_gan trace value", v) for v in trace]
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
        "fakedataGenerator(G, 64, 100)", samples, shape=(64, 28, 28, 1), kinds="f"
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
    gpu=True,
    feedback="the book's 5,000 iterations of batch 128 must end with the discriminator's "
    "mean probability in [0.35, 0.65].",
)
def test_book_training_ends_balanced(submission, student):
    """5,000 iterations end with the discriminator's probability in [0.35, 0.65]."""
    models.require_gpu("the full tier of 7.01 runs 5,000 GAN iterations of batch 128", submission)
    generator = expect.handle("genModel(100)", student.genModel(100))
    discriminator = expect.handle("discModel()", student.discModel())
    gan = expect.handle("ganModel(G, D)", student.ganModel(generator, discriminator))
    trace = student.train_gan(generator, discriminator, gan)
    final = expect.scalar("trace[-1]", trace[-1] if isinstance(trace, list) and trace else None)
    if not FULL_BAND[0] <= final <= FULL_BAND[1]:
        dlgrade.fail(
            f"the final mean probability is {final:.3f}; expected within {list(FULL_BAND)}"
        )
