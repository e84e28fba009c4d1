"""Broken on purpose: imports a package that does not exist."""

import tensorflow_but_misspelled  # noqa: F401


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    return 0.0
