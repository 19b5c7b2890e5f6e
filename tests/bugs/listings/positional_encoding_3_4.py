"""第3章 3.4 節のリスト：正弦波による位置エンコーディング。

The chapter's float32 listing (``torch.arange(...).float()``, ``div_term = exp(arange(0, d, 2) *
(-log(10000) / d))``, ``register_buffer('pe', pe.unsqueeze(0))``, ``x + self.pe[:, :x.size(1)]``),
adapted only where exercises/positional_encoding.py documents a difference:
- odd ``d_model``: the cosine line takes ``div_term[: d_model // 2]`` (one fewer cos column than
  sin columns), where the book's ``torch.cos(position * div_term)`` fails with a shape error;
- ``sinusoidal_table(max_len, d_model)``: the kata's name for the lines of the book's ``__init__``
  that build ``pe``, as a function (the same float32 lines; the book prints them only inside
  ``PositionalEncoding.__init__``, which keeps them inline here).
No argument checks (the book has none).
"""
import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model):
    """位置エンコーディングの表 (max_len, d_model)"""
    pe = torch.zeros(max_len, d_model)
    position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe


class PositionalEncoding(nn.Module):
    """正弦波による位置エンコーディング"""

    def __init__(self, d_model, max_len=5000):
        super().__init__()

        # 位置エンコーディングの行列を作成
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))

        pe[:, 0::2] = torch.sin(position * div_term)                   # 偶数次元: sin
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])   # 奇数次元: cos

        pe = pe.unsqueeze(0)  # (1, max_len, d_model)
        self.register_buffer('pe', pe)

    def forward(self, x):
        # x: (batch_size, seq_len, d_model)
        return x + self.pe[:, :x.size(1)]
