"""summary.html's "Stochastic checks": the class's measured values against the calibrated
range of correct work (checks/calibration.json) and the threshold (issue 28, item 2)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlgrade import calibrate
from dlgrade.gradebook import INCOMPLETE, Gradebook, StudentRecord
from dlgrade.reports import summary_html
from dlgrade.reports.exports import write_exports
from dlgrade.rubric import CheckResult, Measured
from tests.helpers import check, record

FUZZ_EXAMPLES = int(os.environ.get("DLGRADE_FUZZ_EXAMPLES", "0")) or 60
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SCRIPT = "<script>alert('pwned')</script>"
ACCURACY = "2.01/training_reaches_book_accuracy"
RMSE = "2.01/regression_rmse_is_low"
WHAT = "best training accuracy"


def measured_check(check_id: str, value, threshold=0.95, op=">=", what=WHAT) -> dict:
    passes = value >= threshold if op == ">=" else value <= threshold
    return {
        **check(check_id, "pass" if passes else "fail"),
        "measured": {"what": what, "value": value, "threshold": threshold, "op": op},
    }


def entry(low: float, high: float, threshold: float = 0.95, op: str = ">=", n: int = 25):
    return {
        "stochastic": True,
        "measured": WHAT,
        "threshold": threshold,
        "op": op,
        "n": n,
        "false_fail_upper_95": 0.112928,
        "false_fail_upper_95_independent": 0.283129,
        "min": low,
        "median": (low + high) / 2,
        "max": high,
    }


def calibration(checks: dict) -> dict:
    data = calibrate.empty()
    for check_id, value in checks.items():
        data["activities"].setdefault(check_id.split("/")[0], {"checks": {}})["checks"][
            check_id
        ] = value
    return data


CLASS = {"alice": 0.99, "bob": 0.992, "carol": 0.90, "dave": 0.96}
CALIBRATION = calibration({ACCURACY: entry(0.985, 1.0)})


def class_book() -> Gradebook:
    return Gradebook.of(
        [record(name, [measured_check(ACCURACY, value)]) for name, value in CLASS.items()]
    )


def section(page: str) -> str:
    return page[page.index("<h2>Stochastic checks") : page.index("<h2>Slowest")]


def row(page: str, check_id: str) -> str:
    part = section(page)
    start = part.index(f"<code>{check_id}</code>")
    return part[start : part.index("</tr>", start)]


def svg_numbers(text: str) -> list[str]:
    return re.findall(r'\b(?:x|x1|x2|y|y1|y2|width|height)="([^"]*)"', text)


def assert_finite_geometry(text: str) -> None:
    for number in svg_numbers(text):
        assert math.isfinite(float(number)), number


# --------------------------------------------------------------------------------- examples


def test_the_section_shows_the_class_the_band_the_threshold_and_who_is_under_it():
    page = summary_html.render(class_book(), calibration=CALIBRATION)
    line = row(page, ACCURACY)
    assert WHAT in line and "≥ 0.95" in line
    # the class: n, min, median, max
    assert "n 4 · min 0.9 · median 0.975 · max 0.992" in line
    # the calibrated range of correct work, its n and false-fail bound
    assert "0.985–1 · n 25 · false-fail ≤ 11.3 %" in line and "28.3 %" in line
    # the strip: a band, the threshold as a line, a tick per student (red beyond the band)
    svg = line[line.index("<svg") : line.index("</svg>")]
    assert f'fill="{summary_html.BAND}"' in svg
    assert "<title>threshold ≥ 0.95</title>" in svg
    assert svg.count(f'stroke="{summary_html.TICK}"') == 2
    assert svg.count(f'stroke="{summary_html.LOW_TICK}"') == 2
    for name, value in CLASS.items():
        assert f"<title>{name}: {value:.4g}</title>" in svg
    assert_finite_geometry(svg)
    # under the calibrated minimum 0.985: carol and dave, lowest first, linked to feedback
    beyond = line[line.index("under the calibrated minimum") :]
    assert re.findall(r">(alice|bob|carol|dave)</a>", beyond) == ["carol", "dave"]
    assert '<a href="feedback/carol.html">carol</a>: 0.9' in beyond


def test_the_strip_places_the_ticks_in_order_between_the_bounds():
    page = summary_html.render(class_book(), calibration=CALIBRATION)
    svg = row(page, ACCURACY)
    ticks = {
        name: float(x) for x, name in re.findall(r'<line x1="([^"]+)"[^>]*><title>(\w+): ', svg)
    }
    assert sorted(ticks, key=ticks.get) == ["carol", "dave", "alice", "bob"]
    threshold = float(re.search(r'<line x1="([^"]+)"[^>]*><title>threshold', svg).group(1))
    assert ticks["carol"] < threshold < ticks["dave"]


def test_an_at_most_check_lists_those_over_the_calibrated_maximum():
    book = Gradebook.of(
        [
            record(name, [measured_check(RMSE, value, 0.5, "<=", "validation RMSE")])
            for name, value in {"erin": 0.31, "frank": 0.44, "grace": 0.38}.items()
        ]
    )
    page = summary_html.render(book, calibration=calibration({RMSE: entry(0.30, 0.40, 0.5, "<=")}))
    line = row(page, RMSE)
    assert "≤ 0.5" in line and "validation RMSE" in line
    beyond = line[line.index("over the calibrated maximum") :]
    assert re.findall(r">(erin|frank|grace)</a>", beyond) == ["frank"]


def test_without_a_calibration_each_measured_check_says_not_calibrated():
    for given_calibration in (None, calibrate.empty(), calibration({"2.01/other": entry(0, 1)})):
        page = summary_html.render(class_book(), calibration=given_calibration)
        line = row(page, ACCURACY)
        assert "not calibrated: run <code>dlgrade calibrate</code>" in line
        assert f'fill="{summary_html.BAND}"' not in line
        assert "n 4 · min 0.9" in line  # the class's values are still shown


def test_a_calibration_made_at_another_threshold_is_called_stale():
    page = summary_html.render(
        class_book(), calibration=calibration({ACCURACY: entry(0.985, 1.0, threshold=0.9)})
    )
    assert "stale, run <code>dlgrade calibrate --activity 2.01</code>" in row(page, ACCURACY)
    assert "stale" not in summary_html.render(class_book(), calibration=CALIBRATION)


def test_no_measured_check_says_so():
    book = Gradebook.of([record("alice", [check("1.01/converges")])])
    assert summary_html.NO_MEASURED in section(summary_html.render(book, calibration=CALIBRATION))


def test_incomplete_records_are_not_counted():
    book = Gradebook.of(
        [
            *class_book().records,
            record("zed", [measured_check(ACCURACY, 0.1)], status=INCOMPLETE),
        ]
    )
    line = row(summary_html.render(book, calibration=CALIBRATION), ACCURACY)
    assert "n 4 · min 0.9" in line and "zed" not in line


def test_hostile_names_and_labels_are_escaped():
    book = Gradebook.of(
        [
            record(SCRIPT, [measured_check(ACCURACY, 0.5, what=SCRIPT)], name=SCRIPT + "\x1b[2J"),
            record("alice", [measured_check(ACCURACY, 0.99)]),
        ]
    )
    page = summary_html.render(book, calibration=CALIBRATION)
    assert "<script" not in page and "\x1b" not in page
    beyond = row(page, ACCURACY)
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in beyond


def broken(student: str, measured) -> StudentRecord:
    """A record whose check holds ``measured`` as it is (no from_dict filtering)."""
    result = dataclasses.replace(CheckResult.from_dict(check(ACCURACY)), measured=measured)
    return dataclasses.replace(record(student, [check(ACCURACY)]), checks=(result,))


def test_broken_values_are_ignored_and_never_crash():
    book = Gradebook.of(
        [
            broken("nan", Measured(WHAT, math.nan, 0.95)),
            broken("inf", Measured(WHAT, -math.inf, 0.95)),
            broken("text", Measured(WHAT, "0.97", 0.95)),  # type: ignore[arg-type]
            broken("none", Measured(WHAT, None, 0.95)),  # type: ignore[arg-type]
            broken("bool", Measured(WHAT, True, 0.95)),  # type: ignore[arg-type]
            broken("bigint", Measured(WHAT, 10**400, 0.95)),
            broken("badop", Measured(WHAT, 0.97, math.nan, "??")),
            broken("huge", Measured(WHAT, 1.7e308, 0.95)),
            broken("tiny", Measured(WHAT, -1.7e308, 0.95)),
            # through a stored record: a NaN or a string value is not a measurement at all
            record("stored-nan", [measured_check(ACCURACY, 0.97) | {"measured": {"value": "nan"}}]),
        ]
    )
    page = summary_html.render(book, calibration=CALIBRATION)
    line = row(page, ACCURACY)
    assert "n 3 · min -1.7e+308 · median 0.97 · max 1.7e+308" in line
    assert "6 value(s) not a finite number, ignored" in line
    assert not re.search(r"\bnan\b|\binf\b", line, re.IGNORECASE)
    assert_finite_geometry(line)
    beyond = line[line.index("under the calibrated minimum") :]
    # badop's threshold is no number, but its value is: counted, and under the band
    assert re.findall(r">([\w-]+)</a>", beyond) == ["tiny", "badop"]


def test_a_stored_value_too_large_for_a_float_is_no_measurement():
    stored = measured_check(ACCURACY, 0.97) | {
        "measured": {"what": WHAT, "value": 10**400, "threshold": 0.95, "op": ">="}
    }
    book = Gradebook.of([record("big", [stored]), *class_book().records])
    assert book.records[1].checks[0].measured is None  # sorted: alice, big, ...
    assert "n 4 · min 0.9" in row(summary_html.render(book, calibration=CALIBRATION), ACCURACY)


def test_a_broken_calibration_entry_is_not_a_range():
    for bad in (
        {"min": "0.9", "max": 1.0},
        {"min": math.nan, "max": 1.0},
        {"min": 1.0, "max": 0.5},
        {"min": 0.9},
        "not a dict",
    ):
        page = summary_html.render(class_book(), calibration=calibration({ACCURACY: bad}))
        line = row(page, ACCURACY)
        assert f'fill="{summary_html.BAND}"' not in line
    for bad_file in ({"activities": []}, {"activities": {"2.01": {"checks": 3}}}, "x", 7):
        summary_html.render(class_book(), calibration=bad_file)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ through the writer


def test_write_exports_reads_the_calibration_beside_the_rubrics(tmp_path):
    rubrics = tmp_path / "checks"
    rubrics.mkdir()
    calibrate.write(rubrics / calibrate.FILE, CALIBRATION)
    write_exports(tmp_path / "out", class_book(), rubrics)
    page = (tmp_path / "out" / "summary.html").read_text(encoding="utf-8")
    assert "0.985–1 · n 25" in row(page, ACCURACY)
    # no rubric folder, no calibration file, or an unreadable one: "not calibrated"
    (tmp_path / "empty").mkdir()
    for root in (None, tmp_path / "empty", rubrics):
        if root == rubrics:
            (rubrics / calibrate.FILE).write_text("{ not json", encoding="utf-8")
        write_exports(tmp_path / "out", class_book(), root)
        page = (tmp_path / "out" / "summary.html").read_text(encoding="utf-8")
        assert summary_html.NOT_CALIBRATED.split(":")[0] in row(page, ACCURACY)


def test_the_committed_calibration_file_renders(tmp_path):
    root = Path(__file__).resolve().parents[1] / "checks"
    data = calibrate.read(root / calibrate.FILE)
    ids = [
        check_id
        for activity in data["activities"].values()
        for check_id, e in activity["checks"].items()
        if e.get("stochastic") and isinstance(e.get("min"), float)
    ]
    if not ids:
        return  # nothing calibrated yet: the examples above cover the rendering
    check_id = ids[0]
    e = data["activities"][check_id.split("/")[0]]["checks"][check_id]
    book = Gradebook.of(
        [record("alice", [measured_check(check_id, e["min"], e["threshold"], e["op"])])]
    )
    page = summary_html.render(book, calibration=data)
    assert f"{e['min']:.4g}–{e['max']:.4g} · n {e['n']}" in row(page, check_id)


# ---------------------------------------------------------------------------------- property

anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(max_size=20),
    st.none(),
    st.booleans(),
)
labels = st.text(max_size=30) | st.just(SCRIPT)


@FUZZ
@given(
    entries=st.lists(
        st.tuples(labels, anything, anything, st.sampled_from([">=", "<=", "", SCRIPT]), labels),
        min_size=1,
        max_size=6,
    ),
    cal=st.tuples(anything, anything, anything, anything),
)
def test_any_measured_value_renders_escaped_and_finite(entries, cal):
    records = []
    for i, (name, value, threshold, op, what) in enumerate(entries):
        measured = Measured(what, value, threshold, op)  # type: ignore[arg-type]
        records.append(dataclasses.replace(broken(f"s{i}", measured), name=name))
        # and the same value through a stored record (from_dict)
        stored = measured_check(ACCURACY, 0.97) | {
            "measured": {"what": what, "value": value, "threshold": threshold, "op": op}
        }
        records.append(record(f"t{i}", [stored], name=name))
    low, high, n, bound = cal
    given_calibration = calibration(
        {ACCURACY: {"min": low, "max": high, "n": n, "false_fail_upper_95": bound}}
    )
    page = summary_html.render(Gradebook.of(records), calibration=given_calibration)
    assert "<script" not in page.lower()
    assert_finite_geometry(section(page))
