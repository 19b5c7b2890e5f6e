"""``python -m grader.student.plots`` (nox -s plots): draws the four pictures from a finished implementation
(saying that each attention map matches HuggingFace's), and says which exercise to finish (one line per
picture, exit 1, no traceback) from the stubs."""
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_plots(*args, timeout=400):
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
    enc, dec = out / "encoder_attention_layer1.png", out / "decoder_causal_attention.png"
    for path in (pe, att, enc, dec):
        assert path.is_file(), proc.stdout
        assert str(path) in proc.stdout or path.name in proc.stdout, proc.stdout   # says where it is
        nbytes, width, height = png_size(path)
        assert nbytes > 10_000 and width >= 600 and height >= 400, (path.name, nbytes, width, height)
    for path in (att, enc, dec):
        assert png_size(path)[1] > 1000      # twelve heads with token labels
    assert "match HuggingFace's own attention" in proc.stdout, proc.stdout
    assert "match HuggingFace's output_attentions" in proc.stdout, proc.stdout
    assert "match causally masked attention" in proc.stdout, proc.stdout
    assert "note:" not in proc.stdout, proc.stdout


def test_a_leaking_causal_mask_is_reported(tmp_path):
    target = tmp_path / "mine"
    shutil.copytree(ROOT / "solutions", target)
    source = (target / "decoder.py").read_text(encoding="utf-8")
    (target / "decoder.py").write_text(source.replace("return torch.tril(ones)", "return torch.triu(ones)"),
                                       encoding="utf-8")
    proc = run_plots("--target", str(target), "--out", str(tmp_path / "pictures"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "your causal_mask lets tokens attend to later tokens" in proc.stdout, proc.stdout
    assert "nox -s grade -- decoder" in proc.stdout, proc.stdout


def test_stubs_say_what_to_finish(tmp_path):
    out = tmp_path / "pictures"
    proc = run_plots("--target", "exercises", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    lines = [line for line in proc.stdout.splitlines() if "not drawn" in line]
    assert len(lines) == 4, proc.stdout
    for line, ex in zip(lines, ("positional_encoding", "attention_torch", "encoder", "decoder")):
        assert "not implemented yet" in line and f"nox -s grade -- {ex}" in line, line
    assert not list(out.glob("*.png"))


def test_bad_layer_is_one_clear_line():
    proc = run_plots("--layer", "6")
    assert proc.returncode == 2 and "layers 0 to 5" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
