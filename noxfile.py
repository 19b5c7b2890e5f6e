"""Sessions: ``grade`` (students), ``verify`` (the project's own check), ``hint``.

All sessions share one virtualenv, ``.nox/kata``, holding the kata itself, installed
editable (``pip install -e .``: the ``grader`` package and the dependencies that
``pyproject.toml`` declares), pinned by ``constraints.txt`` (the versions this kata
is tested with, ``torch==2.13.0`` among them).  The install is skipped when neither
file changed, so a second ``nox -s grade`` starts in seconds; edits to the grader need no
reinstall (it is editable).

``mutation`` (instructors) runs in a virtualenv of its own, ``.nox/mutation``, holding only the
mutation tool (``pyproject.toml``'s optional group ``mutation``, pinned by
``constraints-mutation.txt``); the mutants are graded by the shared ``.nox/kata``'s Python, so
``grade`` and ``verify`` never see the tool.
"""
import hashlib
import os
import shutil
import sys
from pathlib import Path

import nox
import nox.virtualenv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if shutil.which(os.environ.get("UV", "uv")) is None:
    # Every session here runs with venv_backend="none": uv is never needed.  Telling nox so up
    # front spares each run its "uv binary not found." line.
    from packaging.version import Version

    nox.virtualenv.HAS_UV, nox.virtualenv.UV, nox.virtualenv.UV_VERSION = False, "uv", Version("0")

ROOT = Path(__file__).parent
VENV = ROOT / ".nox" / "kata"
nox.options.sessions = ["grade"]


def venv_python(session, venv: Path, constraints: str, *requirements: str) -> str:
    """``venv``'s python, created and filled (pinned by ``constraints``) on first use; the install
    is skipped while pyproject.toml and ``constraints`` are unchanged."""
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    digest = hashlib.sha256()
    for name in ("pyproject.toml", constraints):
        digest.update((ROOT / name).read_bytes())
    stamp = venv / ".kata-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return str(python)
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
    session.run(str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                "-c", str(ROOT / constraints), *requirements, external=True)
    stamp.write_text(digest.hexdigest())
    return str(python)


def kata_python(session) -> str:
    """The shared virtualenv's python: the kata itself, installed editable."""
    return venv_python(session, VENV, "constraints.txt", "-e", str(ROOT))


def mutation_python(session) -> str:
    """``.nox/mutation``'s python, holding the optional group ``mutation`` (cosmic-ray)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["mutation"]
    return venv_python(session, ROOT / ".nox" / "mutation", "constraints-mutation.txt", *deps)


@nox.session(venv_backend="none")
def grade(session):
    """Grade your exercises: nox -s grade [-- EXERCISE ... --target DIR --json FILE --fail-under N]."""
    session.run(kata_python(session), "-m", "grader", *session.posargs, external=True)


@nox.session(venv_backend="none")
def verify(session):
    """The project's own check: grader self-tests, solutions 100 %, stubs 0, known bugs caught."""
    python = kata_python(session)
    session.run(python, "-m", "pytest", "-q", "tests/selftest", *session.posargs, external=True)
    session.run(python, "-m", "grader.instructor.verify", external=True)


@nox.session(venv_backend="none")
def mutation(session):
    """Instructors: mutation analysis of solutions/ with cosmic-ray: nox -s mutation [-- EXERCISE ... --jobs N --json FILE]."""
    kata = kata_python(session)
    session.run(mutation_python(session), "-m", "grader.instructor.mutation", "--python", kata,
                *session.posargs, external=True)


@nox.session(venv_backend="none")
def hint(session):
    """Show the next hint for an exercise: nox -s hint -- EXERCISE [--level N] [--lang ja]."""
    session.run(kata_python(session), "-m", "grader.student.hint", *session.posargs, external=True)


@nox.session(venv_backend="none")
def watch(session):
    """Re-grade an exercise every time you save it: nox -s watch [-- EXERCISE]."""
    session.run(kata_python(session), "-m", "grader.student.watch", *session.posargs, external=True)


@nox.session(venv_backend="none")
def plots(session):
    """Draw the chapter's pictures from your own code: nox -s plots [-- --out DIR]."""
    session.run(kata_python(session), "-m", "grader.student.plots", *session.posargs, external=True)


@nox.session(venv_backend="none")
def release(session):
    """Instructors: write the student copy, a Gradescope bundle and a Classroom workflow: nox -s release [-- --out DIR]."""
    session.run(kata_python(session), "-m", "grader.instructor.release", *session.posargs, external=True)


@nox.session(venv_backend="none")
def bench(session):
    """Measure the grader's speed and write bench.json: nox -s bench [-- --quick]."""
    session.run(kata_python(session), "-m", "grader.instructor.bench", *session.posargs, external=True)
