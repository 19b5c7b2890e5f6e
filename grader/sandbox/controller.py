"""Runs one exercise's student module in a child process the grader can always kill.

Isolation, strongest first (``isolation_mode()`` picks what the machine allows):

* ``namespaces`` (root) / ``user-namespaces`` (ordinary user): ``unshare`` gives the
  child its own PID, mount and network namespaces.  Its root is a new, read-only one
  (``rootfs.py``) holding only the system's directories, the Python installation, the
  copied module and the suites' data (the solutions, the suites and other submissions
  are not there), a private scratch tmpfs and a private ``/dev``; no network; it drops
  every capability before student code runs.  When the child's first process dies the
  kernel kills every process it left behind.
* ``processes``: no namespaces here; the child gets its own session and process
  group, which is killed whole.  Daemons that call ``setsid`` can escape this.

``+landlock`` (``namespaces+landlock``, ``user-namespaces+landlock``, or ``landlock`` alone where
there are no namespaces): before the student's module is imported the child confines itself with
Linux Landlock and a seccomp filter (``grader.sandbox.confine``), which need no privilege: it
reads only the Python installation, the system's libraries and its copied module, writes only its
scratch, opens no socket but AF_UNIX and traces no process.  ``probe_landlock`` tries both layers
once per run in a throw-away child; where a step fails the level falls back to the one below and
``isolation_notes()`` says which rule was missing.  ``KATA_ISOLATION`` caps the level
(``processes``: neither layer; ``landlock``: no namespaces); ``--require-isolation`` refuses to
grade below a level (``meets``).

In every mode the child sets its own resource limits before the student's module is imported
(``worker.set_limits``): address space ``RLIMIT_AS`` = the manifest's ``memory_mb`` (not on CUDA,
whose driver reserves more), file size ``RLIMIT_FSIZE`` = ``settings.FILE_MB``, CPU seconds
``RLIMIT_CPU`` = the exercise's budget + the start timeout + ``settings.CPU_SLACK_S`` (a child killed
by SIGXCPU is reported as a timeout), no core files, 1024 open files, and ``RLIMIT_NPROC`` 256 above
the user's current processes; none is raised above a hard limit already lower.  Here: a wall-clock
deadline on every call and on the exercise's budget, stdout/stderr drained and capped, and only
the manifest's module files copied in as regular files.
"""
from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader import settings
from grader.sandbox import rootfs, wire

WORKER = Path(__file__).with_name("worker.py")
OUTPUT_KEEP = settings.OUTPUT_KEEP_BYTES
MAX_EVENTS = 100_000                  # probe observations kept per tag


class SandboxDied(Exception):
    """The child is gone (crash, timeout, memory); the exercise cannot go on."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind          # "timeout", "crash", "memory", "protocol", "start"
        self.detail = detail


class RemoteError(Exception):
    """An exception raised by student code, re-raised here as plain data."""

    def __init__(self, mro, message, frames):
        self.mro = list(mro)
        self.remote_message = message
        self.frames = frames
        # str(exc) is the student's own message only (what ``pytest.raises(match=...)`` searches): the
        # source line that raised is in ``describe()``, so a pattern cannot match the student's code
        super().__init__(f"{self.type_name}: {message}")

    @property
    def type_name(self):
        return self.mro[0] if self.mro else "Exception"

    def describe(self) -> str:
        where = ""
        if self.frames:
            fname, line, func, text = self.frames[-1]
            where = f" (at {fname}:{line} in {func}: {text.strip()[:120]})"
        return f"{self.type_name}: {self.remote_message[:1000]}{where}"


_EXC_CLASSES: dict = {}


def safe_text(text, limit: int = 20_000) -> str:
    """A string from the child made printable anywhere: lone surrogates escaped, bounded (the
    report's ``clean`` adds control characters on top)."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + " ..."


def make_remote_error(mro, message, frames) -> RemoteError:
    """A ``RemoteError`` that is also an instance of the first built-in exception
    in the student's exception's MRO, so ``pytest.raises(ValueError)`` works.
    Only ``Exception`` subclasses are mirrored: a student's ``KeyboardInterrupt``
    or ``SystemExit`` must never stop the grader.  Every string is ``safe_text``."""
    import builtins

    mro = [safe_text(name, 200) for name in mro][:64]
    message = safe_text(message)
    frames = [[safe_text(part, 500) if isinstance(part, str) else part for part in frame] for frame in frames][-64:]

    base = None
    for name in mro:
        klass = getattr(builtins, str(name), None)
        if isinstance(klass, type) and issubclass(klass, Exception) and klass is not Exception:
            base = klass
            break
    if base is None:
        return RemoteError(mro, message, frames)
    klass = _EXC_CLASSES.get(base)
    if klass is None:
        klass = type(f"Student{base.__name__}", (RemoteError, base), {})
        _EXC_CLASSES[base] = klass
    return klass(mro, message, frames)


LEVELS = ("processes", "landlock", "namespaces", "namespaces+landlock")   # weakest first
FORCED = ("processes", "landlock", "namespaces", "user-namespaces", "namespaces+landlock",
          "user-namespaces+landlock")
_NOTES: list[str] = []


def uses_namespaces(mode: str) -> bool:
    return mode.split("+")[0] in ("namespaces", "user-namespaces")


def uses_landlock(mode: str) -> bool:
    return mode.endswith("landlock")


def rank(mode: str) -> int:
    """A level's place in ``LEVELS`` (user namespaces count as namespaces)."""
    return LEVELS.index(mode.replace("user-namespaces", "namespaces"))


def meets(mode: str, required: str) -> bool:
    return rank(mode) >= rank(required)


def isolation_notes() -> list[str]:
    """Why the level is lower than this machine might give (a layer that failed its probe)."""
    isolation_mode()
    return list(_NOTES)


class IsolationError(ValueError):
    """KATA_ISOLATION or --require-isolation names no level."""


def forced_level() -> str | None:
    value = os.environ.get("KATA_ISOLATION", "").strip()
    if not value:
        return None
    if value not in FORCED:
        raise IsolationError(f"KATA_ISOLATION={value!r} is not a level: use one of {', '.join(FORCED)}")
    return value


CONFINE = Path(__file__).with_name("confine.py")
PROBE = r"""
import importlib.util, json, socket, sys
spec = importlib.util.spec_from_file_location("_kata_confine", sys.argv[1])
confine = importlib.util.module_from_spec(spec); spec.loader.exec_module(confine)
def answer(**fields):
    print(json.dumps(fields))
    sys.exit(0)
try:
    applied = confine.landlock(read=[sys.base_prefix, sys.prefix, "/usr", "/lib", "/lib64"], write=[sys.argv[3]])
    confine.seccomp()
except OSError as exc:
    answer(ok=False, why=str(exc))
try:
    open(sys.argv[2]).read()
    answer(ok=False, why="a file outside the rules stayed readable")
except PermissionError:
    pass
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answer(ok=False, why="a UDP socket could still be created")
except OSError:
    pass
answer(ok=True, abi=applied["abi"], net=applied["net"])
"""


@functools.lru_cache(maxsize=None)
def probe_landlock() -> tuple[bool, str]:
    """(whether Landlock and seccomp both hold in a throw-away child, why not)."""
    if sys.platform != "linux":
        return False, "Landlock is Linux's"
    with tempfile.TemporaryDirectory(prefix="kata-probe-") as tmp:
        secret = Path(tmp) / "secret"
        secret.write_text("x")
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        try:
            r = subprocess.run([sys.executable, "-I", "-c", PROBE, str(CONFINE), str(secret), str(scratch)],
                               capture_output=True, text=True, timeout=30, cwd="/")
            answer = json.loads(r.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return False, "the probe did not run"
    if not answer.get("ok"):
        return False, str(answer.get("why", "the probe failed"))
    if not answer.get("net"):
        return False, f"Landlock ABI {answer.get('abi')} cannot deny TCP (ABI 4 or newer can)"
    return True, ""


def _with_landlock(base: str, allowed: bool) -> str:
    if not allowed:
        return base
    ok, why = probe_landlock()
    if not ok:
        _NOTES.append(f"landlock: {why}")
        return base
    return "landlock" if base == "processes" else f"{base}+landlock"


@functools.lru_cache(maxsize=None)
def isolation_mode() -> str:
    """The strongest level this machine gives, capped by KATA_ISOLATION; probed once per run."""
    forced = forced_level()
    if forced == "processes":
        return "processes"
    if forced == "landlock":
        return _with_landlock("processes", True)
    landlock_ok = forced is None or uses_landlock(forced)
    base = _namespace_mode(only=forced.split("+")[0] if forced else None)
    return _with_landlock(base, landlock_ok)


ROOTFS = Path(rootfs.__file__)
# inside fresh namespaces: build a root the way the worker does, chroot into it, drop every
# capability and start a process there
ROOTFS_PROBE = r"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("rootfs", sys.argv[1])
rootfs = importlib.util.module_from_spec(spec); spec.loader.exec_module(rootfs)
rootfs.build(sys.argv[2], ["/usr", "/lib", "/lib64", "/bin", "/etc", sys.prefix, sys.base_prefix], sys.argv[3], 1)
os.execvp("setpriv", [*rootfs.DROP_CAPABILITIES, "sh", "-c",
                      "test -w " + sys.argv[3] + " && test ! -w / && test -c /dev/null"])
"""


def _namespace_mode(only=None) -> str:
    if sys.platform != "linux" or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return "processes"
    for mode in ("namespaces", "user-namespaces"):
        if (mode == "namespaces" and os.geteuid() != 0) or (only and only != mode):
            continue
        with tempfile.TemporaryDirectory(prefix="kata-probe-") as tmp:
            os.chmod(tmp, 0o755)
            os.mkdir(Path(tmp) / "root")
            try:
                r = subprocess.run([*unshare_prefix(mode), sys.executable, "-I", "-c", ROOTFS_PROBE, str(ROOTFS),
                                    str(Path(tmp) / "root"), str(Path(tmp) / "work")],
                                   capture_output=True, text=True, timeout=20, cwd="/")
            except (OSError, subprocess.SubprocessError):
                _NOTES.append(f"{mode}: the probe did not finish in 20 s")
                continue
        if r.returncode == 0:
            return mode
        why = (r.stderr.strip().splitlines() or ["the probe failed"])[-1][:200]
        _NOTES.append(f"{mode}: {why}")
    return "processes"


NOBODY = 65534


@functools.lru_cache(maxsize=None)
def can_drop_to_nobody() -> bool:
    """In ``processes`` mode as root (a Docker grader such as Gradescope's), the child runs
    as uid/gid 65534 when that user can start Python and import the grader's libraries."""
    if os.name != "posix" or os.geteuid() != 0:
        return False

    def become_nobody():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    try:
        r = subprocess.run([sys.executable, "-I", "-c",
                            f"import resource, hashlib, numpy; open({str(WORKER)!r}).read()"],
                           capture_output=True, timeout=60, cwd="/", preexec_fn=become_nobody)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def unshare_prefix(mode: str) -> list[str]:
    """``unshare``'s command line for a level that uses namespaces (``user-namespaces+landlock``
    included: Landlock is the child's own business)."""
    base = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--net"]
    if mode.split("+")[0] == "user-namespaces":
        return base[:1] + ["--user", "--map-root-user"] + base[1:]
    return base


class _Drain(threading.Thread):
    """Reads one of the child's output pipes so it never blocks; keeps the first 16 KiB, counts all.

    ``companion``: another drain (the child's stderr) closed and joined together with this one."""

    def __init__(self, fd, companion=None):
        super().__init__(daemon=True)
        self.fd = fd
        self.kept = bytearray()
        self.total = 0
        self.companion = companion

    def settle(self, timeout: float = 0.05) -> int:
        """Wait (briefly) until what the child has written so far is read; the bytes kept."""
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            try:
                readable, _, _ = select.select([self.fd], [], [], 0)
            except (OSError, ValueError):
                break
            if not readable:
                break
            time.sleep(0.001)
        return len(self.kept)

    def join(self, timeout=None):
        super().join(timeout)
        if self.companion is not None:
            self.companion.join(timeout)

    def run(self):
        try:
            while True:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    break
                self.total += len(chunk)
                if len(self.kept) < OUTPUT_KEEP:
                    self.kept += chunk[: OUTPUT_KEEP - len(self.kept)]
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def text(self) -> str:
        return bytes(self.kept).decode("utf-8", "replace")


_LIVE: set[int] = set()              # the children serving a sandbox now (never swept)
_LIVE_LOCK = threading.Lock()
PR_SET_CHILD_SUBREAPER = 36


@functools.lru_cache(maxsize=None)
def become_subreaper() -> bool:
    """Make this process the subreaper of everything its sandboxes start (Linux 3.4+): a daemon
    that calls setsid and whose parent exits is re-parented here instead of to init, so
    ``reap_orphans`` can find it.  Needs no privilege."""
    if sys.platform != "linux":
        return False
    from grader.sandbox import confine

    try:
        confine.prctl(PR_SET_CHILD_SUBREAPER, 1, what="prctl(PR_SET_CHILD_SUBREAPER)")
        return True
    except (OSError, AttributeError):
        return False


def _strays() -> list[tuple[int, bool]]:
    """(pid, is a zombie) of every process re-parented to this subreaper from another session:
    what a sandbox (each starts a session of its own) left behind.  The grader's own helpers
    (``subprocess.run`` of a probe) share its session and are never touched."""
    me, mine = os.getpid(), os.getsid(0)
    found = []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state, ppid, _pgrp, session = f.read().rsplit(b")", 1)[1].split()[:4]
        except (OSError, ValueError, IndexError):
            continue
        if int(ppid) == me and int(session) != mine and pid not in _LIVE:
            found.append((pid, state == b"Z"))
    return found


def reap_orphans(rounds: int = 20) -> int:
    """Kill every process a closed sandbox left behind (setsid daemons included), and their
    children as they are re-parented in turn, and reap them all, zombies too (an unreaped zombie
    still counts against RLIMIT_NPROC); the number killed."""
    if not become_subreaper():
        return 0
    killed = 0
    for _ in range(rounds):
        with _LIVE_LOCK:
            strays = _strays()
            for pid, zombie in strays:
                if not zombie:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed += 1
                    except (ProcessLookupError, PermissionError):
                        pass
        if not strays:
            break
        deadline = time.monotonic() + 1.0
        for pid, _ in strays:
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.005)
    return killed


class ChildProcess:
    """How a Sandbox reaches its worker: a child process (the only transport used for grading).

    ``open`` starts ``cmd`` with the request/reply pipes passed as the config's ``rfd``/``wfd``
    and its output drained; ``close`` kills its whole process group and closes the pipes.
    ``grader.sandbox.inprocess.InThread`` is the benchmark's stand-in with the same two methods."""

    mode = None     # the machine's isolation mode

    def open(self, cmd, cfg, env, cwd):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()          # the student's prints
        err_r, err_w = os.pipe()          # tracebacks, library warnings: counted apart, never shown
        cfg["rfd"], cfg["wfd"] = req_r, rep_w
        cmd = [*cmd[:-1], json.dumps(cfg)]
        become_subreaper()
        with _LIVE_LOCK:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=(req_r, rep_w),
                env=env, cwd=cwd, start_new_session=True, close_fds=True)
            _LIVE.add(proc.pid)
        for fd in (req_r, rep_w, out_w, err_w):
            os.close(fd)
        errors = _Drain(err_r)
        drain = _Drain(out_r, companion=errors)
        errors.start()
        drain.start()
        return proc, req_w, rep_r, drain

    def close(self, proc, wfd, rfd, drain):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
        reap_orphans()
        for fd in (wfd, rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        drain.join(timeout=2)


class Sandbox:
    """One child process serving one exercise's module."""

    def __init__(self, target: Path, module: str, modules, *, hide=(), device="cpu",
                 call_timeout=settings.CALL_TIMEOUT_S, start_timeout=settings.START_TIMEOUT_S,
                 memory_mb=settings.MEMORY_MB, preload=(), threads=None, budget=settings.BUDGET_S,
                 transport=None, read=()):
        self.target = Path(target)
        self.module = module
        self.modules = list(modules)
        self.hide = [str(Path(p).resolve()) for p in hide]
        self.read = [str(Path(p).resolve()) for p in read]     # beside Python's own files, under Landlock
        self.device = device
        self.call_timeout = float(call_timeout)
        self.start_timeout = float(start_timeout)
        self.memory_mb = memory_mb
        self.preload = list(preload)
        self.threads = threads or 1
        self.budget = float(budget)
        self.proc = None
        self.box = None
        self.imported = False
        self.booted = False
        self.dead: SandboxDied | None = None
        self.import_error: RemoteError | None = None
        self.transport = transport or ChildProcess()
        self.mode = getattr(self.transport, "mode", None) or isolation_mode()
        self.calls = 0
        self.busy_s = 0.0
        self.events: dict[str, list] = {}     # probe tag -> observations, as the child sent them

    # -- lifecycle
    def _prepare_box(self) -> Path:
        box = Path(tempfile.mkdtemp(prefix="kata-box-"))
        os.chmod(box, 0o755)
        (box / "student").mkdir(mode=0o755)
        (box / "work").mkdir(mode=0o777)
        (box / "root").mkdir(mode=0o755)         # the namespace sandbox's new root (rootfs.py)
        return box

    def _fill_box(self) -> None:
        """Copy the manifest's module files from the target, as regular files only."""
        student = self.box / "student"
        for name in self.modules:
            data = settings.read_module_file(self.target / f"{name}.py")
            if data is None:
                continue  # missing, a link, a device, too large: not copied
            (student / f"{name}.py").write_bytes(data)
            os.chmod(student / f"{name}.py", 0o644)

    def start(self):
        """Spawn (unless prestarted), copy the module in, and import it."""
        if self.imported or self.dead is not None:
            return
        self.spawn()
        self._fill_box()
        started = time.monotonic()
        try:
            wire.write_frame(self.wfd, {"op": "import"})
        except OSError:
            self._died_unexpectedly("starting and importing the module")
        header, _ = self._read_reply(self.start_timeout, "starting and importing the module")
        self.busy_s += time.monotonic() - started
        self.record_import(header)

    def record_import(self, header: dict) -> None:
        """Note the child's answer to "import the module": ready, or the import's error."""
        self.imported = True
        if not header.get("ready"):
            err = header.get("error") or {}
            self.import_error = make_remote_error(err.get("mro", ["ImportError"]),
                                                  str(err.get("message", "")), err.get("frames", []))

    def spawn(self):
        """Start the child and wait until it has imported its libraries."""
        self.launch()
        if not self.booted and self.dead is None:
            header, _ = self._read_reply(self.start_timeout, "starting the sandbox")
            if not header.get("booted"):
                self._die("start", "did not start properly")
            self.booted = True

    def launch(self):
        """Start the child without waiting for it (it imports its libraries meanwhile);
        the student's module is copied in and imported later, by ``start``."""
        if self.proc is not None or self.dead is not None:
            return
        self.box = self._prepare_box()
        cfg = {
            "stage": "boot" if uses_namespaces(self.mode) else "run",
            "module": self.module,
            "origin": str(self.target),       # informational: which submission this child serves
            "student_dir": str(self.box / "student"),
            "work": str(self.box / "work"),
            "hide": self.hide,
            "root": str(self.box / "root"),
            "read": self.read,
            "scratch_mb": settings.SCRATCH_MB,
            "memory_mb": None if self.device.startswith("cuda") else self.memory_mb,
            "file_mb": settings.FILE_MB,
            # CPU seconds: a spinning child dies even if the wall-clock deadline were missed
            "cpu_s": int(self.budget + self.start_timeout + settings.CPU_SLACK_S),
            "preload": self.preload,
            "threads": self.threads,
        }
        if uses_landlock(self.mode):
            cfg["confine"] = str(CONFINE)
            cfg["private_shm"] = uses_namespaces(self.mode)     # the namespace mounts its own /dev/shm
        if not uses_namespaces(self.mode) and can_drop_to_nobody():
            cfg["drop_uid"] = NOBODY
        cfg["nproc"] = _processes_of_this_user(cfg.get("drop_uid")) + 256
        cmd = [sys.executable, "-I", "-B", str(WORKER), json.dumps(cfg)]
        if uses_namespaces(self.mode):
            cmd = [*unshare_prefix(self.mode), "--", *cmd]
        elif os.name == "posix" and os.geteuid() == 0 and "drop_uid" not in cfg and shutil.which("setpriv"):
            # root that cannot become nobody: at least drop every capability (RLIMIT_NPROC then holds)
            cmd = [*rootfs.DROP_CAPABILITIES, *cmd]
        env = child_env(self.box / "work", self.device, self.threads)
        self.proc, self.wfd, self.rfd, self.drain = self.transport.open(cmd, cfg, env, str(self.box / "work"))

    def close(self):
        if self.proc is not None:
            if self.dead is None:
                try:
                    wire.write_frame(self.wfd, {"op": "exit"})
                    self._read_reply(2.0, "exiting")
                except (SandboxDied, OSError):
                    pass
            self._kill()
        if self.box is not None:
            shutil.rmtree(self.box, ignore_errors=True)
            self.box = None

    def _kill(self):
        if self.proc is not None:
            self.transport.close(self.proc, self.wfd, self.rfd, self.drain)

    def output(self) -> str:
        return self.drain.text() if self.proc is not None else ""

    # -- I/O with deadlines
    def _read_exact_until(self, deadline: float, what: str):
        def read_exact(n):
            chunks, got = [], 0
            while got < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._die("timeout", f"took longer than {self._limit_text(what)} while {what}")
                ready, _, _ = select.select([self.rfd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(self.rfd, min(n - got, 1 << 20))
                if not chunk:
                    self._died_unexpectedly(what)
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)
        return read_exact

    def _limit_text(self, what):
        if what.startswith("starting"):
            return f"{self.start_timeout:.0f} s"
        if self.budget - self.busy_s < self.call_timeout:
            return f"the exercise's remaining time budget (of {self.budget:.0f} s in all)"
        return f"{self.call_timeout:.0f} s"

    def _read_reply(self, timeout: float, what: str):
        """The next reply; probe observations sent ahead of it (``$event`` frames) are kept in
        ``events``."""
        reader = wire.FrameReader(self._read_exact_until(time.monotonic() + timeout, what))
        while True:
            try:
                header, blobs = reader.read()
            except wire.WireError as exc:
                self._die("protocol", f"sent something that is not a valid reply while {what} ({exc})")
            if "$event" not in header:
                return header, blobs
            records = self.events.setdefault(str(header["$event"])[:100], [])
            if len(records) < MAX_EVENTS:
                records.append(header.get("record"))

    def _died_unexpectedly(self, what):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            self._die("crash", f"closed its connection to the grader while {what}")
        if code < 0 or code > 128:
            sig = -code if code < 0 else code - 128
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            if sig == getattr(signal, "SIGXCPU", None):
                self._die("timeout", f"used up its CPU time limit ({name}) while {what}")
            kind = "memory" if sig == signal.SIGKILL else "crash"
            self._die(kind, f"was killed by {name} while {what}")
        self._die("crash", f"exited with status {code} while {what} (sys.exit / os._exit in student code?)")

    def _die(self, kind, detail):
        self.dead = SandboxDied(kind, f"The student process {detail}.")
        self._kill()
        raise SandboxDied(kind, self.dead.detail)

    # -- requests
    def request(self, header: dict, blobs=(), what: str = "running a call"):
        # fresh exception objects each time: re-raising one instance grows its traceback
        if self.dead is not None:
            raise SandboxDied(self.dead.kind, self.dead.detail)
        self.start()
        if self.import_error is not None:
            e = self.import_error
            raise make_remote_error(e.mro, e.remote_message, e.frames)
        started = time.monotonic()
        try:
            wire.write_frame(self.wfd, header, blobs)
        except OSError:
            self._died_unexpectedly(what)
        left = self.budget - self.busy_s
        if left <= 0:
            self._die("timeout", f"used up the exercise's time budget of {self.budget:.0f} s")
        timeout = min(self.call_timeout, left)
        reply, rblobs = self._read_reply(timeout, what)
        self.busy_s += time.monotonic() - started
        self.calls += 1
        return reply, rblobs


# Sandboxes launched ahead of time (the CLI launches the next exercise's while the current one
# is graded; watch mode launches the next one after each grading), taken by the `student` fixture.
PRESTARTED: dict = {}


def _key(target, module: str, settings: dict) -> tuple:
    return (str(Path(target).resolve()), module, json.dumps(settings, sort_keys=True, default=str))


def prelaunch(target, module: str, modules, settings: dict) -> None:
    """Launch a sandbox for ``module`` now; a later ``take_prestarted`` with the same
    target and settings gets it."""
    key = _key(target, module, settings)
    if key in PRESTARTED:
        return
    sb = Sandbox(target, module, modules, **settings)
    try:
        sb.launch()
    except Exception:  # noqa: BLE001 - the fixture will simply start its own
        sb.close()
        return
    PRESTARTED[key] = sb


def take_prestarted(target, module: str, settings: dict):
    """The sandbox launched ahead for exactly this target, module and settings, if alive."""
    sb = PRESTARTED.pop(_key(target, module, settings), None)
    if sb is None:
        return None
    if sb.dead is not None or sb.proc is None or sb.proc.poll() is not None:
        sb.close()
        return None
    return sb


def close_prestarted() -> None:
    for sb in list(PRESTARTED.values()):
        sb.close()
    PRESTARTED.clear()


def _processes_of_this_user(uid=None) -> int:
    """Processes and threads of this uid now: RLIMIT_NPROC counts them all, so the
    sandbox's limit is set this far above them (a fork bomb stops at +256)."""
    uid, count = (os.getuid() if uid is None else uid), 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
                except OSError:
                    pass
    except OSError:
        return 4096
    return count


def child_env(work: Path, device: str, threads: int) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(work / "hf"),
        "MPLCONFIGDIR": str(work / "mpl"),
        "MPLBACKEND": "Agg",
        "TRANSFORMERS_VERBOSITY": "error",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    if not device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
