"""The grader's report as types: ``Report`` > ``ExerciseResult`` > ``TestResult``, and the statuses.

``grader.grading.run.grade`` returns a ``Report``; the CLI prints it, ``grader.grading.report``
writes it (JSON, JUnit, Gradescope), ``verify`` and ``bench`` judge it.  ``to_dict`` gives the
JSON of ``python -m grader --json`` (its schema is the contract: ``score``, ``max_score``,
``exercises: [{name, score, max_score, status, tests: [{name, status, points, max_points,
message}]}]`` plus the fields below); ``from_dict`` reads it back.  Everything here is plain
data, so a report crosses a process pool (``grade_job``) by pickling.

The statuses are ``str`` enums: ``ExerciseStatus.PASSED == "passed"`` holds, and the JSON holds
the plain strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


# What a test judges (``@pytest.mark.judges(*names, stage=N)``): the stages, most basic first.
STAGES = {0: "contract", 1: "shapes", 2: "mechanism", 3: "comparison"}
STAGE_UNKNOWN = 9       # a test without the marker (only an instructor's hidden suite may have one)


class TestStatus(str, Enum):
    """One graded test: it passed, or it did not (failed, errored, was skipped, never ran)."""

    __test__ = False        # not a pytest test class

    PASSED = "passed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class ExerciseStatus(str, Enum):
    """One exercise, as the student sees it."""

    PASSED = "passed"               # every test passed
    FAILING = "failing"             # some tests failed (the first one's message is shown)
    NOT_STARTED = "not started"     # the untouched stub, or every test met NotImplementedError
    NOT_CHECKED = "not checked"     # every test needs the instructor's reference (a student copy)
    ERROR = "error"                 # the module does not import, or no test was found
    # the sandbox died (grader.sandbox.controller.SandboxDied.kind): the exercise scores 0
    TIMEOUT = "timeout"
    CRASH = "crash"
    MEMORY = "memory"
    PROTOCOL = "protocol"
    START = "start"

    def __str__(self) -> str:
        return self.value

    @property
    def sandbox_died(self) -> bool:
        return self in SANDBOX_DIED

    @property
    def shows_message(self) -> bool:
        """The exercise's own message says it all (no per-test failure to show instead)."""
        return self not in (ExerciseStatus.PASSED, ExerciseStatus.FAILING, ExerciseStatus.NOT_STARTED)


SANDBOX_DIED = frozenset({ExerciseStatus.TIMEOUT, ExerciseStatus.CRASH, ExerciseStatus.MEMORY,
                          ExerciseStatus.PROTOCOL, ExerciseStatus.START})


@dataclass
class TestResult:
    """One test function (one parametrization) of an exercise's suites."""

    __test__ = False

    name: str
    status: TestStatus
    points: float
    max_points: float
    message: str = ""
    kind: str = ""            # why it failed: failed, error, not-started, needs-other, memory, skipped, not-run, ...
    hidden: bool = False      # from an instructor's hidden suite: its message (and output) is not shown
    judges: list[str] = field(default_factory=list)   # the public names whose behaviour it pins down
    stage: int = STAGE_UNKNOWN                        # STAGES: contract, shapes, mechanism, comparison
    item: str = ""            # the rubric item (the chapter's idea) its points belong to
    output: str = ""          # what the student's code printed while it ran (capped; never for hidden tests)

    @property
    def passed(self) -> bool:
        return self.status == TestStatus.PASSED

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status.value, "kind": self.kind, "points": self.points,
                "max_points": self.max_points, "message": self.message, "hidden": self.hidden,
                "judges": list(self.judges), "stage": self.stage, "item": self.item, "output": self.output}

    @classmethod
    def from_dict(cls, d: dict) -> "TestResult":
        return cls(name=d["name"], status=TestStatus(d["status"]), points=float(d["points"]),
                   max_points=float(d["max_points"]), message=d.get("message", ""), kind=d.get("kind", ""),
                   hidden=bool(d.get("hidden", False)), judges=list(d.get("judges", [])),
                   stage=int(d.get("stage", STAGE_UNKNOWN)), item=d.get("item", ""), output=d.get("output", ""))

    @property
    def specificity(self) -> tuple:
        """Sort key of the failure to show first: the lowest stage, then the fewest names judged."""
        return (self.stage, len(self.judges) or 99)


@dataclass
class ItemResult:
    """One rubric item of an exercise (``grader.manifest.RubricItem``) as graded: the points its
    tests earned, and whether it is a gate that failed (capping the exercise)."""

    name: str
    title: str
    title_ja: str
    score: float
    max_score: float
    tests: int
    failed: int
    gate: float | None = None

    @property
    def passed(self) -> bool:
        return self.failed == 0

    @property
    def capping(self) -> bool:
        return self.gate is not None and self.failed > 0

    def label(self, lang: str = "en") -> str:
        return self.title_ja if lang == "ja" else self.title

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "title_ja": self.title_ja, "score": self.score,
                "max_score": self.max_score, "tests": self.tests, "failed": self.failed, "gate": self.gate}

    @classmethod
    def from_dict(cls, d: dict) -> "ItemResult":
        return cls(name=d["name"], title=d.get("title", d["name"]), title_ja=d.get("title_ja", d["name"]),
                   score=float(d["score"]), max_score=float(d["max_score"]), tests=int(d.get("tests", 0)),
                   failed=int(d.get("failed", 0)), gate=None if d.get("gate") is None else float(d["gate"]))


@dataclass
class ExerciseResult:
    name: str
    score: float
    max_score: float
    status: ExerciseStatus
    message: str = ""
    tests: list[TestResult] = field(default_factory=list)
    section: str = ""
    title: str = ""
    title_ja: str = ""
    chapter_exercises: list[int] = field(default_factory=list)   # the chapter's 演習 this one grades
    output_bytes: int = 0                               # what the student's code printed (counted)
    output: str = ""                                    # of which shown (capped, hidden tests' left out)
    first_failure: str = ""                             # the test the terminal shows first
    excluded: list[str] = field(default_factory=list)   # tests not counted here (they need the reference)
    rubric: list[ItemResult] = field(default_factory=list)   # the points per idea of the chapter
    raw_score: float | None = None                      # the tests' points before a failed gate capped them

    @property
    def failed(self) -> list[TestResult]:
        return [t for t in self.tests if not t.passed]

    def failures_in_order(self) -> list[TestResult]:
        """The failed tests, most specific first (lowest stage, fewest names judged; ties keep the
        suite's order, which follows the chapter)."""
        return sorted(self.failed, key=lambda t: t.specificity)

    @property
    def fraction(self) -> float:
        return self.score / self.max_score if self.max_score else 0.0

    @property
    def capped_by(self) -> list[ItemResult]:
        """The gate items that failed: while one does, the exercise scores at most its gate."""
        return [i for i in self.rubric if i.capping]

    def to_dict(self) -> dict:
        return {"name": self.name, "section": self.section, "title": self.title, "title_ja": self.title_ja,
                "chapter_exercises": list(self.chapter_exercises), "score": self.score, "max_score": self.max_score, "status": self.status.value,
                "message": self.message, "first_failure": self.first_failure,
                "output_bytes": self.output_bytes, "output": self.output,
                "tests": [t.to_dict() for t in self.tests], "excluded": list(self.excluded),
                "rubric": [i.to_dict() for i in self.rubric], "raw_score": self.raw_score,
                "capped_by": [i.name for i in self.capped_by]}

    @classmethod
    def from_dict(cls, d: dict) -> "ExerciseResult":
        return cls(name=d["name"], score=float(d["score"]), max_score=float(d["max_score"]),
                   status=ExerciseStatus(d["status"]), message=d.get("message", ""),
                   tests=[TestResult.from_dict(t) for t in d.get("tests", [])], section=d.get("section", ""),
                   title=d.get("title", ""), title_ja=d.get("title_ja", ""),
                   chapter_exercises=[int(n) for n in d.get("chapter_exercises", [])],
                   output_bytes=int(d.get("output_bytes", 0)), output=d.get("output", ""),
                   first_failure=d.get("first_failure", ""), excluded=list(d.get("excluded", [])),
                   rubric=[ItemResult.from_dict(i) for i in d.get("rubric", [])],
                   raw_score=None if d.get("raw_score") is None else float(d["raw_score"]))


@dataclass
class CollectError:
    """A suite that could not be collected (a bug in the suite, never the student's)."""

    where: str
    error: str

    def to_dict(self) -> dict:
        return {"where": self.where, "error": self.error}


@dataclass
class Report:
    """One grading of one folder."""

    target: str = ""
    device: str = "cpu"
    isolation: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
    collect_errors: list[CollectError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(e.score for e in self.exercises), 2)

    @property
    def max_score(self) -> float:
        return round(sum(e.max_score for e in self.exercises), 2)

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    def next_exercise(self) -> ExerciseResult | None:
        """The first exercise, in chapter order, that does not pass yet."""
        return next((e for e in self.exercises if e.status != ExerciseStatus.PASSED), None)

    def to_dict(self) -> dict:
        return {"target": self.target, "device": self.device, "isolation": self.isolation,
                "exercises": [e.to_dict() for e in self.exercises], "seconds": self.seconds,
                "score": self.score, "max_score": self.max_score,
                "collect_errors": [c.to_dict() for c in self.collect_errors]}

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        return cls(target=d.get("target", ""), device=d.get("device", "cpu"), isolation=d.get("isolation", ""),
                   exercises=[ExerciseResult.from_dict(e) for e in d.get("exercises", [])],
                   collect_errors=[CollectError(c["where"], c["error"]) for c in d.get("collect_errors", [])],
                   seconds=float(d.get("seconds", 0.0)))

    @classmethod
    def merge(cls, parts: list["Report"]) -> "Report":
        """One report from several reports of the same target (one per exercise)."""
        first = parts[0] if parts else cls()
        return cls(target=first.target, device=first.device, isolation=first.isolation,
                   exercises=[e for p in parts for e in p.exercises],
                   collect_errors=[c for p in parts for c in p.collect_errors],
                   seconds=round(sum(p.seconds for p in parts), 2))
