"""演習：正弦波による位置エンコーディング（3.4 節、章末演習 2）。

作るもの：``sinusoidal_table(max_len, d_model)``（形状 (max_len, d_model)。列 2i に sin、2i+1 に cos。
d_model が奇数でもよい）と ``PositionalEncoding``（バッファ ``pe`` の形状は (1, max_len, d_model)。
forward で入力に足す。max_len より長い系列は ValueError）。
DistilBERT の表と 1e-3 以内で一致すれば合格です（章の float32 のリストもこの範囲に入ります）。

Exercise: sinusoidal positional encoding (位置エンコーディング) — chapter 3.4, exercise 2.

Self-attention by itself does not know the order of the tokens: permute the
input rows and the outputs are permuted the same way.  The Transformer therefore
adds to every token embedding a vector that depends only on its position ``pos``:

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

Each pair of columns (2i, 2i+1) is a point on the unit circle turning with its own
frequency w_i = 1 / 10000^(2i / d_model): fast in the first columns, very slow in
the last ones.  Because of that, moving k positions ahead is the same rotation of
each pair whatever ``pos`` is (chapter exercise 2):

    [PE[pos+k, 2i], PE[pos+k, 2i+1]] = R(k * w_i) [PE[pos, 2i], PE[pos, 2i+1]]

Run ``nox -s grade -- positional_encoding`` to check your work, and
``nox -s hint -- positional_encoding`` if you are stuck.
"""
import math  # noqa: F401  (math.log(10000.0) is handy)

import torch  # noqa: F401
from torch import nn


def sinusoidal_table(max_len, d_model):
    """The sinusoidal position table (正弦波による位置エンコーディングの表).

    Args:
        max_len: number of positions (rows), a positive int.
        d_model: size of each encoding (columns), a positive int; it may be odd.

    Returns:
        A float ``torch.Tensor`` of shape ``(max_len, d_model)`` with
        ``table[pos, 2i] = sin(pos * w_i)`` and ``table[pos, 2i+1] = cos(pos * w_i)``,
        ``w_i = 10000 ** (-2i / d_model)``.  Row 0 is ``(0, 1, 0, 1, ...)``.

    It must equal HuggingFace DistilBERT's ``create_sinusoidal_embeddings`` within
    1e-3.  The chapter's listing is right for an even ``d_model``; with an odd
    ``d_model`` there is one more even column (sin) than odd columns (cos), and
    the listing's cosine assignment fails with a shape error: make it work.

    Hint: build the angles ``pos * w_i`` for all positions at once by broadcasting a
    ``(max_len, 1)`` column of positions against a row of frequencies.  Computing in
    float64 and converting at the end keeps large positions accurate.
    """
    raise NotImplementedError("sinusoidal_table")


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to a batch of embeddings (chapter 3.4's listing).

    ``__init__(d_model, max_len=5000)`` builds ``sinusoidal_table(max_len, d_model)``
    once and registers it as a **buffer** named ``pe`` of shape ``(1, max_len, d_model)``
    (``self.register_buffer("pe", ...)``): a buffer is not trained, but it is saved
    in the ``state_dict`` and moves with ``.to(device)`` like a parameter.

    ``forward(x)``: ``x`` has shape ``(batch, seq_len, d_model)``; return
    ``x + pe[:, :seq_len]`` with the same shape, dtype (float32 stays float32,
    float64 stays float64) and device as ``x``.  Do not change ``x`` in place.
    A sequence longer than ``max_len`` raises ``ValueError`` naming ``max_len`` and
    the length (slicing would silently give a too-short table).
    """

    def __init__(self, d_model, max_len=5000):
        super().__init__()
        raise NotImplementedError("PositionalEncoding.__init__")

    def forward(self, x):
        raise NotImplementedError("PositionalEncoding.forward")
