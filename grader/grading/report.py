"""Reports: JSON (the grader's own), JUnit XML, and Gradescope's results.json."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from grader.grading.results import Report
from grader.sandbox.controller import safe_text

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str, limit: int = 4000) -> str:
    """Student-controlled text made safe to show: no control characters, no lone surrogates
    (which no terminal or file can encode: shown as \\udXXX), bounded."""
    return safe_text(_CONTROL.sub("?", str(text)), limit)


def write_json(report: Report, path) -> None:
    """The grader's own report (``--json``): ``Report.to_dict()``."""
    Path(path).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8", errors="backslashreplace")


def write_junit(report: Report, path) -> None:
    suites = ET.Element("testsuites", name="kata", tests=str(sum(len(e.tests) for e in report.exercises)))
    props = ET.SubElement(suites, "properties")
    ET.SubElement(props, "property", name="isolation", value=report.isolation)
    ET.SubElement(props, "property", name="device", value=report.device)
    for ex in report.exercises:
        suite = ET.SubElement(suites, "testsuite", name=ex.name, tests=str(len(ex.tests)),
                              failures=str(len(ex.failed)), errors="0", skipped="0")
        if ex.status.shows_message:
            case = ET.SubElement(suite, "testcase", classname=ex.name, name="(exercise)")
            ET.SubElement(case, "failure", message=clean(ex.message, 500)).text = clean(ex.message)
        for t in ex.tests:
            case = ET.SubElement(suite, "testcase", classname=ex.name, name=t.name)
            if not t.passed:
                ET.SubElement(case, "failure", message=clean(t.message, 500)).text = clean(t.message)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def write_gradescope(report: Report, path) -> None:
    tests = []
    for ex in report.exercises:
        for t in ex.tests:
            tests.append({
                "name": f"{ex.section} {ex.name}: {t.name}",
                "score": t.points, "max_score": t.max_points,
                "output": clean(t.message) if not t.passed else "passed",
                "visibility": "after_published" if t.hidden else "visible",
            })
    out = {"score": report.score, "tests": tests,
           "output": f"{report.score:g} / {report.max_score:g} points (isolation: {report.isolation})",
           "visibility": "visible", "stdout_visibility": "hidden"}
    Path(path).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8", errors="backslashreplace")
