"""Measure how learnable the synthetic twins are, and what writing them all costs.

Run: python benchmarks/synth_learnability.py [SEEDS]   (default 5: seeds 0..4)
Prints one row per measure with its value per seed and min / mean / max: a small reference
model's held-out accuracy for the image and review twins (and the cheap sklearn models the
tests use), the scaled RMSE of a lookback-10 linear model against predicting the training
mean for the IBM twin (and for the real IBM.csv, where the mirror has it), and cosines
between GloVe-twin words. Then the time and size of ``synth.write_all`` at default scale.
The numbers belong in ``dlgrade/data/synth.py``'s docstring; the tests' thresholds sit well
below the worst seed.
"""

import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

import keras  # noqa: E402 - after the log level, which TensorFlow reads at import
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

from dlgrade.data import synth  # noqa: E402

LOOK_BACK = 10
ROOT = Path(__file__).resolve().parent.parent


def read_idx(path: Path, header: int) -> np.ndarray:
    """The uint8 payload of an IDX gz file, as load_data reads it."""
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=header)


def fashion_arrays(keras_home: Path):
    folder = keras_home / "datasets" / "fashion-mnist"
    names = synth.FASHION_MNIST_FILES
    y_train, y_test = (read_idx(folder / names[i], 8) for i in (0, 2))
    x_train = read_idx(folder / names[1], 16).reshape(-1, 28, 28)
    x_test = read_idx(folder / names[3], 16).reshape(-1, 28, 28)
    return x_train, y_train, x_test, y_test


def fashion_cnn(keras_home: Path, seed: int) -> float:
    """Conv2D 16 -> MaxPool -> Flatten -> Dense 10, 3 epochs: test accuracy."""
    x_train, y_train, x_test, y_test = fashion_arrays(keras_home)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train[..., None] / 255, y_train, epochs=3, batch_size=32, verbose=0)
    return model.evaluate(x_test[..., None] / 255, y_test, verbose=0)[1]


def pooled(images: np.ndarray) -> np.ndarray:
    """28x28 images averaged over 2x2 blocks and flattened: the test's cheap features."""
    return images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(images), -1) / 255


def fashion_knn(keras_home: Path) -> float:
    """5-nearest-neighbours on 14x14 pooled pixels: test accuracy (what the tests use)."""
    x_train, y_train, x_test, y_test = fashion_arrays(keras_home)
    model = KNeighborsClassifier(5).fit(pooled(x_train), y_train)
    return model.score(pooled(x_test), y_test)


def fruits_cnn(root: Path, seed: int) -> float:
    """A two-block CNN over image_dataset_from_directory, 5 epochs: test accuracy."""
    load = dict(image_size=(100, 100), batch_size=16, label_mode="categorical", seed=seed)
    train = keras.utils.image_dataset_from_directory(root / "Training", verbose=False, **load)
    test = keras.utils.image_dataset_from_directory(
        root / "Test", shuffle=False, verbose=False, **load
    )
    classes = len(train.class_names)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((100, 100, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=5, shuffle=False, verbose=0)  # the dataset shuffles itself
    return model.evaluate(test, verbose=0)[1]


def fruit_pixels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every JPEG under ``folder/<class>/`` shrunk to 20x20 and flattened, with its class."""
    features, labels = [], []
    for class_dir in sorted(folder.iterdir()):
        for file in sorted(class_dir.iterdir()):
            with Image.open(file) as image:
                features.append(np.asarray(image.resize((20, 20))).ravel() / 255)
            labels.append(class_dir.name)
    return np.array(features), np.array(labels)


def fruits_logistic(root: Path) -> float:
    """LogisticRegression on 20x20 thumbnails: test accuracy (what the tests use)."""
    x_train, y_train = fruit_pixels(root / "Training")
    x_test, y_test = fruit_pixels(root / "Test")
    return LogisticRegression(max_iter=1000).fit(x_train, y_train).score(x_test, y_test)


def amazon_bag_of_words(folder: Path) -> float:
    """CountVectorizer + LogisticRegression: test accuracy."""
    train = pd.read_csv(folder / "Amazon_reviews_train.csv")
    test = pd.read_csv(folder / "Amazon_reviews_test.csv")
    vectorizer = CountVectorizer().fit(train.review_text)
    model = LogisticRegression(max_iter=1000)
    model.fit(vectorizer.transform(train.review_text), train.label)
    return model.score(vectorizer.transform(test.review_text), test.label)


def lookback(series: np.ndarray, k: int = LOOK_BACK) -> np.ndarray:
    """Columns are the series shifted by 1..k, zeros where the shift runs off the start."""
    columns = np.zeros((len(series), k))
    for shift in range(1, k + 1):
        columns[shift:, shift - 1] = series[:-shift]
    return columns


def ibm_rmse(csv: Path) -> tuple[float, float]:
    """Scaled test RMSE of a lookback-10 linear model, and of predicting the training mean."""
    close = pd.read_csv(csv)["Close"].to_numpy()[::-1].reshape(-1, 1)
    cut = int(len(close) * 0.75)
    scaler = MinMaxScaler().fit(close[:cut])
    train, test = scaler.transform(close[:cut]).ravel(), scaler.transform(close[cut:]).ravel()
    model = LinearRegression().fit(lookback(train), train)
    linear = np.sqrt(np.mean((model.predict(lookback(test)) - test) ** 2))
    mean = np.sqrt(np.mean((train.mean() - test) ** 2))
    return float(linear), float(mean)


def read_word2vec(path: Path) -> dict[str, np.ndarray]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {word: np.array(rest, dtype=float) for word, *rest in (ln.split(" ") for ln in lines)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def glove_cosines(path: Path) -> dict[str, float]:
    """Cosines the 4.02 rubric might lean on, plus an unrelated pair and the king-queen analogy."""
    v = read_word2vec(path)
    words = sorted(v)
    unit = {word: v[word] / np.linalg.norm(v[word]) for word in words}
    # as gensim's most_similar(positive=[king, woman], negative=[man]): unit vectors in
    target = unit["king"] - unit["man"] + unit["woman"]
    ranked = sorted(
        (w for w in words if w not in ("king", "man", "woman")), key=lambda w: -(unit[w] @ target)
    )
    return {
        "cos(white, rabbit)": cosine(v["white"], v["rabbit"]),
        "cos(mad, hatter)": cosine(v["mad"], v["hatter"]),
        "cos(king, queen)": cosine(v["king"], v["queen"]),
        "cos(rabbit, hare)": cosine(v["rabbit"], v["hare"]),
        "cos(king, computer)": cosine(v["king"], v["computer"]),
        "cos(white rabbit, mad hatter)": cosine(v["white"] + v["rabbit"], v["mad"] + v["hatter"]),
        "king-man+woman is queen": float(ranked[0] == "queen"),
    }


def measure(seed: int, root: Path) -> dict[str, float]:
    paths = synth.write_all(root / f"seed{seed}", seed=seed)
    linear, mean = ibm_rmse(paths["ibm"])
    row = {
        "fashion CNN accuracy (3 epochs)": fashion_cnn(paths["fashion_mnist"], seed),
        "fashion kNN-5 accuracy (test's model)": fashion_knn(paths["fashion_mnist"]),
        "fruits CNN accuracy (5 epochs)": fruits_cnn(paths["fruits"], seed),
        "fruits LogisticRegression accuracy (test's model)": fruits_logistic(paths["fruits"]),
        "amazon CountVectorizer+LogReg accuracy": amazon_bag_of_words(paths["amazon_reviews"]),
        "ibm RMSE lookback-10 linear (scaled)": linear,
        "ibm RMSE train-mean predictor (scaled)": mean,
        "ibm RMSE ratio linear / mean": linear / mean,
    }
    row.update(glove_cosines(paths["glove"]))
    return row


def time_write_all(root: Path, repeats: int = 3) -> tuple[float, int, int]:
    """Best wall time of ``write_all`` at default scale, its bytes and its file count."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        synth.write_all(root / f"timing{i}", seed=i)
        times.append(time.perf_counter() - start)
    files = [f for f in (root / "timing0").rglob("*") if f.is_file()]
    return min(times), sum(f.stat().st_size for f in files), len(files)


def main(seeds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="synth-learnability-") as tmp:
        root = Path(tmp)
        rows = [measure(seed, root) for seed in range(seeds)]
        seconds, size, count = time_write_all(root)
    names = list(rows[0])
    width = max(map(len, names))
    head = " ".join(f"{f'seed {s}':>7}" for s in range(seeds))
    print(f"{'measure':<{width}} {head} {'min':>7} {'mean':>7} {'max':>7}")
    for name in names:
        values = np.array([row[name] for row in rows])
        cells = " ".join(f"{v:7.4f}" for v in values)
        summary = f"{values.min():7.4f} {values.mean():7.4f} {values.max():7.4f}"
        print(f"{name:<{width}} {cells} {summary}")
    print(
        f"write_all at default scale: {seconds:.2f} s (best of 3), {size:,} bytes in {count} files"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
