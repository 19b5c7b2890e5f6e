"""Suite for `encoder` (chapters 3.1 and 3.6): a BERT encoder from the student's own parts.

The student's EncoderLayer / BertEncoder are checked against HuggingFace `BertLayer` /
`BertModel` with the same weights: small random configurations drawn by hypothesis, and
the real all-MiniLM-L6-v2 weights (hash-checked by `grader.grading.hf.minilm_dir`) on text
tokenized with the real bert-base-uncased vocabulary.  Outputs are compared at real
(non-padding) positions only.

Tolerances (float32), measured on this suite's inputs with the reference solution:
- float32 rounding (the same maths in another order, e.g. HuggingFace's eager or SDPA
  attention vs the kata's): <= 2e-6 for one layer, <= 4e-6 for the small models and for
  MiniLM (6 layers, values up to 6).
- tanh-approximate GELU instead of exact GELU: >= 2.5e-4 (one layer), >= 7e-4 (small
  models), 3.9e-3 (MiniLM).
- LayerNorm eps 1e-5 instead of 1e-12: in the embedding LayerNorm >= 1e-2 (small models,
  whose embeddings have BERT's 0.02 scale) and 2.6e-3 (MiniLM); in the layers only 7e-5 on
  MiniLM and 5e-5 .. 2.5e-4 on one layer fed small inputs, and > 1e-2 in the dedicated eps test.
So LAYER_ATOL = MINILM_ATOL = 2e-5 (5x above rounding, 3.5x below the smallest eps effect)
and SMALL_ATOL = 5e-5 (deeper random stacks round a little more; every bug above is
>= 7e-4 there).

The pooler, output_attentions and count_parameters (measured the same way, 60 small models):
- pooler_output: rounding <= 1e-6 (small models), 1.4e-7 (MiniLM); a pooler without tanh is
  >= 0.055 off (small models) and 3.8e-3 (MiniLM), one on the mean of the tokens 0.55 (median)
  and 0.21 (MiniLM).  POOLER_ATOL = 1e-5 for the pooler alone (rounding there ~1e-7), and
  pooled(...) uses SMALL_ATOL / MINILM_ATOL.
- attention weights (probabilities in [0, 1], at real query rows): rounding <= 2.9e-6 (small
  models, sharp attention), 1.7e-6 (MiniLM); the scores before the softmax or another layer's
  weights are off by > 0.1.  ATTENTION_ATOL = 2e-5.
- count_parameters is an exact int: compared with ==.

from_hf reads every size and layer_norm_eps from the config (odd sizes, eps 1e-5 and 1e-7, a
"quiet" model whose embedding LayerNorm gain, biases and W_O are scaled down so that the
LayerNorms' inputs have a variance of ~1e-6, where eps matters), measured with the reference:
rounding <= 9.6e-7; eps 1e-12 instead of the config's: >= 9.5e-3 (everywhere or in the layers
only), 1.7e-4 (the embedding LayerNorm only, eps 1e-7); 12, 6 or 1 heads instead of 3: >= 1.9e-2.
CONFIG_ATOL = 2e-5: 20x above rounding, 8x below the smallest bug.

Dropout (p > 0): eval mode must equal HuggingFace's (eval) within the tolerances above; train
mode must move the output by > 1e-3 (a dropped attention weight or feature moves it by ~0.1;
P(nothing dropped) < 0.7**192 < 1e-29), and the same seed must give the same train output.
Where dropout sits is the student's choice: only these three facts are checked.
"""
import functools
import math
import re
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.grading import hf
from grader.grading.checks import assert_close, assert_dtype, assert_shape, graded
from grader.grading.testing import as_int, call_catching, fail_with, hf_twin, is_handle
from grader.i18n import msg

LAYER_ATOL = 2e-5
SMALL_ATOL = 5e-5
MINILM_ATOL = 2e-5
POOLER_ATOL = 1e-5
ATTENTION_ATOL = 2e-5
CONFIG_ATOL = 2e-5
MOVED_BY_DROPOUT = 1e-3

# HuggingFace BertLayer parameter -> the SPEC'd name (suffix) of the student's parameter that
# must hold it; LayerNorm names are the student's choice (None: matched by value only).
LAYER_ROLES = {
    "attention.self.query": "W_Q", "attention.self.key": "W_K", "attention.self.value": "W_V",
    "attention.output.dense": "W_O", "intermediate.dense": "linear1", "output.dense": "linear2",
    "attention.output.LayerNorm": None, "output.LayerNorm": None,
    "pooler.dense": "pooler.dense",
}
ROLE_OF_SUFFIX = {v: k for k, v in LAYER_ROLES.items() if v}


# ------------------------------------------------------------------ trusted helpers

def randomize_(module, seed, qk_gain=2.0):
    """Give every parameter a distinct random value: weights ~ N(0, 1/fan_in) (query and key
    twice that, so attention is sharp and a query/key swap shows), biases and LayerNorm
    parameters far from 0 and 1 (so a forgotten bias or LayerNorm shows), embeddings of
    BERT's scale 0.02 (so the embedding LayerNorm's eps matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * noise)
            elif "LayerNorm.bias" in name:
                p.copy_(0.1 * noise)
            elif "embeddings" in name:
                p.copy_(0.02 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                gain = qk_gain if (".query." in name or ".key." in name) else 1.0
                p.copy_(gain * noise / math.sqrt(p.shape[1]))
    return module


def hf_layer(cfg, seed):
    from transformers import BertLayer

    return randomize_(hf.seeded(lambda: BertLayer(cfg), seed), seed).eval()


def hf_model(cfg, seed):
    from transformers import BertModel

    return randomize_(hf.seeded(lambda: BertModel(cfg), seed), seed).eval()


def first(out):
    """EncoderLayer.forward returns the hidden states; tolerate (hidden, extras) tuples."""
    return out[0] if isinstance(out, (tuple, list)) and out else out


def loaded_student_layer(student, device, cfg, layer, default_eps=False, dropout=0.1):
    """The student's EncoderLayer holding ``layer``'s weights, copied in by their own
    load_bert_layer from a copy of ``layer`` built in the sandbox (a BertLayer is no
    PreTrainedModel, so ``hf_twin`` does not apply), in eval mode on ``device``."""
    remote = hf.in_sandbox(student, "transformers.BertLayer", cfg, layer.state_dict())
    d, h, d_ff = cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size
    if dropout is None:
        mine = student.EncoderLayer(d, h, d_ff)                     # every default
    elif default_eps:
        mine = student.EncoderLayer(d, h, d_ff, dropout=dropout)
    else:
        mine = student.EncoderLayer(d, h, d_ff, dropout=dropout, layer_norm_eps=cfg.layer_norm_eps)
    returned = student.load_bert_layer(mine, remote)
    assert is_handle(returned, of=mine), msg("encoder.load_bert_layer_layer", returned=returned)
    mine.eval()
    mine.to(device)
    return mine


def padding_mask(lengths, seq_len):
    """(B, L) long: 1 for the first lengths[b] positions of row b, then 0."""
    return (torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]).long()


def tensors_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


def check_weight_mapping(student_sd, hf_sd, where):
    """Every HuggingFace weight is in the student's state_dict, unchanged, and the SPEC-named
    ones (W_Q, W_K, W_V, W_O, linear1, linear2) hold the right HuggingFace weight."""
    student_sd = {k: v.detach().cpu() for k, v in student_sd.items() if isinstance(v, torch.Tensor)}
    problems = []
    for hf_name, want in hf_sd.items():
        module_name, kind = hf_name.rsplit(".", 1)                     # kind: weight / bias
        suffix = LAYER_ROLES.get(re.sub(r"^encoder\.layer\.\d+\.", "", module_name))
        role = f"{suffix}.{kind}" if suffix else None
        holders = [k for k, v in student_sd.items() if tensors_equal(v, want)]
        if role is not None and any(k.endswith(role) for k in holders):
            continue
        if role is None and holders:
            continue
        if holders:
            wrong = holders[0]
            owner = ROLE_OF_SUFFIX.get(wrong.split(".")[-2] if "." in wrong else "")
            hint = msg("encoder.hold_huggingface", wrong=wrong, owner=owner, kind=kind) if owner else ""
            problems.append(msg("encoder.huggingface_copied_into_but", where=where, hf_name=hf_name,
                                wrong=wrong, role=role, hint=hint))
        elif want.dim() == 2 and any(tensors_equal(v, want.T) for v in student_sd.values()):
            at = next(k for k, v in student_sd.items() if tensors_equal(v, want.T))
            problems.append(msg("encoder.holds_transpose_huggingface_nn", where=where, at=at, hf_name=hf_name))
        else:
            problems.append(msg("encoder.huggingface_appears_nowhere_model", where=where, hf_name=hf_name,
                                want_shape=tuple(want.shape)))
    fail_with(problems)


# ------------------------------------------------------------------ EncoderLayer + load_bert_layer

@st.composite
def layer_cases(draw):
    heads = draw(st.sampled_from([1, 2, 4]), label="num_heads")
    head_dim = draw(st.sampled_from([2, 4, 8]), label="head_dim")
    return dict(
        heads=heads, d_model=heads * head_dim, d_ff=draw(st.integers(4, 64), label="d_ff"),
        batch=draw(st.integers(1, 3), label="batch"), seq_len=draw(st.integers(1, 10), label="seq_len"),
        mask_kind=draw(st.sampled_from(["none", "padding_bool", "padding_long", "full_bool", "square_2d"]),
                       label="mask"),
        x_scale=draw(st.sampled_from([1.0, 0.1]), label="x_scale"),
        default_eps=draw(st.booleans(), label="default_eps"),
        seed=draw(st.integers(0, 2**31 - 1), label="seed"))


@pytest.mark.judges("EncoderLayer", "load_bert_layer", stage=3, item="layer")
@graded(max_examples=20)
@given(case=layer_cases())
def test_encoder_layer_matches_hf_bert_layer(student, device, case):
    cfg = hf.small_config(hidden_size=case["d_model"], num_attention_heads=case["heads"],
                          intermediate_size=case["d_ff"])
    layer = hf_layer(cfg, case["seed"])
    mine = loaded_student_layer(student, device, cfg, layer, default_eps=case["default_eps"])
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    B, L, d = case["batch"], case["seq_len"], case["d_model"]
    x = case["x_scale"] * torch.randn(B, L, d, generator=gen)
    lengths = torch.randint(1, L + 1, (B,), generator=gen).tolist()
    real = padding_mask(lengths, L).bool()                                     # (B, L)
    if case["mask_kind"] == "none":
        mask, real = None, torch.ones(B, L, dtype=torch.bool)
    elif case["mask_kind"] == "padding_bool":
        mask = real[:, None, None, :]                                           # (B, 1, 1, L)
    elif case["mask_kind"] == "padding_long":
        mask = real[:, None, None, :].long()
    elif case["mask_kind"] == "full_bool":                                      # any pattern, (B, 1, L, L)
        mask = torch.rand(B, 1, L, L, generator=gen) < 0.6
        mask |= torch.eye(L, dtype=torch.bool)                                  # every query may attend somewhere
        real = torch.ones(B, L, dtype=torch.bool)
    else:                                                                       # one pattern for all, (L, L)
        mask = (torch.rand(L, L, generator=gen) < 0.6) | torch.eye(L, dtype=torch.bool)
        real = torch.ones(B, L, dtype=torch.bool)
    got = first(mine(x.to(device), None if mask is None else mask.to(device)))
    with torch.no_grad():
        want = layer(x, None if mask is None else hf.additive_mask(mask.bool()))
    assert_close(got, want.to(device), atol=LAYER_ATOL, mask=real[..., None].to(device),
                 name=msg("encoder.encoderlayer_output_huggingface_bertlayer", case_mask_kind=case['mask_kind']))


@pytest.mark.judges("EncoderLayer", "load_bert_layer", stage=2, item="layer")
@pytest.mark.parametrize("eps", [None, 1e-12, 1e-5, 1e-3])
def test_encoder_layer_uses_layer_norm_eps(student, device, eps):
    # inputs and biases so small that the LayerNorms' inputs have a variance of ~1e-5:
    # there eps 1e-12 and 1e-5 give outputs that differ by 1e-2 or more
    cfg = hf.small_config(hidden_size=16, num_attention_heads=2, intermediate_size=32,
                          layer_norm_eps=1e-12 if eps is None else eps)
    layer = hf_layer(cfg, seed=21)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("bias") and "LayerNorm" not in name:
                p.mul_(0.01)
        layer.attention.output.dense.weight.mul_(0.01)
    mine = loaded_student_layer(student, device, cfg, layer, default_eps=eps is None)
    x = 0.003 * torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(22))
    got = first(mine(x.to(device)))
    with torch.no_grad():
        want = layer(x)
    label = (msg("encoder.default_layer_norm_eps")
             if eps is None else f"layer_norm_eps={eps:g}")
    assert_close(got, want.to(device), atol=1e-4,
                 name=msg("encoder.encoderlayer_vs_hf_label", label=label))


@pytest.mark.judges("load_bert_layer", stage=2, item="layer")
def test_load_bert_layer_maps_each_weight(student):
    cfg = hf.small_config(hidden_size=24, num_attention_heads=3, intermediate_size=24)   # square FFN weights too
    layer = hf_layer(cfg, seed=31)
    mine = loaded_student_layer(student, "cpu", cfg, layer)
    check_weight_mapping(mine.state_dict(), layer.state_dict(), "load_bert_layer")


@pytest.mark.judges("EncoderLayer", stage=1, item="conventions")
def test_encoder_layer_output_shape_and_dtype(student, device):
    cfg = hf.small_config(hidden_size=16, num_attention_heads=4, intermediate_size=20)
    mine = loaded_student_layer(student, device, cfg, hf_layer(cfg, seed=41))
    out = first(mine(torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(42)).to(device)))
    assert_shape(out, (3, 7, 16), msg("encoder.encoderlayer_output"))
    assert_dtype(out, torch.float32, msg("encoder.encoderlayer_output"))


@pytest.mark.judges("EncoderLayer", stage=1, item="conventions")
def test_encoder_layer_returns_the_hidden_states_alone(student, device):
    # layer(x, mask) gives the hidden states, not a tuple: how the weights come out for
    # output_attentions is the student's choice, but not by default
    cfg = hf.small_config(hidden_size=16, num_attention_heads=4, intermediate_size=20)
    mine = loaded_student_layer(student, device, cfg, hf_layer(cfg, seed=43))
    out = mine(torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(44)).to(device), None)
    assert isinstance(out, torch.Tensor), msg("encoder.layer_returns_hidden_states", got_type=type(out).__name__)


def layer_with_dropout(student, device, p, seed):
    """(the student's EncoderLayer(dropout=p) holding a random BertLayer's weights, x, that BertLayer's
    eval output) for a small config."""
    cfg = hf.small_config(hidden_size=16, num_attention_heads=2, intermediate_size=24)
    layer = hf_layer(cfg, seed=seed)
    mine = loaded_student_layer(student, device, cfg, layer, dropout=p)
    x = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        want = layer(x)
    return mine, x.to(device), want.to(device)


@pytest.mark.judges("EncoderLayer", "load_bert_layer", stage=2, item="dropout")
def test_encoder_layer_dropout_only_in_train_mode(student, device):
    # p = 0.3: eval mode is HuggingFace's BertLayer (eval) exactly; train mode drops something;
    # the same seed drops the same things (where the dropout sits is the student's choice)
    mine, x, want = layer_with_dropout(student, device, 0.3, 45)
    evaluated = first(mine(x))
    assert_close(evaluated, want, atol=LAYER_ATOL, name=msg("encoder.encoderlayer_dropout_eval"))
    check_dropout(student, mine, evaluated, lambda: first(mine(x)), "EncoderLayer(dropout=0.3)")


@pytest.mark.judges("EncoderLayer", "load_bert_layer", stage=2, item="dropout")
def test_encoder_layer_dropout_0_changes_nothing_in_train_mode(student, device):
    # dropout=0.0 reaches every part (a feed-forward built without it would drop at its own 0.1)
    mine, x, want = layer_with_dropout(student, device, 0.0, 49)
    mine.train()
    student.seed(0)
    assert_close(first(mine(x)), want, atol=LAYER_ATOL, name=msg("encoder.encoderlayer_dropout_0_train"))


@pytest.mark.judges("EncoderLayer", "load_bert_layer", stage=2, item="dropout")
def test_encoder_layer_defaults(student, device):
    # EncoderLayer(d_model, num_heads, d_ff) with no keywords: BERT's dropout 0.1 (on in train
    # mode, off in eval mode) and layer_norm_eps 1e-12
    cfg = hf.small_config(hidden_size=16, num_attention_heads=2, intermediate_size=24)
    layer = hf_layer(cfg, seed=47)
    mine = loaded_student_layer(student, device, cfg, layer, dropout=None)
    x = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(48))
    evaluated = first(mine(x.to(device)))
    with torch.no_grad():
        want = layer(x)
    assert_close(evaluated, want.to(device), atol=LAYER_ATOL,
                 name=msg("encoder.encoderlayer_vs_hf_label", label=msg("encoder.default_layer_norm_eps")))
    check_dropout(student, mine, evaluated, lambda: first(mine(x.to(device))), "EncoderLayer(16, 2, 24)")


def check_dropout(student, module, evaluated, run, label):
    """In train mode ``run()`` moves away from ``evaluated`` (eval mode) and repeats itself
    under the same seed; ``module`` is put back in eval mode."""
    module.train()
    try:
        student.seed(0)
        one = run()
        student.seed(0)
        two = run()
    finally:
        module.eval()
    moved = float((one - evaluated).abs().max())
    assert moved > MOVED_BY_DROPOUT, msg("encoder.train_mode_dropout", label=label, moved=moved)
    assert torch.equal(one, two), msg("encoder.train_mode_same_seed", label=label)


@pytest.mark.judges("EncoderLayer", stage=0, item="contract")
def test_encoder_layer_bad_sizes(student):
    # d_model 10 does not split into 3 heads: a ValueError naming the sizes (from your MultiHeadAttention)
    with pytest.raises(ValueError, match="d_model|num_heads"):
        student.EncoderLayer(10, 3, 16)


# ------------------------------------------------------------------ BertEncoder, small random configs

@st.composite
def model_cases(draw):
    heads = draw(st.sampled_from([1, 2, 4]), label="num_heads")
    head_dim = draw(st.sampled_from([2, 4, 8]), label="head_dim")
    max_pos = draw(st.integers(4, 24), label="max_position_embeddings")
    seq_len = draw(st.integers(1, max_pos), label="seq_len")
    batch = draw(st.integers(1, 3), label="batch")
    return dict(
        layers=draw(st.integers(1, 3), label="num_hidden_layers"), heads=heads, d_model=heads * head_dim,
        d_ff=draw(st.integers(4, 48), label="intermediate_size"), vocab=draw(st.integers(5, 60), label="vocab_size"),
        type_vocab=draw(st.integers(1, 3), label="type_vocab_size"), max_pos=max_pos, seq_len=seq_len, batch=batch,
        lengths=draw(st.lists(st.integers(1, seq_len), min_size=batch, max_size=batch), label="real lengths"),
        use_mask=draw(st.booleans(), label="pass attention_mask"),
        mask_dtype=draw(st.sampled_from(["long", "int32", "bool"]), label="attention_mask dtype"),
        use_types=draw(st.booleans(), label="pass token_type_ids"),
        seed=draw(st.integers(0, 2**31 - 1), label="seed"))


MASK_DTYPES = {"long": torch.long, "int32": torch.int32, "bool": torch.bool}


def small_model_config(c):
    return hf.small_config(hidden_size=c["d_model"], num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                           intermediate_size=c["d_ff"], vocab_size=c["vocab"], type_vocab_size=c["type_vocab"],
                           max_position_embeddings=c["max_pos"], layer_norm_eps=1e-12)   # other eps: test_from_hf_reads_layer_norm_eps


def encoder_from_hf(student, remote, device):
    """The student's BertEncoder.from_hf(remote), in eval mode on ``device``."""
    enc = student.BertEncoder.from_hf(remote)
    assert is_handle(enc) and not is_handle(enc, of=remote), msg("encoder.bertencoder_hf_return_new", enc=enc)
    enc.eval()
    enc.to(device)
    return enc


def student_encoder(student, device, cfg, model):
    return encoder_from_hf(student, hf_twin(student, "transformers.BertModel", cfg, model), device)


def random_inputs(c, seed):
    gen = torch.Generator().manual_seed(seed)
    B, L = c["batch"], c["seq_len"]
    ids = torch.randint(0, c["vocab"], (B, L), generator=gen)
    mask = padding_mask(c["lengths"], L)
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))                 # [PAD] = 0 at padding
    types = torch.randint(0, c["type_vocab"], (B, L), generator=gen)
    return ids, mask, types


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=3, item="model")
@graded(max_examples=12)
@given(case=model_cases())
def test_bert_encoder_matches_hf_bert_model(student, device, case):
    cfg = small_model_config(case)
    model = hf_model(cfg, case["seed"])
    enc = student_encoder(student, device, cfg, model)
    ids, mask, types = random_inputs(case, case["seed"] + 1)
    kwargs = {}
    if case["use_mask"]:
        kwargs["attention_mask"] = mask
    else:
        mask = torch.ones_like(mask)                                           # no padding then
    if case["use_types"]:
        kwargs["token_type_ids"] = types
    mine = {k: v.to(MASK_DTYPES[case["mask_dtype"]]) if k == "attention_mask" else v for k, v in kwargs.items()}
    got = enc(ids.to(device), **{k: v.to(device) for k, v in mine.items()})
    with torch.no_grad():
        want = model(input_ids=ids, **kwargs).last_hidden_state
    assert_close(got, want.to(device), atol=SMALL_ATOL, mask=mask.bool()[..., None].to(device),
                 name=msg("encoder.bertencoder_output_huggingface_bertmodel"))


def odd_config(eps=1e-12):
    """Sizes no BERT has (none a default, none equal to another), 3 heads of size 12 (so a
    hard-coded 12 heads still builds, and computes something else)."""
    return hf.small_config(hidden_size=36, num_hidden_layers=3, num_attention_heads=3, intermediate_size=37,
                           vocab_size=43, max_position_embeddings=19, type_vocab_size=3, layer_norm_eps=eps)


@pytest.mark.judges("BertEncoder.from_hf", stage=2, item="model")
def test_from_hf_maps_each_weight(student):
    cfg = odd_config()
    model = hf_model(cfg, seed=51)
    enc = student_encoder(student, "cpu", cfg, model)
    sd = enc.state_dict()
    layers = sum(1 for k in sd if k.endswith("W_Q.weight"))
    assert layers == cfg.num_hidden_layers, msg("encoder.from_hf_layer_count", got=layers,
                                                want=cfg.num_hidden_layers)
    check_weight_mapping(sd, model.state_dict(), "BertEncoder.from_hf")


def quiet_model(cfg, seed):
    """hf_model with the embedding LayerNorm's gain and bias, the layers' biases and W_O scaled
    down: the embeddings' LayerNorm and the first layer's first LayerNorm see a variance of ~1e-6,
    where eps 1e-5, 1e-7 and 1e-12 give visibly different outputs."""
    model = hf_model(cfg, seed)
    with torch.no_grad():
        model.embeddings.LayerNorm.weight.mul_(1e-3)
        model.embeddings.LayerNorm.bias.mul_(1e-3)
        for name, p in model.encoder.named_parameters():
            if name.endswith("bias") and "LayerNorm" not in name:
                p.mul_(0.01)
        for layer in model.encoder.layer:
            layer.attention.output.dense.weight.mul_(0.01)
    return model


def check_from_hf_config(student, device, eps):
    # layer_norm_eps and num_attention_heads change no weight's shape: only the outputs show them
    cfg = odd_config(eps)
    model = quiet_model(cfg, seed=81)
    enc = student_encoder(student, device, cfg, model)
    gen = torch.Generator().manual_seed(82)
    ids = torch.randint(1, cfg.vocab_size, (3, 9), generator=gen)
    mask = padding_mask([9, 6, 2], 9)
    types = torch.randint(0, cfg.type_vocab_size, (3, 9), generator=gen)
    got = enc(ids.to(device), mask.to(device), types.to(device))
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert_close(got, want.to(device), atol=CONFIG_ATOL, mask=mask.bool()[..., None].to(device),
                 name=msg("encoder.from_hf_config_output", eps=eps))


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=2, item="model")
def test_from_hf_reads_the_config(student, device):
    # BERT's eps 1e-12; the heads and every size from the config
    check_from_hf_config(student, device, 1e-12)


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=2, item="config_eps")
@pytest.mark.parametrize("eps", [1e-5, 1e-7])
def test_from_hf_reads_layer_norm_eps(student, device, eps):
    # every released BERT has eps 1e-12; a config may say otherwise, and every LayerNorm follows it
    check_from_hf_config(student, device, eps)


def encoder_with_dropout(student, device, p, seed):
    """(the student's BertEncoder.from_hf, ids, mask, BertModel's eval output) for a small config
    whose hidden and attention dropout are both ``p``."""
    cfg = hf.small_config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                          vocab_size=30, max_position_embeddings=12)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = p
    model = hf_model(cfg, seed=seed)
    enc = student_encoder(student, device, cfg, model)
    gen = torch.Generator().manual_seed(seed + 1)
    ids, mask = torch.randint(1, 30, (2, 10), generator=gen), padding_mask([10, 7], 10)
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return enc, ids.to(device), mask.to(device), want.to(device)


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=2, item="dropout")
def test_bert_encoder_dropout_only_in_train_mode(student, device):
    # BERT's config has dropout (0.1 in bert-base and MiniLM): the encoder built from it drops in
    # train mode, and only there
    enc, ids, mask, want = encoder_with_dropout(student, device, 0.1, 91)
    evaluated = enc(ids, mask)
    assert_close(evaluated, want, atol=SMALL_ATOL, mask=mask.bool()[..., None],
                 name=msg("encoder.bertencoder_dropout_eval"))
    check_dropout(student, enc, evaluated, lambda: enc(ids, mask), "BertEncoder.from_hf(config with dropout 0.1)")


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=2, item="dropout")
def test_bert_encoder_from_a_config_without_dropout_changes_nothing_in_train_mode(student, device):
    # from_hf reads the dropout from the config: with hidden_dropout_prob = attention_probs_dropout_prob
    # = 0.0, train mode drops nothing (a hard-coded 0.1 would)
    enc, ids, mask, want = encoder_with_dropout(student, device, 0.0, 93)
    enc.train()
    try:
        student.seed(0)
        got = enc(ids, mask)
    finally:
        enc.eval()
    assert_close(got, want, atol=SMALL_ATOL, mask=mask.bool()[..., None],
                 name=msg("encoder.bertencoder_dropout_0_train"))


@pytest.fixture(scope="module")
def small_pair(student, device):
    cfg = hf.small_config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                          vocab_size=50, max_position_embeddings=16, type_vocab_size=2)
    model = hf_model(cfg, seed=61)
    return model, student_encoder(student, device, cfg, model)


@pytest.mark.judges("BertEncoder.forward", stage=2, item="model")
def test_padding_content_does_not_matter(student, device, small_pair):
    _, enc = small_pair
    gen = torch.Generator().manual_seed(62)
    lengths, L = [16, 9, 3], 16
    mask = padding_mask(lengths, L)
    ids = torch.randint(1, 50, (3, L), generator=gen)
    types = (torch.arange(L)[None, :] >= torch.tensor([8, 5, 2])[:, None]).long()
    base = enc(torch.where(mask.bool(), ids, 0).to(device), mask.to(device), types.to(device))
    # other tokens and token types at the padded positions: the real positions must not notice
    noisy_ids = torch.where(mask.bool(), ids, torch.randint(1, 50, (3, L), generator=gen))
    noisy_types = torch.where(mask.bool(), types, 1 - types)
    noisy = enc(noisy_ids.to(device), mask.to(device), noisy_types.to(device))
    real = mask.bool()[..., None].to(device)
    assert_close(noisy, base, atol=1e-5, mask=real,
                 name=msg("encoder.output_real_positions_after"))
    # each sentence alone (no padding at all) gives its row of the padded batch
    for b, n in enumerate(lengths):
        alone = enc(ids[b:b + 1, :n].to(device), torch.ones(1, n, dtype=torch.long, device=device),
                    types[b:b + 1, :n].to(device))
        assert_close(alone, base[b:b + 1, :n], atol=SMALL_ATOL,
                     name=msg("encoder.sentence_length_alone_row", b=b, n=n))


@pytest.mark.judges("BertEncoder.forward", "BertEncoder.from_hf", stage=1, item="conventions")
def test_bert_encoder_output_shape_and_dtype(student, device, small_pair):
    _, enc = small_pair
    out = enc(torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(63)).to(device))
    assert_shape(out, (2, 11, 32), msg("encoder.bertencoder_output_last_hidden"))
    assert_dtype(out, torch.float32, msg("encoder.bertencoder_output"))
    assert out.device.type == device.type, msg("encoder.bertencoder_output_input", out_device=out.device,
                                               device=device)


# ------------------------------------------------------------------ the real all-MiniLM-L6-v2 weights

MINILM_TEXTS = [
    ("Hello, how are you?", "I am fine, thank you."),
    ("The quick brown fox jumps over the lazy dog near the river bank.", "Why?"),
    ("Transformers learn contextual word representations.", "BERT is pre-trained on unlabeled text."),
]


@functools.lru_cache(maxsize=None)
def minilm_reference():
    from transformers import BertModel, BertTokenizer

    folder = str(hf.minilm_dir())                                               # sha256-checked
    model = BertModel.from_pretrained(folder).eval()
    tokenizer = BertTokenizer.from_pretrained(folder)
    batch = tokenizer([a for a, _ in MINILM_TEXTS], [b for _, b in MINILM_TEXTS], padding=True,
                      return_tensors="pt")
    single = tokenizer("Hello, how are you?", return_tensors="pt")
    with torch.no_grad():
        want_batch = model(**batch).last_hidden_state
        want_single = model(input_ids=single["input_ids"]).last_hidden_state
    return batch, want_batch, single["input_ids"], want_single


@pytest.fixture(scope="module")
def minilm_encoder(student, device):
    remote = student.build("transformers.BertModel.from_pretrained", str(hf.minilm_dir()))
    return encoder_from_hf(student, remote, device)


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=3, item="model")
def test_bert_encoder_matches_minilm_on_a_padded_batch_of_pairs(minilm_encoder, device):
    batch, want, _, _ = minilm_reference()
    got = minilm_encoder(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                         batch["token_type_ids"].to(device))
    real = batch["attention_mask"].bool()[..., None].to(device)
    assert_close(got, want.to(device), atol=MINILM_ATOL, mask=real,
                 name=msg("encoder.minilm_vs_bertmodel_pairs"))


@pytest.mark.judges("BertEncoder.from_hf", "BertEncoder.forward", stage=3, item="model")
def test_bert_encoder_matches_minilm_on_the_chapters_sentence(minilm_encoder, device):
    # "Hello, how are you?" -> [101, 7592, 1010, 2129, 2024, 2017, 1029, 102]; no mask, no token types
    _, _, ids, want = minilm_reference()
    got = minilm_encoder(ids.to(device))
    assert_close(got, want.to(device), atol=MINILM_ATOL,
                 name=msg("encoder.minilm_vs_bertmodel_hello"))


# ------------------------------------------------------------------ the pooler (3.6: pooler_output)

def hf_pooler(hidden_size, seed):
    from transformers.models.bert.modeling_bert import BertPooler

    cfg = hf.small_config(hidden_size=hidden_size, num_attention_heads=1)
    return randomize_(hf.seeded(lambda: BertPooler(cfg), seed), seed).eval()


@pytest.mark.judges("BertPooler", stage=3, item="pooler")
@pytest.mark.parametrize("hidden_size", [4, 24])
def test_bert_pooler_matches_hf_bert_pooler(student, device, hidden_size):
    pooler = hf_pooler(hidden_size, seed=70 + hidden_size)
    mine = student.BertPooler(hidden_size)
    mine.load_state_dict(pooler.state_dict())             # the SPEC'd attribute: dense
    mine.eval()
    mine.to(device)
    hidden = 2.0 * torch.randn(3, 6, hidden_size, generator=torch.Generator().manual_seed(71))
    got = mine(hidden.to(device))
    with torch.no_grad():
        want = pooler(hidden)
    assert_close(got, want.to(device), atol=POOLER_ATOL,
                 name=msg("encoder.bertpooler_output_huggingface_bertpooler", hidden_size=hidden_size))


@pytest.mark.judges("BertEncoder.pooled", "BertPooler", "BertEncoder.from_hf", "BertEncoder.forward", stage=3, item="pooler")
@graded(max_examples=8)
@given(case=model_cases())
def test_pooled_matches_hf_pooler_output(student, device, case):
    cfg = small_model_config(case)
    model = hf_model(cfg, case["seed"])
    enc = student_encoder(student, device, cfg, model)
    ids, mask, types = random_inputs(case, case["seed"] + 1)
    kwargs = {"attention_mask": mask} if case["use_mask"] else {}
    if case["use_types"]:
        kwargs["token_type_ids"] = types
    got = enc.pooled(ids.to(device), **{k: v.to(device) for k, v in kwargs.items()})
    with torch.no_grad():
        want = model(input_ids=ids, **kwargs).pooler_output
    assert_close(got, want.to(device), atol=SMALL_ATOL,
                 name=msg("encoder.bertencoder_pooled_huggingface_bertmodel"))


@pytest.mark.judges("BertEncoder.pooled", "BertPooler", "BertEncoder.from_hf", "BertEncoder.forward", stage=3, item="pooler")
def test_pooled_matches_minilm_pooler_output(minilm_encoder, device):
    batch, _, _, _ = minilm_reference()
    want = minilm_extras()["pooler_output"]
    got = minilm_encoder.pooled(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                batch["token_type_ids"].to(device))
    assert_close(got, want.to(device), atol=MINILM_ATOL,
                 name=msg("encoder.bertencoder_pooled_all_minilm"))


# ------------------------------------------------------------------ output_attentions (the plots' code path)

def type_and_length(value):
    return (msg("encoder.type_of_length", type=type(value).__name__, n=len(value))
            if isinstance(value, (tuple, list)) else type(value).__name__)


def check_attentions(result, want_hidden, want_attentions, real, device, where):
    """``result`` = forward(..., output_attentions=True): (last_hidden_state, one (B, h, L, L) per layer),
    equal to HuggingFace's at every real query position (padded queries' rows are free)."""
    assert isinstance(result, (tuple, list)) and len(result) == 2, msg(
        "encoder.output_attentions_pair", where=where, got=type_and_length(result))
    hidden, attentions = result
    assert_close(hidden, want_hidden.to(device), atol=MINILM_ATOL if "MiniLM" in where else SMALL_ATOL,
                 mask=real[..., None].to(device),
                 name=msg("encoder.last_hidden_state_returned", where=where))
    n = len(want_attentions)
    assert isinstance(attentions, (tuple, list)) and len(attentions) == n, msg(
        "encoder.attentions_one_per_layer", where=where, n=n, got=type_and_length(attentions))
    for i, (got, want) in enumerate(zip(attentions, want_attentions)):
        assert_close(got, want.to(device), atol=ATTENTION_ATOL, mask=real[:, None, :, None].to(device),
                     name=msg("encoder.attention_weights_layer_batch", where=where, i=i))


@pytest.mark.judges("BertEncoder.forward", "BertEncoder.from_hf", stage=3, item="attentions")
@graded(max_examples=8)
@given(case=model_cases())
def test_attentions_match_hf_output_attentions(student, device, case):
    cfg = small_model_config(case)
    model = hf_model(cfg, case["seed"])
    enc = student_encoder(student, device, cfg, model)
    ids, mask, types = random_inputs(case, case["seed"] + 1)
    result = enc(ids.to(device), mask.to(device), types.to(device), output_attentions=True)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
    check_attentions(result, out.last_hidden_state, out.attentions, mask.bool(), device,
                     msg("encoder.small_random_bertmodel"))


@pytest.mark.judges("BertEncoder.forward", "BertEncoder.from_hf", stage=3, item="attentions")
def test_attentions_match_minilm(minilm_encoder, device):
    batch, want_hidden, _, _ = minilm_reference()
    result = minilm_encoder(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                            batch["token_type_ids"].to(device), output_attentions=True)
    check_attentions(result, want_hidden, minilm_extras()["attentions"], batch["attention_mask"].bool(), device,
                     msg("encoder.all_minilm_l6_v2"))


@functools.lru_cache(maxsize=None)
def minilm_extras():
    """MiniLM's pooler_output and its attention weights (eager attention) on MINILM_TEXTS."""
    from transformers import BertModel

    batch, _, _, _ = minilm_reference()
    model = BertModel.from_pretrained(str(hf.minilm_dir()), attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    return {"pooler_output": out.pooler_output, "attentions": out.attentions}


# ------------------------------------------------------------------ count_parameters (3.6: BERT's sizes)

def meta_count(cfg):
    """The trusted count: a BertModel built on the meta device (no memory), its parameters summed."""
    from transformers import BertModel

    with torch.device("meta"):
        model = BertModel(cfg)
    return sum(p.numel() for p in model.parameters())


def parts(cfg):
    """Named groups of BertModel's parameters, to say which ones a wrong count may miss (or count
    twice): every group whose size is exactly the gap is named, since several can coincide (with
    BERT's 2 token types, the token-type embeddings and the embedding LayerNorm are both 2H)."""
    H, I, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    one_layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H
    return {
        msg("encoder.word_embeddings"): V * H,
        msg("encoder.position_embeddings"): cfg.max_position_embeddings * H,
        msg("encoder.token_type_embeddings"): cfg.type_vocab_size * H,
        msg("encoder.embedding_layernorm"): 2 * H,
        msg("encoder.one_layer"): one_layer,
        msg("encoder.one_layers_layernorms"): 4 * H,
        msg("encoder.every_attention_output"): L * (H * H + H),
        msg("encoder.every_feed_forward"): L * (2 * H * I + I + H),
        msg("encoder.pooler"): H * H + H,
        msg("encoder.every_layernorm"): 2 * H * (1 + 2 * L),
        msg("encoder.every_bias"): L * (4 * H + I + H) + H,
        msg("encoder.layernorms_biases_or_gains"): H * (1 + 2 * L),
    }


def check_count(student, sizes, label):
    """count_parameters(BertConfig(**sizes)) in the sandbox vs the trusted meta-device count."""
    from transformers import BertConfig

    cfg = BertConfig(**sizes)
    got = as_int(student.count_parameters(student.build("transformers.BertConfig", **sizes)),
                 f"count_parameters({label})")
    want = meta_count(cfg)
    if got != want:
        diff = got - want           # negative: too few counted
        known = [name for name, size in parts(cfg).items() if size == abs(diff)]
        why = (msg("encoder.count_parameters_missing" if diff < 0 else "encoder.count_parameters_twice",
                   part=msg("encoder.or").join(known)) if known else "")
        raise AssertionError(msg("encoder.count_parameters_but_bertmodel", label=label, got=got, want=want,
                                 diff=diff, how=msg("encoder.too_few" if diff < 0 else "encoder.too_many"),
                                 why=why))


@pytest.mark.judges("count_parameters", stage=3, item="parameters")
@pytest.mark.parametrize("sizes, printed", [
    ({}, 109_482_240),
    ({"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
     335_141_888)], ids=["bert_base", "bert_large"])
def test_count_parameters_of_bert_base_and_large(student, sizes, printed):
    from transformers import BertConfig

    assert meta_count(BertConfig(**sizes)) == printed   # the trusted side, as printed in the SPEC
    check_count(student, sizes, "BERT-Large" if sizes else "BertConfig()")


@st.composite
def count_configs(draw):
    heads = draw(st.integers(1, 8), label="num_attention_heads")
    return dict(
        hidden_size=heads * draw(st.integers(1, 16), label="head_dim"),
        num_hidden_layers=draw(st.integers(0, 6), label="num_hidden_layers"), num_attention_heads=heads,
        intermediate_size=draw(st.integers(1, 200), label="intermediate_size"),
        vocab_size=draw(st.integers(1, 5000), label="vocab_size"),
        max_position_embeddings=draw(st.integers(1, 600), label="max_position_embeddings"),
        type_vocab_size=draw(st.integers(1, 4), label="type_vocab_size"))


@pytest.mark.judges("count_parameters", stage=3, item="parameters")
@graded(max_examples=25)
@given(sizes=count_configs())
def test_count_parameters_matches_bert_model(student, sizes):
    check_count(student, sizes, "BertConfig(" + ", ".join(f"{k}={v}" for k, v in sizes.items()) + ")")


@pytest.mark.judges("count_parameters", stage=2, item="parameters")
def test_count_parameters_builds_no_model(student):
    # 8.2e12 word-embedding entries (33 TB): building the model, even for a moment, fails at once;
    # the formula needs only the sizes
    sizes = dict(vocab_size=10**9, hidden_size=8192, num_hidden_layers=48, num_attention_heads=64,
                 intermediate_size=32768)
    start = time.monotonic()
    _, exc = call_catching(check_count, student, sizes,
                           "BertConfig(vocab_size=10**9, hidden_size=8192, num_hidden_layers=48, ...)")
    if exc is not None:
        raise AssertionError(msg("encoder.count_parameters_config_too", exc_type_name=exc.type_name)) from None
    took = time.monotonic() - start
    assert took < 10, msg("encoder.count_parameters_took_only", took=took)
