"""Activity 7.01, functional style.

Idioms: generator, discriminator and GAN built with the functional API (the GAN is
``keras.Model(z, Discmodel(Genmodel(z)))``, equivalent to ``Sequential([G, D])``), the images
loaded once through a small cache function, ``np.random.choice`` batches, and the trace taken
on a fresh mixed batch every 50 iterations (from iteration 0, as the book). The Keras 3
``trainable`` toggle is done around each discriminator step.
"""

import functools

import numpy as np
import tensorflow as tf
from tensorflow import keras


@functools.lru_cache(maxsize=1)
def _images():
    (x, _), _ = keras.datasets.fashion_mnist.load_data()
    return np.expand_dims((x.astype(np.float32) - 127.5) / 127.5, axis=-1)


def realData(batch):
    images = _images()
    return images[np.random.choice(len(images), size=batch)]


def fakeInputs(batch, infeats):
    return np.random.uniform(low=-1.0, high=1.0, size=(batch, infeats))


def genModel(infeats):
    z = keras.Input(shape=(infeats,))
    x = keras.layers.Dense(512, activation="relu")(z)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dense(3136, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Reshape((7, 7, 64))(x)
    x = keras.layers.Conv2DTranspose(32, 5, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    image = keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh")(x)
    return keras.Model(z, image, name="generator")


def discModel():
    image = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(32, 5, strides=2, padding="same")(image)
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    x = keras.layers.Conv2D(64, 5, strides=2, padding="same")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512)(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    p = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(image, p, name="discriminator")
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
        loss="binary_crossentropy",
    )
    return model


def ganModel(Genmodel, Discmodel):
    Discmodel.trainable = False
    z = keras.Input(shape=Genmodel.input_shape[1:])
    model = keras.Model(z, Discmodel(Genmodel(z)), name="gan")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def fakedataGenerator(Genmodel, batch, infeats):
    return Genmodel.predict(fakeInputs(batch, infeats), verbose=0)


def train_gan(Genmodel, Discmodel, gan_model, *, epochs=5000, batch=128, infeats=100):
    real_and_fake = np.concatenate([np.ones((batch, 1)), np.zeros((batch, 1))])
    trace = []
    for step in range(epochs):
        images = np.concatenate(
            [realData(batch), fakedataGenerator(Genmodel, batch, infeats)], axis=0
        )
        Discmodel.trainable = True
        Discmodel.train_on_batch(images, real_and_fake)
        Discmodel.trainable = False
        gan_model.train_on_batch(fakeInputs(batch, infeats), np.ones((batch, 1)))
        if step % 50 == 0:
            probe = np.concatenate(
                [realData(batch), fakedataGenerator(Genmodel, batch, infeats)], axis=0
            )
            trace.append(float(Discmodel.predict(probe, verbose=0).mean()))
    return trace
