"""BENCHMARK ONLY, UNSAFE: a transport that serves the graded module from a thread of this process.

Selected by the pytest plugin's ``--kata-in-process`` (``grader.instructor.bench``'s unsandboxed
baseline).  The suites talk to it exactly as to a real sandbox (same ``Sandbox`` class, same wire
protocol, same handles and errors): only the transport differs.  There is no child process, no
namespaces, no resource limits and no way to stop a runaway call: the student's code runs with the
grader's privileges and can change its verdict.  It exists only to measure what isolation costs.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

from grader.sandbox.controller import Sandbox


class _ThreadProc:
    """Stands in for ``subprocess.Popen`` when the worker is a thread."""

    pid = None

    def __init__(self, thread: threading.Thread):
        self.thread = thread

    def wait(self, timeout=None):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise subprocess.TimeoutExpired("in-process sandbox", timeout)
        return 0

    def poll(self):
        return None if self.thread.is_alive() else 0


class _NoDrain:
    total = 0
    kept = b""

    def settle(self, timeout=0.0) -> int:
        return 0

    def text(self) -> str:
        return ""

    def join(self, timeout=None):
        pass


def import_by_path(folder: Path, name: str, prefix: str):
    """Import ``folder/name.py`` under a private module name (so it never shadows the
    reference imported by the ``reference`` fixture); siblings resolve from ``folder``."""
    mod_name = f"{prefix}{name}"
    spec = importlib.util.spec_from_file_location(mod_name, Path(folder) / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {Path(folder) / (name + '.py')}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        try:
            sys.path.remove(str(folder))
        except ValueError:
            pass
    return module


def _serve(cfg: dict) -> None:
    """The worker's protocol (``grader.sandbox.worker.run``) without its isolation:
    booted, wait for "import", import the copied module, serve calls."""
    from grader.sandbox import wire, worker

    server = worker.Server(cfg, wire)
    try:
        for mod in cfg.get("preload", []):
            try:
                importlib.import_module(mod)
            except ImportError:
                pass
        server.send({"booted": True})
        try:
            request, _ = wire.FrameReader(server.read_exact).read()
        except EOFError:
            return
        if request.get("op") != "import":
            return
        worker.seed_everything(0)
        try:
            module = import_by_path(Path(cfg["student_dir"]), cfg["module"], "_kata_in_process_")
        except BaseException as exc:  # noqa: BLE001 - reported like the sandbox does
            server.send({"ready": False, **server.error(exc)})
            return
        server.module = module
        worker.seed_everything(0)
        server.send({"ready": True})
        server.serve()
    except (OSError, EOFError):
        pass                      # the grader closed the pipes
    finally:
        for fd in (cfg["rfd"], cfg["wfd"]):
            try:
                os.close(fd)
            except OSError:
                pass


class InThread:
    """The transport: the same two methods as ``controller.ChildProcess``, over a thread."""

    mode = "in-process"

    def open(self, cmd, cfg, env, cwd):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        cfg = {**cfg, "rfd": req_r, "wfd": rep_w}
        thread = threading.Thread(target=_serve, args=(cfg,), name=f"kata-in-process-{cfg['module']}",
                                  daemon=True)
        thread.start()
        return _ThreadProc(thread), req_w, rep_r, _NoDrain()

    def close(self, proc, wfd, rfd, drain):
        for fd in (wfd, rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            proc.wait(timeout=2)     # a thread cannot be killed; a hung one is left behind
        except subprocess.TimeoutExpired:
            pass


def InProcessSandbox(target, module, modules, **settings) -> Sandbox:  # noqa: N802 - reads as a class
    """A ``Sandbox`` whose worker is a thread of this process (benchmark only, unsafe)."""
    return Sandbox(target, module, modules, transport=InThread(), **settings)
