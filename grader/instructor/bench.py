"""``python -m grader.instructor.bench`` (``nox -s bench``): how fast is the grader on this machine?

It measures, on the machine it runs on, and prints a table (and writes the same
numbers to ``bench.json``, or ``--json FILE``, so that runs can be compared):

* wall time of a grade of ``solutions/`` (every exercise), of one exercise and of the
  untouched stubs, each as a fresh ``python -m grader`` process (what a student's
  repeated ``nox -s grade`` does, minus nox): the first ("cold") and the next
  ("warm") run;
* the same suites run by plain ``pytest`` against ``solutions/``: sandboxed as usual, and
  "in-process" (``--kata-in-process``: the graded module runs in a thread of the pytest
  process, no child process, no namespaces -- benchmark only, unsafe); the ratios
  grader / pytest, and where the grader's time goes (process start and imports,
  sandbox starts, the tests themselves);
* time to first feedback for one exercise after a file is saved (watch mode when
  ``grader/student/watch.py`` offers ``--target``, otherwise a fresh one-exercise grade);
* the slowest ten tests (pytest's ``--durations``);
* throughput for a batch of N copies of the reference (attention_numpy and
  attention_torch), graded one after the other and with every CPU in parallel;
* the reference ``MultiHeadAttention`` / ``ScaledDotProductAttention`` against
  ``torch.nn.MultiheadAttention`` / ``torch.nn.functional.scaled_dot_product_attention``,
  on CPU and on a GPU when torch sees one;
* the cost of each isolation level: a few exercises graded under every ``KATA_ISOLATION``
  level this machine gives, in turns, against plain ``processes``;
* PASS / MISS against the speed targets (``TARGETS``, a table below).

Timings never decide any test's outcome; they are only reported.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as _dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader import manifest as manifest_mod
from grader import settings
from grader.manifest import root
from grader.grading.results import Report
from grader.sandbox.controller import LEVELS, Sandbox
from grader.sandbox.inprocess import import_by_path
from grader.instructor.bench_report import _get, attribution, evaluate_targets, render

INI = settings.PYTEST_INI
ONE_EXERCISE = "attention_torch"
BATCH_EXERCISES = ("attention_numpy", "attention_torch")
PARTS = ("grade", "failing", "pytest", "startup", "watch", "batch", "builtins", "isolation")
ISOLATION_EXERCISES = ("attention_numpy", "attention_torch", "decoder")
SCHEMA = 1



# ====================================================================== running things

def _env(**extra) -> dict:
    env = {**os.environ, "KATA_LANG": "en", "PYTHONDONTWRITEBYTECODE": "1", **extra}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_timed(cmd, *, timeout=3600.0, env=None) -> dict:
    """Run ``cmd`` in the repository root; wall time, exit status and output."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=root(), capture_output=True, text=True, timeout=timeout,
                              env=env or _env())
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = 124
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"timed out after {timeout:.0f} s"
    return {"wall_s": time.perf_counter() - started, "rc": rc, "stdout": out, "stderr": err}


def grade_cmd(exercises, target: Path, device: str, json_path: Path | None = None, jobs=None) -> list[str]:
    cmd = [sys.executable, "-m", "grader", *exercises, "--target", str(target), "--device", device]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    if json_path is not None:
        cmd += ["--json", str(json_path)]
    return cmd


def grade_once(exercises, target: Path, device: str, tmp: Path, timeout=3600.0, jobs=None, env=None) -> dict:
    """One fresh ``python -m grader`` process: wall time, the grade's own time, the score."""
    json_path = tmp / f"grade-{time.monotonic_ns()}.json"
    r = run_timed(grade_cmd(exercises, target, device, json_path, jobs), timeout=timeout, env=env)
    out = {"wall_s": r["wall_s"], "rc": r["rc"]}
    try:
        report = Report.from_dict(json.loads(json_path.read_text()))
    except (OSError, ValueError, KeyError):
        out["error"] = (r["stderr"] or r["stdout"])[-1500:] or "no report written"
        return out
    out.update(grade_s=report.seconds, score=report.score, max_score=report.max_score,
               isolation=report.isolation, startup_s=max(0.0, r["wall_s"] - report.seconds),
               tests=sum(len(e.tests) for e in report.exercises),
               passed=sum(t.passed for e in report.exercises for t in e.tests))
    return out


def grade_cold_warm(exercises, target: Path, device: str, tmp: Path, warm_runs: int) -> dict:
    """The first run ("cold") and the median of the next ``warm_runs`` ("warm")."""
    cold = grade_once(exercises, target, device, tmp)
    warm = [grade_once(exercises, target, device, tmp) for _ in range(max(1, warm_runs))]
    return {"exercises": list(exercises) or "all", "target": _rel(target), "cold": cold,
            "warm": _median_run(warm), "warm_runs": [w["wall_s"] for w in warm]}


def _median_run(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r] or runs
    ok = sorted(ok, key=lambda r: r["wall_s"])
    return ok[(len(ok) - 1) // 2]


def suite_files(exercises) -> list[str]:
    from grader.grading.run import suite_files as _suite_files

    files = []
    for name in exercises:
        files.extend(str(p.relative_to(root())) for p in _suite_files(name, root() / "tests"))
    return files


_SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
_SESSION = re.compile(r" in ([\d.]+)s")
_DURATION = re.compile(r"^\s*([\d.]+)s\s+(setup|call|teardown)\s+(\S.*?)\s*$")


def pytest_once(exercises, device: str, *, in_process: bool, durations: int = 0,
                timeout=3600.0) -> dict:
    """Plain ``pytest`` of the suites against ``solutions/`` in one fresh process."""
    cmd = [sys.executable, "-m", "pytest", *suite_files(exercises), "-c", str(INI), "--rootdir", str(root()),
           "-p", "grader.grading.plugin", "-p", "no:cacheprovider", "-p", "no:randomly", "--import-mode=importlib",
           "-q", "--no-header", "--kata-target", str((root() / "solutions")), "--kata-device", device]
    if in_process:
        cmd.append("--kata-in-process")
    if durations:
        cmd += [f"--durations={durations}", "--durations-min=0"]
    r = run_timed(cmd, timeout=timeout)
    out = {"wall_s": r["wall_s"], "rc": r["rc"]}
    lines = r["stdout"].strip().splitlines()
    summary = next((ln for ln in reversed(lines) if _SESSION.search(ln) and _SUMMARY.search(ln)), "")
    if not summary:
        out["error"] = (r["stdout"][-1000:] + r["stderr"][-1000:]).strip() or "no pytest summary"
        return out
    counts = {}
    for n, what in _SUMMARY.findall(summary):
        counts["errors" if what.startswith("error") else what] = int(n)
    session_s = float(_SESSION.search(summary).group(1))
    out.update(session_s=session_s, startup_s=max(0.0, r["wall_s"] - session_s), counts=counts,
               passed=counts.get("passed", 0),
               tests=sum(counts.get(k, 0) for k in ("passed", "failed", "errors", "skipped")))
    if durations:
        out["durations"] = parse_durations(r["stdout"])[:durations]
    return out


def parse_durations(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        m = _DURATION.match(line)
        if m:
            rows.append({"seconds": float(m.group(1)), "phase": m.group(2), "test": m.group(3)})
    return sorted(rows, key=lambda r: -r["seconds"])


def pytest_cold_warm(exercises, device: str, *, in_process: bool, runs: int, durations=0) -> dict:
    results = [pytest_once(exercises, device, in_process=in_process, durations=durations)
               for _ in range(max(1, runs))]
    warm = results[-1] if len(results) == 1 else _median_run(results[1:])
    return {"mode": "in-process (unsandboxed)" if in_process else "sandboxed",
            "runs": [r["wall_s"] for r in results], "warm": warm}


def sandbox_starts(exercises, device: str, repeats: int) -> dict:
    """Seconds to start each exercise's sandbox: the child process with its libraries
    (``spawn``, what the watcher's prestart hides) and then the module's import."""
    man = manifest_mod.by_name()
    modules = [e.name for e in manifest_mod.load()]
    out = {}
    for name in exercises:
        ex = man[name]
        best = None
        for _ in range(max(1, repeats)):
            box = Sandbox((root() / "solutions"), name, modules, hide=[str((root() / "solutions")), str(root() / "tests")], device=device,
                          start_timeout=300, memory_mb=ex.memory_mb, preload=ex.preload)
            try:
                t0 = time.perf_counter()
                if hasattr(box, "spawn"):
                    box.spawn()
                t1 = time.perf_counter()
                box.start()
                t2 = time.perf_counter()
            finally:
                box.close()
            run = {"total_s": t2 - t0, "spawn_s": t1 - t0, "import_s": t2 - t1}
            if best is None or run["total_s"] < best["total_s"]:
                best = run
        out[name] = best
    return out


def measure_isolation(exercises, device: str, tmp: Path, repeats: int) -> dict:
    """Seconds per exercise at each isolation level (``KATA_ISOLATION``), solutions/ graded one
    exercise per fresh ``python -m grader --jobs 1``.  The levels take turns in every round, so a
    change in the machine's load falls on all of them alike; a level this machine does not give
    (the report names a lower one) is recorded as unavailable and not timed."""
    times = {level: {ex: [] for ex in exercises} for level in LEVELS}
    unavailable: dict[str, str] = {}
    for _ in range(max(1, repeats)):
        for level in (lv for lv in LEVELS if lv not in unavailable):
            for ex in exercises:
                r = grade_once([ex], root() / "solutions", device, tmp, jobs=1, env=_env(KATA_ISOLATION=level))
                if r.get("isolation") != level or r.get("score") != r.get("max_score"):
                    unavailable[level] = r.get("error") or f"the report says {r.get('isolation')}, " \
                                                           f"score {r.get('score')}/{r.get('max_score')}"
                    break
                times[level][ex].append(r["wall_s"])
    levels = {}
    for level in (lv for lv in LEVELS if lv not in unavailable):
        per = {ex: statistics.median(t) for ex, t in times[level].items()}
        levels[level] = {"per_exercise_s": per, "mean_s": statistics.fmean(per.values())}
    base = levels.get("processes", {}).get("mean_s")
    for v in levels.values():
        v["extra_s"] = None if base is None else v["mean_s"] - base
    return {"exercises": list(exercises), "repeats": repeats, "levels": levels, "unavailable": unavailable}


def interpreter_start(repeats: int = 3) -> dict:
    """A bare interpreter, and one that imports what the grader process imports."""
    bare = [run_timed([sys.executable, "-c", "pass"])["wall_s"] for _ in range(repeats)]
    imports = [run_timed([sys.executable, "-c", "import numpy, torch, pytest, hypothesis, transformers; "
                          "import grader.student.cli, grader.grading.run, grader.grading.plugin"])["wall_s"] for _ in range(repeats)]
    return {"python_s": statistics.median(bare), "python_with_imports_s": statistics.median(imports)}


# ---------------------------------------------------------------------- watch mode

def _watch_source() -> str:
    path = Path(__file__).resolve().parents[1] / "student" / "watch.py"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _copy_modules(dest: Path, names) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2((root() / "solutions") / f"{name}.py", dest / f"{name}.py")
    return dest


def _save(path: Path) -> None:
    """What an editor's save does: rewrite the file (content unchanged but for a comment)."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text.rstrip("\n") + f"\n# saved {time.time_ns()}\n", encoding="utf-8")


FEEDBACK = re.compile(r"\[[#-]+\]")     # an exercise's score bar: the first feedback a grade prints
READY = ("Watching", "監視")


class _LineReader(threading.Thread):
    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[tuple[float, str]] = []

    def run(self):
        for line in self.stream:
            self.lines.append((time.perf_counter(), line))

    def first_after(self, t0: float, pattern) -> float | None:
        for t, line in list(self.lines):
            if t >= t0 and (pattern.search(line) if hasattr(pattern, "search") else
                            any(n in line for n in pattern)):
                return t
        return None

    def tail(self) -> str:
        return "".join(ln for _, ln in self.lines)[-800:]


def feedback_fresh_grade(exercise: str, device: str, folder: Path, timeout=600.0) -> dict:
    """Save the file, start ``python -m grader EXERCISE``, stop the clock at the first score line."""
    path = folder / f"{exercise}.py"
    t0 = time.perf_counter()
    _save(path)
    proc = subprocess.Popen(grade_cmd([exercise], folder, device), cwd=root(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())
    reader = _LineReader(proc.stdout)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(5)
    t1 = reader.first_after(t0, FEEDBACK)
    if t1 is None:
        return {"error": "no score printed: " + reader.tail()}
    return {"seconds": t1 - t0}


def feedback_watch(exercise: str, device: str, folder: Path, saves: int = 2, settle: float = 8.0,
                   timeout: float = 300.0) -> dict:
    """Start ``python -m grader.student.watch EXERCISE --target COPY``; once it says it is watching
    (after its first grade), wait ``settle`` seconds (a student's edit takes longer than
    that; the watcher prestarts the next sandbox meanwhile), save, and time the first
    score line; ``saves`` times in the same session."""
    cmd = [sys.executable, "-m", "grader.student.watch", exercise, "--target", str(folder), "--device", device]
    proc = subprocess.Popen(cmd, cwd=root(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)
    reader = _LineReader(proc.stdout)
    reader.start()
    begun = time.perf_counter()
    out = {"settle_s": settle, "saves": []}
    try:
        while reader.first_after(0.0, READY) is None:
            if proc.poll() is not None or time.perf_counter() - begun > timeout:
                return {"error": "the watcher never said it was watching: " + reader.tail()}
            time.sleep(0.1)
        out["startup_s"] = reader.first_after(0.0, READY) - begun
        for _ in range(saves):
            time.sleep(settle)
            t0 = time.perf_counter()
            _save(folder / f"{exercise}.py")
            t1 = None
            while t1 is None and time.perf_counter() < t0 + timeout and proc.poll() is None:
                time.sleep(0.02)
                t1 = reader.first_after(t0, FEEDBACK)
            if t1 is None:
                return {**out, "error": "no score printed after a save: " + reader.tail()}
            out["saves"].append(t1 - t0)
            done = reader.first_after(t1, ("graded in", "採点"))       # let the grading finish
            while done is None and time.perf_counter() < t1 + timeout and proc.poll() is None:
                time.sleep(0.1)
                done = reader.first_after(t1, ("graded in", "採点"))
        return out
    finally:
        if proc.poll() is None:
            proc.send_signal(2)          # SIGINT: the watcher closes its prestarted sandboxes
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def measure_feedback(exercise: str, device: str, tmp: Path, quick: bool) -> dict:
    folder = _copy_modules(tmp / "watched", [e.name for e in manifest_mod.load()
                                             if ((root() / "solutions") / f"{e.name}.py").is_file()])
    source = _watch_source()
    note = ""
    if "--target" in source:
        w = feedback_watch(exercise, device, folder, saves=1 if quick else 3)
        if "error" not in w:
            return {"method": "python -m grader.student.watch: file save -> first score line", "exercise": exercise,
                    "watch": w, "cold": {"seconds": w["saves"][0]},
                    "warm": {"seconds": statistics.median(w["saves"][1:] or w["saves"])}}
        note = f"watch mode failed ({w['error'][:300]}); measured a fresh grade instead"
    else:
        note = "grader/student/watch.py is absent (or has no --target option); measured a fresh grade instead"
    cold = feedback_fresh_grade(exercise, device, folder)
    warm = feedback_fresh_grade(exercise, device, folder)
    return {"method": "file save -> fresh `python -m grader EXERCISE` -> first score line", "note": note,
            "exercise": exercise, "cold": cold, "warm": warm}


# ---------------------------------------------------------------------- batch

def measure_failing(exercises, device: str, tmp: Path) -> dict:
    """Per exercise: a grade of the reference (passing) and of its first known bug (failing), each
    a fresh ``python -m grader EXERCISE --jobs 1``; the ratio failing / passing.  A failing
    exercise also shrinks hypothesis' examples, bounded by ``grader.settings.SHRINK_SECONDS``."""
    from grader.instructor.verify import apply_variant, load_variants

    out = {}
    for name in exercises:
        bug = next((v for v in load_variants(name) if v["kind"] == "bug"), None)
        if bug is None:
            continue
        folder = tmp / f"failing-{name}"
        shutil.copytree(root() / "solutions", folder)
        apply_variant(bug, folder)
        passing = grade_once([name], root() / "solutions", device, tmp, jobs=1)
        failing = grade_once([name], folder, device, tmp, jobs=1)
        ratio = failing["wall_s"] / passing["wall_s"] if passing.get("wall_s") else None
        out[name] = {"bug": bug["name"], "passing_s": passing["wall_s"], "failing_s": failing["wall_s"],
                     "failing_score": failing.get("score"), "ratio": ratio}
        shutil.rmtree(folder, ignore_errors=True)
    return out


def measure_batch(n: int, device: str, tmp: Path, workers_list) -> dict:
    subs = [_copy_modules(tmp / "batch" / f"submission-{i:03d}", BATCH_EXERCISES) for i in range(n)]
    # each submission graded by one process (--jobs 1): the batch's own parallelism is what is measured
    grade_once(BATCH_EXERCISES, subs[0], device, tmp, jobs=1)   # warm the caches, not counted
    out = {"submissions": n, "exercises": list(BATCH_EXERCISES), "runs": []}
    for workers in workers_list:
        started = time.perf_counter()
        with cf.ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda s: grade_once(BATCH_EXERCISES, s, device, tmp, jobs=1), subs))
        wall = time.perf_counter() - started
        full = sum(1 for r in results if r.get("score") == r.get("max_score") and "error" not in r)
        out["runs"].append({"processes": workers, "wall_s": wall, "per_submission_s": wall / n,
                            "full_marks": full})
    return out


# ---------------------------------------------------------------------- built-ins

def _timeit(fns: dict, device, warmup: int, repeats: int) -> dict:
    """Median seconds per call of each function; the functions take turns, so a noisy
    neighbour slows them alike."""
    import torch

    cuda = str(device).startswith("cuda")
    times: dict = {name: [] for name in fns}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        if cuda:
            torch.cuda.synchronize()
        for _ in range(repeats):
            for name, fn in fns.items():
                if cuda:
                    torch.cuda.synchronize()
                started = time.perf_counter()
                fn()
                if cuda:
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def compare_builtins(device: str = "cpu", B: int = 8, L: int = 128, d: int = 256, h: int = 8,
                     warmup: int = 3, repeats: int = 20) -> dict:
    """The reference attention (imported by path from solutions/) against torch's built-ins:
    median milliseconds per forward (eval, no_grad) and the ratios reference / built-in."""
    import torch
    import torch.nn.functional as F

    ref = import_by_path(root() / "solutions", "attention_torch", "_kata_bench_reference_")
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, L, d, generator=gen).to(dev)
    mine = ref.MultiHeadAttention(d, h).to(dev).eval()
    theirs = torch.nn.MultiheadAttention(d, h, batch_first=True).to(dev).eval()
    with torch.no_grad():          # the same weights, so the outputs can be compared too
        theirs.in_proj_weight.copy_(torch.cat([mine.W_Q.weight, mine.W_K.weight, mine.W_V.weight]))
        theirs.in_proj_bias.copy_(torch.cat([mine.W_Q.bias, mine.W_K.bias, mine.W_V.bias]))
        theirs.out_proj.weight.copy_(mine.W_O.weight)
        theirs.out_proj.bias.copy_(mine.W_O.bias)
        got = mine(x, x, x)[0]
        want = theirs(x, x, x, need_weights=False)[0]
        mha_diff = float((got - want).abs().max())
    t = _timeit({"ref": lambda: mine(x, x, x),
                 "torch": lambda: theirs(x, x, x, need_weights=False),
                 "torch_w": lambda: theirs(x, x, x, need_weights=True, average_attn_weights=False)},
                dev, warmup, repeats)
    mha_ref, mha_torch, mha_torch_w = t["ref"], t["torch"], t["torch_w"]

    dk = d // h
    q, k, v = (torch.randn(B, h, L, dk, generator=gen).to(dev) for _ in range(3))
    sdpa = ref.ScaledDotProductAttention(dk).to(dev).eval()
    with torch.no_grad():
        sdpa_diff = float((sdpa(q, k, v)[0] - F.scaled_dot_product_attention(q, k, v)).abs().max())
    t = _timeit({"ref": lambda: sdpa(q, k, v), "torch": lambda: F.scaled_dot_product_attention(q, k, v)},
                dev, warmup, repeats)
    sdpa_ref, sdpa_torch = t["ref"], t["torch"]
    return {
        "device": str(dev), "sizes": {"B": B, "L": L, "d": d, "h": h}, "repeats": repeats,
        "mha": {"reference_ms": mha_ref * 1e3, "torch_ms": mha_torch * 1e3,
                "torch_with_weights_ms": mha_torch_w * 1e3,
                "ratio": mha_ref / mha_torch, "ratio_with_weights": mha_ref / mha_torch_w,
                "max_abs_diff": mha_diff},
        "sdpa": {"reference_ms": sdpa_ref * 1e3, "torch_ms": sdpa_torch * 1e3,
                 "ratio": sdpa_ref / sdpa_torch, "max_abs_diff": sdpa_diff},
    }


# ====================================================================== the report

def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root()))
    except ValueError:
        return str(path)


def write_json(res: dict, path) -> None:
    Path(path).write_text(json.dumps(res, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# ====================================================================== main

def machine_info() -> dict:
    import torch

    from grader.sandbox.controller import isolation_mode

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "isolation": isolation_mode(), "loadavg": load}


def _sizes(text: str) -> tuple[int, int, int, int]:
    try:
        B, L, d, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected B,L,d,h such as 8,128,256,8") from None
    if min(B, L, d, h) <= 0 or d % h:
        raise argparse.ArgumentTypeError("B, L, d, h must be positive and d a multiple of h")
    return B, L, d, h


def parse_args(argv):
    settings.root_option(argv)
    names = [e.name for e in manifest_mod.load()]
    p = argparse.ArgumentParser(prog="python -m grader.instructor.bench", description=__doc__.split("\n\n")[0])
    settings.add_root_option(p)
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions (one warm run, pytest once), no batch")
    p.add_argument("--json", default="bench.json", metavar="FILE", help="write the results here (default bench.json)")
    p.add_argument("--skip-gpu", action="store_true", help="do not time the built-ins on a GPU")
    p.add_argument("--device", default="cpu", help="--device for the gradings (default cpu)")
    p.add_argument("--only", nargs="+", metavar="EXERCISE", choices=names,
                   help="measure only these exercises (default: every exercise with a reference solution)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts to run (default all: {','.join(PARTS)})")
    p.add_argument("--batch", type=int, default=4, metavar="N", help="submissions in the batch (default 4)")
    p.add_argument("--builtin-size", type=_sizes, default=(8, 128, 256, 8), metavar="B,L,d,h",
                   help="sizes for the built-in comparison (default 8,128,256,8)")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        p.error(f"unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    if args.quick and "batch" in parts and args.parts == ",".join(PARTS):
        parts.remove("batch")
    args.parts = parts
    if args.batch < 1:
        p.error("--batch must be at least 1")
    args.exercises = [n for n in (args.only or names) if ((root() / "solutions") / f"{n}.py").is_file()]
    if not args.exercises:
        p.error("no exercise with a reference solution in solutions/ to measure")
    return args


def _step(title: str) -> None:
    print(f"bench: {title} ...", file=sys.stderr, flush=True)


class _Run:
    """What every part of a bench run shares: its options, the results so far, a scratch folder."""

    def __init__(self, args, tmp: Path):
        self.args, self.tmp = args, tmp
        self.exercises = args.exercises
        self.one = ONE_EXERCISE if ONE_EXERCISE in self.exercises else self.exercises[0]
        everything = self.exercises == [n for n in (e.name for e in manifest_mod.load())
                                        if (root() / "solutions" / f"{n}.py").is_file()]
        self.grade_args = [] if everything else self.exercises   # all exercises: no names, as a student types it
        self.quick = args.quick
        self.res: dict = {"schema": SCHEMA, "started": _dt.datetime.now().isoformat(timespec="seconds"),
                          "machine": machine_info(),
                          "options": {"quick": args.quick, "device": args.device, "exercises": self.exercises,
                                      "parts": args.parts, "batch": args.batch, "skip_gpu": args.skip_gpu},
                          "errors": []}

    def attempt(self, label, fn):
        _step(label)
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others
            self.res["errors"].append(f"{label}: {type(exc).__name__}: {exc}")
            return None
        finally:
            write_json(self.res, self.args.json)          # partial results survive an interrupted run


def _part_grade(run: _Run) -> None:
    warm_runs = 1 if run.quick else 2
    dev, tmp = run.args.device, run.tmp
    run.res["grade"] = {}
    for key, label, exercises, target in (
            ("full", "grading solutions/ (cold, then warm)", run.grade_args, root() / "solutions"),
            ("one", f"grading solutions/ {run.one}", [run.one], root() / "solutions"),
            ("stubs", "grading the stubs in exercises/", run.grade_args, root() / "exercises")):
        g = run.attempt(label, lambda: grade_cold_warm(exercises, target, dev, tmp, warm_runs))
        if g:
            run.res["grade"][key] = g


def _part_failing(run: _Run) -> None:
    run.res["failing"] = run.attempt("a failing exercise (its first known bug) against a passing one",
                                     lambda: measure_failing([run.one] if run.quick else run.exercises,
                                                             run.args.device, run.tmp))


def _part_pytest(run: _Run) -> None:
    run.res["pytest"] = {}
    runs = 1 if run.quick else 2
    p = run.attempt("plain pytest, sandboxed (with --durations)",
                    lambda: pytest_cold_warm(run.exercises, run.args.device, in_process=False, runs=runs, durations=10))
    if p:
        run.res["pytest"]["sandboxed"] = p
        run.res["slowest_tests"] = p["warm"].get("durations", [])
    p = run.attempt("plain pytest, in-process (unsandboxed)",
                    lambda: pytest_cold_warm(run.exercises, run.args.device, in_process=True, runs=runs))
    if p:
        run.res["pytest"]["in_process"] = p


def _part_startup(run: _Run) -> None:
    run.res["startup"] = run.attempt("process and sandbox start-up", lambda: {
        **interpreter_start(1 if run.quick else 3),
        "sandbox_start_s": sandbox_starts(run.exercises, run.args.device, 1 if run.quick else 2)})


def _part_watch(run: _Run) -> None:
    run.res["feedback"] = run.attempt(f"time to first feedback ({run.one})",
                                      lambda: measure_feedback(run.one, run.args.device, run.tmp, run.quick))


def _part_batch(run: _Run) -> None:
    n = run.args.batch
    workers = sorted({1, min(os.cpu_count() or 1, n)})
    run.res["batch"] = run.attempt(f"batch of {n} submissions with {workers} process(es)",
                                   lambda: measure_batch(n, run.args.device, run.tmp, workers))


def _part_isolation(run: _Run) -> None:
    iso = [ex for ex in ISOLATION_EXERCISES if ex in run.exercises] or run.exercises[:1]
    run.res["isolation"] = run.attempt(f"each isolation level ({', '.join(iso)})",
                                       lambda: measure_isolation(iso, run.args.device, run.tmp, 1 if run.quick else 3))


def _part_builtins(run: _Run) -> None:
    import torch

    B, L, d, h = run.args.builtin_size
    reps = (3, 7) if run.quick else (5, 30)
    run.res["builtins"] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not run.args.skip_gpu else [])
    for dev in devices:
        b = run.attempt(f"reference vs torch built-ins on {dev}", lambda: compare_builtins(dev, B, L, d, h, *reps))
        run.res["builtins"][dev] = b or {"error": run.res["errors"][-1]}


# the parts in the order they run
RUN_PARTS = {"grade": _part_grade, "failing": _part_failing, "pytest": _part_pytest, "startup": _part_startup,
             "watch": _part_watch, "batch": _part_batch, "isolation": _part_isolation, "builtins": _part_builtins}


def summarise(res: dict) -> None:
    """The ratios to plain pytest, the attribution of a full grade's time, and the targets."""
    ratios = {}
    full = _get(res, "grade", "full", "warm", "wall_s")
    for key, label in (("sandboxed", "grader / pytest (sandboxed)"),
                       ("in_process", "grader / pytest in-process (cost of isolation)")):
        base = _get(res, "pytest", key, "warm", "wall_s")
        if full is not None and base:
            ratios[label] = full / base
    if ratios:
        res["ratios"] = ratios
    res["attribution"] = attribution(res)
    res["targets"] = evaluate_targets(res)
    res["finished"] = _dt.datetime.now().isoformat(timespec="seconds")


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except settings.RootNotFound as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="kata-bench-"))
    run = _Run(args, tmp)
    try:
        for name, part in RUN_PARTS.items():
            if name in args.parts:
                part(run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summarise(run.res)
    print(render(run.res), end="")
    write_json(run.res, args.json)
    print(f"\nbench: results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
