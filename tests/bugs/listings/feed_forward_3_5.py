"""第3章 3.5 節のリスト：位置ごとのフィードフォワードネットワーク。

The chapter's listing (``linear1``, ``dropout``, ReLU, ``linear2``), adapted only where
exercises/feed_forward.py documents a difference:
- ``activation="relu"``: the book's network is ReLU only; the kata's docstring adds
  ``activation`` = ``"relu"`` (the chapter's listing) or ``"gelu"`` (BERT, exact erf GELU), so the
  ReLU line picks ``F.gelu`` for ``"gelu"``.
No argument checks (the book has none): any other activation silently means GELU.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PositionwiseFeedForward(nn.Module):
    """位置ごとのフィードフォワードネットワーク"""

    def __init__(self, d_model, d_ff, dropout=0.1, activation="relu"):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x):
        # x: (batch_size, seq_len, d_model)
        # FFN(x) = max(0, xW1 + b1)W2 + b2
        h = self.linear1(x)
        h = F.relu(h) if self.activation == "relu" else F.gelu(h)
        return self.linear2(self.dropout(h))
