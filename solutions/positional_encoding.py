"""Reference solution: sinusoidal positional encoding (chapter 3.4, exercise 2)."""
import math

import torch
from torch import nn


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def sinusoidal_table(max_len, d_model):
    _check_positive_int("max_len", max_len)
    _check_positive_int("d_model", d_model)
    # float64 inside, so position 5000 is as exact as DistilBERT's table
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)                 # (max_len, 1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64)
                         * (-math.log(10000.0) / d_model))                               # (ceil(d/2),)
    angles = position * div_term                                                          # (max_len, ceil(d/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)                   # even columns: ceil(d/2) of them
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # odd columns: floor(d/2) of them
    return pe.to(torch.get_default_dtype())


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=5000):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model).unsqueeze(0))  # (1, max_len, d_model)

    def forward(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            raise ValueError(f"x must be a (batch, seq_len, d_model) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.size(-1) != self.d_model:
            raise ValueError(f"x has d_model {x.size(-1)}, this encoding was built for d_model {self.d_model}")
        seq_len = x.size(1)
        if seq_len > self.max_len:
            raise ValueError(f"sequence length {seq_len} is longer than max_len {self.max_len}")
        return x + self.pe[:, :seq_len].to(x.dtype)      # (B, L, d_model)
