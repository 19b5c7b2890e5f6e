"""Suite for `decoder` (chapter 3.1, exercise 1): a Transformer decoder layer from the student's own parts.

The student's DecoderLayer, with weights copied in by their load_torch_decoder_layer, is
checked against PyTorch's own `nn.TransformerDecoderLayer(batch_first=True, norm_first=False)`
in eval mode (PyTorch's boolean masks mean True = blocked, the kata's True = may attend: the
suite translates).  Causality is a hypothesis property: with a causal mask, changing the
tokens after position i never changes the outputs at positions <= i (bit for bit on CPU,
since a blocked key gets exactly 0 weight).

Tolerances (float32), measured with the reference solution on 300 cases drawn like
`layer_cases` (outputs are LayerNorm'd, values up to ~4):
- float32 rounding (the same maths in another order: PyTorch's fused in-projection and its
  attention kernel vs the kata's): <= 8.3e-6 (median 5e-7).
- nearest bugs, on the cases where they can show: LayerNorm eps ignored (1e-5 instead of 1e-3)
  >= 3.8e-4 (median 1.8e-3); ReLU instead of GELU median 0.24; swapped norms >= 0.2; every
  other mapping or wiring bug >= 0.1 in nearly every case (the 20 examples always hit).
So TORCH_ATOL = 5e-5: 6x above the rounding, 7x below the smallest eps effect.
Wherever the cross-attention is looked at, the source and the target differ in length
(L_s != L_t) and memory is not x (another scale and offset), so keys/values taken from x, queries
taken from memory, or a mask meant for the other attention fail instead of passing by chance; the
tests of other things (shapes and dtypes, the residual probe) give L_s = L_t, so that such a
cross-attention fails first its own test, test_cross_attention_keys_and_values_come_from_memory.
Causality and memory padding compare a layer with itself: a blocked key gets exactly 0 weight,
so on the CPU the outputs are bit-identical (atol 0).

The mechanism tests (post-LN residuals, where the cross-attention reads its queries, keys and
values, dropout's place) use the student's own DecoderLayer with random weights set through its
state_dict and compare it with itself or with LayerNorms computed here: no weight loading and no
PyTorch layer, so a loader slip fails the loader's tests only, and a wiring slip is never blamed on
dropout.  Two probes do it exactly:
- every sub-layer's output projection 0 (W_O of both attentions, feed_forward.linear2): a post-LN
  layer is then norm3(norm2(norm1(x))), bit for bit (x + 0 == x);
- dropout=1.0 in train mode zeroes what it drops (nn.Dropout(1.0) gives zeros): dropout on each
  sub-layer's output before its residual sum leaves, again, norm3(norm2(norm1(x))).
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from grader.grading.checks import assert_close, assert_dtype, assert_not_mutated, assert_shape, graded
from grader.grading.testing import call_catching, fail_with, is_handle, message_of, raises_naming
from grader.i18n import msg

TORCH_ATOL = 5e-5


# ------------------------------------------------------------------ trusted helpers

def randomize_(module, seed):
    """Every parameter distinct and random: weights ~ N(0, 1/fan_in) (query and key rows of the
    in-projections twice that, so attention is sharp and a mix-up shows), biases and LayerNorm
    parameters far from 0 and 1 (so a forgotten bias or a swapped LayerNorm shows)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.startswith("norm") and name.endswith("weight"):
                p.copy_(1 + 0.3 * noise)
            elif name.endswith("bias"):
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[1]))
                if name.endswith("in_proj_weight"):
                    p[: 2 * p.shape[1]].mul_(2.0)
    return module


def torch_layer(d_model, heads, d_ff, activation="relu", dropout=0.0, eps=1e-5, seed=0):
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        layer = torch.nn.TransformerDecoderLayer(d_model, heads, d_ff, dropout=dropout, activation=activation,
                                                 layer_norm_eps=eps, batch_first=True, norm_first=False)
    finally:
        torch.random.set_rng_state(gen_state)
    return randomize_(layer, seed).eval()


def loaded_student_layer(student, device, layer, d_model, heads, d_ff, activation="relu", dropout=0.0, eps=1e-5):
    """The student's DecoderLayer holding ``layer``'s weights (copied by their own
    load_torch_decoder_layer from a copy of ``layer`` built in the sandbox), in eval mode."""
    remote = student.build("torch.nn.TransformerDecoderLayer", d_model, heads, d_ff, dropout=dropout,
                           activation=activation, layer_norm_eps=eps, batch_first=True, norm_first=False)
    remote.load_state_dict(layer.state_dict())
    remote.eval()
    mine = student.DecoderLayer(d_model, heads, d_ff, dropout=dropout, activation=activation, layer_norm_eps=eps)
    returned = student.load_torch_decoder_layer(mine, remote)
    assert is_handle(returned, of=mine), msg("decoder.load_torch_decoder_layer", returned=returned)
    mine.eval()
    mine.to(device)
    return mine


def tril(length):
    return torch.ones(length, length, dtype=torch.bool).tril()


def torch_masks(tgt_mask, memory_mask, heads):
    """The kata's masks (True = may attend) as nn.TransformerDecoderLayer's keyword arguments."""
    kw = {}
    for kata, name, pad_name in ((tgt_mask, "tgt_mask", "tgt_key_padding_mask"),
                                 (memory_mask, "memory_mask", "memory_key_padding_mask")):
        if kata is None:
            continue
        kata = kata.bool()                                    # a 0/1 mask means the same
        if kata.dim() == 2:                                   # (L_q, L_k)
            kw[name] = ~kata
        elif kata.shape[1:3] == (1, 1):                       # (B, 1, 1, L_k): key padding
            kw[pad_name] = ~kata[:, 0, 0, :]
        else:                                                 # (B, 1, L_q, L_k): one per (batch, head)
            B, _, Lq, Lk = kata.shape
            kw[name] = ~kata.expand(B, heads, Lq, Lk).reshape(B * heads, Lq, Lk)
    return kw


def run_torch(layer, x, memory, tgt_mask=None, memory_mask=None):
    with torch.no_grad():
        return layer(x, memory, **torch_masks(tgt_mask, memory_mask, layer.self_attn.num_heads))


# each sub-layer's last projection (the contract's names): all 0, the sub-layer outputs exactly 0
SUBLAYER_OUTPUTS = {"self_attn": "self_attn.W_O", "cross_attn": "cross_attn.W_O",
                    "feed_forward": "feed_forward.linear2"}


def silence(*sublayers):
    """An edit of a state_dict: the named sub-layers' output projections (weight and bias) set to 0."""
    def edit(state):
        for sub in sublayers:
            state[f"{SUBLAYER_OUTPUTS[sub]}.weight"].zero_()
            state[f"{SUBLAYER_OUTPUTS[sub]}.bias"].zero_()
    return edit


def own_layer(student, device, d_model, heads, d_ff, seed, dropout=0.0, edit=None):
    """The student's DecoderLayer(d_model, heads, d_ff, dropout, layer_norm_eps=1e-5: the defaults are
    the defaults tests' business) with every weight and bias drawn
    here by name and shape (weights ~ N(0, 1/fan_in), biases and LayerNorm parameters far from 0 and
    1), then ``edit(state)``, in eval mode: (layer, the state it holds, on the CPU)."""
    mine = student.DecoderLayer(d_model, heads, d_ff, dropout=dropout, layer_norm_eps=1e-5)   # no default
    state = {k: v.detach().cpu().clone() for k, v in mine.state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    for name, p in state.items():
        if not (p.is_floating_point() and name.endswith(("weight", "bias"))):
            continue                                               # a buffer of the student's own
        noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        if p.dim() >= 2:
            p.copy_(noise / math.sqrt(p.shape[-1]))
        elif name.startswith("norm") and name.endswith("weight"):
            p.copy_(1 + 0.3 * noise)
        else:
            p.copy_(0.2 * noise)
    if edit is not None:
        edit(state)
    mine.load_state_dict(state)
    mine.to(device)
    mine.eval()
    return mine, state


def norms_only(x, state, eps=1e-5):
    """norm3(norm2(norm1(x))) with the LayerNorms of ``state``: a post-LN layer whose sub-layers add 0."""
    for i in (1, 2, 3):
        x = F.layer_norm(x, x.shape[-1:], state[f"norm{i}.weight"], state[f"norm{i}.bias"], eps)
    return x


def decoder_inputs(seed, batch, L_t, L_s, d_model):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, L_t, d_model, generator=gen), 2.0 * torch.randn(batch, L_s, d_model, generator=gen) + 0.5


# ------------------------------------------------------------------ causal_mask

@pytest.mark.judges("causal_mask", stage=2, item="causal_mask")
@pytest.mark.parametrize("length", [1, 2, 5, 9])
def test_causal_mask_values(student, device, length):
    # the values only (True on and below the diagonal); the dtype, the device and length 0 are
    # conventions, tested next
    got = student.causal_mask(length, device=device)
    name = msg("decoder.causal_mask", length=length)
    assert_shape(got, (length, length), name)
    got, want = got.cpu().bool(), tril(length)
    if not torch.equal(got, want):
        i, j = [int(v) for v in (got != want).nonzero()[0]]
        raise AssertionError(msg("decoder.causal_mask_must_allow" if want[i, j] else "decoder.causal_mask_must_block",
                                 name=name, i=i, j=j, value=bool(got[i, j])))


@pytest.mark.judges("causal_mask", stage=1, item="conventions")
@pytest.mark.parametrize("length", [0, 3])
def test_causal_mask_dtype_and_device(student, device, length):
    # a bool tensor on the device asked for; length 0 (an empty sequence) is a valid, empty mask
    got = student.causal_mask(length, device=device)
    name = msg("decoder.causal_mask", length=length)
    assert_shape(got, (length, length), name)
    assert_dtype(got, torch.bool, name)
    assert got.device.type == device.type, msg("decoder.device_asked", name=name, got_device=got.device,
                                               device=device)


@pytest.mark.judges("causal_mask", stage=1, item="conventions")
def test_causal_mask_default_device(student):
    got = student.causal_mask(3)
    assert isinstance(got, torch.Tensor) and got.device.type == "cpu", msg("decoder.causal_mask_3_without",
                                                                           got=got)


@pytest.mark.judges("causal_mask", stage=0, item="contract")
def test_causal_mask_bad_length(student):
    with pytest.raises(ValueError, match="length"):
        student.causal_mask(-1)
    with pytest.raises((ValueError, TypeError), match="length"):
        student.causal_mask(2.5)


# ------------------------------------------------------------------ post-LN residuals, cross-attention (own weights)

@pytest.mark.judges("DecoderLayer", stage=2, item="layer")
def test_each_sublayer_output_is_added_to_its_input_then_normalised(student, device):
    # post-LN: h1 = norm1(x + SA(x)), h2 = norm2(h1 + CA(h1, memory)), out = norm3(h2 + FFN(h2)).  With
    # every sub-layer's output 0 the layer is norm3(norm2(norm1(x))) exactly: a missing residual
    # normalises 0 (leaving a norm's bias), a pre-LN layer returns x, norms out of order differ.
    # L_s = L_t here: where the cross-attention reads from is the next tests' business.
    mine, state = own_layer(student, device, 16, 4, 24, seed=91, edit=silence(*SUBLAYER_OUTPUTS))
    x, memory = decoder_inputs(92, 2, 5, 5, 16)
    got = mine(x.to(device), memory.to(device), tril(5).to(device))
    assert_close(got, norms_only(x, state).to(device), atol=1e-5, name=msg("decoder.residual_probe"))


@pytest.mark.judges("DecoderLayer", stage=2, item="cross_attention")
def test_cross_attention_keys_and_values_come_from_memory(student, device):
    # L_t = 5 targets, L_s = 7 sources, no tgt_mask (only the cross-attention is looked at here);
    # memory_mask hides source positions 4..6 of sequence 1.  The keys and values come from memory:
    # changing memory where a query may look moves the output at EVERY target position (the
    # cross-attention has no causal mask); changing it where memory_mask blocks moves nothing (a
    # blocked key gets exactly 0 weight)
    mine, _ = own_layer(student, device, 16, 4, 24, seed=51)
    x, memory = decoder_inputs(52, 2, 5, 7, 16)
    keep = (torch.arange(7)[None, :] < torch.tensor([7, 4])[:, None])[:, None, None, :]    # (B, 1, 1, L_s)
    base, error = call_catching(mine, x.to(device), memory.to(device), memory_mask=keep.to(device))
    assert error is None, msg("decoder.cross_attention_lengths", error=type(error).__name__,
                              message=message_of(error)[:300])
    assert_shape(base, (2, 5, 16), msg("decoder.cross_attention_output"))
    gen = torch.Generator().manual_seed(53)
    other = memory.clone()
    other[:, 0] += 2.0 * torch.randn(2, 16, generator=gen)                   # position 0 is real in both
    moved = (mine(x.to(device), other.to(device), memory_mask=keep.to(device)) - base).abs().amax(-1)
    least = float(moved.min())
    assert least > 1e-3, msg("decoder.cross_attention_ignores_memory", moved=least)
    hidden = torch.where(keep[:, 0, 0, :, None], memory, 100.0 * torch.randn(2, 7, 16, generator=gen))
    again = mine(x.to(device), hidden.to(device), memory_mask=keep.to(device))
    assert_close(again, base, atol=1e-6, name=msg("decoder.cross_attention_blocked_memory"))


@pytest.mark.judges("DecoderLayer", stage=2, item="cross_attention")
def test_cross_attention_queries_are_the_first_sublayers_output(student, device):
    # norm1's weight 0 makes h1 = norm1(x + SA(x)) equal norm1.bias at every position, whatever x is.
    # The cross-attention's queries (and its residual) are h1, as in nn.TransformerDecoderLayer, so
    # nothing after the first Add & Norm may depend on x any more; queries taken from the raw x do
    mine, _ = own_layer(student, device, 16, 4, 24, seed=55, edit=lambda state: state["norm1.weight"].zero_())
    x, memory = decoder_inputs(56, 2, 5, 7, 16)
    other = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(57))
    got = mine(other.to(device), memory.to(device))
    assert_close(got, mine(x.to(device), memory.to(device)), atol=1e-6, name=msg("decoder.queries_from_h1"))


# ------------------------------------------------------------------ DecoderLayer vs nn.TransformerDecoderLayer

@st.composite
def layer_cases(draw):
    heads = draw(st.sampled_from([1, 2, 4]), label="num_heads")
    head_dim = draw(st.sampled_from([2, 4, 8]), label="head_dim")
    L_t = draw(st.integers(1, 9), label="L_t")
    return dict(
        heads=heads, d_model=heads * head_dim, d_ff=draw(st.integers(4, 48), label="d_ff"),
        batch=draw(st.integers(1, 3), label="batch"),
        L_t=L_t, L_s=other_length(draw, L_t, 9),
        tgt_mask=draw(st.sampled_from(["none", "causal", "random", "padding", "causal_padding"]), label="tgt_mask"),
        memory_mask=draw(st.sampled_from(["none", "padding", "padding_long", "random_2d"]), label="memory_mask"),
        seed=draw(st.integers(0, 2**31 - 1), label="seed"))


def other_length(draw, L_t, most):
    """L_s in 1..most, never L_t (so a mix-up of source and target fails on the shapes)."""
    L_s = draw(st.integers(1, most - 1), label="L_s")
    return L_s + 1 if L_s >= L_t else L_s


def case_inputs(c):
    gen = torch.Generator().manual_seed(c["seed"] + 1)
    B, Lt, Ls, d = c["batch"], c["L_t"], c["L_s"], c["d_model"]
    x = torch.randn(B, Lt, d, generator=gen)
    memory = 2.0 * torch.randn(B, Ls, d, generator=gen) + 0.5      # not x's scale: a mix-up shows
    tgt = None
    if c["tgt_mask"] == "causal":
        tgt = tril(Lt)
    elif c["tgt_mask"] == "random":
        tgt = (torch.rand(B, 1, Lt, Lt, generator=gen) < 0.6) | torch.eye(Lt, dtype=torch.bool)
    elif c["tgt_mask"] in ("padding", "causal_padding"):                # key 0 is always real: no empty row
        lengths = torch.randint(1, Lt + 1, (B,), generator=gen)
        tgt = (torch.arange(Lt)[None, :] < lengths[:, None])[:, None, None, :]            # (B, 1, 1, L_t)
        if c["tgt_mask"] == "causal_padding":
            tgt = tgt & tril(Lt)                                                          # (B, 1, L_t, L_t)
    mem = None
    if c["memory_mask"] in ("padding", "padding_long"):
        lengths = torch.randint(1, Ls + 1, (B,), generator=gen)
        mem = (torch.arange(Ls)[None, :] < lengths[:, None])[:, None, None, :]
        if c["memory_mask"] == "padding_long":
            mem = mem.long()                                                              # 1 = may attend
    elif c["memory_mask"] == "random_2d":
        mem = torch.rand(Lt, Ls, generator=gen) < 0.6
        mem[:, 0] = True                                            # every query may attend somewhere
    return x, memory, tgt, mem


def on(device, t):
    return None if t is None else t.to(device)


@pytest.mark.judges("DecoderLayer", "load_torch_decoder_layer", stage=3, item="layer")
@graded(max_examples=20)
@given(case=layer_cases())
def test_decoder_layer_matches_torch_decoder_layer(student, device, case):
    d, h, d_ff = case["d_model"], case["heads"], case["d_ff"]
    # ReLU and eps 1e-5, passed as keywords: the other activation and eps are the options' test
    layer = torch_layer(d, h, d_ff, "relu", eps=1e-5, seed=case["seed"])
    mine = loaded_student_layer(student, device, layer, d, h, d_ff, "relu", eps=1e-5)
    x, memory, tgt, mem = case_inputs(case)
    got = mine(x.to(device), memory.to(device), on(device, tgt), on(device, mem))
    want = run_torch(layer, x, memory, tgt, mem)
    assert_close(got, want.to(device), atol=TORCH_ATOL,
                 name=msg("decoder.decoderlayer_output_nn_transformerdecoderlayer",
                          case_activation="relu", case_tgt_mask=case['tgt_mask'],
                          case_memory_mask=case['memory_mask']))


@pytest.mark.judges("DecoderLayer", "load_torch_decoder_layer", stage=2, item="defaults")
@pytest.mark.parametrize("activation, eps", [("gelu", 1e-5), ("relu", 1e-3)],
                         ids=["activation gelu", "layer_norm_eps 1e-3"])
def test_decoder_layer_honours_activation_and_layer_norm_eps(student, device, activation, eps):
    # activation and layer_norm_eps reach the feed-forward and the three LayerNorms, as they do in
    # nn.TransformerDecoderLayer (an eps of 1e-3 moves outputs of size 1 by about 5e-4)
    d, h, d_ff = 16, 4, 24
    layer = torch_layer(d, h, d_ff, activation, eps=eps, seed=89)
    mine = loaded_student_layer(student, device, layer, d, h, d_ff, activation, eps=eps)
    gen = torch.Generator().manual_seed(89)
    x, memory = torch.randn(2, 5, d, generator=gen), 2 * torch.randn(2, 7, d, generator=gen) + 0.5
    tgt = tril(5)
    got = mine(x.to(device), memory.to(device), tgt.to(device))
    want = run_torch(layer, x, memory, tgt)
    assert_close(got, want.to(device), atol=TORCH_ATOL,
                 name=msg("decoder.options", activation=activation, eps=eps))


@pytest.mark.judges("load_torch_decoder_layer", stage=2, item="layer")
def test_load_torch_decoder_layer_maps_each_weight(student):
    d, h, d_ff = 12, 3, 12                                           # square feed-forward weights too
    layer = torch_layer(d, h, d_ff, seed=31)
    mine = loaded_student_layer(student, "cpu", layer, d, h, d_ff)
    got = {k: v.detach().cpu() for k, v in mine.state_dict().items() if isinstance(v, torch.Tensor)}
    theirs = layer.state_dict()
    pieces = {}
    for side, attn in (("self_attn", "self_attn"), ("cross_attn", "multihead_attn")):
        w, b = theirs[f"{attn}.in_proj_weight"], theirs[f"{attn}.in_proj_bias"]
        for k, proj in enumerate(("W_Q", "W_K", "W_V")):
            rows = f"{attn}.in_proj_weight[{k * d}:{(k + 1) * d}]"
            pieces[f"{side}.{proj}.weight"] = (rows, w[k * d:(k + 1) * d])
            pieces[f"{side}.{proj}.bias"] = (rows.replace("weight", "bias"), b[k * d:(k + 1) * d])
        pieces[f"{side}.W_O.weight"] = (f"{attn}.out_proj.weight", theirs[f"{attn}.out_proj.weight"])
        pieces[f"{side}.W_O.bias"] = (f"{attn}.out_proj.bias", theirs[f"{attn}.out_proj.bias"])
    for name in ("linear1", "linear2"):
        for kind in ("weight", "bias"):
            pieces[f"feed_forward.{name}.{kind}"] = (f"{name}.{kind}", theirs[f"{name}.{kind}"])
    for name in ("norm1", "norm2", "norm3"):
        for kind in ("weight", "bias"):
            pieces[f"{name}.{kind}"] = (f"{name}.{kind}", theirs[f"{name}.{kind}"])
    problems = []
    for mine_name, (torch_name, want) in pieces.items():
        if mine_name not in got:
            problems.append(msg("decoder.layer_has_no_parameter", mine_name=mine_name))
            continue
        if got[mine_name].shape == want.shape and torch.equal(got[mine_name], want):
            continue
        holder = next((tn for tn, w in pieces.values() if w.shape == got[mine_name].shape
                       and torch.equal(got[mine_name], w)), None)
        if holder is not None:
            problems.append(msg("decoder.holds_torch_which_belongs", mine_name=mine_name, holder=holder))
        else:
            problems.append(msg("decoder.holds_no_weight_torch", mine_name=mine_name))
    fail_with(problems)


@pytest.mark.judges("load_torch_decoder_layer", stage=2, item="conventions")
def test_load_torch_decoder_layer_copies_the_weights(student):
    # "copy the weights ... into your layer": afterwards the two layers share no storage, so changing
    # torch_layer (here: loading other weights into it) leaves your layer as it was
    # (nn.Parameter(w_q) on a slice of in_proj_weight, or `mine.weight = theirs.weight`, shares it)
    d, h, d_ff = 8, 2, 12
    layer = torch_layer(d, h, d_ff, seed=33)
    remote = student.build("torch.nn.TransformerDecoderLayer", d, h, d_ff, dropout=0.0, batch_first=True)
    remote.load_state_dict(layer.state_dict())
    mine = student.load_torch_decoder_layer(student.DecoderLayer(d, h, d_ff, dropout=0.0), remote)
    before = {k: v.detach().cpu().clone() for k, v in mine.state_dict().items()}
    remote.load_state_dict(torch_layer(d, h, d_ff, seed=34).state_dict())
    after = mine.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k].detach().cpu()))
    assert not changed, msg("decoder.load_shares_storage", names=", ".join(changed[:4]))


# ------------------------------------------------------------------ causality

@st.composite
def causal_cases(draw):
    heads = draw(st.sampled_from([1, 2, 4]), label="num_heads")
    L_t = draw(st.integers(2, 10), label="L_t")
    # head_dim >= 4: with d_model 2 a LayerNorm maps every row to +-1 and squashes a real leak to ~1e-7
    return dict(heads=heads, d_model=heads * draw(st.sampled_from([4, 8]), label="head_dim"),
                d_ff=draw(st.integers(4, 32), label="d_ff"), batch=draw(st.integers(1, 3), label="batch"),
                L_t=L_t, L_s=other_length(draw, L_t, 10), i=draw(st.integers(0, L_t - 2), label="i"),
                own_mask=draw(st.booleans(), label="your causal_mask"),
                seed=draw(st.integers(0, 2**31 - 1), label="seed"))


@pytest.mark.judges("DecoderLayer", "causal_mask", stage=2, item="causality")
@graded(max_examples=15)
@given(case=causal_cases())
def test_decoder_is_causal(student, device, case):
    d, h, i = case["d_model"], case["heads"], case["i"]
    layer = torch_layer(d, h, case["d_ff"], seed=case["seed"])
    mine = loaded_student_layer(student, device, layer, d, h, case["d_ff"])
    gen = torch.Generator().manual_seed(case["seed"] + 2)
    B, Lt, Ls = case["batch"], case["L_t"], case["L_s"]
    x = torch.randn(B, Lt, d, generator=gen)
    memory = torch.randn(B, Ls, d, generator=gen)
    later = x.clone()
    later[:, i + 1:] = 3.0 * torch.randn(B, Lt - i - 1, d, generator=gen)     # every token after i changes
    mask = student.causal_mask(Lt, device=device) if case["own_mask"] else tril(Lt).to(device)
    base = mine(x.to(device), memory.to(device), mask)
    changed = mine(later.to(device), memory.to(device), mask)
    which = msg("decoder.causal_mask_2") if case["own_mask"] else msg("decoder.correct_causal_mask")
    # a blocked key gets exactly 0 weight: on the CPU nothing at positions <= i may move at all
    assert_close(changed[:, :i + 1], base[:, :i + 1], atol=0.0 if device.type == "cpu" else 1e-6,
                 name=msg("decoder.outputs_positions_0_after", i=i, which=which))


@pytest.mark.judges("DecoderLayer", stage=2, item="causality")
def test_later_tokens_do_matter_without_the_mask(student, device):
    # the other half of causality: the same layer without a mask does look ahead (the property above
    # is not passed by a layer that ignores x's later tokens for another reason)
    layer = torch_layer(8, 2, 16, seed=41)
    mine = loaded_student_layer(student, device, layer, 8, 2, 16)
    gen = torch.Generator().manual_seed(42)
    x, memory = torch.randn(1, 5, 8, generator=gen), torch.randn(1, 4, 8, generator=gen)
    later = x.clone()
    later[:, 3:] += 1.0
    got = mine(later.to(device), memory.to(device)) - mine(x.to(device), memory.to(device))
    moved = float(got[:, :3].abs().max())
    assert moved > 1e-3, msg("decoder.without_tgt_mask_changing", moved=moved)


# ------------------------------------------------------------------ dropout (own weights)

@pytest.mark.judges("DecoderLayer", stage=2, item="dropout")
@pytest.mark.parametrize("live", list(SUBLAYER_OUTPUTS))
def test_dropout_drops_each_sublayers_output_before_its_residual(student, device, live):
    # dropout=1.0 in train mode drops a sub-layer's output whole (nn.Dropout(1.0) gives zeros), as in
    # nn.TransformerDecoderLayer: norm(h + dropout(sublayer(h))) = norm(h).  Only `live` keeps its
    # output projection (the others' are 0), so a dropout missing from its output, or moved onto its
    # input or its residual, lets that sub-layer (or the lost residual) show in the result
    others = [sub for sub in SUBLAYER_OUTPUTS if sub != live]
    mine, state = own_layer(student, device, 16, 4, 24, seed=61, dropout=1.0, edit=silence(*others))
    x, memory = decoder_inputs(62, 2, 5, 7, 16)
    mine.train()
    student.seed(0)
    got = mine(x.to(device), memory.to(device), tril(5).to(device))
    assert_close(got, norms_only(x, state).to(device), atol=1e-5, name=msg("decoder.dropout_1_sublayer", sublayer=live))


@pytest.mark.judges("DecoderLayer", stage=2, item="dropout")
def test_dropout_never_touches_the_residual_path(student, device):
    # "dropout on each sub-layer's output before the residual sum": with every sub-layer's output 0
    # a dropout inside a sub-layer or on its output drops only zeros, so train mode gives
    # norm3(norm2(norm1(x))); dropping x + sub-layer (or x) does not
    mine, state = own_layer(student, device, 16, 2, 32, seed=65, dropout=0.5, edit=silence(*SUBLAYER_OUTPUTS))
    x, memory = decoder_inputs(66, 2, 6, 4, 16)
    mine.train()
    student.seed(0)
    got = mine(x.to(device), memory.to(device), tril(6).to(device))
    assert_close(got, norms_only(x, state).to(device), atol=1e-5, name=msg("decoder.train_mode_zero_sublayers"))


@pytest.mark.judges("DecoderLayer", stage=2, item="dropout")
def test_dropout_only_in_train_mode(student, device):
    # dropout=0.3: eval mode equals the same weights with dropout=0.0; train mode drops (moves the
    # output), and the same seed drops the same units
    mine, state = own_layer(student, device, 16, 2, 32, seed=67, dropout=0.3)
    plain = student.DecoderLayer(16, 2, 32, dropout=0.0, layer_norm_eps=1e-5)
    plain.load_state_dict(state)
    plain.to(device)
    plain.eval()
    x, memory = decoder_inputs(68, 2, 6, 4, 16)
    x, memory, mask = x.to(device), memory.to(device), tril(6).to(device)
    evaluated = mine(x, memory, mask)
    assert_close(evaluated, plain(x, memory, mask), atol=1e-6, name=msg("decoder.decoderlayer_dropout_0_3"))
    mine.train()
    student.seed(0)
    first = mine(x, memory, mask)
    student.seed(0)
    second = mine(x, memory, mask)
    moved = float((first - evaluated).abs().max())
    assert moved > 1e-3, msg("decoder.train_mode_dropout_0", moved=moved)
    assert torch.equal(first, second), msg("decoder.train_mode_same_seed")


@pytest.mark.judges("DecoderLayer", stage=2, item="dropout")
def test_dropout_0_changes_nothing_in_train_mode(student, device):
    # dropout=0.0 reaches every part (a feed-forward built without it would drop at its own 0.1)
    mine, _ = own_layer(student, device, 16, 2, 32, seed=63)
    x, memory = decoder_inputs(64, 2, 6, 4, 16)
    x, memory, mask = x.to(device), memory.to(device), tril(6).to(device)
    evaluated = mine(x, memory, mask)
    mine.train()
    student.seed(0)
    assert_close(mine(x, memory, mask), evaluated, atol=1e-6, name=msg("decoder.train_mode_dropout_0_0"))


# ------------------------------------------------------------------ shapes, dtypes, bad arguments

@pytest.mark.judges("DecoderLayer", stage=1, item="conventions")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decoder_layer_shape_and_dtype(student, device, dtype):
    # L_s = L_t: only the output's shape, dtype and device are looked at here (a cross-attention that
    # reads the wrong lengths fails test_cross_attention_keys_and_values_come_from_memory)
    mine = student.DecoderLayer(16, 4, 20)
    mine.eval()
    mine.to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(71)
    x = torch.randn(3, 5, 16, generator=gen, dtype=dtype).to(device)
    memory = torch.randn(3, 5, 16, generator=gen, dtype=dtype).to(device)
    out = mine(x, memory, tril(5).to(device))
    name = msg("decoder.decoderlayer_output_x_3", dtype=dtype)
    assert_shape(out, (3, 5, 16), name)
    assert_dtype(out, dtype, name)
    assert out.device.type == device.type, msg("decoder.inputs", name=name, out_device=out.device,
                                               device=device)


def default_student_layer(student, device, layer):
    """The student's DecoderLayer(16, 4, 20) with every default, holding ``layer``'s weights, in eval mode."""
    remote = student.build("torch.nn.TransformerDecoderLayer", 16, 4, 20, dropout=0.0, batch_first=True)
    remote.load_state_dict(layer.state_dict())
    mine = student.load_torch_decoder_layer(student.DecoderLayer(16, 4, 20), remote)
    mine.eval()
    mine.to(device)
    return mine


@pytest.mark.judges("DecoderLayer", stage=2, item="defaults")
def test_defaults_are_torch_decoder_layers(student, device):
    # DecoderLayer(d_model, num_heads, d_ff) with no keywords: ReLU and LayerNorm eps 1e-5, like
    # nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward) with its defaults (no masks: the
    # masks' handling is the causality and cross-attention tests' business)
    layer = torch_layer(16, 4, 20, seed=83)
    mine = default_student_layer(student, device, layer)
    gen = torch.Generator().manual_seed(83)
    x, memory = torch.randn(2, 5, 16, generator=gen), 3 * torch.randn(2, 7, 16, generator=gen) + 1
    got = mine(x.to(device), memory.to(device))
    assert_close(got, run_torch(layer, x, memory).to(device), atol=TORCH_ATOL, name=msg("decoder.defaults"))
    # the default dropout (0.1) acts in train mode
    mine.train()
    student.seed(0)
    moved = float((mine(x.to(device), memory.to(device)) - got).abs().max())
    mine.eval()
    assert moved > 1e-3, msg("decoder.default_dropout_train_mode", moved=moved)


@pytest.mark.judges("DecoderLayer", stage=2, item="defaults")
def test_default_layer_norm_eps_is_1e_5(student, device):
    # LayerNorm's eps only shows where the variance is small: inputs of size 1e-3 and no biases
    # outside the norms make every sub-layer sum that small (eps 1e-12 moves the output by ~1.3)
    layer = torch_layer(16, 4, 20, seed=83)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("bias") and not name.startswith("norm"):
                p.zero_()
    mine = default_student_layer(student, device, layer)
    gen = torch.Generator().manual_seed(85)
    x, memory = 1e-3 * torch.randn(2, 5, 16, generator=gen), 1e-3 * torch.randn(2, 7, 16, generator=gen)
    got = mine(x.to(device), memory.to(device))
    assert_close(got, run_torch(layer, x, memory).to(device), atol=TORCH_ATOL,
                 name=msg("decoder.default_eps_small_inputs"))


@pytest.mark.judges("DecoderLayer", stage=1, item="conventions")
def test_decoder_layer_with_sizes_above_256(student, device):
    # sizes above 256 (a batch of 257, d_model 264) are where comparing Python ints with `is not`
    # (object identity) stops agreeing with != (L_s = L_t: only the sizes are looked at here)
    mine = student.DecoderLayer(264, 4, 16)
    mine.to(device)
    mine.eval()
    gen = torch.Generator().manual_seed(84)
    x, memory = torch.randn(257, 3, 264, generator=gen), torch.randn(257, 3, 264, generator=gen) + 0.5
    out, error = call_catching(mine, x.to(device), memory.to(device), tril(3).to(device))
    assert error is None, msg("decoder.d_model_264", error=type(error).__name__, message=message_of(error)[:300])
    assert_shape(out, (257, 3, 264), msg("decoder.d_model_264_output"))


@pytest.mark.judges("DecoderLayer", stage=1, item="conventions")
def test_forward_leaves_its_inputs_alone(student, device):
    # x, memory and both masks come back unchanged (an in-place residual sum, x += ..., would change
    # the caller's x)
    mine, _ = own_layer(student, device, 16, 4, 24, seed=87)
    x, memory = decoder_inputs(88, 2, 5, 5, 16)
    mine(x.to(device), memory.to(device), tril(5).to(device), torch.ones(2, 1, 1, 5, dtype=torch.bool, device=device))
    assert_not_mutated(student, msg("decoder.inputs_left_alone"))


@pytest.mark.judges("DecoderLayer", stage=0, item="contract")
def test_decoder_layer_attributes(student):
    mine = student.DecoderLayer(8, 2, 12, dropout=0.0, activation="gelu", layer_norm_eps=1e-6)
    names = set(mine.state_dict())
    missing = [n for n in ("self_attn.W_Q.weight", "cross_attn.W_Q.weight", "feed_forward.linear1.weight",
                           "norm1.weight", "norm2.weight", "norm3.weight") if n not in names]
    assert not missing, msg("decoder.decoderlayer_state_dict_has", value=', '.join(missing))
    sd = mine.state_dict()
    assert not torch.equal(sd["self_attn.W_Q.weight"], sd["cross_attn.W_Q.weight"]), msg("decoder.self_attn_cross_attn")


@pytest.mark.judges("DecoderLayer", stage=0, item="contract")
def test_decoder_layer_bad_arguments(student):
    with pytest.raises(ValueError, match="d_model|num_heads"):
        student.DecoderLayer(10, 3, 16)
    with pytest.raises(ValueError, match="activation"):
        student.DecoderLayer(8, 2, 16, activation="tanh")


# x (2, 3, 8) and memory (2, 4, 8) with one of them wrong, the batch sizes kept equal so that only
# the docstring's check ("not 3-D or whose last size is not d_model") can name the argument
BAD_INPUTS = {"x 2-D": ("x", (2, 8), (2, 4, 8)), "x 4-D": ("x", (1, 2, 3, 8), (1, 4, 8)),
              "x d_model 6": ("x", (2, 3, 6), (2, 4, 8)), "x d_model 10": ("x", (2, 3, 10), (2, 4, 8)),
              "memory 2-D": ("memory", (2, 3, 8), (2, 8)), "memory 4-D": ("memory", (1, 3, 8), (1, 2, 4, 8)),
              "memory d_model 6": ("memory", (2, 3, 8), (2, 4, 6)),
              "memory d_model 10": ("memory", (2, 3, 8), (2, 4, 10))}


@pytest.mark.judges("DecoderLayer", stage=0, item="contract")
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_decoder_layer_rejects_inputs_of_the_wrong_shape(student, case):
    name, x_shape, memory_shape = BAD_INPUTS[case]
    mine = student.DecoderLayer(8, 2, 16)
    mine.eval()
    gen = torch.Generator().manual_seed(82)
    x, memory = torch.randn(x_shape, generator=gen), torch.randn(memory_shape, generator=gen)
    with raises_naming(ValueError, rf"\b{name}\b", name):
        mine(x, memory)


def mask_reaches_its_attention(mine, x, memory, which):
    """Whether ``which`` is used at all: blocking every key but the first moves the output (or the
    call raises).  A layer that never passes a mask on fails the causality or cross-attention tests;
    the wrong-length test below then has nothing to say."""
    keys = x.shape[1] if which == "tgt_mask" else memory.shape[1]
    first = torch.zeros(x.shape[0], 1, 1, keys, dtype=torch.bool)
    first[..., 0] = True
    out, error = call_catching(mine, x, memory, **{which: first})
    return error is not None or not torch.equal(out, mine(x, memory))


@pytest.mark.judges("DecoderLayer", stage=0, item="contract")
@pytest.mark.parametrize("which", ["tgt_mask", "memory_mask"])
def test_decoder_layer_mask_of_the_wrong_length(student, which):
    # L_t = 3, L_s = 4: a (B, 1, 1, 5) mask fits neither the self-attention's scores (.., 3, 3) nor the
    # cross-attention's (.., 3, 4); a ValueError naming the mask, never a silent broadcast (the error
    # may come from your MultiHeadAttention)
    mine = student.DecoderLayer(8, 2, 16)
    mine.eval()
    gen = torch.Generator().manual_seed(81)
    x, memory = torch.randn(2, 3, 8, generator=gen), torch.randn(2, 4, 8, generator=gen)
    if not mask_reaches_its_attention(mine, x, memory, which):
        return
    with pytest.raises(ValueError, match="mask"):
        mine(x, memory, **{which: torch.ones(2, 1, 1, 5, dtype=torch.bool)})
