"""The pytest plugin behind every suite: fixtures ``student``, ``reference``, ``device``.

A suite reaches the code under test only through ``student`` (a proxy to the
module in its sandbox) and the trusted reference only through ``reference`` (the
``solutions/`` module imported here).  Which folder is graded is an option
(``--kata-target``), never an import in a suite, so the same suite grades the
exercises, the solutions, or any submission folder.
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import pytest

from grader import manifest as manifest_mod
from grader import settings
from grader.i18n import say, set_lang
from grader.sandbox.remote import StudentModule
from grader.sandbox.controller import RemoteError, Sandbox, SandboxDied, take_prestarted

NEEDS_REFERENCE = settings.NEEDS_REFERENCE


def pytest_addoption(parser):
    group = parser.getgroup("kata")
    group.addoption("--kata-target", default=None,
                    help="folder of exercise modules to grade (default: exercises/)")
    group.addoption("--kata-solutions", default=None,
                    help="folder of reference solutions")
    group.addoption("--kata-device", default="cpu", help="cpu or cuda")
    group.addoption("--kata-hide", action="append", default=[],
                    help="a folder the sandbox must not see (may repeat)")
    group.addoption("--kata-lang", default="en", choices=["en", "ja"], help="language of the messages")
    group.addoption("--kata-run-stubs", action="store_true",
                    help="run the suites even on untouched stubs (verify proves each test fails there)")
    group.addoption("--kata-no-shrink", action="store_true",
                    help="skip hypothesis' shrinking (verify's known-bug runs only need pass/fail)")
    group.addoption("--kata-call-timeout", type=float, default=None,
                    help="override the manifest's per-call time limit (seconds)")
    group.addoption("--kata-start-timeout", type=float, default=settings.START_TIMEOUT_S,
                    help="time limit for starting the sandbox and importing the module (seconds)")
    group.addoption("--kata-in-process", action="store_true", default=False,
                    help="benchmark only, UNSAFE: run the graded module in a thread of this process, "
                         "without a sandbox (grader.bench's unsandboxed baseline; never for grading)")


def pytest_configure(config):
    config.addinivalue_line("markers", "visible: a hidden suite's test whose failure details students may see")
    config.addinivalue_line("markers", "judges(*names, stage=2, item=NAME): the public names (functions, classes, methods "
                            "as 'Class.method') whose behaviour this test pins down, and its stage: 0 contract "
                            "(signature, errors), 1 shapes and dtypes, 2 one mechanism, 3 a whole comparison "
                            "with the reference or HuggingFace; item, the manifest's rubric item (the chapter's idea) "
                            "its points belong to. The first failure shown is the most specific.")
    config.kata_sandboxes = {}       # exercise -> list of Sandbox
    target = config.getoption("--kata-target") or str(settings.root() / "exercises")
    config.kata_untouched = set() if config.getoption("--kata-run-stubs") else {
        e.name for e in manifest_mod.load() if settings.untouched_stub(target, e.name)}
    set_lang(config.getoption("--kata-lang"))
    from hypothesis import Phase
    from hypothesis import settings as hypothesis_settings
    from hypothesis.internal.conjecture import engine

    from grader.grading.checks import GRADED

    phases = [p for p in Phase if p != Phase.shrink or not config.getoption("--kata-no-shrink")]
    # Shrinking makes the reported example small, but a failing test can spend a minute on it.
    # A cap on the number of shrinks, and on their time (a failing exercise grades within about
    # 1.5x the time of a passing one): the smallest example found so far is reported.  The score
    # never depends on shrinking (the test has failed before it starts).
    engine.MAX_SHRINKS = min(engine.MAX_SHRINKS, 40)
    config.kata_shrink_left = {}     # exercise -> seconds of shrinking left (settings.SHRINK_SECONDS each)
    hypothesis_settings.register_profile("kata-grading", max_examples=25, phases=phases, **GRADED)
    hypothesis_settings.load_profile("kata-grading")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Run the most specific tests first (``@pytest.mark.judges``: the lowest stage, then the fewest
    names judged; ties keep the suites' order).  The first failure met is then the one shown first,
    so ``--exitfirst`` (verify's known-bug runs) stops at the test a student reads first."""
    def key(item):
        marker = item.get_closest_marker("judges")
        if marker is None:
            return (9, 99)
        return (int(marker.kwargs.get("stage", 2)), len(marker.args) or 99)

    items[:] = sorted(items, key=key)


def exercise_of(module) -> str:
    try:
        return settings.exercise_of(module, manifest_mod.by_name())
    except LookupError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def device(request):
    import torch

    name = request.config.getoption("--kata-device")
    return torch.device(name)


@pytest.fixture(scope="module")
def student(request):
    config = request.config
    name = exercise_of(request.module)
    target = Path(config.getoption("--kata-target") or settings.root() / "exercises")
    box_settings = settings.sandbox_settings(target, manifest_mod.by_name()[name], config.getoption("--kata-device"),
                                call_timeout=config.getoption("--kata-call-timeout"),
                                start_timeout=config.getoption("--kata-start-timeout"),
                                hide=config.getoption("--kata-hide"),
                                solutions=config.getoption("--kata-solutions"))
    modules = [e.name for e in manifest_mod.load()]
    if config.getoption("--kata-in-process"):   # benchmark only, unsafe: see grader.bench
        from grader.sandbox.inprocess import InProcessSandbox

        sandbox = InProcessSandbox(target, name, modules, **box_settings)
    else:
        sandbox = take_prestarted(target, name, box_settings) or Sandbox(target, name, modules, **box_settings)
    config.kata_sandboxes.setdefault(name, []).append(sandbox)
    try:
        yield StudentModule(sandbox, config.getoption("--kata-device"), name)
    finally:
        sandbox.close()


@pytest.fixture(scope="module")
def reference(request):
    name = exercise_of(request.module)
    folder = Path(request.config.getoption("--kata-solutions") or settings.solutions_dir()).resolve()
    if not (folder / f"{name}.py").is_file():
        # the student copy: this check runs only in the instructor's grading (not counted here)
        pytest.skip(NEEDS_REFERENCE)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(name)


class NotStarted(Exception):
    """The graded module is the untouched stub: its tests fail without running."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    try:
        name = exercise_of(item.module)
    except pytest.UsageError:
        return
    if name in getattr(item.config, "kata_untouched", ()):
        raise NotStarted(say("not_started"))


# ------------------------------------------------------------------ messages

try:
    BaseExceptionGroup
except NameError:  # Python 3.10
    from exceptiongroup import BaseExceptionGroup  # type: ignore  # noqa: A004


FIXTURE_ARGS = ("student", "reference", "device")


def _without_fixtures(note: str, fixtures=()) -> str:
    """Hypothesis lists every argument of the failing test; the fixtures (the suite's own objects:
    models, tokenizers, the sandbox proxy) are noise and their reprs are the suite's internals."""
    names = tuple(f"{n}=" for n in (*FIXTURE_ARGS, *fixtures))
    return "\n".join(line for line in note.splitlines()
                     if not line.strip().startswith(names) and "<student object" not in line
                     and "<sandbox object" not in line)


def _paste(value, budget: list, digits=None):
    """Python source that rebuilds ``value`` (small arrays and tensors, plain values), or None;
    with ``digits``, floats in arrays are rounded to that many significant digits."""
    import numpy as np

    def listed(arr):
        if arr.dtype.kind != "f":
            return arr.tolist()
        if digits is None:   # the shortest text that gives back the same value in this dtype
            return np.array([float(str(x)) for x in arr.ravel()], dtype=np.float64).reshape(arr.shape).tolist()
        return np.array([float(f"{x:.{digits}g}") for x in arr.ravel()], dtype=np.float64).reshape(arr.shape).tolist()

    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, str) and _sandbox_path(value):
        # a scratch folder of the sandbox (gone when the grade ends): one of the student's own instead
        return repr("./output")
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f"float({str(value)!r})"
    if type(value) is np.ndarray and value.size == 0:
        return f"np.zeros({value.shape!r}, dtype=np.{value.dtype.name})"
    if type(value) is np.ndarray and value.size <= 400 and value.dtype.kind in "biuf":
        return f"np.array({listed(value)!r}, dtype=np.{value.dtype.name})"
    if type(value).__name__ == "Tensor" and value.numel() <= 400 and value.dtype.is_floating_point is not None \
            and not value.is_complex():
        arr = value.detach().cpu()
        if arr.dtype in (torch_dtype("float32"), torch_dtype("float64")):
            data = listed(arr.numpy())
        elif arr.is_floating_point():
            data = listed(arr.double().numpy())
        else:
            data = arr.tolist()
        return f"torch.tensor({data!r}, dtype={value.dtype})"
    if isinstance(value, (list, tuple)):
        parts = [_paste(v, budget, digits) for v in value]
        if any(p is None for p in parts):
            return None
        inner = ", ".join(parts)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(parts) == 1 else ''})"
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        parts = {k: _paste(v, budget, digits) for k, v in value.items()}
        if any(p is None for p in parts.values()):
            return None
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in parts.items()) + "}"
    return None


def _sandbox_path(text: str) -> bool:
    """A path the grader made in a temporary folder (the sandbox's scratch space, a suite's
    ``mkdtemp``): it does not exist once the grade has ended, so a pasted call must not use it."""
    import tempfile

    return "kata-" in text and (text.startswith(tempfile.gettempdir()) or "/kata-box-" in text
                                or text.startswith("/tmp/"))


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def reproduction(student, exercise: str) -> str:
    """A snippet a student can paste into Python to repeat the last call into their code."""
    call = getattr(getattr(student, "_client", None), "last_call", None)
    if not call or not call[0] or "." in call[0]:
        return ""
    label, args, kwargs = call
    for digits, note in ((None, ""), (4, "  # inputs rounded to 4 significant digits")):
        budget = [2000]
        pasted = [_paste(a, budget, digits) for a in args]
        pasted += [f"{k}={p}" for k, p in ((k, _paste(v, budget, digits)) for k, v in kwargs.items())
                   if p is not None]
        if any(p is None for p in pasted[:len(args)]) or len(pasted) != len(args) + len(kwargs):
            return ""
        text = (f"import numpy as np, torch\nfrom {exercise} import {label}\n"
                f"result = {label}({', '.join(pasted)}){note}")
        if len(text) <= 2000:
            return text
    return ""


def failure_message(excinfo, exercise: str = "", fixtures=()) -> tuple[str, str]:
    """(kind, message) for a failed test, written for the student."""
    exc = excinfo.value
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:   # hypothesis: several distinct failures
        exc = exc.exceptions[0]
    notes = getattr(exc, "__notes__", None) or []
    example = [_without_fixtures(str(n), fixtures)[:1500] for n in notes
               if "Falsifying" in str(n) or "Failing test case" in str(n)][:1]
    tail = ("\n" + say("reproduce") + "\n" + example[0]) if example else ""
    if isinstance(exc, NotStarted):
        return "not-started", str(exc)
    if isinstance(exc, SandboxDied):
        return exc.kind, exc.detail
    if isinstance(exc, RemoteError):
        if exc.type_name == "MemoryError":
            return "memory", say("memory", what=exc.describe())
        if exc.type_name == "NotImplementedError":
            where = exc.frames[-1][0] if exc.frames else ""
            if exercise and where and where != f"{exercise}.py":
                return "needs-other", say("needs_other", other=where)
            return "not-started", say("not_started")
        return "error", say("raised", what=exc.describe()) + tail
    if isinstance(exc, AssertionError):
        text = str(exc).split("\nassert ", 1)[0].strip() or say("check_failed")
        return "failed", text + tail
    if isinstance(exc, pytest.fail.Exception):
        return "failed", str(exc)
    return "error", f"{type(exc).__name__}: {str(exc)[:1000]}{tail}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        try:
            exercise = exercise_of(item.module)
        except Exception:  # noqa: BLE001
            exercise = ""
        kind, message = failure_message(call.excinfo, exercise, getattr(item, "fixturenames", ()))
        student = getattr(item, "funcargs", {}).get("student")
        if student is not None and kind in ("failed", "error"):
            snippet = reproduction(student, exercise)
            if snippet:
                message += "\n" + say("last_call") + "\n" + snippet
        report.user_properties.append(("kata_kind", kind))
        report.user_properties.append(("kata_message", message))
    if call.when == "call" and getattr(item, "kata_output", None):
        report.user_properties.append(("kata_output", item.kata_output))


def _stdout_of(item):
    """The stdout drain of the sandbox serving this test, if it has one."""
    student = getattr(item, "funcargs", {}).get("student")
    sandbox = getattr(getattr(student, "_client", None), "sandbox", None)
    drain = getattr(sandbox, "drain", None) if getattr(sandbox, "proc", None) is not None else None
    return drain if hasattr(drain, "settle") else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Note what the student's code printed while this test ran (the run's hidden tests' output is
    dropped later, in ``grader.grading.run``); share the exercise's shrinking time
    (``settings.SHRINK_SECONDS``) among its failing tests, the first failure first."""
    from hypothesis.internal.conjecture import engine

    left = item.config.kata_shrink_left           # set in pytest_configure
    try:
        exercise = settings.exercise_of(item.module, manifest_mod.by_name())
    except LookupError:                # not a suite (the grader's self-tests load this plugin too)
        exercise = item.module.__name__
    engine.MAX_SHRINKING_SECONDS = left.setdefault(exercise, float(settings.SHRINK_SECONDS))
    started = time.perf_counter()
    drain = _stdout_of(item)
    start = drain.settle() if drain is not None else 0
    outcome = yield
    if outcome.excinfo is not None:    # a failing test may have shrunk: charge all its time
        left[exercise] = max(0.0, left[exercise] - (time.perf_counter() - started))
    drain = drain or _stdout_of(item)
    if drain is not None:
        end = drain.settle()
        text = bytes(drain.kept[start:end]).decode("utf-8", "replace")
        if text:
            item.kata_output = text[: settings.OUTPUT_SHOW_BYTES]
