"""The message catalog, grader/messages/<lang>/<domain>.toml: every language has the same files,
keys and placeholders, and every key the code asks for exists.

The helpers take the catalog folder and the source folders as arguments, so that the tests can
also show that each check fails on a broken catalog (a temporary copy missing a key).
"""
from __future__ import annotations

import ast
import shutil
import string
import sys
from pathlib import Path

from grader import i18n

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "grader", ROOT / "tests")


def load(catalog_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    """{lang: {domain: {key: text}}} of every language folder in ``catalog_dir``."""
    out = {}
    for lang_dir in sorted(p for p in catalog_dir.iterdir() if p.is_dir()):
        out[lang_dir.name] = {f.stem: tomllib.loads(f.read_text(encoding="utf-8"))
                              for f in sorted(lang_dir.glob("*.toml"))}
    return out


def placeholders(text: str) -> set[str]:
    """The field names of a ``str.format`` template (``{got!r:.3}`` -> ``got``)."""
    return {field.split(".")[0].split("[")[0]
            for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def catalog_problems(catalog_dir: Path) -> list[str]:
    """Differences between the languages: files, keys, placeholders, non-text or unparsable values."""
    cat = load(catalog_dir)
    problems = []
    if set(cat) != set(i18n.LANGUAGES):
        problems.append(f"languages {sorted(cat)}, expected {sorted(i18n.LANGUAGES)}")
    langs = sorted(cat)
    domains = set().union(*(set(d) for d in cat.values())) if cat else set()
    for domain in sorted(domains):
        for lang in langs:
            if domain not in cat[lang]:
                problems.append(f"{lang}/{domain}.toml is missing")
        keys = set().union(*(set(cat[lang].get(domain, {})) for lang in langs))
        for key in sorted(keys):
            seen = {}
            for lang in langs:
                if domain not in cat[lang]:
                    continue
                text = cat[lang][domain].get(key)
                if text is None:
                    problems.append(f"{domain}.{key} is missing in {lang}/{domain}.toml")
                    continue
                if not isinstance(text, str):
                    problems.append(f"{domain}.{key} in {lang}/{domain}.toml is not a string")
                    continue
                try:
                    seen[lang] = placeholders(text)
                except ValueError as exc:
                    problems.append(f"{domain}.{key} in {lang}/{domain}.toml is not a valid template: {exc}")
            if len({frozenset(v) for v in seen.values()}) > 1:
                problems.append(f"{domain}.{key}: placeholders differ between languages: "
                                + "; ".join(f"{lang} {sorted(v)}" for lang, v in sorted(seen.items())))
    return problems


def message_calls(folders=SOURCES):
    """(where, call node) of every ``say(...)`` / ``msg(...)`` call in the .py files under ``folders``."""
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    if name in ("say", "msg"):
                        yield f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}", node


def call_problems(catalog_dir: Path, folders=SOURCES) -> list[str]:
    """Calls whose literal key is not in the catalog (in every language), whose keyword values do
    not cover the key's placeholders, or that still pass inline text (two positional strings)."""
    cat = load(catalog_dir)
    problems = []
    for where, node in message_calls(folders):
        args = node.args
        strings = [a for a in args if isinstance(a, ast.JoinedStr)
                   or (isinstance(a, ast.Constant) and isinstance(a.value, str))]
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        if name == "msg" and len(strings) >= 2:
            problems.append(f"{where}: msg(...) with two texts; use a catalog key")
            continue
        if not args or not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
            continue          # a computed key (e.g. "cli.status_" + status): checked where it is built
        key = args[0].value
        full = key if "." in key else f"grader.{key}"
        domain, _, short = full.partition(".")
        given = {k.arg for k in node.keywords if k.arg is not None}
        spread = any(k.arg is None for k in node.keywords)          # **values: cannot tell statically
        for lang, domains in sorted(cat.items()):
            text = domains.get(domain, {}).get(short)
            if text is None:
                problems.append(f"{where}: key {full!r} is not in {lang}/{domain}.toml")
            elif not spread and not placeholders(text) <= given - {"lang"}:
                problems.append(f"{where}: {full!r} needs {sorted(placeholders(text))}, "
                                f"the call gives {sorted(given - {'lang'})}")
    return problems


# ------------------------------------------------------------------ the real catalog

def test_languages_have_same_files_keys_and_placeholders():
    assert catalog_problems(i18n.CATALOG_DIR) == []


def test_every_key_used_exists_and_gets_its_values():
    assert call_problems(i18n.CATALOG_DIR) == []


def test_the_scan_sees_the_suites_and_the_grader():
    wheres = [w for w, _ in message_calls()]
    assert sum(w.startswith("tests/test_") for w in wheres) > 250
    assert any(w.startswith("grader/student/cli.py") for w in wheres)
    assert any(w.startswith("grader/grading/run.py") for w in wheres)


def test_catalog_loads_every_language():
    for lang in i18n.LANGUAGES:
        assert i18n.say("cli.done", lang)
        assert i18n.text("not_run", lang) == i18n.catalog(lang)["grader.not_run"]


# ------------------------------------------------------------------ the checks can fail

def _copy(tmp_path) -> Path:
    dst = tmp_path / "messages"
    shutil.copytree(i18n.CATALOG_DIR, dst)
    return dst


def _drop_line(path: Path, prefix: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [l for l in lines if not l.startswith(prefix)]
    assert len(kept) == len(lines) - 1
    path.write_text("".join(kept), encoding="utf-8")


def test_a_key_missing_in_one_language_is_reported(tmp_path):
    cat = _copy(tmp_path)
    _drop_line(cat / "ja" / "cli.toml", "done = ")
    assert catalog_problems(cat) == ["cli.done is missing in ja/cli.toml"]
    assert any("'cli.done' is not in ja/cli.toml" in p for p in call_problems(cat))


def test_a_missing_file_and_a_placeholder_mismatch_are_reported(tmp_path):
    cat = _copy(tmp_path)
    (cat / "en" / "hint.toml").unlink()
    path = cat / "ja" / "watch.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("{name}", "{nom}"), encoding="utf-8")
    problems = catalog_problems(cat)
    assert "en/hint.toml is missing" in problems
    assert any(p.startswith("watch.grading: placeholders differ") for p in problems), problems


def test_inline_pairs_unknown_keys_and_missing_values_are_reported(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "test_x.py").write_text(
        "from grader.i18n import msg, say\n"
        "a = msg('weights', '重み')\n"
        "b = msg(f'got {x}', f'{x} でした')\n"
        "c = say('cli.no_such_key')\n"
        "d = say('cli.total', 'ja', score=1)\n"
        "e = msg('cli.more', n=2)\n", encoding="utf-8")
    problems = call_problems(i18n.CATALOG_DIR, [src])
    assert len(problems) == 2 + 2 + 2, problems      # c and d: once per language
    assert sum("two texts" in p for p in problems) == 2
    assert sum("'cli.no_such_key' is not in" in p for p in problems) == 2
    assert sum("'cli.total' needs ['max', 'pct', 'score']" in p for p in problems) == 2


def test_msg_takes_only_a_key():
    import pytest

    pair = ("attention weights", "注意の重み")      # not literal arguments: the scan above skips them
    with pytest.raises(TypeError):
        i18n.msg(*pair)
    with pytest.raises(KeyError, match="not in grader/messages"):
        i18n.msg(pair[0])
