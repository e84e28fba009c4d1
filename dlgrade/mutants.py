"""Mutants: the reference (or an acceptance variant) with one deliberate mistake, and the
checks that must catch it. A ``.mutant`` file is a header, the lines to replace, and their
replacement::

    # Mutant of reference/activity_2_01.py: why this is wrong.
    # kills: model_compile_settings, architecture_generalises_on_a_hidden_split
    # knock-on: other_check — why it fails too and cannot be kept from failing
    # base: pytorch            (optional: the variant the edit applies to)
    ---
        the lines to replace (they must occur once)
    +++
        their replacement

``tests/test_mutants.py`` holds every mutant to its ``kills:`` line, and ``dlgrade
calibrate`` measures how often each one is caught (dlgrade/calibrate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlgrade.activities import module_name

#: the repository that ships beside the package (absent where dlgrade is installed)
REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "reference"
VARIANTS = REPO / "tests" / "variants"
MUTANTS = REPO / "tests" / "mutants"


class MutantError(AssertionError):
    """A ``.mutant`` file that cannot be read or no longer applies to its base (an
    AssertionError, so that a test holding it fails rather than errors)."""


@dataclass(frozen=True)
class Mutant:
    name: str
    activity: str
    kills: tuple[str, ...]
    before: str
    after: str
    #: check → why it fails too and cannot be kept from failing (``# knock-on: check — why``)
    knock_ons: dict[str, str] = field(default_factory=dict)
    #: the folder of the module the edit applies to: the reference, or a variant's (``# base:``)
    base: Path = REFERENCE

    @classmethod
    def parse(
        cls, path: Path, *, reference: Path | None = None, variants: Path | None = None
    ) -> Mutant:
        """Read ``path``; its base is ``reference`` (default: the repository's reference/),
        or the variant its ``# base:`` line names under ``variants`` (tests/variants/)."""
        path = Path(path)
        reference = REFERENCE if reference is None else Path(reference)
        variants = VARIANTS if variants is None else Path(variants)
        text = path.read_text(encoding="utf-8")
        header, _, rest = text.partition("---\n")
        before, _, after = rest.partition("+++\n")
        kills = [line for line in header.splitlines() if line.startswith("# kills:")]
        if not kills or not before:
            raise MutantError(
                f"{path}: a mutant needs a '# kills: check, ...' line, then '---', the lines "
                "to replace, '+++' and their replacement (see dlgrade/mutants.py)"
            )
        knock_ons = {}
        for line in header.splitlines():
            if line.startswith("# knock-on:"):
                check, _, why = line.split(":", 1)[1].partition("—")
                knock_ons[check.strip()] = why.strip()
        bases = [
            line.split(":", 1)[1].strip()
            for line in header.splitlines()
            if line.startswith("# base:")
        ]
        base = variants / bases[0] if bases else reference
        if not base.is_dir():
            raise MutantError(f"{path.name}: no variant {bases[0]!r} under {variants}")
        return cls(
            name=path.stem,
            activity=path.stem.split("-", 1)[0],
            kills=tuple(k.strip() for k in kills[0].split(":", 1)[1].split(",") if k.strip()),
            before=before,
            after=after,
            knock_ons=knock_ons,
            base=base,
        )

    @property
    def module(self) -> str:
        """The file the edit applies to, e.g. ``activity_2_01.py``."""
        return f"{module_name(self.activity)}.py"

    def source(self) -> str:
        """The base module's source with the one edit applied."""
        source = (self.base / self.module).read_text(encoding="utf-8")
        if source.count(self.before) != 1:
            raise MutantError(
                f"{self.name}: the lines to replace must occur once in "
                f"{self.base / self.module} (found {source.count(self.before)}); update the "
                "mutant to the module as it is now"
            )
        return source.replace(self.before, self.after)

    def write(self, folder: Path) -> Path:
        """The base module (the reference, or a variant's) with the one edit applied, in
        ``folder`` (created; it must not exist)."""
        source = self.source()
        folder = Path(folder)
        folder.mkdir()
        (folder / self.module).write_text(source, encoding="utf-8")
        return folder


def mutant_files(folder: Path | None = None) -> list[Path]:
    """The ``*.mutant`` files of ``folder`` (default: the repository's tests/mutants/)."""
    folder = MUTANTS if folder is None else Path(folder)
    return sorted(folder.glob("*.mutant")) if folder.is_dir() else []
