"""``grader.instructor.bench``'s results as a verdict and a table: the speed targets (data, in
``TARGETS``), PASS / MISS per target, where a full grade's time goes, and the plain-text rendering.
Nothing here measures; ``bench`` measures and calls ``evaluate_targets``, ``attribution`` and
``render`` on its results."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

def _failing_ratio(res: dict):
    per = res.get("failing") or {}
    ratios = {k: v["ratio"] for k, v in per.items() if v.get("ratio")}
    if not ratios:
        return None, ""
    worst = max(ratios, key=ratios.get)
    return ratios[worst], worst


def _s(x) -> str:
    return "-" if x is None else f"{x:.2f} s"


def _get(d, *keys):
    """``d[k1][k2]...``, or None where a key (or a list index) is missing."""
    for k in keys:
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return None
    return d


# ---------------------------------------------------------------------- targets

def _ratio_to_pytest(res: dict):
    full = _get(res, "grade", "full", "warm", "wall_s")
    base, basis = _get(res, "pytest", "in_process", "warm", "wall_s"), "pytest in-process (unsandboxed)"
    if base is None:
        base, basis = _get(res, "pytest", "sandboxed", "warm", "wall_s"), "pytest (sandboxed)"
    if full is None or not base:
        return None, ""
    return full / base, basis


def _batch_trend(res: dict):
    """s / submission with the most processes, and whether it fell at every step."""
    runs = _get(res, "batch", "runs") or []
    if len(runs) < 2:
        return None, ("skipped" if not runs else "only one CPU")
    per = [r["per_submission_s"] for r in runs]
    falls = all(b < a for a, b in zip(per, per[1:]))
    return (per[-1], falls), " -> ".join(f"{r['processes']}p {r['per_submission_s']:.2f}s" for r in runs)


@dataclass(frozen=True)
class Target:
    """One speed target: ``measure(res)`` gives (value, basis) from the results (value None when
    not measured); PASS when ``value <bound`` (``op`` "<" or "<="), or, for ``op`` "falls", when
    the measure says the number fell as CPUs were added."""

    name: str
    what: str            # what it measures, in words (the report's label)
    unit: str            # "s" or "x" (a ratio)
    op: str              # "<", "<=" or "falls"
    bound: float | None
    measure: Callable[[dict], tuple]

    def label(self) -> str:
        if self.op == "falls":
            return self.what
        return f"{self.what} {self.op} {self.bound:g}{' s' if self.unit == 's' else ''}"

    def judge(self, res: dict) -> dict:
        value, basis = self.measure(res)
        limit, ok = self.bound, False
        if value is not None and self.op == "falls":
            (value, ok), limit = value, _get(res, "batch", "runs", 0, "per_submission_s")
        elif value is not None:
            ok = value < self.bound if self.op == "<" else value <= self.bound
        status = "n/a" if value is None else ("PASS" if ok else "MISS")
        return {"target": self.label(), "name": self.name, "unit": self.unit, "value": value, "limit": limit,
                "status": status, "basis": basis}


# The grader's speed targets, for a 2-core machine: a student's warm `nox -s grade` must not
# cost much more than the tests themselves, and one exercise must feel interactive.
TARGETS = (
    Target("ratio", "warm full grade / plain pytest", "x", "<=", 1.5, _ratio_to_pytest),
    Target("full", "warm full grade", "s", "<", 60.0,
           lambda res: (_get(res, "grade", "full", "warm", "wall_s"), "")),
    Target("one", "warm one-exercise grade", "s", "<", 8.0,
           lambda res: (_get(res, "grade", "one", "warm", "wall_s"), _get(res, "grade", "one", "exercises", 0) or "")),
    Target("stubs", "warm grade of the stubs", "s", "<", 15.0,
           lambda res: (_get(res, "grade", "stubs", "warm", "wall_s"), "")),
    Target("batch", "batch: s / submission falls as CPUs are added", "s", "falls", None, _batch_trend),
    Target("failing", "failing / passing grade of one exercise (worst)", "x", "<=", 1.5, _failing_ratio),
)


def evaluate_targets(res: dict) -> list[dict]:
    """PASS / MISS per target of ``TARGETS`` (``n/a`` when the number was not measured)."""
    return [t.judge(res) for t in TARGETS]


def attribution(res: dict) -> dict | None:
    """Where a warm full grade's time goes."""
    warm = _get(res, "grade", "full", "warm")
    if not warm or "grade_s" not in warm:
        return None
    starts = _get(res, "startup", "sandbox_start_s")
    out = {"total_s": warm["wall_s"], "process_start_and_imports_s": warm["startup_s"]}
    if starts:
        total_starts = sum(v["total_s"] for v in starts.values())
        out["sandbox_starts_s"] = total_starts
        out["tests_and_collection_s"] = max(0.0, warm["grade_s"] - total_starts)
    else:
        out["grading_s"] = warm["grade_s"]
    inproc = _get(res, "pytest", "in_process", "warm")
    if inproc and "session_s" in inproc:
        out["in_process_pytest_session_s"] = inproc["session_s"]
        out["isolation_overhead_s"] = warm["wall_s"] - inproc["wall_s"]
    return out


class _Table:
    """Lines of the plain-text report: section headings and aligned rows."""

    def __init__(self):
        self.lines: list[str] = []

    def head(self, title):
        self.lines += ["", title, "-" * len(title)]

    def row(self, label, *cells, width=14):
        self.lines.append(f"  {label:<44}" + "".join(f"{c:>{width}}" for c in cells))

    def add(self, line):
        self.lines.append(line)

    def errors(self, *runs):
        for r in runs:
            if "error" in r:
                self.add(f"    error: {r['error'][-300:]}")


def _render_grade(t: _Table, res: dict) -> None:
    grade = res.get("grade") or {}
    if not grade:
        return
    t.head("Grading (fresh `python -m grader` processes, --device " + str(_get(res, "options", "device")) + ")")
    t.row("", "cold", "warm", "startup", "score")
    for key, label in (("full", "solutions/, every exercise"), ("one", "solutions/, one exercise"),
                       ("stubs", "exercises/ (untouched stubs)")):
        g = grade.get(key)
        if not g:
            continue
        if key == "one":
            label = f"solutions/, {', '.join(g['exercises'])}"
        w = g["warm"]
        score = f"{w['score']:g}/{w['max_score']:g}" if "score" in w else "error"
        t.row(label, _s(g["cold"].get("wall_s")), _s(w.get("wall_s")), _s(w.get("startup_s")), score)
        t.errors(g["cold"], w)


def _render_pytest(t: _Table, res: dict) -> None:
    py = res.get("pytest") or {}
    if not py:
        return
    t.head("Plain pytest of the same suites against solutions/ (warm)")
    t.row("", "wall", "session", "startup", "passed")
    for key in ("sandboxed", "in_process"):
        p = py.get(key)
        if not p:
            continue
        w = p["warm"]
        t.row(f"pytest, {p['mode']}", _s(w.get("wall_s")), _s(w.get("session_s")), _s(w.get("startup_s")),
              f"{w.get('passed', '-')}/{w.get('tests', '-')}")
        t.errors(w)
    for name, value in (res.get("ratios") or {}).items():
        t.row(name, f"{value:.2f}x")


_ATTRIBUTION_LABELS = {
    "total_s": "total (wall)", "process_start_and_imports_s": "process start, imports, CLI",
    "sandbox_starts_s": "sandbox starts (sum over exercises)",
    "tests_and_collection_s": "collection and tests", "grading_s": "grading (pytest session)",
    "in_process_pytest_session_s": "same tests in-process (session)",
    "isolation_overhead_s": "grader wall - in-process pytest wall"}


def _render_startup(t: _Table, res: dict) -> None:
    att = res.get("attribution") or {}
    if not (att or res.get("startup")):
        return
    t.head("Where a warm full grade's time goes" if att else "Start-up costs")
    for k, v in att.items():
        t.row(_ATTRIBUTION_LABELS.get(k, k), _s(v))
    su = res.get("startup") or {}
    if su.get("python_s") is not None:
        t.row("  bare `python -c pass`", _s(su["python_s"]))
        t.row("  python importing torch/transformers/pytest/grader", _s(su.get("python_with_imports_s")))
    if su.get("sandbox_start_s"):
        t.row("  sandbox start, per exercise", "total", "spawn", "import")
    for name, v in (su.get("sandbox_start_s") or {}).items():
        t.row(f"    {name}", _s(v["total_s"]), _s(v["spawn_s"]), _s(v["import_s"]))


def _render_feedback(t: _Table, res: dict) -> None:
    fb = res.get("feedback")
    if not fb:
        return
    t.head("Time to first feedback after a save")
    t.add(f"  method: {fb.get('method')}")
    if fb.get("note"):
        t.add(f"  note: {fb['note']}")
    w = fb.get("watch")
    if w:
        t.row("watcher start to ready (first grade included)", _s(w.get("startup_s")))
        t.add(f"  saves {w['settle_s']:g} s apart: " + ", ".join(f"{x:.2f} s" for x in w["saves"]))
    for key, label in (("cold", "first save"), ("warm", "later saves (median)")):
        r = fb.get(key) or {}
        t.row(f"{fb.get('exercise')}: {label}", _s(r.get("seconds")) if "seconds" in r else "error")
        t.errors(r)


def _render_failing_and_slowest(t: _Table, res: dict) -> None:
    failing = res.get("failing") or {}
    if failing:
        t.head("A failing exercise (its first known bug) against the passing reference, --jobs 1")
        t.row("exercise (bug)", "passing", "failing", "ratio")
        for name, r in failing.items():
            t.row(f"{name} ({r['bug']})", _s(r["passing_s"]), _s(r["failing_s"]),
                  f"{r['ratio']:.2f}x" if r.get("ratio") else "-")
    slow = res.get("slowest_tests") or []
    if slow:
        t.head("Slowest tests (sandboxed pytest against solutions/; a module's first setup includes its sandbox start)")
        for x in slow:
            t.add(f"  {x['seconds']:8.2f} s  {x['phase']:<8} {x['test']}")


def _render_batch_and_isolation(t: _Table, res: dict) -> None:
    batch = res.get("batch")
    if batch:
        t.head(f"Batch: {batch['submissions']} copies of the reference ({', '.join(batch['exercises'])})")
        t.row("", "wall", "s/submission", "full marks")
        for r in batch["runs"]:
            t.row(f"{r['processes']} process(es)", _s(r["wall_s"]), _s(r["per_submission_s"]),
                  f"{r['full_marks']}/{batch['submissions']}")
    iso = res.get("isolation")
    if iso:
        t.head(f"Isolation levels: one exercise per fresh grader, --jobs 1, median of {iso['repeats']}")
        width = max(14, *(len(ex) + 2 for ex in iso["exercises"]))
        t.row("level", *iso["exercises"], "mean", "extra", width=width)
        for level, v in iso["levels"].items():
            t.row(level, *(_s(v["per_exercise_s"][ex]) for ex in iso["exercises"]), _s(v["mean_s"]),
                  "-" if v["extra_s"] is None else f"{v['extra_s']:+.2f} s", width=width)
        for level, why in iso["unavailable"].items():
            t.add(f"  {level}: not measured ({why[-200:]})")


def _render_builtins(t: _Table, res: dict) -> None:
    for dev, b in (res.get("builtins") or {}).items():
        if "error" in b:
            t.head(f"Reference vs torch built-ins on {dev}")
            t.add(f"  error: {b['error']}")
            continue
        sz = b["sizes"]
        t.head(f"Reference vs torch built-ins on {b['device']} (B={sz['B']} L={sz['L']} d={sz['d']} h={sz['h']}, "
               f"eval, no_grad, median of {b['repeats']})")
        t.row("", "reference", "torch", "ratio", "max |diff|")
        mha, sd = b["mha"], b["sdpa"]
        t.row("MultiHeadAttention vs nn.MultiheadAttention", f"{mha['reference_ms']:.3f} ms",
              f"{mha['torch_ms']:.3f} ms", f"{mha['ratio']:.2f}x", f"{mha['max_abs_diff']:.1e}")
        t.row("  (torch also returning per-head weights)", "", f"{mha['torch_with_weights_ms']:.3f} ms",
              f"{mha['ratio_with_weights']:.2f}x")
        t.row("ScaledDotProductAttention vs F.sdpa", f"{sd['reference_ms']:.3f} ms", f"{sd['torch_ms']:.3f} ms",
              f"{sd['ratio']:.2f}x", f"{sd['max_abs_diff']:.1e}")


def _render_targets(t: _Table, res: dict) -> None:
    targets = res.get("targets") or []
    if targets:
        t.head("Targets")
        for x in targets:
            v = x["value"]
            shown = "-" if v is None else (f"{v:.2f}x" if x.get("unit") == "x" else f"{v:.2f} s")
            t.add(f"  {x['status']:<5} {x['target']:<50} {shown:>10}  {x['basis']}")
    for err in res.get("errors") or []:
        t.add(f"error: {err}")


SECTIONS = (_render_grade, _render_pytest, _render_startup, _render_feedback, _render_failing_and_slowest,
            _render_batch_and_isolation, _render_builtins, _render_targets)


def render(res: dict) -> str:
    """The results as a plain-text table: a header line, then one section per part measured."""
    t = _Table()
    m = res.get("machine", {})
    t.add(f"grader bench  {res.get('started', '')}  {m.get('cpus')} CPU(s), python {m.get('python')}, "
          f"torch {m.get('torch')}, isolation {m.get('isolation')}, load {m.get('loadavg')}"
          + ("  [--quick]" if _get(res, "options", "quick") else ""))
    for section in SECTIONS:
        section(t, res)
    return "\n".join(t.lines).lstrip("\n") + "\n"
