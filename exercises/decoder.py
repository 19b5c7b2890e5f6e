"""Exercise: a Transformer decoder layer (デコーダ層) from your own parts — chapter 3.1.

要約：3.1 のエンコーダ・デコーダ構成のうち、デコーダの 1 層を自作の ``MultiHeadAttention``
と ``PositionwiseFeedForward`` から組み立てます。デコーダ層は 3 つのサブレイヤー
（マスク付き自己注意、エンコーダ出力への交差注意（クロスアテンション）、フィード
フォワード）からなり、それぞれに残差接続と LayerNorm（Add & Norm）が付きます。
交差注意のクエリは 1 つ目の Add & Norm の出力 h1（層の入力 x ではない）、キーとバリューは
エンコーダの出力 memory から取ります。自己注意には因果マスク（causal mask）が必要です。PyTorch の
``nn.TransformerDecoderLayer`` の重みを読み込み、同じ出力になることを確かめます。

The chapter's Transformer (3.1) is an encoder-decoder (エンコーダ・デコーダ) model: the
encoder reads the source sentence, the decoder writes the target sentence one token at a
time.  BERT keeps only the encoder (the ``encoder`` exercise); this exercise builds the
other half.  A decoder layer has three sub-layers, each followed by Add & Norm
(post-LayerNorm, as in the original Transformer and BERT):

    h1  = LayerNorm(x  + MaskedSelfAttention(x, x, x, causal mask))      # 1. masked self-attention
    h2  = LayerNorm(h1 + CrossAttention(h1, memory, memory))              # 2. cross-attention
    out = LayerNorm(h2 + FeedForward(h2))                                 # 3. position-wise FFN

(with dropout on each sub-layer's output, inside the sum: ``LayerNorm(h + Dropout(SubLayer(h)))``).

Self-attention vs cross-attention (the chapter's exercise 1): both are the same
``MultiHeadAttention``; only *where Q, K and V come from* differs.  In self-attention
(自己注意) queries, keys and values are all the decoder's own states ``x``: each target
token looks at the other target tokens.  In cross-attention (交差注意 / ソース・ターゲット
注意) the queries come from the decoder, that is ``h1``, the output of the first sub-layer
(as in ``nn.TransformerDecoderLayer``; not the layer's input ``x``), and the keys and values
from the encoder's output ``memory``: each target token looks at the source sentence.  So the
target length ``L_t`` and the source length ``L_s`` may differ, and the cross-attention
weights have shape ``(batch, heads, L_t, L_s)``.

Why the causal mask (因果マスク / 後続マスク): when the decoder is trained, the whole
target sentence is fed at once (teacher forcing), and the output at position ``i`` is
trained to predict token ``i + 1``.  If position ``i`` could attend to positions after
``i`` it would simply read the answer, and at generation time, when those tokens do not
exist yet, it would fail.  The causal mask lets position ``i`` attend to positions
``0 .. i`` only, so changing any token after ``i`` never changes the outputs at
positions ``<= i``; the grader checks exactly this.  Cross-attention needs no causal
mask: the whole source sentence is known.

Masks: this kata's convention everywhere is **True / 1 = may attend**, False / 0 =
blocked (HuggingFace's ``attention_mask``).  PyTorch's ``nn.Transformer`` and
``nn.TransformerDecoderLayer`` use the opposite for boolean masks: there True means
*blocked* (``nn.Transformer.generate_square_subsequent_mask`` even returns a float mask
with ``-inf`` above the diagonal).  Your functions follow the kata's convention; the
grader translates when it runs PyTorch's layer.

Run ``nox -s grade -- decoder`` to check your work (it needs ``attention_torch`` and
``feed_forward`` to work first), and ``nox -s hint -- decoder`` if you are stuck.
"""
import torch  # noqa: F401
from torch import nn

from attention_torch import MultiHeadAttention  # noqa: F401  (your own, from attention_torch.py)
from feed_forward import PositionwiseFeedForward  # noqa: F401  (your own, from feed_forward.py)


def causal_mask(length, device=None):
    """因果マスク：位置 i は位置 0..i にだけ注意できる (length, length) の bool テンソル。

    The causal (look-ahead) mask for a sequence of ``length`` tokens: a bool tensor of
    shape ``(length, length)`` on ``device`` (None: the default device) whose row ``i``
    (the query) is True at columns ``0 .. i`` (the keys it may attend to) and False
    after.  For ``length = 3``::

        [[ True, False, False],
         [ True,  True, False],
         [ True,  True,  True]]

    It broadcasts against attention scores ``(batch, heads, length, length)``, so it can
    be passed as the ``mask`` of your ``MultiHeadAttention`` as it is.  A ``length``
    that is not a non-negative int raises ``ValueError`` naming ``length``.
    """
    raise NotImplementedError("causal_mask")


class DecoderLayer(nn.Module):
    """デコーダ層：マスク付き自己注意、交差注意、フィードフォワード（それぞれ Add & Norm）。

    One post-LayerNorm Transformer decoder layer.

    ``__init__(d_model, num_heads, d_ff, dropout=0.1, activation="relu",
    layer_norm_eps=1e-5)`` creates these attributes (the grader reads the names):

    - ``self_attn``: your ``MultiHeadAttention(d_model, num_heads, ...)`` for the masked self-attention;
    - ``cross_attn``: a second ``MultiHeadAttention`` (its own weights) for the cross-attention;
    - ``feed_forward``: your ``PositionwiseFeedForward(d_model, d_ff, dropout, activation=activation)``;
    - ``norm1``, ``norm2``, ``norm3``: ``nn.LayerNorm(d_model, eps=layer_norm_eps)``, one per
      sub-layer, in that order;

    plus dropout on each sub-layer's output before the residual sum.  The defaults are
    PyTorch's ``nn.TransformerDecoderLayer``'s (ReLU, eps 1e-5), not BERT's.  Bad sizes
    or a bad ``activation`` raise ``ValueError`` naming the argument (your parts already do).

    ``forward(x, memory, tgt_mask=None, memory_mask=None)``:

    - ``x``: ``(batch, L_t, d_model)``, the target side (the decoder's input);
    - ``memory``: ``(batch, L_s, d_model)``, the encoder's output; ``L_s`` may differ from ``L_t``;
    - ``tgt_mask``: None or a mask broadcastable to the self-attention scores
      ``(batch, heads, L_t, L_t)``, True = may attend, e.g. ``causal_mask(L_t)``;
    - ``memory_mask``: None or a mask broadcastable to the cross-attention scores
      ``(batch, heads, L_t, L_s)``, e.g. ``(batch, 1, 1, L_s)`` for padding in the source.

    Returns ``(batch, L_t, d_model)``, same dtype and device as ``x``.  ``x`` or ``memory``
    that is not 3-D or whose last size is not ``d_model`` raises ``ValueError`` naming it.
    Dropout acts only in train mode.  The layer itself does not add the causal mask: the
    caller passes it as ``tgt_mask`` (as with PyTorch's layer).
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, activation="relu", layer_norm_eps=1e-5):
        super().__init__()
        raise NotImplementedError("DecoderLayer.__init__")

    def forward(self, x, memory, tgt_mask=None, memory_mask=None):
        raise NotImplementedError("DecoderLayer.forward")


def load_torch_decoder_layer(layer, torch_layer):
    """PyTorch の nn.TransformerDecoderLayer の重みを自分の DecoderLayer にコピーする。

    Copy the weights of ``torch_layer``, an ``nn.TransformerDecoderLayer(d_model, nhead,
    dim_feedforward, batch_first=True, norm_first=False)``, into your ``DecoderLayer``
    ``layer`` (in place) and return ``layer``.  Where PyTorch keeps each weight:

    - ``torch_layer.self_attn`` and ``torch_layer.multihead_attn`` (the cross-attention)
      are ``nn.MultiheadAttention``: their query, key and value projections are stacked
      in ONE parameter, ``in_proj_weight`` of shape ``(3 * d_model, d_model)`` (rows
      ``0 .. d_model-1`` for the queries, then the keys, then the values), with the biases
      stacked the same way in ``in_proj_bias``; the output projection is ``out_proj``
      (an ``nn.Linear``);
    - ``torch_layer.linear1`` / ``linear2``: the feed-forward's two ``nn.Linear``;
    - ``torch_layer.norm1`` / ``norm2`` / ``norm3``: the three LayerNorms, in sub-layer order.

    Every weight is stored as ``(out_features, in_features)`` on both sides: no transposes.
    Hint: ``with torch.no_grad(): mine.weight.copy_(theirs)``.  Print ``torch_layer`` and
    ``[n for n, _ in torch_layer.named_parameters()]`` to see the whole structure.
    """
    raise NotImplementedError("load_torch_decoder_layer")
