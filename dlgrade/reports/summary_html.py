"""``summary.html``: the class at a glance, for the instructor.

One self-contained page — inline CSS and inline SVG, no scripts, nothing fetched — with the
headline numbers, a score histogram per activity, the pass rate of every check (hardest
first), the measured values of the stochastic checks against the calibrated range of correct
work (``checks/calibration.json``, :mod:`dlgrade.calibrate`), the slowest submissions and every
run that ended abnormally. Scores, pass rates and measured values are over the GRADED records:
an INCOMPLETE run is partial and will be regraded, so it is listed, not counted.
"""

from __future__ import annotations

import html
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dlgrade.gradebook import GRADED, INCOMPLETE, Gradebook, StudentRecord
from dlgrade.reports.feedback import activity_title
from dlgrade.reports.gradebook_csv import format_percent, format_points
from dlgrade.reports.grades_json import shared
from dlgrade.text import printable

NO_STUDENTS = "No students graded yet."
SLOWEST = 10
BINS = 10
LABEL_CHARS = 84

BAR = "#4c78a8"
SLOW_BAR = "#7a5195"
RATE_COLOURS = ((0.5, "#d1495b"), (0.8, "#edae49"), (1.01, "#3a9a5b"))
AXIS = "#57606a"
TRACK = "#eaeef2"
BAND = "#a7d7b4"
TICK = "#4c78a8"
LOW_TICK = "#d1495b"
THRESHOLD = "#1f2328"
NOT_CALIBRATED = "not calibrated: run `dlgrade calibrate`"
NO_MEASURED = "No graded check in these records reports a measured value."
WHAT_CHARS = 80

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; margin: 0; background: #f6f8fa; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
h3 { font-size: .95rem; margin: 0 0 .25rem; }
.sub { color: #57606a; margin: 0 0 1rem; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: .6rem 1rem;
        min-width: 120px; }
.card .value { font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .label { color: #57606a; font-size: .8rem; text-transform: uppercase;
               letter-spacing: .04em; }
.card.warn .value { color: #bc4c00; }
.panel { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: .8rem 1rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
        gap: .75rem; }
.caption { color: #57606a; font-size: .85rem; margin: 0 0 .5rem; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #eaeef2;
         vertical-align: top; }
th { font-size: .8rem; color: #57606a; text-transform: uppercase; letter-spacing: .04em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td ul { margin: 0; padding-left: 1.1rem; }
.empty { background: #fff; border: 1px dashed #d0d7de; border-radius: 8px; padding: 2rem;
         text-align: center; color: #57606a; font-size: 1.1rem; }
.incomplete { color: #bc4c00; font-weight: 600; }
code { font-size: .85em; }
footer { color: #57606a; font-size: .8rem; margin-top: 2rem; }
""".strip()


def _esc(text: object) -> str:
    """Escaped for HTML, control characters (a student's names and messages) removed."""
    return html.escape(printable(text), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _feedback_link(book: Gradebook, record: StudentRecord) -> str:
    href = f"feedback/{quote(book.stems[record.student])}.html"
    return f'<a href="{_esc(href)}">{_esc(record.student)}</a>'


def _graded(book: Gradebook) -> list[StudentRecord]:
    return [r for r in book.records if r.status == GRADED]


# ------------------------------------------------------------------------------- headline


def _headline(book: Gradebook) -> str:
    graded = _graded(book)
    percents = [r.percent for r in graded]
    incomplete = sum(1 for r in book.records if r.status == INCOMPLETE)
    cards = [
        ("students", str(len(book.records)), False),
        ("graded", str(len(graded)), False),
        ("incomplete", str(incomplete), incomplete > 0),
        ("mean", f"{format_percent(statistics.fmean(percents))}%" if percents else "—", False),
        ("median", f"{format_percent(statistics.median(percents))}%" if percents else "—", False),
        ("tier", shared(book, "tier") or "—", False),
        ("rubric version", shared(book, "rubric_version") or "—", False),
    ]
    items = "".join(
        f'<div class="card{" warn" if warn else ""}"><div class="value">{_esc(value)}</div>'
        f'<div class="label">{_esc(label)}</div></div>'
        for label, value, warn in cards
    )
    return f'<section class="cards">{items}</section>'


# ----------------------------------------------------------------------------- histograms


def bins(percents: list[float]) -> list[int]:
    """Counts in ten bins of width 10%: [0, 10), ..., [80, 90), [90, 100]."""
    counts = [0] * BINS
    for percent in percents:
        index = int(round(percent, 6) // (100 / BINS))
        counts[min(max(index, 0), BINS - 1)] += 1
    return counts


def histogram_svg(counts: list[int], label: str) -> str:
    width, height = 400, 210
    left, right, top, bottom = 44, 12, 18, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(counts), 1)
    step = plot_w / len(counts)
    parts = [
        f'<svg role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_esc(label)}</title>'
    ]
    ticks = sorted({0, peak, peak // 2} if peak >= 4 else set(range(peak + 1)))
    for tick in ticks:
        y = top + plot_h - plot_h * tick / peak
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{TRACK}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{AXIS}">{tick}</text>'
        )
    for i, count in enumerate(counts):
        if not count:
            continue
        bar_h = plot_h * count / peak
        x, y = left + i * step + 2, top + plot_h - bar_h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step - 4:.1f}" height="{bar_h:.1f}" '
            f'fill="{BAR}"><title>{i * 10}–{i * 10 + 10}%: {count} student(s)</title></rect>'
            f'<text x="{x + (step - 4) / 2:.1f}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="middle" fill="#1f2328">{count}</text>'
        )
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" stroke="{AXIS}"/>'
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" stroke="{AXIS}"/>'
    )
    for i in range(len(counts) + 1):
        x = left + i * step
        parts.append(
            f'<text x="{x:.1f}" y="{base + 15}" font-size="10" text-anchor="middle" '
            f'fill="{AXIS}">{i * 100 // len(counts)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" font-size="11" '
        f'text-anchor="middle" fill="{AXIS}">score on the activity (%)</text>'
        f'<text transform="translate(13 {top + plot_h / 2:.1f}) rotate(-90)" font-size="11" '
        f'text-anchor="middle" fill="{AXIS}">students</text></svg>'
    )
    return "".join(parts)


def _histograms(book: Gradebook) -> str:
    graded = _graded(book)
    panels = []
    for activity in book.activities:
        percents = []
        for record in graded:
            points, possible = record.activity_scores().get(activity, (0.0, 0.0))
            if possible > 0:
                percents.append(100.0 * points / possible)
        title = activity_title(activity)
        if percents:
            caption = (
                f"{len(percents)} graded student(s) · mean "
                f"{format_percent(statistics.fmean(percents))}% · median "
                f"{format_percent(statistics.median(percents))}%"
            )
        else:
            caption = "no graded student has a score on this activity yet"
        panels.append(
            f'<div class="panel"><h3>{_esc(title)}</h3><p class="caption">{_esc(caption)}</p>'
            f"{histogram_svg(bins(percents), f'Score distribution, {title}')}</div>"
        )
    return (
        f'<h2>Score distribution per activity</h2><section class="grid">{"".join(panels)}</section>'
    )


# ----------------------------------------------------------------------------- pass rates


@dataclass(frozen=True)
class PassRate:
    id: str
    title: str
    hidden: bool
    passed: int
    total: int

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


def pass_rates(book: Gradebook) -> list[PassRate]:
    """Every check's pass rate over the graded records, the hardest first."""
    found: dict[str, list] = {}
    for record in _graded(book):
        for check in record.checks:
            entry = found.setdefault(check.id, [check.title or check.id, check.visibility, 0, 0])
            entry[2] += check.passed
            entry[3] += 1
    order = {check_id: i for i, check_id in enumerate(book.check_ids())}
    rates = [
        PassRate(check_id, title, visibility == "hidden", passed, total)
        for check_id, (title, visibility, passed, total) in found.items()
    ]
    return sorted(rates, key=lambda r: (r.rate, order.get(r.id, 0), r.id))


def _rate_colour(rate: float) -> str:
    return next(colour for limit, colour in RATE_COLOURS if rate < limit)


def _rate_label(rate: PassRate) -> str:
    return f"{rate.id} — {rate.title}{' (hidden)' if rate.hidden else ''}"


def pass_rate_svg(rates: list[PassRate]) -> str:
    # about 6.6 px per character of 12 px text; labels longer than LABEL_CHARS are clipped
    longest = max((len(_clip(_rate_label(r), LABEL_CHARS)) for r in rates), default=0)
    label_w = min(max(160, round(longest * 6.6) + 24), 580)
    bar_w, value_w, row_h, top = 420, 114, 24, 28
    width, height = label_w + bar_w + value_w, top + row_h * len(rates) + 8
    parts = [
        f'<svg role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>Pass rate per check</title>'
    ]
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        x = label_w + bar_w * fraction
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{height - 4}" '
            f'stroke="#d0d7de" stroke-dasharray="2 3"/>'
            f'<text x="{x:.1f}" y="{top - 10}" font-size="10" text-anchor="middle" '
            f'fill="{AXIS}">{int(fraction * 100)}%</text>'
        )
    parts.append(
        f'<text x="{label_w - 20}" y="{top - 10}" font-size="10" text-anchor="end" '
        f'fill="{AXIS}">check</text>'
        f'<text x="{label_w + bar_w + 22}" y="{top - 10}" font-size="10" '
        f'fill="{AXIS}">passed/graded</text>'
    )
    for i, rate in enumerate(rates):
        y = top + i * row_h
        full = _rate_label(rate)
        counts = f"{rate.passed}/{rate.total}"
        parts.append(
            f"<g><title>{_esc(full)}: {counts} passed</title>"
            f'<text x="{label_w - 8}" y="{y + 16}" font-size="12" text-anchor="end" '
            f'fill="#1f2328">{_esc(_clip(full, LABEL_CHARS))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="16" fill="{TRACK}"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w * rate.rate:.1f}" height="16" '
            f'fill="{_rate_colour(rate.rate)}"/>'
            f'<text x="{label_w + bar_w + 22}" y="{y + 16}" font-size="12" '
            f'fill="#1f2328">{counts} ({round(100 * rate.rate):d}%)</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _pass_rates(book: Gradebook) -> str:
    rates = pass_rates(book)
    body = pass_rate_svg(rates) if rates else '<p class="caption">No graded checks yet.</p>'
    return (
        "<h2>Pass rate per check</h2>"
        '<p class="caption">Sorted ascending: the checks the class struggles with come first. '
        "Red under 50%, amber under 80%.</p>"
        f'<section class="panel">{body}</section>'
    )


# ------------------------------------------------------------------------- stochastic checks


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None: a record may hold anything (a hostile or broken
    record, a hand-edited calibration), and a report is rebuilt from them on every run."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Calibrated:
    """The calibration of one check: the values of correct work (``dlgrade calibrate``)."""

    low: float
    high: float
    n: int | None
    false_fail: float | None  # the 95 % upper bound on the false-fail rate, over all runs
    false_fail_independent: float | None
    threshold: float | None
    op: str


@dataclass(frozen=True)
class MeasuredCheck:
    """One stochastic check over the class: what it measured, and each student's value."""

    id: str
    what: str
    threshold: float | None
    op: str
    values: tuple[tuple[StudentRecord, float], ...]
    ignored: int  # measured values that were not finite numbers
    calibrated: Calibrated | None

    def outside(self) -> list[tuple[StudentRecord, float]]:
        """The students whose value lies beyond the worst correct run: under the calibrated
        minimum (``>=``), over the maximum (``<=``)."""
        cal = self.calibrated
        if cal is None:
            return []
        if self.op == "<=":
            return [(r, v) for r, v in self.values if v > cal.high]
        return [(r, v) for r, v in self.values if v < cal.low]


def _entry(calibration: Any, check_id: str) -> dict | None:
    if not isinstance(calibration, dict):
        return None
    activity = check_id.split("/", 1)[0]
    activities = calibration.get("activities")
    data = activities.get(activity) if isinstance(activities, dict) else None
    checks = data.get("checks") if isinstance(data, dict) else None
    entry = checks.get(check_id) if isinstance(checks, dict) else None
    return entry if isinstance(entry, dict) else None


def _calibrated(entry: dict | None) -> Calibrated | None:
    """The calibrated range of correct work from a calibration entry; None where the entry
    has no finite range."""
    if entry is None:
        return None
    low, high = finite(entry.get("min")), finite(entry.get("max"))
    if low is None or high is None or low > high:
        return None
    n = finite(entry.get("n"))
    op = entry.get("op")
    return Calibrated(
        low=low,
        high=high,
        n=int(n) if n is not None and n >= 0 else None,
        false_fail=finite(entry.get("false_fail_upper_95")),
        false_fail_independent=finite(entry.get("false_fail_upper_95_independent")),
        threshold=finite(entry.get("threshold")),
        op=op if op in (">=", "<=") else "",
    )


def measured_checks(book: Gradebook, calibration: dict | None = None) -> list[MeasuredCheck]:
    """Every check whose graded records carry a measured value, in the rubric's order."""
    found: dict[str, dict] = {}
    for record in _graded(book):
        for check in record.checks:
            measured = getattr(check, "measured", None)
            if measured is None:
                continue
            entry = found.setdefault(check.id, {"values": [], "rules": Counter(), "ignored": 0})
            value = finite(getattr(measured, "value", None))
            if value is None:
                entry["ignored"] += 1
            else:
                entry["values"].append((record, value))
            threshold = finite(getattr(measured, "threshold", None))
            op = getattr(measured, "op", None)
            if threshold is not None and op in (">=", "<="):
                what = _clip(printable(getattr(measured, "what", "")).strip(), WHAT_CHARS)
                entry["rules"][(what, threshold, op)] += 1
    order = {check_id: i for i, check_id in enumerate(book.check_ids())}
    checks = []
    for check_id in sorted(found, key=lambda c: (order.get(c, 0), c)):
        data = found[check_id]
        # the rule most records were graded by (records of several rubric versions may differ)
        ranked = sorted(data["rules"].items(), key=lambda item: (-item[1], repr(item[0])))
        what, threshold, op = ranked[0][0] if ranked else ("", None, ">=")
        checks.append(
            MeasuredCheck(
                id=check_id,
                what=what,
                threshold=threshold,
                op=op,
                values=tuple(sorted(data["values"], key=lambda rv: (rv[1], rv[0].student))),
                ignored=data["ignored"],
                calibrated=_calibrated(_entry(calibration, check_id)),
            )
        )
    return checks


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _sign(op: str) -> str:
    return "≤" if op == "<=" else "≥"


def _who(book: Gradebook, record: StudentRecord) -> str:
    link = _feedback_link(book, record)
    return f"{_esc(record.name)} ({link})" if record.name else link


def measured_svg(check: MeasuredCheck) -> str:
    """A strip: the calibrated range of correct work as a band, the threshold as a line, a
    tick per student (red beyond the band)."""
    width, height, left, right, top = 300, 40, 8, 8, 6
    plot_w, strip_h = width - left - right, 18
    cal = check.calibrated
    points = [v for _, v in check.values]
    points += [p for p in (check.threshold,) if p is not None]
    points += [cal.low, cal.high] if cal else []
    if not points:
        return ""
    low, high = min(points), max(points)
    # halves: the span of two finite floats can overflow, the span of their halves cannot
    half_span = high / 2 - low / 2

    def x(value: float) -> float:
        if half_span <= 0:
            return left + plot_w / 2
        fraction = (value / 2 - low / 2) / half_span
        return left + plot_w * min(max(fraction, 0.0), 1.0)

    label = f"{check.id}: {len(check.values)} value(s)"
    parts = [
        f'<svg role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_esc(label)}</title>'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{strip_h}" fill="{TRACK}"/>'
    ]
    if cal:
        x0, x1 = x(cal.low), x(cal.high)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 2):.1f}" height="{strip_h}" '
            f'fill="{BAND}"><title>correct work (calibrated): {_number(cal.low)}–'
            f"{_number(cal.high)}</title></rect>"
        )
    outside = {id(r) for r, _ in check.outside()}
    for record, value in check.values:
        colour = LOW_TICK if id(record) in outside else TICK
        xv = x(value)
        parts.append(
            f'<line x1="{xv:.1f}" x2="{xv:.1f}" y1="{top + 3}" y2="{top + strip_h - 3}" '
            f'stroke="{colour}" stroke-width="1.5"><title>{_esc(record.student)}: '
            f"{_number(value)}</title></line>"
        )
    if check.threshold is not None:
        xt = x(check.threshold)
        parts.append(
            f'<line x1="{xt:.1f}" x2="{xt:.1f}" y1="{top - 4}" y2="{top + strip_h + 4}" '
            f'stroke="{THRESHOLD}" stroke-width="2"><title>threshold {_sign(check.op)} '
            f"{_number(check.threshold)}</title></line>"
        )
    base = top + strip_h + 14
    parts.append(
        f'<text x="{left}" y="{base}" font-size="10" fill="{AXIS}">{_number(low)}</text>'
        f'<text x="{left + plot_w}" y="{base}" font-size="10" text-anchor="end" '
        f'fill="{AXIS}">{_number(high)}</text></svg>'
    )
    return "".join(parts)


def _class_cell(check: MeasuredCheck) -> str:
    values = [v for _, v in check.values]
    ignored = f"<br>{check.ignored} value(s) not a finite number, ignored" if check.ignored else ""
    if not values:
        return f"no finite value{ignored}"
    return (
        f"n {len(values)} · min {_number(min(values))} · median "
        f"{_number(statistics.median(values))} · max {_number(max(values))}{ignored}"
    )


def _calibrated_cell(check: MeasuredCheck, entry: dict | None) -> str:
    cal = check.calibrated
    if cal is None:
        if entry is not None:
            return "calibrated, but with no finite range: run <code>dlgrade calibrate</code>"
        return _esc(NOT_CALIBRATED).replace("`dlgrade calibrate`", "<code>dlgrade calibrate</code>")
    bound = f"false-fail ≤ {_share(cal.false_fail)}"
    if cal.false_fail_independent is not None:
        bound += f" (independent trials ≤ {_share(cal.false_fail_independent)})"
    text = (
        f"{_number(cal.low)}–{_number(cal.high)} · n {cal.n if cal.n is not None else '—'}"
        f" · {bound}"
    )
    if (
        cal.threshold is not None
        and check.threshold is not None
        and (cal.threshold != check.threshold or (cal.op and cal.op != check.op))
    ):
        activity = check.id.split("/", 1)[0]
        text += (
            f"<br>calibrated at {_sign(cal.op)} {_number(cal.threshold)}, graded at "
            f"{_sign(check.op)} {_number(check.threshold)}: stale, run "
            f"<code>dlgrade calibrate --activity {_esc(activity)}</code>"
        )
    return text


def _outside_cell(book: Gradebook, check: MeasuredCheck) -> str:
    if check.calibrated is None:
        return "—"
    outside = check.outside()
    if not outside:
        return "none"
    items = "".join(f"<li>{_who(book, record)}: {_number(value)}</li>" for record, value in outside)
    return f"<ul>{items}</ul>"


def _stochastic(book: Gradebook, calibration: dict | None) -> str:
    checks = measured_checks(book, calibration)
    head = (
        "<h2>Stochastic checks</h2>"
        '<p class="caption">Each check that compares a measured value with a threshold: the '
        "class's values (a tick per student; red beyond the worst correct run) against the "
        "range of correct work from <code>checks/calibration.json</code> (green band) and the "
        "threshold (black line). A student beyond the band did worse than any correct run "
        "calibrated; one inside it may have met noise.</p>"
    )
    if not checks:
        return f'{head}<p class="caption">{_esc(NO_MEASURED)}</p>'
    rows = []
    for check in checks:
        threshold = "—"
        if check.threshold is not None:
            threshold = f"{_sign(check.op)} {_number(check.threshold)}"
        beyond = "over" if check.op == "<=" else "under"
        beyond += " the calibrated maximum" if check.op == "<=" else " the calibrated minimum"
        rows.append(
            f"<tr><td><code>{_esc(check.id)}</code></td><td>{_esc(check.what or '—')}</td>"
            f'<td class="num">{_esc(threshold)}</td><td>{_class_cell(check)}</td>'
            f"<td>{_calibrated_cell(check, _entry(calibration, check.id))}</td>"
            f"<td>{measured_svg(check)}</td>"
            f'<td><span class="caption">{beyond}:</span> {_outside_cell(book, check)}</td></tr>'
        )
    return (
        f"{head}<table><thead><tr><th>check</th><th>measured</th><th>threshold</th>"
        "<th>class</th><th>correct work (calibrated)</th><th>values</th>"
        f"<th>beyond correct work</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# ---------------------------------------------------------------------------------- slowest


def _slowest(book: Gradebook) -> str:
    slowest = sorted(book.records, key=lambda r: (-r.wall_s, r.student))[:SLOWEST]
    peak = max((r.wall_s for r in slowest), default=0.0) or 1.0
    rows = []
    for rank, record in enumerate(slowest, 1):
        bar = 300 * record.wall_s / peak
        rows.append(
            f'<tr><td class="num">{rank}</td><td>{_feedback_link(book, record)}</td>'
            f'<td class="num">{record.wall_s:.1f} s</td><td>{_esc(record.status)}</td>'
            f'<td><svg width="300" height="14" '
            f'viewBox="0 0 300 14"><title>{record.wall_s:.1f} s</title>'
            f'<rect x="0" y="2" width="{bar:.1f}" height="10" fill="{SLOW_BAR}"/></svg></td></tr>'
        )
    return (
        f"<h2>Slowest submissions (top {SLOWEST} by wall time)</h2>"
        "<table><thead><tr><th>#</th><th>student</th><th>wall time</th><th>status</th>"
        f"<th>relative to the slowest</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# --------------------------------------------------------------------------------- abnormal


def _what_happened(record: StudentRecord) -> list[str]:
    items = []
    if record.status == INCOMPLETE:
        items.append(
            f'<span class="incomplete">incomplete</span>: {_esc(record.note or "no details")} '
            "— regrade this student"
        )
    for check in record.checks:
        if check.abnormal or check.is_internal_error:
            reason = f" ({check.reason})" if check.reason else ""
            items.append(f"<code>{_esc(check.id)}</code>: {_esc(check.outcome + reason)}")
    return items


def _abnormal(book: Gradebook) -> str:
    rows = []
    for record in book.records:
        items = _what_happened(record)
        if not items:
            continue
        rows.append(
            f"<tr><td>{_feedback_link(book, record)}</td><td>{_esc(record.status)}</td>"
            f'<td class="num">{format_points(record.score)}/{format_points(record.max_score)}'
            f"</td><td><ul>{''.join(f'<li>{item}</li>' for item in items)}</ul></td></tr>"
        )
    if not rows:
        return (
            "<h2>Runs that ended abnormally</h2>"
            '<p class="caption">None: every run ended normally.</p>'
        )
    return (
        f"<h2>Runs that ended abnormally ({len(rows)})</h2>"
        '<p class="caption">Timeouts, crashes, grader errors and runs that did not finish.</p>'
        "<table><thead><tr><th>student</th><th>status</th><th>score</th>"
        f"<th>what happened</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# ------------------------------------------------------------------------------------- page


def _similarity(flagged: tuple[int, int] | None) -> str:
    """A link to the similarity report (instructors' eyes only), when one was made."""
    if flagged is None:
        return ""
    pairs, leaks = flagged
    return (
        "<h2>Similar submissions</h2>"
        f"<p>{pairs} pair(s) of students with similar code, {leaks} submission(s) like the "
        'reference solution: <a href="similarity.html">similarity.html</a> '
        "(<code>similarity.csv</code>). A reason for a second look, not a finding.</p>"
    )


def render(
    book: Gradebook,
    similarity: tuple[int, int] | None = None,
    calibration: dict | None = None,
) -> str:
    """The class's page; ``similarity``: (pairs, like the reference) when a similarity
    report sits beside it; ``calibration``: the rubrics' ``checks/calibration.json``
    (:func:`dlgrade.calibrate.read`), None where there is none."""
    sections = [_headline(book)]
    if book.records:
        sections += [_histograms(book), _pass_rates(book), _stochastic(book, calibration)]
        sections += [_slowest(book), _abnormal(book)]
        sections.append(_similarity(similarity))
        finished = max((r.finished_at for r in book.records), default="")
        footer = f"From {len(book.records)} student record(s); last run finished {finished or '—'}."
    else:
        sections.append(f'<p class="empty">{_esc(NO_STUDENTS)}</p>')
        footer = "From 0 student records."
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                "<title>dlgrade — class summary</title>",
                f"<style>{_CSS}</style></head><body><main>",
                "<h1>dlgrade — class summary</h1>",
                '<p class="sub">Scores and pass rates count graded runs only; incomplete runs are '
                "listed below and regraded on the next run.</p>",
                *sections,
                f"<footer>{_esc(footer)}</footer>",
                "</main></body></html>",
            ]
        )
        + "\n"
    )
