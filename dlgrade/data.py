"""Datasets: where each really comes from, where it lives here, and how it is checked.

Lookup order for a file: the read-only mirror (``DLGRADE_DATA_DIR``, e.g. a lab's copy of
``shared/data``), then the cache (``DLGRADE_CACHE_DIR``, default ``~/.cache/dlgrade``), then
a download into the cache (written to a temporary name, checked, then renamed, so an
interrupted download never counts as complete). Every file with a fixed content carries
its sha256 and is verified wherever it is found.

Student code and rubrics use the same entry point: ``dlgrade.data.path("sonar")``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlgrade.errors import DataError


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, at ``relpath`` under the mirror or cache root."""

    relpath: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None


@dataclass(frozen=True)
class Dataset:
    name: str
    activities: tuple[str, ...]
    description: str
    source: str
    files: tuple[DataFile, ...] = field(default_factory=tuple)


REGISTRY: dict[str, Dataset] = {
    "sonar": Dataset(
        name="sonar",
        activities=("2.01",),
        description="Sonar returns from mines and rocks: 208 rows, 60 features, Class Mine/Rock",
        source=(
            "UCI Machine Learning Repository, Connectionist Bench (Sonar, Mines vs. Rocks), "
            "Gorman & Sejnowski; CC BY 4.0. CSV with header attribute_1..60,Class as "
            "distributed with the book's code."
        ),
        files=(
            DataFile(
                relpath="sonar.csv",
                urls=(
                    "https://raw.githubusercontent.com/PacktWorkshops/"
                    "The-Deep-Learning-Workshop/master/Chapter02/Activity2.01/sonar.csv",
                ),
                sha256="509a95d382275bf37288673ae201aafd8e190627f7f2da3acb4cd4b86a3ac8ed",
                size=87277,
            ),
        ),
    ),
}


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


def path(name: str, *, download: bool = True) -> Path:
    """Where the (first) file of dataset ``name`` lives, verified; fetch it if allowed."""
    return file_path(name, dataset(name).files[0].relpath, download=download)


def file_path(name: str, relpath: str, *, download: bool = True) -> Path:
    entry = dataset(name)
    try:
        spec = next(f for f in entry.files if f.relpath == relpath)
    except StopIteration:
        raise DataError(f"dataset {name!r} has no file {relpath!r}") from None
    searched = []
    mirror = mirror_dir()
    for root in ([mirror] if mirror else []) + [cache_dir()]:
        candidate = root / spec.relpath
        searched.append(str(candidate))
        if candidate.is_file():
            _verify(entry, spec, candidate)
            return candidate
    if not download:
        raise _missing(entry, spec, searched, "downloads are disabled")
    return _download(entry, spec, searched)


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(entry: Dataset, spec: DataFile, file: Path) -> None:
    if spec.sha256 is None:
        return
    got = sha256_of(file)
    if got != spec.sha256:
        raise DataError(
            f"dataset {entry.name!r}: {file} is corrupt or a different version (sha256 "
            f"{got[:12]}…, expected {spec.sha256[:12]}…). Delete it and run "
            f"`dlgrade data fetch {entry.name}`, or copy a good file into the mirror."
        )


def _missing(entry: Dataset, spec: DataFile, searched: list[str], why: str) -> DataError:
    places = "\n  ".join(searched)
    return DataError(
        f"dataset {entry.name!r} (needed by activity {', '.join(entry.activities)}) is not "
        f"available: {spec.relpath} was not found in\n  {places}\nand {why}. Fix: set "
        f"DLGRADE_DATA_DIR to a folder holding {spec.relpath}, or run "
        f"`dlgrade data fetch {entry.name}` on a machine with internet access."
    )


def _download(entry: Dataset, spec: DataFile, searched: list[str]) -> Path:
    target = cache_dir() / spec.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            limit = 2 * spec.size if spec.size else None
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                written = 0
                while chunk := response.read(1 << 20):
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise OSError(f"more than {limit:,} bytes; expected {spec.size:,}")
                    out.write(chunk)
            got = sha256_of(Path(partial))
            if spec.sha256 is not None and got != spec.sha256:
                errors.append(f"{url}: checksum mismatch (got {got[:12]}…)")
                continue
            os.chmod(partial, 0o644)
            os.replace(partial, target)  # atomic: a file at `target` is always complete
            return target
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            Path(partial).unlink(missing_ok=True)
    raise _missing(entry, spec, searched, "the download failed (" + "; ".join(errors) + ")")


# -- synthetic twins ---------------------------------------------------------------------


def write_synthetic_sonar(file: Path, rows: int = 208, seed: int = 0) -> Path:
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
