"""Input generators shared by suites: hypothesis strategies for shapes and seeds,
and seeded NumPy builders for attention inputs and masks."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

seeds = st.integers(min_value=0, max_value=2**32 - 1)
float_dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def attention_shapes(draw, max_batch_dims=2, max_len=6, max_dim=8):
    """(batch_shape, L_q, L_k, d_k, d_v) with 0..max_batch_dims leading dimensions."""
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=max_batch_dims)))
    L_q, L_k = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    d_k, d_v = draw(st.integers(1, max_dim)), draw(st.integers(1, max_dim))
    return batch, L_q, L_k, d_k, d_v


def random_mask(rng: np.random.Generator, shape, keep_one: bool = True, p_block: float = 0.4) -> np.ndarray:
    """A bool mask (True = may attend); with ``keep_one`` every row (last axis) keeps
    at least one allowed key, so no row is fully blocked."""
    mask = rng.random(shape) >= p_block
    if keep_one and shape[-1] > 0:
        first = rng.integers(0, shape[-1], size=shape[:-1])
        np.put_along_axis(mask, first[..., None], True, axis=-1)
    return mask


def attention_inputs(rng: np.random.Generator, batch, L_q, L_k, d_k, d_v, dtype=np.float64, scale=1.0):
    Q = (rng.standard_normal((*batch, L_q, d_k)) * scale).astype(dtype)
    K = (rng.standard_normal((*batch, L_k, d_k)) * scale).astype(dtype)
    V = rng.standard_normal((*batch, L_k, d_v)).astype(dtype)
    return Q, K, V
