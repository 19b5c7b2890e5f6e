"""The wire format between the grader and the sandboxed student process.

Only plain data crosses: None, bools, ints, floats, strings, bytes, lists,
tuples, dicts, NumPy arrays and scalars, torch tensors, dtypes and devices,
and opaque handles to objects that live in the sandbox.  Arrays and tensors
travel as raw bytes with their dtype and shape, never pickled, so nothing the
student builds (an ``ndarray`` subclass whose ``__eq__`` says "equal", a proxy,
a tensor subclass) exists in the judging process: the decoder rebuilds exact
``np.ndarray`` / ``torch.Tensor`` objects from bytes and checks every length.

This file is loaded by path inside the sandbox as well, so it imports nothing
from the ``grader`` package and torch only when a tensor is on the wire.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
import sys

import numpy as np

MAX_FRAME = 1 << 31          # 2 GiB: a reply larger than this is refused
MAX_DEPTH = 64
MAX_ITEMS = 2_000_000

NUMPY_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
}
TORCH_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
}


class WireError(Exception):
    """The other side sent something that is not valid wire data."""


class Handle:
    """An object that lives in the sandbox, referred to by number."""

    __slots__ = ("id", "type_name", "text")

    def __init__(self, id: int, type_name: str = "", text: str = ""):
        self.id = int(id)
        self.type_name = str(type_name)
        self.text = str(text)

    def __repr__(self):
        return f"<sandbox object #{self.id} of type {self.type_name}>"


class Unsupported:
    """Stands for a value the sandbox could not send (a generator, an open file, ...).

    It equals nothing and refuses arithmetic, so it can never pass a check.
    """

    __slots__ = ("type_name", "text")

    def __init__(self, type_name: str, text: str = ""):
        self.type_name = str(type_name)
        self.text = str(text)

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = None

    def __repr__(self):
        return f"<value of type {self.type_name} that cannot be graded>"

    def __bool__(self):
        raise TypeError(f"a value of type {self.type_name} cannot be graded")


def _torch():
    import torch  # noqa: PLC0415 (imported only when tensors are on the wire)

    return torch


# ---------------------------------------------------------------- encoding

class Encoder:
    """Turns a value into (json-able tree, list of byte blobs).

    ``handle_for`` is called for objects that are not plain data; without it,
    such objects are sent as ``Unsupported``.
    """

    def __init__(self, handle_for=None):
        self.blobs: list[bytes] = []
        self.handle_for = handle_for
        self.items = 0

    def blob(self, data: bytes) -> int:
        self.blobs.append(bytes(data))
        return len(self.blobs) - 1

    def encode(self, value, depth: int = 0):
        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise WireError("value is nested too deeply or is too large to send")
        t = type(value)
        if value is None or t is bool or t is str:
            return value
        if t is int:
            return value
        if t is float:
            return {"$f": repr(value)}
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(np.asarray(value).view(np.ndarray))
            if arr.dtype.name not in NUMPY_DTYPES:
                return self._unsupported(value, f"ndarray of dtype {arr.dtype}")
            return {"$nd": self.blob(arr.tobytes()), "dtype": arr.dtype.name,
                    "shape": list(arr.shape), "cls": _type_name(value)}
        if isinstance(value, np.generic):
            arr = np.asarray(value)
            if arr.dtype.name not in NUMPY_DTYPES:
                return self._unsupported(value, f"numpy scalar {arr.dtype}")
            return {"$ns": self.blob(arr.tobytes()), "dtype": arr.dtype.name}
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            if isinstance(value, torch.Tensor):
                return self._tensor(value, torch)
            if isinstance(value, torch.dtype):
                return {"$dtype": str(value).replace("torch.", "")}
            if isinstance(value, torch.device):
                return {"$device": str(value)}
            if isinstance(value, torch.Size):
                return {"$t": [self.encode(int(v), depth + 1) for v in value]}
        if t is tuple:
            return {"$t": [self.encode(v, depth + 1) for v in value]}
        if t is list:
            return [self.encode(v, depth + 1) for v in value]
        if t is dict:
            if all(type(k) is str for k in value):
                return {"$d": {k: self.encode(v, depth + 1) for k, v in value.items()}}
            return {"$dk": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                            for k, v in value.items()]}
        if t is bytes:
            return {"$b": self.blob(value)}
        if isinstance(value, Handle):
            return {"$obj": value.id}
        # subclasses of containers (OrderedDict, namedtuple, ModelOutput): their plain contents
        if isinstance(value, dict):
            return self.encode(dict(value.items()), depth + 1)
        if isinstance(value, tuple):
            return self.encode(tuple(iter(value)), depth + 1)
        if isinstance(value, list):
            return self.encode(list(iter(value)), depth + 1)
        # subclasses of plain types: send their plain value (what honest grading sees)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return {"$f": repr(float(value))}
        if isinstance(value, str):
            return str.__str__(value)
        if self.handle_for is not None:
            return self.handle_for(value)
        return self._unsupported(value)

    def _tensor(self, value, torch):
        name = str(value.dtype).replace("torch.", "")
        if name not in TORCH_DTYPES or value.layout != torch.strided:
            return self._unsupported(value, f"tensor of dtype {name} / layout {value.layout}")
        device = str(value.device)
        cpu = torch.Tensor.contiguous(torch.Tensor.detach(value).to("cpu"))
        flat = cpu.reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        return {"$pt": self.blob(data), "dtype": name, "shape": list(cpu.shape),
                "device": device, "grad": bool(value.requires_grad),
                "cls": _type_name(value)}

    def _unsupported(self, value, why: str = ""):
        return {"$unsupported": _type_name(value), "why": why}


def _type_name(value) -> str:
    t = type(value)
    return f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', t.__name__)}"


# ---------------------------------------------------------------- fingerprints

_BLOB_KEYS = ("$nd", "$pt", "$ns", "$b")


def fingerprint(node, blobs, path="", out=None, depth=0) -> dict:
    """What an in-place change would alter in an encoded value, keyed by where it sits (``[0]``,
    ``[1]['mask']``): each array's and tensor's bytes, dtype and shape, each list's length, each
    dict's keys, each plain value, each sandbox object's handle.  The grader compares the
    fingerprint of the arguments it sent with that of the arguments the sandbox sends back after
    a call; nothing here runs in the sandbox.  Malformed nodes fingerprint as themselves."""
    out = {} if out is None else out
    t = type(node)
    if depth > MAX_DEPTH:
        out[path] = "<too deep>"
    elif t is list or (t is dict and type(node.get("$t")) is list):
        items = node if t is list else node["$t"]
        out[path + "#len"] = str(len(items))
        for i, v in enumerate(items):
            fingerprint(v, blobs, f"{path}[{i}]", out, depth + 1)
    elif t is dict and type(node.get("$d")) is dict:
        out[path + "#keys"] = repr(list(node["$d"]))
        for k, v in node["$d"].items():
            fingerprint(v, blobs, f"{path}[{k!r}]", out, depth + 1)
    elif t is dict and type(node.get("$dk")) is list:
        pairs = [p for p in node["$dk"] if type(p) is list and len(p) == 2]
        out[path + "#keys"] = json.dumps([k for k, _ in pairs], sort_keys=True)
        for k, v in pairs:
            fingerprint(v, blobs, f"{path}[{json.dumps(k, sort_keys=True)}]", out, depth + 1)
    elif t is dict and "$obj" in node:
        out[path] = f"object {node['$obj']!r}"
    elif t is dict:
        shown = {k: v for k, v in node.items() if k not in ("device", "grad", "cls")}
        for key in _BLOB_KEYS:
            i = node.get(key)
            if key in node:
                data = blobs[i] if type(i) is int and 0 <= i < len(blobs) else b"<no blob>"
                shown[key] = hashlib.blake2b(data).hexdigest()
        out[path] = json.dumps(shown, sort_keys=True, default=repr)
    else:
        out[path] = json.dumps(node, default=repr)
    return out


def changed_places(sent: dict, after: dict, names) -> list[str]:
    """The arguments (by name where ``names`` knows it: ``documents[1]``, ``mask``) whose
    fingerprint differs between ``sent`` and ``after``."""
    places = set()
    for key in set(sent) | set(after):
        if sent.get(key) != after.get(key):
            places.add(_readable(key, names))
    return sorted(places)


def _readable(path, names):
    """``[0][2][1]`` (args[2], item 1) -> ``documents[1]``; ``[1]['mask']`` -> ``mask``."""
    m = re.match(r"\[(0|1)\]\[(\d+|'[^']*')\](.*)$", path)
    if not m:
        return "the arguments" if path in ("#len", "[0]#len", "[1]#keys") else path
    which, key, rest = m.groups()
    rest = rest.replace("#len", "").replace("#keys", "")
    if which == "0":
        i = int(key)
        base = str(names[i])[:100] if i < len(names) else f"argument {i + 1}"
    else:
        base = key.strip("'")
    return base + rest


# ---------------------------------------------------------------- decoding

class Decoder:
    """Rebuilds values from a tree and blobs, trusting nothing.

    ``resolve_handle(id, type_name)`` turns ``$obj`` into whatever the caller wants
    (the parent makes a remote proxy, the sandbox looks its object up).
    ``tensor_device`` maps the sender's device string to where a tensor is put.
    """

    def __init__(self, blobs, resolve_handle=None, tensor_device=None):
        self.blobs = blobs
        self.resolve_handle = resolve_handle
        self.tensor_device = tensor_device
        self.items = 0

    def _blob(self, index) -> bytes:
        if type(index) is not int or not 0 <= index < len(self.blobs):
            raise WireError("bad blob reference")
        return self.blobs[index]

    def decode(self, node, depth: int = 0):
        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise WireError("value nested too deeply or too large")
        t = type(node)
        if node is None or t in (bool, int, str):
            return node
        if t is float:  # only from hand-written JSON; our encoder tags floats
            return node
        if t is list:
            return [self.decode(v, depth + 1) for v in node]
        if t is not dict or len(node) == 0:
            raise WireError(f"unexpected node {t.__name__}")
        if "$f" in node:
            text = node["$f"]
            if type(text) is not str or len(text) > 64:
                raise WireError("bad float")
            return float(text)
        if "$t" in node:
            return tuple(self.decode(v, depth + 1) for v in _list(node["$t"]))
        if "$d" in node:
            d = node["$d"]
            if type(d) is not dict:
                raise WireError("bad dict")
            return {str(k): self.decode(v, depth + 1) for k, v in d.items()}
        if "$dk" in node:
            out = {}
            for pair in _list(node["$dk"]):
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("bad dict item")
                key = self.decode(pair[0], depth + 1)
                try:
                    out[key] = self.decode(pair[1], depth + 1)
                except TypeError as exc:  # unhashable key
                    raise WireError(f"bad dict key: {exc}") from None
            return out
        if "$nd" in node:
            dtype = _dtype_name(node, NUMPY_DTYPES)
            shape = _shape(node)
            data = self._blob(node["$nd"])
            dt = np.dtype(dtype)
            if len(data) != dt.itemsize * _prod(shape):
                raise WireError("array bytes do not match dtype and shape")
            return np.frombuffer(data, dtype=dt).reshape(shape).copy()
        if "$ns" in node:
            dt = np.dtype(_dtype_name(node, NUMPY_DTYPES))
            data = self._blob(node["$ns"])
            if len(data) != dt.itemsize:
                raise WireError("scalar bytes do not match dtype")
            return np.frombuffer(data, dtype=dt)[0]
        if "$pt" in node:
            return self._tensor(node)
        if "$dtype" in node:
            name = node["$dtype"]
            if name not in TORCH_DTYPES:
                raise WireError("bad torch dtype")
            return getattr(_torch(), name)
        if "$device" in node:
            return _torch().device(_device_text(node["$device"]))
        if "$b" in node:
            return bytes(self._blob(node["$b"]))
        if "$obj" in node:
            if type(node["$obj"]) is not int:
                raise WireError("bad handle")
            if self.resolve_handle is None:
                raise WireError("handles are not accepted here")
            return self.resolve_handle(node["$obj"], str(node.get("type", ""))[:200],
                                       str(node.get("text", ""))[:200])
        if "$unsupported" in node:
            return Unsupported(str(node["$unsupported"])[:200], str(node.get("why", ""))[:200])
        raise WireError("unknown node tag")

    def _tensor(self, node):
        torch = _torch()
        name = _dtype_name(node, TORCH_DTYPES)
        shape = _shape(node)
        data = self._blob(node["$pt"])
        dtype = getattr(torch, name)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(data) != itemsize * _prod(shape):
            raise WireError("tensor bytes do not match dtype and shape")
        if len(data) == 0:
            out = torch.empty(shape, dtype=dtype)
        else:
            out = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)
        device = _device_text(node.get("device", "cpu"))
        if self.tensor_device is not None:
            device = self.tensor_device(device)
        if device != "cpu":
            out = out.to(device)
        if node.get("grad") is True and out.is_floating_point():
            out.requires_grad_(True)
        return out


def _list(v):
    if type(v) is not list:
        raise WireError("expected a list")
    return v


def _dtype_name(node, allowed):
    name = node.get("dtype")
    if name not in allowed:
        raise WireError(f"dtype {name!r} is not accepted")
    return name


def _shape(node):
    shape = node.get("shape")
    if type(shape) is not list or len(shape) > 32 or not all(type(s) is int and s >= 0 for s in shape):
        raise WireError("bad shape")
    return tuple(shape)


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _device_text(text):
    if type(text) is not str or len(text) > 16:
        raise WireError("bad device")
    kind = text.split(":")[0]
    if kind not in ("cpu", "cuda", "mps", "meta"):
        raise WireError("bad device")
    return text


# ---------------------------------------------------------------- frames

def dumps(header: dict, blobs) -> bytes:
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    return b"".join([struct.pack(">I", len(head)), head, *blobs])


def write_frame(fd: int, header: dict, blobs=()) -> None:
    import os

    data = memoryview(dumps(header, list(blobs)))
    while data:
        n = os.write(fd, data[:1 << 20])
        data = data[n:]


class FrameReader:
    """Reads frames from a file descriptor; ``read_exact`` is supplied by the caller
    so the parent can enforce deadlines while reading."""

    def __init__(self, read_exact):
        self.read_exact = read_exact

    def read(self):
        (n,) = struct.unpack(">I", self.read_exact(4))
        if n > 64 << 20:
            raise WireError("frame header too large")
        try:
            header = json.loads(self.read_exact(n))
        except (ValueError, UnicodeDecodeError) as exc:
            raise WireError(f"bad frame header: {exc}") from None
        if type(header) is not dict:
            raise WireError("bad frame header")
        sizes = header.get("blobs", [])
        if type(sizes) is not list or not all(type(s) is int and s >= 0 for s in sizes):
            raise WireError("bad blob sizes")
        if sum(sizes) > MAX_FRAME:
            raise WireError("reply larger than 2 GiB")
        blobs = [self.read_exact(s) if s else b"" for s in sizes]
        return header, blobs
