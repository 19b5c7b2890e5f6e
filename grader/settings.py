"""Where the kata is, and every default the grader runs with, in one place.

The bottom floor of the grader: it imports nothing from ``grader``.

The kata's root is the folder holding ``manifest.toml`` (with ``exercises/``, ``solutions/``
and ``tests/``).  It is found explicitly, never from this package's own path, so
``pip install .`` gives a grader that works on any checkout:

1. ``--root DIR`` on a command line (``set_root``), which also sets ``KATA_ROOT`` so
   that every process the grader starts finds the same root;
2. the environment variable ``KATA_ROOT``;
3. the working directory, or the nearest folder above it, that holds ``manifest.toml``.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

# ---------------------------------------------------------------- defaults (seconds, MiB)
START_TIMEOUT_S = 90.0      # start a sandbox and import the student's module
CALL_TIMEOUT_S = 30.0       # one call into student code (the manifest may set its own per exercise)
BUDGET_S = 300.0            # all calls of one exercise together (the manifest may set its own)
MEMORY_MB = 6144            # address space of the sandbox (not applied on CUDA: the driver reserves more)
FILE_MB = 64                # largest file the student's code may write
SCRATCH_MB = 512            # the sandbox's private writable scratch folder
CPU_SLACK_S = 60.0          # RLIMIT_CPU = the exercise's budget + the start timeout + this: a busy loop
                            # dies even if the wall-clock deadline were missed; sleeping is caught by the deadline
OUTPUT_KEEP_BYTES = 16 * 1024   # the student's output kept per sandbox (the rest is counted)
OUTPUT_SHOW_BYTES = 4 * 1024    # of which shown in a report, per exercise (and per test)
SHRINK_SECONDS = 5              # hypothesis' shrinking, all failing tests of one exercise together (the
                                # first failure shown gets all of it; the example shown is the smallest
                                # found by then; the score never depends on it).  Measured (bench
                                # --parts failing): 8 s per test made tokenization's failing grade 1.59x
                                # its passing one (4 failing tests); 5 s per exercise keeps every
                                # exercise under the 1.5x target.

STUB_HASHES = Path(__file__).with_name("stubs.json")
PYTEST_INI = Path(__file__).parent / "grading" / "pytest.ini"
NEEDS_REFERENCE = "excluded: needs the instructor's reference solution, which this copy does not have"


ENV_ROOT = "KATA_ROOT"
MANIFEST_NAME = "manifest.toml"


class RootNotFound(Exception):
    """No kata here: neither --root, KATA_ROOT, nor a manifest.toml at or above the working directory."""


def set_root(path) -> Path:
    """Use ``path`` as the kata's root from now on, in this process and every child it starts."""
    folder = Path(path).resolve()
    if not (folder / MANIFEST_NAME).is_file():
        raise RootNotFound(f"--root {str(path)!r}: {folder} holds no {MANIFEST_NAME}")
    os.environ[ENV_ROOT] = str(folder)
    _find_root.cache_clear()
    return folder


@functools.lru_cache(maxsize=None)
def _find_root(env_value: str, cwd: str) -> Path:
    if env_value:
        folder = Path(env_value).resolve()
        if not (folder / MANIFEST_NAME).is_file():
            raise RootNotFound(f"{ENV_ROOT}={env_value!r}: {folder} holds no {MANIFEST_NAME}")
        return folder
    here = Path(cwd).resolve()
    for folder in (here, *here.parents):
        if (folder / MANIFEST_NAME).is_file():
            return folder
    raise RootNotFound(f"no {MANIFEST_NAME} in {here} or above it: run the grader from the kata's folder "
                       f"or pass --root DIR")


def root() -> Path:
    """The kata's root folder (see the module's docstring for how it is found)."""
    return _find_root(os.environ.get(ENV_ROOT, ""), os.getcwd())



ROOT_HELP = ("the kata's folder (the one holding manifest.toml); default: $KATA_ROOT, else the working "
             "directory or the nearest folder above it that holds manifest.toml")


def add_root_option(parser) -> None:
    """``--root DIR`` on a command's parser (``root_option`` has already applied it)."""
    parser.add_argument("--root", metavar="DIR", help=ROOT_HELP)


def root_option(argv) -> None:
    """Apply ``--root DIR`` (or ``--root=DIR``) from ``argv`` before anything reads the manifest;
    the command's own parser accepts the option too (``add_root_option``), for ``--help``.
    Raises ``RootNotFound`` when DIR holds no manifest.toml."""
    import argparse

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--root")
    known, _ = pre.parse_known_args(list(argv))
    if known.root is not None:
        set_root(known.root)


def manifest_path() -> Path:
    return root() / MANIFEST_NAME


def solutions_dir() -> Path:
    return root() / "solutions"


def tests_dir() -> Path:
    return root() / "tests"


# ---------------------------------------------------------------- which exercise a suite grades

def exercise_of(module, names) -> str:
    """The exercise (one of ``names``) a suite module grades: its ``EXERCISE`` constant,
    else ``test_<exercise>.py``, else a folder named after the exercise."""
    name = getattr(module, "EXERCISE", None)
    if name:
        return name
    path = Path(module.__file__)
    if path.stem.startswith("test_") and path.stem[5:] in names:
        return path.stem[5:]
    if path.parent.name in names:
        return path.parent.name
    raise LookupError(f"{path}: cannot tell which exercise this suite grades "
                      "(name it test_<exercise>.py or set EXERCISE = '...')")


@functools.lru_cache(maxsize=None)
def shared_tmp() -> Path:
    """This grader process's folder for the files its tests hand to student code by path (pytest's
    ``tmp_path`` lives beneath it, ``pytest_basetemp``): a Landlocked child may read it, and it is
    removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="kata-shared-"))
    os.chmod(path, 0o755)
    atexit.register(shutil.rmtree, path, True)
    return path


_BASETEMPS = itertools.count()


def pytest_basetemp() -> Path:
    """A fresh ``--basetemp`` beneath ``shared_tmp()`` for one pytest run."""
    return shared_tmp() / f"pytest-{next(_BASETEMPS)}"


def sandbox_settings(target, ex, device: str, *, call_timeout=None, start_timeout=None, hide=(),
                     solutions=None) -> dict:
    """Everything a Sandbox for the exercise ``ex`` (a ``grader.manifest.Exercise``) is built with:
    the manifest's limits, and the folders it must not see (the solutions, the suites, extra
    suites, the graded folder itself)."""
    hidden = [str(solutions or solutions_dir()), str(tests_dir()), *map(str, hide), str(target)]
    return dict(hide=[h for h in hidden if Path(h).exists()], read=[str(root() / "data"), str(shared_tmp())],
                device=device,
                call_timeout=call_timeout or ex.call_timeout, budget=ex.budget,
                start_timeout=start_timeout or START_TIMEOUT_S, memory_mb=ex.memory_mb, preload=list(ex.preload))


# ---------------------------------------------------------------- untouched stubs

MAX_MODULE_BYTES = 1 << 20       # a submitted module above this is neither hashed nor copied


def read_module_file(path) -> bytes | None:
    """The bytes of a submitted module when it is a regular file of at most 1 MiB; None for
    anything else.  Opened with O_NOFOLLOW and O_NONBLOCK and checked with fstat before a byte is
    read, so a module that is a link, a FIFO or a device (/dev/zero, /dev/ptmx) neither hangs nor
    floods the grader."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MODULE_BYTES:
            return None
        return os.read(fd, MAX_MODULE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def file_sha256(path):
    """The sha256 of ``read_module_file(path)``; None where that is None."""
    data = read_module_file(path)
    return None if data is None else hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=None)
def _stub_hashes() -> dict:
    try:
        return json.loads(STUB_HASHES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def untouched_stub(target, exercise: str) -> bool:
    """True when ``target``'s module is byte for byte the distributed stub.  Every graded
    test fails on the stub (``verify`` proves it), so its tests are failed as "not started"
    without starting a sandbox: an honest grading of those bytes gives the same result."""
    want = _stub_hashes().get(exercise)
    return want is not None and file_sha256(Path(target) / f"{exercise}.py") == want
