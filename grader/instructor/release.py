"""``python -m grader.instructor.release`` (``nox -s release``): what an instructor publishes.

Writes, under ``--out`` (default ``release/``):

* ``student/``: the student copy of the repository: the files git tracks, less the
  instructor's (``solutions/``, ``tests/bugs/``, ``tests/selftest/``, ``.ci/``, this tool,
  hidden suites, anything named with ``--exclude``); its README says what it can check
  without the reference, its noxfile keeps the students' sessions, and
  ``.github/workflows/classroom.yml`` grades every push (GitHub Classroom);
* ``gradescope/`` and ``gradescope.zip``: a Gradescope autograder (``setup.sh`` and
  ``run_autograder`` at the top, the kata with its solutions under ``source/``).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from grader import manifest as manifest_mod
from grader import settings
from grader.manifest import root

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TEMPLATES = Path(__file__).resolve().parent / "templates" / "release"
MARKER = ".kata-release"

# Never in any published copy: the project's own checks and this tool.
PROJECT_ONLY = ["tests/bugs/", "tests/selftest/", "tests/mutation/", "constraints-mutation.txt", ".ci/", ".github/",
                "grader/instructor/"]
# Also left out of the student copy.
INSTRUCTOR_ONLY = ["solutions/"]
# noxfile sessions that make no sense without the above (removed from the student copy;
# so is any session that runs a grader module the copy does not have).
INSTRUCTOR_SESSIONS = {"verify", "release", "bench", "mutation"}


class ReleaseError(Exception):
    pass


# ------------------------------------------------------------------ file lists

def git_files(include_untracked: bool) -> tuple[list[str], list[str]]:
    """(files to publish, untracked files left out), repository-relative, '/'-separated."""
    def ls(*args):
        try:
            proc = subprocess.run(["git", "ls-files", "-z", *args], cwd=root(), capture_output=True, check=True)
        except FileNotFoundError:
            raise ReleaseError("git is not installed; the release publishes what git tracks") from None
        except subprocess.CalledProcessError as exc:
            raise ReleaseError(f"{root()} is not a git checkout ({exc.stderr.decode(errors='replace').strip()}); "
                               "the release publishes what git tracks") from None
        return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]

    tracked = ls("--cached")
    untracked = ls("--others", "--exclude-standard")
    files = tracked + (untracked if include_untracked else [])
    files = sorted({f for f in files if os.path.lexists(root() / f)})
    return files, ([] if include_untracked else sorted(untracked))


def excluded(path: str, patterns) -> bool:
    for pat in patterns:
        if pat.endswith("/"):
            if path.startswith(pat):
                return True
        elif path == pat or path.startswith(pat + "/"):
            return True
    return False


def repo_relative(text: str, what: str) -> str:
    """An --exclude/--tests path as a repository-relative pattern ('dir/' for folders)."""
    path = Path(text)
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    try:
        rel = path.relative_to(root()).as_posix()
    except ValueError:
        raise ReleaseError(f"{what} {text!r}: not inside the repository {root()}") from None
    if rel in ("", "."):
        raise ReleaseError(f"{what} {text!r}: that is the whole repository")
    return rel + "/" if path.is_dir() else rel


# ------------------------------------------------------------------ rewriting

def copy_files(files, dest: Path) -> None:
    for rel in files:
        src, dst = root() / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def student_noxfile(text: str, present: set[str]) -> str:
    """The noxfile without the instructor's sessions and any session that runs a grader
    module the student copy lacks."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    drop = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any("session" in ast.unparse(d) for d in node.decorator_list):
            continue
        source = ast.get_source_segment(text, node) or ""
        modules = re.findall(r'"(grader(?:\.\w+)*)"', source)
        lacking = [m for m in modules if m != "grader" and f"{m.replace('.', '/')}.py" not in present]
        if node.name in INSTRUCTOR_SESSIONS or lacking:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            end = node.end_lineno
            while end < len(lines) and not lines[end].strip():
                end += 1
            drop.append((start, end))
    for start, end in sorted(drop, reverse=True):
        del lines[start:end]
    out = "".join(lines).rstrip() + "\n"
    ast.parse(out)
    return out


def reference_table(present=None) -> list[tuple[str, int, int]]:
    """Per exercise: (name, test functions that run without solutions/, those that need it),
    from the suites' source: a test needs the reference when it (or a fixture it uses,
    transitively) asks for the ``reference`` fixture."""
    rows = []
    for ex in manifest_mod.load():
        files = [root() / "tests" / f"test_{ex.name}.py", *sorted((root() / "tests" / ex.name).glob("test_*.py"))]
        total = needs = 0
        for path in files:
            if not path.is_file() or (present is not None and path.relative_to(root()).as_posix() not in present):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            fixtures = {f.name: {a.arg for a in f.args.args} for f in funcs
                        if any("fixture" in ast.unparse(d) for d in f.decorator_list)}
            memo: dict[str, bool] = {}

            def uses_reference(args, seen=()):
                for a in args:
                    if a == "reference":
                        return True
                    if a in fixtures and a not in seen:
                        if a not in memo:
                            memo[a] = uses_reference(fixtures[a], (*seen, a))
                        if memo[a]:
                            return True
                return False

            for f in funcs:
                if f.name.startswith("test_"):
                    total += 1
                    needs += uses_reference({a.arg for a in f.args.args})
        if total:
            rows.append((ex.name, total - needs, needs))
    return rows


def student_readme(text: str, excluded_patterns, threshold: float, present=None) -> str:
    """The README with its instructor section replaced by what this copy checks, and
    the commands and layout lines that only work with the instructor's files removed."""
    table = "\n".join(f"| `{name}` | {here} | {ref} |" for name, here, ref in reference_table(present))
    classroom = (f"\nIf your course uses GitHub Classroom, every push runs `.github/workflows/classroom.yml`:\n"
                 f"`nox -s grade -- --fail-under {threshold:g}` (the run fails below {threshold:g} % of the "
                 "points counted here).\n")
    section = (TEMPLATES / "student_readme.md").read_text(encoding="utf-8")
    section = section.replace("@@TABLE@@", table).replace("@@CLASSROOM@@", classroom).rstrip() + "\n"

    out, in_fence, replaced, skipping = [], False, False, False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            skipping = False
            if re.search(r"instructor|教員|講師", line, re.IGNORECASE):
                skipping = True
                if not replaced:
                    out.extend(section.rstrip("\n").splitlines())
                    out.append("")
                    replaced = True
                continue
        if skipping:
            continue
        if (in_fence or line.startswith("|")) and re.search(r"nox -s (verify|release)\b", line):
            continue
        if in_fence and not line.startswith("```"):
            first = line.split()[0] if line.split() else ""
            if first and excluded(first, excluded_patterns):
                continue
        out.append(line)
    if not replaced:
        out.extend(["", *section.rstrip("\n").splitlines()])
    return "\n".join(out).rstrip() + "\n"


def fill(template: str, **values) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise ReleaseError(f"template {template}: no value for {', '.join(sorted(set(left)))}")
    return text


def write_exec(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    path.chmod(0o755)


def write_zip(folder: Path, zip_path: Path) -> None:
    """``folder``'s contents at the zip's top level, modes kept, reproducible timestamps."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or path.is_symlink():
                continue
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


# ------------------------------------------------------------------ release

def _check_arguments(out: Path, exercises) -> list[str]:
    """The manifest's exercise names, once ``--out`` and the exercises asked for are known good."""
    if out == root() or root().is_relative_to(out):
        raise ReleaseError(f"--out {out}: must not be the repository or a folder above it")
    names = [e.name for e in manifest_mod.load()]
    unknown = [e for e in exercises if e not in names]
    if unknown:
        raise ReleaseError(f"unknown exercise {', '.join(map(repr, unknown))}; valid exercises: {', '.join(names)}")
    return names


def _hidden_suites(tests) -> tuple[list[str], list[Path]]:
    """The ``--tests`` folders: (inside the repository, relative; outside it, absolute)."""
    in_repo, outside = [], []
    for d in tests:
        path = Path(d)
        if not path.is_dir():
            raise ReleaseError(f"--tests {d!r}: no such folder")
        try:
            in_repo.append(repo_relative(d, "--tests"))
        except ReleaseError:
            outside.append(path.resolve())
    return in_repo, outside


def _prepare_out(out: Path) -> None:
    """Empty what an earlier release wrote under ``out``; refuse anything else found there."""
    targets = [out / "student", out / "gradescope", out / "gradescope.zip"]
    if any(t.exists() for t in targets) and not (out / MARKER).is_file():
        raise ReleaseError(f"--out {out}: holds student/ or gradescope/ that this tool did not write; "
                           "remove them or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by python -m grader.instructor.release\n", encoding="utf-8")
    for t in targets:
        if t.is_dir() and not t.is_symlink():
            shutil.rmtree(t)
        elif t.exists() or t.is_symlink():
            t.unlink()


def _write_student_copy(student: Path, student_files, student_excl, threshold) -> Path:
    """The student copy, its noxfile and README cut to what it holds, and the Classroom workflow."""
    copy_files(student_files, student)
    present = set(student_files)
    if "noxfile.py" in present:
        (student / "noxfile.py").write_text(
            student_noxfile((root() / "noxfile.py").read_text(encoding="utf-8"), present), encoding="utf-8")
    if "README.md" in present:
        (student / "README.md").write_text(
            student_readme((root() / "README.md").read_text(encoding="utf-8"), student_excl, threshold, present),
            encoding="utf-8")
    workflow = student / ".github" / "workflows" / "classroom.yml"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(fill("classroom.yml", THRESHOLD=f"{threshold:g}"), encoding="utf-8")
    return workflow


def _write_gradescope(bundle: Path, bundle_files, hidden_in_repo, hidden_outside, exercises) -> None:
    """The Gradescope autograder: the kata under source/, setup.sh and run_autograder on top."""
    copy_files(bundle_files, bundle / "source")
    grader_args = []
    for rel in hidden_in_repo:
        grader_args += ["--tests", rel.rstrip("/")]
    for path in hidden_outside:
        dest = bundle / "source" / "hidden" / path.name
        if dest.exists():
            raise ReleaseError(f"--tests {path}: two hidden suites named {path.name}")
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        grader_args += ["--tests", f"hidden/{path.name}"]
    project = tomllib.loads((root() / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = " ".join(shlex.quote(d) for d in project["dependencies"])
    write_exec(bundle / "setup.sh", fill("setup.sh", DEPENDENCIES=deps))
    exercises_text = " ".join(exercises)
    args_text = " ".join(map(shlex.quote, grader_args))
    write_exec(bundle / "run_autograder", fill(
        "run_autograder", EXERCISES=shlex.quote(exercises_text), EXERCISES_TEXT=exercises_text or "all",
        GRADER_ARGS=shlex.quote(args_text), GRADER_ARGS_TEXT=args_text or "none"))


def _release_warnings(names, present, bundle_files, left_untracked) -> list[str]:
    """What is missing where it should not be."""
    warnings = []
    if left_untracked:
        shown = ", ".join(left_untracked[:8]) + (" ..." if len(left_untracked) > 8 else "")
        warnings.append(f"{len(left_untracked)} file(s) git does not track were left out ({shown}); "
                        "commit them, or pass --include-untracked")
    for what, lacking in (
            ("the student copy has no stub exercises/<name>.py for",
             [n for n in names if f"exercises/{n}.py" not in present]),
            ("the student copy has no suite tests/test_<name>.py for",
             [n for n in names if not _has_suite(n, present)]),
            ("the Gradescope bundle has no reference solutions/<name>.py for",
             [n for n in names if f"solutions/{n}.py" not in bundle_files])):
        if lacking:
            warnings.append(f"{what} {', '.join(lacking)}")
    return warnings


def release(out: Path, *, threshold=60.0, exclude=(), tests=(), exercises=(), include_untracked=False,
            log=print) -> dict:
    out = out.resolve()
    names = _check_arguments(out, exercises)
    files, left_untracked = git_files(include_untracked)
    if out.is_relative_to(root()):
        files = [f for f in files if not (root() / f).resolve().is_relative_to(out)]
    user_excl = [repo_relative(e, "--exclude") for e in exclude]
    hidden_in_repo, hidden_outside = _hidden_suites(tests)
    student_excl = PROJECT_ONLY + INSTRUCTOR_ONLY + user_excl + hidden_in_repo
    student_files = [f for f in files if not excluded(f, student_excl)]
    bundle_files = [f for f in files if not excluded(f, PROJECT_ONLY)]

    _prepare_out(out)            # out/ is ours to rewrite only if an earlier release wrote it
    student, bundle, zip_path = out / "student", out / "gradescope", out / "gradescope.zip"
    workflow = _write_student_copy(student, student_files, student_excl, threshold)
    _write_gradescope(bundle, bundle_files, hidden_in_repo, hidden_outside, exercises)
    write_zip(bundle, zip_path)

    warnings = _release_warnings(names, set(student_files), bundle_files, left_untracked)
    left_out = sorted({p for p in student_excl if any(excluded(f, [p]) for f in files)})
    log(f"Student copy: {_shown(student)} ({len(student_files)} files; left out: {', '.join(left_out) or 'nothing'})")
    log(f"  GitHub Classroom workflow: {_shown(workflow)} (nox -s grade -- --fail-under {threshold:g})")
    log(f"Gradescope autograder: {_shown(zip_path)} (upload this zip; {_shown(bundle)} is the same, unpacked)")
    for w in warnings:
        log(f"warning: {w}")
    return {"student": student, "workflow": workflow, "gradescope": bundle, "zip": zip_path,
            "student_files": student_files, "bundle_files": bundle_files, "warnings": warnings}


def _has_suite(name: str, files) -> bool:
    return f"tests/test_{name}.py" in files or any(f.startswith(f"tests/{name}/test_") for f in files)


def _shown(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def parse_args(argv):
    settings.root_option(argv)
    p = argparse.ArgumentParser(
        prog="python -m grader.instructor.release",
        description="Write the student copy of the kata (with a GitHub Classroom workflow) and a "
                    "Gradescope autograder bundle.")
    p.add_argument("--out", default=None, help="output folder (default: release/)")
    settings.add_root_option(p)
    p.add_argument("--threshold", type=float, default=60.0,
                   help="the Classroom workflow fails below this percentage (default 60)")
    p.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="PATH",
                   help="further files or folders to leave out of the student copy (hidden suites, notes)")
    p.add_argument("--tests", action="append", default=[], metavar="DIR",
                   help="a hidden suite: left out of the student copy, graded by the Gradescope "
                        "autograder (python -m grader --tests); may repeat")
    p.add_argument("--exercises", nargs="+", default=[], metavar="EXERCISE",
                   help="the exercises the Gradescope autograder grades (default: all)")
    p.add_argument("--include-untracked", action="store_true",
                   help="also publish files git does not track yet (but does not ignore)")
    args = p.parse_args(argv)
    if not 0 <= args.threshold <= 100:
        raise ReleaseError(f"--threshold {args.threshold:g}: must be between 0 and 100 (a percentage)")
    args.out = Path(args.out) if args.out is not None else root() / "release"
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        release(args.out, threshold=args.threshold, exclude=args.exclude, tests=args.tests,
                exercises=args.exercises, include_untracked=args.include_untracked)
    except (ReleaseError, settings.RootNotFound) as exc:
        print(f"grader.instructor.release: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
