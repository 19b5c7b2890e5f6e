"""The exercise manifest (``manifest.toml``): order, chapter sections, points, hints, limits.

It lives in the kata's root (``grader.settings.root()``); limits it does not set take
the defaults of ``grader.settings``."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader import settings
from grader.settings import manifest_path, root  # noqa: F401  (re-exported: grader.manifest.root)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# An instructor's hidden test that names no rubric item (``item=`` in its ``judges`` marker) is
# scored in this implicit item, weighted as the exercise's average item.
OTHER_ITEM = "other"


@dataclass(frozen=True)
class RubricItem:
    """One idea of the chapter that an exercise grades (``[[exercise.rubric]]``): its points are
    shared by the tests that name it (``@pytest.mark.judges(..., item=NAME)``), equally per test
    function, a function's share split over its parametrized cases.  A ``gate`` (a fraction) caps
    the whole exercise at ``gate * points`` while any test of the item fails: a core property
    (causality, the 80/10/10 law, padding never counts) cannot be bought back with edge cases."""

    name: str
    title: str
    title_ja: str
    points: float
    gate: float | None = None

    def label(self, lang: str = "en") -> str:
        return self.title_ja if lang == "ja" else self.title


@dataclass(frozen=True)
class Exercise:
    name: str
    section: str
    title: str
    title_ja: str
    points: float
    hints: tuple = ()
    hints_ja: tuple = ()
    rubric: tuple = ()                  # RubricItem, in the manifest's order
    call_timeout: float = settings.CALL_TIMEOUT_S
    budget: float = settings.BUDGET_S
    memory_mb: int = settings.MEMORY_MB
    preload: tuple = ()
    chapter_exercises: tuple = ()       # the chapter's end-of-chapter exercises (演習) it grades

    def item(self, name: str) -> RubricItem | None:
        return next((i for i in self.rubric if i.name == name), None)


class ManifestError(ValueError):
    pass


def _rubric(exercise: dict) -> tuple:
    items = []
    for raw in exercise.get("rubric", []):
        name = raw.get("item")
        if not name or not isinstance(name, str):
            raise ManifestError(f"{exercise['name']}: a rubric item without a name (item = \"...\")")
        gate = raw.get("gate")
        if gate is not None and not 0 <= float(gate) < 1:
            raise ManifestError(f"{exercise['name']}/{name}: gate = {gate!r}, must be a fraction in [0, 1)")
        items.append(RubricItem(name=name, title=raw.get("title", name), title_ja=raw.get("title_ja", raw.get("title", name)),
                                points=float(raw["points"]), gate=None if gate is None else float(gate)))
    names = [i.name for i in items]
    if len(set(names)) != len(names) or OTHER_ITEM in names:
        raise ManifestError(f"{exercise['name']}: rubric item names must be unique and not {OTHER_ITEM!r}: {names}")
    if items and abs(sum(i.points for i in items) - float(exercise["points"])) > 1e-6:
        raise ManifestError(f"{exercise['name']}: its rubric items' points add up to "
                            f"{sum(i.points for i in items):g}, not the exercise's {float(exercise['points']):g}")
    return tuple(items)


def load(path=None) -> list[Exercise]:
    data = tomllib.loads(Path(path or manifest_path()).read_text(encoding="utf-8"))
    out = []
    for item in data.get("exercise", []):
        out.append(Exercise(
            name=item["name"], section=str(item["section"]), title=item["title"],
            title_ja=item.get("title_ja", item["title"]), points=float(item["points"]),
            hints=tuple(item.get("hints", ())), hints_ja=tuple(item.get("hints_ja", ())),
            rubric=_rubric(item), call_timeout=float(item.get("call_timeout", settings.CALL_TIMEOUT_S)),
            budget=float(item.get("budget", settings.BUDGET_S)),
            memory_mb=int(item.get("memory_mb", settings.MEMORY_MB)),
            preload=tuple(item.get("preload", ())),
            chapter_exercises=tuple(int(n) for n in item.get("chapter_exercises", ())),
        ))
    return out


def by_name(path=None) -> dict[str, Exercise]:
    return {e.name: e for e in load(path)}


def names_for_command(argv, prog: str) -> list[str] | None:
    """The exercise names, in order, for a command line: ``--root`` applied first.  None (after one
    line on stderr) when there is no kata there."""
    try:
        settings.root_option(argv)
        return [e.name for e in load()]
    except settings.RootNotFound as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None
