"""Unit tests of the grader's judging logic with fakes: no subprocess, no sandbox, no model.

Scoring and weights, the first failure shown, ``failure_message``, the reproduction snippet,
the typed report's JSON and pickling, the release rewriting, and the packaging.
"""
import io
import json
import pickle
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from grader import manifest as manifest_mod
from grader.manifest import Exercise
from grader.grading import plugin
from grader.grading.plugin import NotStarted, failure_message, reproduction
from grader.grading.results import ExerciseResult, ExerciseStatus, Report, TestResult, TestStatus
from grader.grading.run import CollectedTest, Outcome, score_exercise
from grader.i18n import say, set_lang
from grader.sandbox.controller import Sandbox, SandboxDied, make_remote_error
from grader.student.cli import print_exercise

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def english():
    set_lang("en")


# ---------------------------------------------------------------- fakes

def exercise(points=10.0, rubric=(), name="ex"):
    """``rubric``: (name, points) or (name, points, gate) triples."""
    items = tuple(manifest_mod.RubricItem(r[0], r[0].title(), r[0], float(r[1]), r[2] if len(r) > 2 else None)
                  for r in rubric)
    return manifest_mod.Exercise(name=name, section="3.1", title="T", title_ja="T", points=points, rubric=items)


class FakeSandbox:
    """What scoring reads from a Sandbox: dead, import_error, proc, drain.total."""

    def __init__(self, dead=None, import_error=None, printed=0):
        self.dead, self.import_error = dead, import_error
        self.proc = object()
        self.drain = SimpleNamespace(total=printed)


def collected(*names, hidden=(), exercise_name="ex", items=None):
    """``items``: test name -> rubric item (default: none named)."""
    items = items or {}
    return {f"tests/test_ex.py::{n}": CollectedTest(exercise_name, n, n in hidden, item=items.get(n, ""))
            for n in names}


def outcomes(**by_name):
    """name=("passed"|"failed"|"excluded", kind, message) -> results by node id."""
    out = {}
    for name, spec in by_name.items():
        status, kind, message = (spec + ("", ""))[:3] if isinstance(spec, tuple) else (spec, "", "")
        out[f"tests/test_ex.py::{name}"] = Outcome(status, kind, message, ran=status == "passed")
    return out


# ---------------------------------------------------------------- scoring

def test_points_fall_per_rubric_item_then_per_function_then_per_case():
    ex = exercise(10.0, [("core", 6), ("edge", 4)])
    names = ["test_law", "test_edge[a]", "test_edge[b]", "test_edge[c]", "test_other_edge"]
    items = collected(*names, items={"test_law": "core", **{n: "edge" for n in names[1:]}})
    got = score_exercise(ex, items, outcomes(**{n: "passed" for n in names[:-1]},
                                             test_other_edge=("failed", "failed", "values differ")), [FakeSandbox()])
    # core: one function holds all 6; edge: two functions, 2 each, the parametrized one's 2 split in three
    assert [t.max_points for t in got.tests] == [6.0, 0.667, 0.667, 0.667, 2.0]
    assert got.score == 8.0 and got.max_score == 10.0 and got.raw_score is None
    assert [(i.name, i.score, i.max_score, i.failed) for i in got.rubric] == [("core", 6.0, 6.0, 0),
                                                                               ("edge", 2.0, 4.0, 1)]
    assert got.status == ExerciseStatus.FAILING and got.message == "test_other_edge: values differ"


def test_adding_a_parametrized_case_moves_no_weight_between_items():
    ex = exercise(10.0, [("core", 5), ("edge", 5)])
    few = collected("test_a", "test_b[1]", items={"test_a": "core", "test_b[1]": "edge"})
    many = collected("test_a", *(f"test_b[{k}]" for k in range(9)),
                     items={"test_a": "core", **{f"test_b[{k}]": "edge" for k in range(9)}})
    for items in (few, many):
        got = score_exercise(ex, items, outcomes(test_a="passed"), [])
        assert got.score == 5.0 and [i.max_score for i in got.rubric] == [5.0, 5.0]


def test_a_failed_gate_caps_the_exercise():
    ex = exercise(10.0, [("causality", 2, 0.5), ("shapes", 8)])
    items = collected("test_causal", "test_shape", items={"test_causal": "causality", "test_shape": "shapes"})
    got = score_exercise(ex, items, outcomes(test_causal=("failed", "failed", "leaks"), test_shape="passed"), [])
    assert got.raw_score == 8.0 and got.score == 5.0 and [i.name for i in got.capped_by] == ["causality"]
    ok = score_exercise(ex, items, outcomes(test_causal="passed", test_shape=("failed", "failed", "x")), [])
    assert ok.score == 2.0 and ok.raw_score is None and ok.capped_by == []
    assert ExerciseResult.from_dict(json.loads(json.dumps(got.to_dict()))).capped_by[0].name == "causality"


def test_a_test_naming_no_item_is_scored_in_other_as_the_average_item():
    ex = exercise(9.0, [("a", 3), ("b", 6)])
    items = collected("test_a", "test_b", "test_hidden", items={"test_a": "a", "test_b": "b"}, hidden={"test_hidden"})
    got = score_exercise(ex, items, outcomes(test_a="passed", test_b="passed", test_hidden="passed"), [])
    assert [(i.name, i.max_score) for i in got.rubric] == [("a", 2.0), ("b", 4.0), ("other", 3.0)]
    assert got.score == 9.0 and got.tests[2].item == "other"


def test_a_manifest_rubric_must_add_up_to_the_exercise(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text('[[exercise]]\nname = "ex"\nsection = "3.1"\ntitle = "T"\npoints = 10\n'
                    '[[exercise.rubric]]\nitem = "a"\npoints = 4\n[[exercise.rubric]]\nitem = "b"\npoints = 5\n')
    with pytest.raises(manifest_mod.ManifestError, match="add up to 9"):
        manifest_mod.load(path)
    path.write_text(path.read_text().replace("points = 5", "points = 6\ngate = 0.5"))
    (ex,) = manifest_mod.load(path)
    assert [(i.name, i.points, i.gate) for i in ex.rubric] == [("a", 4.0, None), ("b", 6.0, 0.5)]


def test_all_passing_scores_full_marks():
    got = score_exercise(exercise(7), collected("test_a", "test_b"), outcomes(test_a="passed", test_b="passed"),
                         [FakeSandbox(printed=12)])
    assert got.score == 7 and got.status == ExerciseStatus.PASSED and got.message == ""
    assert got.output_bytes == 12 and all(t.message == "" and t.kind == "" for t in got.tests)


def test_a_passing_report_without_a_call_and_a_missing_report_both_fail():
    results = outcomes(test_a="passed")
    results["tests/test_ex.py::test_a"].ran = False        # setup passed, the call never reported
    got = score_exercise(exercise(), collected("test_a", "test_b"), results, [])
    assert [(t.status, t.kind) for t in got.tests] == [(TestStatus.FAILED, "not-run")] * 2 and got.score == 0


def test_hidden_failures_keep_their_secret():
    items = collected("test_visible", "test_secret", hidden={"test_secret"})
    got = score_exercise(exercise(), items, outcomes(test_visible="passed",
                                                     test_secret=("failed", "failed", "expected 42")), [])
    secret = got.tests[1]
    assert secret.hidden and secret.message == "hidden test failed" and "42" not in got.message
    assert got.score == 5.0


def test_hidden_parametrize_ids_are_not_shown():
    """A hidden test's id may carry its inputs (test_x[secret-input-42]): the report numbers the cases."""
    names = ("test_secret[answer-is-42]", "test_secret[answer-is-7]", "test_shown[open-case]")
    items = collected(*names, hidden=set(names[:2]))
    got = score_exercise(exercise(), items, outcomes(**{n: "passed" for n in names}), [])
    shown = [t.name for t in got.tests]
    assert shown == ["test_secret[hidden case 1]", "test_secret[hidden case 2]", "test_shown[open-case]"]


def test_excluded_tests_do_not_count_and_their_weight_goes_to_the_others():
    items = collected("test_a", "test_needs_reference")
    got = score_exercise(exercise(10), items, outcomes(test_a="passed", test_needs_reference="excluded"), [])
    assert [t.name for t in got.tests] == ["test_a"] and got.tests[0].max_points == 10.0
    assert got.score == 10.0 and got.status == ExerciseStatus.PASSED and got.excluded == ["test_needs_reference"]


def test_only_excluded_tests_is_not_checked():
    got = score_exercise(exercise(), collected("test_ref"), outcomes(test_ref="excluded"), [])
    assert got.status == ExerciseStatus.NOT_CHECKED and got.score == 0 and got.tests == []
    assert got.message == say("all_need_reference")


def test_a_dead_sandbox_scores_zero_even_after_passing_tests():
    dead = SandboxDied("timeout", "The student process took longer than 30 s while running a call.")
    got = score_exercise(exercise(), collected("test_a", "test_b"), outcomes(test_a="passed", test_b="passed"),
                         [FakeSandbox(), FakeSandbox(dead=dead)])
    assert got.score == 0 and got.status == ExerciseStatus.TIMEOUT and got.status.sandbox_died
    assert "30 s" in got.message and all(t.points == 0 for t in got.tests)


def test_an_import_error_is_the_exercises_message():
    err = make_remote_error(["SyntaxError", "Exception"], "invalid syntax", [["ex.py", 3, "<module>", "def ("]])
    got = score_exercise(exercise(), collected("test_a"), outcomes(test_a=("failed", "error", "SyntaxError")),
                         [FakeSandbox(import_error=err)])
    assert got.status == ExerciseStatus.ERROR and "ex.py:3" in got.message and got.score == 0


def test_not_started_only_when_every_test_met_the_stub():
    items = collected("test_a", "test_b")
    stub = ("failed", "not-started", "not started")
    got = score_exercise(exercise(), items, outcomes(test_a=stub, test_b=stub), [])
    assert got.status == ExerciseStatus.NOT_STARTED and got.message == say("all_not_started")
    half = score_exercise(exercise(), items, outcomes(test_a=stub, test_b=("failed", "failed", "wrong")), [])
    assert half.status == ExerciseStatus.FAILING


def test_no_tests_at_all_is_an_error():
    got = score_exercise(exercise(), {}, {}, [])
    assert got.status == ExerciseStatus.ERROR and got.message == say("no_tests")


# ---------------------------------------------------------------- the typed report

def sample_report() -> Report:
    tests = [TestResult("test_shape", TestStatus.PASSED, 2.5, 2.5),
             TestResult("test_hf", TestStatus.FAILED, 0.0, 7.5, "values differ", "failed", hidden=False)]
    ex = ExerciseResult("attention_numpy", 2.5, 10.0, ExerciseStatus.FAILING, "test_hf: values differ", tests,
                        section="3.1", title="T", title_ja="T", output_bytes=3, excluded=["test_ref"])
    stub = ExerciseResult("attention_torch", 0.0, 15.0, ExerciseStatus.NOT_STARTED, "not started", [])
    return Report(target="/x", device="cpu", isolation="processes", exercises=[ex, stub], seconds=1.5)


def test_report_json_keeps_the_spec_schema_and_reads_back():
    report = sample_report()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["score"] == 2.5 and data["max_score"] == 25.0
    ex = data["exercises"][0]
    assert {"name", "score", "max_score", "status", "tests"} <= set(ex) and ex["status"] == "failing"
    assert {"name", "status", "points", "max_points", "message"} <= set(ex["tests"][0])
    assert data["exercises"][1]["status"] == "not started"
    assert list(data) == ["target", "device", "isolation", "exercises", "seconds", "score", "max_score",
                          "collect_errors"]
    assert Report.from_dict(data) == report


def test_report_pickles_for_the_process_pool():
    report = sample_report()
    assert pickle.loads(pickle.dumps(report)) == report
    assert report.exercises[0].status == "failing"           # str enums compare with the plain strings


def test_merge_adds_up_the_parts():
    a, b = sample_report(), sample_report()
    merged = Report.merge([a, b])
    assert merged.score == 5.0 and merged.max_score == 50.0 and merged.seconds == 3.0 and len(merged.exercises) == 4
    assert merged.next_exercise().name == "attention_numpy"


# ---------------------------------------------------------------- the first failure shown

def test_first_failure_is_the_most_specific_one_and_stable_otherwise():
    # (name, judges, stage): the lowest stage first, then the fewest names judged, then suite order
    spec = [("test_matches_hf", ["encode", "pool"], 3), ("test_values_b", ["pool"], 2),
            ("test_output_shape", ["encode"], 1), ("test_signature", ["encode"], 0),
            ("test_values_a", ["pool"], 2), ("test_integration", ["encode", "pool"], 2)]
    failed = [TestResult(n, TestStatus.FAILED, 0, 1, f"{n} broke", judges=j, stage=st) for n, j, st in spec]
    ex = ExerciseResult("ex", 0, 6, ExerciseStatus.FAILING, "test_signature: test_signature broke", failed,
                        section="3.1", title="T", title_ja="T", first_failure="test_signature")
    assert [t.name for t in ex.failures_in_order()] == ["test_signature", "test_output_shape", "test_values_b",
                                                        "test_values_a", "test_integration", "test_matches_hf"]
    out = io.StringIO()
    print_exercise(ex, "en", False, out)
    shown = [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("test_")]
    assert shown == ["test_signature: test_signature broke"] and "5 more failing" in out.getvalue()


def test_scoring_picks_the_most_specific_failure_and_names_the_functions_an_integration_used():
    man = Exercise("ex", "3.1", "T", "T", 10.0)
    items = {"a": CollectedTest("ex", "test_compare_all", judges=("encode", "pool"), stage=3),
             "b": CollectedTest("ex", "test_pool_alone", judges=("pool",), stage=2),
             "c": CollectedTest("ex", "test_encode_alone", judges=("encode",), stage=2)}
    results = {"a": Outcome("failed", "failed", "values differ", ran=True), "b": Outcome(ran=True),
               "c": Outcome("failed", "failed", "encode wrong", ran=True)}
    ex = score_exercise(man, items, results, [])
    assert ex.first_failure == "test_encode_alone" and ex.message.startswith("test_encode_alone: encode wrong")
    results["c"] = Outcome(ran=True)
    ex = score_exercise(man, items, results, [])
    assert ex.first_failure == "test_compare_all"
    assert "encode, pool" in ex.message and "pool" in ex.message.splitlines()[-1]
    assert [t.judges for t in ex.tests] == [["encode", "pool"], ["pool"], ["encode"]]
    assert ex.to_dict()["first_failure"] == "test_compare_all" and ex.to_dict()["tests"][0]["stage"] == 3


# ---------------------------------------------------------------- failure_message

def failing(exc):
    return SimpleNamespace(value=exc)


def test_failure_message_kinds():
    assert failure_message(failing(NotStarted("start here")), "ex") == ("not-started", "start here")
    assert failure_message(failing(SandboxDied("crash", "it crashed")), "ex") == ("crash", "it crashed")
    kind, text = failure_message(failing(make_remote_error(["MemoryError", "Exception"], "", [])), "ex")
    assert kind == "memory" and "MemoryError" in text
    kind, text = failure_message(failing(make_remote_error(["ValueError", "Exception"], "bad axis",
                                                           [["ex.py", 7, "softmax", "raise ValueError"]])), "ex")
    assert kind == "error" and "bad axis" in text and "ex.py:7" in text
    kind, text = failure_message(failing(ZeroDivisionError("division by zero")), "ex")
    assert kind == "error" and text.startswith("ZeroDivisionError: division by zero")


def test_not_implemented_here_is_not_started_elsewhere_needs_the_other_exercise():
    here = make_remote_error(["NotImplementedError"], "", [["encoder.py", 5, "forward", "raise"]])
    other = make_remote_error(["NotImplementedError"], "", [["encoder.py", 5, "f", "x"],
                                                           ["attention_torch.py", 9, "forward", "raise"]])
    assert failure_message(failing(here), "encoder")[0] == "not-started"
    kind, text = failure_message(failing(other), "encoder")
    assert kind == "needs-other" and "attention_torch.py" in text


def test_assertion_keeps_the_sentence_and_the_hypothesis_example_without_fixtures():
    exc = AssertionError("weights must sum to 1 (got 1.5)\nassert False")
    assert failure_message(failing(exc), "ex") == ("failed", "weights must sum to 1 (got 1.5)")
    exc = AssertionError("weights must sum to 1")
    exc.add_note("Falsifying example: test_sums(\n    student=<student module ex>,\n    reference=<module>,\n"
                 "    seed=3,\n)")
    kind, text = failure_message(failing(exc), "ex")
    assert kind == "failed" and say("reproduce") in text and "seed=3" in text
    assert "student=" not in text and "reference=" not in text


def test_an_exception_group_reports_its_first_failure():
    group = BaseExceptionGroup("several", [AssertionError("first\nassert 0"), AssertionError("second")]) \
        if sys.version_info >= (3, 11) else plugin.BaseExceptionGroup("several", [AssertionError("first"),
                                                                                 AssertionError("second")])
    assert failure_message(failing(group), "ex") == ("failed", "first")


def test_sigxcpu_is_reported_as_a_timeout():
    class Transport:
        mode = "processes"

        def close(self, *args):
            pass

    box = Sandbox(ROOT / "solutions", "ex", ["ex"], transport=Transport())
    box.proc, box.wfd, box.rfd, box.drain = SimpleNamespace(wait=lambda timeout: -signal.SIGXCPU), None, None, None
    with pytest.raises(SandboxDied) as info:
        box._died_unexpectedly("running a call")
    assert info.value.kind == "timeout" and "CPU time limit" in info.value.detail
    box.proc = SimpleNamespace(wait=lambda timeout: -signal.SIGKILL)
    with pytest.raises(SandboxDied) as info:
        box._died_unexpectedly("running a call")
    assert info.value.kind == "memory"


# ---------------------------------------------------------------- the reproduction snippet

def student_called(label, *args, **kwargs):
    return SimpleNamespace(_client=SimpleNamespace(last_call=(label, args, kwargs)))


def run_snippet(text, **functions):
    code = "\n".join(line for line in text.splitlines() if not line.startswith("from "))
    namespace = dict(functions)
    exec(code, namespace)
    return namespace["result"]


def test_reproduction_rebuilds_arrays_exactly():
    x = np.array([[0.1, 1 / 3], [2.5e-8, -7.0]], dtype=np.float32)
    mask = np.array([[True, False]])
    text = reproduction(student_called("softmax", x, mask=mask, axis=-1), "attention_numpy")
    assert text.startswith("import numpy as np, torch\nfrom attention_numpy import softmax\n")
    assert "dtype=np.float32" in text and "axis=-1" in text and "rounded" not in text
    got = run_snippet(text, softmax=lambda x, mask, axis: (x, mask, axis))
    assert got[0].dtype == np.float32 and np.array_equal(got[0], x) and np.array_equal(got[1], mask)


def test_reproduction_rebuilds_tensors_and_plain_values():
    import torch

    t = torch.tensor([[0.1, -2.0]], dtype=torch.float64)
    half = torch.tensor([0.5, 0.25], dtype=torch.float16)
    ids = torch.tensor([[101, 7, 102]])
    text = reproduction(student_called("encode", t, half, ids, [1, "a", None], {"k": 2.5}, float("nan")), "ex")
    got = run_snippet(text, encode=lambda *a: a)
    assert torch.equal(got[0], t) and got[0].dtype == torch.float64
    assert torch.equal(got[1], half) and got[1].dtype == torch.float16 and torch.equal(got[2], ids)
    assert got[3] == [1, "a", None] and got[4] == {"k": 2.5} and got[5] != got[5]


def test_reproduction_never_pastes_a_scratch_folder_that_is_gone_after_the_grade():
    text = reproduction(student_called("training_arguments", "/tmp/kata-box-1a2b/tmp/kata-trainer-3c4d"), "trainer")
    assert "kata-" not in text and "training_arguments('./output')" in text, text


def test_reproduction_rounds_when_exact_text_is_too_long_and_gives_up_when_still_too_long():
    x = np.random.default_rng(0).standard_normal(150)
    text = reproduction(student_called("f", x), "ex")
    assert text.endswith("# inputs rounded to 4 significant digits") and len(text) <= 2000
    assert np.allclose(run_snippet(text, f=lambda v: v), x, rtol=1e-3)
    assert reproduction(student_called("f", np.random.default_rng(0).standard_normal(390)), "ex") == ""
    assert reproduction(student_called("f", np.zeros(401)), "ex") == ""            # too many elements


def test_no_reproduction_without_a_plain_call():
    assert reproduction(SimpleNamespace(), "ex") == ""
    assert reproduction(student_called("model.forward", 1), "ex") == ""      # a method of a sandbox object
    assert reproduction(student_called("f", object()), "ex") == ""           # a value it cannot write


# ---------------------------------------------------------------- release rewriting

def test_student_noxfile_keeps_only_the_students_sessions():
    from grader.instructor.release import student_noxfile

    text = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    present = {"grader/student/cli.py", "grader/student/hint.py", "grader/student/watch.py"}
    out = student_noxfile(text, present)
    compile(out, "noxfile.py", "exec")
    for kept in ("def grade(", "def hint(", "def watch(", "def kata_python("):
        assert kept in out
    for dropped in ("def verify(", "def release(", "def bench(", "def plots("):   # plots: its module is absent
        assert dropped not in out
    assert "grader.instructor" not in out


def test_student_readme_replaces_the_instructors_section(monkeypatch):
    from grader.instructor import release

    monkeypatch.setattr(release, "reference_table", lambda present=None: [("attention_numpy", 5, 2)])
    text = ("# Kata\n\nIntro.\n\n```bash\nnox -s grade\nnox -s verify\nsolutions/  reference\n```\n\n"
            "## How grading works (for instructors)\n\nsecret details\n\n## Layout\n\n| cmd | x |\n"
            "| `nox -s release` | publish |\n| `nox -s grade` | grade |\n")
    out = release.student_readme(text, ["solutions/"], 60.0)
    assert "secret details" not in out and "nox -s verify" not in out and "nox -s release" not in out
    assert "solutions/  reference" not in out and "nox -s grade" in out and "## Layout" in out
    assert "| `attention_numpy` | 5 | 2 |" in out and "--fail-under 60" in out


# ---------------------------------------------------------------- packaging

def test_the_package_holds_every_module_and_data_file():
    """pyproject's package discovery finds every grader folder with modules, and its package data
    covers every other file the grader reads at run time."""
    import fnmatch

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    assert "nox" not in " ".join(config["project"]["dependencies"])
    assert setuptools["packages"]["find"]["include"] == ["grader", "grader.*"]
    grader = ROOT / "grader"
    for folder in {p.parent for p in grader.rglob("*.py")}:
        assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has modules but no __init__.py"
    patterns = setuptools["package-data"]["grader"]
    for path in grader.rglob("*"):
        rel = path.relative_to(grader).as_posix()
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in rel:
            continue
        assert any(fnmatch.fnmatch(rel, p.replace("**/", "*/")) or fnmatch.fnmatch(rel, p) for p in patterns), \
            f"grader/{rel} is not in [tool.setuptools.package-data]"


# ---------------------------------------------------------------- verify's record of verified variants

def test_a_variant_is_graded_again_when_anything_its_verdict_depends_on_changes(tmp_path, monkeypatch):
    from grader.instructor import verify

    for folder in ("grader", "solutions", "data", "tests"):
        (tmp_path / folder).mkdir()
    for name in ("manifest.toml", "constraints.txt", "pyproject.toml"):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "grader" / "a.py").write_text("A = 1\n")
    (tmp_path / "solutions" / "ex.py").write_text("def f(): return 1\n")
    (tmp_path / "tests" / "test_ex.py").write_text("def test_f(student): pass\n")
    monkeypatch.setattr(verify, "root", lambda: tmp_path)
    monkeypatch.setattr("grader.grading.run.settings.tests_dir", lambda: tmp_path / "tests", raising=False)
    variant = {"kind": "bug", "exercise": "ex", "name": "b", "find": "1", "replace": "2"}

    def key():
        return verify.variant_key(variant, verify.common_inputs_hash())

    first = key()
    assert key() == first                                     # deterministic
    for path, text in (("solutions/ex.py", "def f(): return 3\n"), ("tests/test_ex.py", "def test_g(): pass\n"),
                       ("grader/a.py", "A = 2\n"), ("constraints.txt", "x = 2\n"), ("data/d.txt", "new\n")):
        before = key()
        (tmp_path / path).write_text(text)
        assert key() != before, path
    before = key()
    variant["replace"] = "3"
    assert key() != before


def test_an_exercise_s_messages_key_its_own_variants_only(tmp_path, monkeypatch):
    from grader.instructor import verify

    for folder in ("grader/messages/en", "solutions", "data", "tests"):
        (tmp_path / folder).mkdir(parents=True)
    exercise = 'name = "{}"\nsection = "1"\ntitle = "t"\npoints = 1\n'
    (tmp_path / "manifest.toml").write_text("".join("[[exercise]]\n" + exercise.format(n) for n in ("ex", "other")))
    for name in ("constraints.txt", "pyproject.toml"):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "tests" / "test_ex.py").write_text("def test_f(student): pass\n")
    monkeypatch.setattr(verify, "root", lambda: tmp_path)
    variant = {"kind": "bug", "exercise": "ex", "name": "b", "find": "1", "replace": "2"}

    def key():
        return verify.variant_key(variant, verify.common_inputs_hash())

    for name, changes_key in (("other", False), ("ex", True), ("testing", True)):
        before = key()
        (tmp_path / "grader" / "messages" / "en" / f"{name}.toml").write_text('a = "b"\n')
        assert (key() != before) is changes_key, name
