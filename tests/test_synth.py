"""Synthetic twins: the real on-disk formats, the same bytes for the same seed, learnable."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import MinMaxScaler

from dlgrade.data import synth

REPO = Path(__file__).resolve().parent.parent
BOOK_WORDS = ("white", "rabbit", "mad", "hatter", "alice", "queen", "king")


def real_file(name: str) -> Path:
    """A file of the real-data mirror (DLGRADE_DATA_DIR, else ../shared/data), or skip."""
    mirror = Path(os.environ.get("DLGRADE_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (mirror / name).is_file():
        pytest.skip(f"the real {name} is not in {mirror}")
    return mirror / name


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its content."""
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()
    }


def read_idx(path: Path) -> bytes:
    with gzip.open(path, "rb") as fh:
        return fh.read()


def fashion_arrays(keras_home: Path) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) read as load_data reads them: fixed offsets."""
    folder = keras_home / "datasets" / "fashion-mnist"
    raw = [read_idx(folder / name) for name in synth.FASHION_MNIST_FILES]
    y_train, y_test = (np.frombuffer(raw[i], np.uint8, offset=8) for i in (0, 2))
    x_train = np.frombuffer(raw[1], np.uint8, offset=16).reshape(-1, 28, 28)
    x_test = np.frombuffer(raw[3], np.uint8, offset=16).reshape(-1, 28, 28)
    return x_train, y_train, x_test, y_test


def run_python(code: str, env: dict[str, str], cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        cwd=cwd,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Closes every socket attempt, so a test that passes proves nothing was downloaded.
NO_NETWORK = """
import socket
def _refuse(*args, **kwargs):
    raise OSError("the test forbids network access")
socket.socket.connect = _refuse
socket.create_connection = _refuse
"""


# -- formats ------------------------------------------------------------------------------


def test_fashion_twin_writes_the_four_keras_files_as_gzipped_idx(tmp_path):
    home = synth.fashion_mnist(tmp_path, train=30, test=20, seed=3)
    assert home == tmp_path
    folder = tmp_path / "datasets" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(synth.FASHION_MNIST_FILES)
    for name, n in zip(synth.FASHION_MNIST_FILES, (30, 30, 20, 20), strict=True):
        assert (folder / name).read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
        raw = read_idx(folder / name)
        if "labels" in name:
            assert struct.unpack(">II", raw[:8]) == (2049, n)
            labels = np.frombuffer(raw, np.uint8, offset=8)
            assert len(labels) == n and labels.max() <= 9
        else:
            assert struct.unpack(">IIII", raw[:16]) == (2051, n, 28, 28)
            assert len(raw) == 16 + n * 28 * 28


def test_fashion_twin_labels_cover_all_ten_classes_evenly(tmp_path):
    _, y_train, _, y_test = fashion_arrays(synth.fashion_mnist(tmp_path, train=200, test=50))
    assert np.bincount(y_train, minlength=10).tolist() == [20] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [5] * 10


def test_fruits_twin_is_a_tree_of_100x100_rgb_jpegs_named_like_fruits_360(tmp_path):
    root = synth.fruits(tmp_path, classes=3, train_per_class=4, test_per_class=2, seed=1)
    assert root == tmp_path / "fruits360_filtered"
    assert sorted(p.name for p in root.iterdir()) == ["Test", "Training"]
    names = ["Apple Braeburn", "Banana", "Cherry 1"]
    for split, per_class in (("Training", 4), ("Test", 2)):
        assert sorted(p.name for p in (root / split).iterdir()) == names
        for name in names:
            files = sorted((root / split / name).iterdir())
            assert [f.name for f in files] == [f"{i}_100.jpg" for i in range(per_class)]
            with Image.open(files[0]) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (100, 100))


def test_fruits_twin_has_a_real_name_for_each_of_the_books_120_classes(tmp_path):
    assert len(set(synth.FRUIT_NAMES)) == len(synth.FRUIT_NAMES) >= 120
    with pytest.raises(ValueError, match="classes must be between 1 and"):
        synth.fruits(tmp_path, classes=len(synth.FRUIT_NAMES) + 1)


def test_ibm_twin_has_the_real_header_and_number_formats(tmp_path):
    lines = synth.ibm(tmp_path / "IBM.csv", rows=300, seed=2).read_text().splitlines()
    assert lines[0] == "Date,Close, Volume, Open, High, Low"
    assert len(lines) == 301
    price = r"\d+(\.\d?[1-9])?"  # at most two decimals, never a trailing zero
    row = re.compile(rf"\d{{1,2}}/\d{{1,2}}/\d{{4}},{price},\d+,{price},{price},{price}")
    assert [line for line in lines[1:] if not row.fullmatch(line)] == []
    assert lines[1].startswith("1/24/2020,")
    table = pd.read_csv(tmp_path / "IBM.csv")
    dates = pd.to_datetime(table["Date"], format="%m/%d/%Y")
    assert dates.is_monotonic_decreasing and dates.is_unique  # newest first, as the book's
    assert (table[" High"] >= table[["Close", " Open"]].max(axis=1)).all()
    assert (table[" Low"] <= table[["Close", " Open"]].min(axis=1)).all()


def test_ibm_twin_has_the_real_files_header_and_trading_days(tmp_path):
    real = real_file("IBM.csv").read_text().splitlines()
    twin = synth.ibm(tmp_path / "IBM.csv").read_text().splitlines()
    assert twin[0] == real[0]
    assert [line.split(",")[0] for line in twin] == [line.split(",")[0] for line in real]


def test_amazon_twin_csvs_have_the_book_columns_balanced_labels_and_quoting(tmp_path):
    folder = synth.amazon_reviews(tmp_path, train=40, test=10, seed=4)
    assert folder == tmp_path
    reviews = []
    for name, n in (("Amazon_reviews_train.csv", 40), ("Amazon_reviews_test.csv", 10)):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert text.splitlines()[0] == "review_text,label"
        rows = list(csv.reader(io.StringIO(text)))[1:]
        assert len(rows) == n and all(len(row) == 2 for row in rows)
        assert sorted(int(label) for _, label in rows) == [0] * (n // 2) + [1] * (n // 2)
        assert pd.read_csv(tmp_path / name)["review_text"].tolist() == [r for r, _ in rows]
        reviews += [review for review, _ in rows]
    # commas and quotes inside reviews: the CSV quoting is exercised, not just assumed
    assert any("," in review for review in reviews)
    assert any('"' in review for review in reviews)


def test_glove_twin_is_word2vec_text_that_gensim_would_accept(tmp_path):
    lines = synth.glove(tmp_path / "g.txt", dim=50, seed=5).read_text("utf-8").splitlines()
    count, dim = map(int, lines[0].split(" "))
    assert (count, dim) == (len(lines) - 1, 50)
    assert count >= 500
    fields = [line.split(" ") for line in lines[1:]]
    assert {len(f) for f in fields} == {dim + 1}
    words = [f[0] for f in fields]
    assert len(set(words)) == count and set(BOOK_WORDS) <= set(words)
    assert all(re.fullmatch(r"-?\d+\.\d{6}", x) for f in fields for x in f[1:])
    assert np.array([f[1:] for f in fields], dtype=float).shape == (count, dim)


def test_gensim_reads_the_glove_twin_as_word2vec_text(tmp_path):
    keyed_vectors = pytest.importorskip("gensim.models").KeyedVectors
    path = synth.glove(tmp_path / "glove.6B.100d.w2v.txt", seed=0)
    vectors = keyed_vectors.load_word2vec_format(str(path), binary=False)
    assert vectors.vector_size == 100 and set(BOOK_WORDS) <= set(vectors.key_to_index)
    best, _ = vectors.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0]
    assert best == "queen"


def test_glove_twin_takes_a_vocabulary_of_single_tokens(tmp_path):
    path = synth.glove(tmp_path / "g.txt", words=["king", "zyzzyva", "king"], dim=4)
    lines = path.read_text().splitlines()
    assert lines[0] == "2 4" and [line.split()[0] for line in lines[1:]] == ["king", "zyzzyva"]
    with pytest.raises(ValueError, match="one token without spaces"):
        synth.glove(tmp_path / "bad.txt", words=["mad hatter"])


def test_write_all_lays_every_twin_out_like_the_data_mirror(tmp_path):
    paths = synth.write_all(tmp_path, seed=0, small=True)
    assert paths == {
        "sonar": tmp_path / "sonar.csv",
        "fashion_mnist": tmp_path,
        "fruits": tmp_path / "fruits360_filtered",
        "ibm": tmp_path / "IBM.csv",
        "amazon_reviews": tmp_path,
        "glove": tmp_path / "glove.6B.100d.w2v.txt",
    }
    expected = [*(f"datasets/fashion-mnist/{f}" for f in synth.FASHION_MNIST_FILES)]
    expected += ["sonar.csv", "IBM.csv", "Amazon_reviews_train.csv", "Amazon_reviews_test.csv"]
    expected += ["glove.6B.100d.w2v.txt", "fruits360_filtered/Test/Banana/1_100.jpg"]
    assert all((tmp_path / relpath).is_file() for relpath in expected)


# -- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(synth.TWINS))
def test_same_seed_writes_the_same_bytes_and_another_seed_other_bytes(tmp_path, name):
    twin = synth.TWINS[name]
    for folder, seed in (("a", 7), ("b", 7), ("c", 8)):
        twin(tmp_path / folder, seed, True)
    a, b, c = (tree_bytes(tmp_path / folder) for folder in "abc")
    assert a and a == b
    assert a.keys() == c.keys()
    assert all(a[relpath] != c[relpath] for relpath in a)


def test_write_all_gives_the_same_bytes_in_a_process_with_another_hash_seed(tmp_path):
    """Nothing depends on set or str-hash order, which changes between interpreters."""
    synth.write_all(tmp_path / "here", seed=9, small=True)
    code = (
        "from dlgrade import synth; "
        f"synth.write_all({str(tmp_path / 'there')!r}, seed=9, small=True)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120
    )
    assert done.returncode == 0
    assert tree_bytes(tmp_path / "here") == tree_bytes(tmp_path / "there")


# -- learnability (cheap models; benchmarks/synth_learnability.py measured them) ------------


def test_fashion_twin_is_learnable_by_nearest_neighbours(tmp_path):
    # measured over seeds 0-4: 0.962-0.974 (a 3-epoch Conv2D-16 CNN: 0.944-0.978); chance 0.1
    home = synth.fashion_mnist(tmp_path, train=2000, test=500, seed=0)
    x_train, y_train, x_test, y_test = fashion_arrays(home)

    def pooled(x):
        return x.reshape(len(x), 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(x), -1) / 255

    model = KNeighborsClassifier(5).fit(pooled(x_train), y_train)
    assert model.score(pooled(x_test), y_test) > 0.85


def test_fruits_twin_is_learnable_from_thumbnails(tmp_path):
    # measured over seeds 0-4: 1.0 (a 5-epoch two-block CNN: 1.0); chance 0.2
    root = synth.fruits(tmp_path, classes=5, train_per_class=40, test_per_class=10, seed=0)

    def thumbnails(split):
        x, y = [], []
        for class_dir in sorted((root / split).iterdir()):
            for file in sorted(class_dir.iterdir()):
                with Image.open(file) as image:
                    x.append(np.asarray(image.resize((20, 20))).ravel() / 255)
                y.append(class_dir.name)
        return np.array(x), np.array(y)

    model = LogisticRegression(max_iter=1000).fit(*thumbnails("Training"))
    assert model.score(*thumbnails("Test")) > 0.9


def test_amazon_twin_is_learnable_from_a_bag_of_words(tmp_path):
    # measured over seeds 0-4: 0.976-0.994; chance 0.5
    synth.amazon_reviews(tmp_path, train=2000, test=500, seed=0)
    train = pd.read_csv(tmp_path / "Amazon_reviews_train.csv")
    test = pd.read_csv(tmp_path / "Amazon_reviews_test.csv")
    words = CountVectorizer().fit(train.review_text)
    model = LogisticRegression(max_iter=1000)
    model.fit(words.transform(train.review_text), train.label)
    assert model.score(words.transform(test.review_text), test.label) > 0.9


def test_ibm_twin_rewards_a_lookback_model_over_the_training_mean(tmp_path):
    # measured over seeds 0-4: RMSE ratio linear / mean 0.021-0.084 (real IBM.csv: 0.077)
    close = pd.read_csv(synth.ibm(tmp_path / "IBM.csv"))["Close"].to_numpy()[::-1]
    cut = int(len(close) * 0.75)
    scaler = MinMaxScaler().fit(close[:cut, None])
    train, test = (scaler.transform(part[:, None]).ravel() for part in (close[:cut], close[cut:]))

    def lookback(series, k=10):
        return np.stack([np.r_[np.zeros(s), series[:-s]] for s in range(1, k + 1)], axis=1)

    model = LinearRegression().fit(lookback(train), train)
    linear = np.sqrt(np.mean((model.predict(lookback(test)) - test) ** 2))
    mean = np.sqrt(np.mean((train.mean() - test) ** 2))
    assert linear < 0.25 * mean


def test_glove_twin_puts_related_words_closer_than_unrelated_ones(tmp_path):
    lines = synth.glove(tmp_path / "g.txt", seed=0).read_text().splitlines()[1:]
    v = {word: np.array(rest, dtype=float) for word, *rest in (ln.split(" ") for ln in lines)}

    def cos(a, b):
        return v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b])

    # measured over seeds 0-4: king-queen 0.52-0.73, king-computer -0.07-0.07, queen 5 of 5
    assert cos("king", "queen") > cos("king", "computer") + 0.2
    assert cos("rabbit", "hare") > cos("rabbit", "football") + 0.3
    assert cos("white", "rabbit") > cos("white", "football")  # both lean to Wonderland
    # as gensim's most_similar(positive=["king", "woman"], negative=["man"]) ranks them
    unit = {word: vector / np.linalg.norm(vector) for word, vector in v.items()}
    analogy = unit["king"] - unit["man"] + unit["woman"]
    candidates = set(unit) - {"king", "man", "woman"}
    assert max(candidates, key=lambda w: unit[w] @ analogy) == "queen"


# -- through Keras's own loaders (each starts TensorFlow in a subprocess) -----------------


@pytest.mark.slow
def test_keras_fashion_mnist_load_data_reads_the_twin_offline(tmp_path):
    home = synth.fashion_mnist(tmp_path / "keras", train=120, test=40, seed=0)
    code = (
        NO_NETWORK
        + """
import json, keras
(x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
print(json.dumps({"shapes": [x.shape, y.shape, xt.shape, yt.shape],
                  "dtypes": [str(a.dtype) for a in (x, y, xt, yt)],
                  "labels": sorted(set(y.tolist()) | set(yt.tolist())),
                  "sum": int(x.sum(dtype="int64"))}))
"""
    )
    env = {"KERAS_HOME": str(home), "HOME": str(tmp_path / "home")}
    got = run_python(code, env, cwd=tmp_path)
    assert got["shapes"] == [[120, 28, 28], [120], [40, 28, 28], [40]]
    assert got["dtypes"] == ["uint8"] * 4
    assert got["labels"] == list(range(10))
    assert got["sum"] == int(fashion_arrays(home)[0].sum(dtype="int64"))


@pytest.mark.slow
def test_image_dataset_from_directory_reads_the_fruits_twin_with_one_hot_labels(tmp_path):
    root = synth.fruits(tmp_path, classes=3, train_per_class=6, test_per_class=2, seed=0)
    code = f"""
import json, keras, numpy as np
train = keras.utils.image_dataset_from_directory(
    {str(root / "Training")!r}, image_size=(100, 100), batch_size=8,
    label_mode="categorical", shuffle=False)
images, labels = next(iter(train))
print(json.dumps({{"classes": train.class_names, "images": list(images.shape),
                  "labels": labels.numpy().tolist(), "max": float(np.max(images))}}))
"""
    got = run_python(code, {"HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert got["classes"] == ["Apple Braeburn", "Banana", "Cherry 1"]
    assert got["images"] == [8, 100, 100, 3]
    assert got["max"] > 200  # pixels arrive unscaled, as the book's rescale step expects
    labels = np.array(got["labels"])
    assert labels.shape == (8, 3) and (labels.sum(axis=1) == 1).all()
    assert labels.argmax(axis=1).tolist() == [0] * 6 + [1] * 2  # first class, then the next


@pytest.mark.slow
def test_the_book_scale_twins_have_the_real_datasets_shapes_and_sizes(tmp_path):
    """Code that hard-codes the book's numbers runs on the twins (issue 12)."""
    synth.write_all(tmp_path, seed=0)
    x_train, y_train, x_test, y_test = fashion_arrays(tmp_path)
    assert x_train.shape == (60_000, 28, 28) and x_test.shape == (10_000, 28, 28)
    assert sorted(set(y_train.tolist())) == list(range(10))
    training = sorted((tmp_path / "fruits360_filtered" / "Training").iterdir())
    test = sorted((tmp_path / "fruits360_filtered" / "Test").iterdir())
    assert len(training) == len(test) == 120
    assert sum(len(list(folder.iterdir())) for folder in training) == 11_398
    assert sum(len(list(folder.iterdir())) for folder in test) == 4_752
    with Image.open(next(training[0].iterdir())) as image:
        assert image.size == (100, 100) and image.mode == "RGB"
    assert len(pd.read_csv(tmp_path / "sonar.csv")) == 208
    assert len(pd.read_csv(tmp_path / "IBM.csv")) == 2_518
    for split in ("train", "test"):
        assert len(pd.read_csv(tmp_path / f"Amazon_reviews_{split}.csv")) == 25_000
