"""``junit.xml``: the class as JUnit XML, one ``<testsuite>`` per student, for CI dashboards.

Failures carry the feedback and each public check's output goes to ``<system-out>``; a
hidden check shows only :data:`~dlgrade.gradebook.HIDDEN_FEEDBACK` (CI dashboards are
often read by students; the full feedback stays in ``grades.json``). ``<error>`` marks a
run that did not end normally (``error``, ``timeout``, ``crash``) or a grader error;
``<failure>`` a wrong answer.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from dlgrade.gradebook import HIDDEN_FEEDBACK, Gradebook, StudentRecord
from dlgrade.rubric import ABNORMAL_OUTCOMES
from dlgrade.text import printable

#: JUnit's "error" (not "failure"): the student's code raised, or the run ended abnormally
ERROR_OUTCOMES = ("error", *ABNORMAL_OUTCOMES)

# characters XML 1.0 does not allow, even escaped
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """Text XML 1.0 can hold, without the control characters a viewer might obey."""
    return _ILLEGAL_XML.sub("", printable(text))


def kind(check: dict[str, Any]) -> str:
    """``passed``, ``failure`` or ``error``."""
    if check.is_internal_error or check.outcome in ERROR_OUTCOMES:
        return "error"
    return "passed" if check.passed else "failure"


def _suite(record: StudentRecord) -> ET.Element:
    kinds = [kind(c) for c in record.checks]
    suite = ET.Element(
        "testsuite",
        {
            "name": xml_text(record.student),
            "tests": str(len(kinds)),
            "failures": str(kinds.count("failure")),
            "errors": str(kinds.count("error")),
            "skipped": "0",
            "time": f"{record.wall_s:.3f}",
            "timestamp": xml_text(record.started_at),
        },
    )
    properties = ET.SubElement(suite, "properties")
    # no seed: the hidden checks' seeds derive from it (it stays in grades.json)
    for name in ("status", "tier", "rubric_version", "note"):
        value = getattr(record, name)
        if value != "":
            ET.SubElement(properties, "property", name=name, value=xml_text(str(value)))
    for check, result in zip(record.checks, kinds, strict=True):
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": xml_text(f"{record.student}.{check.activity}"),
                "name": xml_text(check.id),
                "time": f"{check.duration_s:.3f}",
            },
        )
        if result != "passed":
            message = f"{check.outcome}: {check.reason}" if check.reason else check.outcome
            element = ET.SubElement(case, result, message=xml_text(message), type=check.outcome)
            hidden = check.visibility == "hidden"
            element.text = xml_text(HIDDEN_FEEDBACK if hidden else check.feedback)
        if check.stdout and check.visibility != "hidden":
            ET.SubElement(case, "system-out").text = xml_text(check.stdout)
    return suite


def render(book: Gradebook) -> str:
    root = ET.Element("testsuites", name="dlgrade")
    suites = [_suite(r) for r in sorted(book.records, key=lambda r: r.student)]
    root.set("tests", str(sum(int(s.get("tests")) for s in suites)))
    root.set("failures", str(sum(int(s.get("failures")) for s in suites)))
    root.set("errors", str(sum(int(s.get("errors")) for s in suites)))
    root.extend(suites)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
