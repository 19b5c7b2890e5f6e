"""Reference solution: scaled dot-product and multi-head attention in PyTorch (3.2, 3.3)."""
import math

import torch
from torch import nn


def _check_mask(mask, scores):
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    try:
        fits = torch.broadcast_shapes(mask.shape, scores.shape) == scores.shape
    except RuntimeError:
        fits = False
    if not fits:   # masked_fill would broadcast the scores up to the mask's shape: never silently
        raise ValueError(f"mask of shape {tuple(mask.shape)} cannot broadcast to the scores' shape "
                         f"{tuple(scores.shape)}")
    return mask.to(torch.bool)


class ScaledDotProductAttention(nn.Module):
    def __init__(self, d_k):
        super().__init__()
        if not isinstance(d_k, int) or d_k <= 0:
            raise ValueError(f"d_k must be a positive int, got {d_k!r}")
        self.d_k = d_k

    def forward(self, Q, K, V, mask=None):
        scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(self.d_k)   # (..., L_q, L_k)
        mask = _check_mask(mask, scores)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights, V), weights                              # (..., L_q, d_v)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__()
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
        if not isinstance(d_model, int) or d_model <= 0 or d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model!r}) must be a positive multiple of num_heads ({num_heads})")
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.W_Q = nn.Linear(d_model, d_model)
        self.W_K = nn.Linear(d_model, d_model)
        self.W_V = nn.Linear(d_model, d_model)
        self.W_O = nn.Linear(d_model, d_model)
        self.attention = ScaledDotProductAttention(self.d_k)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x, batch_size):
        # (B, L, d_model) -> (B, h, L, d_k)
        return x.view(batch_size, -1, self.num_heads, self.d_k).transpose(1, 2)

    def forward(self, Q, K, V, mask=None):
        batch_size = Q.size(0)
        q = self.split_heads(self.W_Q(Q), batch_size)      # (B, h, L_q, d_k)
        k = self.split_heads(self.W_K(K), batch_size)      # (B, h, L_k, d_k)
        v = self.split_heads(self.W_V(V), batch_size)      # (B, h, L_k, d_k)
        context, weights = self.attention(q, k, v, mask)   # (B, h, L_q, d_k), (B, h, L_q, L_k)
        context = self.dropout(context)
        context = context.transpose(1, 2).contiguous().view(batch_size, -1, self.d_model)
        return self.W_O(context), weights                  # (B, L_q, d_model)
