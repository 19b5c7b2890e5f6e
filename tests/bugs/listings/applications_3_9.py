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
Copied unchanged from solutions/applications.py (the chapter prints no listing of them in this
form): max_pool, cls_pool, cosine_similarity_matrix, group_entities, best_span, qa_features,
answer_question and their helpers.  mean_pool and sentence_embedding have no argument checks.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- pooling (3.9)

def _check_pool_args(last_hidden_state, attention_mask):
    if not isinstance(last_hidden_state, torch.Tensor):
        raise TypeError(f"last_hidden_state must be a torch.Tensor, got {type(last_hidden_state).__name__}")
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
    if last_hidden_state.dim() != 3:
        raise ValueError(f"last_hidden_state must have shape (B, L, H), got {tuple(last_hidden_state.shape)}")
    if tuple(attention_mask.shape) != tuple(last_hidden_state.shape[:2]):
        raise ValueError(f"attention_mask must have shape (B, L) = {tuple(last_hidden_state.shape[:2])}, "
                         f"got {tuple(attention_mask.shape)}")
    return attention_mask.to(device=last_hidden_state.device, dtype=torch.bool)   # (B, L)


def mean_pool(last_hidden_state, attention_mask):
    """平均プーリング：パディング以外のトークンのベクトルの平均"""
    mask = attention_mask
    return (last_hidden_state * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


def max_pool(last_hidden_state, attention_mask):
    mask = _check_pool_args(last_hidden_state, attention_mask)
    neg = torch.finfo(last_hidden_state.dtype).min
    filled = last_hidden_state.masked_fill(~mask.unsqueeze(-1), neg)  # padding can never win
    pooled = filled.max(dim=1).values                                  # (B, H)
    return pooled.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)     # all-padding rows -> 0


def cls_pool(last_hidden_state, attention_mask):
    mask = _check_pool_args(last_hidden_state, attention_mask)
    first = mask.to(torch.int8).argmax(dim=1)                          # (B,) first real position
    rows = torch.arange(last_hidden_state.shape[0], device=last_hidden_state.device)
    pooled = last_hidden_state[rows, first]                            # (B, H)
    return pooled.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)


def cosine_similarity_matrix(emb):
    if not isinstance(emb, torch.Tensor):
        raise TypeError(f"emb must be a torch.Tensor, got {type(emb).__name__}")
    if emb.dim() != 2:
        raise ValueError(f"emb must have shape (N, H), got {tuple(emb.shape)}")
    unit = emb / emb.norm(dim=1, keepdim=True).clamp(min=1e-12)         # (N, H)
    return unit @ unit.T                                               # (N, N)


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


# ---------------------------------------------------------------- NER (3.7)

def _is_special(offset):
    return offset is None or (int(offset[0]) == 0 and int(offset[1]) == 0)


def _tag(label):
    # "B-PER" -> ("B", "PER"); "I-PER" -> ("I", "PER"); a label without a prefix counts as "I"
    if label.startswith("B-") or label.startswith("I-"):
        return label[0], label[2:]
    return "I", label


def _join_tokens(tokens):
    # what HuggingFace's convert_tokens_to_string does for BERT's WordPiece
    text = tokens[0]
    for t in tokens[1:]:
        if t.startswith("##"):
            text += t[2:]
        elif t in {".", ",", "?", "!"}:
            text += t
        else:
            text += " " + t
    return text


def group_entities(tokens, label_ids, scores, offsets, id2label):
    n = len(tokens)
    for name, seq in (("label_ids", label_ids), ("scores", scores), ("offsets", offsets)):
        if len(seq) != n:
            raise ValueError(f"{name} has length {len(seq)}, but tokens has length {n}")
    items = [(tokens[i], id2label[int(label_ids[i])], float(scores[i]), offsets[i])
             for i in range(n) if not _is_special(offsets[i])]
    groups = []
    for tok, label, score, off in items:
        bi, tag = _tag(label)
        if groups and groups[-1]["tag"] == tag and bi != "B":
            groups[-1]["items"].append((tok, score, off))
        else:
            groups.append({"tag": tag, "items": [(tok, score, off)]})
    entities = []
    for g in groups:
        if g["tag"] == "O":
            continue
        toks, scs, offs = zip(*g["items"])
        entities.append({"entity_group": g["tag"], "score": float(np.mean(scs)),
                         "start": int(offs[0][0]), "end": int(offs[-1][1]), "word": _join_tokens(list(toks))})
    return entities


# ---------------------------------------------------------------- QA (3.7)

def _as_1d(name, x):
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.dim() == 2 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D (L,), got shape {tuple(x.shape)}")
    return x


def best_span(start_logits, end_logits, offsets, context, max_answer_len=15):
    s, e = _as_1d("start_logits", start_logits), _as_1d("end_logits", end_logits)
    if not (len(s) == len(e) == len(offsets)):
        raise ValueError(f"start_logits ({len(s)}), end_logits ({len(e)}) and offsets ({len(offsets)}) "
                         "must have the same length")
    if not isinstance(max_answer_len, int) or max_answer_len < 1:
        raise ValueError(f"max_answer_len must be a positive int, got {max_answer_len!r}")
    ctx = torch.tensor([not _is_special(o) for o in offsets])
    if not ctx.any():
        raise ValueError("offsets mark no token as context")
    p_s = torch.softmax(s.masked_fill(~ctx, -math.inf), dim=0)          # softmax over context tokens only
    p_e = torch.softmax(e.masked_fill(~ctx, -math.inf), dim=0)
    scores = p_s[:, None] * p_e[None, :]                                # (L, L): start i, end j
    L = len(offsets)
    i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
    valid = ctx[:, None] & ctx[None, :] & (j >= i) & (j < i + max_answer_len)
    scores = scores.masked_fill(~valid, -1.0)
    best = int(scores.argmax())
    bi, bj = divmod(best, L)
    start, end = int(offsets[bi][0]), int(offsets[bj][1])
    return {"answer": context[start:end], "score": float(scores[bi, bj]), "start": start, "end": end}


def qa_features(question, context, tokenizer, max_length=384, stride=128):
    if not isinstance(question, str) or not isinstance(context, str):
        raise TypeError("question and context must be str")
    if not isinstance(max_length, int) or not isinstance(stride, int) or stride < 0 or stride >= max_length:
        raise ValueError(f"need 0 <= stride < max_length, got max_length={max_length!r}, stride={stride!r}")
    n_question = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = max_length - n_question - 3                   # [CLS] question [SEP] context [SEP]
    if room <= stride:                                   # the fast tokenizer would panic (a BaseException)
        raise ValueError(f"question of {n_question} tokens leaves {room} context tokens per window with "
                         f"max_length={max_length}, not more than stride={stride}")
    enc = tokenizer(question, context, truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
    windows = []
    for w in range(len(enc["input_ids"])):
        seq = enc.sequence_ids(w)                        # None: special / padding, 0: question, 1: context
        offsets = [tuple(int(v) for v in o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq)]
        windows.append({"input_ids": list(enc["input_ids"][w]), "attention_mask": list(enc["attention_mask"][w]),
                        "token_type_ids": list(enc["token_type_ids"][w]), "offsets": offsets})
    return windows


def answer_question(question, context, model, tokenizer, max_length=384, stride=128, max_answer_len=15):
    windows = qa_features(question, context, tokenizer, max_length=max_length, stride=stride)
    device = next(model.parameters()).device
    batch = {k: torch.tensor([w[k] for w in windows], dtype=torch.long, device=device)
             for k in ("input_ids", "attention_mask", "token_type_ids")}
    model.eval()
    with torch.no_grad():
        out = model(**batch)                             # start_logits, end_logits: (windows, L)
    best = None
    for w, win in enumerate(windows):
        if not any(o is not None for o in win["offsets"]):
            continue
        span = best_span(out.start_logits[w], out.end_logits[w], win["offsets"], context, max_answer_len)
        if best is None or span["score"] > best["score"]:
            best = span
    if best is None:
        raise ValueError("context has no token to answer from")
    return best
