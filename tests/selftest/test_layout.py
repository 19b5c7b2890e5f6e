"""The grader's house keeps its floors: read from the imports, function-level ones included.

bottom   grader/settings.py, grader/i18n.py, grader/manifest.py
sandbox  grader/sandbox/      runs the student's module; imports only the bottom floor
grading  grader/grading/      judges; never imports student/ or instructor/
student  grader/student/      the student's commands; never imports instructor/
instructor grader/instructor/ verify, release, bench
"""
import ast
from pathlib import Path

import pytest

GRADER = Path(__file__).resolve().parents[2] / "grader"
FLOORS = {"bottom": 0, "sandbox": 1, "grading": 2, "student": 3, "instructor": 4}
# what each floor may not import (besides being above it)
FORBIDDEN = {
    "bottom": {"sandbox", "grading", "student", "instructor"},
    "sandbox": {"grading", "student", "instructor"},
    "grading": {"student", "instructor"},
    "student": {"instructor"},
    "instructor": set(),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(GRADER.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def floor_of(name: str) -> str:
    parts = name.split(".")
    if len(parts) >= 2 and parts[1] in FLOORS and parts[1] != "bottom":
        return parts[1]
    return "bottom"


def grader_modules() -> dict[str, Path]:
    return {module_name(p): p for p in GRADER.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every grader module ``path`` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    out = set()
    for item in found:
        while item and item not in known:
            item = item.rpartition(".")[0]
        if item and item != name and item != "grader":
            out.add(item)
    return out


@pytest.fixture(scope="module")
def graph():
    mods = grader_modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def test_every_module_lives_on_a_floor():
    top = sorted(p.name for p in GRADER.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "i18n.py", "manifest.py", "settings.py"], top
    folders = sorted(p.name for p in GRADER.iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert folders == ["grading", "instructor", "messages", "sandbox", "student"], folders


def test_lower_floors_never_import_higher_ones(graph):
    broken = []
    for name, deps in graph.items():
        if name == "grader.__main__":
            continue           # the entry point: python -m grader runs the student's command
        floor = floor_of(name)
        for dep in deps:
            if floor_of(dep) in FORBIDDEN[floor]:
                broken.append(f"{name} ({floor}) imports {dep} ({floor_of(dep)})")
    assert not broken, "\n".join(broken)


def test_no_import_cycles(graph):
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_function_level_imports(tmp_path):
    """The reader is not blind: a function-level import in a lower floor is found."""
    fake = GRADER / "sandbox" / "controller.py"
    deps = imports_of(fake, "grader.sandbox.controller", set(grader_modules()))
    assert "grader.settings" in deps and "grader.sandbox.wire" in deps
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from grader.grading import run\n")
    # the package's __init__ runs too: both are imports of the grading floor
    assert imports_of(src, "grader.sandbox.x", set(grader_modules())) == {"grader.grading", "grader.grading.run"}


def test_the_readme_layout_names_every_module_and_folder():
    """README's Layout is the map a new maintainer reads first: every grader module and every
    top-level folder or file a maintainer edits is named in it."""
    readme = (GRADER.parent / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    modules = {p.name for p in GRADER.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    missing = sorted(m for m in modules if m not in layout)
    tracked = ("exercises", "solutions", "tests", "grader", "manifest.toml", "noxfile.py", "data", "scripts",
               "docs", "CONTRIBUTING.md", "CHANGELOG.md", "LICENSE")
    missing += [t for t in tracked if (GRADER.parent / t).exists() and t not in layout]
    assert not missing, f"README's Layout does not name: {', '.join(missing)}"
