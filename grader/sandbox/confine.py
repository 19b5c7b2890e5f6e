"""Unprivileged confinement of the sandbox's child: Linux Landlock and seccomp, through ctypes.

Loaded by ``worker.py`` by path (like ``wire.py``) and applied right before the student's module
is imported; the grader's side runs it in a throw-away child to probe what this kernel gives
(``controller.probe_landlock``) and uses its ``prctl`` for the subreaper flag.
Neither needs a privilege or a namespace: both need ``no_new_privs``, which any process may set
on itself, and neither can be lifted once applied, by the process or any of its children.

* **Landlock** (kernel 5.13+; ABI 1 files, 4 TCP, 6 scoping): the child may read and execute only
  beneath the paths it is given (the Python installation, its site-packages, the libraries of the
  system, the student's copied module), write only beneath its scratch, bind and connect no TCP
  port (ABI 4+), reach no abstract UNIX socket and signal no process outside its domain (ABI 6+).
  Everything else (the kata's ``solutions/`` and ``tests/``, hidden suites, results, other
  submissions) cannot be opened, whatever path or ``/proc/<pid>/cwd`` link leads there.  A
  Landlocked process cannot ptrace a process outside its domain either.
* **seccomp** (a classic BPF filter): ``socket()`` of any family but AF_UNIX fails with
  EAFNOSUPPORT (UDP and raw sockets, which Landlock does not cover), and ``ptrace``,
  ``process_vm_readv``/``writev`` and ``io_uring_setup`` fail with EPERM.  Syscalls of another
  architecture's ABI (x32, i386) fail with EPERM too.  Only x86-64 and AArch64 are known here; on
  another machine ``landlock`` and ``seccomp`` raise ``ConfineError`` and the probe falls back.

Why ctypes and not a binding: the PyPI bindings (``landlock`` 1.0.0.dev5, ``landlockpy`` 0.2.0,
``pyseccomp`` over libseccomp) are pre-releases or need a C library the grader's hosts may lack;
the three Landlock syscalls and one ``prctl`` take about a hundred lines, tested in
``tests/selftest/test_confine.py``.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# ---------------------------------------------------------------- syscalls
_ARCH = {
    # machine: (AUDIT_ARCH, landlock_create_ruleset, add_rule, restrict_self, socket, ptrace,
    #           process_vm_readv, process_vm_writev, io_uring_setup)
    "x86_64": (0xC000003E, 444, 445, 446, 41, 101, 310, 311, 425),
    "aarch64": (0xC00000B7, 444, 445, 446, 198, 117, 270, 271, 425),
}
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# file-system rights, by the ABI that brought them
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1                  # EXECUTE .. MAKE_SYM
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR


class ConfineError(OSError):
    """A layer could not be applied; ``str`` says which step and why."""


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _arch():
    return _ARCH.get(platform.machine())


def _check(result, what):
    if result < 0:
        err = ctypes.get_errno()
        raise ConfineError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (old kernel, disabled, or a
    seccomp profile that denies the syscall)."""
    arch = _arch()
    if arch is None or os.name != "posix":
        return 0
    libc = _libc()
    version = libc.syscall(arch[1], None, ctypes.c_size_t(0), ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def fs_rights(abi: int) -> int:
    rights = FS_ABI1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def prctl(option: int, *args, what: str) -> int:
    """prctl(option, *args), the rest 0; an argument is an int or a ctypes buffer (by address)."""
    args = [ctypes.c_ulong(a) if isinstance(a, int) else a for a in args]
    args += [ctypes.c_ulong(0)] * (4 - len(args))
    return _check(_libc().prctl(ctypes.c_int(option), *args), what)


def no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="prctl(PR_SET_NO_NEW_PRIVS)")


def landlock(read=(), write=(), abi=None) -> dict:
    """Restrict this thread (and every process it starts) to reading and executing beneath
    ``read`` and to anything beneath ``write``; with ABI 4+ no TCP bind or connect, with ABI 6+
    no abstract UNIX socket or signal outside the domain.  Paths that do not exist are skipped.
    Returns what was applied: {"abi", "net", "scoped", "read", "write"}."""
    arch = _arch()
    abi = landlock_abi() if abi is None else abi
    if arch is None or abi < 1:
        raise ConfineError(errno.ENOSYS, "Landlock is not available on this kernel")
    libc = _libc()
    handled_fs = fs_rights(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled_fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = _check(libc.syscall(arch[1], buf, ctypes.c_size_t(size), ctypes.c_uint32(0)),
                     "landlock_create_ruleset")
    applied = {"abi": abi, "net": bool(net), "scoped": bool(scoped), "read": [], "write": []}
    try:
        for paths, rights, key in ((read, READ, "read"), (write, handled_fs, "write")):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = rights if os.path.isdir(path) else rights & FILE_RIGHTS
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed & handled_fs, fd), 12)
                    _check(libc.syscall(arch[2], ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                                        rule, ctypes.c_uint32(0)), f"landlock_add_rule({path})")
                    applied[key].append(str(path))
                finally:
                    os.close(fd)
        no_new_privs()
        _check(libc.syscall(arch[3], ctypes.c_int(ruleset), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return applied


# ---------------------------------------------------------------- seccomp
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
AF_UNIX = 1


def _filter(arch) -> list[tuple[int, int, int, int]]:
    audit, _, _, _, sys_socket, sys_ptrace, sys_pvr, sys_pvw, sys_uring = arch
    denied = (sys_ptrace, sys_pvr, sys_pvw, sys_uring)
    deny = _RET_ERRNO | errno.EPERM
    prog = [(_LD_W_ABS, 0, 0, 4),                               # arch
            (_JEQ_K, 1, 0, audit),                              # ours: skip the next
            (_RET_K, 0, 0, deny),                               # another ABI (i386): refused
            (_LD_W_ABS, 0, 0, 0)]                               # nr
    if audit == _ARCH["x86_64"][0]:
        prog += [(_JGE_K, 0, 1, 0x40000000), (_RET_K, 0, 0, deny)]   # x32 syscalls: refused
    for nr in denied:
        prog += [(_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, deny)]
    prog += [(_JEQ_K, 0, 3, sys_socket),
             (_LD_W_ABS, 0, 0, 16),                             # args[0], low 32 bits: the family
             (_JEQ_K, 1, 0, AF_UNIX),
             (_RET_K, 0, 0, _RET_ERRNO | errno.EAFNOSUPPORT),
             (_RET_K, 0, 0, _RET_ALLOW)]
    return prog


def seccomp() -> dict:
    """Install the filter above on this thread (and its future children)."""
    arch = _arch()
    if arch is None:
        raise ConfineError(errno.ENOSYS, f"no seccomp filter is known for {platform.machine()}")
    prog = _filter(arch)
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    filters = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(filters))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    no_new_privs()
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fbuf, what="prctl(PR_SET_SECCOMP)")
    return {"instructions": len(prog)}
