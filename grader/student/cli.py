"""``python -m grader``: grade a folder of exercise modules and report the score."""
from __future__ import annotations

import argparse
import locale
import os
import sys
from pathlib import Path

from grader import manifest as manifest_mod
from grader.i18n import say
from grader import settings
from grader.settings import root
from grader.grading import report as report_mod
from grader.grading.report import clean
from grader.grading.results import ExerciseResult, ExerciseStatus, Report




def default_lang() -> str:
    for key in ("KATA_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(key, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    try:
        loc = locale.getlocale()[0] or ""
    except ValueError:
        loc = ""
    return "ja" if loc.lower().startswith("ja") else "en"


class UsageError(Exception):
    pass


def parse_args(argv):
    settings.root_option(argv)
    names = [e.name for e in manifest_mod.load()]
    p = argparse.ArgumentParser(
        prog="python -m grader",
        description="Grade the Transformer & BERT kata's exercises. "
                    f"Exercises, in chapter order: {', '.join(names)}.")
    p.add_argument("exercise", nargs="*", help="grade only these exercises (default: all)")
    settings.add_root_option(p)
    p.add_argument("--target", default="exercises",
                   help="folder of modules to grade: exercises (default), solutions, or any path")
    p.add_argument("--tests", action="append", default=[], metavar="DIR",
                   help="a further suite folder (an instructor's hidden tests); may repeat")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (auto takes a GPU when there is one)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--gradescope", metavar="FILE", help="write Gradescope's results.json")
    p.add_argument("--fail-under", type=float, metavar="N",
                   help="exit non-zero when the score is below N percent")
    p.add_argument("--verbose", "-v", action="store_true", help="show every failing test")
    p.add_argument("--lang", choices=["en", "ja"], default=None, help="language of messages (default: locale)")
    p.add_argument("--jobs", "-j", type=int, default=0, metavar="N",
                   help="grade up to N exercises side by side (default: the number of CPUs, at most 4)")
    p.add_argument("--require-isolation", metavar="LEVEL",
                   help="refuse to grade (exit status 2) unless the sandbox holds at least LEVEL: "
                        "processes < landlock < namespaces < namespaces+landlock")
    p.add_argument("--exitfirst", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-shrink", action="store_true", help=argparse.SUPPRESS)   # mutation analysis
    args = p.parse_args(argv)
    unknown = [e for e in args.exercise if e not in names]
    if unknown:
        raise UsageError(f"unknown exercise {', '.join(map(repr, unknown))}; valid exercises: {', '.join(names)}")
    args.exercise = args.exercise or names
    target = resolve_target(args.target)
    present = [n for n in names if (target / f"{n}.py").is_file()]
    if not present:
        raise UsageError(f"--target {args.target!r}: {target} holds none of the exercise modules "
                         f"({', '.join(n + '.py' for n in names)})")
    args.target = target
    for d in args.tests:
        if not Path(d).is_dir():
            raise UsageError(f"--tests {d!r}: no such folder")
    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        raise UsageError(f"--fail-under {args.fail_under:g}: must be between 0 and 100 (a percentage)")
    if args.jobs < 0:
        raise UsageError(f"--jobs {args.jobs}: must be 1 or more")
    if args.device not in ("auto", "cpu", "cuda") and not args.device.startswith("cuda:"):
        raise UsageError(f"--device {args.device!r}: use auto, cpu or cuda")
    args.device = resolve_device(args.device)
    args.lang = args.lang or default_lang()
    check_isolation(args.require_isolation)
    return args


def check_isolation(required: str | None) -> None:
    """KATA_ISOLATION must name a level; ``--require-isolation`` a level this machine reaches."""
    from grader.sandbox.controller import FORCED, IsolationError, isolation_mode, isolation_notes, meets

    try:
        mode = isolation_mode()
    except IsolationError as exc:
        raise UsageError(str(exc)) from None
    if required is None:
        return
    if required not in FORCED:
        raise UsageError(f"--require-isolation {required!r}: not a level; use one of "
                         "processes, landlock, namespaces, namespaces+landlock")
    if not meets(mode, required):
        forced = os.environ.get("KATA_ISOLATION")
        notes = isolation_notes()
        why = "; ".join([*([f"KATA_ISOLATION={forced} caps it"] if forced else []), *notes]) \
            or "this machine offers no stronger layer"
        raise UsageError(f"--require-isolation {required}: the sandbox here holds only {mode!r} ({why}); "
                         "nothing was graded")


def resolve_target(text: str) -> Path:
    path = Path(text)
    if not path.is_absolute() and not path.exists() and (root() / text).exists():
        path = root() / text
    if not path.exists():
        raise UsageError(f"--target {text!r}: no such folder")
    if not path.is_dir():
        raise UsageError(f"--target {text!r}: not a folder")
    return path.resolve()


def resolve_device(name: str) -> str:
    import torch

    has_cuda = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if name.startswith("cuda") and not has_cuda:
        raise UsageError(f"--device {name}: this machine has no CUDA GPU that torch can use "
                         f"(torch {torch.__version__}); grade with --device cpu")
    return name


def bar(fraction: float, width: int = 20) -> str:
    """``#`` for the part earned, rounded down: the bar is full only at full marks."""
    fraction = min(max(fraction, 0.0), 1.0)
    full = width if fraction >= 1 - 1e-9 else min(width - 1, int(fraction * width + 1e-9))
    return "#" * full + "-" * (width - full)


def print_header(target: str, device: str, isolation: str, lang: str, out=sys.stdout) -> None:
    try:
        shown = os.path.relpath(target)
    except ValueError:
        shown = target
    print(say("cli.heading", lang, target=shown, device=device, isolation=isolation), file=out)
    if isolation == "processes":
        print(say("cli.no_namespaces", lang), file=out)
    from grader.sandbox.controller import isolation_notes

    for note in isolation_notes():
        print(say("cli.isolation_note", lang, note=note), file=out)
    print(file=out, flush=True)


def print_exercise(ex: ExerciseResult, lang: str, verbose: bool, out=sys.stdout) -> None:
    title = ex.title_ja if lang == "ja" else ex.title
    status = status_text(ex.status.value, lang)
    print(f"  {ex.section:<5} {ex.name:<20} [{bar(ex.fraction)}] {ex.score:>5g} / {ex.max_score:<3g} "
          f"{status}", file=out)
    if ex.chapter_exercises:      # the chapter's end-of-chapter exercises (演習) this one grades
        nums = ", ".join(str(n) for n in ex.chapter_exercises)
        key = "cli.chapter_exercises" if len(ex.chapter_exercises) > 1 else "cli.chapter_exercise"
        title += "  " + say(key, lang, nums=nums)
    print(f"        {title}", file=out)
    if ex.excluded:
        print(say("cli.excluded", lang, n=len(ex.excluded)), file=out)
    if ex.status == ExerciseStatus.FAILING:
        print_rubric(ex, lang, out)
    if ex.status not in (ExerciseStatus.PASSED, ExerciseStatus.NOT_STARTED):
        failed = ex.failed
        if ex.status.shows_message:
            print(indent(clean(ex.message)), file=out)
        elif failed:
            ordered = ex.failures_in_order()          # the most specific failure first
            for test in (ordered if verbose else ordered[:1]):
                if test.name == ex.first_failure and not test.hidden:
                    text = ex.message                 # with the note on which functions it used
                else:
                    text = f"{test.name}: {test.message}"
                print(indent(clean(text, 5000)), file=out)
                if verbose and test.output:
                    print(say("cli.test_output", lang), file=out)
                    print(indent(clean(test.output, 5000), "       | "), file=out)
            if not verbose and len(failed) > 1:
                print(say("cli.more", lang, n=len(failed) - 1), file=out)
        if ex.output_bytes and not verbose:
            print(say("cli.printed", lang, n=ex.output_bytes), file=out)
    out.flush()


def print_rubric(ex: ExerciseResult, lang: str, out=sys.stdout) -> None:
    """The points per idea of the chapter (the manifest's rubric items), and the gate that caps
    the exercise when a core property fails."""
    width = max((len(i.label(lang)) for i in ex.rubric), default=0)
    for it in ex.rubric:
        mark = "ok" if it.passed else "--"
        gate = "  " + say("cli.gate", lang, pct=100 * it.gate) if it.capping else ""
        print(f"        {mark} {it.label(lang):<{width}}  {it.score:>5.2f} / {it.max_score:<5.2f}{gate}", file=out)
    capping = ex.capped_by
    if capping and ex.raw_score is not None:
        print(say("cli.capped", lang, score=ex.score, raw=ex.raw_score,
                  items=", ".join(i.label(lang) for i in capping)), file=out)


def status_text(status: str, lang: str) -> str:
    """An exercise's status (the report's machine word) in the student's language."""
    try:
        return say("cli.status_" + status.replace(" ", "_"), lang)
    except KeyError:
        return status


def print_footer(report: Report, lang: str, out=sys.stdout, every: list[str] | None = None) -> None:
    """The total and what to do next; ``every`` is the manifest's exercises, so a run that graded
    only some of them says so instead of congratulating on the whole kata."""
    for err in report.collect_errors:
        print(say("cli.suite_error", lang, where=err.where) + "\n" + indent(err.error[-1500:]), file=out)
    pct = report.percent
    print(file=out)
    print(f"  [{bar(pct / 100, 40)}] " + say("cli.total", lang, score=report.score, max=report.max_score, pct=pct),
          file=out)
    nxt = report.next_exercise()
    graded = [e.name for e in report.exercises]
    others = [n for n in (every or graded) if n not in graded]
    if nxt is None and others:
        print(say("cli.done_graded", lang, n=len(graded), total=len(graded) + len(others),
                  names=", ".join(graded)), file=out)
    elif nxt is None:
        print(say("cli.done", lang), file=out)
    else:
        print(say("cli.next", lang, name=nxt.name, section=nxt.section), file=out)


def indent(text: str, prefix: str = "     ") -> str:
    return "\n".join(prefix + line for line in str(text).splitlines())


def grade_in_order(args, modules, live, options) -> list:
    """Grade the exercises in chapter order and print each as soon as it is graded: side by side in
    trusted processes (``--jobs`` > 1), or one after the other with the next sandbox launched while
    this one is graded."""
    from grader.grading.run import grade
    from grader.sandbox.controller import close_prestarted, prelaunch
    from grader.settings import sandbox_settings

    hide = [str(Path(d).resolve()) for d in args.tests]

    def launch(name):
        prelaunch(args.target, name, modules, sandbox_settings(args.target, manifest_mod.by_name()[name], args.device, hide=hide))

    jobs = max(1, min(args.jobs or min(4, os.cpu_count() or 1), len(live)))
    parts, pool, futures = [], None, {}
    try:
        if jobs > 1:      # several exercises side by side, each in its own trusted process
            import concurrent.futures as cf
            import multiprocessing

            from grader.grading.run import grade_job, worker_init

            pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=worker_init)
            futures = {n: pool.submit(grade_job, str(args.target), n, options) for n in live}
        elif live:
            launch(live[0])
        for name in args.exercise:
            if name in futures:
                part = futures[name].result()
            else:
                if name in live and live.index(name) + 1 < len(live):
                    launch(live[live.index(name) + 1])
                part = grade(args.target, [name], **options)
            for ex in part.exercises:
                print_exercise(ex, args.lang, args.verbose)
            parts.append(part)
    finally:
        close_prestarted()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return parts


def write_reports(report, args) -> None:
    for option, writer in (("json", report_mod.write_json), ("junit", report_mod.write_junit),
                           ("gradescope", report_mod.write_gradescope)):
        path = getattr(args, option)
        if path:
            writer(report, path)


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except (UsageError, settings.RootNotFound) as exc:
        print(f"grader: error: {exc}", file=sys.stderr)
        return 2
    from grader.grading.run import merge
    from grader.sandbox.controller import isolation_mode
    from grader.settings import untouched_stub

    modules = [e.name for e in manifest_mod.load()]
    live = [n for n in args.exercise if not untouched_stub(args.target, n)]   # the stubs need no sandbox
    print_header(str(args.target), args.device, isolation_mode(), args.lang)
    options = dict(tests_dirs=args.tests, device=args.device, exitfirst=args.exitfirst, lang=args.lang,
                   shrink=not args.no_shrink)
    report = merge(grade_in_order(args, modules, live, options))
    print_footer(report, args.lang, every=modules)
    write_reports(report, args)
    if args.fail_under is not None and report.percent + 1e-9 < args.fail_under:
        print(say("cli.below_fail_under", args.lang, pct=report.percent, fail_under=args.fail_under), file=sys.stderr)
        return 1
    return 0


