"""The exercise manifest (``manifest.toml``): order, chapter sections, points, hints."""
from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifest.toml"


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
    call_timeout: float = 30.0
    budget: float = 300.0
    memory_mb: int = 6144
    preload: tuple = ()

    def weight(self, test_name: str) -> float:
        """Weight of one test (by its function name, parameters stripped)."""
        base = test_name.split("[", 1)[0]
        for pattern, w in self.weights.items():
            if fnmatch.fnmatchcase(base, pattern):
                return float(w)
        return 1.0


def load(path: Path = MANIFEST) -> list[Exercise]:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for item in data.get("exercise", []):
        out.append(Exercise(
            name=item["name"], section=str(item["section"]), title=item["title"],
            title_ja=item.get("title_ja", item["title"]), points=float(item["points"]),
            hints=tuple(item.get("hints", ())), hints_ja=tuple(item.get("hints_ja", ())),
            weights=dict(item.get("weights", {})), call_timeout=float(item.get("call_timeout", 30)),
            budget=float(item.get("budget", 300)), memory_mb=int(item.get("memory_mb", 6144)),
            preload=tuple(item.get("preload", ())),
        ))
    return out


def by_name(path: Path = MANIFEST) -> dict[str, Exercise]:
    return {e.name: e for e in load(path)}
