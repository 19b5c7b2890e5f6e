"""Suite for exercises/attention_torch.py (chapter 3.2, 3.3): ScaledDotProductAttention and
MultiHeadAttention, checked against the reference, HuggingFace BertSelfAttention and
torch.nn.MultiheadAttention."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from grader.grading.checks import (assert_close, assert_dtype, assert_finite, assert_not_mutated, assert_shape,
                           graded)
from grader.grading.hf import additive_mask, seeded, small_config
from grader.i18n import msg
from grader.grading.strategies import random_mask, seeds

# float32 throughout: matmul vs einsum vs per-head loops reorder sums (~1e-6); the bugs
# this suite must catch (no scaling, heads split the wrong way, mask inverted) are > 1e-2.
TOL = dict(atol=2e-5, rtol=1e-4)
TOL64 = dict(atol=1e-10, rtol=1e-9)


def tensor(rng, shape, device, dtype=torch.float32, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(device=device, dtype=dtype)


def bool_mask(rng, shape, device):
    return torch.from_numpy(random_mask(rng, shape)).to(device)


def copy_of(student, module, device, **kwargs):
    """The student's MultiHeadAttention holding ``module``'s weights (a reference MHA)."""
    m = student.MultiHeadAttention(module.d_model, module.num_heads, **kwargs)
    m.load_state_dict({k: v.cpu() for k, v in module.state_dict().items()})
    return m.to(str(device)).eval()


def load_weights(student_mha, weights: dict):
    """Load W_Q/W_K/W_V/W_O weights into a student's MHA, keeping any other entries it has."""
    sd = student_mha.state_dict()
    missing = [k for k in weights if k not in sd]
    assert not missing, msg("attention_torch.multiheadattention_has_no_parameters", missing=missing)
    sd.update({k: v.detach().cpu() for k, v in weights.items()})
    student_mha.load_state_dict(sd)


def reference_mha(reference, d_model, num_heads, seed, device):
    return seeded(lambda: reference.MultiHeadAttention(d_model, num_heads), seed).to(device).eval()


# ------------------------------------------------------------------ ScaledDotProductAttention

@graded(max_examples=30)
@given(seed=seeds, four_d=st.booleans(), L_q=st.integers(1, 6), L_k=st.integers(1, 6),
       d_k=st.integers(1, 8), masked=st.booleans())
def test_sdpa_matches_torch_functional(student, reference, device, seed, four_d, L_q, L_k, d_k, masked):
    rng = np.random.default_rng(seed)
    lead = (2, 3) if four_d else (2,)
    Q, K, V = (tensor(rng, (*lead, n, d_k), device, scale=2.0) for n in (L_q, L_k, L_k))
    mask = bool_mask(rng, (*lead, L_q, L_k), device) if masked else None
    out, w = student.ScaledDotProductAttention(d_k)(Q, K, V, mask)
    want = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    assert_close(out, want, name=msg("attention_torch.output_torch_nn_functional"), **TOL)
    _, want_w = reference.ScaledDotProductAttention(d_k)(Q, K, V, mask)
    assert_close(w, want_w, name=msg("attention_torch.attention_weights"), **TOL)


def test_sdpa_chapter_shapes(student, device):
    rng = np.random.default_rng(0)
    Q = tensor(rng, (2, 5, 64), device)
    out, w = student.ScaledDotProductAttention(64)(Q, Q, Q)
    assert_shape(out, (2, 5, 64), msg("attention_torch.output_q_k_v"))
    assert_shape(w, (2, 5, 5), msg("attention_torch.weights_q_k_v"))


def test_sdpa_blocked_keys_and_fully_blocked_rows(student, device):
    rng = np.random.default_rng(1)
    Q, K, V = (tensor(rng, (1, 2, 4, 8), device) for _ in range(3))
    mask = torch.ones(1, 2, 4, 4, dtype=torch.bool, device=device)
    mask[..., 2] = False            # key 2 blocked everywhere (False = blocked)
    mask[0, 1, 3, :] = False        # head 1, query 3: every key blocked
    out, w = student.ScaledDotProductAttention(8)(Q, K, V, mask)
    assert_finite(w, msg("attention_torch.weights_fully_blocked_query"))
    assert_finite(out, msg("attention_torch.output_fully_blocked_query"))
    blocked = w[..., 2].clone()
    blocked[0, 1, 3] = 0.0          # the fully blocked row may spread its weight anyhow
    assert_close(blocked, torch.zeros_like(blocked), atol=1e-12, name=msg("attention_torch.weights_blocked_key"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sdpa_keeps_dtype_and_device(student, device, dtype):
    rng = np.random.default_rng(2)
    Q = tensor(rng, (2, 3, 4), device, dtype=dtype)
    out, w = student.ScaledDotProductAttention(4)(Q, Q, Q)
    assert_dtype(out, dtype, msg("attention_torch.output_dtype", dtype=dtype))
    assert_dtype(w, dtype, msg("attention_torch.weights_dtype", dtype=dtype))
    assert out.device.type == device.type, msg("attention_torch.output_inputs", out_device=out.device,
                                               device=device)


# ------------------------------------------------------------------ MultiHeadAttention

def test_mha_has_named_linear_projections(student):
    m = student.MultiHeadAttention(16, 4)
    sd = m.state_dict()
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        for part, shape in (("weight", (16, 16)), ("bias", (16,))):
            key = f"{name}.{part}"
            assert key in sd, msg("attention_torch.multiheadattention_16_4_has", key_name=key, name=name)
            assert_shape(sd[key], shape, key)


MASK_KINDS = ["none", "padding (B, 1, 1, L_k)", "shared (L_q, L_k)", "full (B, 1, L_q, L_k)"]


def make_mask(kind, rng, B, L_q, L_k, device):
    if kind == "none":
        return None
    if kind.startswith("padding"):
        return bool_mask(rng, (B, 1, 1, L_k), device)
    if kind.startswith("shared"):
        return bool_mask(rng, (L_q, L_k), device)
    return bool_mask(rng, (B, 1, L_q, L_k), device)


@graded(max_examples=25)
@given(seed=seeds, B=st.integers(1, 3), L_q=st.integers(1, 5), L_k=st.integers(1, 5),
       heads=st.sampled_from([1, 2, 4]), d_k=st.integers(1, 4), cross=st.booleans(),
       mask_kind=st.sampled_from(MASK_KINDS))
def test_mha_matches_reference(student, reference, device, seed, B, L_q, L_k, heads, d_k, cross, mask_kind):
    d_model = heads * d_k
    rng = np.random.default_rng(seed)
    ref = reference_mha(reference, d_model, heads, seed % 1000, device)
    mha = copy_of(student, ref, device)
    if not cross:
        L_k = L_q
    Q = tensor(rng, (B, L_q, d_model), device)
    KV = Q if not cross else tensor(rng, (B, L_k, d_model), device)
    mask = make_mask(mask_kind, rng, B, L_q, L_k, device)
    out, w = mha(Q, KV, KV, mask)
    want_out, want_w = ref(Q, KV, KV, mask)
    kind = msg("attention_torch.cross_attention") if cross else msg("attention_torch.self_attention")
    assert_close(w, want_w, name=msg("attention_torch.weights_mask", kind=kind, mask_kind=mask_kind), **TOL)
    assert_close(out, want_out, name=msg("attention_torch.output_mask", kind=kind, mask_kind=mask_kind), **TOL)


@pytest.mark.parametrize("mask_kind", MASK_KINDS[1:])
def test_mha_accepts_every_mask_shape(student, reference, device, mask_kind):
    rng = np.random.default_rng(3)
    ref = reference_mha(reference, 12, 3, 3, device)
    mha = copy_of(student, ref, device)
    Q, KV = tensor(rng, (2, 3, 12), device), tensor(rng, (2, 5, 12), device)
    mask = make_mask(mask_kind, rng, 2, 3, 5, device)
    out, w = mha(Q, KV, KV, mask)
    want_out, want_w = ref(Q, KV, KV, mask)
    assert_close(w, want_w, name=msg("attention_torch.weights_mask_kind", mask_kind=mask_kind), **TOL)
    assert_close(out, want_out, name=msg("attention_torch.output_mask_kind", mask_kind=mask_kind), **TOL)


def test_mha_accepts_a_0_1_attention_mask(student, reference, device):
    rng = np.random.default_rng(4)
    ref = reference_mha(reference, 8, 2, 4, device)
    mha = copy_of(student, ref, device)
    x = tensor(rng, (2, 4, 8), device)
    attention_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], device=device)   # HuggingFace style, 1 = real token
    out, _ = mha(x, x, x, attention_mask[:, None, None, :])
    want, _ = ref(x, x, x, attention_mask[:, None, None, :].bool())
    assert_close(out, want, name=msg("attention_torch.output_0_1_integer"), **TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_hf_bert_self_attention(student, device, seed):
    from transformers.models.bert.modeling_bert import BertSelfAttention, BertSelfOutput

    config = small_config(hidden_size=32, num_attention_heads=4)
    hf_attn = seeded(lambda: BertSelfAttention(config), seed).to(device).eval()
    hf_out = seeded(lambda: BertSelfOutput(config), seed + 100).to(device).eval()
    mha = student.MultiHeadAttention(32, 4).to(str(device)).eval()
    load_weights(mha, {
        "W_Q.weight": hf_attn.query.weight, "W_Q.bias": hf_attn.query.bias,
        "W_K.weight": hf_attn.key.weight, "W_K.bias": hf_attn.key.bias,
        "W_V.weight": hf_attn.value.weight, "W_V.bias": hf_attn.value.bias,
        "W_O.weight": hf_out.dense.weight, "W_O.bias": hf_out.dense.bias,
    })
    rng = np.random.default_rng(seed)
    x = tensor(rng, (2, 6, 32), device)
    attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], device=device)
    with torch.no_grad():
        context, hf_w = hf_attn(x, attention_mask=additive_mask(attention_mask[:, None, None, :]))
        want = hf_out.dense(context)
    out, w = mha(x, x, x, attention_mask[:, None, None, :].bool())
    assert_close(w, hf_w, name=msg("attention_torch.weights_huggingface_bertselfattention"), **TOL)
    assert_close(out, want, name=msg("attention_torch.output_huggingface_bertselfattention_bertselfoutput"), **TOL)


@pytest.mark.parametrize("cross", [False, True])
def test_matches_torch_multihead_attention(student, device, cross):
    d_model, heads = 24, 4
    torch_mha = seeded(lambda: torch.nn.MultiheadAttention(d_model, heads, batch_first=True), 7).to(device).eval()
    Wq, Wk, Wv = torch_mha.in_proj_weight.chunk(3)
    bq, bk, bv = torch_mha.in_proj_bias.chunk(3)
    mha = student.MultiHeadAttention(d_model, heads).to(str(device)).eval()
    load_weights(mha, {"W_Q.weight": Wq, "W_Q.bias": bq, "W_K.weight": Wk, "W_K.bias": bk,
                       "W_V.weight": Wv, "W_V.bias": bv, "W_O.weight": torch_mha.out_proj.weight,
                       "W_O.bias": torch_mha.out_proj.bias})
    rng = np.random.default_rng(8)
    Q = tensor(rng, (3, 4, d_model), device)
    KV = tensor(rng, (3, 7, d_model), device) if cross else Q
    keep = torch.from_numpy(random_mask(rng, (3, KV.shape[1]))).to(device)     # True = real token
    with torch.no_grad():
        want, want_w = torch_mha(Q, KV, KV, key_padding_mask=~keep, average_attn_weights=False)
    out, w = mha(Q, KV, KV, keep[:, None, None, :])
    assert_close(w, want_w, name=msg("attention_torch.weights_torch_nn_multiheadattention"), **TOL)
    assert_close(out, want, name=msg("attention_torch.output_torch_nn_multiheadattention"), **TOL)


def test_split_heads_layout(student, reference, device):
    rng = np.random.default_rng(9)
    x = tensor(rng, (2, 5, 12), device)
    got = student.MultiHeadAttention(12, 3).split_heads(x, 2)
    want = seeded(lambda: reference.MultiHeadAttention(12, 3), 0).split_heads(x, 2)
    assert_close(got, want, atol=0, name=msg("attention_torch.split_heads_2_5"))


def test_chapter_shapes(student, device):
    rng = np.random.default_rng(10)
    mha = student.MultiHeadAttention(512, 8).to(str(device)).eval()
    x = tensor(rng, (2, 10, 512), device)
    out, w = mha(x, x, x)
    assert_shape(out, (2, 10, 512), msg("attention_torch.output_multiheadattention_512_8"))
    assert_shape(w, (2, 8, 10, 10), msg("attention_torch.weights_multiheadattention_512_8"))


def test_d_model_not_divisible_by_num_heads_raises_value_error(student):
    with pytest.raises(ValueError):
        student.MultiHeadAttention(10, 3)


def test_mha_self_attention_is_permutation_equivariant(student, reference, device):
    rng = np.random.default_rng(11)
    mha = copy_of(student, reference_mha(reference, 16, 4, 11, device), device)
    x = tensor(rng, (1, 6, 16), device)
    perm = torch.from_numpy(rng.permutation(6)).to(device)
    out, _ = mha(x, x, x)
    out_p, _ = mha(x[:, perm], x[:, perm], x[:, perm])
    assert_close(out_p, out[:, perm], name=msg("attention_torch.attention_permuted_tokens_permuted"), **TOL)


def test_mha_padded_positions_do_not_matter(student, reference, device):
    rng = np.random.default_rng(12)
    mha = copy_of(student, reference_mha(reference, 16, 2, 12, device), device)
    x = tensor(rng, (2, 5, 16), device)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool, device=device)
    out, _ = mha(x, x, x, keep[:, None, None, :])
    noisy = x.clone()
    noisy[~keep] += 50.0
    out2, _ = mha(x, noisy, noisy, keep[:, None, None, :])
    assert_close(out2, out, name=msg("attention_torch.output_after_changing_only"), **TOL)


def test_mha_float64(student, reference, device):
    rng = np.random.default_rng(13)
    ref = reference_mha(reference, 8, 2, 13, device).double()
    mha = copy_of(student, ref, device).double()
    x = tensor(rng, (2, 3, 8), device, dtype=torch.float64)
    out, w = mha(x, x, x)
    want_out, want_w = ref(x, x, x)
    assert_close(out, want_out, name=msg("attention_torch.float64_output"), **TOL64)
    assert_close(w, want_w, name=msg("attention_torch.float64_weights"), **TOL64)


def test_mha_does_not_modify_its_inputs(student, reference, device):
    rng = np.random.default_rng(14)
    mha = copy_of(student, reference_mha(reference, 8, 2, 14, device), device)
    x = tensor(rng, (2, 3, 8), device)
    mha(x, x.clone(), x.clone(), torch.ones(2, 1, 1, 3, dtype=torch.bool, device=device))
    assert_not_mutated(student, msg("attention_torch.q_k_v_or"))
