"""演習：PyTorch によるスケール化内積注意とマルチヘッド注意（3.2 節、3.3 節、章末演習 1 と 4）。

作るもの：``ScaledDotProductAttention``（3 次元・4 次元の入力）と ``MultiHeadAttention``
（nn.Linear の ``W_Q``、``W_K``、``W_V``、``W_O``。出力 (B, L_q, d_model) と重み (B, h, L_q, L_k)。
自己注意と交差注意（L_q != L_k）の両方）。d_model が num_heads で割り切れなければ ValueError。
章との違い：mask は True / 1 が「注意してよい」（HuggingFace と同じ）。
スコアの形 (..., L_q, L_k) に合わない mask（ブロードキャストできない、またはスコアを大きくしてしまうもの）は mask を名指しする ValueError。

Exercise: scaled dot-product and multi-head attention (マルチヘッド注意) in PyTorch.

Chapter 3.2 (self-attention in PyTorch), 3.3 (multi-head attention) and the
chapter's exercises 1 and 4.  Multi-head attention runs ``num_heads`` smaller
attentions side by side, each on its own ``d_k = d_model // num_heads`` slice of
learned projections of the queries, keys and values, and mixes their results with
one more projection:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O,
    head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)

Run ``nox -s grade -- attention_torch`` to check your work, and
``nox -s hint -- attention_torch`` if you are stuck.
"""
import math  # noqa: F401

import torch  # noqa: F401
from torch import nn


class ScaledDotProductAttention(nn.Module):
    """softmax(Q K^T / sqrt(d_k)) V as a module (スケール化内積注意).

    ``forward(Q, K, V, mask=None) -> (output, weights)`` works on 3-D inputs
    ``(B, L, d)`` and on 4-D inputs ``(B, h, L, d)`` (one attention per head):

        Q: (..., L_q, d_k)   K: (..., L_k, d_k)   V: (..., L_k, d_v)
        output: (..., L_q, d_v)   weights: (..., L_q, L_k), rows sum to 1

    Mask convention: ``mask`` is a bool (or 0/1) tensor broadcastable to
    ``(..., L_q, L_k)``; True / 1 = may attend, False / 0 = blocked.  This is
    HuggingFace's ``attention_mask`` and the boolean mask of
    ``torch.nn.functional.scaled_dot_product_attention``; the chapter's NumPy
    listing uses the opposite (1 = blocked).  Blocked keys get zero weight, and a
    query whose keys are all blocked must still give finite numbers (no NaN):
    fill blocked scores with a very negative *finite* value such as
    ``torch.finfo(scores.dtype).min``, not ``-inf``.  A mask that does not broadcast
    to the scores' shape (one that cannot broadcast at all, or one that would make
    the scores bigger, e.g. an extra leading dimension) raises ``ValueError`` naming
    ``mask``: ``masked_fill`` would broadcast it silently.

    Keep the input's dtype and device (float64 in, float64 out; CUDA in, CUDA out).

    Hint: ``K.transpose(-2, -1)`` swaps only the last two dimensions, so the same
    code serves 3-D and 4-D inputs.
    """

    def __init__(self, d_k):
        super().__init__()
        raise NotImplementedError("ScaledDotProductAttention.__init__")

    def forward(self, Q, K, V, mask=None):
        raise NotImplementedError("ScaledDotProductAttention.forward")


class MultiHeadAttention(nn.Module):
    """Multi-head attention (マルチヘッド注意), laid out like the chapter's listing.

    ``__init__(d_model, num_heads, dropout=0.0)`` creates four ``nn.Linear(d_model,
    d_model)`` layers with bias, named exactly ``W_Q``, ``W_K``, ``W_V`` (the
    projections of queries, keys, values) and ``W_O`` (the output projection):
    the grader copies HuggingFace and ``torch.nn.MultiheadAttention`` weights into
    them by these names.  ``d_model % num_heads != 0`` raises ``ValueError``
    naming both numbers.

    ``split_heads(x, batch_size)``: ``(B, L, d_model) -> (B, num_heads, L, d_k)``;
    head ``i`` holds features ``i*d_k ... (i+1)*d_k - 1`` of each position (the same
    layout as HuggingFace's ``BertSelfAttention``).

    ``forward(Q, K, V, mask=None) -> (output, weights)``:
        Q: (B, L_q, d_model), K and V: (B, L_k, d_model)  (L_q may differ from L_k:
        cross-attention, 交差注意)
        mask: True/1 = may attend, of shape (B, 1, 1, L_k) (padding mask),
        (L_q, L_k) (one mask for every sequence, e.g. causal) or (B, 1, L_q, L_k)
        output: (B, L_q, d_model); weights: (B, num_heads, L_q, L_k)
        A mask that does not fit the scores (B, num_heads, L_q, L_k) raises
        ``ValueError`` naming ``mask``, as in ``ScaledDotProductAttention``.

    The chapter's example: ``MultiHeadAttention(512, 8)`` on ``x`` of shape
    ``(2, 10, 512)`` gives weights of shape ``torch.Size([2, 8, 10, 10])``.

    Where dropout goes is up to you (on the attention weights, as HuggingFace does, or
    on the merged heads); it acts only in train mode.  The grader compares in eval
    mode, and checks with ``dropout=0.5`` that train mode drops and eval mode does not.

    Hint: project, split heads, attend (reuse your ``ScaledDotProductAttention``),
    merge the heads back with ``transpose`` + ``contiguous`` + ``view``, project
    with ``W_O``.
    """

    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__()
        raise NotImplementedError("MultiHeadAttention.__init__")

    def split_heads(self, x, batch_size):
        raise NotImplementedError("MultiHeadAttention.split_heads")

    def forward(self, Q, K, V, mask=None):
        raise NotImplementedError("MultiHeadAttention.forward")
