"""Comparisons and settings that every suite shares.

Every check fails closed: NaN never passes, a value of the wrong type, dtype or
shape is reported as such before any number is compared, and the message says
what differs and where without showing how the reference computes it.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings

from grader.i18n import say

GRADED = dict(derandomize=True, database=None, deadline=None, print_blob=False,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck))


def graded(max_examples: int = 25, **extra):
    """Hypothesis settings for a graded test: derandomized, no database, no deadline."""
    return settings(**{**GRADED, "max_examples": max_examples, **extra})


def _torch():
    import torch

    return torch


def _is_tensor(x) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def kind_of(x) -> str:
    if type(x) is np.ndarray:
        return f"numpy.ndarray(shape={x.shape}, dtype={x.dtype})"
    if _is_tensor(x):
        return f"torch.Tensor(shape={tuple(x.shape)}, dtype={x.dtype}, device={x.device})"
    return type(x).__name__


def as_float64(x) -> np.ndarray:
    if _is_tensor(x):
        x = x.detach().to("cpu")
        if x.is_complex():
            return x.numpy().astype(np.complex128)
        return x.to(_torch().float64).numpy()
    return np.asarray(x, dtype=np.float64)


def check_type(got, want, name: str) -> None:
    """``got`` must be the same kind of container as ``want`` (ndarray vs tensor)."""
    if type(want) is np.ndarray and type(got) is not np.ndarray:
        raise AssertionError(say("expected_ndarray", name=name, got=kind_of(got)))
    if _is_tensor(want) and not _is_tensor(got):
        raise AssertionError(say("expected_tensor", name=name, got=kind_of(got)))


def assert_shape(got, shape, name: str = "output") -> None:
    shape = tuple(shape)
    if type(got) is not np.ndarray and not _is_tensor(got):
        raise AssertionError(say("expected_array_shape", name=name, shape=shape, got=kind_of(got)))
    if tuple(got.shape) != shape:
        raise AssertionError(say("shape", name=name, want=shape, got=tuple(got.shape)))


def assert_dtype(got, dtype, name: str = "output") -> None:
    if type(got) is not np.ndarray and not _is_tensor(got):
        raise AssertionError(say("expected_array_dtype", name=name, dtype=dtype, got=kind_of(got)))
    if got.dtype != dtype:
        raise AssertionError(say("dtype", name=name, want=dtype, got=got.dtype))


def assert_finite(got, name: str = "output") -> None:
    values = as_float64(got)
    bad = ~np.isfinite(values)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(say("not_finite", name=name, n=int(bad.sum()), idx=idx))


def assert_close(got, want, *, atol: float, rtol: float = 0.0, name: str = "output",
                 check_dtype: bool = True, mask=None) -> None:
    """``got`` equals the trusted ``want`` within ``atol + rtol*|want|`` everywhere.

    ``mask`` (bool, broadcastable) limits the comparison to the positions where it
    is true (padding is excluded this way)."""
    check_type(got, want, name)
    assert_shape(got, tuple(want.shape), name)
    if check_dtype:
        assert_dtype(got, want.dtype, name)
    if _is_tensor(want) and _is_tensor(got) and got.device.type != want.device.type:
        raise AssertionError(say("device", name=name, want=want.device.type, got=got.device))
    g, w = as_float64(got), as_float64(want)
    if mask is not None:
        m = np.broadcast_to(as_float64(mask).astype(bool), g.shape)
    else:
        m = np.ones(g.shape, dtype=bool)
    diff = np.abs(g - w)
    ok = (diff <= atol + rtol * np.abs(w)) | ~m
    if not ok.all():
        bad = ~ok
        diff_masked = np.where(bad, np.nan_to_num(diff, nan=np.inf), -1.0)
        idx = np.unravel_index(int(np.argmax(diff_masked)), g.shape) if g.ndim else ()
        idx = tuple(int(i) for i in idx)
        worst = float(diff_masked[idx]) if g.ndim else float(diff)
        total = int(m.sum())
        got_text, want_text = distinct(float(g[idx]), float(w[idx]))
        raise AssertionError(say("close", name=name, bad=int(bad.sum()), total=total, worst=_fmt(worst), idx=idx,
                                 got=got_text, want=want_text, atol=atol, rtol=rtol))


def assert_equal(got, want, name: str = "output") -> None:
    """Exact equality for plain values (ints, strings, lists, dicts) and integer arrays."""
    if type(want) is np.ndarray or _is_tensor(want):
        check_type(got, want, name)
        assert_shape(got, tuple(want.shape), name)
        assert_dtype(got, want.dtype, name)
        g, w = as_float64(got), as_float64(want)
        bad = ~(g == w)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AssertionError(say("equal_array", name=name, bad=int(bad.sum()), idx=idx, got=g[idx], want=w[idx]))
        return
    if not _plain_equal(got, want):
        raise AssertionError(say("equal", name=name, want=_short(want), got=_short(got)))


def _plain_equal(a, b) -> bool:
    if type(a) is not type(b):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and type(a) is not bool and type(b) is not bool):
            return False
    if isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_plain_equal(x, y) for x, y in zip(a, b))
    if isinstance(b, dict):
        return a.keys() == b.keys() and all(_plain_equal(a[k], b[k]) for k in b)
    if isinstance(b, float):
        return (not math.isnan(b)) and a == b
    return a == b


def _short(x, limit: int = 300) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + " ..."


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def distinct(got: float, want: float, digits: int = 3) -> tuple[str, str]:
    """``got`` and ``want`` with as many significant digits as it takes to tell them apart
    (never "got 4.62, expected 4.62"), at least ``digits``."""
    if not (math.isfinite(got) and math.isfinite(want)):
        return _fmt(got), _fmt(want)
    for d in range(digits, 18):
        a, b = f"{got:#.{d}g}", f"{want:#.{d}g}"
        if a != b:
            return a, b
    return repr(got), repr(want)


def assert_not_mutated(student, name: str = "the inputs") -> None:
    """The last call into the sandbox left its array/tensor arguments unchanged."""
    changed = student.last_mutated
    if changed:
        raise AssertionError(say("mutated", name=name, args=", ".join(changed)))
