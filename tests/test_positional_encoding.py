"""Suite for `positional_encoding` (chapter 3.4, exercise 2).

The trusted table is HuggingFace DistilBERT's `create_sinusoidal_embeddings` (float64
NumPy inside).  SPEC: the student's table must equal it within 1e-3 absolute.  That
tolerance lets the chapter's own float32 listing pass (it drifts by about 2e-4 at
position 5000, because `5000 * div_term` in float32 is off by about half an ulp of
5000) while every real mistake (sin/cos swapped, base 1000, i/d instead of 2i/d,
odd columns with the wrong frequency) is off by 1e-1 or more.
"""
import functools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.grading.checks import assert_close, assert_dtype, assert_not_mutated, assert_shape, graded
from grader.grading.testing import raises_naming
from grader.i18n import msg

TABLE_ATOL = 1e-3   # SPEC; see the module docstring

# an even d_model: the odd ones, where the last column is a sine, are test_odd_d_model's
EVEN_D_MODEL = st.integers(1, 32).map(lambda n: 2 * n)


@functools.lru_cache(maxsize=None)
def distilbert_table(max_len, d_model):
    """DistilBERT's sinusoidal position embeddings, (max_len, d_model) float32."""
    from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings

    out = torch.empty(max_len, d_model)
    create_sinusoidal_embeddings(max_len, d_model, out)
    return out.detach().clone()


def check_table(got, max_len, d_model, name):
    """``got`` is a float tensor equal to DistilBERT's table (any float dtype, on the CPU)."""
    want = distilbert_table(max_len, d_model)
    assert_shape(got, (max_len, d_model), name)
    assert got.is_floating_point(), msg("positional_encoding.expected_floating_point_tensor", name=name,
                                        got_dtype=got.dtype)
    assert_close(got, want, atol=TABLE_ATOL, name=name, check_dtype=False)


# ------------------------------------------------------------------ sinusoidal_table

@pytest.mark.judges("sinusoidal_table", stage=0, item="contract")
@pytest.mark.parametrize("max_len, d_model, name", [(0, 8, "max_len"), (-3, 8, "max_len"), (8, 0, "d_model"),
                                                    (8, -2, "d_model")])
def test_table_rejects_sizes_that_are_not_positive(student, max_len, d_model, name):
    # "a positive int": an empty table for max_len=0 would be a silent mistake
    with raises_naming((ValueError, TypeError), name, name):
        student.sinusoidal_table(max_len, d_model)


@pytest.mark.judges("sinusoidal_table", stage=1, item="conventions")
@pytest.mark.parametrize("d_model", [8, 7])
def test_table_shape_and_dtype(student, d_model):
    # an odd d_model has one more sine column than cosine columns
    got = student.sinusoidal_table(5, d_model)
    assert_shape(got, (5, d_model), f"sinusoidal_table(5, {d_model})")
    assert got.is_floating_point(), msg("positional_encoding.expected_floating_point_tensor",
                                        name=f"sinusoidal_table(5, {d_model})", got_dtype=got.dtype)


@pytest.mark.judges("sinusoidal_table", stage=3, item="table")
@graded(max_examples=25)
@given(max_len=st.integers(1, 120), d_model=EVEN_D_MODEL)
def test_table_matches_distilbert(student, max_len, d_model):
    got = student.sinusoidal_table(max_len, d_model)
    check_table(got, max_len, d_model, f"sinusoidal_table({max_len}, {d_model})")


@pytest.mark.judges("sinusoidal_table", stage=3, item="table")
def test_table_matches_distilbert_up_to_position_5000(student):
    # the chapter's default max_len
    got = student.sinusoidal_table(5000, 64)
    check_table(got, 5000, 64, "sinusoidal_table(5000, 64)")


@pytest.mark.judges("sinusoidal_table", stage=2, item="table")
def check_first_rows(student, d_model):
    # position 0 is (sin 0, cos 0, sin 0, ...) = (0, 1, 0, 1, ...); the first column is sin(pos);
    # an odd d_model ends with a sine column
    got = student.sinusoidal_table(4, d_model)
    assert_shape(got, (4, d_model), f"sinusoidal_table(4, {d_model})")
    row0 = got[0].to(torch.float64)
    assert_close(row0, torch.tensor([0.0, 1.0] * d_model, dtype=torch.float64)[:d_model], atol=1e-6,
                 name=msg("positional_encoding.row_0_position_0", d_model=d_model),
                 check_dtype=False)
    col0 = got[:, 0].to(torch.float64)
    assert_close(col0, torch.tensor([math.sin(p) for p in range(4)], dtype=torch.float64), atol=1e-6,
                 name=msg("positional_encoding.column_0_sinusoidal_table", d_model=d_model), check_dtype=False)


@pytest.mark.judges("sinusoidal_table", stage=2, item="table")
def test_table_first_rows(student):
    check_first_rows(student, 6)


@pytest.mark.judges("sinusoidal_table", stage=2, item="table")
@graded(max_examples=10)
@given(max_len=st.integers(1, 600), d_model=EVEN_D_MODEL)
def test_table_values_in_unit_interval(student, max_len, d_model):
    got = student.sinusoidal_table(max_len, d_model)
    assert_shape(got, (max_len, d_model), f"sinusoidal_table({max_len}, {d_model})")
    values = got.detach().to("cpu", torch.float64)
    worst = float(values.abs().max()) if values.numel() else 0.0
    assert worst <= 1.0 + 1e-6, msg("positional_encoding.sinusoidal_table_every_value", max_len=max_len,
                                    d_model=d_model, worst=worst)


@pytest.mark.judges("sinusoidal_table", stage=2, item="table")
@graded(max_examples=20)
@given(d_model=EVEN_D_MODEL, k=st.integers(1, 60), data=st.data())
def test_shift_by_k_is_a_fixed_rotation(student, d_model, k, data):
    """Chapter exercise 2: for each frequency pair (2i, 2i+1), the encoding at pos + k is the
    encoding at pos rotated by the angle k * w_i, the same rotation for every pos."""
    max_len = 400
    positions = data.draw(st.lists(st.integers(0, max_len - k - 1), min_size=1, max_size=6), label="positions")
    table = student.sinusoidal_table(max_len, d_model)
    assert_shape(table, (max_len, d_model), f"sinusoidal_table({max_len}, {d_model})")
    table = table.detach().to("cpu", torch.float64)
    n_pairs = d_model // 2
    i = torch.arange(n_pairs, dtype=torch.float64)
    w = torch.pow(10000.0, -2 * i / d_model)                   # (n_pairs,) the pair frequencies
    c, s = torch.cos(k * w), torch.sin(k * w)
    pos = torch.tensor(positions)
    sin_p, cos_p = table[pos, 0:2 * n_pairs:2], table[pos, 1:2 * n_pairs:2]   # (P, n_pairs)
    rotated = torch.stack([sin_p * c + cos_p * s, cos_p * c - sin_p * s], dim=-1)  # R(k w) applied
    shifted = torch.stack([table[pos + k, 0:2 * n_pairs:2], table[pos + k, 1:2 * n_pairs:2]], dim=-1)
    assert_close(shifted, rotated, atol=2 * TABLE_ATOL,
                 name=msg("positional_encoding.pe_pos_2i_pe", k=k))


# ------------------------------------------------------------------ PositionalEncoding

def module_buffers(student, module):
    return student.build("builtins.dict", module.named_buffers())


@pytest.mark.judges("PositionalEncoding.__init__", stage=0, item="contract")
def test_module_registers_pe_buffer(student):
    pe_mod = student.PositionalEncoding(16, max_len=50)
    buffers = module_buffers(student, pe_mod)
    names = sorted(buffers) if isinstance(buffers, dict) else buffers
    assert isinstance(buffers, dict) and "pe" in buffers, msg("positional_encoding.register_buffer_pe", names=names)
    assert_shape(buffers["pe"], (1, 50, 16), msg("positional_encoding.buffer_pe"))
    # "it is saved in the state_dict": not a persistent=False buffer
    keys = sorted(student.build("builtins.list", pe_mod.state_dict()))
    assert "pe" in keys, msg("positional_encoding.pe_not_in_state_dict", names=keys)


@pytest.mark.judges("PositionalEncoding.__init__", stage=0, item="contract")
def test_pe_is_not_a_parameter(student):
    # a buffer, not an nn.Parameter (not even one with requires_grad=False): an optimizer
    # given model.parameters() must not see it
    pe_mod = student.PositionalEncoding(8, max_len=20)
    params = sorted(student.build("builtins.dict", pe_mod.named_parameters()))
    assert not params, msg("positional_encoding.pe_is_a_parameter", names=params)


@pytest.mark.judges("PositionalEncoding.__init__", stage=0, item="contract")
@pytest.mark.parametrize("max_len", [0, -5])
def test_module_rejects_max_len_that_is_not_positive(student, max_len):
    with raises_naming((ValueError, TypeError), "max_len", "max_len"):
        student.PositionalEncoding(8, max_len=max_len)


@pytest.mark.judges("PositionalEncoding.forward", stage=0, item="contract")
@pytest.mark.parametrize("seq_len", [11, 30])
def test_sequence_longer_than_max_len_raises(student, device, seq_len):
    # the docstring: ValueError "naming max_len and the length"
    pe_mod = student.PositionalEncoding(8, max_len=10)
    pe_mod.to(device)
    x = torch.zeros(1, seq_len, 8, device=device)
    with raises_naming(ValueError, rf"(?s)(?=.*max_len)(?=.*\b{seq_len}\b)", f"max_len / {seq_len}"):
        pe_mod(x)


@pytest.mark.judges("PositionalEncoding.forward", stage=0, item="contract")
def test_input_of_another_width_raises_instead_of_broadcasting(student, device):
    # x (2, 5, 1) against a d_model = 8 table: x + pe broadcasts to (2, 5, 8), not "the same
    # shape as x"; the contract: bad arguments raise ValueError, never a silent broadcast
    pe_mod = student.PositionalEncoding(8, max_len=10)
    pe_mod.to(device)
    with pytest.raises(ValueError):
        pe_mod(torch.zeros(2, 5, 1, device=device))


@pytest.mark.judges("PositionalEncoding.__init__", stage=1, item="buffer")
def test_module_default_max_len_is_5000(student):
    pe_mod = student.PositionalEncoding(8)
    assert_shape(pe_mod.pe, (1, 5000, 8), "PositionalEncoding(8).pe")


@pytest.mark.judges("PositionalEncoding.forward", stage=1, item="conventions")
@pytest.mark.parametrize("d_model", [10, 7])
def test_forward_keeps_shape_dtype_and_device(student, device, d_model):
    # x + pe: the same shape as x (concatenating the table would add columns)
    pe_mod = student.PositionalEncoding(d_model, max_len=20)
    pe_mod.to(device)
    for dtype in (torch.float32, torch.float64):
        x = torch.ones(2, 5, d_model, dtype=dtype, device=device)
        out = pe_mod(x)
        assert_not_mutated(student, "x")
        assert_shape(out, (2, 5, d_model), msg("positional_encoding.positionalencoding_output_shape",
                                               d_model=d_model))
        assert_dtype(out, dtype, msg("positional_encoding.positionalencoding_output_dtype", dtype=dtype))
        assert out.device.type == device.type, msg("positional_encoding.positionalencoding_output_input",
                                                   out_device=out.device, device=device)


@pytest.mark.judges("PositionalEncoding.__init__", stage=2, item="buffer")
def test_module_buffer_holds_the_table(student):
    pe = module_buffers(student, student.PositionalEncoding(16, max_len=50))["pe"]
    assert_close(pe[0], distilbert_table(50, 16), atol=TABLE_ATOL, name=msg("positional_encoding.buffer_pe"),
                 check_dtype=False)


def check_forward_at_max_len(student, device, d_model):
    # x of size O(1), not zeros: x * sqrt(d_model) + pe (the original Transformer's embedding
    # scale, not this module's job) must show
    x = torch.linspace(-1.0, 1.0, 2 * 12 * d_model).reshape(2, 12, d_model).to(device)
    pe_mod = student.PositionalEncoding(d_model, max_len=12)
    pe_mod.to(device)
    out = pe_mod(x)
    want = x + distilbert_table(12, d_model).to(device)
    # the values only: dtype and in-place changes are conventions (test_forward_keeps_shape_dtype_and_device)
    assert_close(out, want, atol=TABLE_ATOL, check_dtype=False,
                 name=msg("positional_encoding.positionalencoding_6_max_len", d_model=d_model))


@pytest.mark.judges("PositionalEncoding.forward", stage=2, item="forward")
def test_forward_at_exactly_max_len(student, device):
    check_forward_at_max_len(student, device, 6)


@pytest.mark.judges("sinusoidal_table", "PositionalEncoding.forward", stage=2, item="odd_d_model")
@pytest.mark.parametrize("d_model", [1, 5, 7, 63])
def test_odd_d_model(student, device, d_model):
    """An odd d_model ends with a sine column: one more sin column than cos columns (the chapter's
    listing assumes an even one)."""
    max_len = 5000 if d_model == 63 else 120
    got = student.sinusoidal_table(max_len, d_model)
    check_table(got, max_len, d_model, f"sinusoidal_table({max_len}, {d_model})")
    check_first_rows(student, d_model)
    check_forward_at_max_len(student, device, d_model)


@pytest.mark.judges("PositionalEncoding.forward", stage=2, item="forward")
def test_forward_at_distilbert_size(student, device):
    # DistilBERT's d_model = 768 and max_len = 512, 300 tokens: sizes above 256, where comparing
    # Python ints with `is` / `is not` (object identity) stops agreeing with == / !=
    x = torch.linspace(-1.0, 1.0, 300 * 768).reshape(1, 300, 768).to(device)
    pe_mod = student.PositionalEncoding(768, max_len=512)
    pe_mod.to(device)
    out = pe_mod(x)
    want = x + distilbert_table(512, 768)[:300].to(device)
    assert_close(out, want, atol=TABLE_ATOL, check_dtype=False, name=msg("positional_encoding.distilbert_size"))


@pytest.mark.judges("PositionalEncoding.forward", stage=3, item="forward")
@graded(max_examples=20)
@given(batch=st.integers(1, 3), seq_len=st.integers(1, 40), d_model=st.integers(1, 12).map(lambda n: 2 * n),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31 - 1))
def test_forward_adds_the_table(student, device, batch, seq_len, d_model, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq_len, d_model, generator=gen, dtype=dtype).to(device)
    pe_mod = student.PositionalEncoding(d_model, max_len=40)
    pe_mod.to(device)
    out = pe_mod(x)
    want = x + distilbert_table(40, d_model)[:seq_len].to(device, dtype)
    assert_close(out, want, atol=TABLE_ATOL, check_dtype=False, name=msg("positional_encoding.positionalencoding_max_len_40",
                                                      d_model=d_model, dtype=dtype))
