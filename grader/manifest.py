"""The exercise manifest (``manifest.toml``): order, chapter sections, points, hints, limits.

It lives in the kata's root (``grader.settings.root()``); limits it does not set take
the defaults of ``grader.settings``."""
from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader import settings
from grader.settings import manifest_path, root  # noqa: F401  (re-exported: grader.manifest.root)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

@dataclass(frozen=True)
class Exercise:
    name: str
    section: str
    title: str
    title_ja: str
    points: float
    hints: tuple = ()
    hints_ja: tuple = ()
    weights: dict = field(default_factory=dict)
    call_timeout: float = settings.CALL_TIMEOUT_S
    budget: float = settings.BUDGET_S
    memory_mb: int = settings.MEMORY_MB
    preload: tuple = ()
    chapter_exercises: tuple = ()       # the chapter's end-of-chapter exercises (演習) it grades

    def weight(self, test_name: str) -> float:
        """Weight of one test (by its function name, parameters stripped)."""
        base = test_name.split("[", 1)[0]
        for pattern, w in self.weights.items():
            if fnmatch.fnmatchcase(base, pattern):
                return float(w)
        return 1.0


def load(path=None) -> list[Exercise]:
    data = tomllib.loads(Path(path or manifest_path()).read_text(encoding="utf-8"))
    out = []
    for item in data.get("exercise", []):
        out.append(Exercise(
            name=item["name"], section=str(item["section"]), title=item["title"],
            title_ja=item.get("title_ja", item["title"]), points=float(item["points"]),
            hints=tuple(item.get("hints", ())), hints_ja=tuple(item.get("hints_ja", ())),
            weights=dict(item.get("weights", {})), call_timeout=float(item.get("call_timeout", settings.CALL_TIMEOUT_S)),
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
