"""Grades one folder: runs the suites under pytest here (trusted) and scores the results.

Student code never runs in this process: the suites reach it through sandboxes.
Every test the suites define is expected; one that is skipped, errors, or never
reports counts as failed.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader import manifest as manifest_mod
from grader import settings
from grader.settings import NEEDS_REFERENCE, exercise_of
from grader.i18n import say, set_lang
from grader.grading.results import (STAGE_UNKNOWN, CollectError, ExerciseResult, ExerciseStatus, ItemResult,
                                    Report, TestResult, TestStatus)
from grader.sandbox.controller import isolation_mode

INI = settings.PYTEST_INI


def suite_files(exercise: str, folder: Path) -> list[Path]:
    files = []
    single = folder / f"test_{exercise}.py"
    if single.is_file():
        files.append(single)
    sub = folder / exercise
    if sub.is_dir():
        files.extend(sorted(sub.glob("test_*.py")))
    return files


@dataclass
class CollectedTest:
    """A test the suites define: which exercise it grades, its name, whether it is hidden."""

    exercise: str
    name: str
    hidden: bool = False
    judges: tuple = ()
    stage: int = STAGE_UNKNOWN
    item: str = ""

    @property
    def function(self) -> str:
        """The test function's name (its parametrization stripped)."""
        return self.name.split("[", 1)[0]


@dataclass
class Outcome:
    """What pytest reported for one test (``status`` is passed, failed or excluded)."""

    status: str = "passed"
    kind: str = ""
    message: str = ""
    ran: bool = False
    output: str = ""


EXCLUDED = "excluded"


class Collector:
    """A pytest plugin object that records what was expected and what happened."""

    def __init__(self, hidden_roots):
        self.hidden_roots = [str(Path(h).resolve()) for h in hidden_roots]
        self.items: dict[str, CollectedTest] = {}
        self.results: dict[str, Outcome] = {}
        self.collect_errors: list[tuple[str, str]] = []
        self.sandboxes: dict = {}

    def pytest_collection_modifyitems(self, session, config, items):
        man = manifest_mod.by_name()
        for item in items:
            path = str(Path(item.fspath).resolve())
            hidden = any(path.startswith(h + os.sep) for h in self.hidden_roots)
            visible = item.get_closest_marker("visible") is not None
            judges = item.get_closest_marker("judges")
            self.items[item.nodeid] = CollectedTest(
                exercise_of(item.module, man), item.name, hidden and not visible,
                judges=tuple(str(n) for n in judges.args) if judges else (),
                stage=int(judges.kwargs.get("stage", 2)) if judges else STAGE_UNKNOWN,
                item=str(judges.kwargs.get("item", "")) if judges else "")

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append((report.nodeid, str(report.longrepr)[-3000:]))

    def pytest_runtest_logreport(self, report):
        res = self.results.setdefault(report.nodeid, Outcome())
        props = dict(report.user_properties)
        if props.get("kata_output"):
            res.output = str(props["kata_output"])
        if report.failed and res.status == "passed":
            res.status = "failed"
            res.kind = props.get("kata_kind", "error")
            msg = props.get("kata_message")
            if msg is None:
                msg = say("test_error", when=report.when, what=str(report.longrepr).strip().splitlines()[-1][:500])
            res.message = msg
        elif report.skipped and res.status == "passed":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            if report.when == "setup" and NEEDS_REFERENCE in str(reason):
                # only the trusted fixture skips this way (student code never runs here)
                res.status = EXCLUDED
                res.message = NEEDS_REFERENCE
            else:
                res.status = "failed"
                res.kind = "skipped"
                res.message = say("skipped")
        if report.when == "call" and report.passed and res.status == "passed":
            res.ran = True

    def pytest_sessionfinish(self, session):
        self.sandboxes = getattr(session.config, "kata_sandboxes", {})


def grade(target, exercises, *, tests_dirs=(), device="cpu", exitfirst=False, solutions=None,
          quiet=True, call_timeout=None, start_timeout=None, shrink=True, lang="en", run_stubs=False) -> Report:
    """Grade ``exercises`` of the folder ``target``; return the report."""
    target = Path(target).resolve()
    set_lang(lang)      # the report's own messages (the plugin sets it again for the suites)
    man = manifest_mod.by_name()
    started = time.monotonic()
    files, hidden_roots = [], [str(Path(d).resolve()) for d in tests_dirs]
    for name in exercises:
        files.extend(suite_files(name, settings.tests_dir()))
        for d in tests_dirs:
            files.extend(suite_files(name, Path(d)))
    collector = Collector(hidden_roots)
    args = [*map(str, files), "-c", str(INI), "--rootdir", str(settings.root()), "-p", "grader.grading.plugin",
            "-p", "no:cacheprovider", "--import-mode=importlib", "-q", "--no-header",
            "--kata-target", str(target), "--kata-device", device, "-p", "no:randomly",
            "--basetemp", str(settings.pytest_basetemp())]
    if solutions is not None:
        args += ["--kata-solutions", str(solutions)]
    for d in tests_dirs:
        args += ["--kata-hide", str(Path(d).resolve())]
    if exitfirst:
        args.append("-x")
    if not shrink:
        args.append("--kata-no-shrink")
    if run_stubs:
        args.append("--kata-run-stubs")
    args += ["--kata-lang", lang]
    if call_timeout is not None:
        args += ["--kata-call-timeout", str(call_timeout)]
    if start_timeout is not None:
        args += ["--kata-start-timeout", str(start_timeout)]
    sink = io.StringIO()
    if files:
        if quiet:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                pytest.main(args, plugins=[collector])
        else:
            pytest.main(args, plugins=[collector])
    report = Report(target=str(target), device=device, isolation=isolation_mode())
    for name in exercises:
        tests = {n: it for n, it in collector.items.items() if it.exercise == name}
        report.exercises.append(score_exercise(man[name], tests, collector.results,
                                               collector.sandboxes.get(name, [])))
    report.collect_errors = [CollectError(w, e) for w, e in collector.collect_errors]
    report.seconds = round(time.monotonic() - started, 2)
    return report


def rubric_shares(ex, items: dict[str, CollectedTest]) -> tuple[dict, dict]:
    """How the exercise's points fall on ``items`` (the tests counted, by node id): the rubric item
    each test belongs to and each test's maximum points.  An item's points are shared equally by
    its test functions, a function's share equally by its parametrized cases; an item without a
    test counted here drops out and the others are scaled to keep the exercise's total.  A test
    naming no item of the manifest (an instructor's hidden test) goes to the implicit item
    ``other``, weighted as the average item."""
    declared = {i.name: i for i in ex.rubric}
    item_of = {n: (t.item if t.item in declared else manifest_mod.OTHER_ITEM) for n, t in items.items()}
    average = (sum(i.points for i in ex.rubric) / len(ex.rubric)) if ex.rubric else ex.points
    weight = {name: (declared[name].points if name in declared else average) for name in set(item_of.values())}
    total = sum(weight.values()) or 1.0
    functions: dict[str, dict[str, list[str]]] = {}
    for n, t in items.items():
        functions.setdefault(item_of[n], {}).setdefault(t.function, []).append(n)
    shares = {}
    for name, funcs in functions.items():
        item_points = ex.points * weight[name] / total
        for nodes in funcs.values():
            for n in nodes:
                shares[n] = item_points / len(funcs) / len(nodes)
    return item_of, shares


def rubric_results(ex, tests: list[TestResult], raw: list[tuple[float, float]]) -> list[ItemResult]:
    """The points per rubric item, in the manifest's order (``other`` last), for the items that
    have a test counted here (``raw``: each test's points and maximum, unrounded)."""
    declared = {i.name: i for i in ex.rubric}
    out = []
    for name in [*declared, manifest_mod.OTHER_ITEM]:
        mine = [(t, r) for t, r in zip(tests, raw) if t.item == name]
        if not mine:
            continue
        spec = declared.get(name)
        out.append(ItemResult(
            name=name, title=spec.title if spec else say("other_item", lang="en"),
            title_ja=spec.title_ja if spec else say("other_item", lang="ja"),
            score=round(sum(r[0] for _, r in mine), 3), max_score=round(sum(r[1] for _, r in mine), 3),
            tests=len(mine), failed=sum(not t.passed for t, _ in mine), gate=spec.gate if spec else None))
    return out


def score_exercise(ex, items: dict[str, CollectedTest], results: dict[str, Outcome], sandboxes) -> ExerciseResult:
    """Score one exercise (a ``grader.manifest.Exercise``) from its collected tests (``items``, by
    node id), what pytest reported for them (``results``) and the sandboxes that served them
    (anything with ``dead``, ``import_error``, ``proc`` and ``drain.total``).

    Points are split over the manifest's rubric items and, within an item, over its tests
    (``rubric_shares``; a test that needs the reference and cannot have it is excluded, not
    failed); a failed gate item caps the exercise at its gate; a test with no report, or a passing
    report without a call, failed; a dead sandbox zeroes the exercise; a hidden test's message
    is replaced by "hidden test failed"."""
    excluded = [n for n in items if results.get(n, Outcome()).status == EXCLUDED]
    counted = {n: items[n] for n in items if n not in excluded}
    item_of, shares = rubric_shares(ex, counted)
    tests, raw, score = [], [], 0.0
    dead = next((s.dead for s in sandboxes if s.dead is not None), None)
    import_error = next((s.import_error for s in sandboxes if s.import_error is not None), None)
    output_bytes = sum(s.drain.total for s in sandboxes if s.proc is not None)
    hidden_cases: dict[str, int] = {}
    for n, item in counted.items():
        res = results.get(n)
        if res is None or (res.status == "passed" and not res.ran):
            res = Outcome("failed", "not-run", say("not_run"))
        max_points = shares[n]
        passed = res.status == "passed" and dead is None
        points = max_points if passed else 0.0
        score += points
        raw.append((points, max_points))
        message = res.message
        if item.hidden and not passed:
            message = say("hidden_failed")
        shown_name = item.name
        if item.hidden and "[" in item.name:      # a hidden test's parametrize id may carry its inputs
            base = item.name.split("[", 1)[0]
            hidden_cases[base] = hidden_cases.get(base, 0) + 1
            shown_name = f"{base}[hidden case {hidden_cases[base]}]"
        tests.append(TestResult(name=shown_name, status=TestStatus.PASSED if passed else TestStatus.FAILED,
                                kind="" if passed else res.kind, points=round(points, 3),
                                max_points=round(max_points, 3), message="" if passed else message,
                                hidden=item.hidden, judges=list(item.judges), stage=item.stage,
                                item=item_of[n], output="" if item.hidden else res.output))
    rubric = rubric_results(ex, tests, raw)
    raw_score = score
    for it in rubric:
        if it.capping:
            score = min(score, it.gate * ex.points)
    failed = sorted((t for t in tests if not t.passed), key=lambda t: t.specificity)
    if dead is not None:
        status = ExerciseStatus(dead.kind)
        message = say("dead", kind=say("kind_" + dead.kind), detail=dead.detail)
        score = raw_score = 0.0
    elif import_error is not None:
        status, message = ExerciseStatus.ERROR, say("import_failed", name=ex.name, what=import_error.describe())
    elif not tests and excluded:
        status, message = ExerciseStatus.NOT_CHECKED, say("all_need_reference")
    elif not tests:
        status, message = ExerciseStatus.ERROR, say("no_tests")
    elif not failed:
        status, message = ExerciseStatus.PASSED, ""
    elif all(t.kind == "not-started" for t in failed) and len(failed) == len(tests):
        status, message = ExerciseStatus.NOT_STARTED, say("all_not_started")
    else:
        status = ExerciseStatus.FAILING
        message = f"{failed[0].name}: {failed[0].message}" + integration_note(failed[0], tests)
    return ExerciseResult(name=ex.name, section=ex.section, title=ex.title, title_ja=ex.title_ja,
                          chapter_exercises=list(ex.chapter_exercises),
                          score=round(score, 2), max_score=round(ex.points, 2), status=status,
                          message=message, output_bytes=output_bytes, tests=tests,
                          first_failure=failed[0].name if failed and status == ExerciseStatus.FAILING else "",
                          output=shown_output(tests),
                          excluded=[items[n].name for n in excluded], rubric=rubric,
                          raw_score=round(raw_score, 2) if raw_score - score > 1e-9 else None)


def integration_note(first: TestResult, tests: list[TestResult]) -> str:
    """When the first failure judges several of the student's names and some of them pass all
    their own tests, say so: the bug is most likely in the others."""
    if len(first.judges) < 2:
        return ""
    own_ok = [n for n in first.judges
              if any(t.judges == [n] for t in tests) and all(t.passed for t in tests if t.judges == [n])]
    if not own_ok:
        return ""
    return "\n" + say("integration", names=", ".join(first.judges), ok=", ".join(own_ok))


def shown_output(tests: list[TestResult]) -> str:
    """What the student's code printed during the visible tests, in order, capped."""
    text = "".join(t.output for t in tests if t.output and not t.hidden)
    return text[: settings.OUTPUT_SHOW_BYTES]


def merge(parts: list[Report]) -> Report:
    """One report from several ``grade`` reports of the same target (one per exercise)."""
    return Report.merge(parts)


def worker_init() -> None:
    """A grading worker next to others: one torch thread each, so they do not fight over cores."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def grade_job(target: str, exercise: str, options: dict) -> Report:
    """``grade`` of one exercise, for a process pool."""
    return grade(target, [exercise], **options)
