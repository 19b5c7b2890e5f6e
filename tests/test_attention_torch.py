"""Suite for exercises/attention_torch.py (chapter 3.2, 3.3): ScaledDotProductAttention and
MultiHeadAttention, checked against the reference, HuggingFace BertSelfAttention and
torch.nn.MultiheadAttention.

Queries, keys and values are three different tensors in every comparison (a projection of the
values from the keys, or of the keys from the queries, is invisible when K is V); only the tests
named for self-attention pass one tensor three times."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from grader.grading.checks import (assert_close, assert_dtype, assert_finite, assert_not_mutated, assert_shape,
                                   graded)
from grader.grading.hf import additive_mask, seeded, small_config
from grader.grading.strategies import seeds
from grader.grading.testing import bool_mask, message_of, raises_naming, tensor, twin
from grader.i18n import msg

# float32 throughout: matmul vs einsum vs per-head loops reorder sums (~1e-6); the bugs
# this suite must catch (no scaling, heads split the wrong way, mask inverted) are > 1e-2.
TOL = dict(atol=2e-5, rtol=1e-4)
TOL64 = dict(atol=1e-10, rtol=1e-9)


def reference_mha(reference, d_model, num_heads, seed, device):
    return seeded(lambda: reference.MultiHeadAttention(d_model, num_heads), seed).to(device).eval()


def mha_twin(student, ref, device, **kwargs):
    """The student's MultiHeadAttention holding the reference ``ref``'s weights, in eval mode."""
    return twin(student, "MultiHeadAttention", ref, ref.d_model, ref.num_heads, device=device, **kwargs)


def mha_with(reference, weights: dict, d_model, num_heads, device):
    """A reference MultiHeadAttention holding ``weights`` (W_Q.weight, ..., W_O.bias)."""
    ref = reference.MultiHeadAttention(d_model, num_heads)
    ref.load_state_dict({k: v.detach().cpu() for k, v in weights.items()})
    return ref.to(device).eval()


def qkv(rng, device, B, L_q, L_k, d_q, d_v=None, dtype=torch.float32):
    """Three different tensors: Q (B, L_q, d_q), K (B, L_k, d_q), V (B, L_k, d_v)."""
    return (tensor(rng, (*B, L_q, d_q), device, dtype), tensor(rng, (*B, L_k, d_q), device, dtype),
            tensor(rng, (*B, L_k, d_v or d_q), device, dtype))


# ------------------------------------------------------------------ ScaledDotProductAttention

@pytest.mark.judges("ScaledDotProductAttention", stage=0, item="contract")
@pytest.mark.parametrize("B, mask_shape", [(2, (2, 3, 4)), (2, (7, 2, 3, 5)), (2, (1, 2, 3, 5)), (1, (4, 3, 5))],
                         ids=["cannot broadcast", "bigger than the scores", "a leading axis of 1",
                              "a bigger batch than the scores'"])
def test_sdpa_mask_that_does_not_fit_the_scores_raises_value_error(student, device, B, mask_shape):
    # scores (B, 3, 5); a (7, 2, 3, 5) or (1, 2, 3, 5) mask broadcasts with them only by making the
    # weights bigger.  (1, 2, 3, 5) is also what comparing shapes as tuples (`<=`) lets through;
    # (4, 3, 5) on a batch of 1 has no more axes than the scores (counting axes does not tell it).
    rng = np.random.default_rng(20)
    Q, K, V = qkv(rng, device, (B,), 3, 5, 4, 6)
    with raises_naming(ValueError, "mask", "mask"):
        student.ScaledDotProductAttention(4)(Q, K, V, torch.ones(mask_shape, dtype=torch.bool, device=device))


@pytest.mark.judges("ScaledDotProductAttention", stage=1, item="conventions")
def test_sdpa_chapter_shapes(student, device):
    rng = np.random.default_rng(0)
    Q, K, V = qkv(rng, device, (2,), 5, 5, 64)
    out, w = student.ScaledDotProductAttention(64)(Q, K, V)
    assert_shape(out, (2, 5, 64), msg("attention_torch.output_q_k_v"))
    assert_shape(w, (2, 5, 5), msg("attention_torch.weights_q_k_v"))


@pytest.mark.judges("ScaledDotProductAttention", stage=1, item="conventions")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sdpa_keeps_dtype_and_device(student, device, dtype):
    rng = np.random.default_rng(2)
    Q, K, V = qkv(rng, device, (2,), 3, 3, 4, dtype=dtype)
    out, w = student.ScaledDotProductAttention(4)(Q, K, V)
    assert_dtype(out, dtype, msg("attention_torch.output_dtype", dtype=dtype))
    assert_dtype(w, dtype, msg("attention_torch.weights_dtype", dtype=dtype))
    assert out.device.type == device.type, msg("attention_torch.output_inputs", out_device=out.device,
                                               device=device)


@pytest.mark.judges("ScaledDotProductAttention", stage=2, item="conventions")
def test_sdpa_accepts_a_0_1_mask(student, device):
    # the docstring: "a bool (or 0/1) tensor": an integer 0/1 mask given to ScaledDotProductAttention
    # itself means what the same mask as bool means (1 = may attend)
    rng = np.random.default_rng(5)
    Q, K, V = qkv(rng, device, (2,), 3, 4, 8)
    keep = bool_mask(rng, (2, 3, 4), device)
    attention = student.ScaledDotProductAttention(8)
    want, want_w = attention(Q, K, V, keep)
    out, w = attention(Q, K, V, keep.long())
    assert_close(w, want_w, name=msg("attention_torch.sdpa_0_1_mask_weights"), **TOL)
    assert_close(out, want, name=msg("attention_torch.sdpa_0_1_mask_output"), **TOL)


@pytest.mark.judges("ScaledDotProductAttention", stage=2, item="sdpa_scores")
@pytest.mark.parametrize("lead", [(2,), (2, 3)], ids=["3-D", "4-D"])
def test_sdpa_scores_are_scaled_by_sqrt_dk(student, device, lead):
    # every query e1 against k1 = 8*e1 and k2 = 0: the weight ratio is exp(8 / sqrt(16)) = e^2;
    # L_q = 3 differs from d_k = 16 and from the head count
    Q = torch.zeros(*lead, 3, 16, dtype=torch.float64, device=device)
    Q[..., 0] = 1.0
    K = torch.zeros(*lead, 2, 16, dtype=torch.float64, device=device)
    K[..., 0, 0] = 8.0
    V = torch.eye(2, 5, dtype=torch.float64, device=device).expand(*lead, 2, 5).contiguous()
    _, w = student.ScaledDotProductAttention(16)(Q, K, V)
    p = 1.0 / (1.0 + np.exp(-2.0))
    want = torch.tensor([p, 1.0 - p], dtype=torch.float64, device=device).expand(*lead, 3, 2)
    assert_close(w, want, name=msg("attention_torch.weights_scaled_by_sqrt_dk"), **TOL64)


@pytest.mark.judges("ScaledDotProductAttention", stage=2, item="sdpa_masking")
def test_sdpa_blocked_keys_get_zero_weight(student, device):
    rng = np.random.default_rng(1)
    Q, K, V = (tensor(rng, (1, 2, 4, 8), device) for _ in range(3))
    mask = torch.ones(1, 2, 4, 4, dtype=torch.bool, device=device)
    mask[..., 2] = False            # key 2 blocked everywhere (False = blocked)
    out, w = student.ScaledDotProductAttention(8)(Q, K, V, mask)
    assert_close(w[..., 2], torch.zeros_like(w[..., 2]), atol=1e-12, name=msg("attention_torch.weights_blocked_key"))
    rows = w.sum(-1)
    assert_close(rows, torch.ones_like(rows), name=msg("attention_torch.weights_summed_over_keys"), **TOL)


@pytest.mark.judges("ScaledDotProductAttention", stage=2, item="blocked_rows")
def test_sdpa_fully_blocked_row_stays_finite(student, device):
    rng = np.random.default_rng(1)
    Q, K, V = (tensor(rng, (1, 2, 4, 8), device) for _ in range(3))
    mask = torch.ones(1, 2, 4, 4, dtype=torch.bool, device=device)
    mask[..., 2] = False            # key 2 blocked everywhere (False = blocked)
    mask[0, 1, 3, :] = False        # head 1, query 3: every key blocked
    out, w = student.ScaledDotProductAttention(8)(Q, K, V, mask)
    assert_finite(w, msg("attention_torch.weights_fully_blocked_query"))
    assert_finite(out, msg("attention_torch.output_fully_blocked_query"))
    # "each row of weights sums to 1" holds for that row too (how it spreads its weight is free)
    rows = w.sum(-1)
    assert_close(rows, torch.ones_like(rows), name=msg("attention_torch.weights_summed_over_keys"), **TOL)


@pytest.mark.judges("ScaledDotProductAttention", stage=2, item="blocked_rows")
def test_sdpa_blocked_key_gets_zero_weight_next_to_large_negative_scores(student, device):
    # scores of -1e4 and -2e4 (d_k = 1): a blocked score must end below every real one; a fill
    # value of -1e4 (older BERT code) leaves the blocked key the largest score here
    Q = torch.tensor([[[100.0]]], device=device)
    K, V = torch.tensor([[[-100.0], [-200.0]]], device=device), torch.tensor([[[1.0], [2.0]]], device=device)
    out, w = student.ScaledDotProductAttention(1)(Q, K, V, torch.tensor([False, True], device=device))
    assert_close(w, torch.tensor([[[0.0, 1.0]]], device=device), atol=1e-6,
                 name=msg("attention_torch.weights_large_negative_scores"))
    assert_close(out, torch.tensor([[[2.0]]], device=device), atol=1e-6,
                 name=msg("attention_torch.output_large_negative_scores"))


@pytest.mark.judges("ScaledDotProductAttention", stage=3, item="sdpa_scores")
@graded(max_examples=30)
@given(seed=seeds, four_d=st.booleans(), L_q=st.integers(1, 6), L_k=st.integers(1, 6),
       d_k=st.integers(1, 8), d_v=st.integers(1, 8), masked=st.booleans())
def test_sdpa_matches_torch_functional(student, reference, device, seed, four_d, L_q, L_k, d_k, d_v, masked):
    rng = np.random.default_rng(seed)
    lead = (2, 3) if four_d else (2,)
    Q = tensor(rng, (*lead, L_q, d_k), device, scale=2.0)
    K = tensor(rng, (*lead, L_k, d_k), device, scale=2.0)
    V = tensor(rng, (*lead, L_k, d_v), device)
    mask = bool_mask(rng, (*lead, L_q, L_k), device) if masked else None
    out, w = student.ScaledDotProductAttention(d_k)(Q, K, V, mask)
    want = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    assert_close(out, want, name=msg("attention_torch.output_torch_nn_functional"), **TOL)
    _, want_w = reference.ScaledDotProductAttention(d_k)(Q, K, V, mask)
    assert_close(w, want_w, name=msg("attention_torch.attention_weights"), **TOL)


# ------------------------------------------------------------------ MultiHeadAttention: contract

@pytest.mark.judges("MultiHeadAttention.__init__", stage=0, item="contract")
def test_mha_has_named_linear_projections(student):
    m = student.MultiHeadAttention(16, 4)
    sd = m.state_dict()
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        for part, shape in (("weight", (16, 16)), ("bias", (16,))):
            key = f"{name}.{part}"
            assert key in sd, msg("attention_torch.multiheadattention_16_4_has", key_name=key, name=name)
            assert_shape(sd[key], shape, key)


@pytest.mark.judges("MultiHeadAttention.__init__", stage=0, item="contract")
@pytest.mark.parametrize("d_model, num_heads", [(10, 3), (12, 8)])
def test_d_model_not_divisible_by_num_heads_raises_value_error(student, d_model, num_heads):
    # the docstring: ValueError "naming both numbers"
    with pytest.raises(ValueError) as info:
        student.MultiHeadAttention(d_model, num_heads)
    message = message_of(info.value)
    assert str(d_model) in message and str(num_heads) in message, msg(
        "attention_torch.divisibility_error_names_numbers", d_model=d_model, num_heads=num_heads, message=message)


@pytest.mark.judges("MultiHeadAttention", stage=0, item="contract")
@pytest.mark.parametrize("B, mask_shape", [(2, (2, 1, 1, 4)), (2, (3, 2, 1, 1, 5)), (2, (1, 2, 1, 1, 5)),
                                            (1, (4, 1, 1, 5))],
                         ids=["cannot broadcast", "bigger than the scores", "a leading axis of 1",
                              "a bigger batch than the scores'"])
def test_mha_mask_that_does_not_fit_the_scores_raises_value_error(student, reference, device, B, mask_shape):
    # scores (B, h, 3, 5); (3, 2, 1, 1, 5), (1, 2, 1, 1, 5) and, on a batch of 1, (4, 1, 1, 5)
    # broadcast with them only by making the weights bigger
    rng = np.random.default_rng(21)
    mha = mha_twin(student, reference_mha(reference, 8, 2, 21, device), device)
    Q, K, V = qkv(rng, device, (B,), 3, 5, 8)
    with raises_naming(ValueError, "mask", "mask"):
        mha(Q, K, V, torch.ones(mask_shape, dtype=torch.bool, device=device))


# ------------------------------------------------------------------ MultiHeadAttention: shapes

@pytest.mark.judges("MultiHeadAttention", stage=1, item="conventions")
def test_chapter_shapes(student, device):
    rng = np.random.default_rng(10)
    mha = student.MultiHeadAttention(512, 8).to(str(device)).eval()
    x = tensor(rng, (2, 10, 512), device)
    out, w = mha(x, x, x)
    assert_shape(out, (2, 10, 512), msg("attention_torch.output_multiheadattention_512_8"))
    assert_shape(w, (2, 8, 10, 10), msg("attention_torch.weights_multiheadattention_512_8"))


@pytest.mark.judges("MultiHeadAttention", stage=1, item="conventions")
def test_mha_cross_attention_shapes(student, device):
    rng = np.random.default_rng(15)
    mha = student.MultiHeadAttention(12, 3).to(str(device)).eval()
    Q, K, V = qkv(rng, device, (2,), 4, 7, 12)
    out, w = mha(Q, K, V)
    assert_shape(out, (2, 4, 12), msg("attention_torch.output_cross_attention_shape"))
    assert_shape(w, (2, 3, 4, 7), msg("attention_torch.weights_cross_attention_shape"))


# ------------------------------------------------------------------ MultiHeadAttention: mechanisms

@pytest.mark.judges("MultiHeadAttention.split_heads", stage=2, item="heads")
def test_split_heads_layout(student, reference, device):
    rng = np.random.default_rng(9)
    x = tensor(rng, (2, 5, 12), device)
    got = student.MultiHeadAttention(12, 3).split_heads(x, 2)
    want = seeded(lambda: reference.MultiHeadAttention(12, 3), 0).split_heads(x, 2)
    assert_close(got, want, atol=0, name=msg("attention_torch.split_heads_2_5"))


@pytest.mark.judges("MultiHeadAttention", stage=2, item="heads")
def test_mha_with_identity_projections_is_attention_per_head(student, device):
    # identity projections, zero biases: head h sees the slice h*d_k:(h+1)*d_k of Q and K as they are,
    # so its weights must be softmax(q . k / sqrt(d_k)) with d_k = d_model / num_heads (3.3), not
    # sqrt(d_model); scaled by sqrt(d_model) = 4 here instead of 2, the weights differ by > 0.05.  The
    # output is then the heads' outputs w_h @ v_h put side by side in head order (merged with the
    # transpose back to (B, L_q, h, d_k) before the reshape)
    d_model, heads = 16, 4
    d_k = d_model // heads
    eye, zero = torch.eye(d_model), torch.zeros(d_model)
    mha = student.MultiHeadAttention(d_model, heads)
    state = mha.state_dict()
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        state[f"{name}.weight"], state[f"{name}.bias"] = eye, zero
    mha.load_state_dict(state)
    mha.to(str(device)).eval()
    rng = np.random.default_rng(17)
    Q, K, V = qkv(rng, device, (2,), 3, 5, d_model)
    _, w = mha(Q, K, V)
    q, k = Q.view(2, 3, heads, d_k).transpose(1, 2), K.view(2, 5, heads, d_k).transpose(1, 2)
    want = torch.softmax(q @ k.transpose(-1, -2) / d_k ** 0.5, dim=-1)
    assert_close(w, want, name=msg("attention_torch.weights_identity_projections", d_k=d_k), **TOL)
    out, _ = mha(Q, K, V)
    v = V.view(2, 5, heads, d_k).transpose(1, 2)
    want_out = (want @ v).transpose(1, 2).reshape(2, 3, d_model)
    assert_close(out, want_out, name=msg("attention_torch.output_identity_projections"), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="projections")
def test_mha_keys_and_values_are_projected_separately(student, reference, device):
    # each of Q, K, V changed alone changes the output as the reference's does: W_K(K), not W_K(Q), and
    # W_V(V), not W_V(K).  Three different tensors of ONE shape (L_q = L_k): a projection of the wrong
    # input shows even where the shapes cannot tell (cross-attention shapes are tested elsewhere)
    rng = np.random.default_rng(16)
    ref = reference_mha(reference, 16, 4, 16, device)
    mha = mha_twin(student, ref, device)
    Q, K, V = qkv(rng, device, (2,), 5, 5, 16)
    for name, args in (("Q", (Q * 2, K, V)), ("K", (Q, K * 2, V)), ("V", (Q, K, V * 2))):
        out, _ = mha(*args)
        want, _ = ref(*args)
        assert_close(out, want, name=msg("attention_torch.output_after_doubling", name=name), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="mha_masking")
def test_mha_padded_positions_do_not_matter(student, reference, device):
    rng = np.random.default_rng(12)
    mha = mha_twin(student, reference_mha(reference, 16, 2, 12, device), device)
    Q, K, V = qkv(rng, device, (2,), 4, 5, 16)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool, device=device)
    out, _ = mha(Q, K, V, keep[:, None, None, :])
    K2, V2 = K.clone(), V.clone()
    K2[~keep] += 50.0
    V2[~keep] -= 50.0
    out2, _ = mha(Q, K2, V2, keep[:, None, None, :])
    assert_close(out2, out, name=msg("attention_torch.output_after_changing_only"), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="conventions")
def test_mha_self_attention_is_permutation_equivariant(student, reference, device):
    rng = np.random.default_rng(11)
    mha = mha_twin(student, reference_mha(reference, 16, 4, 11, device), device)
    x = tensor(rng, (1, 6, 16), device)
    perm = torch.from_numpy(rng.permutation(6)).to(device)
    out, _ = mha(x, x, x)
    out_p, _ = mha(x[:, perm], x[:, perm], x[:, perm])
    assert_close(out_p, out[:, perm], name=msg("attention_torch.attention_permuted_tokens_permuted"), **TOL)


MASK_KINDS = ["none", "padding (B, 1, 1, L_k)", "shared (L_q, L_k)", "full (B, 1, L_q, L_k)"]


def make_mask(kind, rng, B, L_q, L_k, device):
    if kind == "none":
        return None
    if kind.startswith("padding"):
        return bool_mask(rng, (B, 1, 1, L_k), device)
    if kind.startswith("shared"):
        return bool_mask(rng, (L_q, L_k), device)
    return bool_mask(rng, (B, 1, L_q, L_k), device)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="mha_masking")
@pytest.mark.parametrize("mask_kind", MASK_KINDS[1:])
def test_mha_accepts_every_mask_shape(student, reference, device, mask_kind):
    rng = np.random.default_rng(3)
    ref = reference_mha(reference, 12, 3, 3, device)
    mha = mha_twin(student, ref, device)
    Q, K, V = qkv(rng, device, (2,), 3, 5, 12)
    mask = make_mask(mask_kind, rng, 2, 3, 5, device)
    out, w = mha(Q, K, V, mask)
    want_out, want_w = ref(Q, K, V, mask)
    assert_close(w, want_w, name=msg("attention_torch.weights_mask_kind", mask_kind=mask_kind), **TOL)
    assert_close(out, want_out, name=msg("attention_torch.output_mask_kind", mask_kind=mask_kind), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="mha_masking")
def test_mha_accepts_a_0_1_attention_mask(student, reference, device):
    rng = np.random.default_rng(4)
    ref = reference_mha(reference, 8, 2, 4, device)
    mha = mha_twin(student, ref, device)
    Q, K, V = qkv(rng, device, (2,), 3, 4, 8)
    attention_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], device=device)   # HuggingFace style, 1 = real token
    out, _ = mha(Q, K, V, attention_mask[:, None, None, :])
    want, _ = ref(Q, K, V, attention_mask[:, None, None, :].bool())
    assert_close(out, want, name=msg("attention_torch.output_0_1_integer"), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="dropout")
def test_mha_dropout_only_in_train_mode(student, reference, device):
    """dropout=0.5: eval mode equals the reference (no dropout), train mode differs from eval, and
    the same seed drops the same units.  Where the dropout sits is free (attention weights, the
    merged heads, ...); the default (no keyword) is 0.0, so train mode changes nothing."""
    rng = np.random.default_rng(17)
    ref = reference_mha(reference, 16, 4, 17, device)
    Q, K, V = qkv(rng, device, (2,), 4, 5, 16)
    with torch.no_grad():
        want, _ = ref(Q, K, V)
    mha = mha_twin(student, ref, device, dropout=0.5)
    first, _ = mha(Q, K, V)
    second, _ = mha(Q, K, V)
    assert_close(first, want, name=msg("attention_torch.eval_mode_output_dropout"), **TOL)
    assert_close(second, first, atol=0.0, name=msg("attention_torch.second_eval_mode_call"))
    mha.train()
    student.seed(1234)
    drop1, _ = mha(Q, K, V)
    student.seed(1234)
    drop2, _ = mha(Q, K, V)
    assert_shape(drop1, (2, 4, 16), msg("attention_torch.train_mode_output"))
    # p = 0.5 over at least 2*4*16 = 128 units (merged heads; 160 attention weights): the chance
    # that none is dropped is 2**-128, and a dropped unit moves the output by O(0.1)
    changed = float((drop1.detach().cpu() - want.cpu()).abs().max())
    assert changed > 1e-3, msg("attention_torch.train_mode_output_dropout", changed=changed)
    assert_close(drop2, drop1, atol=0.0, name=msg("attention_torch.train_mode_output_after_seed"))
    default = twin(student, "MultiHeadAttention", ref, 16, 4, device=device, train=True)
    out, _ = default(Q, K, V)
    assert_close(out, want, name=msg("attention_torch.default_dropout_train_mode"), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=2, item="conventions")
@pytest.mark.parametrize("mask_kind", MASK_KINDS[1:])
def test_mha_does_not_modify_its_inputs(student, reference, device, mask_kind):
    # every documented mask shape: reshaping a (L_q, L_k) mask in place (unsqueeze_) changes the caller's
    rng = np.random.default_rng(14)
    mha = mha_twin(student, reference_mha(reference, 8, 2, 14, device), device)
    Q, K, V = qkv(rng, device, (2,), 3, 4, 8)
    mha(Q, K, V, make_mask(mask_kind, rng, 2, 3, 4, device))
    assert_not_mutated(student, msg("attention_torch.q_k_v_or"))


# ------------------------------------------------------------------ MultiHeadAttention: comparisons

@pytest.mark.judges("MultiHeadAttention", stage=3, item="projections")
@graded(max_examples=25)
@given(seed=seeds, B=st.integers(1, 3), L_q=st.integers(1, 5), L_k=st.integers(1, 5),
       heads=st.sampled_from([1, 2, 4]), d_k=st.integers(1, 4), cross=st.booleans(),
       mask_kind=st.sampled_from(MASK_KINDS))
def test_mha_matches_reference(student, reference, device, seed, B, L_q, L_k, heads, d_k, cross, mask_kind):
    d_model = heads * d_k
    rng = np.random.default_rng(seed)
    ref = reference_mha(reference, d_model, heads, seed % 1000, device)
    mha = mha_twin(student, ref, device)
    if not cross:
        L_k = L_q
    Q, K, V = qkv(rng, device, (B,), L_q, L_k, d_model)
    mask = make_mask(mask_kind, rng, B, L_q, L_k, device)
    out, w = mha(Q, K, V, mask)
    want_out, want_w = ref(Q, K, V, mask)
    kind = msg("attention_torch.cross_attention") if cross else msg("attention_torch.same_length")
    assert_close(w, want_w, name=msg("attention_torch.weights_mask", kind=kind, mask_kind=mask_kind), **TOL)
    assert_close(out, want_out, name=msg("attention_torch.output_mask", kind=kind, mask_kind=mask_kind), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=3, item="projections")
def test_mha_float64(student, reference, device):
    rng = np.random.default_rng(13)
    ref = reference_mha(reference, 8, 2, 13, device).double()
    mha = mha_twin(student, ref, device, dtype=torch.float64)
    Q, K, V = qkv(rng, device, (2,), 3, 5, 8, dtype=torch.float64)
    out, w = mha(Q, K, V)
    want_out, want_w = ref(Q, K, V)
    assert_close(out, want_out, name=msg("attention_torch.float64_output"), **TOL64)
    assert_close(w, want_w, name=msg("attention_torch.float64_weights"), **TOL64)


@pytest.mark.judges("MultiHeadAttention", stage=3, item="projections")
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_hf_bert_self_attention(student, reference, device, seed):
    from transformers.models.bert.modeling_bert import BertSelfAttention, BertSelfOutput

    config = small_config(hidden_size=32, num_attention_heads=4)
    hf_attn = seeded(lambda: BertSelfAttention(config), seed).to(device).eval()
    hf_out = seeded(lambda: BertSelfOutput(config), seed + 100).to(device).eval()
    ref = mha_with(reference, {
        "W_Q.weight": hf_attn.query.weight, "W_Q.bias": hf_attn.query.bias,
        "W_K.weight": hf_attn.key.weight, "W_K.bias": hf_attn.key.bias,
        "W_V.weight": hf_attn.value.weight, "W_V.bias": hf_attn.value.bias,
        "W_O.weight": hf_out.dense.weight, "W_O.bias": hf_out.dense.bias,
    }, 32, 4, device)
    mha = mha_twin(student, ref, device)
    rng = np.random.default_rng(seed)
    x = tensor(rng, (2, 6, 32), device)
    attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], device=device)
    with torch.no_grad():
        context, hf_w = hf_attn(x, attention_mask=additive_mask(attention_mask[:, None, None, :]))
        want = hf_out.dense(context)
    out, w = mha(x, x, x, attention_mask[:, None, None, :].bool())
    assert_close(w, hf_w, name=msg("attention_torch.weights_huggingface_bertselfattention"), **TOL)
    assert_close(out, want, name=msg("attention_torch.output_huggingface_bertselfattention_bertselfoutput"), **TOL)


@pytest.mark.judges("MultiHeadAttention", stage=3, item="projections")
@pytest.mark.parametrize("cross", [False, True])
def test_matches_torch_multihead_attention(student, reference, device, cross):
    d_model, heads = 24, 4
    torch_mha = seeded(lambda: torch.nn.MultiheadAttention(d_model, heads, batch_first=True), 7).to(device).eval()
    Wq, Wk, Wv = torch_mha.in_proj_weight.chunk(3)
    bq, bk, bv = torch_mha.in_proj_bias.chunk(3)
    ref = mha_with(reference, {"W_Q.weight": Wq, "W_Q.bias": bq, "W_K.weight": Wk, "W_K.bias": bk,
                               "W_V.weight": Wv, "W_V.bias": bv, "W_O.weight": torch_mha.out_proj.weight,
                               "W_O.bias": torch_mha.out_proj.bias}, d_model, heads, device)
    mha = mha_twin(student, ref, device)
    rng = np.random.default_rng(8)
    Q, K, V = qkv(rng, device, (3,), 4, 7 if cross else 4, d_model)
    keep = bool_mask(rng, (3, K.shape[1]), device)     # True = real token
    with torch.no_grad():
        want, want_w = torch_mha(Q, K, V, key_padding_mask=~keep, average_attn_weights=False)
    out, w = mha(Q, K, V, keep[:, None, None, :])
    assert_close(w, want_w, name=msg("attention_torch.weights_torch_nn_multiheadattention"), **TOL)
    assert_close(out, want, name=msg("attention_torch.output_torch_nn_multiheadattention"), **TOL)
