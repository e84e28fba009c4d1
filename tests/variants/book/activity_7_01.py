"""Activity 7.01, written with the book's idioms.

Idioms: imports from ``tensorflow.keras...``, random batches chosen with
``np.random.randint`` in ``realData``, ``Sequential()`` models grown with ``.add`` with the
activations as separate ``Activation`` layers, ``input_dim=`` / ``input_shape=`` on the first
layers, ``LeakyReLU(0.2)``, the discriminator frozen through its ``trainable`` flag inside
``ganModel``, each GAN step trained on ``batch * 2`` noise vectors all labelled 1, and a trace
of the discriminator's mean output on ``realData(10)`` plus 10 fakes taken whenever
``i % 50 == 0``.
Changes: ``realData`` reads the data set once and keeps it (the book reloads it on every
call, which the contract rules out); Keras 3 forced ``learning_rate=`` instead of ``lr=``,
``predict`` instead of ``predict_proba``, and switching the discriminator's ``trainable``
flag on for its own step and off again for the GAN step.
"""

import numpy as np
from tensorflow.keras.datasets import fashion_mnist
from tensorflow.keras.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    LeakyReLU,
    Reshape,
)
from tensorflow.keras.models import Sequential
from tensorflow.keras.optimizers import Adam

_pixels = None  # the training images, scaled to [-1, 1], once loaded


def realData(batch):
    global _pixels
    if _pixels is None:
        (clothes, _labels), _test = fashion_mnist.load_data()
        with_channel = clothes[:, :, :, np.newaxis].astype("float32")
        _pixels = (with_channel - 127.5) / 127.5
    chosen = np.random.randint(0, _pixels.shape[0], size=batch)
    return _pixels[chosen]


def fakeInputs(batch, infeats):
    return np.random.uniform(low=-1.0, high=1.0, size=(batch, infeats))


def genModel(infeats):
    gen = Sequential()
    gen.add(Dense(units=512, input_dim=infeats))
    gen.add(Activation("relu"))
    gen.add(BatchNormalization())
    gen.add(Dense(units=7 * 7 * 64))
    gen.add(Activation("relu"))
    gen.add(BatchNormalization())
    gen.add(Reshape(target_shape=(7, 7, 64)))
    # two transposed convolutions double the size: 7 -> 14 -> 28
    gen.add(Conv2DTranspose(32, kernel_size=5, strides=2, padding="same"))
    gen.add(Activation("relu"))
    gen.add(BatchNormalization())
    gen.add(Conv2DTranspose(1, kernel_size=5, strides=2, padding="same"))
    gen.add(Activation("tanh"))
    return gen


def discModel():
    critic = Sequential()
    critic.add(Conv2D(32, kernel_size=5, strides=2, padding="same", input_shape=(28, 28, 1)))
    critic.add(LeakyReLU(0.2))
    critic.add(Conv2D(64, kernel_size=5, strides=2, padding="same"))
    critic.add(LeakyReLU(0.2))
    critic.add(Flatten())
    critic.add(Dense(units=512))
    critic.add(LeakyReLU(0.2))
    critic.add(Dense(units=1, activation="sigmoid"))
    critic.compile(
        optimizer=Adam(beta_1=0.5, learning_rate=2e-4),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return critic


def ganModel(Genmodel, Discmodel):
    Discmodel.trainable = False
    chained = Sequential()
    chained.add(Genmodel)
    chained.add(Discmodel)
    chained.compile(optimizer=Adam(beta_1=0.5, learning_rate=2e-4), loss="binary_crossentropy")
    return chained


def fakedataGenerator(Genmodel, batch, infeats):
    noise = fakeInputs(batch, infeats)
    return Genmodel.predict(noise, verbose=0)


def train_gan(Genmodel, Discmodel, gan_model, *, epochs=5000, batch=128, infeats=100):
    scores = []
    for i in range(epochs):
        # discriminator step: real images labelled 1, generated ones labelled 0
        real_imgs = realData(batch)
        fake_imgs = fakedataGenerator(Genmodel, batch, infeats)
        disc_x = np.concatenate([real_imgs, fake_imgs])
        disc_y = np.concatenate([np.ones(batch), np.zeros(batch)])
        # Keras 3: the flag ganModel set would also block this model's own update
        Discmodel.trainable = True
        Discmodel.train_on_batch(disc_x, disc_y)
        Discmodel.trainable = False
        # generator step through the frozen discriminator: noise labelled "real"
        noise = fakeInputs(2 * batch, infeats)
        gan_model.train_on_batch(noise, np.ones((2 * batch, 1)))
        if i % 50 == 0:
            probe = np.concatenate([realData(10), fakedataGenerator(Genmodel, 10, infeats)])
            mean_prob = float(np.mean(Discmodel.predict(probe, verbose=0)))  # no predict_proba
            print(f"iteration {i}: mean discriminator output {mean_prob:.4f}")
            scores.append(mean_prob)
    return scores
