"""The student's loop, as the README tells it: hints, watch mode, Japanese messages."""
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_hint_levels_in_english_and_japanese():
    first = run("grader.student.hint", "attention_numpy", "--lang", "en")
    assert first.returncode == 0 and "Hint 1 of 3" in first.stdout and "Hint 2" not in first.stdout
    assert "--level 2" in first.stdout
    all_ja = run("grader.student.hint", "attention_numpy", "--level", "3", "--lang", "ja")
    assert all_ja.returncode == 0 and "ヒント 3 / 3" in all_ja.stdout and "最後のヒント" in all_ja.stdout
    bad = run("grader.student.hint", "nope")
    assert bad.returncode == 2 and "valid exercises" in bad.stderr and "Traceback" not in bad.stderr


def test_every_exercise_has_graded_hints_in_both_languages():
    from grader import manifest

    for ex in manifest.load():
        assert len(ex.hints) >= 2 and len(ex.hints_ja) == len(ex.hints), f"{ex.name}: hints missing"


def test_grade_in_japanese_shows_the_path_and_the_next_exercise():
    proc = run("grader", "attention_numpy", "--lang", "ja")
    assert proc.returncode == 0, proc.stderr
    assert "未着手" in proc.stdout and "次の課題：attention_numpy" in proc.stdout and "合計" in proc.stdout


def test_first_failure_shown_is_the_most_basic_one(tmp_path):
    target = tmp_path / "sub"
    shutil.copytree(ROOT / "solutions", target)
    path = target / "attention_numpy.py"
    path.write_text(path.read_text().replace("return np.matmul(weights, V), weights",
                                             "return np.matmul(weights, V)[..., :1], weights"))
    proc = run("grader", "attention_numpy", "--target", str(target))
    shown = [line for line in proc.stdout.splitlines() if line.startswith("     test_")]
    assert shown and "shape" in shown[0], proc.stdout


def test_watch_regrades_on_save(tmp_path):
    target = tmp_path / "sub"
    shutil.copytree(ROOT / "solutions", target)
    proc = subprocess.Popen([sys.executable, "-m", "grader.student.watch", "attention_numpy", "--target", str(target),
                             "--max-runs", "2", "--interval", "0.1", "--lang", "en"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines = []

    def reader():
        for line in proc.stdout:
            lines.append(line)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + 240
    while not any("Watching" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    path = target / "attention_numpy.py"
    path.write_text(path.read_text().replace("/ math.sqrt(d_k)", ""))     # the student saves a bug
    proc.wait(timeout=240)
    t.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert out.count("10 / 10") == 1 and "attention_numpy.py saved: grading" in out, out
    assert "failing" in out.split("saved: grading", 1)[1], out


def test_failure_shows_a_call_the_student_can_paste(tmp_path):
    import json
    import re

    target = tmp_path / "sub"
    shutil.copytree(ROOT / "solutions", target)
    path = target / "attention_numpy.py"
    path.write_text(path.read_text().replace("/ math.sqrt(d_k)", ""))
    out = tmp_path / "r.json"
    proc = run("grader", "attention_numpy", "--target", str(target), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    messages = [t["message"] for t in json.loads(out.read_text())["exercises"][0]["tests"] if t["message"]]
    snippets = [m.split("folder):\n", 1)[1] for m in messages if "folder):\n" in m]
    assert snippets, messages
    import importlib.util

    spec = importlib.util.spec_from_file_location("_pasted_attention_numpy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for snippet in snippets:
        code = re.sub(r"^from attention_numpy import .*$", "", snippet, flags=re.M)
        namespace = dict(vars(module))
        exec(code, namespace)
        assert "result" in namespace
