"""Suite for `applications` (3.7 NER and QA, 3.9 feature extraction and sentence embeddings).

Three kinds of check:
- against the reference (`reference`) on hypothesis-drawn inputs (pooling);
- against what the real libraries compute: sentence-transformers with the real all-MiniLM-L6-v2
  weights, HuggingFace's token-classification pipeline (`aggregation_strategy="simple"`), torch's
  cosine similarity, and a brute-force search over every valid answer span;
- properties: padding never counts, special tokens are skipped, spans stay in the context.
"""
import functools
import re
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from grader.grading.checks import (as_float64, assert_close, assert_finite, assert_not_mutated, assert_shape,
                           graded)
from grader.grading.hf import minilm_dir, seeded, small_config, vocab_path
from grader.grading.testing import as_float, as_int, assert_inference_calls, call_catching, forward_probe, hf_twin
from grader.i18n import msg

POOLINGS = ("mean_pool", "max_pool", "cls_pool")

# Five sentences for the similarity checks (two of them are the chapter's own example sentences,
# 3.9); the first two say the same thing in different words.
SIMILARITY_SENTENCES = [
    "The cat sits on the mat.",
    "A feline rests on a rug.",
    "The stock market fell sharply today.",
    "Transformers read a whole sentence at once with self-attention.",
    "I enjoy hiking in the mountains on weekends.",
]

# An example QA context written for this suite (not the chapter's); the offsets of its tokens put
# "2017" at characters 56..60, and that is what this suite checks.
QA_QUESTION = "When was the Transformer architecture presented?"
QA_CONTEXT = 'The Transformer architecture was presented by Google in 2017 in the paper "Attention Is All You Need".'

# NER sentences in the chapter's spirit; labels come from a small seeded, untrained model, so every
# B-/I- pattern shows up somewhere.
NER_SENTENCES = [
    "Hugging Face Inc. is a company based in New York City. Its headquarters are in DUMBO, "
    "therefore very close to the Manhattan Bridge.",
    "Jacob Devlin and his colleagues at Google released BERT in 2018.",
    "Tohoku University in Sendai published a Japanese BERT model trained on Wikipedia!",
]
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

WORDS = ["the", "The", "transformer", "BERT", "attention", "was", "presented", "by", "Google", "in",
         "2017", "2018", "model", "Tokyo", "researchers", "self-attention", "pre-training", "encoder",
         "embeddings", "Vaswani", "et", "al.", "(", ")", ",", ".", "?", "is", "a", "of", "unbelievably",
         "tokenization", "Hugging", "Face", "feline", "rug", "naïve", "co-operation"]


# ------------------------------------------------------------------ helpers

def _softmax64(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def _is_special(offset):
    return offset is None or tuple(offset) == (0, 0)


def _check_entities(got, want, what):
    """`got` (the student's entities) equals `want` (the pipeline's), field by field."""
    if not isinstance(got, list):
        raise AssertionError(msg("applications.expected_list_entity_dicts", what=what,
                                 got_type=type(got).__name__))
    summary = [(w["entity_group"], int(w["start"]), int(w["end"])) for w in want]
    if len(got) != len(want):
        got_summary = [(g.get("entity_group"), g.get("start"), g.get("end")) if isinstance(g, dict) else g
                       for g in got]
        raise AssertionError(msg("applications.expected_entities_entity_group", what=what, n_want=len(want),
                                 summary=summary, n_got=len(got), got_summary=got_summary))
    keys = {"entity_group", "score", "start", "end", "word"}
    for k, (g, w) in enumerate(zip(got, want)):
        if not isinstance(g, dict) or not keys <= set(g):
            raise AssertionError(msg("applications.entity_dict_keys_got", what=what, k=k, keys=sorted(keys),
                                     g=g))
        if g["entity_group"] != w["entity_group"]:
            raise AssertionError(msg("applications.entity_has_entity_group", what=what, k=k,
                                     g_entity_group=g['entity_group'], w_entity_group=w['entity_group'],
                                     summary=summary))
        for key in ("start", "end"):
            if as_int(g[key], msg("applications.entity_field", what=what, k=k, key_name=key)) != int(w[key]):
                raise AssertionError(msg("applications.entity_has_expected_all", what=what, k=k,
                                         w_entity_group=w['entity_group'], key_name=key, g_key=g[key],
                                         w_key=int(w[key]), summary=summary))
        # the pipeline averages float32 probabilities; 1e-6 is float32 rounding, a wrong rule
        # (first token's score, max, a product) is off by far more
        score = as_float(g["score"], msg("applications.entity_score", what=what, k=k))
        if not abs(score - float(w["score"])) <= 1e-6:
            raise AssertionError(msg("applications.entity_has_score_expected", what=what, k=k,
                                     w_entity_group=w['entity_group'], w_start=w['start'], w_end=w['end'],
                                     score=score, w_score=float(w['score'])))
        if g["word"] != w["word"]:
            raise AssertionError(msg("applications.entity_has_word_expected", what=what, k=k,
                                     w_entity_group=w['entity_group'], w_start=w['start'], w_end=w['end'],
                                     g_word=g['word'], w_word=w['word']))


def dropout_model_in_train_mode(student, device, class_name, vocab_size, seed):
    """A small ``transformers.<class_name>`` with dropout 0.3, seeded, handed over in train mode."""
    import transformers

    cfg = small_config(vocab_size=vocab_size, max_position_embeddings=128)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.3
    local = seeded(lambda: getattr(transformers, class_name)(cfg), seed)
    return hf_twin(student, f"transformers.{class_name}", cfg, local, device=device, train=True)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device="cpu")


@pytest.fixture(scope="module")
def hf_minilm():
    from transformers import BertModel

    return BertModel.from_pretrained(str(minilm_dir())).eval()


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(vocab_path()))


@pytest.fixture(scope="module")
def remote_minilm(student, device):
    """The real all-MiniLM-L6-v2 and its tokenizer, built inside the student's sandbox."""
    model = student.build("transformers.AutoModel.from_pretrained", str(minilm_dir()))
    model.to(device)
    model.eval()
    tokenizer = student.build("transformers.AutoTokenizer.from_pretrained", str(minilm_dir()))
    return model, tokenizer


@pytest.fixture(scope="module")
def ner_pipes(hf_tokenizer):
    """Two seeded small BertForTokenClassification models with a BIO id2label, each in a pipeline."""
    from transformers import BertConfig, BertForTokenClassification, pipeline

    cfg = BertConfig(vocab_size=hf_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                     id2label=dict(enumerate(NER_LABELS)), label2id={l: i for i, l in enumerate(NER_LABELS)})
    pipes = []
    for seed in (0, 1):
        model = seeded(lambda: BertForTokenClassification(cfg), seed).eval()
        with torch.no_grad():   # sharper (but still varied) predictions than a fresh init gives
            model.classifier.weight.mul_(30.0)
        pipes.append(pipeline("token-classification", model=model, tokenizer=hf_tokenizer,
                              aggregation_strategy="simple", device="cpu"))
    return pipes


def _pipeline_token_inputs(pipe, text):
    """What the pipeline sees per token: (tokens, label_ids, scores, offsets), special tokens included."""
    tok, model = pipe.tokenizer, pipe.model
    enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = [tuple(int(v) for v in o) for o in enc.pop("offset_mapping")[0]]
    with torch.no_grad():
        logits = model(**enc).logits[0].numpy()
    e = np.exp(logits - logits.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)                       # float32, as the pipeline computes it
    label_ids = [int(i) for i in probs.argmax(-1)]
    scores = [float(probs[i, label_ids[i]]) for i in range(len(label_ids))]
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    # the suite's own extraction must agree with the pipeline's per-token view
    per_token = pipe(text, aggregation_strategy="none", ignore_labels=[])
    real = [i for i, o in enumerate(offsets) if o != (0, 0)]
    assert [p["index"] for p in per_token] == real, msg("applications.suite_error_token_extraction")
    for p in per_token:
        i = p["index"]
        assert p["entity"] == NER_LABELS[label_ids[i]] and (p["start"], p["end"]) == offsets[i], \
            msg("applications.suite_error_token_extraction")
    return tokens, label_ids, scores, offsets


# ------------------------------------------------------------------ pooling

class PoolCase(NamedTuple):
    """One drawn pooling input (its repr names the fields in a falsifying example)."""
    last_hidden_state: torch.Tensor
    attention_mask: torch.Tensor


@st.composite
def pool_inputs(draw, fewest=0):
    """x (B, L, H) and a 0/1 mask whose rows hold at least ``fewest`` real tokens (0: all-padding
    rows too)."""
    B = draw(st.integers(1, 4))
    L = draw(st.integers(1, 8))
    H = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    mask_dtype = draw(st.sampled_from([torch.long, torch.bool]))
    seed = draw(st.integers(0, 2**32 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, H, generator=g, dtype=torch.float64).mul(3).to(dtype)
    kind = draw(st.sampled_from(["right", "left", "holes"]))
    lengths = [draw(st.integers(fewest, L)) for _ in range(B)]
    pos = torch.arange(L)
    rows = []
    for n in lengths:
        if kind == "right":
            rows.append(pos < n)
        elif kind == "left":
            rows.append(pos >= L - n)
        else:
            rows.append(torch.rand(L, generator=g) < 0.6)
            if fewest and not rows[-1].any():
                rows[-1][draw(st.integers(0, L - 1))] = True
    mask = torch.stack(rows).to(mask_dtype)
    return PoolCase(x, mask)


def _pool_tolerance(dtype):
    # float32: a sum of <= 8 values of size ~3 rounds at ~1e-6 (less after dividing); a padding leak is O(1)
    return (1e-5, 1e-5) if dtype == torch.float32 else (1e-12, 1e-12)


def _check_pool(student, reference, name, x, mask, device):
    x, mask = x.to(device), mask.to(device)
    got = getattr(student, name)(x, mask)
    assert_not_mutated(student, msg("applications.inputs_of", name=name))
    want = getattr(reference, name)(x, mask)
    atol, rtol = _pool_tolerance(x.dtype)
    assert_close(got, want, atol=atol, rtol=rtol, name=msg("applications.output_x_mask", name=name,
                                                           x_shape=tuple(x.shape), mask=mask.long().tolist()))


@pytest.mark.judges("mean_pool", stage=3, item="mean_pool")
@graded(max_examples=20, report_multiple_bugs=False)
@given(pool_inputs(fewest=1))
def test_mean_pool_matches_reference(student, reference, device, inputs):
    _check_pool(student, reference, "mean_pool", *inputs, device)


@pytest.mark.judges("max_pool", stage=3, item="other_pools")
@graded(max_examples=20, report_multiple_bugs=False)
@given(pool_inputs())
def test_max_pool_matches_reference(student, reference, device, inputs):
    _check_pool(student, reference, "max_pool", *inputs, device)


@pytest.mark.judges("cls_pool", stage=3, item="other_pools")
@graded(max_examples=20, report_multiple_bugs=False)
@given(pool_inputs())
def test_cls_pool_matches_reference(student, reference, device, inputs):
    _check_pool(student, reference, "cls_pool", *inputs, device)


def _check_padding_never_counts(student, device, name):
    """A sentence alone and the same sentence padded in a batch pool to the same vector."""
    g = torch.Generator().manual_seed(3)
    H = 5
    # negative hidden states: a zeroed pad must not win max; below -1e4: nor a pad filled with -1e4
    for n, sign in ((3, 1.0), (2, -1.0), (2, -3e4)):
        real = torch.randn(1, n, H, generator=g).abs().add(0.5).mul(sign)
        alone = getattr(student, name)(real.to(device), torch.ones(1, n, dtype=torch.long).to(device))
        # right padding with huge garbage, then left padding with garbage
        L = n + 4
        right = torch.full((2, L, H), 1e4)
        right[1] = -1e4
        right[0, :n] = real[0]
        right_mask = torch.zeros(2, L, dtype=torch.long)
        right_mask[0, :n] = 1
        right_mask[1, :L - 1] = 1
        right[1, :L - 1] = torch.randn(L - 1, H, generator=g)
        left = torch.full((1, L, H), 1e4)
        left[0, L - n:] = real[0]
        left_mask = torch.zeros(1, L, dtype=torch.long)
        left_mask[0, L - n:] = 1
        for label, x, m in ((msg("applications.right_padded"), right, right_mask),
                            (msg("applications.left_padded"), left, left_mask)):
            batched = getattr(student, name)(x.to(device), m.to(device))
            assert_shape(batched, (x.shape[0], H), msg("applications.padded_batch", name=name, label=label))
            # float32 sums of <= 3 values: 1e-5 is rounding; a padding leak is >= 1e-1
            assert_close(batched[:1], alone, atol=1e-5, rtol=1e-6,
                         name=msg("applications.token_sentence_batch_alone", name=name, n=n, label=label))


@pytest.mark.judges("mean_pool", stage=2, item="mean_pool")
def test_mean_pool_padding_never_counts(student, device):
    _check_padding_never_counts(student, device, "mean_pool")


@pytest.mark.judges("max_pool", stage=2, item="other_pools")
def test_max_pool_padding_never_counts(student, device):
    _check_padding_never_counts(student, device, "max_pool")


@pytest.mark.judges("cls_pool", stage=2, item="other_pools")
def test_cls_pool_padding_never_counts(student, device):
    _check_padding_never_counts(student, device, "cls_pool")


def _check_all_padding_row(student, device, name):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 6, generator=g) - 5.0
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    for m in (mask, mask.bool()):
        got = getattr(student, name)(x.to(device), m.to(device))
        assert_shape(got, (3, 6), name)
        assert_finite(got, msg("applications.output_of", name=name))
        assert_close(got[1], torch.zeros(6, device=device), atol=0.0,
                     name=msg("applications.row_whose_attention_mask", name=name))


@pytest.mark.judges("mean_pool", stage=2, item="other_pools")
def test_mean_pool_all_padding_row_pools_to_zeros(student, device):
    _check_all_padding_row(student, device, "mean_pool")


@pytest.mark.judges("max_pool", stage=2, item="other_pools")
def test_max_pool_all_padding_row_pools_to_zeros(student, device):
    _check_all_padding_row(student, device, "max_pool")


@pytest.mark.judges("cls_pool", stage=2, item="other_pools")
def test_cls_pool_all_padding_row_pools_to_zeros(student, device):
    _check_all_padding_row(student, device, "cls_pool")


@pytest.mark.judges("cls_pool", stage=2, item="other_pools")
def test_cls_pool_takes_first_real_position(student, device):
    # row 1 is left-padded, row 2 has a hole after its first real token, row 3 starts real
    x = torch.arange(3 * 4 * 3, dtype=torch.float32).reshape(3, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 1]])
    got = student.cls_pool(x.to(device), mask.to(device))
    assert_close(got, torch.stack([x[0, 0], x[1, 2], x[2, 1]]).to(device), atol=0.0,
                 name=msg("applications.cls_pool_row_1"))


def _check_sentence_transformers_pooling(student, device, mode, name):
    from sentence_transformers.models import Pooling

    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 7, 16, generator=g)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6, [1] * 5 + [0] * 2])
    want = Pooling(16, pooling_mode=mode)({"token_embeddings": x, "attention_mask": mask})["sentence_embedding"]
    got = getattr(student, name)(x.to(device), mask.to(device))
    assert_close(got, want.to(device), atol=1e-6, rtol=1e-5,
                 name=msg("applications.sentence_transformers_pooling_pooling", name=name, mode=mode))


@pytest.mark.judges("mean_pool", stage=3, item="mean_pool")
def test_mean_pool_matches_sentence_transformers_pooling(student, device):
    _check_sentence_transformers_pooling(student, device, "mean", "mean_pool")


@pytest.mark.judges("max_pool", stage=3, item="other_pools")
def test_max_pool_matches_sentence_transformers_pooling(student, device):
    _check_sentence_transformers_pooling(student, device, "max", "max_pool")


# attention_mask shapes that are not (B, L) = (2, 5): too long, too many rows, one row, and two
# that would broadcast silently against (B, L, 1) (a column, a single row)
BAD_MASK_SHAPES = [(2, 6), (3, 5), (5,), (2, 1), (1, 5), (2, 5, 1)]


def _check_rejects_bad_mask(student, device, name):
    x = torch.zeros(2, 5, 3, device=device)
    for shape in BAD_MASK_SHAPES:
        mask = torch.ones(shape, dtype=torch.long, device=device)
        _, err = call_catching(getattr(student, name), x, mask)
        assert isinstance(err, ValueError) and "attention_mask" in err.remote_message, \
            msg("applications.bad_mask_not_rejected", name=name, shape=shape,
                err=err.describe() if err is not None else msg("applications.no_error"))


@pytest.mark.judges("mean_pool", stage=0, item="contract")
def test_mean_pool_rejects_mask_of_wrong_shape(student, device):
    _check_rejects_bad_mask(student, device, "mean_pool")


@pytest.mark.judges("max_pool", stage=0, item="contract")
def test_max_pool_rejects_mask_of_wrong_shape(student, device):
    _check_rejects_bad_mask(student, device, "max_pool")


@pytest.mark.judges("cls_pool", stage=0, item="contract")
def test_cls_pool_rejects_mask_of_wrong_shape(student, device):
    _check_rejects_bad_mask(student, device, "cls_pool")


# ------------------------------------------------------------------ cosine similarity

@pytest.mark.judges("cosine_similarity_matrix", stage=3, item="sentence_embedding")
@graded(max_examples=20, report_multiple_bugs=False)
@given(st.integers(1, 6), st.integers(1, 8), st.sampled_from([torch.float32, torch.float64]),
       st.integers(0, 2**32 - 1))
def test_cosine_similarity_matrix_matches_torch(student, device, n, h, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, h, generator=g, dtype=torch.float64)
    emb = emb * torch.exp(torch.randn(n, 1, generator=g, dtype=torch.float64) * 2)   # varied norms
    assume(bool((emb.norm(dim=1) > 1e-3).all()))
    emb = emb.to(dtype).to(device)
    got = student.cosine_similarity_matrix(emb)
    assert_not_mutated(student, msg("applications.cosine_similarity_matrix_input"))
    want = torch.nn.functional.cosine_similarity(emb[:, None, :], emb[None, :, :], dim=-1)
    # float32 dot products of unit vectors round at ~1e-7; unnormalised dot products are far off
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    assert_close(got, want, atol=atol, name=msg("applications.cosine_similarity_matrix_vectors", n=n, h=h))


# ------------------------------------------------------------------ sentence embeddings

# Sentence embeddings with the same weights and tokenizer: the only differences are float32 rounding
# of padded vs unpadded batches (~1e-7 on unit vectors); counting padding, forgetting to normalise or
# pooling another way moves components by 1e-3 or more.
EMB_ATOL = 1e-5


@pytest.mark.judges("sentence_embedding", "mean_pool", stage=3, item="sentence_embedding")
def test_sentence_embedding_equals_sentence_transformers_on_example_sentences(student, remote_minilm, st_model):
    model, tok = remote_minilm
    got = student.sentence_embedding(SIMILARITY_SENTENCES, model, tok, pooling="mean", normalize=True)
    want = st_model.encode(SIMILARITY_SENTENCES, convert_to_tensor=True, normalize_embeddings=True).cpu()
    assert_shape(got, (5, 384), msg("applications.sentence_embedding_example_five"))
    assert_close(got.cpu() if torch.is_tensor(got) else got, want, atol=EMB_ATOL,
                 name=msg("applications.sentence_embedding_sentence_transformers"))


@pytest.mark.judges("sentence_embedding", "cosine_similarity_matrix", "mean_pool", stage=3, item="sentence_embedding")
def test_similarity_ranks_cat_and_feline_closest(student, remote_minilm, st_model):
    model, tok = remote_minilm
    emb = student.sentence_embedding(SIMILARITY_SENTENCES, model, tok, pooling="mean", normalize=True)
    sim = student.cosine_similarity_matrix(emb)
    want_emb = st_model.encode(SIMILARITY_SENTENCES, convert_to_tensor=True, normalize_embeddings=True).cpu()
    want = want_emb @ want_emb.T
    assert_close(sim.cpu() if torch.is_tensor(sim) else sim, want, atol=EMB_ATOL,
                 name=msg("applications.cosine_similarity_matrix_examples"))
    off = as_float64(sim) - 10 * np.eye(5)
    for row, other in ((0, 1), (1, 0)):
        best = int(off[row].argmax())
        assert best == other, msg("applications.closest_but_matrix_ranks", sentence=SIMILARITY_SENTENCES[row],
                                  expected=SIMILARITY_SENTENCES[other], closest=SIMILARITY_SENTENCES[best])


texts_strategy = st.lists(
    st.one_of(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=20).map(" ".join),
        st.text(alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "Zs"]), max_size=40),
    ),
    min_size=1, max_size=4)


@pytest.mark.judges("sentence_embedding", "mean_pool", stage=3, item="sentence_embedding")
@graded(max_examples=8, report_multiple_bugs=False)
@given(texts_strategy)
def test_sentence_embedding_equals_sentence_transformers_on_drawn_text(student, remote_minilm, st_model, texts):
    model, tok = remote_minilm
    got = student.sentence_embedding(texts, model, tok, pooling="mean", normalize=True)
    want = st_model.encode(texts, convert_to_tensor=True, normalize_embeddings=True).cpu()
    assert_close(got.cpu() if torch.is_tensor(got) else got, want, atol=EMB_ATOL,
                 name=msg("applications.sentence_embedding_vs_st", texts=texts))


@pytest.mark.judges("sentence_embedding", "mean_pool", "max_pool", "cls_pool", stage=3, item="sentence_embedding")
@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_sentence_embedding_pooling_options(student, reference, remote_minilm, hf_minilm, hf_tokenizer, pooling):
    model, tok = remote_minilm
    got = student.sentence_embedding(SIMILARITY_SENTENCES, model, tok, pooling=pooling, normalize=False)
    enc = hf_tokenizer(SIMILARITY_SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf_minilm(**enc).last_hidden_state
    want = getattr(reference, f"{pooling}_pool")(hidden, enc["attention_mask"])
    # hidden states of size ~1 through 6 float32 layers: 1e-5 absolute is rounding
    assert_close(got.cpu() if torch.is_tensor(got) else got, want, atol=1e-5, rtol=1e-5,
                 name=f"sentence_embedding(pooling={pooling!r}, normalize=False)")


@pytest.mark.judges("sentence_embedding", stage=0, item="contract")
def test_sentence_embedding_rejects_unknown_pooling(student, remote_minilm):
    model, tok = remote_minilm
    for pooling in ("median", "MEAN", "pooler"):
        _, err = call_catching(student.sentence_embedding, ["a"], model, tok, pooling=pooling)
        assert isinstance(err, ValueError) and "pooling" in err.remote_message, \
            msg("applications.unknown_pooling_not_rejected", pooling=pooling,
                err=err.describe() if err is not None else msg("applications.no_error"))


@pytest.mark.judges("sentence_embedding", "mean_pool", stage=2, item="sentence_embedding")
def test_sentence_embedding_defaults_are_mean_pooling_unnormalised(student, reference, remote_minilm, hf_minilm,
                                                                    hf_tokenizer):
    # no keywords: pooling="mean", normalize=False
    model, tok = remote_minilm
    got = student.sentence_embedding(SIMILARITY_SENTENCES[:3], model, tok)
    enc = hf_tokenizer(SIMILARITY_SENTENCES[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = reference.mean_pool(hf_minilm(**enc).last_hidden_state, enc["attention_mask"])
    # hidden states of size ~1 through 6 float32 layers: 1e-5 absolute is rounding; a unit-length
    # vector instead of the plain mean differs by far more (the means have norms of about 3)
    assert_close(got.cpu() if torch.is_tensor(got) else got, want, atol=1e-5, rtol=1e-5,
                 name=msg("applications.sentence_embedding_defaults"))


@pytest.mark.judges("sentence_embedding", stage=2, item="sentence_embedding")
def test_sentence_embedding_runs_in_eval_mode_without_autograd(student, device, hf_tokenizer, remote_bert_tokenizer):
    # a small BERT with dropout 0.3 handed over in train mode, twice (the second time after
    # model.train() again): every forward pass must run in eval mode with autograd off.  (In train
    # mode two identical calls on such a model differ by ~0.5.)  Leaving the model in eval mode
    # afterwards, or restoring its mode, are both fine.
    remote = dropout_model_in_train_mode(student, device, "BertModel", hf_tokenizer.vocab_size, seed=21)
    with forward_probe(student, remote) as probe:
        student.sentence_embedding(SIMILARITY_SENTENCES[:3], remote, remote_bert_tokenizer)
        remote.train()
        student.sentence_embedding(SIMILARITY_SENTENCES[:3], remote, remote_bert_tokenizer, pooling="max",
                                   normalize=True)
    assert_inference_calls(probe.calls, "sentence_embedding")


@pytest.mark.judges("sentence_embedding", stage=2, item="sentence_embedding")
def test_sentence_embedding_truncates_a_text_longer_than_the_model(student, remote_minilm):
    # ~1000 tokens: more than MiniLM's 512 positions, so an untruncated batch cannot run at all.
    # Where to cut is left free (the tokenizer's 512, or sentence-transformers' 256); the short text
    # next to it (padded to the long one's length) keeps the vector it gets alone
    model, tok = remote_minilm
    texts = [" ".join(WORDS * 20), SIMILARITY_SENTENCES[0]]
    got, err = call_catching(student.sentence_embedding, texts, model, tok, normalize=True)
    assert err is None, msg("applications.long_text_failed", err=err.describe() if err is not None else "")
    assert_shape(got, (2, 384), msg("applications.long_text_embedding"))
    assert_finite(got, msg("applications.long_text_embedding"))
    alone = student.sentence_embedding(texts[1:], model, tok, normalize=True)
    # unit vectors through 6 float32 layers, padded or not: ~1e-7 apart; attending to padding: >1e-2
    assert_close(got[1:], alone, atol=EMB_ATOL, name=msg("applications.short_text_next_to_long"))


@pytest.mark.judges("sentence_embedding", "mean_pool", stage=3, item="sentence_embedding")
def test_sentence_embedding_keeps_a_text_of_160_tokens_whole(student, remote_minilm, st_model):
    # ~160 tokens fit both cuts the docstring leaves free (sentence-transformers' 256, the
    # tokenizer's 512), so the vector must be sentence-transformers' one; cutting at 128 moves it
    model, tok = remote_minilm
    texts = ["word " * 150 + "the cat sits on the mat"]
    got = student.sentence_embedding(texts, model, tok, pooling="mean", normalize=True)
    want = st_model.encode(texts, convert_to_tensor=True, normalize_embeddings=True).cpu()
    assert_close(got.cpu() if torch.is_tensor(got) else got, want, atol=EMB_ATOL,
                 name=msg("applications.sentence_embedding_160_tokens"))


# ------------------------------------------------------------------ NER grouping

@pytest.mark.judges("group_entities", stage=3, item="ner")
def test_group_entities_matches_hf_pipeline_on_sentences(student, ner_pipes):
    for k, pipe in enumerate(ner_pipes):
        id2label = dict(pipe.model.config.id2label)
        for text in NER_SENTENCES:
            tokens, label_ids, scores, offsets = _pipeline_token_inputs(pipe, text)
            got = student.group_entities(tokens, label_ids, scores, offsets, id2label)
            want = pipe(text)
            labelled = " ".join(f"{t}/{id2label[i]}" for t, i in zip(tokens, label_ids))
            _check_entities(got, want, msg("applications.model_sentence_tokens_labels", k=k, text=text[:30],
                                           labelled=labelled))


# tokens as BERT's tokenizer makes them: words, ## pieces, punctuation
TOKEN_POOL = ["hugging", "face", "##face", "inc", ".", ",", "?", "!", "new", "york", "city", "tokyo",
              "jacob", "dev", "##lin", "google", "bert", "-", "(", ")", "the", "of", "##s", "##ization",
              "2018", "'", ";", "a"]


class NerCase(NamedTuple):
    """One drawn tokenised sentence with its predictions (field names in a falsifying example)."""
    tokens: list
    label_ids: list
    scores: list
    offsets: list


@st.composite
def label_sequences(draw):
    """A tokenised sentence with BIO labels: runs, I- without B-, type changes, subwords, O."""
    segments = draw(st.lists(st.tuples(st.sampled_from(NER_LABELS), st.integers(1, 3)), min_size=1, max_size=6))
    labels = [lab for lab, n in segments for _ in range(n)]
    tokens = [draw(st.sampled_from(TOKEN_POOL)) for _ in labels]
    scores = [draw(st.floats(0.125, 1.0, width=32)) for _ in labels]
    offsets, pos = [], 0
    for t in tokens:
        piece = t[2:] if t.startswith("##") else t
        if not t.startswith("##") and offsets:
            pos += 1                                              # a space before a new word
        offsets.append((pos, pos + len(piece)))
        pos += len(piece)
    special = draw(st.sampled_from([None, (0, 0)]))
    items = [(t, NER_LABELS.index(lab), s, o) for t, lab, s, o in zip(tokens, labels, scores, offsets)]
    # specials: [CLS] first, [SEP] last, sometimes a [SEP] in the middle (a sentence pair); all skipped,
    # even when the model labels them as an entity
    if len(items) > 1 and draw(st.booleans()):
        items.insert(draw(st.integers(1, len(items) - 1)), ("[SEP]", draw(st.integers(0, 8)), 0.5, special))
    items = [("[CLS]", draw(st.integers(0, 8)), 0.9, special)] + items + [("[SEP]", draw(st.integers(0, 8)), 0.8, special)]
    return NerCase(*(list(col) for col in zip(*items)))


def _pipeline_grouping(pipe, tokens, label_ids, scores, offsets):
    """The pipeline's own grouping step applied to given per-token predictions."""
    entities = [{"entity": NER_LABELS[lab], "score": np.float32(s), "word": t, "start": o[0], "end": o[1],
                 "index": i}
                for i, (t, lab, s, o) in enumerate(zip(tokens, label_ids, scores, offsets)) if not _is_special(o)]
    if not entities:
        return []
    return [e for e in pipe.group_entities(entities) if e["entity_group"] != "O"]


@pytest.mark.judges("group_entities", stage=3, item="ner")
@graded(max_examples=40, report_multiple_bugs=False)
@given(label_sequences())
def test_group_entities_matches_hf_grouping_on_generated_labels(student, ner_pipes, seq):
    tokens, label_ids, scores, offsets = seq
    id2label = dict(enumerate(NER_LABELS))
    got = student.group_entities(tokens, label_ids, scores, offsets, id2label)
    want = _pipeline_grouping(ner_pipes[0], tokens, label_ids, scores, offsets)
    labelled = " ".join(f"{t}/{NER_LABELS[i]}" for t, i in zip(tokens, label_ids))
    _check_entities(got, want, msg("applications.tokens_labels", labelled=labelled))


@pytest.mark.judges("group_entities", stage=3, item="ner")
def test_group_entities_matches_hf_grouping_on_300_tokens(student, ner_pipes):
    """A long document: 300 tokens (more than 256), entities up to its end; nothing depends on the length."""
    words = ["jacob", "dev", "##lin", "new", "york", "city", ".", "google", "the", "bert"]
    labels = ["B-PER", "I-PER", "I-PER", "B-LOC", "I-LOC", "I-LOC", "O", "I-ORG", "O", "B-MISC"]
    tokens, label_ids, scores, offsets, pos = ["[CLS]"], [1], [0.9], [(0, 0)], 0
    for k in range(298):
        t = words[k % len(words)]
        piece = t[2:] if t.startswith("##") else t
        if k and not t.startswith("##"):
            pos += 1                                              # a space before a new word
        tokens.append(t)
        label_ids.append(NER_LABELS.index(labels[k % len(labels)]))
        scores.append(0.25 + 0.5 * ((7 * k) % 11) / 10)
        offsets.append((pos, pos + len(piece)))
        pos += len(piece)
    tokens, label_ids, scores, offsets = tokens + ["[SEP]"], label_ids + [5], scores + [0.8], offsets + [(0, 0)]
    got = student.group_entities(tokens, label_ids, scores, offsets, dict(enumerate(NER_LABELS)))
    want = _pipeline_grouping(ner_pipes[0], tokens, label_ids, scores, offsets)
    _check_entities(got, want, msg("applications.long_sentence_tokens", n=len(tokens)))


@pytest.mark.judges("group_entities", stage=2, item="ner")
def test_group_entities_bio_rules(student, ner_pipes):
    """One case per rule, each with its own message."""
    cases = {
        msg("applications.b_then_i_same"):
            ["B-PER", "I-PER", "O"],
        msg("applications.i_without_b_starts"): ["O", "I-LOC", "I-LOC"],
        msg("applications.b_after_b_starts"): ["B-ORG", "B-ORG", "I-ORG"],
        msg("applications.change_type_ends_entity"): ["B-PER", "I-LOC", "I-LOC"],
        msg("applications.o_ends_entity_never"):
            ["B-MISC", "O", "I-MISC"],
    }
    tokens = ["[CLS]", "jacob", "dev", "##lin", "[SEP]"]
    offsets = [(0, 0), (0, 5), (6, 9), (9, 12), (0, 0)]
    scores = [0.99, 0.9, 0.6, 0.3, 0.99]
    for rule, labels in cases.items():
        ids = [NER_LABELS.index("B-PER")] + [NER_LABELS.index(l) for l in labels] + [NER_LABELS.index("B-LOC")]
        got = student.group_entities(tokens, ids, scores, offsets, dict(enumerate(NER_LABELS)))
        want = _pipeline_grouping(ner_pipes[0], tokens, ids, scores, offsets)
        _check_entities(got, want, msg("applications.labels_jacob_dev_lin", rule=rule, labels=labels))


@pytest.mark.judges("group_entities", stage=2, item="ner")
def test_group_entities_word_joins_subwords_and_punctuation(student, ner_pipes):
    tokens = ["[CLS]", "hugging", "##face", "inc", ".", ",", "new", "-", "york", "?", "##s", "[SEP]"]
    offsets = [None, (0, 7), (7, 11), (12, 15), (15, 16), (16, 17), (18, 21), (21, 22), (22, 26), (26, 27),
               (27, 28), None]
    ids = [0] + [NER_LABELS.index("I-ORG")] * 10 + [0]
    scores = [0.5] * len(tokens)
    got = student.group_entities(tokens, ids, scores, offsets, dict(enumerate(NER_LABELS)))
    want = _pipeline_grouping(ner_pipes[0], tokens, ids, scores, offsets)
    _check_entities(got, want, msg("applications.one_org_entity_over"))
    # an entity that starts on a ## piece keeps it, as the pipeline does
    ids = [0, 0, NER_LABELS.index("B-ORG")] + [0] * 9
    got = student.group_entities(tokens, ids, scores, offsets, dict(enumerate(NER_LABELS)))
    want = _pipeline_grouping(ner_pipes[0], tokens, ids, scores, offsets)
    _check_entities(got, want, msg("applications.org_entity_piece_face"))


@pytest.mark.judges("group_entities", stage=2, item="ner")
def test_group_entities_without_entities_returns_empty_list(student):
    """Only special tokens (labelled as entities by the model, offsets None or (0, 0)), or only O:
    no entity at all."""
    id2label = dict(enumerate(NER_LABELS))
    cases = [(["[CLS]", "[SEP]"], [1, 5], [0.9, 0.8], [None, None]),
             (["[CLS]", "[SEP]"], [3, 4], [0.9, 0.8], [(0, 0), (0, 0)]),
             (["[CLS]", "the", "model", "[SEP]"], [1, 0, 0, 2], [0.9, 0.7, 0.6, 0.8], [(0, 0), (0, 3), (4, 9), (0, 0)])]
    for tokens, ids, scores, offsets in cases:
        got = student.group_entities(tokens, ids, scores, offsets, id2label)
        assert got == [], msg("applications.expected_no_entities", tokens=tokens,
                              labels=[NER_LABELS[i] for i in ids], offsets=offsets, got=got)


@pytest.mark.judges("group_entities", stage=2, item="ner")
def test_group_entities_does_not_modify_its_inputs(student):
    # special tokens' (0, 0) offsets among them: normalising them to None in place changes the caller's list
    tokens = ["[CLS]", "jacob", "dev", "##lin", "works", "[SEP]"]
    offsets = [(0, 0), (0, 5), (6, 9), (9, 12), (13, 18), (0, 0)]
    student.group_entities(tokens, [0, 1, 2, 2, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.9, 0.9], offsets,
                           dict(enumerate(NER_LABELS)))
    assert_not_mutated(student, msg("applications.group_entities_inputs"))


@pytest.mark.judges("group_entities", stage=0, item="contract")
@pytest.mark.parametrize("change, key", [("shorter", "applications.short_list_not_rejected"),
                                         ("longer", "applications.long_list_not_rejected")], ids=["shorter", "longer"])
def test_group_entities_rejects_lists_of_different_lengths(student, change, key):
    # each of label_ids, scores and offsets one entry shorter, then one longer, than tokens
    tokens = ["[CLS]", "jacob", "dev", "##lin", "[SEP]"]
    lists = {"label_ids": [0, 1, 2, 2, 0], "scores": [0.9, 0.8, 0.7, 0.6, 0.9],
             "offsets": [(0, 0), (0, 5), (6, 9), (9, 12), (0, 0)]}
    for name, good in lists.items():
        bad = good[:-1] if change == "shorter" else good + [good[0]]
        args = {**lists, name: bad}
        _, err = call_catching(student.group_entities, tokens, args["label_ids"], args["scores"], args["offsets"],
                               dict(enumerate(NER_LABELS)))
        assert isinstance(err, ValueError) and name in err.remote_message, \
            msg(key, name=name, err=err.describe() if err is not None else msg("applications.no_error"))


# ------------------------------------------------------------------ QA span decoding

def _qa_offsets(tok, question, context, special_style):
    enc = tok(question, context, return_offsets_mapping=True)
    seq_ids = enc.sequence_ids()
    offsets = []
    for o, s in zip(enc["offset_mapping"], seq_ids):
        if s == 1:
            offsets.append((int(o[0]), int(o[1])))
        elif s is None:
            offsets.append((0, 0) if special_style != "none" else None)   # [CLS], [SEP]
        else:
            offsets.append(None if special_style != "zeros" else (0, 0))  # the question's tokens
    return enc.tokens(), offsets


def _brute_force(start_logits, end_logits, offsets, max_answer_len):
    """Every valid span (i, j) -> its score, in float64."""
    ctx = np.array([not _is_special(o) for o in offsets])
    s = np.where(ctx, np.asarray(start_logits, np.float64), -np.inf)
    e = np.where(ctx, np.asarray(end_logits, np.float64), -np.inf)
    ps, pe = _softmax64(s), _softmax64(e)
    spans = {}
    for i in np.flatnonzero(ctx):
        for j in np.flatnonzero(ctx):
            if i <= j < i + max_answer_len:
                spans[(int(i), int(j))] = float(ps[i] * pe[j])
    return spans


def _check_span(got, start_logits, end_logits, offsets, context, max_answer_len, what):
    if not isinstance(got, dict) or not {"answer", "score", "start", "end"} <= set(got):
        raise AssertionError(msg("applications.expected_dict_keys_answer", what=what, got=got))
    start = as_int(got["start"], msg("applications.start", what=what))
    end = as_int(got["end"], msg("applications.end", what=what))
    score = as_float(got["score"], msg("applications.score", what=what), plain=True)   # "score": float
    if not isinstance(got["answer"], str) or got["answer"] != context[start:end]:
        raise AssertionError(msg("applications.answer_not_context", what=what, got_answer=got['answer'],
                                 start=start, end=end, context=context[start:end]))
    spans = _brute_force(start_logits, end_logits, offsets, max_answer_len)
    best = max(spans.values())
    best_span = max(spans, key=spans.get)
    want = msg("applications.expected_score",
               context=context[offsets[best_span[0]][0]:offsets[best_span[1]][1]],
               start=offsets[best_span[0]][0], end=offsets[best_span[1]][1], best=best)
    matches = [(i, j) for (i, j) in spans if offsets[i][0] == start and offsets[j][1] == end]
    if not matches:
        raise AssertionError(msg("applications.characters_not_valid_span", what=what, start=start, end=end,
                                 got_answer=got['answer'], max_answer_len=max_answer_len, want=want))
    i, j = matches[0]
    # float32 softmax products round at ~1e-7; a span that is not the best, or a softmax over the
    # question too, is off by far more.  Spans whose scores tie within 1e-6 are all accepted.
    if not spans[(i, j)] >= best - 1e-6:
        raise AssertionError(msg("applications.span_tokens_scores_but", what=what, got_answer=got['answer'],
                                 start=start, end=end, i=i, j=j, spans=spans[i, j], want=want))
    if not abs(score - spans[(i, j)]) <= 2e-6:
        raise AssertionError(msg("applications.span_has_score_expected", what=what, got_answer=got['answer'],
                                 score=score, spans=spans[i, j]))


class SpanCase(NamedTuple):
    """One drawn best_span input (field names in a falsifying example)."""
    question: str
    context: str
    special_style: str
    max_answer_len: int | None
    data: object


@st.composite
def qa_inputs(draw):
    question = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8)))
    context = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=25)))
    style = draw(st.sampled_from(["hf", "none", "zeros"]))
    max_answer_len = draw(st.one_of(st.none(), st.integers(1, 20)))
    return SpanCase(question, context, style, max_answer_len, draw(st.data()))


@pytest.mark.judges("best_span", stage=3, item="best_span")
@graded(max_examples=30, report_multiple_bugs=False)
@given(qa_inputs())
def test_best_span_matches_brute_force(student, device, hf_tokenizer, inputs):
    question, context, style, max_answer_len, data = inputs
    tokens, offsets = _qa_offsets(hf_tokenizer, question, context, style)
    L = len(offsets)
    logits = st.lists(st.floats(-10, 10, width=32), min_size=L, max_size=L)
    start_logits = torch.tensor(data.draw(logits), dtype=torch.float32)
    end_logits = torch.tensor(data.draw(logits), dtype=torch.float32)
    kwargs = {} if max_answer_len is None else {"max_answer_len": max_answer_len}
    got = student.best_span(start_logits.to(device), end_logits.to(device), offsets, context, **kwargs)
    assert_not_mutated(student, msg("applications.best_span_inputs"))
    _check_span(got, start_logits.numpy(), end_logits.numpy(), offsets, context, max_answer_len or 15,
                msg("applications.best_span_context_tokens", context=context, tokens=tokens))


def _peaked(L, hot):
    """Logits of length L: 0 everywhere except at the positions in ``hot``."""
    x = torch.zeros(L)
    for i, v in hot.items():
        x[i] = v
    return x


@pytest.mark.judges("best_span", stage=2, item="span_offsets")
def test_best_span_example_context_finds_2017_at_56_60(student, device, hf_tokenizer):
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, QA_CONTEXT, "hf")
    k = tokens.index("2017")
    L = len(tokens)
    start, end = _peaked(L, {k: 8.0, 0: 9.0}), _peaked(L, {k: 8.0, 0: 9.0})   # [CLS] scores higher but is no answer
    got = student.best_span(start.to(device), end.to(device), offsets, QA_CONTEXT)
    _check_span(got, start.numpy(), end.numpy(), offsets, QA_CONTEXT, 15,
                msg("applications.best_span_example_context"))
    assert (got["answer"], got["start"], got["end"]) == ("2017", 56, 60), \
        msg("applications.expected_answer_2017_characters", got_answer=got['answer'], got_start=got['start'],
            got_end=got['end'])


@pytest.mark.judges("best_span", stage=2, item="best_span")
def test_best_span_never_answers_from_the_question(student, device, hf_tokenizer):
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, QA_CONTEXT, "hf")
    L = len(tokens)
    q = [i for i, o in enumerate(offsets) if o is None]
    ctx = [i for i, o in enumerate(offsets) if not _is_special(o)]
    # the question's tokens carry the highest logits; the best context span is ctx[3]..ctx[4]
    start = _peaked(L, {**{i: 12.0 for i in q}, ctx[3]: 5.0})
    end = _peaked(L, {**{i: 12.0 for i in q}, ctx[4]: 5.0})
    got = student.best_span(start.to(device), end.to(device), offsets, QA_CONTEXT)
    _check_span(got, start.numpy(), end.numpy(), offsets, QA_CONTEXT, 15,
                msg("applications.best_span_when_question"))


@pytest.mark.judges("best_span", stage=2, item="best_span")
def test_best_span_end_never_before_start(student, device, hf_tokenizer):
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, QA_CONTEXT, "hf")
    L = len(tokens)
    ctx = [i for i, o in enumerate(offsets) if not _is_special(o)]
    # the start logits peak after the end logits: the best pair (start, end) has end < start
    start = _peaked(L, {ctx[6]: 9.0, ctx[2]: 6.0})
    end = _peaked(L, {ctx[3]: 9.0, ctx[8]: 6.0})
    got = student.best_span(start.to(device), end.to(device), offsets, QA_CONTEXT)
    _check_span(got, start.numpy(), end.numpy(), offsets, QA_CONTEXT, 15,
                msg("applications.best_span_when_start"))


def check_max_answer_len(student, device, hf_tokenizer, max_answer_len):
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, QA_CONTEXT, "hf")
    L = len(tokens)
    ctx = [i for i, o in enumerate(offsets) if not _is_special(o)]
    # the best unrestricted span is max_answer_len + 1 tokens long; the best allowed one is one shorter.
    # None: no keyword, the default 15 (the context has 21 tokens, enough for a 16-token span)
    n = 15 if max_answer_len is None else max_answer_len
    start = _peaked(L, {ctx[1]: 9.0})
    end = _peaked(L, {ctx[1 + n]: 9.0, ctx[n]: 3.0})
    kwargs = {} if max_answer_len is None else {"max_answer_len": max_answer_len}
    got = student.best_span(start.to(device), end.to(device), offsets, QA_CONTEXT, **kwargs)
    _check_span(got, start.numpy(), end.numpy(), offsets, QA_CONTEXT, n,
                msg("applications.best_span_max_answer", max_answer_len=max_answer_len) if kwargs
                else msg("applications.best_span_default_max_answer"))


@pytest.mark.judges("best_span", stage=2, item="best_span")
@pytest.mark.parametrize("max_answer_len", [1, 3, 15])
def test_best_span_respects_max_answer_len(student, device, hf_tokenizer, max_answer_len):
    check_max_answer_len(student, device, hf_tokenizer, max_answer_len)


@pytest.mark.judges("best_span", stage=2, item="qa")
def test_best_span_default_max_answer_len_is_15(student, device, hf_tokenizer):
    check_max_answer_len(student, device, hf_tokenizer, None)


@pytest.mark.judges("best_span", stage=2, item="qa")
def test_best_span_first_context_token_at_character_zero_counts(student, device, hf_tokenizer):
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, QA_CONTEXT, "zeros")
    ctx = [i for i, o in enumerate(offsets) if not _is_special(o)]
    assert offsets[ctx[0]][0] == 0 and offsets[ctx[0]][1] > 0
    L = len(tokens)
    start, end = _peaked(L, {ctx[0]: 8.0}), _peaked(L, {ctx[0]: 8.0})
    got = student.best_span(start.to(device), end.to(device), offsets, QA_CONTEXT)
    _check_span(got, start.numpy(), end.numpy(), offsets, QA_CONTEXT, 15,
                msg("applications.best_span_when_answer"))


@pytest.mark.judges("best_span", stage=2, item="span_offsets")
def test_best_span_on_more_than_256_tokens(student, device, hf_tokenizer):
    # BERT reads up to 512 tokens: a context of 294 tokens (305 in all); the best span lies near its end
    context = " ".join([QA_CONTEXT] * 14)
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, context, "hf")
    L = len(tokens)
    assert L > 300
    ctx = [i for i, o in enumerate(offsets) if not _is_special(o)]
    start = _peaked(L, {ctx[-6]: 9.0, ctx[10]: 7.0})
    end = _peaked(L, {ctx[-4]: 9.0, ctx[12]: 7.0})
    got = student.best_span(start.to(device), end.to(device), offsets, context)
    _check_span(got, start.numpy(), end.numpy(), offsets, context, 15,
                msg("applications.best_span_long_sequence", n=L))


@pytest.mark.judges("best_span", stage=0, item="contract")
def test_best_span_rejects_mismatched_lengths(student, device, hf_tokenizer):
    tokens, offsets = _qa_offsets(hf_tokenizer, QA_QUESTION, QA_CONTEXT, "hf")
    L = len(tokens)
    # both logits longer than offsets, both shorter, only the end logits longer, only the start logits
    # longer, only the start logits shorter
    for n_start, n_end in ((L + 1, L + 1), (L - 1, L - 1), (L, L + 1), (L + 1, L), (L - 1, L)):
        _, err = call_catching(student.best_span, torch.zeros(n_start, device=device),
                               torch.zeros(n_end, device=device), offsets, QA_CONTEXT)
        assert isinstance(err, ValueError) and re.search("logits|offsets", err.remote_message), \
            msg("applications.mismatched_lengths_not_rejected", n_start=n_start, n_end=n_end, n_offsets=L,
                err=err.describe() if err is not None else msg("applications.no_error"))


# ------------------------------------------------------------------ QA end to end: windows and answers

QA_WORDS = [w for w in WORDS if w not in ("(", ")")]


def _hf_windows(tok, question, context, max_length, stride):
    """HuggingFace's question-answering preprocessing (the course's prepare_validation_features)."""
    enc = tok(question, context, truncation="only_second", max_length=max_length, stride=stride,
              return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
    out = []
    for w in range(len(enc["input_ids"])):
        seq = enc.sequence_ids(w)
        out.append({"input_ids": list(enc["input_ids"][w]), "attention_mask": list(enc["attention_mask"][w]),
                    "token_type_ids": list(enc["token_type_ids"][w]),
                    "offsets": [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq)]})
    return out


def _as_list(x):
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x.tolist()
    return list(x)


def _norm_offset(o):
    if o is None:
        return None
    o = _as_list(o)
    return (int(o[0]), int(o[1]))


def _check_windows(got, want, what):
    """Equal to HF's windows on every real token; any padding after them is [PAD] (id 0), mask 0,
    type 0 and offset None (padding to max_length is allowed, not required)."""
    if not isinstance(got, list) or len(got) != len(want):
        raise AssertionError(msg("applications.expected_list_windows_got", what=what, n_want=len(want),
                                 value=len(got) if isinstance(got, list) else type(got).__name__))
    for w, (g, h) in enumerate(zip(got, want)):
        if not isinstance(g, dict) or not {"input_ids", "attention_mask", "token_type_ids", "offsets"} <= set(g):
            raise AssertionError(msg("applications.window_must_be_dict", what=what, w=w, got=type(g).__name__,
                                     keys=sorted(g) if isinstance(g, dict) else ""))
        cols = {k: _as_list(g[k]) for k in ("input_ids", "attention_mask", "token_type_ids", "offsets")}
        n = sum(h["attention_mask"])
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) != 1 or lengths["input_ids"] < n:
            raise AssertionError(msg("applications.window_four_lists_have", what=what, w=w, n=n,
                                     lengths=lengths))
        for k in ("input_ids", "attention_mask", "token_type_ids"):
            real = [int(v) for v in cols[k][:n]]
            if real != h[k][:n]:
                i = next(i for i, (a, b) in enumerate(zip(real, h[k][:n])) if a != b)
                raise AssertionError(msg("applications.window_huggingface_preprocessing_gives", what=what, w=w,
                                         k=k, i=i, real_i=real[i], h_k_i=h[k][i], n=n, h_k=h[k][:n]))
        offs = [_norm_offset(o) for o in cols["offsets"][:n]]
        if offs != h["offsets"][:n]:
            i = next(i for i, (a, b) in enumerate(zip(offs, h["offsets"][:n])) if a != b)
            raise AssertionError(msg("applications.window_offsets_expected_context", what=what, w=w, i=i,
                                     offs_i=offs[i], h_offsets_i=h['offsets'][i]))
        pad = [(int(a), int(b), int(c), _norm_offset(d)) for a, b, c, d in
               zip(*(cols[k][n:] for k in ("input_ids", "attention_mask", "token_type_ids", "offsets")))]
        if any(p != (0, 0, 0, None) for p in pad):
            raise AssertionError(msg("applications.window_padding_after_real", what=what, w=w, n=n))


@functools.lru_cache(maxsize=1)
def _trusted_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(vocab_path()))


def question_room(question, max_length):
    """Context tokens per window: max_length less the question's tokens and [CLS] [SEP] [SEP]."""
    return max_length - len(_trusted_tokenizer()(question, add_special_tokens=False)["input_ids"]) - 3


class QaDocument(NamedTuple):
    """One drawn question, context and window size (field names in a falsifying example)."""
    question: str
    context: str
    max_length: int
    stride: int


@st.composite
def qa_documents(draw):
    """Windows of 32..96 tokens, stride 0..16, always with room for more than ``stride`` context
    tokens next to the question (a longer question is a ValueError: see the contract test)."""
    question = " ".join(draw(st.lists(st.sampled_from(QA_WORDS), min_size=1, max_size=6)))
    context = " ".join(draw(st.lists(st.sampled_from(QA_WORDS), min_size=1, max_size=120)))
    need = 32 - question_room(question, 32) + 1          # the smallest max_length with room for 1 token
    max_length = draw(st.integers(max(32, need), 96))
    stride = draw(st.integers(0, min(16, question_room(question, max_length) - 1)))
    return QaDocument(question, context, max_length, stride)


@pytest.fixture(scope="module")
def remote_bert_tokenizer(student):
    return student.build("transformers.BertTokenizer", vocab=str(vocab_path()))


@pytest.mark.judges("qa_features", stage=3, item="qa")
@graded(max_examples=25)
@given(doc=qa_documents())
def test_qa_features_match_hf_preprocessing(student, hf_tokenizer, remote_bert_tokenizer, doc):
    """Windows, ids, masks, token types and context offsets as HuggingFace's QA preprocessing,
    for contexts from one window to many (max_length 32..96, stride 0..16)."""
    question, context, max_length, stride = doc
    got = student.qa_features(question, context, remote_bert_tokenizer, max_length=max_length, stride=stride)
    want = _hf_windows(hf_tokenizer, question, context, max_length, stride)
    _check_windows(got, want, msg("applications.qa_features_max_length", max_length=max_length, stride=stride))


@pytest.mark.judges("qa_features", stage=3, item="qa")
def test_qa_features_long_context_windows_overlap_and_cover_it(student, hf_tokenizer, remote_bert_tokenizer):
    """A context of ~600 tokens, default max_length=384 and stride=128: two windows, as HF; and a short
    context: one window."""
    context = " ".join([QA_CONTEXT] * 30)
    for ctx, what in ((context, msg("applications.long_context")), (QA_CONTEXT, msg("applications.short_context"))):
        got = student.qa_features(QA_QUESTION, ctx, remote_bert_tokenizer)
        _check_windows(got, _hf_windows(hf_tokenizer, QA_QUESTION, ctx, 384, 128),
                       msg("applications.qa_features_defaults_384", what=what))


@pytest.mark.judges("qa_features", stage=0, item="contract")
def test_qa_features_rejects_stride_not_below_max_length(student, remote_bert_tokenizer):
    for stride in (32, 40, -1):
        _, err = call_catching(student.qa_features, QA_QUESTION, QA_CONTEXT, remote_bert_tokenizer,
                               max_length=32, stride=stride)
        assert isinstance(err, ValueError) and "stride" in err.remote_message, \
            msg("applications.bad_stride_not_rejected", stride=stride,
                err=err.describe() if err is not None else msg("applications.no_error"))


LONG_QUESTION = " ".join(["the"] * 20)     # 20 tokens: a window of 32 has room for 32 - 23 = 9 context tokens


@pytest.mark.judges("qa_features", stage=0, item="contract")
@pytest.mark.parametrize("max_length, stride", [(32, 9), (32, 20), (23, 0)],
                         ids=["room equals stride", "room below stride", "no room at all"])
def test_qa_features_rejects_a_question_that_leaves_no_room(student, remote_bert_tokenizer, max_length, stride):
    """A question so long that a window holds no more than ``stride`` context tokens is a ValueError
    naming the argument (the fast tokenizer itself stops with a PanicException, not even an
    Exception).  One room more than stride, (32, 8), is fine: see the test below."""
    assert question_room(LONG_QUESTION, max_length) <= stride
    context = " ".join(QA_WORDS * 3)                       # longer than any window: it must be cut
    _, err = call_catching(student.qa_features, LONG_QUESTION, context, remote_bert_tokenizer,
                           max_length=max_length, stride=stride)
    assert isinstance(err, ValueError) and re.search("question|max_length|stride", err.remote_message), \
        msg("applications.long_question_not_rejected", max_length=max_length, stride=stride,
            room=question_room(LONG_QUESTION, max_length),
            err=err.describe() if err is not None else msg("applications.no_error"))


@pytest.mark.judges("qa_features", stage=3, item="qa")
def test_qa_features_long_question_with_room_for_one_more_than_stride(student, hf_tokenizer, remote_bert_tokenizer):
    """20 question tokens, max_length 32: 9 context tokens per window, stride 8 (the largest allowed):
    the windows are HuggingFace's, one new context token each."""
    assert question_room(LONG_QUESTION, 32) == 9
    context = " ".join(QA_WORDS[:12])
    got = student.qa_features(LONG_QUESTION, context, remote_bert_tokenizer, max_length=32, stride=8)
    _check_windows(got, _hf_windows(hf_tokenizer, LONG_QUESTION, context, 32, 8),
                   msg("applications.qa_features_max_length", max_length=32, stride=8))


class QaModel:
    """A seeded small BertForQuestionAnswering here and the same weights in the sandbox (short repr)."""

    def __init__(self, local, remote):
        self.local, self.remote = local, remote

    def __repr__(self):
        return "<small BertForQuestionAnswering>"


@pytest.fixture(scope="module")
def qa_model(student, device, hf_tokenizer):
    from transformers import BertForQuestionAnswering

    # initial weights 5x BERT's spread: peaked logits.  An untrained model prefers the first or the
    # (shorter) last window; the word embedding of "2017" is pointed along the QA head's weights, so
    # "2017" gets high start and end logits wherever it stands, and the long test puts it in a middle
    # window: its span scores 0.0100 there, the best span of any other window 0.0018.
    cfg = small_config(vocab_size=hf_tokenizer.vocab_size, max_position_embeddings=384, initializer_range=0.1)
    local = seeded(lambda: BertForQuestionAnswering(cfg), 7).eval()
    with torch.no_grad():
        w = local.qa_outputs.weight.sum(0)
        local.bert.embeddings.word_embeddings.weight[hf_tokenizer.convert_tokens_to_ids("2017")] = \
            3.0 * w / w.norm() * cfg.hidden_size ** 0.5
    return QaModel(local, hf_twin(student, "transformers.BertForQuestionAnswering", cfg, local, device=device))


def _brute_force_answer(model, tok, question, context, max_length, stride, max_answer_len):
    """Every valid span of every window (HF's windows, the same weights) -> (start, end) -> best score."""
    windows = _hf_windows(tok, question, context, max_length, stride)
    batch = {k: torch.tensor([w[k] for w in windows]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        out = model(**batch)
    spans = {}
    for w, win in enumerate(windows):
        for (i, j), score in _brute_force(out.start_logits[w].numpy(), out.end_logits[w].numpy(),
                                          win["offsets"], max_answer_len).items():
            key = (win["offsets"][i][0], win["offsets"][j][1])
            spans[key] = max(spans.get(key, 0.0), score)
    return spans, len(windows)


def _check_answer(got, spans, context, what):
    if not isinstance(got, dict) or not {"answer", "score", "start", "end"} <= set(got):
        raise AssertionError(msg("applications.expected_dict_keys_answer", what=what, got=got))
    start = as_int(got["start"], msg("applications.start", what=what))
    end = as_int(got["end"], msg("applications.end", what=what))
    score = as_float(got["score"], msg("applications.score", what=what), plain=True)   # "score": float
    if got["answer"] != context[start:end]:
        raise AssertionError(msg("applications.answer_not_context_2", what=what, got_answer=got['answer'],
                                 start=start, end=end))
    (bs, be), best = max(spans.items(), key=lambda kv: kv[1])
    want = msg("applications.expected_score_2", context=context[bs:be], bs=bs, be=be, best=best)
    if (start, end) not in spans:
        raise AssertionError(msg("applications.no_valid_span_any", what=what, start=start, end=end,
                                 got_answer=got['answer'], want=want))
    # the sandbox's forward pass may sum in another order (another thread count, a GPU): logits
    # differ by ~1e-6, span scores (products of probabilities <= 1) by less than 1e-5; a span from the
    # wrong window, or one window only, is off by far more here
    if spans[(start, end)] < best - 1e-5 or abs(score - spans[(start, end)]) > 1e-5:
        raise AssertionError(msg("applications.score_brute_force", what=what, got_answer=got['answer'],
                                 start=start, end=end, score=score, spans=spans[start, end], want=want))


@pytest.mark.judges("answer_question", "qa_features", "best_span", stage=3, item="qa")
@pytest.mark.parametrize("kind", ["short", "long"])
def test_answer_question_matches_brute_force_over_windows(student, hf_tokenizer, remote_bert_tokenizer,
                                                          qa_model, kind):
    """The best span over every window (max_length 64, stride 16 on a long context: 5 windows, the
    answer "2017" in the third) equals a brute-force search over the same model's logits."""
    def section(k):
        year = "2017" if k == 5 else "last year"
        return (f"The Transformer architecture was presented by Google in {year}. "
                f"Section {k} adds that {WORDS[k]} and {WORDS[-k - 1]} matter.")
    context = QA_CONTEXT if kind == "short" else " ".join(section(k) for k in range(1, 10))
    spans, n_windows = _brute_force_answer(qa_model.local, hf_tokenizer, QA_QUESTION, context, 64, 16, 15)
    assert kind == "short" or n_windows == 5
    got = student.answer_question(QA_QUESTION, context, qa_model.remote, remote_bert_tokenizer,
                                  max_length=64, stride=16)
    _check_answer(got, spans, context, msg(f"applications.answer_question_on_{kind}_context", n_windows=n_windows))


@pytest.mark.judges("answer_question", "qa_features", "best_span", stage=3, item="qa")
@graded(max_examples=8)
@given(doc=qa_documents(), max_answer_len=st.integers(1, 20))
def test_answer_question_matches_brute_force_on_drawn_text(student, hf_tokenizer, remote_bert_tokenizer, qa_model,
                                                           doc, max_answer_len):
    question, context, max_length, stride = doc
    spans, n_windows = _brute_force_answer(qa_model.local, hf_tokenizer, question, context, max_length, stride,
                                           max_answer_len)
    got = student.answer_question(question, context, qa_model.remote, remote_bert_tokenizer,
                                  max_length=max_length, stride=stride, max_answer_len=max_answer_len)
    _check_answer(got, spans, context, msg("applications.answer_question_max_length", max_length=max_length,
                                           stride=stride, max_answer_len=max_answer_len, n_windows=n_windows))


@pytest.fixture(scope="module")
def token_logit_qa_model(student, device, hf_tokenizer):
    """A BertForQuestionAnswering whose logits depend on the token only: "2017" has start logit 5,
    "2018" end logit 5, "2019" end logit 6, every other token 0.  The attention and feed-forward
    outputs are zeroed, so every layer is a LayerNorm; position and token-type embeddings are zero."""
    from transformers import BertForQuestionAnswering

    cfg = small_config(vocab_size=hf_tokenizer.vocab_size, max_position_embeddings=512)
    local = seeded(lambda: BertForQuestionAnswering(cfg), 8).eval()
    H = cfg.hidden_size
    with torch.no_grad():
        for name, param in local.named_parameters():
            if "LayerNorm.weight" in name:
                param.fill_(1.0)
            elif "embeddings" in name or "output.dense" in name or "LayerNorm.bias" in name:
                param.zero_()
        unit = torch.zeros(3, H)            # zero-mean unit vectors: LayerNorm maps them to sqrt(H) * unit
        for k in range(3):
            unit[k, 2 * k], unit[k, 2 * k + 1] = 0.5 ** 0.5, -(0.5 ** 0.5)
        for k, word in enumerate(("2017", "2018", "2019")):
            local.bert.embeddings.word_embeddings.weight[hf_tokenizer.convert_tokens_to_ids(word)] = unit[k]
        local.qa_outputs.weight.copy_(torch.stack([5.0 * unit[0], 5.0 * unit[1] + 6.0 * unit[2]]) / H ** 0.5)
        local.qa_outputs.bias.zero_()
    return QaModel(local, hf_twin(student, "transformers.BertForQuestionAnswering", cfg, local, device=device))


@pytest.mark.judges("answer_question", "qa_features", "best_span", stage=3, item="qa")
def test_answer_question_defaults_are_384_128_15(student, hf_tokenizer, remote_bert_tokenizer, token_logit_qa_model):
    """No keywords: max_length=384, stride=128, max_answer_len=15.  450 one-token words make two windows;
    "2017" (start), "2018" 14 tokens later (a 15-token span) and "2019" 15 tokens later (a better end, but a
    16-token span) stand in the second window only, whose span scores depend on how many context tokens
    it holds, that is on max_length and stride (one token more or less moves the score by ~3e-4)."""
    filler = ["the", "model", "was", "presented", "by", "google", "in", "tokyo"]
    words = [filler[k % len(filler)] for k in range(450)]
    words[400], words[414], words[415] = "2017", "2018", "2019"
    context = " ".join(words)
    spans, n_windows = _brute_force_answer(token_logit_qa_model.local, hf_tokenizer, QA_QUESTION, context,
                                           384, 128, 15)
    assert n_windows == 2
    got = student.answer_question(QA_QUESTION, context, token_logit_qa_model.remote, remote_bert_tokenizer)
    _check_answer(got, spans, context, msg("applications.answer_question_defaults", n_windows=n_windows))


@pytest.mark.judges("answer_question", "qa_features", "best_span", stage=3, item="qa")
@pytest.mark.parametrize("max_answer_len", [5, 20])
def test_answer_question_passes_max_answer_len_on(student, hf_tokenizer, remote_bert_tokenizer, token_logit_qa_model,
                                                   max_answer_len):
    """One window; "2017" (start logit 5), "2018" 14 tokens later (end logit 5: a 15-token span) and
    "2019" 15 tokens later (end logit 6: a 16-token span).  The default 15 answers "2017 ... 2018";
    max_answer_len=20 must answer "2017 ... 2019", max_answer_len=5 a span of at most 5 tokens."""
    filler = ["the", "model", "was", "presented", "by", "google", "in", "tokyo"]
    words = [filler[k % len(filler)] for k in range(60)]
    words[10], words[24], words[25] = "2017", "2018", "2019"
    context = " ".join(words)
    spans, n_windows = _brute_force_answer(token_logit_qa_model.local, hf_tokenizer, QA_QUESTION, context,
                                           384, 128, max_answer_len)
    assert n_windows == 1
    got = student.answer_question(QA_QUESTION, context, token_logit_qa_model.remote, remote_bert_tokenizer,
                                  max_answer_len=max_answer_len)
    _check_answer(got, spans, context, msg("applications.answer_question_max_answer_len",
                                           max_answer_len=max_answer_len))


@pytest.mark.judges("answer_question", stage=2, item="qa")
def test_answer_question_runs_in_eval_mode_without_autograd(student, device, hf_tokenizer, remote_bert_tokenizer):
    # a small QA model with dropout 0.3 handed over in train mode, twice (the second time after
    # model.train() again), over a context of several windows: every forward pass must run in
    # eval mode with autograd off.  Leaving the model in eval mode afterwards, or restoring its
    # mode, are both fine.
    remote = dropout_model_in_train_mode(student, device, "BertForQuestionAnswering", hf_tokenizer.vocab_size, seed=22)
    context = " ".join([QA_CONTEXT] * 3)
    with forward_probe(student, remote) as probe:
        student.answer_question(QA_QUESTION, context, remote, remote_bert_tokenizer, max_length=48, stride=8)
        remote.train()
        student.answer_question(QA_QUESTION, context, remote, remote_bert_tokenizer, max_length=48, stride=8)
    assert_inference_calls(probe.calls, "answer_question")
