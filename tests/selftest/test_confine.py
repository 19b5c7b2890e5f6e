"""grader.sandbox.confine: Landlock and seccomp applied by a process to itself (issue 25).

Each check runs in a fresh child: a ruleset cannot be lifted once applied."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.sandbox import confine
from grader.sandbox.controller import LEVELS, meets, probe_landlock, rank

CONFINE = Path(confine.__file__)
needs_landlock = pytest.mark.skipif(not probe_landlock()[0], reason="no Landlock (ABI 4+) with seccomp here")


def in_child(body, *args):
    script = textwrap.dedent("""
        import importlib.util, json, os, socket, sys
        spec = importlib.util.spec_from_file_location("c", sys.argv[1])
        confine = importlib.util.module_from_spec(spec); spec.loader.exec_module(confine)
        out = {}
    """) + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    r = subprocess.run([sys.executable, "-I", "-c", script, str(CONFINE), *map(str, args)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@needs_landlock
def test_reads_only_beneath_the_allowed_paths(tmp_path):
    allowed, secret, scratch = tmp_path / "allowed", tmp_path / "secret", tmp_path / "scratch"
    for d in (allowed, secret, scratch):
        d.mkdir()
    (allowed / "a.txt").write_text("a")
    (secret / "s.txt").write_text("s")
    out = in_child("""
        confine.landlock(read=[sys.base_prefix, sys.prefix, "/usr", "/lib", "/lib64", sys.argv[2]], write=[sys.argv[4]])
        def can(f):
            try:
                f(); return True
            except PermissionError:
                return False
        out["allowed"] = can(lambda: open(os.path.join(sys.argv[2], "a.txt")).read())
        out["secret"] = can(lambda: open(os.path.join(sys.argv[3], "s.txt")).read())
        out["secret_dir"] = can(lambda: os.listdir(sys.argv[3]))
        out["write_scratch"] = can(lambda: open(os.path.join(sys.argv[4], "w"), "w").write("w"))
        out["write_allowed"] = can(lambda: open(os.path.join(sys.argv[2], "w"), "w").write("w"))
        out["child_reads_secret"] = subprocess_ok = __import__("subprocess").run(
            ["cat", os.path.join(sys.argv[3], "s.txt")], capture_output=True).returncode == 0
    """, allowed, secret, scratch)
    assert out == {"allowed": True, "secret": False, "secret_dir": False, "write_scratch": True,
                   "write_allowed": False, "child_reads_secret": False}


@needs_landlock
def test_no_tcp_and_no_socket_but_af_unix():
    out = in_child("""
        confine.landlock(read=[sys.base_prefix, sys.prefix, "/usr", "/lib", "/lib64"])
        confine.seccomp()
        def can(family, kind):
            try:
                socket.socket(family, kind).close(); return True
            except OSError:
                return False
        out = {"inet_tcp": can(socket.AF_INET, socket.SOCK_STREAM), "inet_udp": can(socket.AF_INET, socket.SOCK_DGRAM),
               "inet6": can(socket.AF_INET6, socket.SOCK_DGRAM), "unix": can(socket.AF_UNIX, socket.SOCK_STREAM)}
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        out["ptrace"] = libc.ptrace(16, os.getppid(), 0, 0) == 0      # PTRACE_ATTACH
    """)
    assert out == {"inet_tcp": False, "inet_udp": False, "inet6": False, "unix": True, "ptrace": False}


def test_landlock_abi_is_a_number():
    assert confine.landlock_abi() >= 0


def test_levels_are_ordered():
    assert [rank(level) for level in LEVELS] == [0, 1, 2, 3]
    assert meets("user-namespaces+landlock", "namespaces+landlock")
    assert meets("landlock", "processes") and not meets("landlock", "namespaces")
    assert not meets("processes", "landlock")


def test_the_namespace_root_binds_only_the_allowed_paths_outside_hidden_ones(tmp_path):
    from grader.sandbox import rootfs

    (tmp_path / "kata" / "solutions").mkdir(parents=True)
    (tmp_path / "kata" / "venv" / "lib").mkdir(parents=True)
    (tmp_path / "kata" / "solutions" / "inner").mkdir()
    got = rootfs.allowed([str(tmp_path / "kata" / "venv" / "lib"), str(tmp_path / "kata" / "venv"),
                          str(tmp_path / "kata" / "solutions" / "inner"), str(tmp_path / "missing"), ""],
                         hidden=[str(tmp_path / "kata" / "solutions")])
    assert got == [str(tmp_path / "kata" / "venv")]
