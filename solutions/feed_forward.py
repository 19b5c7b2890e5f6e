"""Reference solution: the position-wise feed-forward network (chapter 3.5)."""
import torch
from torch import nn
import torch.nn.functional as F

ACTIVATIONS = ("relu", "gelu")


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1, activation="relu"):
        super().__init__()
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = self.linear1(x)                                            # (..., d_ff)
        h = F.relu(h) if self.activation == "relu" else F.gelu(h)      # exact erf GELU, as BERT
        return self.linear2(self.dropout(h))                           # (..., d_model)
