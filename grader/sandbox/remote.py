"""What a suite holds in its hands: proxies to the student's module in the sandbox.

``student.softmax(x)`` sends ``x`` to the sandbox, runs the student's function and
returns a freshly decoded value (an exact ``np.ndarray``, ``torch.Tensor``, ``float``,
...).  Calling a class returns a ``RemoteObject``; its attributes and methods are
reached the same way, and ``obj(x)`` calls it.  ``student.build("transformers.BertModel",
config)`` builds any importable object in the sandbox (a HuggingFace model to hand to
the student's function, an optimizer, a tokenizer).  Exceptions raised by student code
come back as ``RemoteError`` instances that are also instances of the matching
built-in exception, so ``pytest.raises(ValueError)`` works.
"""
from __future__ import annotations

from grader.sandbox import wire
from grader.sandbox.controller import Sandbox, make_remote_error


class UndecodableReply(AssertionError):
    """A reply the grader's decoder (numpy, torch) refused.  An AssertionError, so the test
    fails with this reason; never a ValueError/TypeError/RuntimeError that a ``pytest.raises``
    in the suite could take for the student's own exception."""


class _Client:
    def __init__(self, sandbox: Sandbox, device: str):
        self.sandbox = sandbox
        self.device = device
        self.last_mutated: list[str] = []   # the arguments the last call changed in place (wire.fingerprint)
        self.last_call = None          # (label, args, kwargs) of the last call, as the suite sent them

    def tensor_device(self, sent: str) -> str:
        if sent.startswith("cuda") and self.device.startswith("cuda"):
            return sent
        return "cpu"

    def decode(self, tree, blobs):
        dec = wire.Decoder(blobs, resolve_handle=lambda hid, t, x: RemoteObject(self, hid, t),
                           tensor_device=self.tensor_device)
        return dec.decode(tree)

    def request(self, header, blobs=(), what="running a call"):
        return self.exchange(header, blobs, what)[0]

    def exchange(self, header, blobs=(), what="running a call"):
        """(the decoded value, the reply, its blobs), or the student's exception raised."""
        reply, rblobs = self.sandbox.request(header, blobs, what)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            mro = [str(m)[:100] for m in err.get("mro", [])][:20] if isinstance(err.get("mro"), list) else []
            frames = err.get("frames") if isinstance(err.get("frames"), list) else []
            frames = [f for f in frames if isinstance(f, list) and len(f) == 4]
            raise make_remote_error(mro or ["Exception"], str(err.get("message", ""))[:4000], frames)
        try:
            value = self.decode(reply.get("value"), rblobs)
        except wire.WireError as exc:
            self.sandbox._die("protocol", f"sent a reply that could not be decoded ({exc})")
        except Exception as exc:  # noqa: BLE001 - numpy/torch refusing forged data: never the student's error
            raise UndecodableReply(f"the grader could not decode what the student process sent back "
                                   f"({type(exc).__name__}: {str(exc)[:200]}); this call scores 0") from None
        return value, reply, rblobs

    def call(self, target: dict, args, kwargs, what: str, label: str = ""):
        self.last_call = (label, tuple(args), dict(kwargs))
        enc = wire.Encoder()
        tree_args = enc.encode(list(args))
        tree_kwargs = enc.encode(dict(kwargs))
        sent = wire.fingerprint([tree_args, tree_kwargs], enc.blobs)
        self.last_mutated = []
        value, reply, rblobs = self.exchange({"op": "call", "target": target, "args": tree_args,
                                              "kwargs": tree_kwargs}, enc.blobs, what)
        names = reply.get("names") if isinstance(reply.get("names"), list) else []
        if "after" not in reply:
            self.last_mutated = ["the arguments (the sandbox did not send them back)"]
        else:
            after = wire.fingerprint(reply["after"], rblobs)
            self.last_mutated = wire.changed_places(sent, after, names)
        return value

    def getattr(self, target: dict, what: str, label: str = ""):
        value = self.request({"op": "getattr", "target": target}, (), what)
        if isinstance(value, RemoteObject) and label:
            object.__setattr__(value, "text", label)
        return value


class RemoteObject(wire.Handle):
    """An object that lives in the sandbox (a student's module, a built HF model, ...)."""

    __slots__ = ("_client",)

    def __init__(self, client: _Client, hid: int, type_name: str = ""):
        super().__init__(hid, type_name)
        object.__setattr__(self, "_client", client)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._client.getattr({"kind": "object", "id": self.id, "name": name},
                                    f"reading attribute {name!r} of {self.label}", f"{self.label}.{name}")

    def __setattr__(self, name, value):
        if name in RemoteObject.__slots__ or name in wire.Handle.__slots__:
            object.__setattr__(self, name, value)
            return
        enc = wire.Encoder()
        tree = enc.encode(value)
        self._client.request({"op": "setattr", "id": self.id, "name": name, "value": tree}, enc.blobs,
                             f"setting attribute {name!r}")

    def __call__(self, *args, **kwargs):
        return self._client.call({"kind": "object", "id": self.id}, args, kwargs, f"calling {self.label}",
                                 self.text)

    @property
    def short_type(self) -> str:
        return self.type_name.rsplit(".", 1)[-1]

    @property
    def label(self) -> str:
        return self.text or f"a {self.short_type}"

    def __repr__(self):
        return f"<student object {self.short_type}>"


class StudentModule:
    """The student's module for one exercise, as seen from a suite."""

    def __init__(self, sandbox: Sandbox, device: str, name: str):
        self._client = _Client(sandbox, device)
        self._name = name
        self._cache: dict = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._cache:
            return self._cache[name]
        value = self._client.getattr({"kind": "module", "name": name}, f"looking up {name!r}", name)
        if isinstance(value, RemoteObject):
            self._cache[name] = value
        return value

    # -- helpers for suites
    def build(self, path: str, *args, **kwargs):
        """Call any importable callable by dotted path inside the sandbox and return
        the result (plain data, or a ``RemoteObject``)."""
        return self._client.call({"kind": "path", "name": path}, args, kwargs, f"building {path}")

    def seed(self, seed: int) -> None:
        """Seed ``random``, NumPy's and torch's global generators in the sandbox."""
        self._client.request({"op": "seed", "seed": int(seed)}, (), "seeding")

    @property
    def last_mutated(self) -> list[str]:
        """Arguments (as paths like ``[0]``, ``[1]['x']``) that the last call changed in place."""
        return list(self._client.last_mutated)

    @property
    def sandbox(self) -> Sandbox:
        return self._client.sandbox

    def __repr__(self):
        return f"<student module {self._name}>"
