"""第3章 3.2 節（PyTorch による自己注意）と 3.3 節（マルチヘッド注意）のリスト。

The chapter's listings, adapted only where exercises/attention_torch.py documents a difference:
- mask: ``masked_fill(mask == 0, -1e9)`` is the book's line and already means 1 = may attend,
  0 = blocked (the kata's convention), so it is kept as printed;
- dropout: the chapter's MultiHeadAttention takes ``(d_model, num_heads)`` only; the kata's
  ``__init__(d_model, num_heads, dropout=0.0)`` (documented in the docstring) adds one
  ``nn.Dropout`` on the merged heads (where it goes is left free by the docstring).
No argument checks beyond the book's ``assert d_model % num_heads == 0``.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ScaledDotProductAttention(nn.Module):
    """スケール化内積注意"""

    def __init__(self, d_k):
        super().__init__()
        self.d_k = d_k

    def forward(self, Q, K, V, mask=None):
        # Q, K, V: (batch_size, [num_heads,] seq_len, d_k)
        scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(self.d_k)

        # マスクの適用（0 の位置に大きな負の値を入れる）
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)

        attention_weights = F.softmax(scores, dim=-1)
        output = torch.matmul(attention_weights, V)
        return output, attention_weights


class MultiHeadAttention(nn.Module):
    """マルチヘッド注意"""

    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__()
        assert d_model % num_heads == 0, "d_model は num_heads で割り切れる必要があります"

        self.d_model = d_model
        self.num_heads = num_heads
        self.d_k = d_model // num_heads

        # Q, K, V の線形変換
        self.W_Q = nn.Linear(d_model, d_model)
        self.W_K = nn.Linear(d_model, d_model)
        self.W_V = nn.Linear(d_model, d_model)

        # 出力の線形変換
        self.W_O = nn.Linear(d_model, d_model)

        self.attention = ScaledDotProductAttention(self.d_k)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x, batch_size):
        """(batch_size, seq_len, d_model) -> (batch_size, num_heads, seq_len, d_k)"""
        x = x.view(batch_size, -1, self.num_heads, self.d_k)
        return x.transpose(1, 2)

    def forward(self, Q, K, V, mask=None):
        batch_size = Q.size(0)

        # 線形変換してヘッドに分割
        Q = self.split_heads(self.W_Q(Q), batch_size)
        K = self.split_heads(self.W_K(K), batch_size)
        V = self.split_heads(self.W_V(V), batch_size)

        # スケール化内積注意
        attn_output, attention_weights = self.attention(Q, K, V, mask)

        # ヘッドを結合: (batch_size, seq_len, d_model)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.view(batch_size, -1, self.d_model)
        attn_output = self.dropout(attn_output)

        # 出力の線形変換
        output = self.W_O(attn_output)
        return output, attention_weights
