"""What every suite shares beyond the comparisons of ``checks``: inputs, model twins, value checkers.

* inputs: ``tensor`` (a seeded normal tensor on the grading device), ``bool_mask`` (a kata mask,
  True = may attend, every row with at least one key);
* twins, "the same model here and in the sandbox": ``twin`` (the student's class holding a trusted
  module's weights) and ``hf_twin`` (a HuggingFace model built in the sandbox from the same config
  and weights as a local one);
* value checkers with one wording everywhere: ``as_float``, ``as_int``, ``as_int_list``,
  ``as_record``; each returns the plain value or fails with a message that names the value;
* ``call_catching``: the student's exception as a value (a stub's NotImplementedError still
  propagates, so an untouched stub is "not started");
* ``raises_naming``: ``pytest.raises(..., match=...)`` on the student's own message only, and
  ``message_of`` (never the source line that raised: ``match="mask"`` must not pass on NumPy's
  broadcast error raised from a line reading ``np.where(mask, ...)``).
* sandbox probes: ``in_sandbox_code`` (objects defined in the sandbox from trusted source text) and
  ``forward_probe`` (a forward hook noting, per call, train/eval mode and autograd state: how a suite
  checks that an inference function runs in eval mode without building a graph).

Suites import from here instead of writing their own builders.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import re

import numpy as np

from grader.grading import hf
from grader.grading.checks import as_float64
from grader.grading.strategies import random_mask
from grader.i18n import say
from grader.sandbox.controller import RemoteError
from grader.sandbox.wire import Handle


# ------------------------------------------------------------------ inputs

def tensor(rng, shape, device, dtype=None, scale=1.0):
    """Standard normal values from ``rng`` (a NumPy Generator) times ``scale``, float32 by default."""
    import torch

    return torch.from_numpy(rng.standard_normal(shape) * scale).to(device=device, dtype=dtype or torch.float32)


def bool_mask(rng, shape, device):
    """A kata mask (True = may attend) of ``shape`` as a tensor; every query row keeps a key."""
    import torch

    return torch.from_numpy(random_mask(rng, shape)).to(device)


# ------------------------------------------------------------------ twins

def twin(student, class_name: str, local, *args, device=None, dtype=None, train=False, **kwargs):
    """The student's ``class_name(*args, **kwargs)`` holding ``local``'s weights (its ``state_dict``),
    on ``device`` (and ``dtype``), in eval mode unless ``train``."""
    module = getattr(student, class_name)(*args, **kwargs)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu()
             for k, v in local.state_dict().items()}
    module.load_state_dict(state)
    if device is not None or dtype is not None:
        module.to(**{k: v for k, v in (("device", None if device is None else str(device)),
                                       ("dtype", dtype)) if v is not None})
    return module.train(train)


def hf_twin(student, cls_path: str, config, local, device=None, train=False):
    """``cls_path`` (e.g. "transformers.BertModel") built in the sandbox from ``config`` with
    ``local``'s weights, on ``device``: the model to hand to the student's function."""
    remote = hf.in_sandbox(student, cls_path, config, local.state_dict(), train=train)
    # in_sandbox rebuilds the config from to_dict(), which may drop the attention implementation;
    # both sides must run the same attention (eager: masks additive, dropout drawn the same way)
    remote.set_attn_implementation(config._attn_implementation or "eager")
    if device is not None:
        remote.to(str(device))
    return remote


def is_handle(value, of=None) -> bool:
    """``value`` is an object living in the sandbox (``of``: that very object)."""
    return isinstance(value, Handle) and (of is None or value.id == of.id)


# ------------------------------------------------------------------ values

def _type_name(x) -> str:
    return type(x).__name__


def as_float(x, name: str, *, plain: bool = False) -> float:
    """A finite real number.  ``plain``: only a Python/NumPy float is accepted (the contract says
    "a float"); otherwise also an int or a one-element array/tensor."""
    import torch

    if isinstance(x, bool):
        ok = False
    elif plain or isinstance(x, (int, float, np.number)):
        ok = isinstance(x, (float, np.floating)) or (not plain and isinstance(x, (int, np.number)))
    elif isinstance(x, np.ndarray):
        ok = x.size == 1
    else:
        ok = isinstance(x, torch.Tensor) and x.numel() == 1
    if not ok:
        raise AssertionError(say("testing.expected_float", name=name, got=_type_name(x)))
    value = float(as_float64(x).reshape(()))
    if not math.isfinite(value):
        raise AssertionError(say("testing.not_finite_number", name=name, got=value))
    return value


def as_int(x, name: str) -> int:
    """A Python or NumPy integer (not a bool)."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise AssertionError(say("testing.expected_int", name=name, got=_type_name(x), value=_short(x)))
    return int(x)


def as_int_list(x, n, name: str) -> list[int]:
    """A list (or 1-D array/tensor) of ``n`` integers."""
    import torch

    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().tolist()
    elif isinstance(x, np.ndarray):
        x = x.tolist()
    if not isinstance(x, (list, tuple)):
        raise AssertionError(say("testing.expected_list", name=name, got=_type_name(x)))
    if n is not None and len(x) != n:
        raise AssertionError(say("testing.list_length", name=name, want=n, got=len(x)))
    return [as_int(v, f"{name}[{i}]") for i, v in enumerate(x)]


def as_record(x, keys, name: str) -> dict:
    """A dict holding at least ``keys``."""
    if not isinstance(x, dict):
        raise AssertionError(say("testing.expected_dict", name=name, got=_type_name(x),
                                 keys=", ".join(map(repr, keys))))
    missing = [k for k in keys if k not in x]
    if missing:
        raise AssertionError(say("testing.missing_keys", name=name, missing=", ".join(map(repr, missing)),
                                 got=", ".join(map(repr, list(x)[:10]))))
    return x


def _short(x, limit=80) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + " ..."


# ------------------------------------------------------------------ calls

def call_catching(fn, *args, **kwargs):
    """(result, None) or (None, the student's exception); NotImplementedError still propagates,
    so a stub is reported as "not started"."""
    try:
        return fn(*args, **kwargs), None
    except RemoteError as exc:
        if exc.type_name == "NotImplementedError":
            raise
        return None, exc


def message_of(exc) -> str:
    """The exception's own message (for the student's exceptions: their message alone, without the
    type name or the source line that raised)."""
    return exc.remote_message if isinstance(exc, RemoteError) else str(exc)


@contextlib.contextmanager
def raises_naming(expected, pattern: str, what: str = "the argument"):
    """``pytest.raises(expected)`` whose message (``message_of``) must match ``pattern``
    (``re.search``); ``what`` says in the failure what the message should name."""
    import pytest

    with pytest.raises(expected) as info:
        yield info
    text = message_of(info.value)
    if not re.search(pattern, text):
        raise AssertionError(say("testing.message_does_not_name", type=type(info.value).__name__
                                 if not isinstance(info.value, RemoteError) else info.value.type_name,
                                 what=what, message=_short(text, 300)))


# ------------------------------------------------------------------ sandbox probes

def in_sandbox_code(student, source: str, names):
    """Run trusted ``source`` in a fresh namespace inside the student's sandbox and return handles
    to its objects ``names`` (a tuple, in that order): small observers a suite hands to the
    student's code (a forward hook, a collate function, a tokenizer with another interface)."""
    expr = "(lambda ns: exec(SRC, ns) or tuple(ns[n] for n in NAMES))({'__name__': 'kata_probes'})"
    return tuple(student.build("builtins.eval", expr, {"SRC": source, "NAMES": list(names)}))


FORWARD_PROBE_SOURCE = r'''
import torch
from _kata_probe import note


class ForwardProbe:
    """A forward hook (register with with_kwargs=True) sending the grader, for every call of the
    module, at once (``note``): training: whether any of its submodules was in train mode (dropout
    on); grad_enabled: torch.is_grad_enabled() during the call (False under no_grad /
    inference_mode); graph: whether an output tensor carries an autograd graph (requires_grad);
    device: the device of the first tensor argument ("" when there is none).  It keeps nothing."""

    def __init__(self, tag):
        self.tag = tag

    def __call__(self, module, args, kwargs, output):
        if isinstance(output, torch.Tensor):
            outs = [output]
        elif isinstance(output, dict):
            outs = list(output.values())
        elif isinstance(output, (tuple, list)):
            outs = list(output)
        else:
            outs = []
        first = next((a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)), None)
        note(self.tag, {
            "training": any(m.training for m in module.modules()),
            "grad_enabled": bool(torch.is_grad_enabled()),
            "graph": any(isinstance(t, torch.Tensor) and t.requires_grad for t in outs),
            "device": str(first.device) if first is not None else "",
        })
'''

_PROBE_TAGS = itertools.count(1)


class ForwardRecords:
    """The grader's side of a forward probe: ``calls`` are the observations the sandbox sent as
    they happened (``Sandbox.events``), read here, never from an object in the sandbox.  A record
    that is not what the probe sends fails the test that reads it."""

    def __init__(self, sandbox, tag: str):
        self.sandbox, self.tag = sandbox, tag

    @property
    def calls(self) -> list[dict]:
        out = []
        for r in self.sandbox.events.get(self.tag, []):
            flags = ("training", "grad_enabled", "graph")
            if not (isinstance(r, dict) and all(type(r.get(k)) is bool for k in flags)
                    and type(r.get("device")) is str):
                raise AssertionError(say("testing.malformed_probe_record", record=repr(r)[:200]))
            out.append({**{k: r[k] for k in flags}, "device": r["device"][:40]})
        return out


@contextlib.contextmanager
def forward_probe(student, model):
    """``with forward_probe(student, model) as probe:`` call the student's function; then
    ``probe.calls`` is a list of dicts (``training``, ``grad_enabled``, ``graph``, ``device``), one
    per forward pass of ``model`` (a handle to a module in the sandbox).  The hook is removed on exit."""
    (cls,) = in_sandbox_code(student, FORWARD_PROBE_SOURCE, ("ForwardProbe",))
    tag = f"forward-probe-{next(_PROBE_TAGS)}"
    hook = model.register_forward_hook(cls(tag), with_kwargs=True)
    try:
        yield ForwardRecords(student.sandbox, tag)
    finally:
        hook.remove()


def assert_inference_calls(calls, fn_name: str) -> None:
    """Every forward pass an inference function made (``forward_probe(...).calls``) ran in eval
    mode (dropout off) with autograd off."""
    assert calls, say("testing.never_called_model", fn_name=fn_name)
    training = sum(1 for c in calls if c["training"])
    assert training == 0, say("testing.inference_in_train_mode", fn_name=fn_name, training=training,
                              n_calls=len(calls))
    graph = sum(1 for c in calls if c["grad_enabled"] or c["graph"])
    assert graph == 0, say("testing.inference_builds_graph", fn_name=fn_name, graph=graph, n_calls=len(calls))


def fail_with(problems: list[str], shown: int = 3) -> None:
    """Fail with the first ``shown`` of ``problems`` (and how many more there are); pass when empty."""
    if problems:
        more = say("testing.problems_more", n=len(problems) - shown) if len(problems) > shown else ""
        raise AssertionError(say("testing.problems_separator").join(problems[:shown]) + more)
