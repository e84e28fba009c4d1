"""Activity 7.01 — a DCGAN on Fashion-MNIST.

The book's generator (Dense 512 → Dense 3136 → Reshape → two Conv2DTranspose, batch norm,
tanh: 1,727,233 parameters) and discriminator (two strided Conv2D with LeakyReLU(0.2) →
Dense 512 → sigmoid: 1,658,753), joined as Sequential(G, D) with D frozen inside the GAN.

Fixes: ``realData`` loads and scales the training images once (the book reloads the
dataset on every call); ``predict_proba`` is gone (``predict`` gives the probability).
Keras 3 trap: setting ``D.trainable = False`` before building the GAN also freezes D's own
``train_on_batch`` ("The model does not have any trainable weights"), so D never learns.
``train_gan`` switches ``D.trainable`` on for D's step and off for the GAN's step; Keras 3
reads the flag each time a compiled model trains, so no recompiling is needed.
"""

import keras
import numpy as np

_real_images = None


def _training_images():
    global _real_images
    if _real_images is None:
        (x_train, _), _ = keras.datasets.fashion_mnist.load_data()
        _real_images = ((x_train.astype("float32") - 127.5) / 127.5)[..., np.newaxis]
    return _real_images


def realData(batch):
    images = _training_images()
    return images[np.random.randint(0, len(images), size=batch)]


def fakeInputs(batch, infeats):
    return np.random.uniform(-1.0, 1.0, size=(batch, infeats))


def genModel(infeats):
    return keras.Sequential(
        [
            keras.Input(shape=(infeats,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(7 * 7 * 64, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Reshape((7, 7, 64)),
            keras.layers.Conv2DTranspose(32, 5, strides=2, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh"),
        ]
    )


def discModel():
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, 5, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Conv2D(64, 5, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Flatten(),
            keras.layers.Dense(512),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        loss="binary_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=0.0002, beta_1=0.5),
        metrics=["accuracy"],
    )
    return model


def ganModel(Genmodel, Discmodel):
    Discmodel.trainable = False
    model = keras.Sequential([Genmodel, Discmodel])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    return model


def fakedataGenerator(Genmodel, batch, infeats):
    return Genmodel.predict(fakeInputs(batch, infeats), verbose=0)


def train_gan(Genmodel, Discmodel, gan_model, *, epochs=5000, batch=128, infeats=100):
    trace = []
    for epoch in range(epochs):
        real = realData(batch)
        fake = fakedataGenerator(Genmodel, batch, infeats)
        images = np.concatenate([real, fake])
        labels = np.concatenate([np.ones((batch, 1)), np.zeros((batch, 1))])
        Discmodel.trainable = True
        Discmodel.train_on_batch(images, labels)
        Discmodel.trainable = False
        gan_model.train_on_batch(fakeInputs(batch, infeats), np.ones((batch, 1)))
        if epoch % 50 == 0:
            trace.append(float(np.mean(Discmodel.predict(images, verbose=0))))
    return trace
