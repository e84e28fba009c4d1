"""Activity 7.01, modern Keras 3.

Idioms: a ``numpy.random.Generator`` for batches and noise; the images loaded once
(``functools.cache``); ``keras.Sequential`` models with ``keras.Input``; compile settings as
Keras objects; and a hand-written training step: ``tf.GradientTape`` for each player, the
discriminator's gradients applied with its own compiled optimizer (made trainable just for
its step — Keras 3 keeps it frozen otherwise, see ``ganModel``) and the generator's through
the GAN's optimizer. The discriminator's mean probability on the step's mixed real/fake
batch is recorded at iterations 0, 50, 100, … (100 values for 5,000), as the contract says.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng()
bce = keras.losses.BinaryCrossentropy()


@functools.cache
def _training_images():
    (images, _), _ = keras.datasets.fashion_mnist.load_data()
    return ((images.astype("float32") - 127.5) / 127.5)[..., None]


def realData(batch):
    images = _training_images()
    return images[rng.integers(0, len(images), size=batch)]


def fakeInputs(batch, infeats):
    return rng.uniform(-1.0, 1.0, size=(batch, infeats))


def genModel(infeats):
    return keras.Sequential(
        [
            keras.Input((infeats,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(7 * 7 * 64, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Reshape((7, 7, 64)),
            keras.layers.Conv2DTranspose(32, 5, strides=2, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh"),
        ],
        name="generator",
    )


def discModel():
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 5, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Conv2D(64, 5, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Flatten(),
            keras.layers.Dense(512),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="discriminator",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
        loss=keras.losses.BinaryCrossentropy(),
    )
    return model


def ganModel(Genmodel, Discmodel):
    Discmodel.trainable = False
    gan = keras.Sequential([Genmodel, Discmodel], name="gan")
    gan.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.BinaryCrossentropy())
    return gan


def fakedataGenerator(Genmodel, batch, infeats):
    return keras.ops.convert_to_numpy(Genmodel(fakeInputs(batch, infeats), training=False))


def _discriminator_step(Discmodel, images, labels):
    Discmodel.trainable = True
    with tf.GradientTape() as tape:
        loss = bce(labels, Discmodel(images, training=True))
    weights = Discmodel.trainable_weights
    Discmodel.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    Discmodel.trainable = False
    return loss


def _generator_step(gan_model, noise):
    with tf.GradientTape() as tape:
        loss = bce(tf.ones((len(noise), 1)), gan_model(noise, training=True))
    weights = gan_model.trainable_weights  # the generator's only: D is frozen inside
    gan_model.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    return loss


def train_gan(Genmodel, Discmodel, gan_model, *, epochs=5000, batch=128, infeats=100):
    labels = np.concatenate([np.ones((batch, 1)), np.zeros((batch, 1))]).astype("float32")
    trace = []
    for iteration in range(epochs):
        images = np.concatenate([realData(batch), fakedataGenerator(Genmodel, batch, infeats)])
        _discriminator_step(Discmodel, images, labels)
        _generator_step(gan_model, fakeInputs(batch, infeats).astype("float32"))
        if iteration % 50 == 0:
            trace.append(float(np.mean(Discmodel.predict(images, verbose=0))))
    return trace
