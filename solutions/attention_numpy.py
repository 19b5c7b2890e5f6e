"""Reference solution: scaled dot-product self-attention in NumPy (chapter 3.2)."""
import math

import numpy as np


def _check_array(name, x, min_ndim):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {x.shape}")


def softmax(x, axis=-1):
    _check_array("x", x, 1)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def scaled_dot_product_attention(Q, K, V, mask=None):
    _check_array("Q", Q, 2)
    _check_array("K", K, 2)
    _check_array("V", V, 2)
    if Q.shape[-1] != K.shape[-1]:
        raise ValueError(f"Q and K must share d_k (last dimension), got Q {Q.shape} and K {K.shape}")
    if K.shape[-2] != V.shape[-2]:
        raise ValueError(f"K and V must share L_k (second-to-last dimension), got K {K.shape} and V {V.shape}")
    d_k = Q.shape[-1]
    scores = np.matmul(Q, np.swapaxes(K, -1, -2)) / math.sqrt(d_k)   # (..., L_q, L_k)
    if mask is not None:
        mask = np.asarray(mask)
        try:
            mask = np.broadcast_to(mask.astype(bool), scores.shape)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} cannot broadcast to the scores' shape "
                             f"{scores.shape}") from None
        scores = np.where(mask, scores, np.asarray(-1e9, dtype=scores.dtype))
    weights = softmax(scores, axis=-1)                                 # (..., L_q, L_k)
    return np.matmul(weights, V), weights                              # (..., L_q, d_v)
