"""The wire format: values survive the trip, and nothing the sandbox sends is trusted."""
import numpy as np
import pytest
import torch

from grader.sandbox import wire


def roundtrip(value):
    enc = wire.Encoder()
    tree = enc.encode(value)
    head = wire.dumps({"v": tree}, enc.blobs)
    pos = 0

    def read_exact(n):
        nonlocal pos
        out = head[pos:pos + n]
        pos += n
        return out
    header, blobs = wire.FrameReader(read_exact).read()
    return wire.Decoder(blobs).decode(header["v"])


def test_plain_values_roundtrip():
    value = {"a": [1, 2.5, None, True, "x"], "b": (1, (2, 3)), 3: "int key", "nan": float("nan")}
    got = roundtrip(value)
    assert got["a"] == [1, 2.5, None, True, "x"] and got["b"] == (1, (2, 3)) and got[3] == "int key"
    assert type(got["b"]) is tuple and np.isnan(got["nan"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_arrays_roundtrip_exactly(dtype):
    x = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    got = roundtrip(x)
    assert type(got) is np.ndarray and got.dtype == x.dtype and np.array_equal(got, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_tensors_roundtrip_exactly(dtype):
    x = torch.arange(6).reshape(2, 3).to(dtype)
    got = roundtrip(x)
    assert type(got) is torch.Tensor and got.dtype == dtype and torch.equal(got, x)


def test_an_ndarray_subclass_arrives_as_a_plain_ndarray():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return np.ones(self.shape, dtype=bool)
    x = np.zeros(3).view(Liar)
    got = roundtrip(x)
    assert type(got) is np.ndarray and not (got == np.ones(3)).all()


def test_a_float_subclass_arrives_as_a_plain_float():
    class Liar(float):
        def __eq__(self, other):
            return True
    got = roundtrip(Liar(0.5))
    assert type(got) is float and got != 1.0


def test_unsupported_values_never_compare_equal():
    got = roundtrip(x for x in range(3))
    assert isinstance(got, wire.Unsupported) and got != got


@pytest.mark.parametrize("node", [
    {"$nd": 0, "dtype": "object", "shape": [1]},
    {"$nd": 0, "dtype": "float64", "shape": [5]},
    {"$pt": 0, "dtype": "float32", "shape": [-1]},
    {"$obj": 1},
    {"$weird": 1},
])
def test_decoder_rejects_bad_nodes(node):
    with pytest.raises(wire.WireError):
        wire.Decoder([b"\x00" * 8]).decode(node)


class _ForgingSandbox:
    """Stands for a sandbox whose child sends back a forged reply."""

    def __init__(self, value):
        self.value = value

    def request(self, header, blobs=(), what=""):
        return {"ok": True, "value": self.value}, []

    def _die(self, kind, detail):
        raise AssertionError(f"died: {kind}: {detail}")


def test_a_reply_numpy_or_torch_refuse_is_the_graders_error_not_the_students():
    """torch.device('cuda:abc') raises RuntimeError while the reply is decoded: the suite must not
    see a RuntimeError (a ``pytest.raises(RuntimeError)`` would take it for the student's)."""
    from grader.sandbox.remote import UndecodableReply, _Client

    client = _Client(_ForgingSandbox({"$device": "cuda:abc"}), "cpu")
    with pytest.raises(UndecodableReply, match="could not decode") as info:
        client.request({"op": "call"})
    assert not isinstance(info.value, (ValueError, TypeError, RuntimeError))


# ---------------------------------------------------------------- fingerprints (the mutation check)
def fingerprint_of(args, kwargs=None):
    enc = wire.Encoder()
    tree = [enc.encode(list(args)), enc.encode(dict(kwargs or {}))]
    return wire.fingerprint(tree, enc.blobs)


def test_an_unchanged_argument_has_the_same_fingerprint():
    x = np.arange(6.0).reshape(2, 3)
    docs = [["a", "b"], ["c"]]
    assert fingerprint_of([x, docs], {"mask": torch.ones(2)}) == fingerprint_of([x.copy(), [["a", "b"], ["c"]]],
                                                                                {"mask": torch.ones(2)})


@pytest.mark.parametrize("change, place", [
    (lambda a, k: a[0].__setitem__((0, 0), 9.0), "x"),
    (lambda a, k: a[1][1].append("d"), "documents[1]"),
    (lambda a, k: a[1].reverse(), "documents[0]"),
    (lambda a, k: k["mask"].mul_(0), "mask"),
    (lambda a, k: k.__setitem__("extra", 1), "the arguments"),
])
def test_each_kind_of_change_in_place_is_named(change, place):
    args, kwargs = [np.arange(6.0).reshape(2, 3), [["a", "b"], ["c"]]], {"mask": torch.ones(2)}
    before = fingerprint_of(args, kwargs)
    change(args, kwargs)
    assert place in wire.changed_places(before, fingerprint_of(args, kwargs), ["x", "documents"])


def test_a_dtype_or_shape_change_is_a_change():
    x = np.zeros(4)
    assert fingerprint_of([x]) != fingerprint_of([x.astype(np.float32)])
    assert fingerprint_of([x]) != fingerprint_of([x.reshape(2, 2)])
