"""Suite for exercises/attention_numpy.py (chapter 3.2): softmax and scaled dot-product attention."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.grading.checks import (assert_close, assert_dtype, assert_finite, assert_not_mutated, assert_shape,
                                   graded)
from grader.i18n import msg
from grader.grading.strategies import attention_inputs, attention_shapes, float_dtypes, random_mask, seeds
from grader.grading.testing import raises_naming

# float64: both sides compute in double; differences are rounding only (~1e-15).
# float32: einsum vs matmul vs loops reorder sums; ~1e-6 relative.  Real bugs (no
# scaling, wrong softmax axis, inverted mask) move values by > 1e-2.
TOL = {np.dtype(np.float64): dict(atol=1e-9, rtol=1e-7), np.dtype(np.float32): dict(atol=2e-5, rtol=2e-5)}


def tol(dtype):
    return TOL[np.dtype(dtype)]


def softmax_tol(x):
    """``tol`` widened by 2 * max|x| * eps, so every correct formulation keeps full marks.

    exp(x - logsumexp(x)) is a correct softmax, but logsumexp(x) ~ max(x) is rounded to
    half an ulp, |lse| * eps / 2, and that error becomes the relative error of every output
    (outputs <= 1), plus ~eps from exp and the subtraction: |error| <= (max|x| + log n) * eps / 2
    + O(eps).  Measured: 1.8e-4 at float32 +-1e4 (max|x| * eps = 1.2e-3); over 600 random float32
    rows of scale 1..100 the worst error is 0.63 * max|x| * eps.  The bugs softmax tests catch
    (no max shift: inf/NaN; wrong axis; no normalisation) are off by > 1e-2 or not finite."""
    t = dict(tol(x.dtype))
    t["atol"] += 2.0 * float(np.max(np.abs(x), initial=0.0)) * float(np.finfo(x.dtype).eps)
    return t


# ------------------------------------------------------------------ softmax

@pytest.mark.judges("softmax", stage=0, item="contract")
def test_softmax_rejects_a_list(student):
    # the docstring: "Raises TypeError if x is not an np.ndarray"
    with pytest.raises(TypeError):
        student.softmax([1.0, 2.0, 3.0])


@pytest.mark.judges("softmax", stage=1, item="conventions")
def test_softmax_keeps_float32(student):
    got = student.softmax(np.zeros((2, 3), dtype=np.float32))
    assert_dtype(got, np.float32, msg("attention_numpy.softmax_float32_array"))


@pytest.mark.judges("softmax", stage=2, item="softmax")
def test_softmax_rows_sum_to_one_along_the_given_axis(student):
    x = np.random.default_rng(1).standard_normal((4, 3))
    got = student.softmax(x, axis=0)
    assert_shape(got, (4, 3), "softmax(x, axis=0)")
    assert_close(got.sum(axis=0), np.ones(3), atol=1e-9,
                 name=msg("attention_numpy.softmax_x_axis_0"))


@pytest.mark.judges("softmax", stage=2, item="stability")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_survives_huge_inputs(student, dtype):
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4], [-1e4, -1e4 + 1.0, -1e4]], dtype=dtype)
    got = student.softmax(x)
    assert_finite(got, msg("attention_numpy.softmax_inputs_1e4"))
    want = np.array([[1, 0, 0], [1 / 3] * 3, [1 / 3] * 3, [1 / (2 + np.e), np.e / (2 + np.e), 1 / (2 + np.e)]])
    assert_close(got, want.astype(dtype), name=msg("attention_numpy.softmax_inputs_1e4"), **softmax_tol(x))


@pytest.mark.judges("softmax", stage=2, item="conventions")
def test_softmax_default_axis_is_the_last(student, reference):
    # softmax(x) with no axis: the last one.  x is 3-D, so axis=1 (or 0) gives other numbers.
    x = np.random.default_rng(13).standard_normal((2, 3, 4))
    assert_close(student.softmax(x), reference.softmax(x, axis=-1),
                 name=msg("attention_numpy.softmax_default_axis"), **tol(np.float64))


@pytest.mark.judges("softmax", stage=2, item="conventions")
def test_softmax_does_not_modify_its_input(student):
    x = np.random.default_rng(9).standard_normal((3, 4))
    student.softmax(x)
    assert_not_mutated(student, msg("attention_numpy.softmax_input"))


@pytest.mark.judges("softmax", stage=3, item="softmax")
@graded(max_examples=30)
@given(seed=seeds, shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), dtype=float_dtypes,
       scale=st.sampled_from([1.0, 10.0, 100.0]), data=st.data())
def test_softmax_matches_reference(student, reference, seed, shape, dtype, scale, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    got = student.softmax(x, axis=axis)
    assert_close(got, reference.softmax(x, axis=axis), name=f"softmax(x, axis={axis})", **softmax_tol(x))


# ------------------------------------------------------------------ attention: arguments

# Q (2, 3, 4) against keys and values that disagree in both directions: a check written with
# `>` or `<` instead of `!=` lets one direction through to NumPy's own matmul error, which names
# no argument ("Input operand 1 has a mismatch in its core dimension 0 ...").
BAD_D_K = [((2, 3, 4), (2, 5, 6), (2, 5, 6)), ((2, 3, 6), (2, 5, 4), (2, 5, 4))]
BAD_L_K = [((2, 3, 4), (2, 5, 4), (2, 6, 4)), ((2, 3, 4), (2, 6, 4), (2, 5, 4))]


@pytest.mark.judges("scaled_dot_product_attention", stage=0, item="contract")
@pytest.mark.parametrize("shapes", BAD_D_K + BAD_L_K, ids=["d_k 4 vs 6", "d_k 6 vs 4", "L_k 5 vs 6", "L_k 6 vs 5"])
def test_mismatched_shapes_raise_value_error_naming_the_argument(student, shapes):
    rng = np.random.default_rng(10)
    Q, K, V = (rng.standard_normal(s) for s in shapes)
    pattern, what = ((r"\bQ\b|\bK\b|d_k|[Qq]uer|[Kk]ey", "Q / K") if shapes in BAD_D_K
                     else (r"\bK\b|\bV\b|L_k|[Kk]ey|[Vv]alue", "K / V"))
    with raises_naming(ValueError, pattern, what):
        student.scaled_dot_product_attention(Q, K, V)


@pytest.mark.judges("scaled_dot_product_attention", stage=0, item="contract")
@pytest.mark.parametrize("batch, mask_shape", [((2,), (2, 3, 4)), ((2,), (4,)), ((2,), (7, 2, 3, 5)),
                                                ((2,), (4, 1, 1, 5)), ((2,), (1, 2, 3, 5)), ((1,), (4, 3, 5))],
                         ids=["cannot broadcast", "wrong L_k", "bigger than the scores", "adds a batch axis",
                              "a leading axis of 1", "a bigger batch than the scores'"])
def test_mask_that_does_not_fit_the_scores_raises_value_error(student, batch, mask_shape):
    # scores (2, 3, 5) or (1, 3, 5): the last three masks broadcast with them, but only by making
    # the weights bigger than the scores, which the contract calls a silent broadcast (the last
    # has no more axes than the scores: counting axes does not tell it)
    rng = np.random.default_rng(11)
    Q, K, V = attention_inputs(rng, batch, 3, 5, 4, 2)
    with raises_naming(ValueError, "mask", "mask"):
        student.scaled_dot_product_attention(Q, K, V, mask=np.ones(mask_shape, dtype=bool))


# ------------------------------------------------------------------ attention: shapes and dtypes

@pytest.mark.judges("scaled_dot_product_attention", stage=1, item="conventions")
def test_chapter_shapes(student):
    rng = np.random.default_rng(0)
    Q, K, V = attention_inputs(rng, (2,), 5, 5, 64, 64)
    out, w = student.scaled_dot_product_attention(Q, K, V)
    assert_shape(out, (2, 5, 64), msg("attention_numpy.output_q_k_v"))
    assert_shape(w, (2, 5, 5), msg("attention_numpy.weights_q_k_v"))


@pytest.mark.judges("scaled_dot_product_attention", stage=1, item="conventions")
def test_cross_attention_shapes(student):
    rng = np.random.default_rng(2)
    Q, K, V = attention_inputs(rng, (2,), 3, 7, 8, 4)
    out, w = student.scaled_dot_product_attention(Q, K, V)
    assert_shape(out, (2, 3, 4), msg("attention_numpy.output_l_q_3"))
    assert_shape(w, (2, 3, 7), msg("attention_numpy.weights_l_q_3"))


@pytest.mark.judges("scaled_dot_product_attention", stage=3, item="output")
def test_cross_attention_values(student, reference):
    rng = np.random.default_rng(2)
    Q, K, V = attention_inputs(rng, (2,), 3, 7, 8, 4)
    out, _ = student.scaled_dot_product_attention(Q, K, V)
    want_out, _ = reference.scaled_dot_product_attention(Q, K, V)
    assert_close(out, want_out, name=msg("attention_numpy.cross_attention_output"), **tol(np.float64))


@pytest.mark.judges("scaled_dot_product_attention", stage=1, item="conventions")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_float_dtype(student, dtype):
    rng = np.random.default_rng(8)
    Q, K, V = attention_inputs(rng, (2,), 3, 3, 4, 4, dtype)
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=np.ones((3, 3), dtype=bool))
    name = np.dtype(dtype).name
    assert_dtype(out, np.dtype(dtype), msg("attention_numpy.output_inputs", name=name))
    assert_dtype(w, np.dtype(dtype), msg("attention_numpy.weights_inputs", name=name))


# ------------------------------------------------------------------ attention: mechanisms

@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="scaled_scores")
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)], ids=["2-D", "3-D", "4-D"])
def test_scores_are_scaled_by_sqrt_dk(student, batch):
    # every query e1 against k1 = 8*e1 and k2 = 0: the weight ratio is exp((q.k1 - q.k2) / sqrt(d_k));
    # with batch axes L_q = 3 differs from d_k = 16 (Q.shape[1] is not d_k)
    d_k = 16
    Q = np.zeros((*batch, 3, d_k))
    Q[..., 0] = 1.0
    K = np.zeros((*batch, 2, d_k))
    K[..., 0, 0] = 8.0
    V = np.broadcast_to(np.eye(2, 5), (*batch, 2, 5)).copy()
    _, w = student.scaled_dot_product_attention(Q, K, V)
    want = np.broadcast_to(np.array([1.0, np.exp(-2.0)]) / (1.0 + np.exp(-2.0)), (*batch, 3, 2))
    assert_close(w, want, atol=1e-9, name=msg("attention_numpy.weights_q_e1_k1"))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="scaled_scores")
def test_bert_base_sizes(student, reference):
    # BERT-base: d_model = 768, up to 512 tokens.  Sizes above 256 are where `is not` (object
    # identity) stops agreeing with `!=` for Python ints: shapes must be compared by value.
    rng = np.random.default_rng(14)
    Q, K, V = attention_inputs(rng, (1,), 3, 300, 768, 5, np.float32)
    out, w = student.scaled_dot_product_attention(Q, K, V)
    want_out, want_w = reference.scaled_dot_product_attention(Q, K, V)
    # the values only (a float64 result is a convention bug, test_keeps_float_dtype's business)
    assert_close(w, want_w, name=msg("attention_numpy.weights_bert_base"), check_dtype=False, **tol(np.float32))
    assert_close(out, want_out, name=msg("attention_numpy.output_bert_base"), check_dtype=False, **tol(np.float32))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="scaled_scores")
def test_weights_rows_sum_to_one(student):
    rng = np.random.default_rng(3)
    Q, K, V = attention_inputs(rng, (3,), 4, 6, 5, 5, scale=3.0)
    _, w = student.scaled_dot_product_attention(Q, K, V, mask=random_mask(rng, (3, 4, 6)))
    assert_close(w.sum(axis=-1), np.ones((3, 4)), atol=1e-9,
                 name=msg("attention_numpy.attention_weights_summed_over"))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="masking")
def test_blocked_keys_get_zero_weight_and_their_values_do_not_matter(student):
    rng = np.random.default_rng(4)
    Q, K, V = attention_inputs(rng, (2,), 4, 5, 6, 3)
    mask = np.ones((2, 4, 5), dtype=bool)
    mask[:, :, 1] = False          # key 1 blocked for every query (True = may attend)
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    assert_close(w[..., 1], np.zeros((2, 4)), atol=1e-12,
                 name=msg("attention_numpy.weights_blocked_key_mask"))
    V2 = V.copy()
    V2[:, 1, :] += 100.0
    out2, _ = student.scaled_dot_product_attention(Q, K, V2, mask=mask)
    assert_close(out2, out, atol=1e-9, name=msg("attention_numpy.output_after_changing_only"))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="blocked_rows")
def test_fully_blocked_row_stays_finite(student):
    rng = np.random.default_rng(5)
    Q, K, V = attention_inputs(rng, (1,), 3, 4, 4, 4)
    mask = np.ones((1, 3, 4), dtype=bool)
    mask[0, 1, :] = False          # query 1 may attend to nothing
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    assert_finite(w, msg("attention_numpy.weights_when_query_keys"))
    assert_finite(out, msg("attention_numpy.output_when_query_keys"))
    # "each row of weights sums to 1" holds for that row too (how it spreads its weight is free)
    assert_close(w.sum(axis=-1), np.ones((1, 3)), atol=1e-6, name=msg("attention_numpy.rows_sum_fully_blocked"))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="blocked_rows")
def test_blocked_key_gets_zero_weight_next_to_large_negative_scores(student):
    # scores of -1e4 and -2e4 (d_k = 1): a blocked score must end below every real one; a fill
    # value of -1e4 (older BERT code) leaves the blocked key the largest score here
    Q, K, V = np.array([[100.0]]), np.array([[-100.0], [-200.0]]), np.array([[1.0], [2.0]])
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=np.array([False, True]))
    assert_close(w, np.array([[0.0, 1.0]]), atol=1e-9, name=msg("attention_numpy.weights_large_negative_scores"))
    assert_close(out, np.array([[2.0]]), atol=1e-9, name=msg("attention_numpy.output_large_negative_scores"))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="masking")
def test_mask_of_zeros_and_ones(student, reference):
    rng = np.random.default_rng(6)
    Q, K, V = attention_inputs(rng, (2,), 3, 4, 4, 2)
    mask = random_mask(rng, (2, 3, 4)).astype(np.int64)   # 1 = may attend, 0 = blocked
    _, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    _, want = reference.scaled_dot_product_attention(Q, K, V, mask=mask.astype(bool))
    assert_close(w, want, name=msg("attention_numpy.weights_0_1_integer"), **tol(np.float64))


# every shape the docstring allows ("broadcastable to (..., L_q, L_k)") for scores (2, 3, 4, 5)
MASK_SHAPES = [(4, 5), (1, 5), (5,), (2, 1, 1, 5), (3, 4, 5), (2, 3, 4, 1), (2, 3, 4, 5)]


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="masking")
@pytest.mark.parametrize("mask_shape", MASK_SHAPES, ids=[str(s) for s in MASK_SHAPES])
def test_every_broadcastable_mask_shape(student, reference, mask_shape):
    rng = np.random.default_rng(12)
    Q, K, V = attention_inputs(rng, (2, 3), 4, 5, 6, 2)
    mask = random_mask(rng, mask_shape)
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    want_out, want_w = reference.scaled_dot_product_attention(Q, K, V, mask=mask)
    assert_close(w, want_w, name=msg("attention_numpy.weights_mask_shape", shape=mask_shape), **tol(np.float64))
    assert_close(out, want_out, name=msg("attention_numpy.output_mask_shape", shape=mask_shape), **tol(np.float64))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="scaled_scores")
def test_self_attention_is_permutation_equivariant(student):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 4))
    perm = rng.permutation(6)
    out, _ = student.scaled_dot_product_attention(X, X, X)
    out_p, _ = student.scaled_dot_product_attention(X[perm], X[perm], X[perm])
    assert_close(out_p, out[perm], atol=1e-9,
                 name=msg("attention_numpy.self_attention_permuted_tokens"))


@pytest.mark.judges("scaled_dot_product_attention", stage=2, item="conventions")
def test_inputs_are_not_modified(student):
    rng = np.random.default_rng(9)
    Q, K, V = attention_inputs(rng, (2,), 3, 4, 4, 4)
    student.scaled_dot_product_attention(Q, K, V, mask=random_mask(rng, (2, 3, 4)))
    assert_not_mutated(student, msg("attention_numpy.q_k_v_or"))


# ------------------------------------------------------------------ attention: the whole comparison

@pytest.mark.judges("scaled_dot_product_attention", stage=3, item="output")
@graded(max_examples=40)
@given(seed=seeds, shapes=attention_shapes(), dtype=float_dtypes, masked=st.booleans())
def test_attention_matches_reference(student, reference, seed, shapes, dtype, masked):
    batch, L_q, L_k, d_k, d_v = shapes
    rng = np.random.default_rng(seed)
    Q, K, V = attention_inputs(rng, batch, L_q, L_k, d_k, d_v, dtype, scale=2.0)
    mask = random_mask(rng, (*batch, L_q, L_k)) if masked else None
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    want_out, want_w = reference.scaled_dot_product_attention(Q, K, V, mask=mask)
    assert_close(w, want_w, name=msg("attention_numpy.attention_weights"), check_dtype=False, **tol(dtype))
    assert_close(out, want_out, name=msg("attention_numpy.attention_output"), check_dtype=False, **tol(dtype))
