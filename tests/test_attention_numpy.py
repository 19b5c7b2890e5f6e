"""Suite for exercises/attention_numpy.py (chapter 3.2): softmax and scaled dot-product attention."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.grading.checks import (assert_close, assert_dtype, assert_finite, assert_not_mutated, assert_shape,
                           graded)
from grader.i18n import msg
from grader.grading.strategies import attention_inputs, attention_shapes, float_dtypes, random_mask, seeds

# float64: both sides compute in double; differences are rounding only (~1e-15).
# float32: einsum vs matmul vs loops reorder sums; ~1e-6 relative.  Real bugs (no
# scaling, wrong softmax axis, inverted mask) move values by > 1e-2.
TOL = {np.dtype(np.float64): dict(atol=1e-9, rtol=1e-7), np.dtype(np.float32): dict(atol=2e-5, rtol=2e-5)}


def tol(dtype):
    return TOL[np.dtype(dtype)]


# ------------------------------------------------------------------ softmax

@graded(max_examples=30)
@given(seed=seeds, shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), dtype=float_dtypes,
       scale=st.sampled_from([1.0, 10.0, 100.0]), data=st.data())
def test_softmax_matches_reference(student, reference, seed, shape, dtype, scale, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    got = student.softmax(x, axis=axis)
    assert_close(got, reference.softmax(x, axis=axis), name=f"softmax(x, axis={axis})", **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_survives_huge_inputs(student, dtype):
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4], [-1e4, -1e4 + 1.0, -1e4]], dtype=dtype)
    got = student.softmax(x)
    assert_finite(got, msg("attention_numpy.softmax_inputs_1e4"))
    want = np.array([[1, 0, 0], [1 / 3] * 3, [1 / 3] * 3, [1 / (2 + np.e), np.e / (2 + np.e), 1 / (2 + np.e)]])
    assert_close(got, want.astype(dtype), name=msg("attention_numpy.softmax_inputs_1e4"),
                 **tol(dtype))


def test_softmax_rows_sum_to_one_along_the_given_axis(student):
    x = np.random.default_rng(1).standard_normal((4, 3))
    got = student.softmax(x, axis=0)
    assert_shape(got, (4, 3), "softmax(x, axis=0)")
    assert_close(got.sum(axis=0), np.ones(3), atol=1e-9,
                 name=msg("attention_numpy.softmax_x_axis_0"))


def test_softmax_keeps_float32(student):
    got = student.softmax(np.zeros((2, 3), dtype=np.float32))
    assert_dtype(got, np.float32, msg("attention_numpy.softmax_float32_array"))


# ------------------------------------------------------------------ attention

@graded(max_examples=40)
@given(seed=seeds, shapes=attention_shapes(), dtype=float_dtypes, masked=st.booleans())
def test_attention_matches_reference(student, reference, seed, shapes, dtype, masked):
    batch, L_q, L_k, d_k, d_v = shapes
    rng = np.random.default_rng(seed)
    Q, K, V = attention_inputs(rng, batch, L_q, L_k, d_k, d_v, dtype, scale=2.0)
    mask = random_mask(rng, (*batch, L_q, L_k)) if masked else None
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    want_out, want_w = reference.scaled_dot_product_attention(Q, K, V, mask=mask)
    assert_close(w, want_w, name=msg("attention_numpy.attention_weights"), **tol(dtype))
    assert_close(out, want_out, name=msg("attention_numpy.attention_output"), **tol(dtype))


def test_chapter_shapes(student):
    rng = np.random.default_rng(0)
    Q, K, V = attention_inputs(rng, (2,), 5, 5, 64, 64)
    out, w = student.scaled_dot_product_attention(Q, K, V)
    assert_shape(out, (2, 5, 64), msg("attention_numpy.output_q_k_v"))
    assert_shape(w, (2, 5, 5), msg("attention_numpy.weights_q_k_v"))


def test_cross_attention_shapes_and_values(student, reference):
    rng = np.random.default_rng(2)
    Q, K, V = attention_inputs(rng, (2,), 3, 7, 8, 4)
    out, w = student.scaled_dot_product_attention(Q, K, V)
    assert_shape(out, (2, 3, 4), msg("attention_numpy.output_l_q_3"))
    assert_shape(w, (2, 3, 7), msg("attention_numpy.weights_l_q_3"))
    want_out, want_w = reference.scaled_dot_product_attention(Q, K, V)
    assert_close(out, want_out, name=msg("attention_numpy.cross_attention_output"), **tol(np.float64))


def test_scores_are_scaled_by_sqrt_dk(student):
    # one query, two keys: the weight ratio is exp((q.k1 - q.k2) / sqrt(d_k))
    d_k = 16
    Q = np.zeros((1, d_k))
    Q[0, 0] = 1.0
    K = np.zeros((2, d_k))
    K[0, 0] = 8.0
    V = np.eye(2)
    _, w = student.scaled_dot_product_attention(Q, K, V)
    want = np.array([[1.0, np.exp(-2.0)]]) / (1.0 + np.exp(-2.0))
    assert_close(w, want, atol=1e-9, name=msg("attention_numpy.weights_q_e1_k1"))


def test_weights_rows_sum_to_one(student):
    rng = np.random.default_rng(3)
    Q, K, V = attention_inputs(rng, (3,), 4, 6, 5, 5, scale=3.0)
    _, w = student.scaled_dot_product_attention(Q, K, V, mask=random_mask(rng, (3, 4, 6)))
    assert_close(w.sum(axis=-1), np.ones((3, 4)), atol=1e-9,
                 name=msg("attention_numpy.attention_weights_summed_over"))


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


def test_fully_blocked_row_stays_finite(student):
    rng = np.random.default_rng(5)
    Q, K, V = attention_inputs(rng, (1,), 3, 4, 4, 4)
    mask = np.ones((1, 3, 4), dtype=bool)
    mask[0, 1, :] = False          # query 1 may attend to nothing
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    assert_finite(w, msg("attention_numpy.weights_when_query_keys"))
    assert_finite(out, msg("attention_numpy.output_when_query_keys"))


def test_mask_of_zeros_and_ones(student, reference):
    rng = np.random.default_rng(6)
    Q, K, V = attention_inputs(rng, (2,), 3, 4, 4, 2)
    mask = random_mask(rng, (2, 3, 4)).astype(np.int64)   # 1 = may attend, 0 = blocked
    _, w = student.scaled_dot_product_attention(Q, K, V, mask=mask)
    _, want = reference.scaled_dot_product_attention(Q, K, V, mask=mask.astype(bool))
    assert_close(w, want, name=msg("attention_numpy.weights_0_1_integer"), **tol(np.float64))


def test_self_attention_is_permutation_equivariant(student):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 4))
    perm = rng.permutation(6)
    out, _ = student.scaled_dot_product_attention(X, X, X)
    out_p, _ = student.scaled_dot_product_attention(X[perm], X[perm], X[perm])
    assert_close(out_p, out[perm], atol=1e-9,
                 name=msg("attention_numpy.self_attention_permuted_tokens"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_float_dtype(student, dtype):
    rng = np.random.default_rng(8)
    Q, K, V = attention_inputs(rng, (2,), 3, 3, 4, 4, dtype)
    out, w = student.scaled_dot_product_attention(Q, K, V, mask=np.ones((3, 3), dtype=bool))
    name = np.dtype(dtype).name
    assert_dtype(out, np.dtype(dtype), msg("attention_numpy.output_inputs", name=name))
    assert_dtype(w, np.dtype(dtype), msg("attention_numpy.weights_inputs", name=name))


def test_inputs_are_not_modified(student):
    rng = np.random.default_rng(9)
    Q, K, V = attention_inputs(rng, (2,), 3, 4, 4, 4)
    student.scaled_dot_product_attention(Q, K, V, mask=random_mask(rng, (2, 3, 4)))
    assert_not_mutated(student, msg("attention_numpy.q_k_v_or"))
    student.softmax(Q)
    assert_not_mutated(student, msg("attention_numpy.softmax_input"))


def test_mismatched_shapes_raise_value_error(student):
    rng = np.random.default_rng(10)
    Q = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError):
        student.scaled_dot_product_attention(Q, rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 5, 6)))
    with pytest.raises(ValueError):
        student.scaled_dot_product_attention(Q, rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 6, 4)))
