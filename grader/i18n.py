"""The message catalog: every sentence the grader and the suites show, in English and Japanese.

One folder per language, ``grader/messages/<lang>/``, one TOML file per domain (``grader``,
``cli``, ``hint``, ``watch``, ``plots``, and one per exercise for its suite's own messages, e.g.
``attention_torch.toml``), flat ``key = "text"`` entries, the same files, keys and
``{placeholders}`` in every language (``tests/selftest/test_messages.py`` fails
when a key lacks a language).  ``say("domain.key", **values)`` looks a message up in the current
language (``--lang``); a key without a domain is in ``grader``.  Suites call ``msg``, the same
function under the name their authors know.

The bottom floor of the grader: imports nothing from ``grader``.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LANGUAGES = ("en", "ja")
CATALOG_DIR = Path(__file__).with_name("messages")
LANG = {"current": "en"}


def set_lang(lang: str) -> None:
    LANG["current"] = "ja" if lang == "ja" else "en"


def current_lang() -> str:
    return LANG["current"]


@functools.lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    """``{"domain.key": text}`` of one language."""
    out = {}
    for path in sorted((CATALOG_DIR / lang).glob("*.toml")):
        table = tomllib.loads(path.read_text(encoding="utf-8"))
        for key, value in table.items():
            out[f"{path.stem}.{key}"] = value
    return out


def text(key: str, lang: str | None = None) -> str:
    """The unformatted message ``key`` in ``lang`` (default: the current language)."""
    full = key if "." in key else f"grader.{key}"
    try:
        return catalog(lang or LANG["current"])[full]
    except KeyError:
        domain = full.split(".", 1)[0]
        raise KeyError(f"message {full!r} is not in grader/messages/{lang or LANG['current']}/{domain}.toml") from None


def say(key: str, /, lang: str | None = None, **values) -> str:
    """The message ``key`` in the current language (or ``lang``), its placeholders filled."""
    return text(key, lang).format(**values)


def msg(key: str, /, **values) -> str:
    """A suite's own message, in the current language: ``msg("attention_torch.weights_dtype", dtype=...)``
    reads ``attention_torch.toml``'s ``weights_dtype`` (``say`` under the name suites use)."""
    return say(key, **values)
