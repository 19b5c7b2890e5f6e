"""Fixtures for the grader's own tests."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_gradings(jobs, timeout=900, env=None):
    """Grade several (target, exercises, options) jobs in one fresh trusted process and
    return their reports; a fresh process keeps these tests independent of this pytest run."""
    script = (
        "import json, sys\n"
        "from grader.grading.run import grade\n"
        "jobs = json.load(sys.stdin)\n"
        "out = [grade(j['target'], j['exercises'], **j.get('options', {})).to_dict() for j in jobs]\n"
        "sys.stdout.write('\\n@@REPORTS@@' + json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(jobs), capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("@@REPORTS@@", 1)[1])


@pytest.fixture(scope="session")
def grade_jobs():
    return run_gradings


def run_cli(*args, timeout=300, env=None):
    """``python -m grader ARGS`` in the kata's folder, with ``env`` added to this environment."""
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def cli():
    return run_cli
