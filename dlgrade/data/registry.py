"""The datasets' registry: each dataset the activities read, where it really comes from,
the files it is made of and the pins (sha256, git blob id, size) that check them.

Nothing here touches the disk or the network (that is :mod:`dlgrade.data.store`).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from dlgrade.errors import DataError

#: the book's code repository, and the commit whose tree tests/data/book_datasets_tree.tsv
#: lists: its files are fetched at that commit first (the bytes the pins below describe), then
#: from master in case the commit is ever unreachable (the pins still decide)
BOOK_REPOSITORY = "PacktWorkshops/The-Deep-Learning-Workshop"
BOOK_COMMIT = "5f2d98f9dab54ae07d58a4f636c6f7f73018b022"
_BOOK_RAW = f"https://raw.githubusercontent.com/{BOOK_REPOSITORY}"
_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets"
_NLTK = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages"


def _book(path: str) -> tuple[str, ...]:
    """The download URLs of ``path`` in the book's repository (URL-encoded: paths hold spaces)."""
    quoted = urllib.parse.quote(path)
    return (f"{_BOOK_RAW}/{BOOK_COMMIT}/{quoted}", f"{_BOOK_RAW}/master/{quoted}")


@dataclass(frozen=True)
class DataFile:
    """One file a loader reads, at ``relpath`` under the mirror or cache root.

    Its bytes are pinned by ``sha256``, or by ``git_blob`` (the id git gives the content:
    sha1 of ``b"blob <size>\\0" + content``) where the book's repository is the only record
    of the file, or by ``size`` alone; every pin given is checked on download and wherever
    the file is found. A file with none is checked for presence only.
    """

    relpath: str
    sha256: str | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()
    git_blob: str | None = None


@dataclass(frozen=True)
class Archive:
    """A zip that is downloaded, checked like a ``DataFile``, then unpacked or picked from."""

    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    #: a folder of the zip to unpack to the dataset root ("" = the zip's root)
    member_root: str = ""
    git_blob: str | None = None


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
    #: a second source for ``files``: a zip that holds them somewhere inside, taken by base
    #: name and each accepted only if its own sha256 holds (tried when their URLs fail)
    fallback: Archive | None = None
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
                _book("Chapter02/Datasets/sonar.csv"),
                git_blob="ca8e338d8763bfcd57f9d295dbdad514395ac1b6",
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
                _book("Chapter05/Datasets/IBM.csv"),
                git_blob="cf5792cb9ca73ef5b9d0fe7e897c4c8c59650e4d",
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
        # The book's Activity 7.01 folder holds a fashionmnist.zip whose inside could not be
        # seen here (its blob is not in our copy of the repository): the four files are
        # looked for by name anywhere in it, and each must match its sha256 above.
        fallback=Archive(
            "fashionmnist.zip",
            _book("Chapter07/Datasets/Activity 7.01/fashionmnist.zip"),
            git_blob="b11bba05945c77607e4b603aca8f92621b6a7155",
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
        # The book's notebook reads fruits360_filtered/{Training,Test} after unzipping this
        # file, so the zip is taken to hold that top folder (not seen here: docs/data.md).
        archive=Archive(
            "fruits360.zip",
            _book("Chapter03/Datasets/Activity3.02/fruits360.zip"),
            git_blob="f25bcb9020379b1c512f3afb54f1242dcd0b0cbf",
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
                urls=_book("Chapter06/Datasets/Activity6.01/Amazon_reviews_train.csv"),
                git_blob="86a26b9a8b62b54a06e4c4dd753ef53c223f7aec",
            ),
            DataFile(
                "Amazon_reviews_test.csv",
                urls=_book("Chapter06/Datasets/Activity6.01/Amazon_reviews_test.csv"),
                git_blob="bfcbdd1f4d7dcf3073086ac1c1853869b394fe99",
            ),
        ),
        main="Amazon_reviews_train.csv",
    )
)


def dataset(name: str) -> Dataset:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}") from None


#: what grading reads instead of a dataset that is not here: Keras is served Fashion-MNIST's
#: twin by ``twins.keras_home(twins=...)``; Activity 2.01's rubric writes a sonar twin itself
TWINS = {"fashion_mnist": "synthetic twin", "sonar": "synthetic twin"}
#: datasets the quick and standard tiers never read, whatever is here: their checks grade
#: on small data made to measure (the full tier reads the real one)
BELOW_FULL = {
    "amazon_reviews": "synthetic reviews at quick/standard",
    "fruits360": "synthetic image tree at quick/standard",
    "vgg16_notop": "not used at quick/standard (weights=None)",
}


#: written beside a synthetic twin in a KERAS_HOME, so rubrics can tell (and say so)
SYNTHETIC_MARK = "SYNTHETIC-TWIN"
