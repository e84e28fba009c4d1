"""Which students' code is similar enough for a second look: a class's similarity report.

Per activity, every pair of submissions is compared by winnowing (copydetect's tokenizer and
fingerprints, the approach MOSS uses): the code is tokenized, identifiers, strings and
comments are normalised away, k-grams of the token text are hashed and winnowed, and a
pair's similarity A→B is the share of A's fingerprinted tokens that B also has. Renaming
variables, reordering functions or rewording comments does not hide a copy.

What every submission shares is not evidence, and is removed before comparing:

- the **skeleton**: what `dlgrade new` writes (signatures, docstrings, the
  `NotImplementedError` lines) — untouched skeleton text never counts;
- **class-common code**: a fingerprint found in many submissions of one activity (at least
  ``common_fraction`` of them, and at least :data:`COMMON_MINIMUM`) — the architecture the
  activity dictates (the same layers in the same order, the same Keras calls) makes honest
  solutions alike, and code everyone has cannot single out a pair.

Each submission is also compared with the reference solution, where the rubric folder's
repository has one: a high score there is flagged as a possible leak.

Results go to ``results/similarity.csv`` and ``results/similarity.html`` (instructors only:
never in students' feedback, their exports or the kit). Needs the ``similarity`` extra
(``pip install "dlgrade[similarity]"``: copydetect and its dependencies).
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dlgrade.activities import module_name
from dlgrade.atomic import write_atomic
from dlgrade.errors import UsageError
from dlgrade.reports.gradebook_csv import safe_cell
from dlgrade.text import printable

#: tokens a match must span to count (copydetect's noise threshold)
NOISE_TOKENS = 25
#: matches at least this long are always found (copydetect's guarantee threshold)
GUARANTEE_TOKENS = 30
#: report a pair when either direction reaches this share (calibrated: docs/similarity.md)
DEFAULT_THRESHOLD = 0.25
#: report a submission against the reference from this share on
DEFAULT_LEAK_THRESHOLD = 0.6
#: a fingerprint in at least this share of an activity's submissions is class-common ...
DEFAULT_COMMON_FRACTION = 0.25
#: ... and in at least this many of them (a pair plus one: a copy is never "common")
COMMON_MINIMUM = 3

#: the largest .py file compared: a real activity is a few KiB, and winnowing a huge one
#: would hold the whole report up
MAX_SOURCE_BYTES = 2 << 20

#: pairs shown side by side in the HTML page (all of them are in the CSV)
MAX_HTML_PAIRS = 200

SIMILARITY_CSV = "similarity.csv"
SIMILARITY_HTML = "similarity.html"
CSV_COLUMNS = (
    "activity",
    "student_a",
    "student_b",
    "a_to_b",
    "b_to_a",
    "overlapping_tokens",
    "flag",
)
COPY_FLAG = "similar pair"
LEAK_FLAG = "like the reference"
REFERENCE = "(reference)"


def _winnowing():
    try:
        from copydetect import utils
    except ImportError:
        raise UsageError(
            'the similarity report needs the similarity extra: pip install "dlgrade[similarity]"'
        ) from None
    return utils


@dataclass
class Code:
    """One submission's code for one activity, fingerprinted."""

    who: str
    text: str
    filtered: str = ""
    offsets: object = None
    hashes: set = field(default_factory=set)
    index: dict = field(default_factory=dict)
    coverage: int = 0

    def fingerprint(self, boilerplate) -> Code:
        utils = _winnowing()
        self.filtered, self.offsets = utils.filter_code(self.text, "code.py", "python")
        window = GUARANTEE_TOKENS - NOISE_TOKENS + 1
        self.hashes, self.index = fingerprints(self.filtered, window, boilerplate)
        self.coverage = utils.get_token_coverage(self.index, NOISE_TOKENS, len(self.filtered))
        return self

    def without(self, common: set) -> Code:
        """The same code with class-common fingerprints removed."""
        self.hashes = self.hashes - common
        self.index = {h: i for h, i in self.index.items() if h not in common}
        return self


def kgram_hashes(text: str, k: int = NOISE_TOKENS):
    """A hash of every k-character window of ``text``, the same in every process.

    copydetect hashes k-grams with Python's ``hash()``, which is salted per process: the
    winnowed fingerprints, and so the scores, would change from one run to the next. This
    is a polynomial hash of the characters, modulo 2**64, computed with numpy."""
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = len(codes) - k + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    hashes = np.zeros(count, dtype=np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        for offset in range(k):
            hashes = hashes * base + codes[offset : offset + count]
    return hashes.view(np.int64)


def fingerprints(filtered: str, window: int, boilerplate=()) -> tuple[set, dict]:
    """(the winnowed fingerprints, each one's positions) of a filtered text, without the
    ``boilerplate`` ones (copydetect's winnowing on :func:`kgram_hashes`)."""
    import numpy as np

    utils = _winnowing()
    hashes = kgram_hashes(filtered)
    if len(hashes) == 0:
        return set(), {}
    hashes, positions = utils.winnow(hashes, window_size=window, remove_duplicates=False)
    if len(boilerplate):
        keep = ~np.isin(hashes, np.asarray(list(boilerplate), dtype=np.int64))
        hashes, positions = hashes[keep], positions[keep]
    index: dict = {}
    for value, position in zip(hashes.tolist(), positions.tolist(), strict=True):
        index.setdefault(value, []).append(position)
    return set(index), index


@dataclass(frozen=True)
class Pair:
    """Two submissions of one activity and how much of each the other holds."""

    activity: str
    a: str
    b: str
    a_to_b: float
    b_to_a: float
    tokens: int
    flag: str
    slices_a: tuple = ()  # (start, end) character ranges of the matches in a's text
    slices_b: tuple = ()

    @property
    def score(self) -> float:
        return max(self.a_to_b, self.b_to_a)


@dataclass
class Report:
    """The class's similarity report."""

    threshold: float
    leak_threshold: float
    pairs: list[Pair] = field(default_factory=list)  # flagged pairs and leaks, worst first
    texts: dict[tuple[str, str], str] = field(default_factory=dict)  # (activity, who) → code
    skipped: list[str] = field(default_factory=list)  # files not compared, and why
    compared: int = 0  # pairs compared in all


def compare(one: Code, other: Code) -> tuple[int, float, float, tuple, tuple]:
    """(overlapping tokens, one→other, other→one, one's slices, other's slices)."""
    utils = _winnowing()
    idx1, idx2 = utils.find_fingerprint_overlap(one.hashes, other.hashes, one.index, other.index)
    if len(idx1) == 0:
        return 0, 0.0, 0.0, (), ()
    slices1 = utils.get_copied_slices(idx1, NOISE_TOKENS)
    slices2 = utils.get_copied_slices(idx2, NOISE_TOKENS)
    tokens1 = int((slices1[1] - slices1[0]).sum())
    tokens2 = int((slices2[1] - slices2[0]).sum())
    share1 = tokens1 / one.coverage if one.coverage else 0.0
    share2 = tokens2 / other.coverage if other.coverage else 0.0
    return (
        tokens1,
        min(share1, 1.0),
        min(share2, 1.0),
        _in_text(one, slices1),
        _in_text(other, slices2),
    )


def _in_text(code: Code, slices) -> tuple[tuple[int, int], ...]:
    """Match ranges in the filtered text, mapped back to the submission's own text."""
    import numpy as np

    starts, ends = np.array(slices[0]), np.array(slices[1])
    offsets = code.offsets
    if offsets is not None and len(offsets) > 0:
        shift = offsets[:, 1]
        where = offsets[:, 0]
        starts = starts + shift[np.clip(np.searchsorted(where, starts), 0, len(where) - 1)]
        ends = ends + shift[np.clip(np.searchsorted(where, ends), 0, len(where) - 1)]
    return tuple((int(s), int(e)) for s, e in zip(starts, ends, strict=True))


def source_of(folder: Path, module: str) -> tuple[str | None, str]:
    """(the code of ``module`` in a submission folder, why it was skipped); a notebook's code
    cells count, joined."""
    from dlgrade.safeio import UnsafeEntry, read_file
    from dlgrade.sandbox import notebook

    if notebook.ambiguity(folder, module):
        return None, f"both {module}.py and {module}.ipynb: neither compared"
    path = notebook.module_path(folder, module)
    if path is None:
        return None, ""
    try:
        if path.suffix == ".ipynb":
            return "\n\n".join(c.source for c in notebook.read_cells(path)), ""
        raw = read_file(path.parent, path.name, MAX_SOURCE_BYTES)  # no link, no FIFO
        if b"\0" in raw[:8192]:
            return None, f"{path.name} is binary, not code: not compared"
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text: not compared"
    except (notebook.NotebookError, UnsafeEntry) as exc:
        return None, f"{path.name} could not be read ({str(exc).split(';')[0]}): not compared"
    except OSError as exc:
        return None, f"{path.name} could not be read ({exc.strerror}): not compared"


def skeleton_text(module: str) -> str:
    from importlib import resources

    try:
        return resources.files("dlgrade").joinpath("skeletons", f"{module}.py").read_text()
    except (FileNotFoundError, OSError):
        return ""


def analyse(
    students: list[tuple[str, Path]],
    activities: list[str],
    *,
    reference: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    leak_threshold: float = DEFAULT_LEAK_THRESHOLD,
    common_fraction: float = DEFAULT_COMMON_FRACTION,
) -> Report:
    """Compare every pair of ``students`` (id, folder) on each activity, and each with the
    ``reference`` folder where given."""
    utils = _winnowing()
    report = Report(threshold, leak_threshold)
    for activity in activities:
        module = module_name(activity)
        skeleton = skeleton_text(module)
        boilerplate = []
        if skeleton:
            filtered, _ = utils.filter_code(skeleton, "skeleton.py", "python")
            boilerplate = sorted(fingerprints(filtered, 1)[0])
        codes: list[Code] = []
        for who, folder in students:
            text, why = source_of(Path(folder), module)
            if why:
                report.skipped.append(f"{who}: {why}")
            if text is not None:
                codes.append(Code(who, text).fingerprint(boilerplate))
                report.texts[(activity, who)] = text
        counts = Counter(h for code in codes for h in code.hashes)
        floor = max(COMMON_MINIMUM, math.ceil(common_fraction * len(codes)))
        common = {h for h, n in counts.items() if n >= floor}
        for code in codes:
            code.without(common)
        # only pairs that share a fingerprint can be similar: an inverted index finds them
        holders: dict[int, list[int]] = {}
        for position, code in enumerate(codes):
            for h in code.hashes:
                holders.setdefault(h, []).append(position)
        candidates = {
            pair for group in holders.values() for pair in itertools.combinations(group, 2)
        }
        report.compared += len(codes) * (len(codes) - 1) // 2
        for i, j in sorted(candidates):
            one, other = codes[i], codes[j]
            tokens, ab, ba, slices_a, slices_b = compare(one, other)
            if max(ab, ba) >= threshold:
                report.pairs.append(
                    Pair(
                        activity, one.who, other.who, ab, ba, tokens, COPY_FLAG, slices_a, slices_b
                    )
                )
        if reference is not None:
            text, _ = source_of(Path(reference), module)
            if text is not None:
                solution = Code(REFERENCE, text).fingerprint(boilerplate).without(common)
                report.texts[(activity, REFERENCE)] = text
                for code in codes:
                    tokens, ab, ba, slices_a, slices_b = compare(code, solution)
                    if ab >= leak_threshold:
                        report.pairs.append(
                            Pair(
                                activity,
                                code.who,
                                REFERENCE,
                                ab,
                                ba,
                                tokens,
                                LEAK_FLAG,
                                slices_a,
                                slices_b,
                            )
                        )
    report.pairs.sort(key=lambda p: (-p.score, p.activity, p.a, p.b))
    return report


# -- writing ----------------------------------------------------------------------------------


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in report.pairs:
        writer.writerow(
            [
                p.activity,
                safe_cell(p.a),
                safe_cell(p.b),
                f"{p.a_to_b:.3f}",
                f"{p.b_to_a:.3f}",
                p.tokens,
                p.flag,
            ]
        )
    return buffer.getvalue()


def _esc(text: str) -> str:
    """A student's code or id for the page: escaped, control characters removed."""
    return html.escape(printable(text))


def _highlighted(text: str, slices) -> str:
    out, last = [], 0
    for start, end in sorted(slices):
        start, end = max(start, last), min(end, len(text))
        if start >= end:
            continue
        out.append(_esc(text[last:start]))
        out.append(f"<mark>{_esc(text[start:end])}</mark>")
        last = end
    out.append(_esc(text[last:]))
    return "".join(out)


def render_html(report: Report) -> str:
    """Pairs side by side, the matches highlighted; one page, no network."""
    rows = []
    for n, p in enumerate(report.pairs[:MAX_HTML_PAIRS], start=1):
        left = _highlighted(report.texts.get((p.activity, p.a), ""), p.slices_a)
        right = _highlighted(report.texts.get((p.activity, p.b), ""), p.slices_b)
        rows.append(
            f'<section id="pair-{n}"><h2>{n}. Activity {_esc(p.activity)} · '
            f"{_esc(p.a)} ↔ {_esc(p.b)} <small>({_esc(p.flag)}: "
            f"{p.a_to_b:.0%} of {_esc(p.a)} is in {_esc(p.b)}, {p.b_to_a:.0%} the "
            f"other way; {p.tokens} tokens)</small></h2>"
            f'<div class="side"><pre><b>{_esc(p.a)}</b>\n{left}</pre>'
            f"<pre><b>{_esc(p.b)}</b>\n{right}</pre></div></section>"
        )
    skipped = "".join(f"<li>{_esc(s)}</li>" for s in report.skipped)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>dlgrade similarity</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}pre{background:#f6f6f6;padding:.6em;"
        "overflow:auto;font-size:12px;width:49%;margin:0}.side{display:flex;gap:1%}"
        "mark{background:#ffd54f}small{font-weight:normal;color:#555}</style></head><body>"
        "<h1>Similar submissions</h1>"
        f"<p>{len(report.pairs)} pair(s) at or above {report.threshold:.0%} (a pair) or "
        f"{report.leak_threshold:.0%} (like the reference), of {report.compared} compared. "
        "Similarity is a reason for a second look, not a finding: skeleton text and code "
        "most of the class shares are left out (docs/similarity.md).</p>"
        + (
            f"<p>The {MAX_HTML_PAIRS} most similar are shown; similarity.csv lists all.</p>"
            if len(report.pairs) > MAX_HTML_PAIRS
            else ""
        )
        + "".join(rows)
        + (f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else "")
        + "</body></html>\n"
    )


def write(out: Path, report: Report) -> list[Path]:
    out = Path(out)
    return [
        write_atomic(out / SIMILARITY_CSV, render_csv(report)),
        write_atomic(out / SIMILARITY_HTML, render_html(report)),
    ]


def flagged(out: Path) -> tuple[int, int] | None:
    """(similar pairs, like the reference) from ``out/similarity.csv``, or None if absent."""
    path = Path(out) / SIMILARITY_CSV
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            flags = [row.get("flag", "") for row in csv.DictReader(fh)]
    except (OSError, csv.Error):
        return None
    return flags.count(COPY_FLAG), flags.count(LEAK_FLAG)
