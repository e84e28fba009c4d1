"""The grading environment against the one the rubrics are pinned to.

A student's local grade is the official one only where the libraries their code runs with
are the ones the course grades with: the versions dlgrade's own requirements pin
(TensorFlow, Keras, numpy, and the libraries the book's activities import: pandas,
scikit-learn, NLTK, gensim, matplotlib, IPython). :func:`describe` is the report header's
line that says so, or names what differs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata

#: the distributions whose versions decide a grade: the ML stack and what the book imports
GRADED_WITH = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "nltk",
    "gensim",
    "matplotlib",
    "ipython",
)

#: the top-level modules the book's activity notebooks import, and the distribution of each
#: (read from the book's public repository: Chapter 1-7 activity notebooks)
BOOK_IMPORTS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "sklearn": ("scikit-learn",),
    "matplotlib": ("matplotlib",),
    "nltk": ("nltk",),
    "gensim": ("gensim",),
    "IPython": ("ipython",),
}


@dataclass(frozen=True)
class Difference:
    """One library whose installed version is not the one the rubrics pin."""

    name: str
    wanted: str
    installed: str | None  # None: not installed

    def __str__(self) -> str:
        got = "not installed" if self.installed is None else self.installed
        return f"{self.name} {got} (the rubrics pin {self.wanted})"


def pinned() -> dict[str, str]:
    """Distribution → version specifier, from the installed dlgrade's core requirements
    (extras and requirements whose markers do not apply here left out)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging comes with TensorFlow; without it, nothing to compare
        return {}
    try:
        requires = metadata.requires("dlgrade") or []
    except metadata.PackageNotFoundError:  # run from a source folder without installing
        return {}
    out = {}
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower()
        if name in GRADED_WITH:
            out[name] = str(requirement.specifier) or "any version"
    return out


def differences() -> list[Difference]:
    """The graded-with libraries whose installed version does not satisfy the pin."""
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return []
    found = []
    for name, wanted in pinned().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            found.append(Difference(name, wanted, None))
            continue
        if wanted != "any version" and not SpecifierSet(wanted).contains(installed, True):
            found.append(Difference(name, wanted, installed))
    return found


@functools.cache
def describe() -> str:
    """The report header's environment line."""
    versions = []
    for name in ("tensorflow", "keras", "numpy"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name != "tensorflow":
                continue
            try:
                versions.append(f"tensorflow {metadata.version('tensorflow-cpu')}")
            except metadata.PackageNotFoundError:
                versions.append("tensorflow not installed")
    found = differences()
    if not found:
        return f"environment: as the rubrics pin it ({', '.join(versions)})"
    return (
        "environment: WARNING differs from the one the rubrics pin, so this grade may not be "
        "the official one: " + "; ".join(str(d) for d in found)
        + ". Install dlgrade as its README says (a fresh virtual environment)."
    )
