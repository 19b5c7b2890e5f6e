#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (the bundle is
# unpacked into /autograder/source).  It installs Python 3.11+ when the image lacks it and
# the kata's dependencies, pinned by constraints.txt, into a virtualenv: the same install
# as `nox -s grade` makes (noxfile.py, kata_python).  Written by `nox -s release`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KATA="${KATA_SOURCE:-$HERE/source}"
VENV="${KATA_VENV:-/autograder/kata-venv}"
# CPU wheels of torch (the grader runs on CPU here); set KATA_TORCH_INDEX= to use PyPI's.
TORCH_INDEX="${KATA_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"

# constraints.txt pins packages (numpy 2.4, scipy 1.17, ...) that need Python 3.11 or newer.
find_python() {
  local p
  for p in python3.13 python3.12 python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
       "$p" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      command -v "$p"
      return 0
    fi
  done
  return 1
}

PY="$(find_python || true)"
if [ -z "$PY" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends python3 python3-venv python3-pip ca-certificates util-linux || true
  PY="$(find_python || true)"
  if [ -z "$PY" ]; then    # Ubuntu 22.04 (Gradescope's usual base): python3 is 3.10
    apt-get install -y -q --no-install-recommends python3.11 python3.11-venv || true
    PY="$(find_python || true)"
  fi
fi
if [ -z "$PY" ]; then
  echo "setup.sh: the kata needs Python >= 3.11 with venv; this image has: $(python3 --version 2>&1 || echo none)" >&2
  exit 1
fi
echo "setup.sh: using $PY ($("$PY" --version 2>&1))"

"$PY" -m venv "$VENV"
extra=()
if [ -n "$TORCH_INDEX" ]; then extra=(--extra-index-url "$TORCH_INDEX"); fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check ${extra[@]+"${extra[@]}"} \
  -c "$KATA/constraints.txt" @@DEPENDENCIES@@

# Fail the build now, not at the first submission: the grader imports and the packaged
# all-MiniLM-L6-v2 files are the published ones (sha256-checked).
cd "$KATA"
"$VENV/bin/python" -c "import grader.student.cli, grader.grading.run, grader.grading.hf; grader.grading.hf.minilm_dir(); print('kata autograder ready')"
