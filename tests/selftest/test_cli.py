"""Bad invocations get one clear line and exit 2, never a traceback."""
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args, needle", [
    (["--target", "/no/such/folder"], "no such folder"),
    (["--target", "docs"], "holds none of the exercise modules"),
    (["no_such_exercise"], "valid exercises: attention_numpy"),
    (["--fail-under", "150"], "between 0 and 100"),
    (["--tests", "/no/such/suite"], "no such folder"),
])
def test_bad_invocations_say_what_is_wrong(cli, args, needle):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cuda_without_a_gpu_is_refused_clearly(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = cli("attention_numpy", "--device", "cuda")
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr, proc.stderr


def test_reports_and_fail_under(cli, tmp_path):
    out = tmp_path / "r.json"
    junit = tmp_path / "j.xml"
    gs = tmp_path / "results.json"
    proc = cli("attention_numpy", "--json", str(out), "--junit", str(junit), "--gradescope", str(gs),
               "--fail-under", "80")
    assert proc.returncode == 1, proc.stdout + proc.stderr      # the untouched stub scores 0
    import json
    import xml.etree.ElementTree as ET

    report = json.loads(out.read_text())
    assert report["score"] == 0 and report["max_score"] > 0
    ex = report["exercises"][0]
    assert ex["name"] == "attention_numpy" and ex["status"] == "not started" and ex["tests"]
    assert {"name", "status", "points", "max_points", "message"} <= set(ex["tests"][0])
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) == len(ex["tests"])
    results = json.loads(gs.read_text())
    assert results["score"] == 0 and all({"score", "max_score", "name", "output", "visibility"} <= set(t)
                                         for t in results["tests"])
    assert "not started" in proc.stdout


def test_solutions_pass_with_fail_under_100(cli):
    proc = cli("attention_numpy", "--target", "solutions", "--fail-under", "100")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 / 10" in proc.stdout


def test_untouched_stubs_fail_fast_and_edited_stubs_are_really_graded(tmp_path):
    import shutil

    from grader.grading.run import grade
    from grader.settings import untouched_stub

    target = tmp_path / "sub"
    shutil.copytree(ROOT / "exercises", target)
    assert untouched_stub(target, "attention_numpy")
    fast = grade(target, ["attention_numpy"]).exercises[0]
    path = target / "attention_numpy.py"
    path.write_text(path.read_text() + "\n# a student's comment\n")
    assert not untouched_stub(target, "attention_numpy")
    real = grade(target, ["attention_numpy"]).exercises[0]
    assert fast.score == real.score == 0 and fast.status == real.status == "not started"
    assert [t.name for t in fast.tests] == [t.name for t in real.tests]


def test_stub_hashes_are_current():
    import json

    from grader.settings import STUB_HASHES, file_sha256

    recorded = json.loads(STUB_HASHES.read_text())
    for name, digest in recorded.items():
        assert file_sha256(ROOT / "exercises" / f"{name}.py") == digest, (
            f"exercises/{name}.py changed: run python -m grader.instructor.verify --write-stub-hashes")


def test_hidden_suite_counts_but_keeps_its_secrets(cli, tmp_path):
    import json

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "test_attention_numpy.py").write_text(
        "import numpy as np\nimport pytest\n\n\n"
        "def test_hidden_secret(student):\n"
        "    got = student.softmax(np.array([0.0, 0.0]))\n"
        "    assert abs(got[0] - 0.25) < 1e-9, 'the secret expectation'\n\n\n"
        "@pytest.mark.visible\n"
        "def test_visible_one(student):\n"
        "    assert student.softmax(np.zeros(4)).shape == (5,), 'the visible expectation'\n")
    out, gs = tmp_path / "r.json", tmp_path / "gs.json"
    proc = cli("attention_numpy", "--target", "solutions", "--tests", str(hidden), "--json", str(out),
               "--gradescope", str(gs))
    assert proc.returncode == 0, proc.stderr
    assert "the secret expectation" not in proc.stdout and "hidden test failed" in proc.stdout
    tests = {t["name"]: t for t in json.loads(out.read_text())["exercises"][0]["tests"]}
    assert tests["test_hidden_secret"]["status"] == "failed" and tests["test_hidden_secret"]["hidden"]
    assert tests["test_visible_one"]["message"].startswith("the visible expectation")
    assert json.loads(out.read_text())["score"] < 10
    visibility = {t["name"].rsplit(": ", 1)[1]: t["visibility"] for t in json.loads(gs.read_text())["tests"]}
    assert visibility["test_hidden_secret"] == "after_published" and visibility["test_visible_one"] == "visible"


def test_root_option_grades_from_anywhere(tmp_path):
    """--root DIR, or the working directory (or a folder above it) holding manifest.toml; PYTHONPATH
    stands in for `pip install -e .` here, so only the root option finds the kata."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KATA_ROOT", None)

    def grader(*args, cwd):
        return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, cwd=cwd,
                              timeout=300, env=env)

    proc = grader("attention_numpy", "--target", "solutions", "--root", str(ROOT), cwd=tmp_path)
    assert proc.returncode == 0 and "10 / 10" in proc.stdout, proc.stdout + proc.stderr
    proc = grader("attention_numpy", "--target", "solutions", cwd=ROOT / "docs")
    assert proc.returncode == 0 and "10 / 10" in proc.stdout, proc.stdout + proc.stderr
    for args in (["--root", str(tmp_path)], []):
        bad = grader(*args, cwd=tmp_path)
        assert bad.returncode == 2 and "manifest.toml" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


# ---------------------------------------------------------------- --require-isolation (issue 25)


@pytest.mark.parametrize("forced, required", [("processes", "landlock"), ("processes", "namespaces"),
                                              ("landlock", "namespaces"), ("landlock", "namespaces+landlock")])
def test_require_isolation_refuses_below_the_level(cli, forced, required):
    r = cli("feed_forward", "--target", "solutions", "--require-isolation", required,
            env={"KATA_ISOLATION": forced})
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--require-isolation" in lines[0] and repr(forced) in lines[0], r.stderr
    assert "grading" not in r.stdout, r.stdout          # nothing ran first


def test_require_isolation_grades_at_or_above_the_level(cli):
    r = cli("feed_forward", "--target", "solutions", "--require-isolation", "processes",
            env={"KATA_ISOLATION": "processes"})
    assert r.returncode == 0, r.stderr
    assert "isolation: processes" in r.stdout


@pytest.mark.parametrize("env, args, named", [
    ({}, ["--require-isolation", "chroot"], "--require-isolation 'chroot'"),
    ({"KATA_ISOLATION": "docker"}, [], "KATA_ISOLATION='docker'"),
])
def test_unknown_level_names_are_one_clear_line(cli, env, args, named):
    r = cli("feed_forward", "--target", "solutions", *args, env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in r.stderr, r.stderr
