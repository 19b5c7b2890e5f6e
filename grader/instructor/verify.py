"""``python -m grader.instructor.verify``: the project's own check of its suites.

It fails unless
- ``solutions/`` scores full marks on every exercise;
- the untouched ``exercises/`` score 0, and every graded test fails on them;
- every known-bug variant in ``tests/bugs/<exercise>.toml`` loses points, and the first failure a
  student is shown judges the function the variant breaks (its ``judges``);
- every alternative-style variant there keeps full marks;
- the rubric ranks understanding (``rubric_problems``): a bug tagged ``core`` (it breaks one of the
  chapter's ideas, its ``item``) loses at least 40 % of that rubric item and scores at most 85 % of
  its exercise, and the median core bug of the whole kata at most 60 %; a bug tagged ``contract``
  (a missing validation, a wrong error type) loses at most 15 %; every ``[[listing]]`` (the
  chapter's own code, adapted only where a docstring documents a difference) scores at least 90 %.

It also reads ``tests/mutation/results.json`` (written by ``nox -s mutation``) and warns when an
exercise's mutation result is missing or was computed against another solution or suite; with
``--strict-mutation`` that is a failure.  (A warning by default: suites change far more often
than a full mutation run, which takes hours on 2 cores, can be repeated.)
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from grader import manifest as manifest_mod
from grader import settings
from grader.manifest import root
from grader.grading.results import ExerciseStatus, Report
from grader.grading.run import worker_init



class VariantError(Exception):
    pass


# ------------------------------------------------------------------ the record of verified variants
# Grading a variant is deterministic given the same inputs, so a variant already verified on exactly
# these files is not graded again: tests/bugs/verified.json maps each variant to the sha256 of
# everything its verdict depends on (the variant itself, every solution, its suites and its exercise's
# message catalogs, the data, the grading code -- grader/ but its student/ and instructor/ commands and
# the other exercises' catalogs --, the manifest and the pins).  Any change to one of them re-grades it;
# --no-cache grades everything; --write-cache records what passed.  Solutions and stubs are always graded.
VERIFIED = Path("tests") / "bugs" / "verified.json"
KINDS = ("bug", "alternative", "listing")

# The rubric's targets (issue 24): what a grade must say about a known variant.
CORE_ITEM_LOSS = 0.40       # a core bug loses at least this share of its rubric item's points
CORE_MAX = 0.85             # and keeps at most this share of its exercise
CORE_MEDIAN_MAX = 0.60      # the median core bug of the kata keeps at most this
CONTRACT_MAX_LOSS = 0.15    # a contract bug loses at most this share of its exercise
LISTING_MIN = 0.90          # the chapter's own listings keep at least this


def _files_hash(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(str(path.relative_to(root())).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def common_inputs_hash() -> str:
    """What every variant's verdict depends on, whatever its exercise."""
    base = root()
    grader = [p for p in (base / "grader").rglob("*") if p.suffix in (".py", ".toml", ".ini", ".json")
              and not p.relative_to(base / "grader").parts[0] in ("student", "instructor")   # the code that grades
              and p not in exercise_messages()                      # (an exercise's messages: its own key)
              and p.name != "stubs.json"]                           # (the stubs' hashes: stubs are always graded)
    paths = [*grader, *(base / "solutions").glob("*.py"), *(base / "data").rglob("*"),
             *(base / name for name in ("manifest.toml", "constraints.txt", "pyproject.toml"))]
    return _files_hash(p for p in paths if p.is_file())


def variant_key(variant: dict, common: str) -> str:
    from grader.grading.run import suite_files

    suites = suite_files(variant["exercise"], root() / "tests")
    digest = hashlib.sha256(common.encode())
    digest.update(json.dumps(variant, sort_keys=True, ensure_ascii=False).encode())
    if variant.get("source"):
        digest.update(source_path(variant).read_bytes())
    digest.update(_files_hash(suites).encode())
    digest.update(_files_hash(exercise_messages(variant["exercise"])).encode())
    return digest.hexdigest()


def exercise_messages(exercise: str | None = None) -> list[Path]:
    """The message catalogs of one exercise (``grader/messages/<lang>/<exercise>.toml``), or of
    every exercise: only that exercise's suite uses them, so they key its variants alone."""
    names = [exercise] if exercise else list(manifest_mod.by_name(root() / "manifest.toml"))
    return [p for p in sorted((root() / "grader" / "messages").glob("*/*.toml")) if p.stem in names]


def variant_id(variant: dict) -> str:
    return f"{variant['exercise']}/{variant['kind']}/{variant['name']}"


def load_verified() -> dict:
    """variant id -> {"key": sha256 of its inputs, "fraction": its score / max, "item_loss": the share
    of its rubric item it lost (core bugs)}; older records (a bare key) read as stale."""
    path = root() / VERIFIED
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in record.items() if isinstance(v, dict) and "key" in v}


def source_path(variant: dict) -> Path:
    """A variant's whole module (``source``, relative to ``tests/bugs/``): a chapter listing."""
    return root() / "tests" / "bugs" / variant["source"]


def load_variants(exercise: str) -> list[dict]:
    """The exercise's variants: ``tests/bugs/<exercise>.toml`` (bugs and alternatives) and
    ``tests/bugs/listings/<exercise>.toml`` (the chapter's listings; their modules beside it)."""
    out = []
    for path in (root() / "tests" / "bugs" / f"{exercise}.toml", root() / "tests" / "bugs" / "listings" / f"{exercise}.toml"):
        if not path.is_file():
            continue
        data = manifest_mod.tomllib.loads(path.read_text(encoding="utf-8"))
        for kind in KINDS:
            for item in data.get(kind, []):
                out.append({"kind": kind, "exercise": exercise, **item})
    return out


def apply_variant(variant: dict, folder: Path) -> None:
    """Edit ``folder``'s copy of the module as the variant says; each ``find`` must occur
    exactly ``count`` times (default 1) so a stale variant is caught, not silently ignored."""
    path = folder / variant.get("file", f"{variant['exercise']}.py")
    if variant.get("source") and variant.get("overlay"):
        # the chapter prints only some of the functions: its definitions come after the reference's
        # and replace those of the same names when the module is imported
        text = path.read_text(encoding="utf-8") + "\n\n" + source_path(variant).read_text(encoding="utf-8")
    elif variant.get("source"):         # a whole module (a chapter listing), then its edits if any
        text = source_path(variant).read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    edits = [] if variant.get("source") and not (variant.get("edits") or variant.get("find")) else variant.get("edits") or [{"find": variant["find"], "replace": variant.get("replace", ""),
                                      "count": variant.get("count", 1)}]
    for edit in edits:
        find, count = edit["find"], int(edit.get("count", 1))
        found = text.count(find)
        if found != count:
            raise VariantError(f"{variant['exercise']}/{variant['name']}: {find!r} occurs {found} times in "
                               f"{path.name}, expected {count}")
        text = text.replace(find, edit.get("replace", ""))
    try:
        compile(text, str(path), "exec")
    except SyntaxError as exc:
        raise VariantError(f"{variant['exercise']}/{variant['name']}: the edited {path.name} does not parse "
                           f"({exc.msg}, line {exc.lineno}); a variant must be a realistic, importable module") from None
    path.write_text(text, encoding="utf-8")


def _grade(job: dict) -> dict:
    from grader.grading.run import grade

    started = time.monotonic()
    if job["kind"] in ("solutions", "stubs"):
        target = root() / ("solutions" if job["kind"] == "solutions" else "exercises")
        report = grade(target, job["exercises"], shrink=job["kind"] == "solutions", run_stubs=True)
        return {**job, "report": report, "seconds": time.monotonic() - started}
    scratch = Path(tempfile.mkdtemp(prefix="kata-variant-"))
    try:
        target = scratch / "submission"
        shutil.copytree(root() / "solutions", target)
        try:
            apply_variant(job["variant"], target)
        except VariantError as exc:
            return {**job, "error": str(exc), "seconds": time.monotonic() - started}
        # every test runs (the rubric's targets need the whole score); a bug's examples are not shrunk
        report = grade(target, [job["variant"]["exercise"]], shrink=job["kind"] != "bug")
        return {**job, "report": report, "seconds": time.monotonic() - started}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check(result: dict) -> list[str]:
    """Problems found in one job's result (empty when it is as required)."""
    if "error" in result:
        return [result["error"]]
    problems = []
    report: Report = result["report"]
    for err in report.collect_errors:
        problems.append(f"suite error in {err.where}: {err.error[-400:]}")
    for ex in report.exercises:
        full = ex.score >= ex.max_score - 1e-6
        if result["kind"] == "solutions":
            if not full or not ex.tests:
                bad = [f"{t.name}: {t.message[:300]}" for t in ex.failed]
                problems.append(f"solutions/{ex.name}.py scores {ex.score} of {ex.max_score} "
                                f"({ex.message[:300]}) " + "; ".join(bad[:5]))
        elif result["kind"] == "stubs":
            passing = [t.name for t in ex.tests if t.passed]
            if passing:
                problems.append(f"exercises/{ex.name}.py (untouched stub) passes {', '.join(passing)}: "
                                "a graded test must fail on the stub")
            if ex.score != 0:
                problems.append(f"exercises/{ex.name}.py (untouched stub) scores {ex.score}, expected 0")
            if ex.status != ExerciseStatus.NOT_STARTED:
                problems.append(f"exercises/{ex.name}.py (untouched stub) has status {ex.status.value!r} "
                                f"({ex.message[:200]}), expected 'not started'")
        else:
            v = result["variant"]
            label = f"{v['exercise']}/{v['name']} ({v.get('description', '')})"
            if result["kind"] == "bug" and full:
                problems.append(f"known bug {label} keeps full marks: the suite does not catch it")
            elif result["kind"] == "bug":
                problems += check_first_failure(v, ex, label)
            if result["kind"] == "alternative" and not full:
                bad = [f"{t.name}: {t.message[:300]}" for t in ex.failed]
                problems.append(f"alternative {label} loses points ({ex.score} of {ex.max_score}): "
                                + "; ".join(bad[:3]))
            problems += rubric_problems(v, result["kind"], outcome(v, ex), label)
    return problems


def outcome(variant: dict, ex) -> dict:
    """What the record keeps of one variant's grading: its fraction of the exercise and, for a
    bug naming a rubric ``item``, the share of that item it lost."""
    out = {"fraction": round(ex.fraction, 4)}
    item = next((i for i in ex.rubric if i.name == variant.get("item")), None)
    if item is not None and item.max_score:
        out["item_loss"] = round(1 - item.score / item.max_score, 4)
    return out


def rubric_problems(variant: dict, kind: str, got: dict, label: str) -> list[str]:
    """The rubric's targets for one variant (``got``: ``outcome``)."""
    tag, pct = variant.get("tag"), 100 * got["fraction"]
    if kind == "listing":
        if got["fraction"] < LISTING_MIN - 1e-9:
            return [f"chapter listing {label} scores {pct:.1f} %, below {100 * LISTING_MIN:.0f} %"]
        return []
    if kind != "bug" or tag is None:
        return []
    if tag == "contract":
        if got["fraction"] < 1 - CONTRACT_MAX_LOSS - 1e-9:
            return [f"contract bug {label} scores {pct:.1f} %: a missing validation may cost at most "
                    f"{100 * CONTRACT_MAX_LOSS:.0f} %"]
        return []
    if tag != "core":
        return [f"known bug {label}: tag {tag!r} is neither 'core' nor 'contract'"]
    problems = []
    if "item_loss" not in got:
        return [f"core bug {label} names no rubric item of its exercise (item = {variant.get('item')!r})"]
    if got["item_loss"] < CORE_ITEM_LOSS - 1e-9:
        problems.append(f"core bug {label} loses only {100 * got['item_loss']:.0f} % of the item "
                        f"{variant['item']!r} (at least {100 * CORE_ITEM_LOSS:.0f} %)")
    if got["fraction"] > CORE_MAX + 1e-9:
        problems.append(f"core bug {label} keeps {pct:.1f} % of its exercise (at most {100 * CORE_MAX:.0f} %)")
    return problems


def median_problems(variants: list[dict], record: dict) -> list[str]:
    """The median core bug over every exercise checked, from the record of their gradings."""
    fractions = sorted(record[variant_id(v)]["fraction"] for v in variants
                       if v["kind"] == "bug" and v.get("tag") == "core" and variant_id(v) in record)
    if not fractions:
        return []
    mid = len(fractions) // 2
    median = fractions[mid] if len(fractions) % 2 else (fractions[mid - 1] + fractions[mid]) / 2
    print(f"verify: {len(fractions)} core bugs, median score {100 * median:.1f} % "
          f"(at most {100 * CORE_MEDIAN_MAX:.0f} %)", flush=True)
    if median > CORE_MEDIAN_MAX + 1e-9:
        return [f"the median core bug keeps {100 * median:.1f} % of its exercise (at most "
                f"{100 * CORE_MEDIAN_MAX:.0f} %): the rubric does not rank understanding"]
    return []


def check_first_failure(variant: dict, ex, label: str) -> list[str]:
    """A known bug names the function(s) it breaks (``judges``); the first failure the student is
    shown must judge one of them (``@pytest.mark.judges`` on the test)."""
    named = variant.get("judges")
    if not named:
        return [f"known bug {label} does not say which function it breaks (judges = \"name\")"]
    named = [named] if isinstance(named, str) else list(named)
    if ex.status != ExerciseStatus.FAILING:
        return []        # the exercise-level message (crash, timeout, import error) is shown instead
    first = next((t for t in ex.tests if t.name == ex.first_failure), None)
    if first is None:
        return [f"known bug {label}: the report names no first failure"]
    if not set(named) & set(first.judges):
        return [f"known bug {label} breaks {', '.join(named)}, but the first failure shown, {first.name}, "
                f"judges {', '.join(first.judges) or 'nothing (no @pytest.mark.judges)'}"]
    return []


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m grader.instructor.verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="EXERCISE", help="check only these exercises")
    settings.add_root_option(p)
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="grading processes")
    p.add_argument("--skip-variants", action="store_true", help="do not grade the bug/alternative variants")
    p.add_argument("--no-cache", action="store_true",
                   help=f"grade every variant, even those {VERIFIED} records as verified on the same files")
    p.add_argument("--write-cache", action="store_true",
                   help=f"record the variants that passed in {VERIFIED} (with --no-cache: after a full run)")
    p.add_argument("--scores", metavar="FILE",
                   help="write every variant graded now, its score, first failure and points lost per rubric item, as JSON")
    p.add_argument("--strict-mutation", action="store_true",
                   help="fail (not just warn) when tests/mutation/results.json is stale or incomplete")
    p.add_argument("--write-stub-hashes", action="store_true",
                   help="record the stubs' sha256 in grader/stubs.json (after changing a stub)")
    return p.parse_args(argv)


def check_stub_hashes(names, write: bool) -> int | None:
    """Write grader/stubs.json (0), refuse stubs that no longer match it (1), or go on (None)."""
    from grader.settings import STUB_HASHES, file_sha256

    current = {e: file_sha256(root() / "exercises" / f"{e}.py") for e in names}
    if write:
        STUB_HASHES.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
        print(f"verify: wrote {STUB_HASHES.relative_to(root())}")
        return 0
    recorded = json.loads(STUB_HASHES.read_text(encoding="utf-8")) if STUB_HASHES.is_file() else {}
    stale = [e for e in names if recorded.get(e) != current[e]]
    if stale:
        print(f"verify: error: grader/stubs.json does not match exercises/ for {', '.join(stale)}; "
              "after checking the stubs, run: python -m grader.instructor.verify --write-stub-hashes", file=sys.stderr)
        return 1
    return None


def select_exercises(only, names) -> list[str] | None:
    """The exercises to check (those with a solution), in manifest order; None for an unknown name."""
    unknown = [e for e in (only or []) if e not in names]
    if unknown:
        print(f"verify: error: unknown exercise(s) {unknown}; valid: {', '.join(names)}", file=sys.stderr)
        return None
    wanted = only or names
    return [e for e in names if e in wanted and (root() / "solutions" / f"{e}.py").is_file()]


def mutation_warnings(exercises, strict: bool) -> list[str]:
    """Print the stale mutation records; they are problems only under --strict-mutation."""
    from grader.instructor.mutation import stale_results

    lines = stale_results(exercises)
    for line in lines:
        print(f"verify: {'error' if strict else 'warning'}: {line}", flush=True)
    return list(lines) if strict else []


def plan(exercises, args) -> tuple[list[dict], dict, list[dict], dict]:
    """(the gradings to run, each variant's key, every variant checked, the record read)."""
    jobs = [{"kind": "solutions", "exercises": [e], "label": f"solutions/{e}"} for e in exercises]
    jobs += [{"kind": "stubs", "exercises": [e], "label": f"exercises/{e} (stub)"} for e in exercises]
    verified = {} if args.no_cache else load_verified()
    common = common_inputs_hash()
    keys, cached, checked = {}, 0, []
    if args.skip_variants:
        return jobs, keys, checked, verified
    for e in exercises:
        variants = load_variants(e)
        checked += variants
        if not any(v["kind"] == "bug" for v in variants):
            print(f"verify: warning: {e} has no known-bug variants in tests/bugs/{e}.toml")
        for v in variants:
            keys[variant_id(v)] = variant_key(v, common)
            if verified.get(variant_id(v), {}).get("key") == keys[variant_id(v)]:
                cached += 1
                continue
            jobs.append({"kind": v["kind"], "variant": v, "label": f"{v['kind']} {e}/{v['name']}"})
    if cached:
        print(f"verify: {cached} variant(s) already verified on exactly these files ({VERIFIED}); "
              "--no-cache grades them again", flush=True)
    return jobs, keys, checked, verified


def variant_scores(variant: dict, ex, found: list[str]) -> dict:
    """A graded variant's line in --scores: its score, first failure and points lost per item."""
    return {"tag": variant.get("tag"), "item": variant.get("item"), "fraction": round(ex.fraction, 4),
            "first_failure": ex.first_failure, "problems": found,
            "lost": {i.name: round(1 - i.score / i.max_score, 3) for i in ex.rubric if i.failed and i.max_score},
            "capped_by": [i.name for i in ex.capped_by]}


def print_result(label: str, result: dict, found: list[str]) -> None:
    score = f"{result['report'].score:g}/{result['report'].max_score:g}" if "report" in result else ""
    print(f"  {'FAIL' if found else 'ok  '} {label:<45} {score:>9} {result['seconds']:6.1f} s", flush=True)
    for line in found:
        print(f"       {line}", flush=True)


def grade_all(jobs, keys, n_jobs: int) -> tuple[list[str], dict, dict]:
    """Grade every job in a pool; (problems, the variants that passed with their record, scores)."""
    problems: list[str] = []
    passed: dict = {}
    scores: dict = {}
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=max(1, n_jobs), mp_context=ctx, initializer=worker_init) as pool:
        futures = {pool.submit(_grade, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            job = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - report and go on
                problems.append(f"{job['label']}: grading raised {type(exc).__name__}: {exc}")
                print(f"  FAIL {job['label']}: grading raised {exc}", flush=True)
                continue
            found = check(result)
            problems.extend(found)
            if "variant" in job and "report" in result:
                vid, ex = variant_id(job["variant"]), result["report"].exercises[0]
                scores[vid] = variant_scores(job["variant"], ex, found)
                if not found:
                    passed[vid] = {"key": keys[vid], **outcome(job["variant"], ex)}
            print_result(job["label"], result, found)
    return problems, passed, scores


def write_record(exercises, keys, passed: dict) -> None:
    """Record what passed; keep what this run did not look at (other exercises), drop what it found stale."""
    record = {k: v for k, v in load_verified().items()
              if k.split("/", 1)[0] not in exercises or keys.get(k) == v.get("key")}
    record.update(passed)
    (root() / VERIFIED).write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n", encoding="utf-8")
    print(f"verify: {VERIFIED} records {len(record)} verified variant(s)")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    names = manifest_mod.names_for_command(argv, "verify")
    if names is None:
        return 2
    args = parse_args(argv)
    stubs = check_stub_hashes(names, args.write_stub_hashes)
    if stubs is not None:
        return stubs
    exercises = select_exercises(args.only, names)
    if exercises is None:
        return 2
    problems = mutation_warnings(exercises, args.strict_mutation)
    jobs, keys, checked, verified = plan(exercises, args)
    started = time.monotonic()
    print(f"verify: {len(jobs)} gradings of {len(exercises)} exercise(s) with {args.jobs} process(es)", flush=True)
    graded, passed, scores = grade_all(jobs, keys, args.jobs)
    problems += graded
    if args.scores:
        Path(args.scores).write_text(json.dumps(dict(sorted(scores.items())), indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    known = {k: v for k, v in verified.items() if keys.get(k) == v.get("key")}
    problems += median_problems(checked, {**known, **passed})
    print(f"verify: {len(jobs)} gradings in {time.monotonic() - started:.1f} s; {len(problems)} problem(s)")
    if args.write_cache:
        write_record(exercises, keys, passed)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
