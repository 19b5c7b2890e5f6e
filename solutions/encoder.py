"""Reference solution: a post-LayerNorm BERT encoder from the kata's own parts (3.1, 3.6)."""
import torch
from torch import nn

from attention_torch import MultiHeadAttention
from feed_forward import PositionwiseFeedForward


class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, layer_norm_eps=1e-12):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout, activation="gelu")
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None, output_attentions=False):
        # x (B, L, d_model); mask broadcastable to (B, h, L, L), True = may attend
        attn, weights = self.self_attn(x, x, x, mask)               # weights (B, h, L, L)
        x = self.norm1(x + self.dropout(attn))                      # post-LN: Add & Norm
        x = self.norm2(x + self.dropout(self.feed_forward(x)))      # (B, L, d_model)
        return (x, weights) if output_attentions else x


def _copy_linear(name, mine, theirs):
    if mine.weight.shape != theirs.weight.shape:
        raise ValueError(f"{name}: shape {tuple(mine.weight.shape)} does not match the HuggingFace "
                         f"weight's {tuple(theirs.weight.shape)}")
    mine.weight.copy_(theirs.weight)   # nn.Linear stores (out, in) in both: no transpose
    mine.bias.copy_(theirs.bias)


def load_bert_layer(layer, hf_layer):
    attn, ff = layer.self_attn, layer.feed_forward
    pairs = [
        ("W_Q", attn.W_Q, hf_layer.attention.self.query),
        ("W_K", attn.W_K, hf_layer.attention.self.key),
        ("W_V", attn.W_V, hf_layer.attention.self.value),
        ("W_O", attn.W_O, hf_layer.attention.output.dense),
        ("norm1", layer.norm1, hf_layer.attention.output.LayerNorm),
        ("linear1", ff.linear1, hf_layer.intermediate.dense),
        ("linear2", ff.linear2, hf_layer.output.dense),
        ("norm2", layer.norm2, hf_layer.output.LayerNorm),
    ]
    with torch.no_grad():
        for name, mine, theirs in pairs:
            _copy_linear(name, mine, theirs)
    return layer


class BertPooler(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states):
        # (B, L, H) -> (B, H): the first token ([CLS]) through dense + tanh
        return torch.tanh(self.dense(hidden_states[:, 0]))


class BertEncoder(nn.Module):
    def __init__(self, vocab_size, d_model, num_layers, num_heads, d_ff, max_position_embeddings,
                 type_vocab_size, dropout, layer_norm_eps):   # every size from from_hf: no defaults
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        self.position_embeddings = nn.Embedding(max_position_embeddings, d_model)   # learned, not sinusoidal
        self.token_type_embeddings = nn.Embedding(type_vocab_size, d_model)
        self.embedding_norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, layer_norm_eps) for _ in range(num_layers))
        self.pooler = BertPooler(d_model)

    @classmethod
    def from_hf(cls, hf_bert_model):
        cfg = hf_bert_model.config
        if cfg.hidden_act != "gelu":
            raise ValueError(f"hf_bert_model uses hidden_act {cfg.hidden_act!r}; this encoder has exact GELU")
        model = cls(cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                    cfg.intermediate_size, cfg.max_position_embeddings, cfg.type_vocab_size,
                    cfg.hidden_dropout_prob, cfg.layer_norm_eps)
        emb = hf_bert_model.embeddings
        with torch.no_grad():
            model.word_embeddings.weight.copy_(emb.word_embeddings.weight)
            model.position_embeddings.weight.copy_(emb.position_embeddings.weight)
            model.token_type_embeddings.weight.copy_(emb.token_type_embeddings.weight)
            model.embedding_norm.weight.copy_(emb.LayerNorm.weight)
            model.embedding_norm.bias.copy_(emb.LayerNorm.bias)
        for layer, hf_layer in zip(model.layers, hf_bert_model.encoder.layer):
            load_bert_layer(layer, hf_layer)
        if getattr(hf_bert_model, "pooler", None) is not None:
            with torch.no_grad():
                _copy_linear("pooler.dense", model.pooler.dense, hf_bert_model.pooler.dense)
        return model.train(hf_bert_model.training)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions=False):
        batch_size, seq_len = input_ids.shape
        if seq_len > self.position_embeddings.num_embeddings:
            raise ValueError(f"input_ids has length {seq_len}, longer than max_position_embeddings "
                             f"{self.position_embeddings.num_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(seq_len, device=input_ids.device)                  # (L,)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))                          # (B, L, d_model)
        x = self.dropout(self.embedding_norm(x))
        mask = None
        if attention_mask is not None:
            mask = attention_mask.to(torch.bool)[:, None, None, :]                 # (B, 1, 1, L_k)
        attentions = []
        for layer in self.layers:
            x, weights = layer(x, mask, output_attentions=True)
            attentions.append(weights)                                              # (B, h, L, L)
        if output_attentions:
            return x, tuple(attentions)
        return x                                                                    # last_hidden_state

    def pooled(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.pooler(self(input_ids, attention_mask, token_type_ids))         # pooler_output (B, H)


def count_parameters(config):
    H, I, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear = lambda n_in, n_out: n_in * n_out + n_out                               # weight + bias
    layer_norm = 2 * H                                                              # gain + bias
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * H + layer_norm
    layer = 4 * linear(H, H) + layer_norm + linear(H, I) + linear(I, H) + layer_norm
    pooler = linear(H, H)
    return embeddings + L * layer + pooler
