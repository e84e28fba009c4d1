"""Datasets: where each really comes from, where it lives here, and how it is checked.

Lookup order for a dataset: the read-only mirror (``DLGRADE_DATA_DIR``, e.g. a lab's copy
of ``shared/data``), then the cache (``DLGRADE_CACHE_DIR``, default ``~/.cache/dlgrade``),
then a download into the cache. Downloads are written to a temporary name, checked, then
renamed (archives are unpacked into a temporary folder, then renamed), so an interrupted
fetch never leaves anything that counts as complete. Files with fixed content carry their
sha256 and are verified wherever they are found; the mirror is never written.

Student code and rubrics use the same entry point: ``dlgrade.data.path("sonar")``.
This module imports neither TensorFlow nor numpy: ``dlgrade data list`` stays instant.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from dlgrade.errors import DataError

_PACKT = "https://raw.githubusercontent.com/PacktWorkshops/The-Deep-Learning-Workshop/master"
_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets"
_NLTK = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages"


@dataclass(frozen=True)
class DataFile:
    """One file a loader reads, at ``relpath`` under the mirror or cache root.

    ``sha256`` is None where the upstream file is not fixed or could not be obtained here
    to hash; such a file is checked for presence (and ``size`` when given) only.
    """

    relpath: str
    sha256: str | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Archive:
    """A download that is unpacked to produce a dataset's files (a zip)."""

    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    #: a folder of the zip to unpack to the dataset root ("" = the zip's root)
    member_root: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    activities: tuple[str, ...]
    description: str
    source: str
    layout: str = ""
    files: tuple[DataFile, ...] = field(default_factory=tuple)
    #: folders that must exist (with at least this many entries) under the root
    folders: tuple[tuple[str, int], ...] = ()
    archive: Archive | None = None
    #: fetched with nltk.download(...) into the cache's nltk_data folder
    nltk_packages: tuple[str, ...] = ()
    #: the path `dlgrade data path NAME` prints, relative to the root
    main: str = ""
    #: approximate download size in bytes, for `data list`
    download_size: int | None = None


REGISTRY: dict[str, Dataset] = {}


def _register(entry: Dataset) -> None:
    REGISTRY[entry.name] = entry


_register(
    Dataset(
        name="sonar",
        activities=("2.01",),
        description="sonar returns from mines and rocks: 208 rows, 60 features, Class Mine/Rock",
        source="UCI ML Repository, Connectionist Bench (Sonar, Mines vs. Rocks), Gorman & "
        "Sejnowski (CC BY 4.0); the CSV with a header as distributed with the book's code",
        layout="sonar.csv (header attribute_1..attribute_60,Class)",
        files=(
            DataFile(
                "sonar.csv",
                "509a95d382275bf37288673ae201aafd8e190627f7f2da3acb4cd4b86a3ac8ed",
                87_277,
                (f"{_PACKT}/Chapter02/Activity2.01/sonar.csv",),
            ),
        ),
        main="sonar.csv",
        download_size=87_277,
    )
)
_register(
    Dataset(
        name="ibm",
        activities=("5.01",),
        description="IBM daily prices 2010-01-25 … 2020-01-24, 2,518 rows, newest first",
        source="daily IBM stock prices as distributed with the book's code (public market data)",
        layout="IBM.csv (header 'Date,Close, Volume, Open, High, Low', newest first)",
        files=(
            DataFile(
                "IBM.csv",
                "c6db6ab04b6ad173c70c40e957984dd9d5e31b1030d88a18115387330cb37ba7",
                114_322,
                (f"{_PACKT}/Chapter05/Activity5.01/IBM.csv",),
            ),
        ),
        main="IBM.csv",
        download_size=114_322,
    )
)
_register(
    Dataset(
        name="fashion_mnist",
        activities=("3.01", "7.01"),
        description="Fashion-MNIST: 60,000 + 10,000 grey 28×28 images, 10 classes",
        source="Zalando Research, github.com/zalandoresearch/fashion-mnist (MIT); the four "
        "IDX files Keras downloads",
        layout="fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz; served to "
        "Keras as $KERAS_HOME/datasets/fashion-mnist/",
        files=tuple(
            DataFile(f"fashion-mnist/{name}", sha, size, (f"{_KERAS_DATASETS}/{name}",))
            for name, sha, size in (
                (
                    "train-labels-idx1-ubyte.gz",
                    "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
                    29_515,
                ),
                (
                    "train-images-idx3-ubyte.gz",
                    "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
                    26_421_880,
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
                    5_148,
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
                    4_422_102,
                ),
            )
        ),
        main="fashion-mnist",
        download_size=30_878_645,
    )
)
_register(
    Dataset(
        name="fruits360",
        activities=("3.02",),
        description="Fruits-360 filtered: 11,398 training / 4,752 test 100×100 images, 120 classes",
        source="Fruits-360, Mureșan & Oltean (CC BY-SA 4.0), filtered to 120 classes; the "
        "zip distributed with the book's code",
        layout="fruits360_filtered/{Training,Test}/<class>/<image>.jpg",
        folders=(("fruits360_filtered/Training", 120), ("fruits360_filtered/Test", 120)),
        archive=Archive(
            "fruits360_filtered.zip",
            (f"{_PACKT}/Chapter03/Datasets/Activity3.02/fruits360_filtered.zip",),
        ),
        main="fruits360_filtered",
    )
)
_register(
    Dataset(
        name="vgg16_notop",
        activities=("3.02",),
        description="VGG16 ImageNet weights without the top (58 MB)",
        source="Keras Applications, VGG16 (Simonyan & Zisserman), weights by the Keras team",
        layout="models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5; served to Keras as "
        "$KERAS_HOME/models/",
        files=(
            DataFile(
                "models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                None,  # Keras pins it by md5 6d6bbae143d832006294945121d1f1fc
                58_889_256,
                (
                    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                ),
            ),
        ),
        main="models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        download_size=58_889_256,
    )
)
_register(
    Dataset(
        name="nltk",
        activities=("4.01", "4.02", "6.01"),
        description="NLTK data: punkt_tab (English), stopwords, gutenberg (carroll-alice.txt)",
        source="NLTK Data, github.com/nltk/nltk_data (Project Gutenberg text: public domain; "
        "stopwords and punkt: NLTK's licences)",
        layout="nltk_data/corpora/{gutenberg,stopwords}/…, nltk_data/tokenizers/punkt_tab/"
        "english/…; served to NLTK through NLTK_DATA",
        files=(
            DataFile(
                "nltk_data/corpora/gutenberg/carroll-alice.txt",
                "84157c64cf991c7cd7f3fc39aa8fddefebae13710268f448f6034559db37f884",
                144_396,
            ),
            DataFile(
                "nltk_data/corpora/stopwords/english",
                "019f104ba2ed07436d05f9cdd3383034ad66014edc27fc651f837e1a038b6451",
                936,
            ),
            DataFile(
                "nltk_data/tokenizers/punkt_tab/english/abbrev_types.txt",
                "92a3e070f43d9b4c5534758ca40ad7343b04e7e29bfe0c2eb658a39445a4f779",
                619,
            ),
            DataFile(
                "nltk_data/tokenizers/punkt_tab/english/collocations.tab",
                "8e2da1225e4dd2cc9dba261ee231ccb134859e21b46006e7f472c5ee269af0cf",
                594,
            ),
            DataFile(
                "nltk_data/tokenizers/punkt_tab/english/ortho_context.tab",
                "4bbcca25ed3d3f06c02402abf8419b9f033b8adc06e7b482eca4e45f81a5dc4c",
                236_303,
            ),
            DataFile(
                "nltk_data/tokenizers/punkt_tab/english/sent_starters.txt",
                "f3f8535483e1dba487241b764945168123bca3209a9645e59acd1225dc76edac",
                241,
            ),
        ),
        nltk_packages=("punkt_tab", "stopwords", "gutenberg"),
        main="nltk_data",
    )
)
_register(
    Dataset(
        name="glove",
        activities=("4.02",),
        description="GloVe 6B 100d vectors (400,000 words) in word2vec text format",
        source="GloVe, Pennington, Socher & Manning, nlp.stanford.edu/projects/glove (PDDL); "
        "glove.6B.100d.txt from glove.6B.zip (822 MB), given a word2vec header",
        layout="glove.6B.100d.w2v.txt (first line '400000 100')",
        files=(DataFile("glove.6B.100d.w2v.txt"),),
        archive=Archive("glove.6B.zip", ("https://nlp.stanford.edu/data/glove.6B.zip",)),
        main="glove.6B.100d.w2v.txt",
        download_size=862_182_613,
    )
)
_register(
    Dataset(
        name="amazon_reviews",
        activities=("6.01",),
        description="Amazon review polarity sample: 25,000 train + 25,000 test reviews",
        source="Amazon reviews polarity (Zhang, Zhao & LeCun 2015, from McAuley & Leskovec's "
        "SNAP data), the book's 25,000-review samples",
        layout="Amazon_reviews_train.csv, Amazon_reviews_test.csv (columns review_text,label)",
        files=(
            DataFile(
                "Amazon_reviews_train.csv",
                urls=(f"{_PACKT}/Chapter06/Activity6.01/Amazon_reviews_train.csv",),
            ),
            DataFile(
                "Amazon_reviews_test.csv",
                urls=(f"{_PACKT}/Chapter06/Activity6.01/Amazon_reviews_test.csv",),
            ),
        ),
        main="Amazon_reviews_train.csv",
    )
)


# -- where things are --------------------------------------------------------------------


def mirror_dir() -> Path | None:
    value = os.environ.get("DLGRADE_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get("DLGRADE_CACHE_DIR")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "dlgrade"


def dataset(name: str) -> Dataset:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}") from None


def roots() -> list[Path]:
    mirror = mirror_dir()
    return ([mirror] if mirror else []) + [cache_dir()]


def locate(name: str) -> Path | None:
    """The root (mirror or cache) that holds every file of ``name``, or None."""
    entry = dataset(name)
    for root in roots():
        if _complete(entry, root):
            return root
    return None


def _complete(entry: Dataset, root: Path) -> bool:
    files_ok = all((root / f.relpath).is_file() for f in entry.files)
    folders_ok = all(
        (root / folder).is_dir() and sum(1 for _ in (root / folder).iterdir()) >= count
        for folder, count in entry.folders
    )
    if root == cache_dir() and entry.archive is not None:
        return files_ok and folders_ok and (root / _marker(entry)).is_file()
    return files_ok and folders_ok


def _marker(entry: Dataset) -> str:
    return f".complete/{entry.name}"


def path(name: str, *, download: bool = True) -> Path:
    """Where dataset ``name`` lives, verified; fetch it into the cache if allowed."""
    entry = dataset(name)
    root = locate(name)
    if root is None:
        if not download:
            raise missing(entry, "downloads are disabled")
        root = fetch(name)
    verify(name, root)
    return root / (entry.main or entry.files[0].relpath)


def file_path(name: str, relpath: str, *, download: bool = True) -> Path:
    """One file of a dataset (e.g. one of Fashion-MNIST's four), verified."""
    entry = dataset(name)
    if not any(f.relpath == relpath for f in entry.files):
        raise DataError(f"dataset {name!r} has no file {relpath!r}")
    path(name, download=download)  # present and verified, or DataError
    return locate(name) / relpath


def missing(entry: Dataset, why: str) -> DataError:
    searched = "\n  ".join(
        str(root / (entry.files[0].relpath if entry.files else entry.main)) for root in roots()
    )
    needed = entry.files[0].relpath if entry.files else entry.main
    return DataError(
        f"dataset {entry.name!r} (needed by activity {', '.join(entry.activities)}) is not "
        f"available: {needed} was not found in\n  {searched}\nand {why}. Fix: set "
        f"DLGRADE_DATA_DIR to a folder holding {entry.layout.split(' (')[0]}, or run "
        f"`dlgrade data fetch {entry.name}` on a machine with internet access."
    )


# -- checking ----------------------------------------------------------------------------


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, root: Path | None = None) -> list[str]:
    """Check every fixed file of ``name`` under ``root``; raise DataError on the first bad one.

    Returns the relative paths that were hashed (files without a sha256 are size-checked).
    """
    entry = dataset(name)
    root = root or locate(name)
    if root is None:
        raise missing(entry, "it has not been fetched")
    checked = []
    for spec in entry.files:
        file = root / spec.relpath
        if not file.is_file():
            raise missing(entry, f"{file} is missing")
        if spec.size is not None and spec.sha256 is None and file.stat().st_size != spec.size:
            raise _corrupt(entry, file, f"{file.stat().st_size:,} bytes, expected {spec.size:,}")
        if spec.sha256 is not None:
            got = sha256_of(file)
            if got != spec.sha256:
                raise _corrupt(entry, file, f"sha256 {got[:12]}…, expected {spec.sha256[:12]}…")
            checked.append(spec.relpath)
    if entry.nltk_packages:
        _check_nltk_permissions(root / "nltk_data", root == mirror_dir())
    return checked


def _corrupt(entry: Dataset, file: Path, detail: str) -> DataError:
    return DataError(
        f"dataset {entry.name!r}: {file} is corrupt, truncated or a different version "
        f"({detail}). Delete it and run `dlgrade data fetch {entry.name}`, or copy a good "
        "file into the mirror."
    )


def _check_nltk_permissions(folder: Path, is_mirror: bool) -> None:
    """NLTK ≥ 3.10 refuses data that is group- or world-writable: fix the cache, flag a mirror."""
    writable = []
    for dirpath, _dirs, files in os.walk(folder):
        for item in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            if os.stat(item).st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                writable.append(item)
    if not writable:
        return
    if is_mirror:
        raise DataError(
            f"NLTK refuses data that is group- or world-writable, and {len(writable)} item(s) "
            f"under {folder} are (e.g. {writable[0]}). Fix: chmod -R go-w {folder}"
        )
    for item in writable:
        os.chmod(item, os.stat(item).st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))


# -- fetching ----------------------------------------------------------------------------


def fetch(name: str, *, progress=None) -> Path:
    """Download ``name`` into the cache (never the mirror); return the cache root."""
    entry = dataset(name)
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if entry.nltk_packages:
        _fetch_nltk(entry, root)
    elif entry.archive is not None:
        _fetch_archive(entry, root, progress)
    else:
        for spec in entry.files:
            if not (root / spec.relpath).is_file():
                _download(entry, spec.urls, root / spec.relpath, spec.sha256, spec.size, progress)
    if not _complete(entry, root):
        raise missing(entry, "the fetched files are incomplete")
    return root


def _download(entry, urls, target: Path, sha256, size, progress) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    if not urls:
        raise missing(entry, "it has no download source: copy it into the mirror by hand")
    for url in urls:
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            limit = 2 * size if size else None
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                headers = getattr(response, "headers", None) or {}
                total = int(headers.get("Content-Length") or size or 0)
                written = 0
                while chunk := response.read(1 << 20):
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise OSError(f"more than {limit:,} bytes; expected {size:,}")
                    out.write(chunk)
                    if progress is not None:
                        progress(target.name, written, total)
            got = sha256_of(Path(partial))
            if sha256 is not None and got != sha256:
                errors.append(f"{url}: checksum mismatch (got {got[:12]}…)")
                continue
            os.chmod(partial, 0o644)
            os.replace(partial, target)  # atomic: a file at `target` is always complete
            return
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            Path(partial).unlink(missing_ok=True)
    raise missing(entry, "the download failed (" + "; ".join(map(str, errors)) + ")")


def _fetch_archive(entry: Dataset, root: Path, progress) -> None:
    archive = entry.archive
    downloads = root / ".downloads"
    zipped = downloads / archive.filename
    if not zipped.is_file():
        _download(entry, archive.urls, zipped, archive.sha256, archive.size, progress)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{entry.name}."))
    try:
        _unpack(zipped, staging)
        if entry.name == "glove":
            _glove_to_word2vec(staging / "glove.6B.100d.txt", staging / "glove.6B.100d.w2v.txt")
        for item in {Path(f.relpath).parts[0] for f in entry.files} | {
            Path(folder).parts[0] for folder, _ in entry.folders
        }:
            if not (staging / item).exists():
                raise missing(entry, f"{archive.filename} holds no {item}")
            destination = root / item
            if destination.exists():
                shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
            os.replace(staging / item, destination)
        (root / ".complete").mkdir(exist_ok=True)
        (root / _marker(entry)).write_text(archive.filename + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(zipped: Path, target: Path, max_bytes: int = 8 * 2**30) -> None:
    """Unzip refusing path traversal, links and zip bombs."""
    with zipfile.ZipFile(zipped) as archive:
        total = 0
        for info in archive.infolist():
            name = Path(info.filename)
            if name.is_absolute() or ".." in name.parts:
                raise DataError(f"{zipped}: refusing entry {info.filename!r} (leaves the folder)")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{zipped}: refusing symbolic link {info.filename!r}")
            total += info.file_size
            if total > max_bytes:
                raise DataError(f"{zipped}: unpacks to more than {max_bytes:,} bytes")
        archive.extractall(target)


def _glove_to_word2vec(source: Path, target: Path) -> None:
    """word2vec text format is GloVe's with a first line '<words> <dimensions>'."""
    with open(source, encoding="utf-8") as fh:
        count = sum(1 for _ in fh)
    with open(source, encoding="utf-8") as fh:
        first = fh.readline()
    dimensions = len(first.split()) - 1
    with open(target, "w", encoding="utf-8") as out, open(source, encoding="utf-8") as fh:
        out.write(f"{count} {dimensions}\n")
        shutil.copyfileobj(fh, out)


def _fetch_nltk(entry: Dataset, root: Path) -> None:
    try:
        import nltk
    except ImportError:
        raise missing(entry, "nltk is not installed (pip install nltk)") from None
    target = root / "nltk_data"
    for package in entry.nltk_packages:
        ok = nltk.download(package, download_dir=str(target), quiet=True, raise_on_error=False)
        if not ok:
            raise missing(entry, f"nltk.download({package!r}) failed")
        zipped = next(target.glob(f"*/{package}.zip"), None)
        if zipped is not None:  # nltk leaves the zip beside the unpacked folder
            zipped.unlink()
    _check_nltk_permissions(target, is_mirror=False)


def status(name: str) -> tuple[str, Path | None]:
    """('mirror'|'cache'|'missing', root) without hashing anything."""
    root = locate(name)
    if root is None:
        return "missing", None
    return ("mirror" if root == mirror_dir() else "cache"), root


#: written beside a synthetic twin in a KERAS_HOME, so rubrics can tell (and say so)
SYNTHETIC_MARK = "SYNTHETIC-TWIN"


def keras_home(target: Path, twins=()) -> Path:
    """A KERAS_HOME whose datasets/ and models/ link to the verified files that are here.

    Keras then loads Fashion-MNIST and the VGG16 weights from them, with no network.
    Nothing is downloaded. A dataset named in ``twins`` that is not here gets its small
    synthetic twin (same format, marked with ``SYNTHETIC_MARK``); anything else that is
    missing stays missing, and Keras's own error says so.
    """
    target.mkdir(parents=True, exist_ok=True)
    if "fashion_mnist" in twins and locate("fashion_mnist") is None:
        from dlgrade import synth

        synth.fashion_mnist(target)
        (target / "datasets" / "fashion-mnist" / SYNTHETIC_MARK).write_text(
            "Fashion-MNIST is not here: these files are dlgrade.synth's twin\n"
        )
    links = {
        "fashion_mnist": lambda f: target / "datasets" / f.relpath,
        "vgg16_notop": lambda f: target / f.relpath,
    }
    for name, where in links.items():
        root = locate(name)
        if root is None:
            continue
        for spec in dataset(name).files:
            link = where(spec)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(root / spec.relpath)
    return target


def nltk_data_dir() -> Path | None:
    """The nltk_data folder to give NLTK (NLTK_DATA), if the data is here."""
    root = locate("nltk")
    return root / "nltk_data" if root is not None else None


def progress_bar(label: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr for `dlgrade data fetch`."""
    if total:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(
            f"\r  {label}: [{'#' * filled}{'.' * (width - filled)}] "
            f"{done / 2**20:6.1f}/{total / 2**20:.1f} MiB"
        )
    else:
        sys.stderr.write(f"\r  {label}: {done / 2**20:6.1f} MiB")
    sys.stderr.flush()
