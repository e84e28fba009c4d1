"""Activity 3.02, written the way someone coming from PyTorch writes Keras 3.

Idioms: an ``ImageFolder`` written by hand as a ``tf.data`` pipeline — the class list from
the sorted subfolder names, ``(path, index)`` pairs, ``tf.io.decode_image``, resize, a
``ToTensor``-style rescale to [0, 1] and ``tf.one_hot`` labels — shuffled for training
only; the transfer-learning model as a subclassed ``keras.Model`` that takes its frozen
VGG16 backbone as a constructor argument (as a torchvision model would be passed in),
serialises it in ``get_config`` and rebuilds it in ``from_config``, runs the backbone with
``training=False`` (``backbone.eval()``) and puts Flatten → Dense(1000) → Dense(classes)
after it, layers made in ``__init__`` in the order ``call()`` uses them; and ``train`` as a
``tf.GradientTape`` loop like 3.01's over ``model.trainable_variables`` — the head only,
the frozen base is not among them — with ``steps_per_epoch``/``validation_steps`` honoured.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

SEED = 8
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _image_folder(root):
    classes = sorted(
        entry for entry in os.listdir(root) if os.path.isdir(os.path.join(root, entry))
    )
    paths, targets = [], []
    for index, name in enumerate(classes):
        folder = os.path.join(root, name)
        for file in sorted(os.listdir(folder)):
            if file.lower().endswith(IMAGE_SUFFIXES):
                paths.append(os.path.join(folder, file))
                targets.append(index)
    return paths, targets, len(classes)


def _loader(root, image_size, batch_size, *, shuffle):
    paths, targets, num_classes = _image_folder(root)

    def load(path, target):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, image_size)
        return image / 255.0, tf.one_hot(target, num_classes)

    dataset = tf.data.Dataset.from_tensor_slices((paths, targets))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=SEED, reshuffle_each_iteration=True)
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)


def make_datasets(train_dir, val_dir, *, image_size=(100, 100), batch_size=16):
    size = tuple(image_size)
    train = _loader(train_dir, size, batch_size, shuffle=True)
    val = _loader(val_dir, size, batch_size, shuffle=False)
    return train, val


@keras.saving.register_keras_serializable(package="activity_3_02")
class FruitClassifier(keras.Model):
    def __init__(self, backbone, num_classes=120, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.backbone = backbone
        self.flatten = layers.Flatten()
        self.fc = layers.Dense(1000, activation="relu")
        self.classifier = layers.Dense(num_classes, activation="softmax")

    def call(self, x, training=False):
        x = self.backbone(x, training=False)
        x = self.flatten(x)
        x = self.fc(x)
        return self.classifier(x)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def build_model(input_shape=(100, 100, 3), num_classes=120, *, weights="imagenet"):
    backbone = keras.applications.VGG16(
        weights=weights, include_top=False, input_shape=tuple(input_shape)
    )
    backbone.trainable = False  # requires_grad_(False)
    model = FruitClassifier(backbone, num_classes=num_classes)
    model(np.zeros((1, *input_shape), dtype=np.float32))  # materialise the head
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def train(model, train, val, *, epochs=5, steps_per_epoch=None, validation_steps=None):
    criterion = keras.losses.CategoricalCrossentropy()
    optimizer = model.optimizer

    def hits(onehot, probs):
        same = ops.equal(ops.argmax(probs, axis=-1), ops.argmax(onehot, axis=-1))
        return ops.sum(ops.cast(same, "float32"))

    @tf.function(reduce_retracing=True)
    def training_step(images, onehot):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss = criterion(onehot, probs)
        params = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss, hits(onehot, probs)

    @tf.function(reduce_retracing=True)
    def validation_step(images, onehot):
        probs = model(images, training=False)
        return criterion(onehot, probs), hits(onehot, probs)

    def run(batches, step):
        total_loss, total_hits, seen = 0.0, 0.0, 0
        for images, onehot in batches:
            loss, correct = step(images, onehot)
            count = int(images.shape[0])
            total_loss += float(loss) * count
            total_hits += float(correct)
            seen += count
        return total_loss / seen, total_hits / seen

    stream = iter(train.repeat()) if steps_per_epoch is not None else None
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for _epoch in range(epochs):
        if stream is None:
            batches = train
        else:
            batches = (next(stream) for _ in range(steps_per_epoch))
        loss, accuracy = run(batches, training_step)
        val_batches = val if validation_steps is None else val.repeat().take(validation_steps)
        val_loss, val_accuracy = run(val_batches, validation_step)
        for key, value in zip(history, (loss, accuracy, val_loss, val_accuracy), strict=True):
            history[key].append(value)
    return history
