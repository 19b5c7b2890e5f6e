"""第3章 3.9 節のリスト：特徴抽出と文埋め込み（get_sentence_embedding と平均プーリング）。

The chapter's get_sentence_embedding and its mean-pooling line,
``(last_hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)``, adapted only where
exercises/applications.py documents a difference:
- mean_pool: the book's line as a function of ``(last_hidden_state, attention_mask)``, with the
  count clamped to at least 1 (``.clamp(min=1)``): "a row with no real token at all pools to a
  vector of zeros (not NaN) ... never divide by zero";
- sentence_embedding: the kata's name and arguments ``(texts, model, tokenizer, pooling="mean",
  normalize=False)`` for the book's ``get_sentence_embedding(text, model, tokenizer, pooling)``;
  ``normalize=True`` is ``F.normalize(embedding, p=2, dim=1)``; ``"cls"`` is the kata's
  ``cls_pool`` (the first token of ``last_hidden_state``) instead of the book's
  ``outputs.pooler_output``; ``"max"`` is the kata's ``max_pool`` (padding never counts) instead of
  the book's ``last_hidden.max(1)[0]``; the mean stays the book's inline line;
- sentence_embedding: ``model.eval()`` and the inputs sent to ``next(model.parameters()).device``
  ("the model may arrive in training mode ... run it in evaluation mode"; "it may be on a GPU").
Only these two functions: verify appends them to solutions/applications.py (``overlay = true``),
so their definitions replace the reference's and every other function is the reference's.
mean_pool and sentence_embedding have no argument checks.
"""
import torch
import torch.nn.functional as F


def mean_pool(last_hidden_state, attention_mask):
    """平均プーリング：パディング以外のトークンのベクトルの平均"""
    mask = attention_mask
    return (last_hidden_state * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


def sentence_embedding(texts, model, tokenizer, pooling="mean", normalize=False):
    """文埋め込みを取得する"""
    model.eval()
    device = next(model.parameters()).device

    inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
    inputs = {k: v.to(device) for k, v in inputs.items()}

    with torch.no_grad():
        outputs = model(**inputs)

    last_hidden = outputs.last_hidden_state  # (batch_size, seq_len, hidden_size)

    if pooling == "cls":
        embedding = cls_pool(last_hidden, inputs["attention_mask"])
    elif pooling == "mean":
        # 平均プーリング（パディングを除く）
        mask = inputs["attention_mask"]
        embedding = (last_hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    elif pooling == "max":
        embedding = max_pool(last_hidden, inputs["attention_mask"])

    if normalize:
        embedding = F.normalize(embedding, p=2, dim=1)

    return embedding
