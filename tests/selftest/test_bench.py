"""``python -m grader.instructor.bench``: its cheapest parts run and report sane numbers.

No test here depends on how fast anything is: only on the report's shape and that
the measured times are positive numbers.
"""
import json
import subprocess
import sys
from pathlib import Path

from grader.instructor import bench

ROOT = Path(__file__).resolve().parents[2]


def _positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def test_builtin_comparison_tiny_sizes():
    res = bench.compare_builtins("cpu", B=2, L=8, d=16, h=2, warmup=1, repeats=3)
    assert res["device"] == "cpu" and res["sizes"] == {"B": 2, "L": 8, "d": 16, "h": 2}
    for part in ("mha", "sdpa"):
        for key in ("reference_ms", "torch_ms", "ratio"):
            assert _positive(res[part][key]), (part, key, res[part][key])
        # the reference and the built-in compute the same thing (same weights)
        assert res[part]["max_abs_diff"] < 1e-4, res[part]
    assert _positive(res["mha"]["torch_with_weights_ms"])


def test_report_renders_and_targets_are_judged(tmp_path):
    warm = {"wall_s": 30.0, "grade_s": 25.0, "startup_s": 5.0, "score": 100, "max_score": 100}
    res = {
        "machine": {"cpus": 2}, "options": {"quick": True, "device": "cpu"},
        "grade": {"full": {"exercises": "all", "cold": dict(warm, wall_s=40.0), "warm": warm},
                  "one": {"exercises": ["attention_torch"], "cold": dict(warm, wall_s=9.0),
                          "warm": dict(warm, wall_s=7.0)},
                  "stubs": {"exercises": "all", "cold": warm, "warm": dict(warm, wall_s=16.0)}},
        "pytest": {"in_process": {"mode": "in-process (unsandboxed)", "runs": [25.0],
                                  "warm": {"wall_s": 25.0, "session_s": 20.0, "passed": 3, "tests": 3}}},
        "startup": {"sandbox_start_s": {"attention_numpy": {"total_s": 2.0, "spawn_s": 1.5, "import_s": 0.5},
                                        "attention_torch": {"total_s": 3.0, "spawn_s": 2.5, "import_s": 0.5}}},
        "batch": {"submissions": 4, "exercises": ["attention_numpy"],
                  "runs": [{"processes": 1, "wall_s": 8.0, "per_submission_s": 2.0, "full_marks": 4},
                           {"processes": 2, "wall_s": 6.0, "per_submission_s": 1.5, "full_marks": 4}]},
        "failing": {"attention_numpy": {"bug": "no_scaling", "passing_s": 10.0, "failing_s": 12.0, "ratio": 1.2},
                    "encoder": {"bug": "wrong_eps", "passing_s": 20.0, "failing_s": 40.0, "ratio": 2.0}},
        "isolation": {"exercises": ["attention_numpy"], "repeats": 1, "unavailable": {"landlock": "the report says processes"},
                      "levels": {"processes": {"per_exercise_s": {"attention_numpy": 3.0}, "mean_s": 3.0, "extra_s": 0.0},
                                 "namespaces": {"per_exercise_s": {"attention_numpy": 3.5}, "mean_s": 3.5, "extra_s": 0.5}}},
        "errors": [],
    }
    res["attribution"] = bench.attribution(res)
    assert res["attribution"]["sandbox_starts_s"] == 5.0
    assert res["attribution"]["tests_and_collection_s"] == 20.0
    res["targets"] = bench.evaluate_targets(res)
    # ratio 30/25 = 1.2 <= 1.5, full 30 s < 60, one 7 s < 8, stubs 16 s >= 15: MISS, batch 2.0 -> 1.5 falls,
    # failing/passing: the worst exercise (encoder, 2.0x) > 1.5: MISS
    assert [t["status"] for t in res["targets"]] == ["PASS", "PASS", "PASS", "MISS", "PASS", "MISS"], res["targets"]
    assert res["targets"][5]["basis"] == "encoder"
    text = bench.render(res)
    assert "Targets" in text and "MISS" in text and "attention_torch" in text and "wrong_eps" in text
    assert "+0.50 s" in text and "landlock: not measured (the report says processes)" in text
    out = tmp_path / "b.json"
    bench.write_json(res, out)
    assert json.loads(out.read_text())["targets"][3]["status"] == "MISS"


def test_cli_quick_builtins_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "grader.instructor.bench", "--quick", "--skip-gpu", "--parts", "builtins",
                           "--builtin-size", "2,16,32,4", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert {"schema", "machine", "options", "builtins", "targets", "errors"} <= set(res)
    assert res["errors"] == [] and res["options"]["quick"] is True
    cpu = res["builtins"]["cpu"]
    assert all(_positive(cpu[p][k]) for p in ("mha", "sdpa") for k in ("reference_ms", "torch_ms", "ratio"))
    assert "cuda" not in res["builtins"]
    assert "Reference vs torch built-ins on cpu" in proc.stdout
    assert all(t["status"] == "n/a" for t in res["targets"])    # nothing graded: nothing judged


def test_isolation_levels_take_turns_and_a_missing_level_is_not_timed(monkeypatch, tmp_path):
    calls = []

    def fake_grade_once(exercises, target, device, tmp, jobs=None, env=None, **_):
        level = env["KATA_ISOLATION"]
        calls.append((level, exercises[0]))
        held = "processes" if level == "landlock" else level       # this "machine" has no Landlock
        wall = {"processes": 2.0, "namespaces": 2.5, "namespaces+landlock": 3.0}.get(level, 9.0)
        return {"wall_s": wall + len(calls) * 1e-3, "isolation": held, "score": 10, "max_score": 10}

    monkeypatch.setattr(bench, "grade_once", fake_grade_once)
    res = bench.measure_isolation(["attention_numpy", "decoder"], "cpu", tmp_path, repeats=2)
    assert set(res["levels"]) == {"processes", "namespaces", "namespaces+landlock"}
    assert "processes" in res["unavailable"]["landlock"]
    assert [lv for lv, _ in calls[:4]] == ["processes", "processes", "landlock", "namespaces"]   # rounds interleave
    assert calls.count(("landlock", "attention_numpy")) == 1                  # tried once, then left out
    assert abs(res["levels"]["namespaces"]["extra_s"] - 0.5) < 0.05
    assert res["levels"]["processes"]["extra_s"] == 0.0


def test_every_part_runs_and_runs_once():
    assert sorted(bench.RUN_PARTS) == sorted(bench.PARTS)
