"""演習：位置ごとのフィードフォワードネットワーク（3.5 節）。

作るもの：``PositionwiseFeedForward(d_model, d_ff, dropout=0.1, activation="relu")``。属性は
``linear1``、``linear2``、``dropout`` の 3 つ。入出力とも (B, L, d_model)。activation は "relu" か
"gelu"（BERT と同じ厳密な erf 版）で、それ以外は ValueError。

Exercise: the position-wise feed-forward network (位置ごとのフィードフォワードネットワーク) — chapter 3.5.

After attention has mixed information *between* tokens, every Transformer layer
applies the same small two-layer network to each position *separately*:

    FFN(x) = activation(x W1 + b1) W2 + b2

``W1`` widens each vector from ``d_model`` to ``d_ff`` (usually ``4 * d_model``:
768 -> 3072 in BERT-base), ``W2`` brings it back.  "Position-wise" means no
position sees another one here: feeding one token alone gives exactly its slice
of the output for the whole sequence.

Run ``nox -s grade -- feed_forward`` to check your work, and
``nox -s hint -- feed_forward`` if you are stuck.
"""
import torch  # noqa: F401
from torch import nn
import torch.nn.functional as F  # noqa: F401  (F.relu, F.gelu)


class PositionwiseFeedForward(nn.Module):
    """Two linear layers with an activation and dropout in between.

    ``__init__(d_model, d_ff, dropout=0.1, activation="relu")`` creates exactly these
    attributes (the grader and the ``encoder`` exercise rely on the names):

    - ``linear1 = nn.Linear(d_model, d_ff)`` (bias on)
    - ``linear2 = nn.Linear(d_ff, d_model)`` (bias on)
    - ``dropout = nn.Dropout(dropout)``

    ``activation`` is ``"relu"`` (the chapter's listing, the original Transformer) or
    ``"gelu"`` (BERT).  BERT uses the *exact* GELU, ``x * Phi(x)`` with the normal
    CDF ``Phi`` (``F.gelu(x)``), not the tanh approximation (``approximate="tanh"``);
    the two differ by up to about 5e-4, enough for the grader to tell.  Any other
    value raises ``ValueError`` naming ``activation`` and the value.

    ``forward(x)``: ``x`` of shape ``(batch, seq_len, d_model)`` gives the same shape,
    dtype and device.  Dropout only acts in train mode (``nn.Dropout`` already knows
    ``self.training``; ``F.dropout(h, p)`` without ``training=self.training`` would
    drop in eval mode too).  With ``"gelu"`` and the same weights this equals
    HuggingFace's ``BertIntermediate`` (dense + GELU) followed by ``BertOutput.dense``.
    """

    def __init__(self, d_model, d_ff, dropout=0.1, activation="relu"):
        super().__init__()
        raise NotImplementedError("PositionwiseFeedForward.__init__")

    def forward(self, x):
        raise NotImplementedError("PositionwiseFeedForward.forward")
