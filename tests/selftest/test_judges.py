"""Every graded test says what it judges (``@pytest.mark.judges(*names, stage=N)``), and every
known-bug variant names the function it breaks: the first failure a student sees is chosen from
these, never from words in test names (read from the suites' source, no test runs)."""
import ast
import sys
from pathlib import Path

import pytest

from grader import manifest

ROOT = Path(__file__).resolve().parents[2]
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def public_names(exercise: str) -> set[str]:
    """Functions, classes, constants and ``Class.method`` names the exercise's stub defines."""
    tree = ast.parse((ROOT / "exercises" / f"{exercise}.py").read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(f"{node.name}.{m.name}" for m in node.body
                             if isinstance(m, ast.FunctionDef) and (not m.name.startswith("_") or m.name == "__init__"))
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name) and t.id.isupper())
    return names


def judges_of(func: ast.FunctionDef):
    for dec in func.decorator_list:
        call = dec if isinstance(dec, ast.Call) else None
        if call is not None and ast.unparse(call.func).endswith("mark.judges"):
            names = [a.value for a in call.args if isinstance(a, ast.Constant)]
            stage = next((k.value.value for k in call.keywords if k.arg == "stage"), 2)
            item = next((k.value.value for k in call.keywords if k.arg == "item"), None)
            return names, stage, item
    return None


def suite_problems(path: Path, exercise: str) -> list[str]:
    known = public_names(exercise)
    items = {i.name for i in manifest.by_name(ROOT / "manifest.toml")[exercise].rubric}
    problems = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        found = judges_of(node)
        if found is None:
            problems.append(f"{path.name}::{node.name} has no @pytest.mark.judges(...)")
            continue
        names, stage, item = found
        if item not in items:
            problems.append(f"{path.name}::{node.name}: item={item!r} is not a rubric item of {exercise} "
                            f"in manifest.toml ({', '.join(sorted(items))})")
        if not names:
            problems.append(f"{path.name}::{node.name}: judges names no function")
        unknown = [n for n in names if n not in known]
        if unknown:
            problems.append(f"{path.name}::{node.name}: judges {unknown}, not public names of {exercise}")
        if stage not in (0, 1, 2, 3):
            problems.append(f"{path.name}::{node.name}: stage {stage!r} (0 contract, 1 shapes, 2 mechanism, "
                            "3 comparison)")
    return problems


def exercises():
    return [e.name for e in manifest.load(ROOT / "manifest.toml")]


@pytest.mark.parametrize("exercise", exercises())
def test_every_graded_test_says_what_it_judges(exercise):
    path = ROOT / "tests" / f"test_{exercise}.py"
    assert not suite_problems(path, exercise), "\n".join(suite_problems(path, exercise))


def functions_by_item(exercise: str) -> dict[str, list[tuple[str, int]]]:
    """item -> [(test function, stage)] as the exercise's suite declares them."""
    out: dict[str, list[tuple[str, int]]] = {}
    tree = ast.parse((ROOT / "tests" / f"test_{exercise}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and judges_of(node):
            _, stage, item = judges_of(node)
            out.setdefault(item, []).append((node.name, stage))
    return out


@pytest.mark.parametrize("exercise", exercises())
def test_every_rubric_item_has_a_test_and_the_contract_holds_at_most_a_tenth(exercise):
    """An item's points are shared equally by its test functions (``grader.grading.run.rubric_shares``),
    so the contract stage's share is known from the source: at most 10 % of the exercise."""
    ex = manifest.by_name(ROOT / "manifest.toml")[exercise]
    by_item = functions_by_item(exercise)
    empty = [i.name for i in ex.rubric if not by_item.get(i.name)]
    assert not empty, f"rubric items of {exercise} with no test: {empty}"
    contract = sum(i.points * sum(stage == 0 for _, stage in by_item[i.name]) / len(by_item[i.name])
                   for i in ex.rubric)
    assert contract <= 0.10 * ex.points + 1e-9, (
        f"{exercise}: the contract stage holds {contract:g} of {ex.points:g} points (more than 10 %)")


@pytest.mark.parametrize("exercise", exercises())
def test_every_known_bug_names_the_function_it_breaks(exercise):
    path = ROOT / "tests" / "bugs" / f"{exercise}.toml"
    if not path.is_file():
        pytest.skip("no known bugs listed")
    known = public_names(exercise)
    problems = []
    for bug in tomllib.loads(path.read_text(encoding="utf-8")).get("bug", []):
        named = bug.get("judges")
        named = [named] if isinstance(named, str) else list(named or [])
        if not named:
            problems.append(f"{bug['name']}: no judges")
        problems += [f"{bug['name']}: judges {n!r}, not a public name of {exercise}" for n in named if n not in known]
        problems += tag_problems(bug, exercise)
    assert not problems, "\n".join(problems)


def tag_problems(bug: dict, exercise: str) -> list[str]:
    """``tag = "core"`` (it breaks one of the chapter's ideas: then ``item`` names that rubric item)
    or ``tag = "contract"`` (a validation or an error type), or no tag."""
    items = {i.name for i in manifest.by_name(ROOT / "manifest.toml")[exercise].rubric}
    tag = bug.get("tag")
    if tag not in (None, "core", "contract"):
        return [f"{bug['name']}: tag {tag!r}, expected 'core' or 'contract'"]
    if tag == "core" and bug.get("item") not in items:
        return [f"{bug['name']}: a core bug names its rubric item (item = one of {sorted(items)}), "
                f"got {bug.get('item')!r}"]
    return []


@pytest.mark.parametrize("exercise", exercises())
def test_every_chapter_listing_says_where_it_comes_from(exercise):
    path = ROOT / "tests" / "bugs" / "listings" / f"{exercise}.toml"
    if not path.is_file():
        pytest.skip("the chapter prints no listing for this exercise")
    problems = []
    for listing in tomllib.loads(path.read_text(encoding="utf-8")).get("listing", []):
        if not listing.get("section") or not listing.get("description"):
            problems.append(f"{listing.get('name')}: a listing gives its section and what was adapted (description)")
        source = listing.get("source")
        if source and not (ROOT / "tests" / "bugs" / source).is_file():
            problems.append(f"{listing.get('name')}: source {source} does not exist")
    assert not problems, "\n".join(problems)


def test_the_checker_finds_a_missing_marker_and_an_unknown_name(tmp_path):
    suite = tmp_path / "test_attention_numpy.py"
    suite.write_text("import pytest\n\n"
                     "@pytest.mark.judges('softmax', stage=1, item='softmax')\ndef test_ok(student):\n    pass\n\n"
                     "def test_bare(student):\n    pass\n\n"
                     "@pytest.mark.judges('softmx', item='softmax')\ndef test_typo(student):\n    pass\n\n"
                     "@pytest.mark.judges('softmax', item='maskin')\ndef test_no_item(student):\n    pass\n")
    problems = suite_problems(suite, "attention_numpy")
    assert len(problems) == 3 and "test_bare" in problems[0] and "softmx" in problems[1], problems
    assert "maskin" in problems[2] and "not a rubric item" in problems[2]
