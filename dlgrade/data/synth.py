"""Synthetic twins: small, learnable datasets in the real on-disk formats, one seed each.

Tests and the ``standard`` tier read these instead of the book's data, so neither needs the
network. Each twin is written in the format its real loader reads (IDX gz under
``KERAS_HOME``, a Fruits-360 folder tree of JPEGs, the book's CSVs, word2vec text), and is
a pure function of its seed: the same seed writes the same bytes.

Learnability, measured by ``benchmarks/synth_learnability.py`` (seeds 0-4, default scale,
TensorFlow 2.21 / Keras 3.15 on a 2-core CPU; min / mean / max over the seeds):

=====================================================  =====  =====  =====  ===================
twin: reference model, on the twin's held-out part       min   mean    max  note
=====================================================  =====  =====  =====  ===================
sonar: the 2.01 reference MLP, 30 epochs (hidden split)  1.000  1.000  1.000  chance 0.5
fashion_mnist: Conv2D 16, MaxPool, Dense 10; 3 epochs  0.944  0.956  0.978  chance 0.1
fashion_mnist: 5-nearest-neighbours, 14x14 pixels      0.962  0.967  0.974  chance 0.1
fruits, 5 classes: two-block CNN, 5 epochs             1.000  1.000  1.000  chance 0.2
fruits: LogisticRegression, 20x20 thumbnails           1.000  1.000  1.000  chance 0.2
amazon_reviews: CountVectorizer + LogisticRegression   0.976  0.984  0.994  chance 0.5
amazon_reviews: the 6.01 reference LSTM, 3 ep. batch 32 0.958  0.966  0.978  seeds 0-5
ibm: scaled test RMSE, linear on lookback 10           0.009  0.027  0.039  real IBM.csv: 0.023
ibm: scaled test RMSE, predicting the train mean       0.406  0.471  0.609  real IBM.csv: 0.296
ibm: ratio linear / train mean                         0.021  0.059  0.084  real IBM.csv: 0.077
glove: cos(white, rabbit)                               0.18   0.28   0.35
glove: cos(mad, hatter)                                 0.12   0.25   0.34
glove: cos(king, queen)                                 0.52   0.62   0.73
glove: cos(king, computer)                             -0.07  -0.01   0.07  unrelated
glove: cos(white rabbit, mad hatter)                    0.32   0.41   0.54  real GloVe: 0.45
glove: king - man + woman ranks queen first              5/5                seeds
=====================================================  =====  =====  =====  ===================

``write_all`` sizes and times: see the registry below.
"""

from __future__ import annotations

import colorsys
import csv
import gzip
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)
from PIL import Image

__all__ = [
    "FASHION_MNIST_FILES",
    "FRUIT_NAMES",
    "IBM_HEADER",
    "TWINS",
    "amazon_reviews",
    "fashion_mnist",
    "fruits",
    "glove",
    "ibm",
    "sonar",
    "write_all",
]

# -- sonar -------------------------------------------------------------------------------


def sonar(file: Path, *, rows: int = 208, seed: int = 0) -> Path:
    """A learnable sonar-shaped CSV: 60 band energies in [0, 1], Class ``Mine`` or ``Rock``.

    Mines and rocks differ in the mean of a few bands (as in the real data, where the
    classes differ mostly in mid-frequency energy), plus noise: an MLP learns it easily.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=rows)
    bands = np.linspace(0, 1, 60)
    base = 0.25 + 0.15 * np.sin(6 * bands)
    shift = 0.12 * np.exp(-((bands - 0.4) ** 2) / 0.01)
    features = base + np.outer(2 * labels - 1, shift) + rng.normal(0, 0.06, size=(rows, 60))
    features = np.clip(features, 0.0, 1.0)
    header = ",".join([f"attribute_{i}" for i in range(1, 61)] + ["Class"])
    lines = [header]
    for row, label in zip(features, labels, strict=True):
        lines.append(",".join(f"{v:.4f}" for v in row) + ("," + ("Mine" if label else "Rock")))
    file.write_text("\n".join(lines) + "\n")
    return file


# -- Fashion-MNIST -----------------------------------------------------------------------

# The names keras.datasets.fashion_mnist.load_data() looks for, in the order it reads them.
FASHION_MNIST_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_IDX_LABELS_MAGIC = 2049
_IDX_IMAGES_MAGIC = 2051
_SIDE = 28


def _box(u, v, x0, x1, y0, y1):
    """Pixels whose garment coordinates fall inside an axis-aligned rectangle."""
    return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)


def _tshirt(u, v):
    """A torso with short, wide sleeves."""
    return _box(u, v, -6, 6, -9, 11) | _box(u, v, -11, 11, -9, -4)


def _trouser(u, v):
    """Two legs under a waistband."""
    return _box(u, v, -6, -1, -11, 12) | _box(u, v, 1, 6, -11, 12) | _box(u, v, -6, 6, -11, -6)


def _pullover(u, v):
    """A torso with long sleeves hanging beside it."""
    sleeves = _box(u, v, -10, -7, -9, 10) | _box(u, v, 7, 10, -9, 10)
    return _box(u, v, -6, 6, -9, 11) | _box(u, v, -10, 10, -9, -6) | sleeves


def _dress(u, v):
    """A trapezoid that widens towards the hem."""
    return (v >= -11) & (v <= 12) & (np.abs(u) <= 2.5 + 0.4 * (v + 11))


def _coat(u, v):
    """A long, wide pullover split by a dark zip."""
    sleeves = _box(u, v, -11, -8, -10, 12) | _box(u, v, 8, 11, -10, 12)
    body = _box(u, v, -7, 7, -10, 13) | _box(u, v, -11, 11, -10, -7) | sleeves
    return body & ~_box(u, v, -0.9, 0.9, -10, 13)


def _sandal(u, v):
    """A sole with thin straps above it, all in the lower half."""
    straps = _box(u, v, -10, 10, 3, 4.5) | _box(u, v, -11, 11, 6, 7.5)
    diagonal = (np.abs(v - 2 + 0.5 * u) < 1.0) & (np.abs(u) < 8)
    return _box(u, v, -12, 12, 9, 11) | straps | diagonal


def _shirt(u, v):
    """A torso with mid-length sleeves, a V collar and a dark button line."""
    body = _box(u, v, -6, 6, -9, 11) | _box(u, v, -9, 9, -9, 0)
    collar = (v >= -9) & (v <= -3) & (np.abs(u) < (-3 - v) * 0.6)
    buttons = (np.abs(u) < 0.8) & (np.abs(((v + 20) % 4) - 2) < 0.7) & (v > -3)
    return body & ~collar & ~buttons


def _sneaker(u, v):
    """A low shoe, higher at the heel, with a dark line above the sole."""
    shoe = (np.abs(u) <= 12) & (v <= 10) & (v >= 2 + 0.3 * (u + 12))
    return shoe & ~_box(u, v, -12, 12, 7.5, 8.3)


def _bag(u, v):
    """A square body under an arched handle."""
    ring = (u / 6) ** 2 + ((v + 3) / 7) ** 2
    handle = (ring >= 0.65) & (ring <= 1.0) & (v < -3)
    return _box(u, v, -10, 10, -3, 11) | handle


def _ankle_boot(u, v):
    """An L: a tall shaft at the heel and a foot pointing right."""
    return _box(u, v, -9, 1, -10, 10) | _box(u, v, -9, 11, 3, 10)


# In Fashion-MNIST's label order: 0 T-shirt/top ... 9 Ankle boot.
_GARMENTS = (
    _tshirt,
    _trouser,
    _pullover,
    _dress,
    _coat,
    _sandal,
    _shirt,
    _sneaker,
    _bag,
    _ankle_boot,
)


def _garment_images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """28x28 uint8 images, one per label, each its class's shape moved, stretched and noised."""
    n = len(labels)
    grid = np.arange(_SIDE) - (_SIDE - 1) / 2
    dx, dy = rng.uniform(-3, 3, size=(2, n, 1, 1))
    sx, sy = rng.uniform(0.8, 1.2, size=(2, n, 1, 1))
    turn = rng.uniform(-0.2, 0.2, size=(n, 1, 1))  # radians, about 11 degrees either way
    x, y = grid[None, None, :] - dx, grid[None, :, None] - dy
    u = (x * np.cos(turn) + y * np.sin(turn)) / sx
    v = (y * np.cos(turn) - x * np.sin(turn)) / sy
    inside = np.zeros((n, _SIDE, _SIDE), dtype=bool)
    for label, shape in enumerate(_GARMENTS):
        rows = labels == label
        inside[rows] = shape(u[rows], v[rows])
    brightness = rng.uniform(110, 250, size=(n, 1, 1))
    # a faint weave, so that no two garments of a class are flat copies of each other
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    weave = 1 + 0.1 * np.sin(1.3 * u + 0.7 * v + phase)
    pixels = np.where(inside, brightness * weave, 0.0)
    pixels += rng.normal(0, 25, size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _balanced_labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """``n`` labels in shuffled order, every class as often as ``n`` allows."""
    return rng.permutation(np.arange(n) % classes).astype(np.uint8)


def _write_gz(path: Path, payload: bytes) -> None:
    """Gzip with a zero timestamp, so that the same payload always gives the same bytes."""
    path.write_bytes(gzip.compress(payload, mtime=0))


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", _IDX_LABELS_MAGIC, len(labels)) + labels.tobytes()


def _idx_images(images: np.ndarray) -> bytes:
    header = struct.pack(">IIII", _IDX_IMAGES_MAGIC, len(images), _SIDE, _SIDE)
    return header + images.tobytes()


#: images drawn at a time: the drawing works on float arrays 8 times the images' size
_CHUNK = 5_000


def fashion_mnist(
    out_dir: Path | str, *, train: int = 60_000, test: int = 10_000, seed: int = 0
) -> Path:
    """Write Fashion-MNIST's four IDX gz files under ``out_dir/datasets/fashion-mnist``.

    The real sizes by default (60,000 + 10,000), so code written for the real data (the
    book's ``reshape(60000, 28, 28, 1)``) runs on the twin. Returns ``out_dir``: set
    ``KERAS_HOME`` to it (before Keras is imported) and
    ``keras.datasets.fashion_mnist.load_data()`` reads the twin, offline.
    """
    out_dir = Path(out_dir)
    folder = out_dir / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = iter(FASHION_MNIST_FILES)
    for n in (train, test):
        labels = _balanced_labels(rng, n, len(_GARMENTS))
        images = np.concatenate(
            [_garment_images(rng, labels[i : i + _CHUNK]) for i in range(0, n, _CHUNK)]
            or [np.zeros((0, _SIDE, _SIDE), np.uint8)]
        )
        _write_gz(folder / next(names), _idx_labels(labels))
        _write_gz(folder / next(names), _idx_images(images))
    return out_dir


# -- Fruits-360 ----------------------------------------------------------------------------

# (name, hue, saturation, value, aspect, size, stem): the first classes are drawn to look
# like their fruit and to differ from each other in colour and outline.
_DRAWN_FRUITS = (
    ("Apple Braeburn", 0.00, 0.80, 0.75, 1.00, 0.80, True),
    ("Banana", 0.14, 0.85, 0.95, 3.00, 0.55, False),
    ("Cherry 1", 0.97, 0.90, 0.55, 1.00, 0.45, True),
    ("Avocado", 0.22, 0.70, 0.35, 0.70, 0.70, False),
    ("Blueberry", 0.65, 0.60, 0.45, 1.00, 0.35, False),
    ("Lemon", 0.15, 0.90, 0.95, 1.35, 0.60, False),
    ("Orange", 0.08, 0.90, 0.95, 1.00, 0.75, False),
    ("Kiwi", 0.09, 0.60, 0.45, 1.25, 0.60, False),
    ("Grape Blue", 0.75, 0.60, 0.40, 0.90, 0.40, True),
    ("Pear", 0.20, 0.70, 0.80, 0.65, 0.70, True),
    ("Limes", 0.30, 0.80, 0.60, 1.15, 0.55, False),
    ("Strawberry", 0.99, 0.85, 0.85, 0.85, 0.60, True),
)

# More real Fruits-360 class names, for twins with many classes (the book's has 120).
_MORE_FRUIT_NAMES = """
Apple Crimson Snow|Apple Golden 1|Apple Golden 2|Apple Golden 3|Apple Granny Smith|
Apple Pink Lady|Apple Red 1|Apple Red 2|Apple Red 3|Apple Red Delicious|Apple Red Yellow 1|
Apple Red Yellow 2|Apricot|Avocado ripe|Banana Lady Finger|Banana Red|Beetroot|Cactus fruit|
Cantaloupe 1|Cantaloupe 2|Carambula|Cauliflower|Cherry 2|Cherry Rainier|Cherry Wax Black|
Cherry Wax Red|Cherry Wax Yellow|Chestnut|Clementine|Cocos|Corn|Corn Husk|Cucumber Ripe|
Cucumber Ripe 2|Dates|Eggplant|Fig|Ginger Root|Granadilla|Grape Pink|Grape White|
Grape White 2|Grape White 3|Grape White 4|Grapefruit Pink|Grapefruit White|Guava|Hazelnut|
Huckleberry|Kaki|Kohlrabi|Kumquats|Lemon Meyer|Lychee|Mandarine|Mango|Mango Red|Mangostan|
Maracuja|Melon Piel de Sapo|Mulberry|Nectarine|Nectarine Flat|Nut Forest|Nut Pecan|
Onion Red|Onion Red Peeled|Onion White|Papaya|Passion Fruit|Peach|Peach 2|Peach Flat|
Pear 2|Pear Abate|Pear Forelle|Pear Kaiser|Pear Monster|Pear Red|Pear Stone|Pear Williams|
Pepino|Pepper Green|Pepper Orange|Pepper Red|Pepper Yellow|Physalis|Physalis with Husk|
Pineapple|Pineapple Mini|Pitahaya Red|Plum|Plum 2|Plum 3|Pomegranate|Pomelo Sweetie|
Potato Red|Potato Red Washed|Potato Sweet|Potato White|Quince|Rambutan|Raspberry|
Redcurrant|Salak|Strawberry Wedge|Tamarillo|Tangelo|Tomato 1|Tomato 2|Tomato 3|Tomato 4|
Tomato Cherry Red|Tomato Heart|Tomato Maroon|Tomato Yellow|Tomato not Ripened|Walnut|
Watermelon
"""

FRUIT_NAMES: tuple[str, ...] = tuple(f[0] for f in _DRAWN_FRUITS) + tuple(
    name.strip() for name in _MORE_FRUIT_NAMES.replace("\n", "").split("|")
)
_FRUIT_SIDE = 100
_GOLDEN = 0.6180339887


def _fruit_spec(index: int) -> tuple[float, float, float, float, float, bool]:
    """How class ``index`` is drawn: its own entry, or a golden-ratio spread of the rest."""
    if index < len(_DRAWN_FRUITS):
        return _DRAWN_FRUITS[index][1:]
    spread = (index * np.array([_GOLDEN, 0.37, 0.53, 0.71, 0.29])) % 1
    hue, saturation, value, aspect, size = spread.tolist()
    return (
        hue,
        0.5 + 0.4 * saturation,
        0.4 + 0.5 * value,
        0.6 + 1.2 * aspect,
        0.4 + 0.4 * size,
        index % 2 == 0,
    )


def _fruit_image(rng: np.random.Generator, spec: tuple) -> np.ndarray:
    """One 100x100 RGB fruit: a shaded, tilted ellipse of the class's colour on white."""
    hue, saturation, value, aspect, size, stem = spec
    grid = np.arange(_FRUIT_SIDE, dtype=float)
    cx, cy = _FRUIT_SIDE / 2 + rng.uniform(-8, 8, size=2)
    radius = size * 50 * rng.uniform(0.9, 1.1)
    a, b = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    # ellipses longer than the frame are shrunk so the whole fruit stays visible
    a, b = (a, b) if a <= 46 else (46.0, b * 46 / a)
    angle = 0.3 * (aspect > 2) + rng.uniform(-0.3, 0.3)
    x, y = grid[None, :] - cx, grid[:, None] - cy
    xr = x * np.cos(angle) + y * np.sin(angle)
    yr = -x * np.sin(angle) + y * np.cos(angle)
    rho = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
    alpha = np.clip((1 - rho) * min(a, b) + 0.5, 0, 1)  # one pixel of anti-aliasing
    jittered = (hue + rng.normal(0, 0.012)) % 1.0
    colour = np.array(colorsys.hsv_to_rgb(jittered, saturation, value)) * 255
    glint = np.exp(-((xr + 0.35 * a) ** 2 + (yr + 0.35 * b) ** 2) / (0.08 * radius**2))
    shade = (1 - 0.35 * np.minimum(rho, 1) ** 2)[..., None] * colour + 60 * glint[..., None]
    if stem:
        stalk = (np.abs(xr) < 1.5) & (yr < -b + 3) & (yr > -b - 7)
        alpha = np.maximum(alpha, stalk)
        shade[stalk] = (90, 60, 30)
    pixels = alpha[..., None] * shade + (1 - alpha[..., None]) * 255
    pixels += rng.normal(0, 3, size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


#: the book's Fruits-360 subset: 11,398 training and 4,752 test images over 120 classes
FRUITS_TRAINING, FRUITS_TEST = 11_398, 4_752


def _spread(total: int, classes: int) -> list[int]:
    """``total`` images over ``classes`` classes, as evenly as they go."""
    return [total // classes + (index < total % classes) for index in range(classes)]


def fruits(
    out_dir: Path | str,
    *,
    classes: int = 120,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a Fruits-360-like ``fruits360_filtered/{Training,Test}/<class>/<i>_100.jpg`` tree.

    By default the book's shape: 120 classes, 11,398 training and 4,752 test images
    (spread evenly); ``*_per_class`` sets a count per class instead. Returns the
    ``fruits360_filtered`` folder.
    """
    if not 1 <= classes <= len(FRUIT_NAMES):
        raise ValueError(f"classes must be between 1 and {len(FRUIT_NAMES)}, got {classes}")
    root = Path(out_dir) / "fruits360_filtered"
    rng = np.random.default_rng(seed)
    counts = {
        "Training": [train_per_class] * classes
        if train_per_class is not None
        else _spread(FRUITS_TRAINING, classes),
        "Test": [test_per_class] * classes
        if test_per_class is not None
        else _spread(FRUITS_TEST, classes),
    }
    for split, per_class in counts.items():
        for index, name in enumerate(FRUIT_NAMES[:classes]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class[index]):
                image = Image.fromarray(_fruit_image(rng, _fruit_spec(index)))
                image.save(folder / f"{i}_100.jpg", format="JPEG", quality=95)
    return root


# -- IBM stock prices ----------------------------------------------------------------------

IBM_HEADER = "Date,Close, Volume, Open, High, Low"
_IBM_LAST_DAY = "2020-01-24"  # the real file's newest row
# Days the exchange closed outside its holiday rules (Hurricane Sandy, President Bush's funeral).
_NYSE_CLOSURES = ("2012-10-29", "2012-10-30", "2018-12-05")


class _NyseCalendar(AbstractHolidayCalendar):
    """The NYSE's holidays of 2010-2020 (Juneteenth came later)."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ]


def _trading_days(rows: int) -> pd.DatetimeIndex:
    """The last ``rows`` trading days up to 1/24/2020, oldest first: the real file's dates."""
    first_guess = pd.Timestamp(_IBM_LAST_DAY) - pd.Timedelta(days=2 * rows + 30)
    holidays = (
        _NyseCalendar()
        .holidays(first_guess, _IBM_LAST_DAY)
        .append(pd.DatetimeIndex(_NYSE_CLOSURES))
    )
    return pd.bdate_range(end=_IBM_LAST_DAY, periods=rows, freq="C", holidays=holidays)


def _price(value: float) -> str:
    """A price as the real file writes it: two decimals at most, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _us_date(day: pd.Timestamp) -> str:
    """``1/24/2020``: month/day/year without leading zeros, as in the real file."""
    return f"{day.month}/{day.day}/{day.year}"


def _close_prices(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Oldest-first closes: a steady trend, yearly and quarterly waves, and a slow wander.

    The wander reverts to the trend (rather than walking freely) so that every seed's last
    quarter sits away from the first three quarters' mean, as the real series does: a
    lookback model then beats predicting the training mean by a wide margin on every seed.
    """
    t = np.arange(rows)
    wander = np.zeros(rows)
    shocks = rng.normal(0, 0.006, size=rows)  # about 0.7 % a day, the real file's is 1.2 %
    for i in range(1, rows):
        wander[i] = 0.98 * wander[i - 1] + shocks[i]
    trend = rng.choice([-1, 1]) * rng.uniform(0.3, 0.6) * t / rows
    phases = rng.uniform(0, 2 * np.pi, size=2)
    waves = 0.08 * np.sin(2 * np.pi * t / 252 + phases[0])
    waves += 0.03 * np.sin(2 * np.pi * t / 63 + phases[1])
    return rng.uniform(120, 180) * np.exp(trend + waves + wander)


def ibm(path: Path | str, *, rows: int = 2518, seed: int = 0) -> Path:
    """Write an ``IBM.csv`` twin: trading days ending 1/24/2020, newest first, the real header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    close = _close_prices(rng, rows)
    previous = np.concatenate([[close[0]], close[:-1]])
    open_ = previous * np.exp(rng.normal(0, 0.005, size=rows))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, size=rows)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, size=rows)))
    volume = np.rint(np.exp(rng.normal(np.log(5e6), 0.35, size=rows))).astype(np.int64)
    days = _trading_days(rows)
    lines = [IBM_HEADER]
    for i in reversed(range(rows)):  # the arrays run oldest first, the file newest first
        fields = [_us_date(days[i]), _price(close[i]), str(volume[i])]
        fields += [_price(open_[i]), _price(high[i]), _price(low[i])]
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


# -- Amazon reviews ------------------------------------------------------------------------

_POSITIVE = """great excellent love loved wonderful amazing best perfect beautiful fantastic
awesome enjoyed recommend happy superb brilliant favorite pleased delightful solid impressive
gorgeous reliable fun charming sturdy classic masterpiece worth glad""".split()
_NEGATIVE = """terrible awful waste poor worst boring disappointed broken useless horrible
refund cheap junk bad annoying mediocre flimsy returned defective disappointing dull
garbage rubbish ugly unreliable overpriced fake wrong regret""".split()
_NEUTRAL = """the this it was and i a of to for with but really just after my when about one
is have had very so on that they in product book album movie game camera headphones blender
case charger novel story songs battery quality price seller shipping size color box time
first read played bought ordered arrived used week month year kids gift version""".split()
_QUIRKS = ("don't", "isn't", "it's", "I'd", '"honestly"', "5-star", "(again)")
_AMAZON_COLUMNS = ("review_text", "label")


def _sentence_case(text: str) -> str:
    """Upper-case the first letter only (``str.capitalize`` would lower-case an ``I'd``)."""
    return text[:1].upper() + text[1:]


def _review(rng: np.random.Generator, label: int) -> str:
    """One review: a title, a colon, then sentences of filler spiced with sentiment words."""
    own, other = (_POSITIVE, _NEGATIVE) if label else (_NEGATIVE, _POSITIVE)
    pools = (own, other, _QUIRKS, _NEUTRAL)
    lengths = rng.integers(5, 15, size=int(rng.integers(2, 6)))
    # a few opposite words in every review, so that no single word decides its label
    kinds = rng.choice(len(pools), size=3 + int(lengths.sum()), p=[0.18, 0.04, 0.02, 0.76])
    picks = rng.random(len(kinds))
    words = [
        pools[k][int(x * len(pools[k]))]
        for k, x in zip(kinds.tolist(), picks.tolist(), strict=True)
    ]
    title = " ".join([own[int(rng.integers(len(own)))], *words[:3]])
    sentences, start = [], 3
    for length in lengths:
        sentence = words[start : start + length]
        start += length
        if length > 6 and rng.random() < 0.5:
            sentence[int(rng.integers(2, length - 2))] += ","
        end = (".", ".", "!", "?")[int(rng.integers(4))]
        sentences.append(_sentence_case(" ".join(sentence)) + end)
    return f"{_sentence_case(title)}: {' '.join(sentences)}"


def _write_reviews(path: Path, rng: np.random.Generator, n: int) -> None:
    labels = _balanced_labels(rng, n, 2)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(_AMAZON_COLUMNS)
        for label in labels:
            writer.writerow((_review(rng, int(label)), int(label)))


def amazon_reviews(
    out_dir: Path | str, *, train: int = 25_000, test: int = 25_000, seed: int = 0
) -> Path:
    """Write ``Amazon_reviews_{train,test}.csv`` (``review_text,label``, balanced 0/1).

    The book's sizes by default: 25,000 reviews each."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    _write_reviews(out_dir / "Amazon_reviews_train.csv", rng, train)
    _write_reviews(out_dir / "Amazon_reviews_test.csv", rng, test)
    return out_dir


# -- GloVe in word2vec text format ---------------------------------------------------------

# Words of one cluster share a direction, so that neighbours and cosines mean something.
_CLUSTERS = {
    "function": """the of and to in a is that for it as was with be by on not i this are or
        his from at which but have an they you were there all we their has been would will
        if more when who so no can what out about up them its some could into than other
        then only over also my like do did""",
    "colour": """white black red blue green yellow pink purple orange brown grey gray gold
        silver violet scarlet crimson beige ivory maroon navy turquoise cyan magenta lavender
        golden pale dark bright colour""",
    "animal": """rabbit cat dog mouse hare turtle bird duck eagle owl fox wolf bear lion tiger
        horse cow pig sheep goat frog lizard snake fish crab lobster deer monkey elephant
        giraffe zebra squirrel hedgehog badger otter pigeon parrot dodo puppy kitten""",
    "royalty": """king queen prince princess duke duchess knave crown throne palace court royal
        kingdom emperor empress lord lady monarch majesty reign castle knight servant
        sovereign regal nobility baron countess heir ruler""",
    "people": """man woman boy girl he she him her father mother son daughter brother sister
        husband wife uncle aunt gentleman mr mrs sir madam nephew niece grandfather
        grandmother""",
    "mood": """mad angry furious crazy insane happy sad glad afraid nervous anxious cheerful
        curious puzzled confused frightened delighted sulky cross grumpy gloomy jolly merry
        miserable upset calm eager proud ashamed jealous""",
    "trade": """hatter baker cook gardener doctor lawyer teacher farmer soldier sailor painter
        tailor butcher carpenter judge executioner footman clerk merchant banker nurse pilot
        driver writer poet singer dancer actor shepherd blacksmith""",
    "food": """tea cake bread butter jam tarts soup milk sugar honey cheese apple pear cherry
        biscuit coffee wine treacle mushroom pepper salt egg eggs jelly pudding pie toffee
        custard marmalade lemon cream pastry sandwich breakfast dinner""",
    "place": """garden house forest river sea lake hill mountain valley field meadow wood tree
        flower rose daisy grass pool beach island road street town village city hall door
        window room table chair kitchen cottage well""",
    "body": """head eyes eye hand hands foot feet arm arms nose mouth ears ear neck hair face
        chin shoulders finger fingers legs knees heart tail whiskers""",
    "time": """day night morning evening afternoon hour minute week month year today tomorrow
        yesterday moment clock watch time late early soon always never often sometimes""",
    "number": """one two three four five six seven eight nine ten eleven twelve hundred
        thousand million first second third fourth fifth half dozen zero twenty thirty""",
    "verb": """run ran walk walked say talk talked think thought look looked see saw go went
        come came eat ate drink drank sleep slept sing sang dance danced read write wrote cry
        cried laugh laughed shout shouted fall fell grow grew shrink""",
    "game": """croquet game games play player cards card chess ball balls flamingo mallet match
        win lose score puzzle riddle riddles""",
    "size": """big small little large tiny huge tall short long wide narrow enormous giant high
        low deep thin fat heavy light strange odd queer""",
    "computer": """computer internet software data network phone email website digital online
        server program code system user device screen keyboard camera video radio television
        media file""",
    "sport": """football soccer tennis golf baseball basketball team coach league season goal
        cup championship olympic athlete stadium race runner swimming""",
    "wonderland": """alice wonderland dinah cheshire gryphon dormouse caterpillar jabberwock
        tweedledum tweedledee humpty dumpty carroll lewis looking glass""",
}
# Words that also lean towards Wonderland, whatever their own cluster: the book compares
# "white rabbit" with "mad hatter", which real GloVe rates 0.45 similar.
_WONDERLAND_TOO = set(
    """white rabbit mad hatter queen king duchess knave hare turtle cat
    tea tarts croquet flamingo hedgehog mushroom caterpillar""".split()
)
# (masculine, feminine): each pair shares a direction of its own and differs along one
# gender axis, so that king - man + woman lands nearest queen rather than duchess.
_GENDER_PAIRS = (
    ("king", "queen"),
    ("prince", "princess"),
    ("duke", "duchess"),
    ("emperor", "empress"),
    ("lord", "lady"),
    ("man", "woman"),
    ("boy", "girl"),
    ("he", "she"),
    ("him", "her"),
    ("father", "mother"),
    ("son", "daughter"),
    ("brother", "sister"),
    ("husband", "wife"),
    ("uncle", "aunt"),
    ("mr", "mrs"),
    ("sir", "madam"),
    ("nephew", "niece"),
    ("grandfather", "grandmother"),
)


def _glove_vocabulary() -> dict[str, str]:
    """Each default word and its cluster, in file order (first cluster wins a duplicate)."""
    vocabulary: dict[str, str] = {}
    for cluster, words in _CLUSTERS.items():
        for word in words.split():
            vocabulary.setdefault(word, cluster)
    return vocabulary


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    vector = rng.normal(size=dim)
    return vector / np.linalg.norm(vector)


def _word_vectors(rng: np.random.Generator, vocabulary: dict[str, str], dim: int) -> np.ndarray:
    """One vector per word: its cluster, a Wonderland lean, a gender axis and its own noise."""
    clusters = sorted(set(_CLUSTERS) | set(vocabulary.values()))
    centre = {name: _unit(rng, dim) for name in clusters}
    wonderland, gender = _unit(rng, dim), _unit(rng, dim)
    paired = {}
    for masculine, feminine in _GENDER_PAIRS:
        shared = _unit(rng, dim)
        paired[masculine], paired[feminine] = shared - 0.6 * gender, shared + 0.6 * gender
    vectors = np.empty((len(vocabulary), dim))
    for row, (word, cluster) in enumerate(vocabulary.items()):
        vector = centre[cluster] + 0.8 * _unit(rng, dim)
        vector += 0.8 * wonderland * (word in _WONDERLAND_TOO)
        vector += paired.get(word, 0.0)
        # GloVe 100d vectors have norms of about 4 to 7
        vectors[row] = vector / np.linalg.norm(vector) * rng.uniform(4, 7)
    return vectors


def glove(
    path: Path | str, *, words: Iterable[str] | None = None, dim: int = 100, seed: int = 0
) -> Path:
    """Write word vectors in word2vec *text* format (``"<count> <dim>"``, then one word a line).

    ``words`` replaces the default ~520-word vocabulary; a word the default clusters do not
    know joins one at random.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    known = _glove_vocabulary()
    if words is None:
        vocabulary = known
    else:
        vocabulary = {}
        for word in words:
            if not word or word != word.strip() or len(word.split()) != 1:
                raise ValueError(f"a word2vec word must be one token without spaces: {word!r}")
            vocabulary.setdefault(word, known.get(word) or str(rng.choice(list(_CLUSTERS))))
    vectors = _word_vectors(rng, vocabulary, dim)
    lines = [f"{len(vocabulary)} {dim}"]
    for word, vector in zip(vocabulary, vectors, strict=True):
        lines.append(word + " " + " ".join(f"{x:.6f}" for x in vector))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the registry --------------------------------------------------------------------------
#
# Each twin at the book's size (the default: what graders and `dlgrade data synth` use) or
# small (``small=True``: the same format and generator, a few files, for fast tests).
# Sizes and the time to write them (seed 0, 2-core CPU, one run): Fashion-MNIST 60,000 +
# 10,000 images, 41 MB, 25 s; Fruits-360 120 classes, 11,398 + 4,752 JPEGs, 75 MB, 32 s;
# Amazon reviews 25,000 + 25,000, 12 MB, 6 s; sonar 208 rows and IBM 2,518 rows (the real
# sizes) in well under a second. GloVe stays small (about 520 words of 100 dimensions, 0.5
# MB): the real file has 400,000 words (347 MB of text), and no check reads more than a
# few dozen words, so its size would only cost minutes.


def _twin_fashion_mnist(out_dir: Path, seed: int, small: bool) -> Path:
    """Fashion-MNIST under ``out_dir/datasets/fashion-mnist``: 60,000 + 10,000 images."""
    sizes = {"train": 200, "test": 50} if small else {}
    return fashion_mnist(out_dir, seed=seed, **sizes)


def _twin_fruits(out_dir: Path, seed: int, small: bool) -> Path:
    """120 classes, 11,398 training and 4,752 test images, as the book's subset."""
    sizes = {"classes": 3, "train_per_class": 4, "test_per_class": 2} if small else {}
    return fruits(out_dir, seed=seed, **sizes)


def _twin_ibm(out_dir: Path, seed: int, small: bool) -> Path:
    """``IBM.csv`` with the real file's 2,518 rows."""
    return ibm(Path(out_dir) / "IBM.csv", seed=seed)


def _twin_amazon_reviews(out_dir: Path, seed: int, small: bool) -> Path:
    """25,000 training and 25,000 test reviews, as the book's."""
    sizes = {"train": 40, "test": 10} if small else {}
    return amazon_reviews(out_dir, seed=seed, **sizes)


def _twin_glove(out_dir: Path, seed: int, small: bool) -> Path:
    """``glove.6B.100d.w2v.txt`` with the default vocabulary."""
    return glove(Path(out_dir) / "glove.6B.100d.w2v.txt", seed=seed)


def _twin_sonar(out_dir: Path, seed: int, small: bool) -> Path:
    """``sonar.csv`` with the real file's 208 rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return sonar(out_dir / "sonar.csv", seed=seed)


TWINS: dict[str, Callable[[Path, int, bool], Path]] = {
    "sonar": _twin_sonar,
    "fashion_mnist": _twin_fashion_mnist,
    "fruits": _twin_fruits,
    "ibm": _twin_ibm,
    "amazon_reviews": _twin_amazon_reviews,
    "glove": _twin_glove,
}


def write_all(out_dir: Path | str, *, seed: int = 0, small: bool = False) -> dict[str, Path]:
    """Write every twin into ``out_dir``, laid out like the data mirror; name -> its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: twin(out_dir, seed, small) for name, twin in TWINS.items()}
