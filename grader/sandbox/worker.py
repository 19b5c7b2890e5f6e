"""The sandboxed side: imports the student's module and runs calls on it.

Started by ``grader.sandbox`` as ``python -I -B worker.py CONFIG_JSON``.  Nothing
here is trusted once the student's module has been imported: whatever this
process sends back is only data, decoded strictly by the parent.

Stage "boot" runs with the namespace's privileges: it builds a new, read-only root holding
only what the child may read, a private scratch and a private ``/dev`` (``rootfs.py``), chroots
into it, then re-executes itself through ``setpriv`` with every capability dropped.
Stage "run" sets resource limits, imports the student's module and serves
requests until told to exit.
"""
import importlib.util
import json
import os
import random
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(filename, path=None):
    """A module of this folder, loaded by path (the grader's package is not importable here)."""
    spec = importlib.util.spec_from_file_location("_kata_" + filename[:-3], path or os.path.join(HERE, filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boot(cfg):
    """Namespace set-up; only reached when running inside fresh namespaces: a new root holding
    only what the child may read (``rootfs.py``), then re-executes itself through ``setpriv`` with
    every capability dropped."""
    rootfs = _load("rootfs.py")
    read = [*allowed_reads(cfg), HERE]
    rootfs.build(cfg["root"], read, cfg["work"], cfg["scratch_mb"], hidden=cfg["hide"])
    cfg["stage"] = "run"
    os.execvp("setpriv", [*rootfs.DROP_CAPABILITIES, sys.executable, "-I", "-B", os.path.abspath(__file__),
                          json.dumps(cfg)])


SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev")


def allowed_reads(cfg):
    """What the child may read: the system's directories, the Python installation and its
    ``sys.path``, the copied module and the data the suites hand over."""
    return [*SYSTEM_READ, sys.prefix, sys.base_prefix, sys.exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable)), *[p for p in sys.path if p],
            cfg["student_dir"], *cfg.get("read", [])]


def confine(cfg):
    """Landlock and seccomp (``confine.py``, loaded by path) before the student's module exists
    in this process: read beneath ``allowed_reads``, write beneath the scratch; never beneath a
    hidden path (the solutions, the suites, the submission's own folder), even where one lies
    inside an allowed one."""
    module = _load("confine.py", cfg["confine"])
    hidden = [os.path.realpath(p) for p in cfg.get("hide", [])]

    def clear(path):
        real = os.path.realpath(path)
        return not any(h == real or h.startswith(real.rstrip("/") + "/") or real.startswith(h.rstrip("/") + "/")
                       for h in hidden)

    write = [cfg["work"], "/dev/null"]
    if cfg.get("private_shm"):
        write.append("/dev/shm")
    module.landlock(read=[p for p in dict.fromkeys(allowed_reads(cfg)) if clear(p)], write=write)
    module.seccomp()


def set_limits(cfg):
    import resource

    def limit(name, value):
        what = getattr(resource, name, None)
        if what is None or value is None:
            return
        try:
            soft, hard = resource.getrlimit(what)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError):
            pass

    if cfg.get("memory_mb"):
        limit("RLIMIT_AS", cfg["memory_mb"] << 20)
    limit("RLIMIT_FSIZE", cfg.get("file_mb", 64) << 20)
    limit("RLIMIT_CORE", 0)
    limit("RLIMIT_NOFILE", 1024)
    limit("RLIMIT_NPROC", cfg.get("nproc", 4096))
    if cfg.get("cpu_s"):
        limit("RLIMIT_CPU", cfg["cpu_s"])


class Server:
    def __init__(self, cfg, wire):
        self.cfg = cfg
        self.wire = wire
        self.objects = {}          # handle id -> object
        self.ids = {}              # id(object) -> handle id
        self.next_id = 1
        self.rfd = cfg["rfd"]
        self.wfd = cfg["wfd"]
        self.student_dir = cfg["student_dir"]
        self.module = None
        probes = type(sys)("_kata_probe")
        probes.note = self.note
        sys.modules["_kata_probe"] = probes

    def note(self, tag, record):
        """Send a probe's observation (plain data) to the grader at once, as a frame of its own
        ahead of the call's reply: nothing of it stays here for the submission to rewrite."""
        self.send({"$event": str(tag), "record": record})

    # -- plumbing
    def read_exact(self, n):
        chunks, got = [], 0
        while got < n:
            chunk = os.read(self.rfd, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def send(self, header, blobs=()):
        self.wire.write_frame(self.wfd, header, blobs)

    def handle_for(self, obj):
        key = id(obj)
        hid = self.ids.get(key)
        if hid is None or self.objects.get(hid) is not obj:
            hid = self.next_id
            self.next_id += 1
            self.objects[hid] = obj
            self.ids[key] = hid
        t = type(obj)
        return {"$obj": hid, "type": f"{t.__module__}.{t.__qualname__}"}

    def resolve(self, hid, _type="", _text=""):
        if hid not in self.objects:
            raise LookupError(f"sandbox object #{hid} is gone")
        return self.objects[hid]

    def encode(self, value):
        enc = self.wire.Encoder(handle_for=self.handle_for)
        tree = enc.encode(value)
        return tree, enc.blobs

    def error(self, exc):
        names = []
        for klass in type(exc).__mro__:
            names.append(getattr(klass, "__name__", "?"))
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001 - a student __str__ may raise anything
            message = "<the exception's message could not be read>"
        frames = []
        try:
            for fr in traceback.extract_tb(exc.__traceback__):
                if fr.filename.startswith(self.student_dir):
                    frames.append([os.path.basename(fr.filename), fr.lineno, fr.name, fr.line or ""])
        except BaseException:  # noqa: BLE001
            pass
        return {"ok": False, "error": {"mro": names[:20], "message": message[:4000],
                                       "frames": frames[-20:]}}

    # -- requests
    def target(self, req):
        kind = req.get("kind")
        if kind == "module":
            return getattr(self.module, req["name"])
        if kind == "object":
            obj = self.resolve(req["id"])
            return getattr(obj, req["name"]) if req.get("name") else obj
        if kind == "path":
            parts = req["name"].split(".")
            for i in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
                return obj
            raise ImportError(f"cannot resolve {req['name']}")
        raise ValueError(f"bad target kind {kind!r}")

    @staticmethod
    def argument_names(fn, nargs):
        """The parameter names of ``fn``'s first ``nargs`` positional parameters (where known)."""
        try:
            import inspect

            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            return [p.name for p in params[:nargs]]
        except BaseException:  # noqa: BLE001 - student objects may have odd signatures
            return []

    def do_call(self, req, blobs):
        """Run one call; reply with its result and with the arguments as they are after it (the
        grader compares them with what it sent: a call that changed one in place is told apart
        there, from raw data, not here where the submission could forge a fingerprint)."""
        dec = self.wire.Decoder(blobs, resolve_handle=self.resolve)
        args = dec.decode(req.get("args", []))
        kwargs = dec.decode(req.get("kwargs", {"$d": {}}))
        fn = self.target(req["target"])
        result = fn(*args, **kwargs)
        tree, out_blobs = self.encode(result)
        enc = self.wire.Encoder(handle_for=self.handle_for)
        enc.blobs = out_blobs
        after = enc.encode([args, kwargs])
        return {"ok": True, "value": tree, "after": after,
                "names": self.argument_names(fn, len(args))}, out_blobs

    def serve(self):
        reader = self.wire.FrameReader(self.read_exact)
        while True:
            try:
                req, blobs = reader.read()
            except EOFError:
                return
            op = req.get("op")
            if op == "exit":
                self.send({"ok": True, "value": None})
                return
            out_blobs = []
            try:
                if op == "call":
                    reply, out_blobs = self.do_call(req, blobs)
                elif op == "getattr":
                    tree, out_blobs = self.encode(self.target(req["target"]))
                    reply = {"ok": True, "value": tree}
                elif op == "setattr":
                    dec = self.wire.Decoder(blobs, resolve_handle=self.resolve)
                    obj = self.resolve(req["id"])
                    setattr(obj, req["name"], dec.decode(req["value"]))
                    reply = {"ok": True, "value": None}
                elif op == "release":
                    for hid in req.get("ids", []):
                        obj = self.objects.pop(hid, None)
                        if obj is not None:
                            self.ids.pop(id(obj), None)
                    reply = {"ok": True, "value": None}
                elif op == "seed":
                    seed_everything(int(req["seed"]))
                    reply = {"ok": True, "value": None}
                else:
                    reply = {"ok": False, "error": {"mro": ["ValueError"], "message": f"bad op {op!r}",
                                                    "frames": []}}
            except BaseException as exc:  # noqa: BLE001 - student code may raise anything
                reply, out_blobs = self.error(exc), []
            try:
                self.send(reply, out_blobs)
            except BaseException as exc:  # noqa: BLE001 - e.g. a value too odd to encode
                self.send(self.error(exc))


def seed_everything(seed):
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed % (1 << 32))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def run(cfg):
    if cfg.get("drop_uid") is not None and os.geteuid() == 0:
        uid = int(cfg["drop_uid"])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    set_limits(cfg)
    os.chdir(cfg["work"])
    wire = _load("wire.py")
    server = Server(cfg, wire)
    if cfg.get("threads"):
        os.environ["OMP_NUM_THREADS"] = str(cfg["threads"])
    for name in cfg.get("preload", []):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    torch = sys.modules.get("torch")
    if torch is not None and cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    # booted: torch & co. are imported; wait until the grader has copied the module in
    server.send({"booted": True})
    reader = wire.FrameReader(server.read_exact)
    try:
        request, _ = reader.read()
    except EOFError:
        return
    if request.get("op") != "import":
        return
    if cfg.get("confine"):
        try:
            confine(cfg)
        except OSError as exc:             # probed beforehand: a failure here is the machine's
            server.send({"ready": False, "error": {"mro": ["IsolationError", "Exception"],
                                                   "message": f"the sandbox could not confine itself: {exc}",
                                                   "frames": []}})
            return
    sys.path.insert(0, cfg["student_dir"])
    seed_everything(0)
    try:
        module = importlib.import_module(cfg["module"])
    except BaseException as exc:  # noqa: BLE001 - a syntax error, an import-time crash
        reply = server.error(exc)
        if isinstance(exc, SyntaxError):
            reply["error"]["frames"].append([os.path.basename(exc.filename or "?"), exc.lineno or 0,
                                             "<module>", (exc.text or "").rstrip()])
        server.send({"ready": False, **reply})
        return
    server.module = module
    seed_everything(0)
    server.send({"ready": True})
    server.serve()


def main():
    cfg = json.loads(sys.argv[1])
    if cfg.get("stage") == "boot":
        boot(cfg)
    else:
        run(cfg)


if __name__ == "__main__":
    main()
