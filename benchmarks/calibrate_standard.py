"""Calibrate the standard-tier checks as they now run: the grader's inputs, the reference's train.

Each standard check feeds the student's function under test the grader's own model and data
(``dlgrade.sandbox.feeds``); this script builds exactly those inputs in one process, runs the
reference's function on them over several seeds, and prints what each check measures, so
its threshold can be set below the worst seed:

    DLGRADE_DATA_DIR=../shared/data python benchmarks/calibrate_standard.py [--seeds 5]
        [--activity 3.01 ...]

Prints one row per activity and measure: min / max over the seeds, and the threshold the
rubric uses.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "checks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dlgrade import models  # noqa: E402
from dlgrade.data import synth, twins  # noqa: E402
from dlgrade.sandbox import feeds  # noqa: E402


def reference(activity: str):
    name = f"activity_{activity.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(f"ref_{name}", REPO / "reference" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rubric(activity: str):
    return __import__(f"activity_{activity.replace('.', '_')}")


def grader_model(spec, input_shape, compiled=None):
    layers = [[layer.kind, layer.settings] for layer in spec]
    return feeds.sequential(layers, list(input_shape), compiled.as_feed() if compiled else None)


def a_2_01(seed: int, tmp: Path) -> dict:
    r, ref = rubric("2.01"), reference("2.01")
    try:
        from dlgrade import data

        csv = data.path("sonar")
    except Exception:  # noqa: BLE001 - the twin, as the rubric does
        csv = synth.sonar(tmp / "sonar.csv")
    X, classes = r._expected(csv)
    y = r._labels(classes)
    model = grader_model(r.BOOK_MODEL, (60,), r.BOOK_COMPILE)
    history = ref.train(model, X, y, epochs=30)
    weights = float(np.mean((model.predict(X, verbose=0) > 0.5).astype(int) == y))
    return {"best epoch accuracy": max(history["accuracy"]), "trained weights accuracy": weights}


def a_3_01(seed: int, tmp: Path) -> dict:
    r, ref = rubric("3.01"), reference("3.01")
    (x_train, y_train), (x_test, y_test), _ = twins.fashion_mnist_arrays()
    x_train, x_test = x_train[..., None], x_test[..., None]
    train = feeds.image_batches(x_train[:2000], y_train[:2000], batch_size=32)
    val = feeds.image_batches(x_test[:500], y_test[:500], batch_size=32)
    model = grader_model(r.BOOK_MODEL, (28, 28, 1), r.BOOK_COMPILE)
    before = model.evaluate(x_test[:500] / 255.0, y_test[:500], verbose=0)[0]
    ref.train(model, train, val, epochs=2)
    after, accuracy = model.evaluate(x_test[:500] / 255.0, y_test[:500], verbose=0)[:2]
    return {"loss after / before": after / before, "test accuracy": accuracy}


def a_3_02(seed: int, tmp: Path) -> dict:
    r, ref = rubric("3.02"), reference("3.02")
    tree = synth.fruits(tmp / "fruits", classes=5, train_per_class=40, test_per_class=10)
    x, y = r._training_images(tree)
    train = feeds.directory_batches(str(tree / "Training"), batch_size=16, seed=8)
    val = feeds.directory_batches(str(tree / "Test"), batch_size=16)
    model = grader_model([models.Layer("VGG16"), *r.BOOK_HEAD], (100, 100, 3), r.BOOK_COMPILE)
    before = model.evaluate(x, y, verbose=0)[0]
    ref.train(model, train, val, epochs=1, steps_per_epoch=6, validation_steps=1)
    return {"loss after / before": model.evaluate(x, y, verbose=0)[0] / before}


def a_5_01(seed: int, tmp: Path) -> dict:
    r, ref = rubric("5.01"), reference("5.01")
    import pandas as pd

    try:
        from dlgrade import data

        csv = data.path("ibm")
    except Exception:  # noqa: BLE001 - the twin, as the rubric does
        csv = synth.ibm(tmp / "IBM.csv")
    closes = pd.read_csv(csv)["Close"].to_numpy(dtype=np.float64)[::-1].reshape(-1, 1)
    X, y, _, _ = r._scaled_windows(closes)
    X, y = X[: r.STANDARD_WINDOWS], y[: r.STANDARD_WINDOWS]
    model = grader_model(r.BOOK_MODEL, (10,), r.BOOK_COMPILE)
    before = r._mse(model, X, y)
    ref.train(model, X, y, epochs=1, batch_size=1)
    after = r._mse(model, X, y)
    return {"MSE after / before": after / before, "MSE after": after}


def a_6_01(seed: int, tmp: Path) -> dict:
    r, ref = rubric("6.01"), reference("6.01")
    import pandas as pd

    folder = synth.amazon_reviews(tmp / "reviews", train=2000, test=500)
    train = pd.read_csv(folder / "Amazon_reviews_train.csv")
    test = pd.read_csv(folder / "Amazon_reviews_test.csv")
    X_train, X_test = r.grader_sequences(train.review_text.tolist(), test.review_text.tolist())
    model = grader_model(r.BOOK_MODEL, (r.MAXLEN,), r.BOOK_COMPILE)
    ref.train(model, X_train, train.label.to_numpy(), epochs=3, batch_size=32)
    predicted = (model.predict(X_test, verbose=0) > 0.5).astype(int).reshape(-1)
    return {"test accuracy": float(np.mean(predicted == test.label.to_numpy()))}


def a_7_01(seed: int, tmp: Path) -> dict:
    r, ref = rubric("7.01"), reference("7.01")
    generator = grader_model(r.GENERATOR, (100,))
    discriminator = grader_model(r.DISCRIMINATOR, (28, 28, 1), r.DISCRIMINATOR_COMPILE)
    gan = feeds.gan(generator, discriminator, r.GAN_COMPILE.as_feed())
    before = {"G": generator.get_weights(), "D": discriminator.get_weights()}
    trace = ref.train_gan(generator, discriminator, gan, epochs=101, batch=16, infeats=100)
    samples = ref.fakedataGenerator(generator, 64, 100)
    return {
        "trace min": min(trace),
        "trace max": max(trace),
        "D moves": r._moved(before["D"], discriminator.get_weights()),
        "G moves": r._moved(before["G"], generator.get_weights()),
        "sample spread": float(np.mean(np.std(samples, axis=0))),
    }


ACTIVITIES = {
    "2.01": a_2_01,
    "3.01": a_3_01,
    "3.02": a_3_02,
    "5.01": a_5_01,
    "6.01": a_6_01,
    "7.01": a_7_01,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--activity", action="append", choices=sorted(ACTIVITIES))
    args = parser.parse_args()
    from dlgrade import data

    # Keras reads KERAS_HOME once: the real Fashion-MNIST where it is here, else the twin
    home = data.keras_home(Path(tempfile.mkdtemp()) / ".keras", twins=("fashion_mnist",))
    os.environ["KERAS_HOME"] = str(home)
    keras = models.keras()
    print(f"{'activity':8} {'measure':28} {'min':>8} {'max':>8}  per seed  (seconds)")
    for activity in args.activity or sorted(ACTIVITIES):
        rows: dict[str, list[float]] = {}
        began = time.monotonic()
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            with tempfile.TemporaryDirectory() as tmp:
                for measure, value in ACTIVITIES[activity](seed, Path(tmp)).items():
                    rows.setdefault(measure, []).append(float(value))
        seconds = time.monotonic() - began
        for measure, values in rows.items():
            shown = " ".join(f"{v:.4g}" for v in values)
            print(
                f"{activity:8} {measure:28} {min(values):8.4g} {max(values):8.4g}  {shown}"
                f"  ({seconds:.0f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
