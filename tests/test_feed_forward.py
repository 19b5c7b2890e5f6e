"""Suite for `feed_forward` (chapter 3.5): the position-wise feed-forward network.

Tolerances (float32, d_model <= 48, d_ff <= 128, inputs of size O(1)):
the same weights give the same output up to float32 rounding, measured at <= 1e-6 here;
replacing exact (erf) GELU by the tanh approximation moves the output of the HuggingFace
comparison by 3e-4 or more.  FLOAT32_ATOL = 2e-5 sits between the two.  Float64 runs are
compared at 1e-10.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from grader.grading import hf
from grader.grading.checks import assert_close, assert_dtype, assert_not_mutated, assert_shape, graded
from grader.grading.testing import raises_naming, twin
from grader.i18n import msg

FLOAT32_ATOL = 2e-5
FLOAT64_ATOL = 1e-10


def reference_ffn(reference, d_model, d_ff, activation, seed, dropout=0.0):
    ffn = hf.seeded(lambda: reference.PositionwiseFeedForward(d_model, d_ff, dropout=dropout,
                                                              activation=activation), seed)
    return ffn.eval()


def student_ffn(student, device, ref, d_model, d_ff, activation, dropout=0.0, dtype=None):
    """The student's module with the reference's weights, in eval mode, on ``device``."""
    return twin(student, "PositionwiseFeedForward", ref, d_model, d_ff, dropout=dropout, activation=activation,
                device=device, dtype=dtype)


@pytest.mark.judges("PositionwiseFeedForward", stage=3, item="relu_ffn")
@graded(max_examples=25)
@given(d_model=st.integers(1, 48), d_ff=st.integers(1, 96), batch=st.integers(1, 3),
       seq_len=st.integers(1, 10), activation=st.sampled_from(["relu", "gelu"]),
       seed=st.integers(0, 2**31 - 1))
def test_matches_reference(student, reference, device, d_model, d_ff, batch, seq_len, activation, seed):
    ref = reference_ffn(reference, d_model, d_ff, activation, seed)
    ffn = student_ffn(student, device, ref, d_model, d_ff, activation)
    x = torch.randn(batch, seq_len, d_model, generator=torch.Generator().manual_seed(seed)) * 2
    got = ffn(x.to(device))
    assert_not_mutated(student, "x")
    with torch.no_grad():
        want = ref(x).to(device)
    assert_close(got, want, atol=FLOAT32_ATOL,
                 name=f"PositionwiseFeedForward({d_model}, {d_ff}, activation={activation!r})(x)")


@pytest.mark.judges("PositionwiseFeedForward", stage=1, item="conventions")
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_float64_in_float64_out(student, reference, device, activation):
    ref = reference_ffn(reference, 12, 40, activation, seed=5).double()
    ffn = student_ffn(student, device, ref, 12, 40, activation, dtype=torch.float64)
    x = torch.randn(2, 7, 12, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    got = ffn(x.to(device))
    assert_dtype(got, torch.float64, msg("feed_forward.output_float64_module_input"))
    with torch.no_grad():
        want = ref(x).to(device)
    assert_close(got, want, atol=FLOAT64_ATOL, name=msg("feed_forward.float64_output", activation=activation))


@pytest.mark.judges("PositionwiseFeedForward.__init__", stage=1, item="conventions")
def test_layers_have_the_chapter_shapes(student):
    ffn = student.PositionwiseFeedForward(24, 80, dropout=0.25)
    assert_shape(ffn.linear1.weight, (80, 24), "linear1.weight (nn.Linear(d_model, d_ff))")
    assert_shape(ffn.linear1.bias, (80,), "linear1.bias")
    assert_shape(ffn.linear2.weight, (24, 80), "linear2.weight (nn.Linear(d_ff, d_model))")
    assert_shape(ffn.linear2.bias, (24,), "linear2.bias")
    p = ffn.dropout.p
    assert p == 0.25, msg("feed_forward.dropout_expected_nn_dropout", p=p)


def hf_bert_ffn(seed, hidden_size=32, intermediate_size=128):
    from transformers.models.bert.modeling_bert import BertIntermediate, BertOutput

    cfg = hf.small_config(hidden_size=hidden_size, intermediate_size=intermediate_size, hidden_act="gelu")
    inter = hf.seeded(lambda: BertIntermediate(cfg), seed).eval()
    out = hf.seeded(lambda: BertOutput(cfg), seed + 1).eval()
    return inter, out


@pytest.mark.judges("PositionwiseFeedForward", stage=3, item="gelu")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_hf_bert_intermediate_and_output_dense(student, device, seed):
    # BERT's feed-forward: BertIntermediate (dense + exact GELU) then BertOutput.dense
    # (BertOutput's dropout, residual and LayerNorm belong to the encoder layer, not here).
    inter, out = hf_bert_ffn(seed)
    ffn = student.PositionwiseFeedForward(32, 128, dropout=0.1, activation="gelu")
    ffn.load_state_dict({"linear1.weight": inter.dense.weight.detach(), "linear1.bias": inter.dense.bias.detach(),
                         "linear2.weight": out.dense.weight.detach(), "linear2.bias": out.dense.bias.detach()})
    ffn.to(device)
    ffn.eval()
    # inputs of size ~2 put the pre-activations in [-5, 5], where exact and tanh GELU differ most
    x = 2 * torch.randn(4, 9, 32, generator=torch.Generator().manual_seed(100 + seed))
    got = ffn(x.to(device))
    with torch.no_grad():
        want = out.dense(inter(x)).to(device)
    assert_close(got, want, atol=FLOAT32_ATOL,
                 name=msg("feed_forward.output_huggingface_bertintermediate_bertoutput"))


@pytest.mark.judges("PositionwiseFeedForward", stage=2, item="relu_ffn")
def test_relu_is_the_chapters_formula(student, device):
    # chapter 3.5: FFN(x) = max(0, x W1 + b1) W2 + b2
    gen = torch.Generator().manual_seed(11)
    w1, b1 = torch.randn(50, 16, generator=gen) / 4, torch.randn(50, generator=gen)
    w2, b2 = torch.randn(16, 50, generator=gen) / 7, torch.randn(16, generator=gen)
    ffn = student.PositionwiseFeedForward(16, 50)            # no keywords: activation defaults to relu
    ffn.load_state_dict({"linear1.weight": w1, "linear1.bias": b1, "linear2.weight": w2, "linear2.bias": b2})
    ffn.to(device)
    ffn.eval()
    x = torch.randn(3, 6, 16, generator=gen)
    got = ffn(x.to(device))
    want = F.linear(torch.clamp(F.linear(x, w1, b1), min=0), w2, b2).to(device)
    assert_close(got, want, atol=FLOAT32_ATOL, name=msg("feed_forward.ffn_default_activation"))


@pytest.mark.judges("PositionwiseFeedForward", stage=2, item="relu_ffn")
@graded(max_examples=10)
@given(d_model=st.integers(1, 24), d_ff=st.integers(1, 48), batch=st.integers(1, 3),
       seq_len=st.integers(2, 9), activation=st.sampled_from(["relu", "gelu"]),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_each_position_alone(student, reference, device, d_model, d_ff, batch, seq_len, activation, seed, data):
    """Position-wise: one position fed alone gives its slice of the whole sequence's output,
    and permuting the positions permutes the outputs."""
    ref = reference_ffn(reference, d_model, d_ff, activation, seed).double()
    ffn = student_ffn(student, device, ref, d_model, d_ff, activation, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq_len, d_model, generator=gen, dtype=torch.float64).to(device)
    whole = ffn(x)
    assert_shape(whole, (batch, seq_len, d_model), msg("feed_forward.output"))
    i = data.draw(st.integers(0, seq_len - 1), label="position")
    alone = ffn(x[:, i:i + 1])
    assert_close(alone, whole[:, i:i + 1], atol=FLOAT64_ATOL,
                 name=msg("feed_forward.output_position_fed_alone", i=i))
    perm = torch.randperm(seq_len, generator=gen)
    permuted = ffn(x[:, perm.to(device)])
    assert_close(permuted, whole[:, perm.to(device)], atol=FLOAT64_ATOL,
                 name=msg("feed_forward.output_permuted_positions_permuted"))


@pytest.mark.judges("PositionwiseFeedForward", stage=2, item="dropout")
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_dropout_only_in_train_mode(student, reference, device, activation):
    ref = reference_ffn(reference, 16, 64, activation, seed=3, dropout=0.5)
    ffn = student_ffn(student, device, ref, 16, 64, activation, dropout=0.5)
    x = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(4)).to(device)
    with torch.no_grad():
        want_eval = ref(x.cpu()).to(device)
    # eval mode: no dropout at all, and the same answer every time
    first, second = ffn(x), ffn(x)
    assert_close(first, want_eval, atol=FLOAT32_ATOL, name=msg("feed_forward.eval_mode_output_dropout"))
    assert_close(second, first, atol=0.0, name=msg("feed_forward.second_eval_mode_call"))
    # train mode: units are dropped (p=0.5 over 2*8*64 hidden units: the chance that
    # nothing changes is below 2**-1000), and the same seed drops the same units
    ffn.train()
    student.seed(1234)
    drop1 = ffn(x)
    student.seed(1234)
    drop2 = ffn(x)
    assert_shape(drop1, (2, 8, 16), msg("feed_forward.train_mode_output"))
    changed = float((drop1.detach().cpu() - want_eval.cpu()).abs().max())
    assert changed > 1e-3, msg("feed_forward.train_mode_output_dropout")
    assert_close(drop2, drop1, atol=0.0, name=msg("feed_forward.train_mode_output_after"))


@pytest.mark.judges("PositionwiseFeedForward", stage=2, item="dropout")
def test_dropout_uses_the_given_probability(student, reference, device):
    # dropout=1.0 in train mode zeroes whatever it is applied to (nn.Dropout(1.0) gives zeros), so
    # wherever the dropout sits the output no longer depends on x: every position of every input
    # gives the same vector.  A rate that ignores the argument (a hard-coded 0.1) keeps ~90 %.
    ref = reference_ffn(reference, 8, 32, "relu", seed=5, dropout=1.0)
    ffn = student_ffn(student, device, ref, 8, 32, "relu", dropout=1.0)
    ffn.train()
    student.seed(7)
    gen = torch.Generator().manual_seed(6)
    got = torch.cat([ffn(torch.randn(2, 3, 8, generator=gen).to(device)) for _ in range(2)])   # (4, 3, 8)
    assert_close(got, got[:1, :1].expand_as(got), atol=FLOAT32_ATOL,
                 name=msg("feed_forward.train_mode_output_dropout_1"))


@pytest.mark.judges("PositionwiseFeedForward.__init__", stage=0, item="contract")
@pytest.mark.parametrize("activation", ["tanh", "swish", "sigmoid", "gelu_new", "elu"])
def test_unknown_activation_raises(student, activation):
    # the docstring: ValueError "naming activation and the value"; "elu" is a substring of
    # "relu" and "gelu" (a check written as `activation in "relu gelu"` lets it through)
    with raises_naming(ValueError, rf"(?s)(?=.*activation)(?=.*{activation})", f"activation / {activation!r}"):
        student.PositionwiseFeedForward(8, 16, activation=activation)


@pytest.mark.judges("PositionwiseFeedForward.__init__", stage=0, item="contract")
def test_activation_that_is_not_a_string_raises(student):
    # "anything else raises ValueError"; a TypeError for a non-string is the contract's other choice
    with raises_naming((ValueError, TypeError), "activation", "activation"):
        student.PositionwiseFeedForward(8, 16, activation=None)


@pytest.mark.judges("PositionwiseFeedForward.__init__", stage=0, item="contract")
def test_default_dropout_is_0_1(student):
    # no keywords: dropout=0.1 (the chapter's default)
    p = student.PositionwiseFeedForward(8, 16).dropout.p
    assert p == 0.1, msg("feed_forward.default_dropout", p=p)
