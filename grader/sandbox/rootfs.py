"""A minimal, read-only root for the namespace sandbox, through mount(2) and chroot(2) by ctypes.

Loaded by ``worker.py`` by path in its "boot" stage, inside fresh mount, PID and network
namespaces and before any capability is dropped.  The child's new ``/`` is an empty tmpfs into
which only an allow-list is bind-mounted, read-only: the system's directories, the Python
installation and its ``sys.path``, the copied module, the data the suites hand over, and this
folder (the worker's own code).  Everything else (the kata's ``solutions/`` and ``tests/``,
hidden suites, results, other submissions, the rest of the host) is simply absent, the same
allow-list Landlock enforces (``worker.confine``), so namespaces alone hold as much as Landlock
alone.  Beside it:

* ``/dev`` is a private tmpfs holding only ``null``, ``zero``, ``full``, ``random``, ``urandom``
  (and NVIDIA's nodes where a GPU is used), the usual ``fd``/``std*`` links and a private
  ``shm``: nothing written there outlives the sandbox.
* the scratch is a tmpfs of its own, the only writable place;
* every mount is read-only, those the binds brought along included (``/etc/hosts`` in Docker).

Why not ``bubblewrap``: it does exactly this, but it is a system package that the grader's hosts
(and its CI) need not have and pip cannot install; the dozen mount calls are tested through the
adversarial self-tests at every level.
"""
from __future__ import annotations

import ctypes
import errno
import os

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
# statvfs's f_flag bits -> mount flags a bind's remount must keep (the kernel refuses to drop
# them in a user namespace)
_KEEP = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
         (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))

# every capability dropped, for good: the command line the sandbox's processes start under
DROP_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
DEVICES = ("null", "zero", "full", "random", "urandom")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}

_libc = None


def _mount(source, target, fstype, flags, data=None):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or fstype} on {target}: {os.strerror(err)}")


def _read_only(target):
    kept = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for st, ms in _KEEP:
        if kept & st:
            flags |= ms
    _mount(None, target, None, flags)


def _mounts_under(root):
    """Every mount point beneath ``root`` (``/proc/self/mountinfo``, octal escapes undone)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(point)
    return found


def _place(root, path):
    """The empty mount point for ``path`` inside ``root``: a folder, or a file for a file."""
    inside = root + path
    if os.path.isdir(path):
        os.makedirs(inside, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        open(inside, "a").close()
    return inside


def _under(p, q):
    return p == q or p.startswith(q.rstrip("/") + "/")


def allowed(paths, hidden):
    """The allow-list, outermost first: existing paths (links resolved), none inside another one
    or inside a hidden path.  A hidden path inside an allowed one is covered by ``build``."""
    hidden = [os.path.realpath(h) for h in hidden]
    keep = []
    for p in sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)}, key=len):
        if not any(_under(p, h) for h in hidden) and not any(_under(p, k) for k in keep):
            keep.append(p)
    return keep


def build(root, read, work, scratch_mb, hidden=()):
    """Make ``root`` a new root: ``read`` bound read-only, ``work`` a writable tmpfs, ``/proc`` this
    PID namespace's, ``/dev`` private.  Then ``chroot`` into it (the caller drops every capability
    next, so the chroot cannot be left)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("none", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    special = {"/proc", "/dev", "/sys", work}
    bound = allowed([p for p in read if p not in special], hidden)
    for path in bound:
        _mount(path, _place(root, path), None, MS_BIND | MS_REC)
    for path in ("/proc", "/sys"):
        if os.path.isdir(path):
            try:                                       # without /sys/fs/cgroup where it may
                _mount(path, _place(root, path), None, MS_BIND)
            except OSError as exc:                     # a user namespace refuses to uncover
                if exc.errno != errno.EINVAL:          # what a locked mount hides: all, read-only
                    raise
                _mount(path, root + path, None, MS_BIND | MS_REC)
    for path in read:                                  # /bin -> usr/bin and the like, as on the host
        if os.path.islink(path) and not os.path.lexists(root + path) and os.path.isdir(os.path.dirname(root + path)):
            os.symlink(os.readlink(path), root + path)
    for h in {os.path.realpath(h) for h in hidden}:    # the solutions inside an allowed folder
        if os.path.isdir(h) and any(_under(h, b) for b in bound):
            _mount("none", root + h, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
    for point in sorted(_mounts_under(root), key=len):
        if point != root:
            _read_only(point)
    os.makedirs(root + work, exist_ok=True)
    _mount("none", root + work, "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_mb}m,mode=1777")
    _private_dev(root)
    _read_only(root)
    os.chroot(root)
    os.chdir("/")


def _private_dev(root):
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    _mount("none", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    names = list(DEVICES) + sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
    for name in names:
        if os.path.exists("/dev/" + name) and not os.path.isdir("/dev/" + name):
            open(f"{dev}/{name}", "a").close()
            _mount("/dev/" + name, f"{dev}/{name}", None, MS_BIND)
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm")
    _mount("none", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
    _read_only(dev)
