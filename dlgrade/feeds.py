"""Inputs the grader builds inside the worker, so a check can test one function alone.

A check of ``train(model, train, val)`` needs a model and datasets, objects that cannot
cross the boundary. If it took them from the student's ``build_model`` and
``make_datasets``, one mistake there would fail the training check too — one mistake, two
deductions, and feedback that blames ``train()``. Instead the rubric asks the worker to build
them here, from data it sends (a layer spec, arrays, a folder): the student's function under
test gets the grader's inputs.

This module runs in the worker (it imports Keras there, never on import). Only the functions
in :data:`FEEDS` can be asked for, by name; their arguments are data.
"""

from __future__ import annotations

from typing import Any


def image_batches(images, labels, *, batch_size: int = 16, scale: float = 1 / 255):
    """A ``tf.data.Dataset`` of ``(images × scale as float32, labels)`` batches, in order."""
    import tensorflow as tf

    def rescale(x, y):
        return tf.cast(x, tf.float32) * scale, y

    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).map(rescale)


def directory_batches(
    folder: str,
    *,
    image_size=(100, 100),
    batch_size: int = 16,
    scale: float = 1 / 255,
    seed: int | None = None,
):
    """Batches of a class-per-folder tree with one-hot labels, rescaled; shuffled with
    ``seed`` (so a few steps see every class), in folder order without."""
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder,
        image_size=tuple(image_size),
        batch_size=batch_size,
        label_mode="categorical",
        shuffle=seed is not None,
        seed=seed,
        verbose=False,
    )
    return dataset.map(lambda x, y: (x * scale, y))


def sequential(layers: list, input_shape, compiled: dict | None = None):
    """A ``keras.Sequential`` built from ``[[kind, config], ...]`` and compiled as asked.

    ``kind`` is a ``keras.layers`` class, or ``"VGG16"`` for a frozen VGG16 base without
    its top (random weights: a check never downloads ImageNet's).
    """
    import keras

    stack: list[Any] = [keras.Input(shape=tuple(input_shape))]
    for kind, config in layers:
        if kind == "VGG16":
            base = keras.applications.VGG16(
                weights=None, include_top=False, input_shape=tuple(input_shape)
            )
            base.trainable = False
            stack.append(base)
        else:
            stack.append(getattr(keras.layers, kind)(**config))
    model = keras.Sequential(stack)
    if compiled:
        _compile(model, compiled)
    return model


def gan(generator, discriminator, compiled: dict):
    """The book's GAN: ``Sequential([generator, discriminator])``, the discriminator frozen."""
    import keras

    discriminator.trainable = False
    model = keras.Sequential([generator, discriminator])
    _compile(model, compiled)
    return model


def word2vec(sentences, **params):
    """A gensim ``Word2Vec`` model trained as asked (e.g. the book's defaults, workers=1)."""
    from gensim.models import Word2Vec

    return Word2Vec(sentences, **params)


def keyed_vectors(path: str):
    """gensim ``KeyedVectors`` read from a word2vec text file the grader wrote."""
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(path, binary=False)


def _compile(model, compiled: dict) -> None:
    import keras

    optimizer = keras.optimizers.get(
        {"class_name": compiled["optimizer"], "config": dict(compiled.get("config") or {})}
    )
    model.compile(
        optimizer=optimizer, loss=compiled["loss"], metrics=list(compiled.get("metrics") or [])
    )


#: what a rubric may ask the worker to build, by name
FEEDS = {
    "image_batches": image_batches,
    "directory_batches": directory_batches,
    "sequential": sequential,
    "gan": gan,
    "word2vec": word2vec,
    "keyed_vectors": keyed_vectors,
}
