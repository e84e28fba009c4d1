"""Activity 7.01, written the way someone coming from PyTorch writes Keras 3.

Idioms: the generator and the discriminator as subclassed ``keras.Model``s in the DCGAN
tutorial's shape — activations as their own layers (``ReLU``, ``LeakyReLU``, a final
``Activation``, like ``nn.ReLU()`` and ``nn.Tanh()``), every layer made in ``__init__`` in
the order ``call()`` uses it, each class registered for saving with a ``get_config``, built
by a dummy forward pass; the images loaded once and sampled with ``tf.random`` indices,
noise from ``tf.random.uniform``; the GAN the contract's ``Sequential(G, D)`` (built on the
generator's noise size when the generator is subclassed and Keras cannot read its input
shape); and ``train_gan`` as two hand-written ``tf.GradientTape`` steps — the
discriminator's with its own compiled optimizer, then the generator's through the GAN's —
with ``Discmodel.trainable`` switched on for D's step and off for the GAN's, since in Keras
3 a frozen model has no trainable variables to step (the trap the book falls into).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

_images = None


def _training_images():
    global _images
    if _images is None:
        (x_train, _), _ = keras.datasets.fashion_mnist.load_data()
        _images = tf.constant(((x_train.astype(np.float32) - 127.5) / 127.5)[..., None])
    return _images


def realData(batch):
    images = _training_images()
    index = tf.random.uniform((batch,), 0, int(images.shape[0]), dtype=tf.int64)
    return tf.gather(images, index).numpy()


def fakeInputs(batch, infeats):
    return tf.random.uniform((batch, infeats), minval=-1.0, maxval=1.0).numpy()


@keras.saving.register_keras_serializable(package="activity_7_01")
class Generator(keras.Model):
    def __init__(self, infeats=100, **kwargs):
        super().__init__(**kwargs)
        self.infeats = infeats
        self.fc1 = layers.Dense(512)
        self.relu1 = layers.ReLU()
        self.bn1 = layers.BatchNormalization()
        self.fc2 = layers.Dense(7 * 7 * 64)
        self.relu2 = layers.ReLU()
        self.bn2 = layers.BatchNormalization()
        self.unflatten = layers.Reshape((7, 7, 64))
        self.deconv1 = layers.Conv2DTranspose(32, 5, strides=2, padding="same")
        self.relu3 = layers.ReLU()
        self.bn3 = layers.BatchNormalization()
        self.deconv2 = layers.Conv2DTranspose(1, 5, strides=2, padding="same")
        self.tanh = layers.Activation("tanh")

    def call(self, z, training=False):
        x = self.bn1(self.relu1(self.fc1(z)), training=training)
        x = self.bn2(self.relu2(self.fc2(x)), training=training)
        x = self.unflatten(x)
        x = self.bn3(self.relu3(self.deconv1(x)), training=training)
        return self.tanh(self.deconv2(x))

    def get_config(self):
        return {**super().get_config(), "infeats": self.infeats}


@keras.saving.register_keras_serializable(package="activity_7_01")
class Discriminator(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(32, 5, strides=2, padding="same")
        self.lrelu1 = layers.LeakyReLU(negative_slope=0.2)
        self.conv2 = layers.Conv2D(64, 5, strides=2, padding="same")
        self.lrelu2 = layers.LeakyReLU(negative_slope=0.2)
        self.flatten = layers.Flatten()
        self.fc = layers.Dense(512)
        self.lrelu3 = layers.LeakyReLU(negative_slope=0.2)
        self.head = layers.Dense(1)
        self.sigmoid = layers.Activation("sigmoid")
        # A frozen D reloads as Discriminator(trainable=False): Keras sets the flag before
        # these layers exist, so hand it down to them, or the GAN reloads with D trainable.
        for layer in self.layers:
            layer.trainable = self.trainable

    def call(self, x, training=False):
        x = self.lrelu1(self.conv1(x))
        x = self.lrelu2(self.conv2(x))
        x = self.flatten(x)
        x = self.lrelu3(self.fc(x))
        return self.sigmoid(self.head(x))


def genModel(infeats):
    generator = Generator(infeats=infeats)
    generator(np.zeros((1, infeats), dtype=np.float32))  # materialise the weights
    return generator


def discModel():
    discriminator = Discriminator()
    discriminator(np.zeros((1, 28, 28, 1), dtype=np.float32))
    discriminator.compile(
        optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
        loss=keras.losses.BinaryCrossentropy(),
    )
    return discriminator


def ganModel(Genmodel, Discmodel):
    Discmodel.trainable = False
    gan = keras.Sequential([Genmodel, Discmodel], name="gan")
    if not gan.built:  # a subclassed generator has no input shape for Sequential to read
        gan.build((None, Genmodel.infeats))
    gan.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.BinaryCrossentropy())
    return gan


def fakedataGenerator(Genmodel, batch, infeats):
    return ops.convert_to_numpy(Genmodel(fakeInputs(batch, infeats), training=False))


def train_gan(Genmodel, Discmodel, gan_model, *, epochs=5000, batch=128, infeats=100):
    criterion = keras.losses.BinaryCrossentropy()
    labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
    real_targets = tf.ones((batch, 1))

    @tf.function
    def discriminator_step(images):
        with tf.GradientTape() as tape:
            loss = criterion(labels, Discmodel(images, training=True))
        params = Discmodel.trainable_variables  # read at trace time: D is trainable then
        Discmodel.optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    @tf.function
    def generator_step(noise):
        with tf.GradientTape() as tape:
            loss = criterion(real_targets, gan_model(noise, training=True))
        params = gan_model.trainable_variables  # the generator's only: D is frozen then
        gan_model.optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    trace = []
    for iteration in range(epochs):
        images = np.concatenate([realData(batch), fakedataGenerator(Genmodel, batch, infeats)])
        Discmodel.trainable = True
        discriminator_step(tf.constant(images))
        Discmodel.trainable = False
        generator_step(tf.constant(fakeInputs(batch, infeats)))
        if iteration % 50 == 0:
            probs = Discmodel(images, training=False)
            trace.append(float(ops.mean(probs)))
    return trace
