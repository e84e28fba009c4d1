"""Synthetic twins in use: generated once into the cache, and read back by the trusted side.

A dataset the machine does not have is replaced by its twin (:mod:`dlgrade.data.synth`), in the
real on-disk format and at the real size, so code that hard-codes the book's numbers
(``reshape(60000, 28, 28, 1)``) runs on it. A full-size twin takes seconds to write, so it
is written once per machine into ``<cache>/twins/<name>-v<version>-s<seed>/`` (staged in a
temporary folder and renamed into place, so a half-written twin never counts) and every
worker's ``KERAS_HOME`` links to it.

The rubric never reads expected values from a worker's folders: :func:`fashion_mnist_arrays`
reads the verified real files or the cached twin, both outside them (the jail mounts the
cache read-only).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dlgrade import data
from dlgrade.errors import DataError

#: bump when a twin's content changes, so caches written by older versions are not reused
VERSION = 2
#: written beside a synthetic twin, so rubrics and reports can tell (and say so)
SYNTHETIC_MARK = data.SYNTHETIC_MARK


def folder(name: str, seed: int = 0) -> Path:
    return data.cache_dir() / "twins" / f"{name}-v{VERSION}-s{seed}"


def keras_home(target: Path, twins=()) -> Path:
    """A KERAS_HOME whose datasets/ and models/ link to the verified files that are here.

    Keras then loads Fashion-MNIST and the VGG16 weights from them, with no network.
    Nothing is downloaded. A dataset named in ``twins`` that is not here gets links to its
    synthetic twin (same format and size, written once into the cache, marked with
    ``SYNTHETIC_MARK``); anything else that is missing
    stays missing, and Keras's own error says so.
    """
    target.mkdir(parents=True, exist_ok=True)
    if "fashion_mnist" in twins and data.locate("fashion_mnist") is None:
        # the twin is written once into the cache; the worker's copy links to it
        folder = fashion_mnist() / "datasets" / "fashion-mnist"
        (target / "datasets" / "fashion-mnist").mkdir(parents=True, exist_ok=True)
        for file in folder.iterdir():
            link = target / "datasets" / "fashion-mnist" / file.name
            if not link.exists():
                link.symlink_to(file)
    links = {
        "fashion_mnist": lambda f: target / "datasets" / f.relpath,
        "vgg16_notop": lambda f: target / f.relpath,
    }
    for name, where in links.items():
        root = data.locate(name)
        if root is None:
            continue
        for spec in data.dataset(name).files:
            link = where(spec)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(root / spec.relpath)
    return target


def fashion_mnist(seed: int = 0) -> Path:
    """The Fashion-MNIST twin (60,000 + 10,000 images, IDX gz), written once; its root.

    The four files are under ``<root>/datasets/fashion-mnist/``, as Keras expects them
    under ``KERAS_HOME``.
    """
    from dlgrade.data import synth

    def write(staging: Path) -> None:
        synth.fashion_mnist(staging, seed=seed)
        (staging / "datasets" / "fashion-mnist" / SYNTHETIC_MARK).write_text(
            "Fashion-MNIST is not here: these files are dlgrade.data.synth's twin\n"
        )

    return _cached("fashion_mnist", seed, write)


def _cached(name: str, seed: int, write) -> Path:
    target = folder(name, seed)
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write(staging)
        for dirpath, _dirs, filenames in os.walk(staging):  # readable by jailed workers
            os.chmod(dirpath, 0o755)
            for file in filenames:
                os.chmod(os.path.join(dirpath, file), 0o644)
        (staging / ".complete").write_text(f"{name} twin, seed {seed}\n")
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: theirs is as good as ours
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def file_or_twin(name: str, folder: Path) -> Path:
    """The real file of dataset ``name`` (verified), or its twin written into ``folder``.

    For the one-file datasets a rubric can grade on a twin at the quick and standard tiers
    (sonar, IBM); it says which it graded on in the check's output.
    """
    from dlgrade.data import synth

    writers = {"sonar": ("sonar.csv", synth.sonar), "ibm": ("IBM.csv", synth.ibm)}
    try:
        return data.path(name)
    except DataError as exc:
        print(f"real {name} data unavailable, grading on a synthetic twin: {exc}")
        filename, write = writers[name]
        return write(Path(folder) / filename)


def fashion_mnist_files() -> tuple[Path, bool]:
    """The folder holding the four Fashion-MNIST IDX files, and whether it is the twin.

    The real files when the data layer has them (checked against their sha256), else the
    twin.
    """
    if data.locate("fashion_mnist") is not None:
        root = data.path("fashion_mnist")
        return root, False
    return fashion_mnist() / "datasets" / "fashion-mnist", True


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): magic 2049 (labels) or 2051 (images), big-endian sizes, uint8."""
    raw = gzip.decompress(Path(path).read_bytes())
    if len(raw) < 8 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise data.DataError(f"{path} is not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise data.DataError(f"{path} holds {body.size:,} values; its header says {shape}")
    return body.reshape(shape)


def fashion_mnist_arrays() -> tuple[tuple[np.ndarray, np.ndarray], tuple, bool]:
    """``((x_train, y_train), (x_test, y_test), synthetic)`` as Keras would load them."""
    where, synthetic = fashion_mnist_files()
    parts = {
        name: read_idx(where / f"{name}.gz")
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    return (
        (parts["train-images-idx3-ubyte"], parts["train-labels-idx1-ubyte"]),
        (parts["t10k-images-idx3-ubyte"], parts["t10k-labels-idx1-ubyte"]),
        synthetic,
    )
