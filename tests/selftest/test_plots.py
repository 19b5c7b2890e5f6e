"""``python -m grader.student.plots`` (nox -s plots): draws both pictures from a finished implementation,
and says which exercise to finish (one line per picture, exit 1, no traceback) from the stubs."""
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_plots(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "grader.student.plots", "--lang", "en", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG file"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", f"{path.name} is a truncated PNG"
    width, height = struct.unpack(">II", data[16:24])
    return len(data), width, height


def test_pictures_from_the_solutions(tmp_path):
    out = tmp_path / "pictures"
    proc = run_plots("--target", "solutions", "--out", str(out), "--layer", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    pe, att = out / "positional_encoding.png", out / "attention_layer1.png"
    for path in (pe, att):
        assert path.is_file(), proc.stdout
        assert str(path) in proc.stdout or path.name in proc.stdout, proc.stdout   # says where it is
        nbytes, width, height = png_size(path)
        assert nbytes > 10_000 and width >= 600 and height >= 400, (path.name, nbytes, width, height)
    assert png_size(att)[1] > 1000      # twelve heads with token labels
    assert "match HuggingFace" in proc.stdout, proc.stdout


def test_stubs_say_what_to_finish(tmp_path):
    out = tmp_path / "pictures"
    proc = run_plots("--target", "exercises", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    lines = [line for line in proc.stdout.splitlines() if "not drawn" in line]
    assert len(lines) == 2, proc.stdout
    assert "not implemented yet" in lines[0] and "nox -s grade -- positional_encoding" in lines[0], lines[0]
    assert "not implemented yet" in lines[1] and "nox -s grade -- attention_torch" in lines[1], lines[1]
    assert not list(out.glob("*.png"))


def test_bad_layer_is_one_clear_line():
    proc = run_plots("--layer", "6")
    assert proc.returncode == 2 and "layers 0 to 5" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
