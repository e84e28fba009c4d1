"""Activity 7.01 — A DCGAN that generates Fashion-MNIST images.

Build a generator, a discriminator and the GAN that chains them, then train them against
each other. The grader calls `realData`, `fakeInputs`, `genModel`, `discModel`, `ganModel`,
`fakedataGenerator` and `train_gan`. Load the images with
`keras.datasets.fashion_mnist.load_data()`: `dlgrade.data` points Keras' dataset cache at the
right files, so never hard-code a path.
"""


def realData(batch):
    """Return ``batch`` random real training images, shape ``(batch, 28, 28, 1)``, in [-1, 1].

    Scale the Fashion-MNIST training images as ``(x - 127.5) / 127.5``, add a channel axis
    and pick ``batch`` of them at random; return a float32 numpy array. Load the data set
    once and keep it (e.g. in a module-level cache or a private helper): the book reloads it
    on every call, and ``train_gan`` calls ``realData`` every iteration, so training crawls
    (and the grader's training check has a time limit).
    """
    raise NotImplementedError("activity_7_01.realData is not implemented yet")


def fakeInputs(batch, infeats):
    """Return generator input noise: uniform in [-1, 1], shape ``(batch, infeats)``.

    For example ``np.random.uniform(-1, 1, size=(batch, infeats))``.
    """
    raise NotImplementedError("activity_7_01.fakeInputs is not implemented yet")


def genModel(infeats):
    """Build and return the generator (it does not need to be compiled).

    Input ``(infeats,)``, then: Dense(512, relu) -> BatchNormalization ->
    Dense(3136, relu) -> BatchNormalization -> Reshape((7, 7, 64)) ->
    Conv2DTranspose(32, 5, strides=2, padding="same", relu) -> BatchNormalization ->
    Conv2DTranspose(1, 5, strides=2, padding="same", tanh). Output ``(28, 28, 1)`` in
    [-1, 1]. With ``infeats=100``: 1,727,233 parameters (1,719,873 trainable, 7,360 not).
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_7_01.genModel is not implemented yet")


def discModel():
    """Build and return the compiled discriminator.

    Input ``(28, 28, 1)``, then: Conv2D(32, 5, strides=2, padding="same") -> LeakyReLU(0.2)
    -> Conv2D(64, 5, strides=2, padding="same") -> LeakyReLU(0.2) -> Flatten ->
    Dense(512) -> LeakyReLU(0.2) -> Dense(1, sigmoid) = 1,658,753 parameters (Keras 3 spells
    the slope ``LeakyReLU(negative_slope=0.2)``). Compile with ``"binary_crossentropy"`` and
    ``Adam(learning_rate=2e-4, beta_1=0.5)``.
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_7_01.discModel is not implemented yet")


def ganModel(Genmodel, Discmodel):
    """Chain generator and discriminator and return the compiled GAN.

    Build ``Sequential([Genmodel, Discmodel])`` with the discriminator frozen
    (``Discmodel.trainable = False``) and compile it with ``"binary_crossentropy"`` and
    ``"adam"``: 3,385,986 parameters in total, 1,719,873 trainable (the generator's).

    Keras 3 trap: freezing ``Discmodel`` here also freezes its *own* ``train_on_batch``
    (Keras warns "The model does not have any trainable weights" and the discriminator never
    learns). In ``train_gan``, set ``Discmodel.trainable`` back to True before each
    discriminator step and to False before each GAN step, or write your own training step.
    """
    raise NotImplementedError("activity_7_01.ganModel is not implemented yet")


def fakedataGenerator(Genmodel, batch, infeats):
    """Return ``batch`` generated images, shape ``(batch, 28, 28, 1)``, in [-1, 1].

    Feed ``fakeInputs(batch, infeats)`` through ``Genmodel`` (e.g. with ``predict``) and
    return the images as a numpy array.
    """
    raise NotImplementedError("activity_7_01.fakedataGenerator is not implemented yet")


def train_gan(Genmodel, Discmodel, gan_model, *, epochs=5000, batch=128, infeats=100):
    """Train the GAN for ``epochs`` iterations and return the discriminator's mean scores.

    Each iteration: train the discriminator on ``batch`` real images labelled 1 and ``batch``
    fake images labelled 0, then train ``gan_model`` on fresh noise labelled 1 (discriminator
    frozen). At iterations 0, 50, 100, ... (when ``i % 50 == 0``, as the book does) record the
    discriminator's mean predicted probability on a mixed batch of real and fake images
    (``predict_proba`` is gone: use ``predict``) as a Python float. Return that list: 100
    values for the default 5,000 iterations, 3 for ``epochs=101``, ideally near 0.5 (the book
    prints 0.47-0.53). The grader runs your ``train_gan`` on its own copies of the book's G, D
    and GAN and checks that both networks' weights really change, so mind the ``trainable``
    trap (see ``ganModel``).
    """
    raise NotImplementedError("activity_7_01.train_gan is not implemented yet")
