"""Broken on purpose: a syntax error (missing colon) — the module cannot be imported."""


def loss_fn(x, coefficients=(1.0, -10.0, 25.0))
    return abs(x)
