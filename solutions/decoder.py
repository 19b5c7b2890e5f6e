"""Reference solution: a post-LayerNorm Transformer decoder layer from the kata's own parts (3.1)."""
import torch
from torch import nn

from attention_torch import MultiHeadAttention
from feed_forward import PositionwiseFeedForward


def causal_mask(length, device=None):
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    ones = torch.ones(length, length, dtype=torch.bool, device=device)
    return torch.tril(ones)                                  # True on and below the diagonal: may attend


class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, activation="relu", layer_norm_eps=1e-5):
        super().__init__()
        self.d_model = d_model
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout, activation=activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        for name, t in (("x", x), ("memory", memory)):
            if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.size(-1) != self.d_model:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name} must have shape (batch, length, {self.d_model}), got {shape}")
        if memory.size(0) != x.size(0):
            raise ValueError(f"memory has batch size {memory.size(0)}, x has {x.size(0)}")
        # x (B, L_t, d_model): the target so far; memory (B, L_s, d_model): the encoder's output
        attn, _ = self.self_attn(x, x, x, tgt_mask)                         # masked self-attention
        x = self.norm1(x + self.dropout(attn))
        attn, _ = self.cross_attn(x, memory, memory, memory_mask)          # Q from x, K and V from memory
        x = self.norm2(x + self.dropout(attn))
        return self.norm3(x + self.dropout(self.feed_forward(x)))          # (B, L_t, d_model)


def _copy(name, mine, weight, bias):
    if mine.weight.shape != weight.shape:
        raise ValueError(f"{name}: shape {tuple(mine.weight.shape)} does not match torch's {tuple(weight.shape)}")
    mine.weight.copy_(weight)
    mine.bias.copy_(bias)


def load_torch_decoder_layer(layer, torch_layer):
    pairs = []
    for mine, theirs in ((layer.self_attn, torch_layer.self_attn), (layer.cross_attn, torch_layer.multihead_attn)):
        # nn.MultiheadAttention keeps W_Q, W_K, W_V stacked in one (3 d_model, d_model) in_proj_weight
        w_q, w_k, w_v = theirs.in_proj_weight.chunk(3, dim=0)
        b_q, b_k, b_v = theirs.in_proj_bias.chunk(3, dim=0)
        pairs += [(mine.W_Q, w_q, b_q), (mine.W_K, w_k, b_k), (mine.W_V, w_v, b_v),
                  (mine.W_O, theirs.out_proj.weight, theirs.out_proj.bias)]
    pairs += [(layer.feed_forward.linear1, torch_layer.linear1.weight, torch_layer.linear1.bias),
              (layer.feed_forward.linear2, torch_layer.linear2.weight, torch_layer.linear2.bias)]
    for i in (1, 2, 3):
        theirs = getattr(torch_layer, f"norm{i}")
        pairs.append((getattr(layer, f"norm{i}"), theirs.weight, theirs.bias))
    with torch.no_grad():
        for k, (mine, weight, bias) in enumerate(pairs):
            _copy(f"parameter {k}", mine, weight, bias)
    return layer
