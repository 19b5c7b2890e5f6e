"""``python -m grader.instructor.release`` (nox -s release): the student copy still grades, leaves the
instructor's files out, carries a Classroom workflow; the Gradescope bundle's run_autograder
finds a submitted module anywhere in the submission and writes results.json."""
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    try:
        git = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True)
    except FileNotFoundError:
        git = None
    if git is None or git.returncode != 0:
        pytest.skip("not a git checkout: the release publishes what git tracks")
    out = tmp_path_factory.mktemp("release")
    proc = subprocess.run([sys.executable, "-m", "grader.instructor.release", "--out", str(out), "--threshold", "75",
                           "--include-untracked"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_student_copy_leaves_the_instructors_files_out(released):
    out, stdout = released
    student = out / "student"
    assert "Student copy" in stdout and "gradescope.zip" in stdout
    for gone in ("solutions", "tests/bugs", "tests/selftest", ".ci", "grader/instructor"):
        assert not (student / gone).exists(), gone
    for here in ("exercises", "grader/student/cli.py", "grader/sandbox/controller.py", "manifest.toml", "noxfile.py",
                 "pyproject.toml", "constraints.txt", "README.md"):
        assert (student / here).exists(), here
    from grader import manifest

    for name in [e.name for e in manifest.load()]:
        if (ROOT / "exercises" / f"{name}.py").is_file():
            assert (student / "exercises" / f"{name}.py").is_file(), name
    assert list((student / "tests").glob("test_*.py"))

    noxfile = (student / "noxfile.py").read_text()
    assert "def grade(" in noxfile and "def verify(" not in noxfile and "def release(" not in noxfile
    compile(noxfile, "noxfile.py", "exec")

    readme = (student / "README.md").read_text()
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert not [h for h in headings if "instructor" in h.lower()], headings
    fenced = readme.split("```")[1::2]
    assert not [block for block in fenced if "nox -s verify" in block or "solutions/" in block], fenced
    assert "What this copy checks" in readme and "HuggingFace" in readme and "property checks" in readme
    assert "instructor's grading" in readme

    workflow = (student / ".github" / "workflows" / "classroom.yml").read_text()
    assert 'python-version: "3.11"' in workflow and "python3 -m pip install nox" in workflow
    assert "nox -s grade -- --fail-under ${THRESHOLD}" in workflow and 'THRESHOLD: "75"' in workflow


def test_student_copy_still_grades(released):
    out, _ = released
    student = out / "student"
    report = out / "student-report.json"
    proc = subprocess.run([sys.executable, "-m", "grader", "attention_numpy", "--json", str(report)],
                          capture_output=True, text=True, cwd=student, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    ex = data["exercises"][0]
    assert data["target"] == str((student / "exercises").resolve())
    assert ex["name"] == "attention_numpy" and ex["tests"] and ex["score"] == 0   # the untouched stub


def test_gradescope_bundle_grades_a_submission(released, tmp_path):
    out, _ = released
    with zipfile.ZipFile(out / "gradescope.zip") as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert "setup.sh" in infos and "run_autograder" in infos
        for name in ("setup.sh", "run_autograder"):
            assert (infos[name].external_attr >> 16) & 0o111, f"{name} is not executable in the zip"
        assert "source/solutions/attention_numpy.py" in infos and "source/grader/student/cli.py" in infos
        assert not any(n.startswith(("source/tests/bugs/", "source/tests/selftest/")) for n in infos)
        ag = tmp_path / "autograder"
        zf.extractall(ag / "source")          # what Gradescope does with the zip
    setup = (ag / "source" / "setup.sh").read_text()
    assert "constraints.txt" in setup and "torch" in setup

    # a submission: the solution somewhere deep, and a symlink where the search would look
    # first (exercises/) pointing at the stub: symlinks must never be followed
    sub = ag / "submission"
    (sub / "my work" / "week 1").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "attention_numpy.py", sub / "my work" / "week 1" / "attention_numpy.py")
    (sub / "exercises").mkdir()
    os.symlink(ROOT / "exercises" / "attention_numpy.py", sub / "exercises" / "attention_numpy.py")

    env = {**os.environ, "KATA_AUTOGRADER_ROOT": str(ag), "KATA_PYTHON": sys.executable,
           "KATA_EXERCISES": "attention_numpy"}
    run = ag / "source" / "run_autograder"
    run.chmod(run.stat().st_mode | stat.S_IXUSR)
    proc = subprocess.run([str(run)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "graded from my work/week 1/attention_numpy.py" in proc.stdout, proc.stdout
    results = json.loads((ag / "results" / "results.json").read_text())
    tests = results["tests"]
    assert tests and all("attention_numpy" in t["name"] for t in tests)
    assert all(t["score"] == t["max_score"] for t in tests), [t for t in tests if t["score"] != t["max_score"]]
    assert results["score"] == pytest.approx(10.0)


def test_empty_submission_gets_a_clear_result(released, tmp_path):
    out, _ = released
    ag = tmp_path / "autograder"
    (ag / "submission").mkdir(parents=True)
    (ag / "submission" / "notes.txt").write_text("nothing here")
    env = {**os.environ, "KATA_AUTOGRADER_ROOT": str(ag), "KATA_SOURCE": str(out / "gradescope" / "source"),
           "KATA_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(out / "gradescope" / "run_autograder")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((ag / "results" / "results.json").read_text())
    assert results["score"] == 0 and "None of the exercise files" in results["output"]


def test_bad_options_are_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grader.instructor.release", "--out", str(tmp_path), "--threshold", "150"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "between 0 and 100" in proc.stderr and "Traceback" not in proc.stderr
