"""``python -m grader.student.hint EXERCISE [--level N]``: the manifest's hints, one level at a time."""
from __future__ import annotations

import argparse
import sys

from grader import manifest as manifest_mod
from grader.i18n import say
from grader import settings
from grader.student.cli import default_lang



def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        settings.root_option(argv)
        exercises = manifest_mod.by_name()
    except settings.RootNotFound as exc:
        print(f"hint: error: {exc}", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(prog="nox -s hint --", description="Show an exercise's hints, gentlest first.")
    p.add_argument("exercise", help=f"one of: {', '.join(exercises)}")
    p.add_argument("--level", type=int, default=1, help="show hints 1..LEVEL (default 1)")
    p.add_argument("--lang", choices=["en", "ja"], default=None)
    settings.add_root_option(p)
    args = p.parse_args(argv)
    if args.exercise not in exercises:
        print(f"hint: error: unknown exercise {args.exercise!r}; valid exercises: {', '.join(exercises)}",
              file=sys.stderr)
        return 2
    lang = args.lang or default_lang()
    ex = exercises[args.exercise]
    hints = (ex.hints_ja if lang == "ja" and ex.hints_ja else ex.hints)
    if not hints:
        print(say("hint.none", lang, name=ex.name))
        return 0
    if args.level < 1:
        print(f"hint: error: --level {args.level}: must be 1 or more", file=sys.stderr)
        return 2
    level = min(args.level, len(hints))
    for i in range(level):
        print(say("hint.hint", lang, i=i + 1, n=len(hints), name=ex.name, section=ex.section))
        print(f"  {hints[i]}\n")
    print(say("hint.more", lang, name=ex.name, next=level + 1) if level < len(hints) else say("hint.last", lang))
    return 0


if __name__ == "__main__":
    sys.exit(main())
