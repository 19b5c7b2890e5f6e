"""``python -m grader.student.watch [EXERCISE]`` (``nox -s watch``): re-grade an exercise each time its
file is saved.

Every grading runs in a fresh process (``spawn``), so an edit to a suite, the manifest or the
grader itself is seen by the next grading, exactly as a fresh ``nox -s grade`` would see it.
That process is started ahead of the save: right after a grading the watcher spawns the next
one, which imports the grader's libraries (pytest, hypothesis, torch, and the exercise's
``preload``) and launches the next sandbox, with its libraries imported; both wait for the
save.  So a save is still graded in about the time the tests themselves take.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import signal
import sys
import time
from pathlib import Path

from grader import manifest as manifest_mod
from grader.i18n import say
from grader import settings
from grader.grading.results import Report
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


# ------------------------------------------------------------------ the grading process (spawned)

def _worker_start() -> None:
    # Ctrl-C in the terminal reaches the whole process group: a waiting worker ignores it (the
    # watcher ends it); a grading one stops its tests (``_grade``)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _prepare(target: str, name: str, device: str) -> None:
    """In the next grading process, before the save: import the libraries grading ``name`` will
    import, and launch its sandbox (``grader.sandbox.controller.prelaunch``; the ``student``
    fixture takes it).  Only third-party libraries are imported here: the suites and the
    grader's grading code are imported by the grading itself, after the save."""
    from grader.sandbox.controller import prelaunch

    ex = manifest_mod.by_name()[name]
    grading = Path(__file__).resolve().parents[1] / "grading"
    suites = [settings.tests_dir() / f"test_{name}.py", *sorted((settings.tests_dir() / name).glob("test_*.py"))]
    warm_imports(["pytest", "hypothesis", "numpy", "torch", *ex.preload],
                 [*sorted(grading.glob("*.py")), *suites], skip={"grader", "tests", *manifest_mod.by_name()})
    prelaunch(Path(target), name, [e.name for e in manifest_mod.load()],
              settings.sandbox_settings(Path(target), ex, device))


def warm_imports(modules, files, skip=()) -> None:
    """Import ``modules`` and what ``files`` import (``from X import Y`` also reads ``X.Y``, so
    lazily loaded names such as ``transformers.BertModel`` load now), except packages in ``skip``."""
    import ast
    import importlib

    wanted = [(m, ()) for m in modules]
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                wanted.extend((a.name, ()) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                wanted.append((node.module, tuple(a.name for a in node.names)))
    for module, names in wanted:
        if module.split(".")[0] in skip:
            continue
        try:
            loaded = importlib.import_module(module)
            for attr in names:
                getattr(loaded, attr, None)
        except Exception:  # noqa: BLE001 - only a head start: the grading imports what it needs
            pass


def _grade(target: str, name: str, device: str, lang: str) -> Report:
    """One grading, in the grading process; a sandbox launched ahead for another exercise is closed."""
    from grader.grading.run import grade
    from grader.sandbox.controller import close_prestarted

    signal.signal(signal.SIGINT, signal.default_int_handler)    # Ctrl-C now stops the tests cleanly
    try:
        return grade(target, [name], device=device, lang=lang)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        close_prestarted()


def _close() -> None:
    from grader.sandbox.controller import close_prestarted

    close_prestarted()


def _context():
    """A forkserver whose server process has imported the third-party libraries once (so each
    grading process is a fresh fork with them already loaded, and nothing of the grader's or the
    suites'); ``spawn`` where there is no forkserver."""
    try:
        ctx = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    ctx.set_forkserver_preload(["pytest", "hypothesis", "numpy", "torch", "transformers"])
    return ctx


class FreshGrader:
    """Grades in a new process each time; the next one is started (and prepared) ahead."""

    def __init__(self, target: Path, device: str, lang: str):
        self.target, self.device, self.lang = str(target), device, lang
        self.pool: cf.ProcessPoolExecutor | None = None
        self.context = _context()

    def prepare(self, name: str) -> None:
        """Start the next grading process and let it prepare for ``name`` while the student edits."""
        self.close()
        self.pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=self.context, initializer=_worker_start)
        self.pool.submit(_prepare, self.target, name, self.device)

    def grade(self, name: str) -> Report:
        if self.pool is None:
            self.prepare(name)
        pool, self.pool = self.pool, None
        try:
            return pool.submit(_grade, self.target, name, self.device, self.lang).result()
        finally:
            pool.shutdown(wait=False)      # the used process exits in the background

    def close(self) -> None:
        """End a prepared process that was never used (it closes its sandbox first)."""
        if self.pool is not None:
            try:
                self.pool.submit(_close).result(timeout=60)
            except Exception:  # noqa: BLE001 - a broken worker: its sandbox dies with it
                pass
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def grade_one(grader: FreshGrader, name: str, lang: str, verbose: bool, out=sys.stdout) -> float:
    started = time.monotonic()
    report = grader.grade(name)
    for ex in report.exercises:
        print_exercise(ex, lang, verbose, out)
    took = time.monotonic() - started
    print(say("watch.took", lang, s=took), file=out, flush=True)
    return took


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    names = manifest_mod.names_for_command(argv, "watch")
    if names is None:
        return 2
    p = argparse.ArgumentParser(prog="nox -s watch --", description=__doc__.splitlines()[0])
    p.add_argument("exercise", nargs="?", help="grade this exercise now, then on every save of any exercise")
    p.add_argument("--target", default="exercises")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lang", choices=["en", "ja"], default=None)
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between checks for saves")
    settings.add_root_option(p)
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
    grader = FreshGrader(target, device, lang)
    try:
        if args.exercise:
            grade_one(grader, args.exercise, lang, args.verbose)
            runs += 1
            grader.prepare(args.exercise)
        print(say("watch.watching", lang, folder=args.target, names=", ".join(names)), flush=True)
        seen = snapshot(target, names)
        while not args.max_runs or runs < args.max_runs:
            time.sleep(args.interval)
            now = snapshot(target, names)
            changed = [n for n in names if now[n] != seen[n] and now[n] is not None]
            seen = now
            for name in changed:
                print(say("watch.grading", lang, name=name), flush=True)
                grade_one(grader, name, lang, args.verbose)
                runs += 1
                grader.prepare(name)
    except KeyboardInterrupt:
        pass
    finally:
        grader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
