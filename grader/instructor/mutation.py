"""``python -m grader.instructor.mutation``: mutation analysis of ``solutions/`` with cosmic-ray.

Every mutant of ``solutions/<exercise>.py`` that cosmic-ray's operators make is graded by the
grader itself, on that one exercise, against a mutated COPY of ``solutions/``::

    python -m grader EXERCISE --target COPY --fail-under 100 --exitfirst --no-shrink --jobs 1 --device cpu

A mutant is *killed* when that command fails (the grader's reference is the untouched
``solutions/``), *timed out* when it runs past the timeout, *survived* when it scores full marks.
The kata's own files are never edited: each worker owns a private copy of ``solutions/`` in a
temporary folder, so an interrupted run leaves ``solutions/`` as it was.

Resumable: one cosmic-ray session database per exercise, ``.mutation/<exercise>.sqlite``
(ignored by git), holds the work items and every result as soon as it is known.  Run the
command again and it grades only the pending mutants.  A session is started afresh when the
solution, the suite, the operator selection or cosmic-ray's version changed (``--fresh`` forces
it).  ``cr-report .mutation/<exercise>.sqlite`` reads the same database.

Parallel: ``--jobs N`` workers (default: every core), each grading one mutant at a time in its
own copy; this process alone writes the database.  Each worker forks the test command from a warm
Python that has imported torch and transformers once (``grader.instructor.forkserver``), which
halves the time per mutant; ``--cold`` starts every command as a new process instead.

Equivalent mutants (no correct test can tell them from the reference) are declared, never
ignored silently, in ``tests/mutation/<exercise>.toml``; each entry names the operator, the
occurrence AND the mutated line's text (so an entry that no longer matches is reported as stale,
and fails the run) with a one-line reason.  A survivor that is not declared is printed with its
diff.  The same file may exclude operators for the exercise, with a reason.

Score = (killed + timed out) / (made - declared equivalent): a timed-out mutant loses the
student's points as surely as a failing test.

When an exercise has no pending mutant left, its counts and the sha256 of the solution and
suite they were computed against are written to ``tests/mutation/results.json`` (checked in);
``nox -s verify`` warns when that record is stale (``stale_results``).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import difflib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader import manifest as manifest_mod
from grader.manifest import root
from grader.manifest import tomllib

STATE_DIR = ".mutation"                 # session databases (ignored by git)
DECLARATIONS_DIR = Path("tests") / "mutation"
RESULTS_FILE = DECLARATIONS_DIR / "results.json"
HEADER = "kata-mutation: "              # first line of a stored result's output: timing, exit status
OUTPUT_KEEP = 4000                      # characters of the grader's output kept per result
MIN_TIMEOUT_S = 60.0
REFRESH = "nox -s mutation -- {ex}"


# ---------------------------------------------------------------- cheap parts (no cosmic-ray needed)

def sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def suite_files(ex: str) -> list[Path]:
    """The files of the exercise's suite: ``tests/test_<ex>.py`` and a ``tests/<ex>/`` folder."""
    tests = root() / "tests"
    files = [tests / f"test_{ex}.py"] if (tests / f"test_{ex}.py").is_file() else []
    if (tests / ex).is_dir():
        files += sorted(p for p in (tests / ex).rglob("*.py") if "__pycache__" not in p.parts)
    return files


# ``item="..."`` in a ``judges`` marker names the rubric item a test's points go to: it changes
# points, never whether a mutant is killed (any failing test kills it), so it is not part of the
# suite's hash.
_ITEM_KWARG = re.compile(rb', item="[^"]*"')


def source_hashes(ex: str) -> dict:
    """sha256 of what a mutation result depends on: the solution and the suite (rubric items aside)."""
    suite = hashlib.sha256()
    for f in suite_files(ex):
        text = _ITEM_KWARG.sub(b"", f.read_bytes())
        suite.update(f.relative_to(root()).as_posix().encode() + b"\0" + text + b"\0")
    return {"solution": sha256(root() / "solutions" / f"{ex}.py"), "suite": suite.hexdigest()}


def load_results() -> dict:
    path = root() / RESULTS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def stale_results(exercises) -> list[str]:
    """One line per exercise whose stored mutation result (``tests/mutation/results.json``)
    is missing or was computed against another solution or suite; empty when all are current."""
    stored = load_results().get("exercises", {})
    lines = []
    for ex in exercises:
        entry = stored.get(ex)
        if entry is None:
            lines.append(f"{ex}: no stored mutation result; compute it: {REFRESH.format(ex=ex)}")
            continue
        now = source_hashes(ex)
        changed = [what for what in ("solution", "suite") if entry.get("sha256", {}).get(what) != now[what]]
        if changed:
            what = " and ".join({"solution": f"solutions/{ex}.py", "suite": f"tests/test_{ex}.py"}[c]
                                for c in changed)
            lines.append(f"{ex}: mutation result is stale ({what} changed since it was computed); "
                         f"refresh: {REFRESH.format(ex=ex)}")
    return lines


class DeclarationError(Exception):
    pass


def load_declarations(ex: str) -> dict:
    """``tests/mutation/<ex>.toml``: ``[[equivalent]]`` entries (operator, occurrence, line, reason)
    and an optional ``[operators]`` table (``exclude`` = regexes of operator names, ``reason``)."""
    path = root() / DECLARATIONS_DIR / f"{ex}.toml"
    if not path.is_file():
        return {"equivalent": [], "exclude": [], "exclude_reason": ""}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"equivalent", "operators"}
    if unknown:
        raise DeclarationError(f"{path.name}: unknown table(s) {sorted(unknown)}; use [[equivalent]] and [operators]")
    entries = []
    for i, item in enumerate(data.get("equivalent", [])):
        missing = [k for k in ("operator", "occurrence", "line", "reason") if k not in item]
        if missing:
            raise DeclarationError(f"{path.name}: equivalent #{i + 1} lacks {', '.join(missing)}")
        if not str(item["reason"]).strip():
            raise DeclarationError(f"{path.name}: equivalent #{i + 1} ({item['operator']}) gives no reason")
        entries.append({"operator": str(item["operator"]), "occurrence": int(item["occurrence"]),
                        "line": str(item["line"]).strip(), "reason": str(item["reason"]).strip()})
    ops = data.get("operators", {})
    exclude = list(ops.get("exclude", []))
    if exclude and not str(ops.get("reason", "")).strip():
        raise DeclarationError(f"{path.name}: [operators] exclude needs a reason")
    for pattern in exclude:
        re.compile(pattern)
    return {"equivalent": entries, "exclude": exclude, "exclude_reason": str(ops.get("reason", ""))}


def match_declarations(survivors: list[dict], killed: list[dict], entries: list[dict]):
    """Split survivors into declared-equivalent and not, and find stale entries.

    ``survivors``/``killed``: dicts with ``operator``, ``occurrence``, ``line`` (the mutated line,
    stripped).  An entry matches a survivor when all three agree.  Returns
    ``(equivalent, undeclared, stale)``; ``stale`` holds one message per entry that matches no
    survivor (the code moved, the mutant is now killed, or it no longer exists)."""
    by_key = {(s["operator"], s["occurrence"]): s for s in survivors}
    killed_key = {(k["operator"], k["occurrence"]): k for k in killed}
    used, stale = set(), []
    for e in entries:
        key = (e["operator"], e["occurrence"])
        s = by_key.get(key)
        if s is not None and s["line"] == e["line"]:
            used.add(key)
            continue
        where = f"{e['operator']} #{e['occurrence']} ({e['line']!r})"
        moved = [x for x in survivors if x["operator"] == e["operator"] and x["line"] == e["line"]]
        if moved:
            stale.append(f"stale equivalent {where}: that mutant is now occurrence "
                         f"{', '.join(str(x['occurrence']) for x in moved)}")
        elif key in killed_key and killed_key[key]["line"] == e["line"]:
            stale.append(f"stale equivalent {where}: the suite now kills it; remove the entry")
        elif s is not None:
            stale.append(f"stale equivalent {where}: occurrence {e['occurrence']} now mutates "
                         f"{s['line']!r}")
        else:
            stale.append(f"stale equivalent {where}: no surviving mutant matches it")
    equivalent = [s for s in survivors if (s["operator"], s["occurrence"]) in used]
    undeclared = [s for s in survivors if (s["operator"], s["occurrence"]) not in used]
    return equivalent, undeclared, stale


# ---------------------------------------------------------------- running (needs cosmic-ray)

def _cosmic_ray():
    try:
        import cosmic_ray  # noqa: F401
    except ImportError:
        raise SystemExit("mutation: cosmic-ray is not installed in this Python; run `nox -s mutation`, "
                         "which installs it into .nox/mutation") from None
    from importlib.metadata import version
    return version("cosmic-ray")


def mutated_line(original: str, mutated: str, start_line: int) -> str:
    """The mutated line's text (stripped): the line where the mutation starts, in the mutant."""
    lines = mutated.splitlines()
    return lines[start_line - 1].strip() if 0 < start_line <= len(lines) else ""


def make_mutant(original: str, mutation) -> str | None:
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    operator = cosmic_ray.plugins.get_operator(mutation.operator_name)(**(mutation.operator_args or {}))
    return mutate_code(original, operator, mutation.occurrence)


def unified_diff(original: str, mutated: str, name: str) -> str:
    return "".join(difflib.unified_diff(original.splitlines(True), mutated.splitlines(True),
                                        f"a/{name}", f"b/{name}", n=1))


class Runner:
    """Grades mutants in ``jobs`` private copies of ``solutions/``, one at a time per copy."""

    def __init__(self, python: str, jobs: int, device: str, warm: bool = True):
        self.python, self.device, self.warm = python, device, warm
        self.scratch = Path(tempfile.mkdtemp(prefix="kata-mutation-"))
        self.slots: queue.Queue = queue.Queue()
        self.servers: dict[Path, WarmServer] = {}
        for i in range(jobs):
            slot = self.scratch / f"worker{i}" / "solutions"
            shutil.copytree(root() / "solutions", slot, ignore=shutil.ignore_patterns("__pycache__"))
            self.slots.put(slot)
        self.procs: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def args(self, ex: str, slot: Path) -> list[str]:
        return [ex, "--target", str(slot), "--fail-under", "100",
                "--exitfirst", "--no-shrink", "--jobs", "1", "--device", self.device]

    def command(self, ex: str, slot: Path) -> list[str]:
        return [self.python, "-m", "grader", *self.args(ex, slot)]

    def env(self) -> dict:
        return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "KATA_ROOT": str(root()), "KATA_LANG": "en"}

    def run_command(self, ex: str, slot: Path, timeout: float):
        """``(exit, timed_out, output)`` of the test command on ``slot``: forked from the slot's
        warm server (``grader.instructor.forkserver``), or started cold with ``warm=False``."""
        if not self.warm:
            proc = subprocess.Popen(self.command(ex, slot), cwd=root(), env=self.env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            with self.lock:
                self.procs[proc.pid] = proc
            try:
                out, _ = proc.communicate(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                out, _ = proc.communicate()
                timed_out = True
            finally:
                with self.lock:
                    self.procs.pop(proc.pid, None)
            return proc.returncode, timed_out, out.decode("utf-8", "replace")
        with self.lock:
            server = self.servers.get(slot)
            if server is None or not server.alive():
                server = self.servers[slot] = WarmServer(self.python, self.env())
        log = slot.parent / "grader.log"
        exit_code, timed_out = server.run(self.args(ex, slot), log, timeout)
        return exit_code, timed_out, log.read_bytes().decode("utf-8", "replace") if log.is_file() else ""

    def grade(self, ex: str, code: str | None, timeout: float) -> dict:
        """Grade ``code`` as ``<ex>.py`` in a free copy (``None``: the unmutated solution)."""
        slot = self.slots.get()
        path = slot / f"{ex}.py"
        original = path.read_bytes()
        try:
            if code is not None:
                path.write_text(code, encoding="utf-8")
            shutil.rmtree(slot / "__pycache__", ignore_errors=True)
            started = time.monotonic()
            if self.stopping.is_set():
                raise KeyboardInterrupt
            exit_code, timed_out, out = self.run_command(ex, slot, timeout)
            if self.stopping.is_set():
                raise KeyboardInterrupt
            return {"exit": exit_code, "timed_out": timed_out, "seconds": time.monotonic() - started,
                    "output": out[-OUTPUT_KEEP:]}
        finally:
            path.write_bytes(original)
            self.slots.put(slot)

    def stop(self):
        self.stopping.set()
        with self.lock:
            for proc in list(self.procs.values()):
                _kill_group(proc)
            for server in self.servers.values():
                server.kill_child()

    def close(self):
        with self.lock:
            for server in self.servers.values():
                server.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class WarmServer:
    """One ``grader.instructor.forkserver`` process: forks the test command with torch and
    transformers already imported (the protocol is in that module's docstring)."""

    def __init__(self, python: str, env: dict):
        self.proc = subprocess.Popen([python, "-m", "grader.instructor.forkserver"], cwd=root(), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.child: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _reply(self, deadline: float | None) -> dict | None:
        """The next reply line, or ``None`` at the deadline."""
        import select

        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.proc.stdout], [], [], wait)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the warm grading server died (exit {self.proc.wait()})")
                return json.loads(line)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def run(self, args: list[str], log: Path, timeout: float):
        """``(exit, timed_out)`` of ``python -m grader ARGS`` forked by the server."""
        started = time.monotonic()
        self.proc.stdin.write(json.dumps({"argv": args, "log": str(log), "cwd": str(root())}) + "\n")
        self.proc.stdin.flush()
        self.child = self._reply(None)["pid"]
        try:
            done = self._reply(started + timeout)
            if done is None:
                self.kill_child()
                return self._reply(None)["exit"], True
            return done["exit"], False
        finally:
            self.child = None

    def kill_child(self):
        if self.child is not None:
            try:
                os.killpg(self.child, signal.SIGKILL)
            except OSError:
                pass

    def close(self):
        self.kill_child()
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _kill_group(proc):
    try:
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def session_key(ex: str, declarations: dict, tool_version: str) -> dict:
    return {**source_hashes(ex), "exclude": declarations["exclude"], "cosmic_ray": tool_version}


def open_session(ex: str, declarations: dict, tool_version: str, fresh: bool):
    """The exercise's session database, (re)initialised when absent, forced, or out of date."""
    from cosmic_ray.commands import init
    from cosmic_ray.work_db import WorkDB
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    state = root() / STATE_DIR
    state.mkdir(exist_ok=True)
    (state / ".gitignore").write_text("*\n", encoding="utf-8")
    db_path, meta_path = state / f"{ex}.sqlite", state / f"{ex}.meta.json"
    key = session_key(ex, declarations, tool_version)
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    db = WorkDB(str(db_path), WorkDB.Mode.create)
    if fresh or meta.get("key") != key or db.num_work_items == 0:
        if db.num_work_items:
            print(f"  {ex}: starting a new session ({'--fresh' if fresh else 'solution, suite or operators changed'})")
        cwd = os.getcwd()
        os.chdir(root())               # module paths stored relative to the root: solutions/<ex>.py
        try:
            init([Path("solutions") / f"{ex}.py"], db, {})
        finally:
            os.chdir(cwd)
        if declarations["exclude"]:
            pattern = re.compile("|".join(f"(?:{p})" for p in declarations["exclude"]))
            skipped = [w.job_id for w in db.work_items if pattern.fullmatch(w.mutations[0].operator_name)]
            if skipped:
                db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                            output="excluded by tests/mutation/" + f"{ex}.toml"))
        meta = {"key": key}
        meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return db, meta, meta_path


def plan_mutants(exercises, runner: Runner, *, fresh: bool, timeout_factor: float, tool_version: str):
    """Open each exercise's session and make its pending mutants: ``({ex: (db, meta)}, todo)``,
    each todo item ``(ex, work item, original source, mutated source, timeout)``."""
    sessions, todo = {}, []
    for ex in exercises:
        decl = load_declarations(ex)
        db, meta, meta_path = open_session(ex, decl, tool_version, fresh)
        sessions[ex] = (db, meta)
        pending = sorted(db.pending_work_items, key=lambda w: (w.mutations[0].operator_name, w.mutations[0].occurrence))
        if not pending:
            continue
        if "baseline_s" not in meta:
            base = runner.grade(ex, None, timeout=max(MIN_TIMEOUT_S, 600.0))
            if base["exit"] != 0 or base["timed_out"]:
                raise SystemExit(f"mutation: solutions/{ex}.py does not score full marks under the test command "
                                 f"(exit {base['exit']}); fix that first:\n{base['output'][-2000:]}")
            meta["baseline_s"] = round(base["seconds"], 2)
            meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        timeout = max(MIN_TIMEOUT_S, timeout_factor * meta["baseline_s"])
        original = (root() / "solutions" / f"{ex}.py").read_text(encoding="utf-8")
        print(f"  {ex}: {len(pending)} pending of {db.num_work_items} mutants "
              f"(baseline {meta['baseline_s']:.1f} s, timeout {timeout:.0f} s)", flush=True)
        # mutants are made here, in one thread (parso), and graded in the workers
        todo += [(ex, item, original, make_mutant(original, item.mutations[0]), timeout) for item in pending]
    return sessions, todo


def grade_mutant(runner: Runner, ex, item, original, mutated, timeout):
    """One mutant graded: (cosmic-ray's WorkResult, the runner's result or None)."""
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    mutation = item.mutations[0]
    if mutated is None:
        return WorkResult(worker_outcome=WorkerOutcome.NO_TEST), None
    r = runner.grade(ex, mutated, timeout)
    header = HEADER + json.dumps({"seconds": round(r["seconds"], 2), "exit": r["exit"],
                                  "timed_out": r["timed_out"]})
    outcome = TestOutcome.SURVIVED if (r["exit"] == 0 and not r["timed_out"]) else TestOutcome.KILLED
    return WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=outcome,
                      output=header + "\n" + r["output"],
                      diff=unified_diff(original, mutated, str(mutation.module_path))), r


def _print_progress(done: int, total: int, ex, item, result, r) -> None:
    m = item.mutations[0]
    status = ("timeout" if r and r["timed_out"] else result.test_outcome.value if result.test_outcome
              else result.worker_outcome.value)
    secs = f"{r['seconds']:5.1f} s" if r else ""
    print(f"  [{done}/{total}] {ex} {m.operator_name} #{m.occurrence} line {m.start_pos[0]}: {status} {secs}",
          flush=True)


def run(exercises, runner: Runner, *, fresh: bool, timeout_factor: float, tool_version: str) -> dict:
    """Grade every pending mutant of ``exercises``, storing each result as it comes; returns
    ``{ex: (db, meta)}``."""
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    sessions, todo = plan_mutants(exercises, runner, fresh=fresh, timeout_factor=timeout_factor,
                                  tool_version=tool_version)
    started, done = time.monotonic(), 0
    jobs = runner.slots.qsize()
    pool = cf.ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(grade_mutant, runner, *t): t for t in todo}
        for fut in cf.as_completed(futures):
            ex, item = futures[fut][:2]
            try:
                result, r = fut.result()
            except KeyboardInterrupt:
                continue
            except Exception as exc:  # noqa: BLE001 - a worker's own failure: stored, reported
                result, r = WorkResult(worker_outcome=WorkerOutcome.EXCEPTION, output=repr(exc)), None
            sessions[ex][0].set_result(item.job_id, result)
            done += 1
            _print_progress(done, len(todo), ex, item, result, r)
    except KeyboardInterrupt:
        runner.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        print(f"\nmutation: interrupted after {done} mutant(s); run the same command again to continue",
              file=sys.stderr)
        raise
    pool.shutdown(wait=True)
    if todo:
        print(f"  graded {done} mutant(s) in {time.monotonic() - started:.0f} s with {jobs} worker(s)", flush=True)
    return sessions


def summarise(ex: str, db, meta: dict) -> dict:
    """Counts, score and survivors of one exercise's session."""
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    decl = load_declarations(ex)
    original = (root() / "solutions" / f"{ex}.py").read_text(encoding="utf-8")
    items = {w.job_id: w for w in db.work_items}
    results = dict(db.results)
    counts = dict(made=0, killed=0, timed_out=0, survived=0, equivalent=0, errors=0, pending=0, excluded=0)
    survivors, killed, seconds = [], [], []
    errors = []
    for job_id, item in items.items():
        m = item.mutations[0]
        res = results.get(job_id)
        if res is None:
            counts["made"] += 1
            counts["pending"] += 1
            continue
        if res.worker_outcome == WorkerOutcome.SKIPPED:
            counts["excluded"] += 1
            continue
        if res.worker_outcome == WorkerOutcome.NO_TEST:
            continue
        counts["made"] += 1
        info = _header(res.output)
        if "seconds" in info:
            seconds.append(info["seconds"])
        if res.worker_outcome != WorkerOutcome.NORMAL:
            counts["errors"] += 1
            errors.append(f"{m.operator_name} #{m.occurrence}: {(res.output or '')[-300:]}")
            continue
        mutated = make_mutant(original, m)
        rec = {"operator": m.operator_name, "occurrence": m.occurrence, "lineno": m.start_pos[0],
               "function": m.definition_name, "line": mutated_line(original, mutated or "", m.start_pos[0]),
               "diff": res.diff or ""}
        if res.test_outcome == TestOutcome.SURVIVED:
            survivors.append(rec)
        elif info.get("timed_out"):
            counts["timed_out"] += 1
            killed.append(rec)
        else:
            counts["killed"] += 1
            killed.append(rec)
    equivalent, undeclared, stale = match_declarations(survivors, killed, decl["equivalent"])
    counts["equivalent"], counts["survived"] = len(equivalent), len(undeclared)
    denominator = counts["made"] - counts["pending"] - counts["errors"] - counts["equivalent"]
    score = 100.0 * (counts["killed"] + counts["timed_out"]) / denominator if denominator > 0 else None
    return {**counts, "score": None if score is None else round(score, 1),
            "complete": counts["pending"] == 0 and counts["errors"] == 0,
            "current": all(meta.get("key", {}).get(k) == v for k, v in source_hashes(ex).items()),
            "serial_s": round(sum(seconds), 1), "mean_mutant_s": round(sum(seconds) / len(seconds), 2) if seconds else None,
            "baseline_s": meta.get("baseline_s"),
            "survivors": sorted(undeclared, key=lambda s: (s["lineno"], s["operator"], s["occurrence"])),
            "stale_declarations": stale, "errors_detail": errors[:20]}


def _header(output) -> dict:
    if output and output.startswith(HEADER):
        try:
            return json.loads(output.splitlines()[0][len(HEADER):])
        except ValueError:
            return {}
    return {}


def print_table(summaries: dict, out=sys.stdout) -> None:
    print(file=out)
    print(f"  {'exercise':<20} {'made':>5} {'killed':>6} {'survived':>8} {'timeout':>7} {'equiv':>5} "
          f"{'pending':>7} {'score':>7} {'s/mutant':>8}", file=out)
    for ex, s in summaries.items():
        score = "-" if s["score"] is None else f"{s['score']:.1f} %"
        per = "-" if s["mean_mutant_s"] is None else f"{s['mean_mutant_s']:.1f}"
        print(f"  {ex:<20} {s['made']:>5} {s['killed']:>6} {s['survived']:>8} {s['timed_out']:>7} "
              f"{s['equivalent']:>5} {s['pending']:>7} {score:>7} {per:>8}", file=out)
    for ex, s in summaries.items():
        for sv in s["survivors"]:
            print(f"\n  SURVIVED {ex} {sv['operator']} #{sv['occurrence']} "
                  f"(line {sv['lineno']}, in {sv['function']}): {sv['line']}", file=out)
            print("    " + sv["diff"].rstrip("\n").replace("\n", "\n    "), file=out)
        for line in s["stale_declarations"]:
            print(f"\n  STALE {ex}: {line} (tests/mutation/{ex}.toml)", file=out)
        for line in s["errors_detail"]:
            print(f"\n  ERROR {ex}: {line}", file=out)
    out.flush()


def write_results(summaries: dict, tool_version: str) -> list[str]:
    """Record complete exercises in ``tests/mutation/results.json``; returns their names."""
    path = root() / RESULTS_FILE
    data = load_results() or {}
    data.setdefault("exercises", {})
    data["tool"] = f"cosmic-ray {tool_version}"
    data["command"] = "python -m grader EXERCISE --target COPY --fail-under 100 --exitfirst --no-shrink --jobs 1 --device cpu"
    written = []
    for ex, s in summaries.items():
        if not (s["complete"] and s["current"]):
            continue
        data["exercises"][ex] = {k: s[k] for k in ("made", "killed", "survived", "timed_out", "equivalent",
                                                   "excluded", "score", "serial_s", "mean_mutant_s")}
        data["exercises"][ex]["sha256"] = source_hashes(ex)
        written.append(ex)
    if written:
        path.parent.mkdir(parents=True, exist_ok=True)
        data["exercises"] = dict(sorted(data["exercises"].items()))
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return written


def parse_args(argv, names):
    p = argparse.ArgumentParser(prog="python -m grader.instructor.mutation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exercise", nargs="*", help="analyse only these exercises (default: all)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="mutants graded side by side")
    p.add_argument("--python", default=sys.executable,
                   help="the Python that runs the grader (the kata's virtualenv; default: this one)")
    p.add_argument("--device", default="cpu", help="the grader's --device (default cpu)")
    p.add_argument("--timeout-factor", type=float, default=4.0,
                   help=f"a mutant times out after this many baseline gradings (at least {MIN_TIMEOUT_S:g} s)")
    p.add_argument("--fresh", action="store_true", help="discard stored results and start new sessions")
    p.add_argument("--cold", action="store_true",
                   help="start every grading as a new Python instead of forking it from a warm server "
                        "that has imported torch and transformers (slower; the same verdicts)")
    p.add_argument("--report-only", action="store_true", help="grade nothing; report the stored results")
    p.add_argument("--json", metavar="FILE", help="write the per-exercise summary as JSON")
    p.add_argument("--fail-under", type=float, metavar="PCT",
                   help="exit 1 when an exercise's score is below PCT percent")
    args = p.parse_args(argv)
    unknown = [e for e in args.exercise if e not in names]
    if unknown:
        p.error(f"unknown exercise(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    return args


def stored_sessions(exercises) -> dict:
    """``{ex: (db, meta)}`` for the exercises with a stored session (--report-only)."""
    from cosmic_ray.work_db import WorkDB

    sessions = {}
    for ex in exercises:
        db_path = root() / STATE_DIR / f"{ex}.sqlite"
        if db_path.is_file():
            meta_path = root() / STATE_DIR / f"{ex}.meta.json"
            meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
            sessions[ex] = (WorkDB(str(db_path), WorkDB.Mode.open), meta)
    return sessions


def graded_sessions(exercises, args, version) -> dict | None:
    """Grade the pending mutants; None when interrupted."""
    runner = Runner(args.python, args.jobs, args.device, warm=not args.cold)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(exercises, runner, fresh=args.fresh, timeout_factor=args.timeout_factor, tool_version=version)
    except KeyboardInterrupt:
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.close()


def report(summaries: dict, version: str, json_path) -> None:
    """The JSON summary, the stored record, the table and what is stale."""
    if json_path:
        Path(json_path).write_text(json.dumps({"tool": f"cosmic-ray {version}", "exercises": summaries},
                                              indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written = write_results(summaries, version)
    print_table(summaries)
    for ex, s in summaries.items():
        if not s["current"]:
            print(f"\nmutation: warning: the stored session of {ex} was made for another solution or suite; "
                  f"rerun: {REFRESH.format(ex=ex)}")
    if written:
        print(f"\nmutation: recorded {', '.join(written)} in {RESULTS_FILE.as_posix()} (commit it)")


def main(argv=None) -> int:
    names = [e.name for e in manifest_mod.load()]
    args = parse_args(argv, names)
    exercises = [e for e in names if e in (args.exercise or names) and (root() / "solutions" / f"{e}.py").is_file()]
    version = _cosmic_ray()
    try:
        for ex in exercises:
            load_declarations(ex)
    except DeclarationError as exc:
        print(f"mutation: error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    print(f"mutation: cosmic-ray {version}; {len(exercises)} exercise(s); "
          f"{'report only' if args.report_only else f'{args.jobs} worker(s)'}", flush=True)
    sessions = stored_sessions(exercises) if args.report_only else graded_sessions(exercises, args, version)
    if sessions is None:
        return 130
    summaries = {ex: summarise(ex, db, meta) for ex, (db, meta) in sessions.items()}
    for db, _ in sessions.values():
        with contextlib.suppress(Exception):
            db.close()
    report(summaries, version, args.json)
    print(f"mutation: {time.monotonic() - started:.0f} s", flush=True)
    bad = any(s["stale_declarations"] for s in summaries.values())
    if args.fail_under is not None:
        bad |= any(s["score"] is None or s["score"] < args.fail_under for s in summaries.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
