"""演習：自作の部品で組み立てる BERT エンコーダ（3.1 節、3.6 節）。

作るもの：post-LayerNorm の ``EncoderLayer``（自分の MultiHeadAttention と PositionwiseFeedForward
から）、HuggingFace の BertLayer の重みを写す ``load_bert_layer``、埋め込み（単語 + 位置 + トークン
タイプ、LayerNorm）と層の積み重ねからなる ``BertEncoder``（入力 (B, L) の input_ids → 出力
(B, L, hidden)。``from_hf`` で実際の重みを読み込む）。
マスクの規約：attention_mask は 1 が実トークン、0 がパディング（HuggingFace と同じ）。

Exercise: a BERT encoder (エンコーダ) built from your own parts — chapters 3.1 and 3.6.

This is where the chapter comes together.  With your ``MultiHeadAttention``
(``attention_torch``) and your ``PositionwiseFeedForward`` (``feed_forward``) you
build BERT's encoder layer, stack it, add BERT's embeddings, copy in the real
pretrained weights of a HuggingFace ``BertModel`` (事前学習済みの重み) — and get the
same hidden states as ``transformers`` does.

BERT's layer is *post-LayerNorm* (the original Transformer's "Add & Norm"):

    h   = LayerNorm(x + MultiHeadAttention(x, x, x, mask))
    out = LayerNorm(h + FeedForward(h))          # FeedForward with exact GELU

and BERT's input is the sum of three learned embeddings, then a LayerNorm:

    x = LayerNorm(word_embeddings[input_ids] + position_embeddings[0..L-1]
                  + token_type_embeddings[token_type_ids])

(BERT learns its position embeddings; it does not use the sinusoidal table of 3.4.)

Masks: this kata's convention everywhere — True / 1 = may attend, False / 0 =
blocked — is exactly HuggingFace's ``attention_mask`` (1 for real tokens, 0 for
[PAD]).  HuggingFace turns it into an *additive* mask inside the model; you pass
a boolean mask to your own attention instead.

Run ``nox -s grade -- encoder`` to check your work (it needs ``attention_torch``
and ``feed_forward`` to work first), and ``nox -s hint -- encoder`` if you are stuck.
"""
import torch  # noqa: F401
from torch import nn

from attention_torch import MultiHeadAttention  # noqa: F401  (your own, from attention_torch.py)
from feed_forward import PositionwiseFeedForward  # noqa: F401  (your own, from feed_forward.py)


class EncoderLayer(nn.Module):
    """One post-LayerNorm BERT encoder layer (エンコーダ層).

    ``__init__(d_model, num_heads, d_ff, dropout=0.1, layer_norm_eps=1e-12)`` builds
    a ``MultiHeadAttention(d_model, num_heads, ...)``, a
    ``PositionwiseFeedForward(d_model, d_ff, dropout, activation="gelu")``, two
    ``nn.LayerNorm(d_model, eps=layer_norm_eps)`` and dropout.  Attribute names are
    yours to choose.

    BERT uses ``layer_norm_eps=1e-12``, not PyTorch's default 1e-5: with real weights
    the difference is visible in the hidden states, and the grader sees it.

    ``forward(x, mask=None)``: ``x`` of shape ``(batch, seq_len, d_model)``; ``mask``
    is None or broadcastable to the attention scores ``(batch, num_heads, seq_len,
    seq_len)`` with True / 1 = may attend — e.g. ``(batch, 1, 1, seq_len)`` for
    padding.  Returns the new hidden states, shape ``(batch, seq_len, d_model)``.
    Dropout acts only in train mode.

    ``BertEncoder.forward(..., output_attentions=True)`` needs each layer's attention
    weights (your ``MultiHeadAttention`` already returns them): how the layer hands them
    out is yours to choose (an extra argument of ``forward``, for example), as long as
    ``layer(x, mask)`` still returns the hidden states alone.
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, layer_norm_eps=1e-12):
        super().__init__()
        raise NotImplementedError("EncoderLayer.__init__")

    def forward(self, x, mask=None):
        raise NotImplementedError("EncoderLayer.forward")


class BertPooler(nn.Module):
    """プーラー：[CLS]（先頭トークン）の隠れ状態に全結合層と tanh を掛けて文ベクトルにする。

    BERT's pooler: what ``BertModel(...).pooler_output`` is (the chapter prints it next
    to ``last_hidden_state`` in 3.6).  It takes the hidden state of the FIRST token
    (``[CLS]``) of each sequence, applies one ``nn.Linear(hidden_size, hidden_size)``
    and then ``tanh``.  During pre-training it fed the next-sentence-prediction (NSP)
    classifier, so ``pooler_output`` is a sentence-level summary trained for that task;
    classification heads built on it (3.7) start from it.

    ``__init__(hidden_size)`` creates the attribute ``dense = nn.Linear(hidden_size,
    hidden_size)`` (HuggingFace's ``BertPooler`` uses the same name, so its
    ``state_dict`` loads into yours).  ``forward(hidden_states)``: ``(batch, seq_len,
    hidden_size)`` -> ``(batch, hidden_size)``.
    """

    def __init__(self, hidden_size):
        super().__init__()
        raise NotImplementedError("BertPooler.__init__")

    def forward(self, hidden_states):
        raise NotImplementedError("BertPooler.forward")


def load_bert_layer(layer, hf_layer):
    """Copy a HuggingFace ``BertLayer``'s weights into your ``EncoderLayer`` (in place)
    and return ``layer``.

    Where BERT keeps each weight (``hf_layer.`` ...):

    - ``attention.self.query`` / ``.key`` / ``.value``: ``nn.Linear`` -> your ``W_Q`` / ``W_K`` / ``W_V``
    - ``attention.output.dense``: ``nn.Linear`` -> your ``W_O``
    - ``attention.output.LayerNorm``: the LayerNorm after attention (first Add & Norm)
    - ``intermediate.dense``: ``nn.Linear(d_model, d_ff)`` -> your ``linear1``
    - ``output.dense``: ``nn.Linear(d_ff, d_model)`` -> your ``linear2``
    - ``output.LayerNorm``: the LayerNorm after the feed-forward (second Add & Norm)

    Both sides are ``nn.Linear``, which stores its weight as ``(out_features,
    in_features)``: copy weights and biases one to one, without transposing.
    Hint: ``with torch.no_grad(): mine.weight.copy_(theirs.weight)``.  Print
    ``hf_layer`` to see the whole structure.
    """
    raise NotImplementedError("load_bert_layer")


class BertEncoder(nn.Module):
    """BERT's embeddings, its stack of encoder layers and its pooler: ``BertModel``.

    The constructor's signature is yours to choose (vocabulary size, d_model, number
    of layers and heads, d_ff, max_position_embeddings, type_vocab_size,
    layer_norm_eps, ...); the grader only builds a ``BertEncoder`` through ``from_hf``.

    ``BertEncoder.from_hf(hf_bert_model)`` (a ``@classmethod``): read the sizes from
    ``hf_bert_model.config`` (``vocab_size``, ``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``,
    ``type_vocab_size``, ``layer_norm_eps``) and its dropout probability
    (``hidden_dropout_prob``), build a ``BertEncoder``, copy the
    embeddings (``hf_bert_model.embeddings.word_embeddings``, ``.position_embeddings``,
    ``.token_type_embeddings``, ``.LayerNorm``), every layer
    (``hf_bert_model.encoder.layer[i]``, with ``load_bert_layer``) and the pooler
    (``hf_bert_model.pooler.dense``) into the attribute ``pooler`` (a ``BertPooler``),
    and return it.

    ``forward(input_ids, attention_mask=None, token_type_ids=None)``:
    ``input_ids`` ``(batch, seq_len)`` long; ``attention_mask`` ``(batch, seq_len)``
    with 1 for real tokens and 0 for padding (None: nothing is padding);
    ``token_type_ids`` ``(batch, seq_len)`` with 0 for sentence A and 1 for sentence
    B (None: all 0).  Returns ``last_hidden_state`` ``(batch, seq_len, hidden_size)``,
    equal to ``hf_bert_model(input_ids, attention_mask, token_type_ids).last_hidden_state``
    at every real position.  What padded positions contain must not change the
    real positions.

    Hint: turn ``attention_mask`` ``(batch, seq_len)`` into a key mask of shape
    ``(batch, 1, 1, seq_len)`` so that it broadcasts over heads and queries.

    ``forward(..., output_attentions=True)`` returns ``(last_hidden_state, attentions)``
    instead: ``attentions`` holds one tensor per layer (a tuple or list, first layer
    first), each the attention weights ``(batch, num_heads, seq_len, seq_len)`` (query,
    then key) of that layer, i.e. the softmax probabilities, equal to
    ``hf_bert_model(..., output_attentions=True).attentions`` (HuggingFace's "eager"
    attention) at every real query position.  Each row sums to 1 and is 0 at padded keys.
    ``nox -s plots`` draws these.

    ``pooled(input_ids, attention_mask=None, token_type_ids=None)``: the same arguments;
    returns ``pooler_output`` ``(batch, hidden_size)``, your ``pooler`` applied to
    ``last_hidden_state``.

    Dropout, as in BERT: in train mode the encoder drops (with ``hidden_dropout_prob``;
    where the dropout sits is yours to choose), in eval mode it never does, so eval-mode
    outputs equal ``hf_bert_model``'s in eval mode.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("BertEncoder.__init__")

    @classmethod
    def from_hf(cls, hf_bert_model):
        raise NotImplementedError("BertEncoder.from_hf")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions=False):
        raise NotImplementedError("BertEncoder.forward")

    def pooled(self, input_ids, attention_mask=None, token_type_ids=None):
        raise NotImplementedError("BertEncoder.pooled")


def count_parameters(config):
    """パラメータ数をモデルを作らずに config のサイズだけから数える（BERT-Base は約 1.1 億）。

    The number of parameters of ``BertModel(config)`` (embeddings, every encoder layer
    and the pooler), computed from the sizes in ``config`` (a ``BertConfig``:
    ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``intermediate_size``,
    ``max_position_embeddings``, ``type_vocab_size``) by a formula, as an ``int``.
    The chapter's table gives BERT-Base 110M and BERT-Large 340M parameters; the exact
    counts are 109,482,240 for ``BertConfig()`` and 335,141,888 for hidden size 1024,
    24 layers, 16 heads and intermediate size 4096.

    Do NOT build a model to count (the grader passes a configuration far too big for
    any memory): add up what each ``nn.Linear`` (weight AND bias), ``nn.Embedding`` and
    ``nn.LayerNorm`` (gain AND bias) holds.  The number of heads does not change the
    count (why not?).
    """
    raise NotImplementedError("count_parameters")
