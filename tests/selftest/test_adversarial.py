"""The adversarial corpus: submissions that hang, crash, flood, escape or cheat, and honest
controls. Each is the reference (or the stub) for attention_numpy with a few lines appended,
graded for real; each must get the outcome written beside it.

Cheats start from the *stub*: a cheat that worked would show as points above 0.
"""
import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = Path("/tmp/kata-selftest-escape-marker")
DEV_NOTES = Path("/dev/kata-selftest-notes")

WRAP = """
_real_sdpa = scaled_dot_product_attention
def scaled_dot_product_attention(*args, **kwargs):
{body}
    return _real_sdpa(*args, **kwargs)
"""


def wrap(body):
    return WRAP.format(body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "))


MUTATES = """
_real_softmax = softmax
def softmax(x, axis=-1):
    out = _real_softmax(x, axis)
    x[...] = out                                   # changes the caller's array in place
    return out
"""

CASES = {
    # ---- honest controls: must keep full marks
    "honest_prints": dict(base="solution", code=wrap("print('attention called', [a.shape for a in args])"),
                          score="full"),
    "honest_threads": dict(base="solution", code=wrap("""
        import threading
        box = {}
        def work():
            try:
                box['r'] = _real_sdpa(*args, **kwargs)
            except Exception as exc:
                box['e'] = exc
        t = threading.Thread(target=work)
        t.start(); t.join()
        if 'e' in box:
            raise box['e']
        return box['r']"""), score="full"),
    "floods_stdout_once": dict(base="solution", code="import sys\nsys.stdout.write('x' * 50_000_000)\n",
                               score="full"),
    # ---- broken: that exercise scores 0 with the reason, the run goes on
    "os_exit_in_call": dict(base="solution", code=wrap("import os; os._exit(0)"), score="zero",
                            status={"crash"}),
    "sys_exit_at_import": dict(base="solution", code="import sys\nsys.exit(0)\n", score="zero",
                               status={"error"}),
    "syntax_error": dict(base="solution", code="def broken(:\n    pass\n", score="zero", status={"error"},
                         message="attention_numpy.py"),
    "segfault_in_call": dict(base="solution", code=wrap("import ctypes; ctypes.string_at(0)"), score="zero",
                             status={"crash"}, message="SIGSEGV"),
    "busy_loop_in_call": dict(base="solution", code=wrap("while True: pass"), score="zero", status={"timeout"}),
    "sleep_ignoring_signals": dict(base="solution", code=wrap("""
        import signal, time
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM): signal.signal(s, signal.SIG_IGN)
        time.sleep(10_000)"""), score="zero", status={"timeout"}),
    "hang_at_import": dict(base="solution", code="import time\ntime.sleep(10_000)\n", score="zero",
                           status={"timeout"}),
    "reads_stdin": dict(base="solution", code=wrap("input()"), score="less"),
    "memory_bomb": dict(base="solution", code=wrap("x = bytearray(64 << 30)"), score="less"),
    "fork_bomb": dict(base="solution", code=wrap("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass"""), score="zero", status={"timeout", "crash"}),
    "daemon_rewrites_files_later": dict(base="solution", code=f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(4)
        for p in ({str(MARKER)!r}, {str(ROOT / 'pwned.json')!r}):
            try:
                open(p, 'w').write('{{"score": 1e9}}')
            except OSError:
                pass
        os._exit(0)
    os._exit(0)
""", score="full", after="no_escape", gets_through={"processes"}),
    "writes_outside_scratch": dict(base="solution", code=f"""
for p in ({str(ROOT / 'pwned.json')!r}, {str(ROOT / 'tests' / 'pwned.py')!r}, {str(MARKER)!r}):
    try:
        open(p, 'w').write('pwned')
    except OSError:
        pass
""", score="full", after="no_escape", gets_through={"processes"}),
    "keeps_notes_in_dev": dict(base="solution", code=wrap(f"""
        try:
            with open({str(DEV_NOTES)!r}, 'a') as notes:    # once the host's /dev: hidden inputs kept
                notes.write(repr([getattr(a, 'shape', a) for a in args]) + chr(10))
        except OSError:
            pass"""), score="full", after="no_escape", gets_through={"processes"}),
    # ---- cheats (on top of the stub): none may raise the score above 0
    "fake_grader_output": dict(base="stub", code="print('attention_numpy  10 / 10  passed\\nTotal: 10 / 10 points (100 %)')\n",
                               score="zero"),
    "always_equal_ndarray": dict(base="stub", same_as="zeros_control", code="""
import numpy as np
class Equal(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
    def __array_function__(self, func, types, args, kwargs): return True
def softmax(x, axis=-1):
    return np.zeros_like(x).view(Equal)
def scaled_dot_product_attention(Q, K, V, mask=None):
    return (np.zeros(Q.shape[:-1] + V.shape[-1:], Q.dtype).view(Equal),
            np.zeros(Q.shape[:-1] + K.shape[-2:-1], Q.dtype).view(Equal))
""", score="less"),
    "zeros_control": dict(base="stub", code="""
import numpy as np
def softmax(x, axis=-1):
    return np.zeros_like(x)
def scaled_dot_product_attention(Q, K, V, mask=None):
    return (np.zeros(Q.shape[:-1] + V.shape[-1:], Q.dtype), np.zeros(Q.shape[:-1] + K.shape[-2:-1], Q.dtype))
""", score="less"),
    "nan_everywhere": dict(base="stub", code="""
import numpy as np
def softmax(x, axis=-1): return np.full_like(x, np.nan)
def scaled_dot_product_attention(Q, K, V, mask=None):
    return np.full(Q.shape[:-1] + V.shape[-1:], np.nan, Q.dtype), np.full(Q.shape[:-1] + K.shape[-2:-1], np.nan, Q.dtype)
""", score="less", same_as="zeros_control", fewer=True),
    "patches_the_test_libraries": dict(base="stub", code="""
import numpy as np, numpy.testing
numpy.testing.assert_allclose = lambda *a, **k: None
np.allclose = lambda *a, **k: True
np.testing.assert_allclose.__code__ = (lambda *a, **k: None).__code__
try:
    from hypothesis import settings
    settings.register_profile('cheat', max_examples=1); settings.load_profile('cheat')
    import _pytest.reports
    _pytest.reports.TestReport.outcome = 'passed'
except Exception:
    pass
""", score="zero"),
    "skips_and_exits": dict(base="stub", code="""
import unittest
def softmax(x, axis=-1):
    raise unittest.SkipTest('skip me')
def scaled_dot_product_attention(Q, K, V, mask=None):
    import pytest
    pytest.exit('done', returncode=0)
""", score="zero"),
    "keyboard_interrupt": dict(base="stub", code="""
def softmax(x, axis=-1):
    raise KeyboardInterrupt
def scaled_dot_product_attention(Q, K, V, mask=None):
    raise SystemExit(0)
""", score="zero"),
    "reads_the_caller": dict(base="stub", code="""
import sys, inspect
def softmax(x, axis=-1):
    for frame in inspect.stack():
        for name in ('want', 'expected', 'reference'):
            if name in frame.frame.f_locals:
                return frame.frame.f_locals[name]
    raise RuntimeError('nothing to steal')
scaled_dot_product_attention = softmax
""", score="zero"),
    "imports_the_reference": dict(base="stub", code=f"""
import importlib.util, sys
for path in ({str(ROOT / 'solutions' / 'attention_numpy.py')!r},):
    try:
        spec = importlib.util.spec_from_file_location('stolen', path)
        stolen = importlib.util.module_from_spec(spec); spec.loader.exec_module(stolen)
        softmax, scaled_dot_product_attention = stolen.softmax, stolen.scaled_dot_product_attention
    except Exception:
        pass
sys.path.insert(0, {str(ROOT)!r})
try:
    from solutions.attention_numpy import softmax, scaled_dot_product_attention
except Exception:
    pass
""", score="zero", gets_through={"processes"}),
    # ---- evidence the submission could once forge inside its sandbox (issue 25): each scores
    # exactly what its honest twin does
    "mutates_its_input": dict(base="solution", code=MUTATES, score="less"),
    "forges_the_fingerprint": dict(base="solution", code=MUTATES + """
import hashlib
hashlib.blake2b = lambda *a, **k: hashlib.md5(b'')     # the no-mutation fingerprint, once hashed here
""", score="less", same_as="mutates_its_input"),
    "remembers_first_answer": dict(base="solution", code="""
_first = {}
_real_softmax = softmax
def softmax(x, axis=-1):
    return _first.setdefault('r', _real_softmax(x, axis))
""", score="less"),
    # ---- files beside the module: only the module itself is used, and only as a regular file
    "symlink_to_reference": dict(base=None, symlink=True, score="zero", status={"error"}),
    "conftest_and_sitecustomize": dict(base="stub", code="", extra={
        "conftest.py": "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
                       "    o = yield\n    o.get_result().outcome = 'passed'\n",
        "sitecustomize.py": "import numpy\nnumpy.allclose = lambda *a, **k: True\n",
        "pytest.ini": "[pytest]\naddopts = -p no:python\n",
        "numpy.py": "raise SystemExit\n",
    }, score="zero"),
}


def build(name, case, folder: Path):
    folder.mkdir(parents=True)
    if case.get("symlink"):
        (folder / "attention_numpy.py").symlink_to(ROOT / "solutions" / "attention_numpy.py")
        return
    src = ROOT / ("solutions" if case["base"] == "solution" else "exercises") / "attention_numpy.py"
    (folder / "attention_numpy.py").write_text(src.read_text() + "\n" + case["code"])
    for fname, text in case.get("extra", {}).items():
        (folder / fname).write_text(text)


@pytest.fixture(scope="module")
def outcomes(grade_jobs, tmp_path_factory):
    base = tmp_path_factory.mktemp("adversarial")
    remove_escapes()
    jobs = []
    for name, case in CASES.items():
        build(name, case, base / name)
        jobs.append({"target": str(base / name), "exercises": ["attention_numpy"],
                     "options": {"call_timeout": 4, "start_timeout": 15}})
    started = time.monotonic()
    reports = grade_jobs(jobs)
    elapsed = time.monotonic() - started
    time.sleep(max(0.0, 5.5 - elapsed))      # let any escaped daemon reach its write
    yield {name: {**r["exercises"][0], "target_folder": str(base), "isolation": r["isolation"]}
           for name, r in zip(CASES, reports)}
    remove_escapes()


ESCAPES = (MARKER, ROOT / "pwned.json", ROOT / "tests" / "pwned.py", DEV_NOTES)


def remove_escapes():
    for p in ESCAPES:
        p.unlink(missing_ok=True)


def root_without_nobody() -> bool:
    """Plain ``processes`` as root that cannot become nobody: capabilities dropped, files owned
    by root still writable (README's table)."""
    from grader.sandbox.controller import can_drop_to_nobody

    return os.geteuid() == 0 and not can_drop_to_nobody()


@pytest.mark.parametrize("name", list(CASES))
def test_adversarial_outcome(outcomes, name):
    case, ex = CASES[name], outcomes[name]
    summary = f"{name}: score {ex['score']}/{ex['max_score']}, status {ex['status']!r}, {ex['message'][:300]!r}"
    if ex["isolation"] in case.get("gets_through", ()):
        # what plain processes do not hold (README's table), stated: the reference is world-readable,
        # and as root without nobody the files root owns are writable
        assert ex["isolation"] == "processes"
        if case.get("after") == "no_escape":
            escaped = [p for p in ESCAPES if p.exists()]
            assert bool(escaped) == root_without_nobody(), f"{summary}; escaped: {escaped}"
        else:
            assert ex["score"] == ex["max_score"], summary
        return
    if case["score"] == "full":
        assert ex["score"] == ex["max_score"], summary
    elif case["score"] == "zero":
        assert ex["score"] == 0, summary
    else:
        assert ex["score"] < ex["max_score"], summary
    if "same_as" in case:       # a cheat scores exactly what honest grading of its real outputs gives
        control = outcomes[case["same_as"]]
        if case.get("fewer"):
            assert ex["score"] <= control["score"], f"{summary}; honest control {control['score']}"
        else:
            assert ex["score"] == control["score"], f"{summary}; honest control {control['score']}"
    if "status" in case:
        assert ex["status"] in case["status"], summary
    if "message" in case:
        assert case["message"] in ex["message"], summary
    if case.get("after") == "no_escape":
        escaped = [str(p) for p in ESCAPES if p.exists()]
        assert not escaped, f"{name}: the submission wrote {escaped} outside its scratch folder"


def worker_processes_of(folder) -> list[str]:
    """The live (not zombie) sandbox workers serving a submission below ``folder``."""
    needle = str(folder).encode()
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("State:"))
            except (OSError, StopIteration):
                continue
            if b"worker.py" in cmd and needle in cmd and "Z" not in state.split()[1]:
                found.append(pid)
    return found


def test_no_process_outlives_the_grading(outcomes):
    leftovers = worker_processes_of(next(iter(outcomes.values()))["target_folder"])
    assert not leftovers, f"sandbox processes still alive: {leftovers}"


def test_flooded_output_is_counted_not_kept(outcomes):
    assert outcomes["floods_stdout_once"]["output_bytes"] >= 50_000_000


def test_same_submission_same_report_five_times(grade_jobs, tmp_path):
    target = tmp_path / "sub"
    shutil.copytree(ROOT / "solutions", target)
    path = target / "attention_numpy.py"
    path.write_text(path.read_text().replace("np.asarray(-1e9, dtype=scores.dtype)", "np.asarray(-np.inf)"))
    reports = grade_jobs([{"target": str(target), "exercises": ["attention_numpy"]}] * 5)
    first = reports[0]["exercises"]
    assert 0 < first[0]["score"] < first[0]["max_score"]
    for r in reports[1:]:
        assert r["exercises"] == first


FALLBACK_CASES = ["honest_prints", "os_exit_in_call", "busy_loop_in_call", "always_equal_ndarray", "zeros_control"]


def test_process_isolation_fallback_still_survives_and_judges(grade_jobs, tmp_path):
    """Where the machine offers no namespaces the grader still isolates processes: crashes and
    hangs cost only that exercise, and cheats still gain nothing."""
    jobs = []
    for name in FALLBACK_CASES:
        build(name, CASES[name], tmp_path / name)
        jobs.append({"target": str(tmp_path / name), "exercises": ["attention_numpy"],
                     "options": {"call_timeout": 4, "start_timeout": 15}})
    reports = grade_jobs(jobs, env={"KATA_ISOLATION": "processes"})
    got = {name: r["exercises"][0] for name, r in zip(FALLBACK_CASES, reports)}
    assert all(r["isolation"] == "processes" for r in reports)
    assert got["honest_prints"]["score"] == got["honest_prints"]["max_score"]
    assert got["os_exit_in_call"]["status"] == "crash" and got["os_exit_in_call"]["score"] == 0
    assert got["busy_loop_in_call"]["status"] == "timeout" and got["busy_loop_in_call"]["score"] == 0
    assert got["always_equal_ndarray"]["score"] == got["zeros_control"]["score"] < got["zeros_control"]["max_score"]


# ---------------------------------------------------------------- evidence the grader takes from the child
# (issue 25) Two cheats on other exercises, each beside its honest twin: the expected
# TrainingArguments built where the submission can wrap the class, and the eval-mode/no-grad
# probe's records kept where the submission can rewrite them.  Both are now the grader's.
EVIDENCE = {
    "trainer": dict(
        honest="""
_chapter_arguments = training_arguments
def training_arguments(output_dir):
    return dataclasses.replace(_chapter_arguments(output_dir), warmup_steps=1)
""",
        cheat="""
import transformers
_TrainingArguments = transformers.TrainingArguments
def _also_warm(*args, **kwargs):                   # so that the expected arguments, built here, agree
    kwargs.setdefault("warmup_steps", 1)
    return _TrainingArguments(*args, **kwargs)
transformers.TrainingArguments = _also_warm
"""),
    "finetuning": dict(
        edit=("    model.eval()                            # dropout off\n", ""),     # evaluates in train mode
        honest="",
        cheat="""
_evaluate_in_train_mode = evaluate_model
def evaluate_model(model, test_loader, device):
    result = _evaluate_in_train_mode(model, test_loader, device)
    for hook in list(model._forward_hooks.values()):            # the grader's probe, once
        for call in getattr(hook, "calls", None) or []:
            call.update(training=False, grad_enabled=False, graph=False)
    return result
"""),
}


def build_evidence_case(folder: Path, exercise: str, case: dict, code: str):
    """The reference folder, with ``case``'s edit made to the exercise's module and ``code`` appended."""
    shutil.copytree(ROOT / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / f"{exercise}.py"
    text = path.read_text()
    old, new = case.get("edit", ("", ""))
    assert old in text
    path.write_text(text.replace(old, new, 1) + "\n" + code)


def test_forged_evidence_scores_like_its_honest_twin(grade_jobs, tmp_path):
    jobs, names = [], []
    for exercise, case in EVIDENCE.items():
        for kind in ("honest", "cheat"):
            folder = tmp_path / f"{exercise}_{kind}"
            build_evidence_case(folder, exercise, case, case["honest"] + (case["cheat"] if kind == "cheat" else ""))
            jobs.append({"target": str(folder), "exercises": [exercise]})
            names.append((exercise, kind))
    got = {name: r["exercises"][0] for name, r in zip(names, grade_jobs(jobs))}
    for exercise in EVIDENCE:
        honest, cheat = got[exercise, "honest"], got[exercise, "cheat"]
        assert honest["score"] < honest["max_score"], (exercise, honest["message"][:300])
        assert cheat["score"] == honest["score"], (exercise, cheat["score"], honest["score"], cheat["message"][:300])


# ---------------------------------------------------------------- the same attacks under each level
# (issue 25) A submission that looks for the reference wherever the grader's process shows it, and
# one that reaches the host's network, graded under every level this machine gives.
FINDS_THE_REFERENCE = """
import os, sys
def _candidates():
    pid, seen = os.getppid(), set()
    while pid > 1 and pid not in seen:          # every ancestor's cwd and the paths on its command line
        seen.add(pid)
        try:
            yield os.path.realpath(f"/proc/{pid}/cwd")
            for arg in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0"):
                if arg.startswith(b"/"):
                    yield arg.decode(errors="replace")
            pid = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            break
    yield os.getcwd()
    yield from sys.path
def _steal():
    for start in _candidates():
        folder = start
        for _ in range(8):
            path = os.path.join(folder, "solutions", "attention_numpy.py")
            try:
                code = open(path).read()
            except OSError:
                folder = os.path.dirname(folder)
                continue
            space = {}
            exec(compile(code, path, "exec"), space)
            return space
    return None
_stolen = _steal()
if _stolen:
    softmax, scaled_dot_product_attention = _stolen["softmax"], _stolen["scaled_dot_product_attention"]
"""

REACHES_THE_NETWORK = """
import socket
def _reach():
    reached = []
    try:
        with socket.create_connection(("127.0.0.1", {port}), timeout=2) as s:
            s.sendall(b"pwned")
            reached.append("tcp")
    except OSError:
        pass
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"pwned", ("127.0.0.1", {udp_port}))
        reached.append("udp")
    except OSError:
        pass
    return reached
_reached = _reach()
"""


class Listener:
    """A TCP and a UDP socket on 127.0.0.1 that note whatever reaches them."""

    def __init__(self):
        import socket
        import threading

        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp.settimeout(0.2)
        self.udp.settimeout(0.2)
        self.heard, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self.listen, daemon=True)
        self.thread.start()

    def listen(self):
        while not self.stop.is_set():
            for sock, kind in ((self.tcp, "tcp"), (self.udp, "udp")):
                try:
                    if kind == "tcp":
                        conn, _ = sock.accept()
                        conn.close()
                    else:
                        sock.recvfrom(64)
                    self.heard.append(kind)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.tcp.close()
        self.udp.close()


def level_outcomes(grade_jobs, tmp_path, level):
    listener = Listener()
    network = REACHES_THE_NETWORK.format(port=listener.tcp.getsockname()[1], udp_port=listener.udp.getsockname()[1])
    other = tmp_path / "another_submission"                # a classmate's correct work beside this one
    other.mkdir()
    shutil.copy(ROOT / "solutions" / "attention_numpy.py", other)
    reads_other = f"""
import importlib.util
try:
    _spec = importlib.util.spec_from_file_location('theirs', {str(other / 'attention_numpy.py')!r})
    _theirs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(_theirs)
    softmax, scaled_dot_product_attention = _theirs.softmax, _theirs.scaled_dot_product_attention
except Exception:
    pass
"""
    cases = {"finds_the_reference": dict(base="stub", code=FINDS_THE_REFERENCE),
             "reads_another_submission": dict(base="stub", code=reads_other),
             "imports_the_reference": CASES["imports_the_reference"],
             "reaches_the_network": dict(base="solution", code=network),
             "zeros_control": CASES["zeros_control"]}
    jobs = []
    for name, case in cases.items():
        build(name, case, tmp_path / name)
        jobs.append({"target": str(tmp_path / name), "exercises": ["attention_numpy"],
                     "options": {"call_timeout": 4, "start_timeout": 15}})
    try:
        reports = grade_jobs(jobs, env={"KATA_ISOLATION": level} if level else {})
    finally:
        listener.close()
    got = {name: r["exercises"][0] for name, r in zip(cases, reports)}
    return reports[0]["isolation"], got, listener.heard


def landlock_here():
    from grader.sandbox.controller import probe_landlock

    return probe_landlock()[0]


@pytest.mark.parametrize("level", ["", "landlock"], ids=["strongest level", "landlock without namespaces"])
def test_confined_levels_hide_the_reference_and_the_network(grade_jobs, tmp_path, level):
    if level == "landlock" and not landlock_here():
        pytest.skip("this kernel gives no Landlock (ABI 4+) with seccomp")
    isolation, got, heard = level_outcomes(grade_jobs, tmp_path, level)
    from grader.sandbox.controller import isolation_mode, uses_landlock, uses_namespaces

    assert isolation == (level or isolation_mode()), isolation        # the probe held in the grader too
    if not uses_namespaces(isolation) and not uses_landlock(isolation):
        pytest.skip(f"KATA_ISOLATION caps this run at {isolation}: test_plain_processes_level_... states it")
    # namespaces: a new root without them (rootfs.py); Landlock: no right to read them
    for name in ("finds_the_reference", "imports_the_reference", "reads_another_submission"):
        assert got[name]["score"] <= got["zeros_control"]["score"] < got[name]["max_score"], \
            (isolation, name, got[name]["score"], got[name]["message"][:300])
    assert got["reaches_the_network"]["score"] == got["reaches_the_network"]["max_score"]
    assert not heard, f"a submission reached 127.0.0.1 under {isolation}: {heard}"


def test_plain_processes_level_states_what_it_does_not_hold(grade_jobs, tmp_path):
    """KATA_ISOLATION=processes (neither namespaces nor Landlock): crashes and hangs still cost only
    their exercise (test_process_isolation_fallback_...), but the reference is readable and the
    network is open.  This test pins that down, so that the README's table stays true and a
    pipeline that needs more passes --require-isolation landlock."""
    isolation, got, heard = level_outcomes(grade_jobs, tmp_path, "processes")
    assert isolation == "processes"
    for name in ("finds_the_reference", "reads_another_submission"):
        assert got[name]["score"] == got[name]["max_score"], name
    assert "tcp" in heard


# ---------------------------------------------------------------- the grader itself stands (issue 25)
def run_grader(cli, folder, *args, timeout=240):
    return cli("attention_numpy", "--target", str(folder), *args, timeout=timeout, env={"PYTHONIOENCODING": "utf-8"})


def test_a_lone_surrogate_in_a_message_is_printed_and_written(cli, tmp_path):
    folder = tmp_path / "surrogate"
    build("surrogate", dict(base="stub", code="""
def softmax(x, axis=-1):
    raise ValueError("\\ud800 no such character")
scaled_dot_product_attention = softmax
"""), folder)
    report = tmp_path / "report.json"
    r = run_grader(cli, folder, "--verbose", "--json", str(report), "--junit", str(tmp_path / "junit.xml"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "\\ud800" in r.stdout
    import json

    assert json.loads(report.read_text())["exercises"][0]["score"] == 0


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/ptmx"])
def test_a_module_linked_to_a_device_neither_hangs_nor_scores(cli, tmp_path, device):
    folder = tmp_path / "device"
    folder.mkdir()
    (folder / "attention_numpy.py").symlink_to(device)
    shutil.copy(ROOT / "exercises" / "feed_forward.py", folder)       # a submission with one real module
    r = run_grader(cli, folder, "--json", str(tmp_path / "r.json"), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    ex = json.loads((tmp_path / "r.json").read_text())["exercises"][0]
    assert ex["score"] == 0, ex


SETSID_DAEMON = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(120)
    os._exit(0)
"""


@pytest.mark.parametrize("level", ["processes", "landlock", ""], ids=["processes", "landlock", "strongest level"])
def test_a_setsid_daemon_is_gone_after_its_exercise(grade_jobs, tmp_path, level):
    """Without a PID namespace the grader is the subreaper of its sandboxes: a daemon that calls
    setsid is re-parented to it and killed when its exercise's sandbox closes."""
    if level == "landlock" and not landlock_here():
        pytest.skip("this kernel gives no Landlock (ABI 4+) with seccomp")
    folder = tmp_path / "daemon"
    build("daemon", dict(base="solution", code=SETSID_DAEMON), folder)
    reports = grade_jobs([{"target": str(folder), "exercises": ["attention_numpy"],
                           "options": {"call_timeout": 4, "start_timeout": 15}}],
                         env={"KATA_ISOLATION": level} if level else {})
    ex = reports[0]["exercises"][0]
    assert ex["score"] == ex["max_score"], ex["message"][:300]
    time.sleep(0.5)
    assert not worker_processes_of(folder), f"left behind under {reports[0]['isolation']}"


ZOMBIES = """
import os, sys
from grader.grading.run import grade
for _ in range(3):
    grade(sys.argv[1], ["attention_numpy"])
me = str(os.getpid())
print(sum(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[:2] == ["Z", me]
          for p in os.listdir("/proc") if p.isdigit()))
"""


@pytest.mark.parametrize("level", ["processes", ""], ids=["processes", "strongest level"])
def test_the_grader_reaps_what_its_sandboxes_leave(tmp_path, level):
    """A zombie left to the subreaper counts against RLIMIT_NPROC until it is reaped: after three
    exercises the grader holds none (the first subreaper kept one per exercise)."""
    import subprocess
    import sys

    folder = tmp_path / "sub"
    build("sub", dict(base="solution", code=""), folder)
    r = subprocess.run([sys.executable, "-c", ZOMBIES, str(folder)], capture_output=True, text=True, cwd=ROOT,
                       timeout=600, env={**os.environ, "KATA_ISOLATION": level})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "0", r.stdout
