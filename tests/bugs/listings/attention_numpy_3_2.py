"""第3章 3.2 節のリスト：NumPy による自己注意（スケール化内積注意）。

The chapter's listing, adapted only where exercises/attention_numpy.py documents a difference:
- mask: the kata's True / 1 = may attend, so the listing's ``scores + mask * -1e9`` (1 = blocked)
  becomes ``scores + (1 - mask) * -1e9``;
- float32 stays float32: the scale is ``math.sqrt(d_k)`` (a Python float) instead of
  ``np.sqrt(d_k)``, and the mask is cast to the scores' dtype before it is added;
- batch axes: ``np.swapaxes(K, -2, -1)`` instead of ``K.T`` ("K.T also reverses the batch axes").
No argument checks, as in the book.
"""
import math

import numpy as np


def softmax(x, axis=-1):
    """数値的に安定なソフトマックス関数"""
    # オーバーフローを防ぐため、最大値を引いてから指数を取る
    x_max = np.max(x, axis=axis, keepdims=True)
    exp_x = np.exp(x - x_max)
    return exp_x / np.sum(exp_x, axis=axis, keepdims=True)


def scaled_dot_product_attention(Q, K, V, mask=None):
    """スケール化内積注意

    Args:
        Q: クエリ (..., seq_len_q, d_k)
        K: キー (..., seq_len_k, d_k)
        V: バリュー (..., seq_len_k, d_v)
        mask: マスク（1 = 注意してよい、0 = 禁止）

    Returns:
        output: 注意の出力 (..., seq_len_q, d_v)
        attention_weights: 注意の重み (..., seq_len_q, seq_len_k)
    """
    d_k = Q.shape[-1]

    # ステップ1: Q と K の内積を計算し、sqrt(d_k) でスケーリング
    scores = np.matmul(Q, np.swapaxes(K, -2, -1)) / math.sqrt(d_k)

    # ステップ2: マスクの適用（禁止された位置に大きな負の値を加える）
    if mask is not None:
        scores = scores + (1 - mask.astype(scores.dtype)) * -1e9

    # ステップ3: ソフトマックスで注意の重みを計算
    attention_weights = softmax(scores, axis=-1)

    # ステップ4: 重み付き和を計算
    output = np.matmul(attention_weights, V)

    return output, attention_weights
