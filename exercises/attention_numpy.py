"""演習：NumPy によるスケール化内積注意（自己注意）（3.2 節）。

作るもの：数値的に安定な ``softmax(x, axis=-1)`` と ``scaled_dot_product_attention(Q, K, V, mask=None)``
（Q (..., L_q, d_k)、K (..., L_k, d_k)、V (..., L_k, d_v) → 出力 (..., L_q, d_v) と重み (..., L_q, L_k)。
先頭のバッチ次元はいくつでもよく、L_q と L_k は違ってもよい）。
章との違い：mask は True / 1 が「注意してよい」（HuggingFace と同じ）。章の NumPy のリストは
``mask * -1e9``（1 = 禁止）で、意味が逆です。float32 は float32 のまま返します。

Exercise: scaled dot-product self-attention (自己注意) in NumPy — chapter 3.2.

Self-attention lets every token look at every other token.  Each query vector is
compared with every key vector; the similarities become weights (注意の重み)
that sum to one, and the output is the weighted average of the value vectors:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Run ``nox -s grade -- attention_numpy`` to check your work, and
``nox -s hint -- attention_numpy`` if you are stuck.
"""
import math  # noqa: F401  (you will probably want math.sqrt)

import numpy as np  # noqa: F401


def softmax(x, axis=-1):
    """Softmax (ソフトマックス関数) of ``x`` along ``axis``.

    Args:
        x: a float ``np.ndarray`` of any shape.
        axis: the axis whose entries are turned into probabilities.

    Returns:
        An array of the same shape and dtype whose entries along ``axis`` are
        positive and sum to 1.

    It must be numerically stable: inputs as large as 1e4 (or as negative as
    -1e4) must not overflow to ``inf`` or give ``nan``.  ``np.exp(1000.0)`` is
    already ``inf``, so think about what you can change without changing the
    result.

    Raises ``TypeError`` if ``x`` is not an ``np.ndarray``.
    """
    raise NotImplementedError("softmax")


def scaled_dot_product_attention(Q, K, V, mask=None):
    """Scaled dot-product attention (スケール化内積注意).

    Shapes (any number of leading batch dimensions ``...``, the same for all):
        Q: ``(..., L_q, d_k)``   queries
        K: ``(..., L_k, d_k)``   keys
        V: ``(..., L_k, d_v)``   values
        mask: optional, broadcastable to ``(..., L_q, L_k)``.

    Returns:
        ``(output, weights)`` with ``output`` of shape ``(..., L_q, d_v)`` and
        ``weights`` of shape ``(..., L_q, L_k)``; each row of ``weights`` sums to 1.
        Float in, same float dtype out (float32 stays float32).

    Mask convention — read this carefully: in this kata ``mask`` is True (or 1)
    where a query MAY attend to a key and False (or 0) where it is blocked.  This
    is HuggingFace's ``attention_mask`` convention and PyTorch's boolean mask.
    The chapter's NumPy listing does ``scores + mask * -1e9`` with 1 meaning
    *blocked* — the opposite.  A blocked key must get (numerically) zero weight,
    and a row whose keys are all blocked must still be finite (no NaN).

    ``L_q`` may differ from ``L_k`` (cross-attention, 交差注意).  The chapter's
    example: Q, K, V of shape ``(2, 5, 64)`` give an output ``(2, 5, 64)`` and
    weights ``(2, 5, 5)``.

    Hint: swap only the last two axes of K (``K.T`` also reverses the batch axes),
    and keep the scale a Python float so float32 stays float32.

    Raises:
        ValueError: naming the argument, if Q and K disagree on ``d_k`` or K and V
        on ``L_k``, or if ``mask`` cannot broadcast to the scores' shape.
    """
    raise NotImplementedError("scaled_dot_product_attention")
