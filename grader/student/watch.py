"""``python -m grader.student.watch [EXERCISE]`` (``nox -s watch``): re-grade an exercise each time its
file is saved.

The watcher keeps the grader's own imports (pytest, hypothesis, torch, transformers) warm,
and after every grading spawns the next sandbox ahead of time, with its libraries already
imported, so that a save is graded in about the time the tests themselves take.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from grader import manifest as manifest_mod
from grader.i18n import say
from grader.student.cli import UsageError, default_lang, print_exercise, resolve_device, resolve_target


def snapshot(folder: Path, names) -> dict:
    out = {}
    for name in names:
        try:
            st = (folder / f"{name}.py").stat()
            out[name] = (st.st_mtime_ns, st.st_size)
        except OSError:
            out[name] = None
    return out


def prestart(target: Path, name: str, device: str) -> None:
    """Launch the next sandbox for ``name`` now, so the next save skips the library imports."""
    from grader.settings import sandbox_settings
    from grader.sandbox.controller import prelaunch

    prelaunch(target, name, [e.name for e in manifest_mod.load()], sandbox_settings(target, manifest_mod.by_name()[name], device))


def grade_one(target: Path, name: str, device: str, lang: str, verbose: bool, out=sys.stdout) -> float:
    from grader.grading.run import grade

    started = time.monotonic()
    report = grade(target, [name], device=device, lang=lang)
    for ex in report["exercises"]:
        print_exercise(ex, lang, verbose, out)
    took = time.monotonic() - started
    print(say("watch.took", lang, s=took), file=out, flush=True)
    return took


def main(argv=None) -> int:
    names = [e.name for e in manifest_mod.load()]
    p = argparse.ArgumentParser(prog="nox -s watch --", description=__doc__.splitlines()[0])
    p.add_argument("exercise", nargs="?", help="grade this exercise now, then on every save of any exercise")
    p.add_argument("--target", default="exercises")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lang", choices=["en", "ja"], default=None)
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between checks for saves")
    p.add_argument("--max-runs", type=int, default=0, help=argparse.SUPPRESS)   # tests and bench
    args = p.parse_args(argv)
    try:
        if args.exercise and args.exercise not in names:
            raise UsageError(f"unknown exercise {args.exercise!r}; valid exercises: {', '.join(names)}")
        target = resolve_target(args.target)
        device = resolve_device(args.device)
    except UsageError as exc:
        print(f"watch: error: {exc}", file=sys.stderr)
        return 2
    lang = args.lang or default_lang()
    runs = 0
    if args.exercise:
        grade_one(target, args.exercise, device, lang, args.verbose)
        runs += 1
        prestart(target, args.exercise, device)
    print(say("watch.watching", lang, folder=args.target, names=", ".join(names)), flush=True)
    seen = snapshot(target, names)
    try:
        while not args.max_runs or runs < args.max_runs:
            time.sleep(args.interval)
            now = snapshot(target, names)
            changed = [n for n in names if now[n] != seen[n] and now[n] is not None]
            seen = now
            for name in changed:
                print(say("watch.grading", lang, name=name), flush=True)
                grade_one(target, name, device, lang, args.verbose)
                runs += 1
                prestart(target, name, device)
    except KeyboardInterrupt:
        pass
    finally:
        from grader.sandbox.controller import close_prestarted

        close_prestarted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
