"""Datasets: where each really comes from, where it lives here, and how it is checked.

- :mod:`~dlgrade.data.registry`: each dataset, its source and its pinned files;
- :mod:`~dlgrade.data.store`: the lookup (the mirror, the cache, a download), the checks
  of every pin, the fetch, and the lines that say where grading's data comes from;
- :mod:`~dlgrade.data.twins`: synthetic stand-ins in the real on-disk format, where the
  real data is not here (numpy);
- :mod:`~dlgrade.data.synth`: the data made to measure that the rubrics grade on
  (numpy, pandas).

Student code and rubrics use one entry point: ``dlgrade.data.path("sonar")``. The registry
and the store import neither TensorFlow nor numpy themselves (twins and synth import numpy,
when they are imported): ``dlgrade data list`` stays instant.
"""

from dlgrade.data.registry import (
    BELOW_FULL,
    BOOK_COMMIT,
    BOOK_REPOSITORY,
    REGISTRY,
    SYNTHETIC_MARK,
    TWINS,
    Archive,
    DataFile,
    Dataset,
    dataset,
)
from dlgrade.data.store import (
    TIMEOUT,
    cache_dir,
    describe_sources,
    fetch,
    file_path,
    git_blob_of,
    locate,
    mirror_dir,
    missing,
    nltk_data_dir,
    open_url,
    path,
    pinning,
    progress_bar,
    roots,
    sha256_of,
    source,
    status,
    verify,
)

__all__ = [
    "Archive",
    "BELOW_FULL",
    "BOOK_COMMIT",
    "BOOK_REPOSITORY",
    "DataFile",
    "Dataset",
    "REGISTRY",
    "SYNTHETIC_MARK",
    "TIMEOUT",
    "TWINS",
    "cache_dir",
    "dataset",
    "describe_sources",
    "fetch",
    "file_path",
    "git_blob_of",
    "locate",
    "mirror_dir",
    "missing",
    "nltk_data_dir",
    "open_url",
    "path",
    "pinning",
    "progress_bar",
    "roots",
    "sha256_of",
    "source",
    "status",
    "verify",
]
