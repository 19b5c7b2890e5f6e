"""Suite for the `pretraining` exercise (chapter 3.6, exercise 3, domain adaptation in 3.9).

``mask_tokens`` is random, so it is checked three ways: structure on hypothesis-drawn batches
(labels, untouched positions, special tokens, ids in range), determinism (the same generator seed
gives the same result, the global seed does not matter), and statistics against the distribution of
HuggingFace's ``DataCollatorForLanguageModeling``.  The draw order is the student's business, so no
test compares masked positions with the reference one by one.  ``whole_word_mask_tokens`` is checked
the same way on English and Japanese text (see its section for how HF's whole-word collator is made
to see the same words).

Statistical bounds.  Every rate check is an exact two-sided binomial interval (computed below
without scipy): the count must lie in [lo, hi] with P(X < lo) + P(X > hi) <= ALPHA = 1e-11 for the
binomial the contract implies; the uniformity of random ids is one chi-squared statistic with a
conservative threshold, also false-failing with probability <= ALPHA (``chi2_threshold``).  The
suite draws at most 2 * 18 = 36 such checks (7 intervals and 1 chi-squared test for mask_tokens,
10 intervals for whole_word_mask_tokens on the student's output; the same 18 on HF's collator as a
self-check of the bounds), so a correct submission fails any of them with probability below
36e-11 = 3.6e-10; the two range-end checks (random ids must reach 0 and vocab_size - 1 with
vocab_size = 3, ``check_range_ends``) add less than 1e-28, so the total stays below 1e-9.  The
sizes are chosen so that a
15 % vs 20 % selection rate, an 80/20/0 split and a wrongly scaled 10 % random share each miss
their interval by many standard deviations (see the numbers in each test).
"""
from __future__ import annotations

import collections
import copy
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import Phase, given
from hypothesis import strategies as st

from grader.grading import hf
from grader.grading.checks import assert_close, assert_equal, assert_finite, assert_not_mutated, assert_shape, graded
from grader.grading.testing import as_float
from grader.grading.plugin import NotStarted
from grader.i18n import msg, say

IS_NEXT, NOT_NEXT = 0, 1                 # the contract: HuggingFace BertForPreTraining's labels
ALPHA = 1e-11                            # false-fail probability of one interval (see the docstring)
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4  # the special ids of the synthetic vocabularies below
STAT_V = 1000                            # vocabulary size of the statistical checks
CORPUS = Path(__file__).resolve().parents[1] / "data" / "medical_corpus.txt"


def self_check_failed(what: str) -> str:
    """The suite's own input does not show what it is built to show: a grader bug."""
    return msg("pretraining.suite_self_check_failed", what=what)


# ------------------------------------------------------------------ exact binomial bounds

def binom_interval(n: int, p: float, alpha: float = ALPHA) -> tuple[int, int]:
    """[lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2 for X ~ Binomial(n, p), exact."""
    if n == 0 or p <= 0.0:
        return 0, 0
    if p >= 1.0:
        return n, n
    k = np.arange(1, n + 1, dtype=np.float64)
    logc = np.concatenate([[0.0], np.cumsum(np.log(n - k + 1) - np.log(k))])   # log C(n, k)
    ks = np.arange(n + 1, dtype=np.float64)
    logpmf = logc + ks * math.log(p) + (n - ks) * math.log1p(-p)
    pmf = np.exp(logpmf - logpmf.max())
    pmf /= pmf.sum()
    left = np.cumsum(pmf)                          # P(X <= k)
    right = np.cumsum(pmf[::-1])[::-1]             # P(X >= k)
    lo = int(np.count_nonzero(left <= alpha / 2))  # P(X < lo) = left[lo - 1] <= alpha / 2
    small = np.nonzero(right <= alpha / 2)[0]
    hi = int(small[0]) - 1 if small.size else n    # P(X > hi) = right[hi + 1] <= alpha / 2
    return lo, hi


def check_count(what: str, count: int, n: int, p: float, hf_count: int | None = None,
                p_hi: float | None = None, hf_n: int | None = None,
                hf_key: str = "pretraining.huggingface_datacollatorforlanguagemodeling_same_tokens") -> None:
    """``count`` out of ``n`` must be in the exact interval for probability ``p`` (or, with ``p_hi``,
    between the lower bound for ``p`` and the upper bound for ``p_hi``); ``hf_key`` says in the message
    what HuggingFace's ``hf_count`` comes from."""
    lo = binom_interval(n, p)[0]
    hi = binom_interval(n, p if p_hi is None else p_hi)[1]
    want = f"{p:.4f}" if p_hi is None else f"{p:.4f}..{p_hi:.4f}"
    hf_text = ""
    if hf_count is not None:       # the same bound must hold for HuggingFace's collator
        hf_n = n if hf_n is None else hf_n
        hf_lo = binom_interval(hf_n, p)[0]
        hf_hi = binom_interval(hf_n, p if p_hi is None else p_hi)[1]
        hf_text = msg(hf_key, hf_rate=hf_count / hf_n)
        if not hf_lo <= hf_count <= hf_hi:   # the bound itself is wrong: a grader bug, not the student's
            raise RuntimeError(msg("pretraining.grader_self_check_failed", what=what, hf_count=hf_count,
                                   hf_n=hf_n, hf_lo=hf_lo, hf_hi=hf_hi))
    if not lo <= count <= hi:
        raise AssertionError(msg("pretraining.observed_expected_rate_allowed", what=what, count=count, n=n,
                                 rate=count / max(n, 1), want=want, lo_rate=lo / n, hi_rate=hi / n, alpha=ALPHA,
                                 hf_text=hf_text))


def chi2_threshold(expected, alpha: float = ALPHA) -> float:
    """A threshold t with P(T > t) <= alpha for T = sum_b (O_b - E_b)^2 / E_b over K bins, where each
    count O_b is a sum of independent Bernoulli variables with mean E_b (the bins may depend on
    each other; no asymptotic chi-squared law is assumed).

    Derivation: T > t forces some bin to have (O_b - E_b)^2 > t E_b / K, i.e. |O_b - E_b| > d_b with
    d_b = sqrt(t E_b / K).  Bernstein's inequality for a sum of independent Bernoullis (variance
    <= mean E_b, each term within 1 of its mean) gives P(|O_b - E_b| >= d) <= 2 exp(-d^2 / (2 (E_b
    + d / 3))).  A union bound over the K bins: P(T > t) <= sum_b 2 exp(-d_b^2 / (2 (E_b + d_b / 3))),
    which falls as t grows; bisection returns a t where it is <= alpha.  For 20 bins of about 570
    this gives t ~ 1300 (the asymptotic chi-squared quantile would be ~ 90: the bound is
    conservative), while ids uniform over [0, 400) instead of [0, 1000) give T ~ 10 000."""
    E = np.asarray(expected, dtype=np.float64)
    K = len(E)

    def bound(t):
        d = np.sqrt(t * E / K)
        return float(np.sum(2.0 * np.exp(-d * d / (2.0 * (E + d / 3.0)))))

    lo, hi = 0.0, 1.0
    while bound(hi) > alpha:
        hi *= 2.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if bound(mid) <= alpha else (mid, hi)
    return hi


# ------------------------------------------------------------------ helpers: masking

def skewed_ids(rng, shape, top: int = 400):
    """Ids in [5, top) with a Zipf law (P(k) ~ 1 / (k - 4)): most are small, none reach [top, STAT_V)."""
    k = np.arange(5, top)
    p = 1.0 / (k - 4)
    return rng.choice(k, size=shape, p=p / p.sum())


def stat_batch(seed: int, rows: int = 1200, length: int = 128, short_rows: int = 300, skewed: bool = False):
    """Token ids in [5, STAT_V) (uniform, or ``skewed_ids``) framed as [CLS] ... [SEP] [PAD]...; the first
    ``short_rows`` rows hold only 1-3 real tokens (a fixed-count-per-row selection gets their rate wrong).
    Returns (input_ids, special_tokens_mask (1 = special or padding), short-row selector)."""
    rng = np.random.default_rng(seed)
    ids = skewed_ids(rng, (rows, length)) if skewed else rng.integers(5, STAT_V, size=(rows, length))
    special = np.zeros((rows, length), dtype=np.int64)
    n_real = np.where(np.arange(rows) < short_rows, rng.integers(1, 4, size=rows),
                      rng.integers(length // 2, length - 1, size=rows))
    for r, n in enumerate(n_real):
        ids[r, 0] = CLS
        ids[r, n + 1] = SEP
        ids[r, n + 2:] = PAD
        special[r, 0] = 1
        special[r, n + 1:] = 1
    short = np.zeros((rows, length), dtype=bool)
    short[:short_rows] = True
    return torch.from_numpy(ids), torch.from_numpy(special), torch.from_numpy(short)


def remote_generator(student, device, seed: int):
    """A torch.Generator built inside the sandbox (a generator cannot cross as data)."""
    return student.build("torch.Generator", device=str(device)).manual_seed(seed)


def unpack_masked(out, name="mask_tokens"):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError(msg("pretraining.return_pair_inputs_labels", name=name,
                                 out_type=type(out).__name__))
    inputs, labels = out
    for what, t in (("inputs", inputs), ("labels", labels)):
        if not isinstance(t, torch.Tensor):
            raise AssertionError(msg("pretraining.torch_tensor_got", name=name, what=what,
                                     t_type=type(t).__name__))
    return inputs, labels


def outcome_counts(x, inputs, labels, special, rows_sel=None):
    """Counts of selected positions and, among them, [MASK] / kept / other (random) ids."""
    x, inputs, labels = x.cpu(), inputs.cpu(), labels.cpu()
    eligible = ~special.bool().cpu()
    if rows_sel is not None:
        eligible = eligible & rows_sel
    selected = (labels != -100) & eligible
    masked = selected & (inputs == MASK)
    kept = selected & (inputs == x)
    return dict(eligible=int(eligible.sum()), selected=int(selected.sum()), masked=int(masked.sum()),
                kept=int(kept.sum()), other=int((selected & ~masked & ~kept).sum()))


@pytest.fixture(scope="module")
def hf_collator():
    """HuggingFace's collator over a synthetic STAT_V-token vocabulary ([PAD] [UNK] [CLS] [SEP] [MASK] w5 ...)."""
    from transformers import BertTokenizer, DataCollatorForLanguageModeling

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                        + [f"w{i}" for i in range(5, STAT_V)])}
    tok = BertTokenizer(vocab=vocab)
    assert len(tok) == STAT_V and tok.mask_token_id == MASK

    def run(x, special, mlm_probability, seed):
        coll = DataCollatorForLanguageModeling(tok, mlm_probability=mlm_probability)
        coll.generator = torch.Generator().manual_seed(seed)
        return coll.torch_mask_tokens(x.clone(), special.clone())   # it changes its input in place
    return run


# ------------------------------------------------------------------ mask_tokens: structure

class MaskCase(NamedTuple):
    """One drawn mask_tokens input (its repr names the fields in a falsifying example)."""
    rows: int
    length: int
    vocab_size: int
    mlm_probability: float
    special_kind: str
    seed: int


@st.composite
def mask_cases(draw):
    rows, length = draw(st.integers(1, 6)), draw(st.integers(1, 24))
    vocab_size = draw(st.sampled_from([6, 30, 1000, 30522]))
    p = draw(st.sampled_from([0.0, 0.15, 0.5, 1.0]))
    special_kind = draw(st.sampled_from(["long", "bool"]))
    return MaskCase(rows, length, vocab_size, p, special_kind, draw(st.integers(0, 2**31 - 1)))


@pytest.mark.judges("mask_tokens", stage=2, item="selection")
@graded(max_examples=20)
@given(case=mask_cases())
def test_mask_tokens_labels_and_untouched_positions(student, device, case):
    """labels = original id where selected, -100 elsewhere; unselected and special positions keep their
    id; ids stay in [0, vocab_size); same shape, dtype and device as input_ids."""
    rows, length, vocab_size, p, special_kind, seed = case
    dtype = torch.int64
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(5, vocab_size, size=(rows, length))).to(dtype)
    special = torch.from_numpy(rng.random((rows, length)) < 0.3)
    x[special] = torch.from_numpy(rng.integers(0, 5, size=(rows, length))).to(dtype)[special]
    special_arg = special.to(device) if special_kind == "bool" else special.long().to(device)
    inputs, labels = unpack_masked(student.mask_tokens(x.to(device), MASK, vocab_size, special_arg,
                                                       mlm_probability=p,
                                                       generator=remote_generator(student, device, seed)))
    for what, t in (("inputs", inputs), ("labels", labels)):
        if tuple(t.shape) != tuple(x.shape) or t.dtype != dtype or t.device.type != device.type:
            raise AssertionError(msg("pretraining.expected_shape_dtype_got", what=what, x_shape=tuple(x.shape),
                                     dtype=dtype, device_type=device.type, t_shape=tuple(t.shape),
                                     t_dtype=t.dtype, t_device=t.device))
    inputs, labels = inputs.cpu(), labels.cpu()
    selected = labels != -100
    assert_equal(labels[selected], x[selected],
                 name=msg("pretraining.labels_selected_positions_original"))
    if (selected & special).any():
        raise AssertionError(msg("pretraining.special_padding_position_selected",
                                 n_selected=int((selected & special).sum())))
    assert_equal(inputs[~selected], x[~selected],
                 name=msg("pretraining.inputs_positions_not_selected"))
    if ((inputs < 0) | (inputs >= vocab_size)).any():
        raise AssertionError(msg("pretraining.inputs_hold_ids_outside", vocab_size=vocab_size,
                                 inputs_min=int(inputs.min()), inputs_max=int(inputs.max())))
    if p == 1.0 and not torch.equal(selected, ~special):
        raise AssertionError(msg("pretraining.mlm_probability_1_0",
                                 n_unselected=int((~selected & ~special).sum())))
    if p == 0.0 and selected.any():
        raise AssertionError(msg("pretraining.mlm_probability_0_0", selected_sum=int(selected.sum())))


@pytest.mark.judges("mask_tokens", stage=1, item="randomness")
def test_mask_tokens_keeps_int32_ids(student, device):
    """"both shaped, typed and placed like input_ids": int32 ids give int32 inputs and labels."""
    x = torch.tensor([[CLS, 7, 8, 9, 10, SEP], [CLS, 11, 12, 13, SEP, PAD]], dtype=torch.int32)
    special = torch.tensor([[1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 1, 1]])
    inputs, labels = unpack_masked(student.mask_tokens(x.to(device), MASK, 50, special.to(device),
                                                       mlm_probability=0.5,
                                                       generator=remote_generator(student, device, 8)))
    for what, t in (("inputs", inputs), ("labels", labels)):
        if tuple(t.shape) != tuple(x.shape) or t.dtype != x.dtype or t.device.type != device.type:
            raise AssertionError(msg("pretraining.expected_shape_dtype_got", what=what, x_shape=tuple(x.shape),
                                     dtype=x.dtype, device_type=device.type, t_shape=tuple(t.shape),
                                     t_dtype=t.dtype, t_device=t.device))


@pytest.mark.judges("mask_tokens", stage=2, item="randomness")
def test_mask_tokens_does_not_modify_input(student, device):
    x, special, _ = stat_batch(1, rows=20, length=32, short_rows=0)
    student.mask_tokens(x.to(device), MASK, STAT_V, special.to(device), mlm_probability=0.5,
                        generator=remote_generator(student, device, 0))
    assert_not_mutated(student, "input_ids / special_tokens_mask")


@pytest.mark.judges("mask_tokens", stage=2, item="randomness")
def test_mask_tokens_same_generator_seed_same_result(student, device):
    """The same generator seed gives the same result whatever the global seed; another seed gives
    another result; with generator=None the caller's global seed decides."""
    x, special, _ = stat_batch(2, rows=40, length=64, short_rows=0)
    x, special = x.to(device), special.to(device)

    def run(seed=None):
        gen = None if seed is None else remote_generator(student, device, seed)
        return unpack_masked(student.mask_tokens(x, MASK, STAT_V, special, generator=gen))

    student.seed(0)
    a = run(1234)
    student.seed(99)
    b = run(1234)
    for what, g, w in (("inputs", b[0], a[0]), ("labels", b[1], a[1])):
        if not torch.equal(g.cpu(), w.cpu()):
            raise AssertionError(msg("pretraining.differ_between_two_calls", what=what))
    c = run(4321)
    if torch.equal(c[1].cpu(), a[1].cpu()):
        raise AssertionError(msg("pretraining.generators_seeded_1234_4321"))
    student.seed(5)
    d1 = run()
    student.seed(5)
    d2 = run()
    if not (torch.equal(d1[0].cpu(), d2[0].cpu()) and torch.equal(d1[1].cpu(), d2[1].cpu())):
        raise AssertionError(msg("pretraining.generator_none_two_calls"))
    student.seed(6)
    d3 = run()
    if torch.equal(d3[1].cpu(), d1[1].cpu()):
        raise AssertionError(msg("pretraining.generator_none_global_seeds"))


@pytest.mark.judges("mask_tokens", stage=2, item="randomness")
def test_mask_tokens_consumes_the_generator(student, device):
    """Two calls with ONE generator continue its stream: they differ (a function that re-seeds the
    generator, copies it, or builds its own from its seed repeats itself).  40 rows of ~60 real
    tokens: two independent draws coincide with probability far below 1e-100."""
    x, special, _ = stat_batch(4, rows=40, length=64, short_rows=0)
    x, special = x.to(device), special.to(device)
    gen = remote_generator(student, device, 77)
    first = unpack_masked(student.mask_tokens(x, MASK, STAT_V, special, generator=gen))
    second = unpack_masked(student.mask_tokens(x, MASK, STAT_V, special, generator=gen))
    if torch.equal(first[0].cpu(), second[0].cpu()) and torch.equal(first[1].cpu(), second[1].cpu()):
        raise AssertionError(msg("pretraining.generator_not_consumed", name="mask_tokens"))


def range_end_batch(rows: int = 40, length: int = 50):
    """``rows * length`` tokens, all id 1 = mask_token_id, none special, vocab_size 3: an output id 0
    or 2 can only be a random replacement (each one word of its own, for whole_word_mask_tokens)."""
    x = torch.ones((rows, length), dtype=torch.long)
    return x, torch.zeros_like(x), [list(range(length)) for _ in range(rows)]


def check_range_ends(inputs, name):
    """Random replacements must reach both ends of [0, vocab_size) = [0, 3).  At mlm_probability 1
    each of the 2000 tokens shows id 0 with probability 0.1 / 3 (the same for id 2), independently:
    an end is missed with probability (29 / 30) ** 2000 < 1e-29, both checks together (and the
    same for whole_word_mask_tokens) false-fail with probability below 1e-28, far below 1e-9."""
    ids = inputs.cpu()
    for end in (0, 2):
        if not bool((ids == end).any()):
            raise AssertionError(msg("pretraining.random_ids_miss_an_end", name=name, end=end, n=ids.numel(),
                                     seen=sorted(set(ids.reshape(-1).tolist()))))


@pytest.mark.judges("mask_tokens", stage=2, item="random_id_range")
def test_mask_tokens_random_ids_reach_both_ends_of_the_vocabulary(student, device):
    """vocab_size = 3: random ids are drawn from [0, 3), 0 and 2 included (randint(1, vocab_size) never
    gives 0, randint(vocab_size - 1) never gives 2)."""
    x, special, _ = range_end_batch()
    inputs, _ = unpack_masked(student.mask_tokens(x.to(device), 1, 3, special.to(device), mlm_probability=1.0,
                                                  generator=remote_generator(student, device, 17)))
    check_range_ends(inputs, "mask_tokens")


@pytest.mark.judges("mask_tokens", stage=2, item="randomness")
@pytest.mark.parametrize("shape", [(10,), (2, 3, 8)], ids=["one row (L,)", "(2, 3, L)"])
def test_mask_tokens_any_shape(student, device, shape):
    """"input_ids: any shape": a single row and a 3-D batch come back in their shape; at
    mlm_probability 1 every non-special token is selected, no special one."""
    x = torch.from_numpy(np.random.default_rng(6).integers(5, 50, size=shape))
    special = torch.zeros(shape, dtype=torch.long)
    special[..., 0] = special[..., -1] = 1
    inputs, labels = unpack_masked(student.mask_tokens(x.to(device), MASK, 50, special.to(device),
                                                       mlm_probability=1.0,
                                                       generator=remote_generator(student, device, 9)))
    assert_shape(inputs, shape, "mask_tokens(...)[0]")
    assert_shape(labels, shape, "mask_tokens(...)[1]")
    assert_equal((labels.cpu() != -100), special == 0, name=msg("pretraining.selected_any_shape", shape=shape))


BAD_MASK_ARGUMENTS = [      # (the argument the ValueError must name, mlm_probability, change to the mask)
    ("mlm_probability", 1.5, None),
    ("mlm_probability", -0.1, None),
    ("special_tokens_mask", 0.15, "one column less"),
    ("special_tokens_mask", 0.15, "one column more"),
    ("special_tokens_mask", 0.15, "one row"),          # (1, L) for (B, L): it would broadcast silently
]


def bad_special(special, change):
    if change == "one column less":
        return special[:, :-1]
    if change == "one column more":
        return torch.cat([special, special[:, -1:]], dim=1)
    if change == "one row":
        return special[:1]
    return special


@pytest.mark.judges("mask_tokens", stage=0, item="contract")
@pytest.mark.parametrize("name, p, change", BAD_MASK_ARGUMENTS)
def test_mask_tokens_rejects_bad_arguments(student, device, name, p, change):
    x, special, _ = stat_batch(3, rows=2, length=8, short_rows=0)
    x, special = x.to(device), special.to(device)
    with pytest.raises(ValueError, match=name):
        student.mask_tokens(x, MASK, STAT_V, bad_special(special, change), mlm_probability=p)


# ------------------------------------------------------------------ mask_tokens: statistics

def check_selection_rate(student, device, hf_collator, mlm_probability, parts):
    """The selected share of all non-special tokens (``parts`` slice(0, 1)), and of the tokens in
    rows with only 1-3 real tokens too (slice(0, 2)), against HF's collator's."""
    x, special, short = stat_batch(10, short_rows=300)
    kwargs = {} if mlm_probability is None else {"mlm_probability": mlm_probability}
    mlm_probability = 0.15 if mlm_probability is None else mlm_probability
    inputs, labels = unpack_masked(student.mask_tokens(
        x.to(device), MASK, STAT_V, special.to(device), generator=remote_generator(student, device, 2024),
        **kwargs))
    hf_inputs, hf_labels = hf_collator(x, special, mlm_probability, 2024)
    for rows, what in ((None, msg("pretraining.selected_share_all_non")),
                       (short, msg("pretraining.selected_share_tokens_rows")))[parts]:
        got = outcome_counts(x, inputs, labels, special, rows)
        ref = outcome_counts(x, hf_inputs, hf_labels, special, rows)
        check_count(what + msg("pretraining.mlm_probability", mlm_probability=mlm_probability),
                    got["selected"], got["eligible"], mlm_probability, hf_count=ref["selected"])


@pytest.mark.judges("mask_tokens", stage=3, item="selection")
@pytest.mark.parametrize("mlm_probability", [0.15, 0.4])
def test_mask_tokens_selection_rate_matches_hf(student, device, hf_collator, mlm_probability):
    """Each non-special token is selected independently with probability mlm_probability.  About
    86 000 eligible tokens: at p = 0.15 the interval is 0.142..0.158, so a 20 % rate (or 15 % where
    0.4 was asked) is 30+ standard deviations out."""
    check_selection_rate(student, device, hf_collator, mlm_probability, slice(0, 1))


@pytest.mark.judges("mask_tokens", stage=3, item="selection_details")
@pytest.mark.parametrize("mlm_probability", [None, 0.15], ids=["default", "0.15"])
def test_mask_tokens_selection_rate_default_and_short_rows(student, device, hf_collator, mlm_probability):
    """The default (None: the keyword left out) is 0.15; a coin per token also in rows with only 1-3
    real tokens: the ~590 short-row tokens allow 0.061..0.257 (a per-row fixed count gives 0 or
    >= 0.33 there)."""
    check_selection_rate(student, device, hf_collator, mlm_probability, slice(0, 2))


@pytest.mark.judges("mask_tokens", stage=3, item="eighty_ten_ten")
def test_mask_tokens_80_10_10_split_matches_hf(student, device, hf_collator):
    """Of the selected tokens 80 % become [MASK], 10 % a random id, 10 % stay (a random id can equal
    [MASK] or the original: probabilities below are exact for that).  mlm_probability=0.5 over about
    114 000 eligible tokens selects about 57 000: the intervals are about 0.789..0.811 (MASK) and
    0.092..0.109 (kept, random), so 80/20/0, 90/5/5 or 80/2/18 are far out."""
    x, special, _ = stat_batch(11, short_rows=0)
    inputs, labels = unpack_masked(student.mask_tokens(
        x.to(device), MASK, STAT_V, special.to(device), mlm_probability=0.5,
        generator=remote_generator(student, device, 7)))
    got = outcome_counts(x, inputs, labels, special)
    ref = outcome_counts(x, *hf_collator(x, special, 0.5, 7), special)
    V = STAT_V
    for key, p, what in (("masked", 0.8 + 0.1 / V, msg("pretraining.share_selected_tokens_replaced")),
                         ("other", 0.1 * (V - 2) / V, msg("pretraining.share_replaced_random")),
                         ("kept", 0.1 + 0.1 / V, msg("pretraining.share_selected_tokens_left"))):
        # the split is checked given the number selected (a multinomial: each share is binomial)
        check_count(what, got[key], got["selected"], p, hf_count=ref[key], hf_n=ref["selected"])


@pytest.mark.judges("mask_tokens", stage=3, item="random_ids")
def test_mask_tokens_random_ids_are_uniform_over_vocab(student, device, hf_collator):
    """Random replacements are uniform over [0, vocab_size), whatever the input ids: the batch's ids
    follow a Zipf law over [5, 400) (``skewed_ids``), so an id copied from the batch or drawn below
    its largest id leaves [400, 1000) empty.  With mlm_probability=1.0 about 11 400 replacements fall
    in 20 bins of 50 ids; one chi-squared statistic against the exact expected counts (a random id
    equal to the original or to [MASK] is not seen as one) must stay below ``chi2_threshold``."""
    x, special, _ = stat_batch(12, short_rows=0, skewed=True)
    inputs, labels = unpack_masked(student.mask_tokens(
        x.to(device), MASK, STAT_V, special.to(device), mlm_probability=1.0,
        generator=remote_generator(student, device, 99)))
    width, n_bins = 50, STAT_V // 50

    def statistic(inp, lab):
        """(T, threshold, observed, expected) for the positions that show a random other id."""
        inp, lab = inp.cpu(), lab.cpu()
        other = (lab != -100) & ~special.bool() & (inp != MASK) & (inp != x)
        ids, orig = inp[other].numpy(), x[other].numpy()
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= STAT_V):
            raise AssertionError(msg("pretraining.random_ids_outside_0", vocab_size=STAT_V, got_min=int(ids.min()),
                                     got_max=int(ids.max())))
        # given "other" at a position with original o, the id is uniform over the V - 2 ids that are
        # neither o nor [MASK]: bin b expects (width - [o in b] - [MASK in b]) / (V - 2) per position
        observed = np.bincount(ids // width, minlength=n_bins).astype(np.float64)
        expected = (ids.size * width - np.bincount(orig // width, minlength=n_bins)
                    - ids.size * (np.arange(n_bins) == MASK // width)) / (STAT_V - 2)
        t = float(np.sum((observed - expected) ** 2 / expected))
        return t, chi2_threshold(expected), observed, expected

    t, limit, observed, expected = statistic(inputs, labels)
    hf_t, hf_limit, _, _ = statistic(*hf_collator(x, special, 1.0, 99))
    if hf_t > hf_limit:    # the bound itself is wrong: a grader bug, not the student's
        raise RuntimeError(msg("pretraining.grader_chi2_self_check_failed", t=hf_t, limit=hf_limit))
    if t > limit:
        raise AssertionError(msg("pretraining.random_ids_not_uniform", t=t, limit=limit, k=n_bins, width=width,
                                 alpha=ALPHA, observed=observed.astype(int).tolist(),
                                 expected=np.round(expected).astype(int).tolist(), hf_t=hf_t))


# ------------------------------------------------------------------ whole_word_mask_tokens
#
# The law (the contract): each word (a word id of a row; None / special = no word) is selected
# with probability p, then all its pieces; each selected piece independently becomes [MASK] (0.8),
# a random id (0.1) or stays (0.1).  Checked on real text: English (bert-base-uncased word_ids()
# from the fast tokenizer) and Japanese (MeCab words of BertJapaneseTokenizer, each split by its
# WordPiece; the kata's Japanese vocabulary).  HuggingFace's DataCollatorForLanguageModeling(...,
# whole_word_mask=True) runs on the same tokens as a self-check of every bound: it finds words from
# offset_mapping, so it is handed offsets in which the pieces of a word touch and words are one
# character apart (then its words are exactly ours), and, since transformers 5 forces its
# mask_replace_prob to 1 with whole words, the 80/10/10 self-check restores 0.8 / 0.1 after
# construction (its per-token 80/10/10 code then runs on its whole-word selection).

WWM_TILE_EN = 40        # copies of the English sentences: 115 840 words, 2 240 of 2+ pieces
WWM_TILE_JA = 10        # copies of the Japanese sentences: 31 300 words, 7 310 of 2+ pieces


class WwmText:
    """Token ids, word ids and special-token mask of a tiled corpus (a short repr for reports)."""

    def __init__(self, name, ids, word_ids, special, vocab_size, mask_id, tokenizer):
        self.name, self.ids, self.word_ids, self.special = name, ids, word_ids, special
        self.vocab_size, self.mask_id, self.tokenizer = vocab_size, mask_id, tokenizer

    def __repr__(self):
        return f"<{self.name} text, {tuple(self.ids.shape)}>"

    def offsets(self):
        """offset_mapping under which HF's collator finds exactly these words."""
        rows, length = self.ids.shape
        off = np.zeros((rows, length, 2), dtype=np.int64)
        for r, wids in enumerate(self.word_ids):
            pos, prev = 0, None
            for i, w in enumerate(wids):
                if w is None:
                    prev = None
                    continue
                if prev is not None and w != prev:
                    pos += 1                     # a one-character gap starts a new word
                off[r, i] = (pos, pos + 1)
                pos, prev = pos + 1, w
        return torch.from_numpy(off)


def sentiment_texts(name):
    rows = [line.split("\t") for line in (CORPUS.parent / name).read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")][1:]
    return [text for _, _, text in rows]


def pack(name, pieces_per_sentence, tile, vocab_size, mask_id, cls, sep, pad, tokenizer):
    """[CLS] pieces [SEP] [PAD]... with word ids (None for specials), ``tile`` copies of every sentence."""
    seqs = [([cls] + [i for i, _ in ps] + [sep], [None] + [w for _, w in ps] + [None])
            for ps in pieces_per_sentence] * tile
    length = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), length), pad, dtype=torch.long)
    special = torch.ones((len(seqs), length), dtype=torch.long)
    word_ids = []
    for r, (s, w) in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        special[r, 1:len(s) - 1] = 0
        word_ids.append(w + [None] * (length - len(w)))
    return WwmText(name, ids, word_ids, special, vocab_size, mask_id, tokenizer)


@pytest.fixture(scope="module")
def wwm_english():
    from transformers import BertTokenizer

    tok = BertTokenizer(vocab=str(hf.vocab_path()))
    texts = sentiment_texts("sentiment_en.tsv")
    enc = tok(texts, add_special_tokens=False)
    pieces = [list(zip(enc["input_ids"][b], enc.word_ids(b))) for b in range(len(texts))]
    return pack("English", pieces, WWM_TILE_EN, len(tok), tok.mask_token_id, tok.cls_token_id,
                tok.sep_token_id, tok.pad_token_id, tok)


@pytest.fixture(scope="module")
def wwm_japanese():
    from transformers import BertJapaneseTokenizer

    tok = BertJapaneseTokenizer(vocab_file=str(CORPUS.parent / "ja_vocab.txt"), word_tokenizer_type="mecab",
                                subword_tokenizer_type="wordpiece", mecab_kwargs={"mecab_dic": "unidic_lite"})
    pieces = []
    for text in sentiment_texts("sentiment_ja.tsv"):
        ps = []
        for w, word in enumerate(tok.word_tokenizer.tokenize(text)):          # MeCab words
            ps += [(i, w) for i in tok.convert_tokens_to_ids(tok.subword_tokenizer.tokenize(word))]
        pieces.append(ps)
    return pack("Japanese", pieces, WWM_TILE_JA, len(tok), tok.mask_token_id, tok.cls_token_id,
                tok.sep_token_id, tok.pad_token_id, tok)


def hf_whole_word(text: WwmText, mlm_probability, seed, split_80_10_10=False):
    import warnings

    from transformers import DataCollatorForLanguageModeling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "Random token replacement is not supported ..." / slow tokenizer
        coll = DataCollatorForLanguageModeling(text.tokenizer, mlm_probability=mlm_probability, whole_word_mask=True)
    if split_80_10_10:
        coll.mask_replace_prob, coll.random_replace_prob = 0.8, 0.1
    coll.generator = torch.Generator().manual_seed(seed)
    return coll.torch_mask_tokens(text.ids.clone(), text.special.clone(), text.offsets())


def word_table(text: WwmText):
    """(row, first position, positions) of every word."""
    words = []
    for r, wids in enumerate(text.word_ids):
        where = collections.defaultdict(list)
        for i, w in enumerate(wids):
            if w is not None and not text.special[r, i]:
                where[w].append(i)
        words += [(r, pos) for pos in where.values()]
    return words


def word_counts(text: WwmText, labels, multi_only=False):
    """(selected words, eligible words); a word counts as selected when all its pieces are."""
    sel = (labels.cpu() != -100).numpy()
    n = k = 0
    for r, pos in word_table(text):
        if multi_only and len(pos) < 2:
            continue
        n += 1
        k += bool(sel[r, pos].all())
    return k, n


def pair_counts(text: WwmText, labels):
    """(pairs with both words selected, pairs) over disjoint pairs of neighbouring words of a row."""
    sel = (labels.cpu() != -100).numpy()
    rows = collections.defaultdict(list)
    for r, pos in word_table(text):
        rows[r].append(bool(sel[r, pos].all()))
    pairs = [(w[i], w[i + 1]) for w in rows.values() for i in range(0, len(w) - 1, 2)]
    return sum(a and b for a, b in pairs), len(pairs)


def check_whole_words(text: WwmText, labels, what):
    """Every word all selected or not at all; nothing outside words selected."""
    sel = (labels.cpu() != -100).numpy()
    in_word = np.zeros_like(sel)
    for r, pos in word_table(text):
        in_word[r, pos] = True
        if sel[r, pos].any() and not sel[r, pos].all():
            pieces = text.ids[r, pos].tolist()
            raise AssertionError(msg("pretraining.row_word_pieces_only", what=what, r=r, pieces=pieces,
                                     sel=sel[r, pos].tolist()))
    outside = sel & ~in_word
    if outside.any():
        r, i = map(int, np.argwhere(outside)[0])
        raise AssertionError(msg("pretraining.row_position_id_selected", what=what, r=r, i=i,
                                 text_ids=int(text.ids[r, i])))


def student_wwm(student, device, text: WwmText, mlm_probability, seed):
    """The student's whole_word_mask_tokens on ``text``; mlm_probability None leaves the keyword out."""
    kwargs = {} if mlm_probability is None else {"mlm_probability": mlm_probability}
    return unpack_masked(student.whole_word_mask_tokens(
        text.ids.to(device), text.word_ids, text.mask_id, text.vocab_size, text.special.to(device),
        generator=remote_generator(student, device, seed), **kwargs), name="whole_word_mask_tokens")


class WwmCase(NamedTuple):
    """One drawn whole-word layout: ``pieces_per_word[r]`` lists the piece count of every word of row r."""
    pieces_per_word: list
    mlm_probability: float
    seed: int


@st.composite
def wwm_cases(draw):
    """Rows of [CLS] words [SEP] [PAD]..., each word 1-4 pieces; word numbers as a fast tokenizer gives."""
    rows = draw(st.integers(1, 5))
    p = draw(st.sampled_from([0.0, 0.15, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    layout = [draw(st.lists(st.integers(1, 4), min_size=0, max_size=6)) for _ in range(rows)]
    return WwmCase(layout, p, seed)


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
@graded(max_examples=20)
@given(case=wwm_cases())
def test_whole_word_mask_structure(student, device, case):
    """All pieces of a word selected together, nothing outside words; labels = original id where
    selected, -100 elsewhere; unselected tokens unchanged; ids in range; p = 1 selects every word,
    p = 0 none; input_ids not modified."""
    layout, p, seed = case
    rng = np.random.default_rng(seed)
    vocab_size = 50
    length = max(sum(w) for w in layout) + 3
    ids = torch.full((len(layout), length), PAD, dtype=torch.long)
    special = torch.ones_like(ids)
    word_ids = []
    for r, words in enumerate(layout):
        wids = [None]
        for w, n in enumerate(words):
            wids += [w] * n
        wids.append(None)
        n_tok = len(wids) - 2
        ids[r, 0], ids[r, n_tok + 1] = CLS, SEP
        ids[r, 1:n_tok + 1] = torch.from_numpy(rng.integers(5, vocab_size, size=n_tok))
        special[r, 1:n_tok + 1] = 0
        word_ids.append(wids + [None] * (length - len(wids)))
    text = WwmText("random", ids, word_ids, special, vocab_size, MASK, None)
    inputs, labels = student_wwm(student, device, text, p, seed)
    assert_not_mutated(student)
    for what, t in (("inputs", inputs), ("labels", labels)):
        if tuple(t.shape) != tuple(ids.shape) or t.dtype != ids.dtype or t.device.type != device.type:
            raise AssertionError(msg("pretraining.expected_shape_dtype_got_2", what=what,
                                     ids_shape=tuple(ids.shape), ids_dtype=ids.dtype, device_type=device.type,
                                     t_shape=tuple(t.shape), t_dtype=t.dtype, t_device=t.device))
    inputs, labels = inputs.cpu(), labels.cpu()
    selected = labels != -100
    assert_equal(labels[selected], ids[selected],
                 name=msg("pretraining.labels_selected_positions_original"))
    assert_equal(inputs[~selected], ids[~selected],
                 name=msg("pretraining.inputs_positions_not_selected"))
    if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= vocab_size):
        raise AssertionError(msg("pretraining.ids_outside_0_inputs", vocab_size=vocab_size))
    check_whole_words(text, labels, "whole_word_mask_tokens")
    k, n = word_counts(text, labels)
    if (p == 1.0 and k != n) or (p == 0.0 and k != 0):
        raise AssertionError(msg("pretraining.mlm_probability_words_selected", p=p, k=k, n=n))


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
def test_whole_word_mask_token_of_no_word_is_never_selected(student, device):
    """A token whose word_ids entry is None belongs to no word, even where special_tokens_mask is 0:
    at mlm_probability 1 every word is selected and those tokens never are."""
    x = torch.tensor([[CLS, 7, 8, 9, 10, 11, SEP], [12, 13, 14, 15, 16, 17, 18]])
    special = torch.tensor([[1, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]])
    word_ids = [[None, 0, 0, None, 1, None, None], [None, 0, None, 1, 1, None, 2]]
    _, labels = student_wwm(student, device, WwmText("no-word", x, word_ids, special, 50, MASK, None), 1.0, 3)
    in_word = torch.tensor([[w is not None for w in row] for row in word_ids])
    assert_equal((labels.cpu() != -100), in_word, name=msg("pretraining.selected_at_p", p=1.0))


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
def test_whole_word_mask_special_token_with_a_word_id_is_never_selected(student, device):
    """Tokens with a set special_tokens_mask belong to no word even when word_ids gives them a
    number: at mlm_probability 1 every other piece of that word is selected, they never are."""
    x = torch.tensor([[CLS, 7, 8, 9, 10, SEP]])
    special = torch.tensor([[1, 0, 1, 0, 0, 1]])
    word_ids = [[None, 0, 0, 1, 1, 1]]                  # position 2 (special) and 5 (SEP) carry word ids
    _, labels = student_wwm(student, device, WwmText("special-with-id", x, word_ids, special, 50, MASK, None), 1.0, 5)
    assert_equal((labels.cpu() != -100), torch.tensor([[False, True, False, True, True, False]]),
                 name=msg("pretraining.selected_special_with_word_id"))


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
@pytest.mark.parametrize("p", [1.0, 0.0])
def test_whole_word_mask_one_row_without_a_batch_axis(student, device, p):
    """input_ids of shape (L,) with word_ids a flat list: outputs of shape (L,); at mlm_probability 1
    every token of a word is selected, at 0 none."""
    x = torch.tensor([CLS, 7, 8, 9, 10, 11, SEP, PAD])
    special = torch.tensor([1, 0, 0, 0, 0, 0, 1, 1])
    word_ids = [None, 0, 0, 1, 2, 2, None, None]
    inputs, labels = student_wwm(student, device, WwmText("one-row", x, word_ids, special, 50, MASK, None), p, 4)
    assert_shape(inputs, (8,), "whole_word_mask_tokens(...)[0]")
    assert_shape(labels, (8,), "whole_word_mask_tokens(...)[1]")
    want = torch.tensor([w is not None for w in word_ids]) & (p == 1.0)
    assert_equal((labels.cpu() != -100), want, name=msg("pretraining.selected_at_p", p=p))


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
def test_whole_word_mask_same_generator_seed_same_result(student, device, wwm_english):
    text = wwm_english
    first = student_wwm(student, device, text, 0.15, 5)
    student.seed(123)
    second = student_wwm(student, device, text, 0.15, 5)
    for a, b, what in zip(first, second, ("inputs", "labels")):
        assert_equal(b, a, name=msg("pretraining.two_calls_generators_seeded", what=what))


def two_piece_rows(rows: int = 30, n_words: int = 12):
    """[CLS] 12 two-piece words [SEP] in each of 30 rows, the words numbered 0..11 in every row:
    (input_ids, special_tokens_mask, word_ids)."""
    ids = torch.full((rows, 2 * n_words + 2), PAD, dtype=torch.long)
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[:, 1:-1] = torch.from_numpy(np.random.default_rng(5).integers(5, 50, size=(rows, 2 * n_words)))
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    word_ids = [[None] + [w for w in range(n_words) for _ in range(2)] + [None] for _ in range(rows)]
    return ids, special, word_ids


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
def test_whole_word_mask_consumes_the_generator(student, device):
    """Two calls with ONE generator differ (re-seeding or copying the generator repeats the draw):
    30 rows of 12 two-piece words at mlm_probability 0.5 coincide with probability 2^-360."""
    ids, special, word_ids = two_piece_rows()
    gen = remote_generator(student, device, 13)
    out = [unpack_masked(student.whole_word_mask_tokens(ids.to(device), word_ids, MASK, 50, special.to(device),
                                                        mlm_probability=0.5, generator=gen),
                         name="whole_word_mask_tokens") for _ in range(2)]
    if torch.equal(out[0][1].cpu(), out[1][1].cpu()):
        raise AssertionError(msg("pretraining.generator_not_consumed", name="whole_word_mask_tokens"))


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
def test_whole_word_mask_word_numbers_are_per_row(student, device):
    """Word numbers name words within one row: word 3 of row 0 and word 3 of row 1 are two words
    with a coin each.  30 rows numbered alike, mlm_probability 0.5: under the contract all 30 rows
    select the same words with probability 2^(-12 * 29); one coin per number for the whole batch
    (a flattened batch) makes every row alike."""
    ids, special, word_ids = two_piece_rows()
    _, labels = unpack_masked(student.whole_word_mask_tokens(
        ids.to(device), word_ids, MASK, 50, special.to(device), mlm_probability=0.5,
        generator=remote_generator(student, device, 14)), name="whole_word_mask_tokens")
    sel = (labels.cpu() != -100)
    if bool((sel == sel[:1]).all()):
        raise AssertionError(msg("pretraining.wwm_rows_alike", rows=sel.shape[0]))


@pytest.mark.judges("whole_word_mask_tokens", stage=2, item="whole_word")
def test_whole_word_mask_random_ids_reach_both_ends_of_the_vocabulary(student, device):
    """vocab_size = 3, every token a word of its own: random ids are drawn from [0, 3), 0 and 2 included."""
    x, special, word_ids = range_end_batch()
    inputs, _ = unpack_masked(student.whole_word_mask_tokens(
        x.to(device), word_ids, 1, 3, special.to(device), mlm_probability=1.0,
        generator=remote_generator(student, device, 18)), name="whole_word_mask_tokens")
    check_range_ends(inputs, "whole_word_mask_tokens")


@pytest.mark.judges("whole_word_mask_tokens", stage=0, item="contract")
@pytest.mark.parametrize("word_ids", [[[None, 0, None]], [[None, 0, 1, 1, None]], [None, 0, 1, None],
                                      [[None, 0, 1, None], [None]]],
                         ids=["shorter", "longer", "not a batch", "ragged"])
def test_whole_word_mask_rejects_word_ids_of_another_shape(student, word_ids):
    x = torch.tensor([[CLS, 7, 8, SEP]])
    with pytest.raises(ValueError, match="word_ids"):
        student.whole_word_mask_tokens(x, word_ids, MASK, 50, torch.tensor([[1, 0, 0, 1]]))


@pytest.mark.judges("whole_word_mask_tokens", stage=0, item="contract")
@pytest.mark.parametrize("name, p, change", BAD_MASK_ARGUMENTS)
def test_whole_word_mask_rejects_bad_arguments(student, name, p, change):
    x = torch.tensor([[CLS, 7, 8, 9, SEP], [CLS, 10, 11, SEP, PAD]])
    special = torch.tensor([[1, 0, 0, 0, 1], [1, 0, 0, 1, 1]])
    word_ids = [[None, 0, 0, 1, None], [None, 0, 1, None, None]]
    with pytest.raises(ValueError, match=name):
        student.whole_word_mask_tokens(x, word_ids, MASK, 50, bad_special(special, change), mlm_probability=p)


@pytest.mark.judges("whole_word_mask_tokens", stage=3, item="whole_word")
@pytest.mark.parametrize("language", ["English", "Japanese"])
def test_whole_word_mask_word_selection_rate_matches_hf(student, device, wwm_english, wwm_japanese, language):
    """Each word is selected with probability 0.15, whatever its number of pieces, and then every
    piece of it.  English: 115 840 words (interval 0.143..0.157) and 2 240 words of 2+ pieces
    (0.101..0.204); Japanese: 31 300 words (0.136..0.164) and 7 310 of 2+ pieces (0.122..0.179).  Selecting pieces one by one and then completing their words gives a
    2-piece word 1 - 0.85^2 = 0.28; a per-piece selection without completion fails the all-or-none
    check at once.  Words are selected independently: of the disjoint pairs of neighbouring words
    (words 0 and 1 of a row, 2 and 3, ...), both are selected with probability 0.15^2 = 0.0225
    (English 55 000 pairs, interval 0.018..0.027; Japanese 14 960, 0.015..0.031); one coin
    for a whole row gives 0.15."""
    text = wwm_english if language == "English" else wwm_japanese
    p = 0.15
    # English: the keyword left out (the default is 0.15); Japanese: mlm_probability=0.15 given
    inputs, labels = student_wwm(student, device, text, None if language == "English" else p, 31)
    check_whole_words(text, labels, f"whole_word_mask_tokens ({language})")
    _, hf_labels = hf_whole_word(text, p, 31)
    for multi, what in ((False, msg("pretraining.selected_share_words", language=language)),
                        (True, msg("pretraining.selected_share_words_two", language=language))):
        k, n = word_counts(text, labels, multi)
        hf_k, _ = word_counts(text, hf_labels, multi)
        check_count(what, k, n, p, hf_count=hf_k)
    k, n = pair_counts(text, labels)
    check_count(msg("pretraining.selected_share_word_pairs", language=language), k, n, p * p,
                hf_count=pair_counts(text, hf_labels)[0])


@pytest.mark.judges("whole_word_mask_tokens", stage=3, item="whole_word")
def test_whole_word_mask_80_10_10_per_piece(student, device, wwm_japanese):
    """Of the selected pieces 80 % become [MASK], 10 % a random id, 10 % stay, each piece on its own
    coin.  Japanese text (V = 2152), mlm_probability 0.5: ~20 800 selected pieces, intervals
    0.781..0.819 ([MASK]) and 0.086..0.114 (random, kept), so 80/20/0 or 90/5/5 are far out.  Per
    piece, both of the first two pieces of a selected multi-piece word show [MASK] with probability
    q^2 (q = 0.8 + 0.1 / V, 0.640; ~3 600 words, interval 0.585..0.694); one decision per word
    gives q (0.80)."""
    text = wwm_japanese
    V = text.vocab_size
    inputs, labels = student_wwm(student, device, text, 0.5, 8)
    hf_inputs, hf_labels = hf_whole_word(text, 0.5, 8, split_80_10_10=True)
    mask_id = text.mask_id

    def counts(inp, lab):
        inp, lab = inp.cpu(), lab.cpu()
        sel = (lab != -100) & ~text.special.bool()
        masked = sel & (inp == mask_id)
        kept = sel & (inp == text.ids)
        both = n_multi = 0
        for r, pos in word_table(text):
            if len(pos) >= 2 and bool(sel[r, pos[0]]):
                n_multi += 1
                both += bool(masked[r, pos[0]]) and bool(masked[r, pos[1]])
        return dict(selected=int(sel.sum()), masked=int(masked.sum()), kept=int(kept.sum()),
                    other=int((sel & ~masked & ~kept).sum()), both=both, multi=n_multi)

    got, ref = counts(inputs, labels), counts(hf_inputs, hf_labels)
    q = 0.8 + 0.1 / V
    for key, p, what in (("masked", q, msg("pretraining.share_selected_pieces_replaced")),
                         ("other", 0.1 * (V - 2) / V, msg("pretraining.share_selected_pieces_replaced_2")),
                         ("kept", 0.1 + 0.1 / V, msg("pretraining.share_selected_pieces_left"))):
        check_count(what, got[key], got["selected"], p, hf_count=ref[key], hf_n=ref["selected"],
                    hf_key="pretraining.hf_whole_word_split_restored")
    check_count(msg("pretraining.share_selected_multi_piece"),
                got["both"], got["multi"], q * q, hf_count=ref["both"], hf_n=ref["multi"],
                hf_key="pretraining.hf_whole_word_split_restored")


# ------------------------------------------------------------------ the domain corpus

TOKEN_RE = re.compile(r"[A-Za-z]+|\d+|\S")   # English words; every other character (kanji, kana) alone


def load_documents() -> list[list[str]]:
    docs, cur = [], []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if line.strip():
            cur.append(line.strip())
        elif cur:
            docs.append(cur)
            cur = []
    if cur:
        docs.append(cur)
    return docs


class TinyVocab:
    """A word (English) / character (Japanese) vocabulary built from the corpus."""

    def __init__(self, sentences):
        counts = collections.Counter(w for s in sentences for w in self.words(s))
        self.itos = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(counts)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def words(s):
        return [w.lower() for w in TOKEN_RE.findall(s)]

    def ids(self, s, max_words):
        return [self.stoi.get(w, UNK) for w in self.words(s)[:max_words]]

    def __len__(self):
        return len(self.itos)


@pytest.fixture(scope="module")
def corpus():
    docs = load_documents()
    sentences = [s for d in docs for s in d]
    assert len(sentences) >= 200 and len(set(sentences)) == len(sentences), msg("pretraining.corpus_sentences_unique")
    return docs, TinyVocab(sentences)


def encode_single(vocab, sentences, max_words=30):
    """[CLS] s [SEP] [PAD]... -> input_ids, attention_mask, special_tokens_mask."""
    seqs = [[CLS, *vocab.ids(s, max_words), SEP] for s in sentences]
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), PAD, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
    attn = (ids != PAD).long()
    special = ((ids == CLS) | (ids == SEP) | (ids == PAD)).long()
    return ids, attn, special


# ------------------------------------------------------------------ make_nsp_examples

def normalize_examples(examples, name="make_nsp_examples"):
    if not isinstance(examples, list):
        raise AssertionError(msg("pretraining.return_list_got", name=name,
                                 examples_type=type(examples).__name__))
    out = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, (tuple, list)) or len(ex) != 3:
            raise AssertionError(msg("pretraining.example_expected_tuple_sentence", i=i, ex=ex))
        a, b, label = ex
        if not (isinstance(a, str) and isinstance(b, str)):
            raise AssertionError(msg("pretraining.example_sentences_str_got", i=i, a_type=type(a).__name__,
                                     b_type=type(b).__name__))
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise AssertionError(msg("pretraining.example_label_int_next", i=i, label=label))
        if int(label) not in (IS_NEXT, NOT_NEXT):
            raise AssertionError(msg("pretraining.example_label_neither_next", i=i, label=label))
        out.append((a, b, int(label)))
    return out


def check_nsp(examples, documents):
    owner = {s: (d, i) for d, doc in enumerate(documents) for i, s in enumerate(doc)}
    pairs = [(doc[i], doc[i + 1]) for doc in documents for i in range(len(doc) - 1)]
    n = len(pairs)
    if len(examples) != n:
        raise AssertionError(msg("pretraining.expected_one_example_per", n=n, n_examples=len(examples)))
    got_a = collections.Counter(a for a, _, _ in examples)
    want_a = collections.Counter(a for a, _ in pairs)
    if got_a != want_a:
        extra = list((got_a - want_a).elements())[:3]
        missing = list((want_a - got_a).elements())[:3]
        raise AssertionError(msg("pretraining.sentence_every_sentence_has", extra=extra, missing=missing))
    for k, (a, b, label) in enumerate(examples):
        d, i = owner[a]
        if b not in owner:
            raise AssertionError(msg("pretraining.example_sentence_b_not", k=k, b=b))
        if label == IS_NEXT and b != documents[d][i + 1]:
            raise AssertionError(msg("pretraining.example_labelled_next_0", k=k, a=a, b=b))
        if label == NOT_NEXT and owner[b][0] == d:
            raise AssertionError(msg("pretraining.example_labelled_not_next", k=k, a=a, b=b))
    n_not = sum(label == NOT_NEXT for _, _, label in examples)
    if n_not != n // 2:
        raise AssertionError(msg("pretraining.exactly_n_2_examples", half=n // 2, n=n, n_not=n_not))


def remote_rng(student, kind: str, seed: int):
    if kind == "random":
        return student.build("random.Random", seed)
    return student.build("numpy.random.default_rng", seed)


@st.composite
def nsp_documents(draw, fewest=0):
    """2-6 documents of ``fewest``-7 sentences, at least two of them not empty (so every NotNext
    example has a document to draw from: the contract says nothing of documents that leave none)."""
    lengths = draw(st.lists(st.integers(fewest, 7), min_size=2, max_size=6).filter(
        lambda ns: sum(n > 0 for n in ns) >= 2))
    return [[f"doc{d} sentence{i}." for i in range(n)] for d, n in enumerate(lengths)]


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp")
@graded(max_examples=25)
@given(documents=nsp_documents(fewest=2), kind=st.sampled_from(["random", "numpy"]), seed=st.integers(0, 2**31 - 1))
def test_nsp_examples_pairs_and_half_not_next(student, documents, kind, seed):
    """One example per consecutive pair; IS_NEXT pairs are the real next sentence; exactly n // 2 are
    NOT_NEXT with sentence_b from another document; with random.Random and NumPy Generators.
    Documents of two sentences or more here: the empty and one-sentence ones are the next test's."""
    examples = normalize_examples(student.make_nsp_examples(documents, remote_rng(student, kind, seed)))
    check_nsp(examples, documents)


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp_documents")
@graded(max_examples=25)
@given(documents=nsp_documents(), kind=st.sampled_from(["random", "numpy"]), seed=st.integers(0, 2**31 - 1))
def test_nsp_examples_any_documents(student, documents, kind, seed):
    """As above with empty and one-sentence documents among the others; the caller's documents come
    back as they were."""
    examples = normalize_examples(student.make_nsp_examples(documents, remote_rng(student, kind, seed)))
    assert_not_mutated(student, "documents")
    check_nsp(examples, documents)


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp_documents")
def test_nsp_examples_empty_and_one_sentence_documents(student):
    """Empty documents and one-sentence documents give no pair; a one-sentence document is still a
    different document, so it may give sentence_b of a NotNext example (here the only one that can)."""
    cases = [
        [["a0.", "a1.", "a2.", "a3.", "a4."], [], ["b0."]],        # 4 pairs, 2 NotNext, sentence_b = "b0."
        [[], ["a0.", "a1."], ["b0."], []],                         # 1 pair, 0 NotNext
        [["a0."], ["b0."], ["c0."]],                               # no pair at all: []
        [["a0.", "a1.", "a2."], ["b0.", "b1.", "b2."], [], ["c0."]],
    ]
    for documents in cases:
        for kind in ("random", "numpy"):
            got = normalize_examples(student.make_nsp_examples(documents, remote_rng(student, kind, 3)))
            assert_not_mutated(student, "documents")
            try:
                check_nsp(got, documents)
            except AssertionError as exc:
                raise AssertionError(msg("pretraining.nsp_case", documents=documents, kind=kind, error=exc)) from None


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp_documents")
def test_nsp_examples_with_300_documents(student):
    """300 documents, 298 of them empty: document numbers above 256 compared with `is not` (object
    identity) no longer agree with !=, and a document would give its own sentences as NotNext
    (11 NotNext examples here: each would come from its own document with probability 1/2)."""
    documents = [[] for _ in range(298)] + [[f"a{i}." for i in range(12)], [f"b{i}." for i in range(12)]]
    for kind in ("random", "numpy"):
        got = normalize_examples(student.make_nsp_examples(documents, remote_rng(student, kind, 5)))
        try:
            check_nsp(got, documents)
        except AssertionError as exc:
            raise AssertionError(msg("pretraining.nsp_case", documents="[[]] * 298 + [12 sentences, 12 sentences]",
                                     kind=kind, error=exc)) from None


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp_documents")
def test_nsp_examples_consume_the_rng(student, corpus):
    """Two calls with ONE rng continue its stream: the NotNext subsets differ (an rng that is copied or
    re-seeded inside repeats them; equal by chance with probability 1 / C(205, 102) ~ 1e-60)."""
    docs, _ = corpus
    for kind in ("random", "numpy"):
        rng = remote_rng(student, kind, 21)
        e1, e2 = (normalize_examples(student.make_nsp_examples(docs, rng)) for _ in range(2))
        if sorted(a for a, _, label in e1 if label == NOT_NEXT) == sorted(a for a, _, label in e2 if label == NOT_NEXT):
            raise AssertionError(msg("pretraining.rng_not_consumed", kind=kind))


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp")
def test_nsp_examples_not_next_from_other_document_on_corpus(student, corpus):
    """On the medical corpus (one big document would often give a same-document 'random' sentence
    if sentence_b were drawn from all sentences)."""
    docs, _ = corpus
    documents = [[s for d in docs[:-3] for s in d], *docs[-3:]]   # one large document, three small ones
    for kind, seed in (("random", 3), ("numpy", 3)):
        check_nsp(normalize_examples(student.make_nsp_examples(documents, remote_rng(student, kind, seed))),
                  documents)


@pytest.mark.judges("make_nsp_examples", stage=2, item="nsp_documents")
def test_nsp_examples_choice_made_with_rng(student, corpus):
    """Same rng seed, same examples (whatever the global seed); another seed, another NOT_NEXT subset."""
    docs, _ = corpus
    for kind in ("random", "numpy"):
        student.seed(0)
        e1 = normalize_examples(student.make_nsp_examples(docs, remote_rng(student, kind, 7)))
        student.seed(1)
        e2 = normalize_examples(student.make_nsp_examples(docs, remote_rng(student, kind, 7)))
        if e1 != e2:
            raise AssertionError(msg("pretraining.two_calls_rngs_seeded", kind=kind))
        e3 = normalize_examples(student.make_nsp_examples(docs, remote_rng(student, kind, 8)))
        chosen = lambda ex: sorted(a for a, _, label in ex if label == NOT_NEXT)  # noqa: E731
        # for a uniform choice the chance that two seeds pick the same subset is 1 / C(205, 102) ~ 1e-60
        if chosen(e1) == chosen(e3):
            raise AssertionError(msg("pretraining.rngs_seeded_7_8", kind=kind))


@pytest.mark.judges("IS_NEXT", "NOT_NEXT", stage=0, item="contract")
def test_nsp_label_constants_follow_hf(student):
    """IS_NEXT = 0 and NOT_NEXT = 1, as BertForPreTraining reads next_sentence_label (the chapter
    prints the opposite)."""
    if student.IS_NEXT is None and student.NOT_NEXT is None:      # the stub's placeholders
        raise NotStarted(say("not_started"))
    assert_equal(student.IS_NEXT, IS_NEXT, name="IS_NEXT")
    assert_equal(student.NOT_NEXT, NOT_NEXT, name="NOT_NEXT")


@pytest.mark.judges("make_nsp_examples", stage=0, item="contract")
@pytest.mark.parametrize("documents", [[["only one document.", "with two sentences."]], []],
                         ids=["one document", "no document"])
def test_nsp_examples_reject_fewer_than_two_documents(student, documents):
    with pytest.raises(ValueError, match="documents"):
        student.make_nsp_examples(documents, student.build("random.Random", 0))


@pytest.mark.judges("IS_NEXT", "NOT_NEXT", "make_nsp_examples", stage=3, item="nsp")
def test_nsp_labels_follow_hf_bert_for_pretraining(student, corpus):
    """IS_NEXT = 0 and NOT_NEXT = 1 as HuggingFace's BertForPreTraining reads next_sentence_label;
    a small BertForPreTraining computes its NSP loss on the examples' labels."""
    from transformers import BertForPreTraining

    docs, vocab = corpus
    examples = normalize_examples(student.make_nsp_examples(docs, remote_rng(student, "random", 11)))
    assert_equal(student.IS_NEXT, IS_NEXT, name="IS_NEXT")
    assert_equal(student.NOT_NEXT, NOT_NEXT, name="NOT_NEXT")
    check_nsp(examples, docs)
    seqs, types = [], []
    for a, b, _ in examples:
        ia, ib = vocab.ids(a, 24), vocab.ids(b, 24)
        seqs.append([CLS, *ia, SEP, *ib, SEP])
        types.append([0] * (len(ia) + 2) + [1] * (len(ib) + 1))
    L = max(map(len, seqs))
    ids = torch.tensor([s + [PAD] * (L - len(s)) for s in seqs])
    tt = torch.tensor([t + [0] * (L - len(t)) for t in types])
    attn = (ids != PAD).long()
    labels = torch.tensor([label for _, _, label in examples])
    config = hf.small_config(vocab_size=len(vocab), max_position_embeddings=64)
    model = hf.seeded(lambda: BertForPreTraining(config), 0).eval()
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[:, 1] = ids[:, 1]                    # one MLM target per row, so the total loss is defined
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=attn, token_type_ids=tt, labels=mlm_labels,
                    next_sentence_label=labels)
        mlm = torch.nn.functional.cross_entropy(out.prediction_logits.reshape(-1, len(vocab)), mlm_labels.reshape(-1))
        nsp = torch.nn.functional.cross_entropy(out.seq_relationship_logits, labels)
    assert_finite(out.loss, msg("pretraining.bertforpretraining_loss"))
    assert_close(out.loss, mlm + nsp, atol=1e-5,
                 name=msg("pretraining.bertforpretraining_loss_mlm_nsp"))


# ------------------------------------------------------------------ mlm_train_step

def mlm_batch(ids, attn, special, seed, device, reference, vocab_size):
    """A batch masked by the trusted reference mask_tokens (this part tests only mlm_train_step);
    at least one label per batch so the loss is defined."""
    inputs, labels = reference.mask_tokens(ids, MASK, vocab_size, special,
                                           generator=torch.Generator().manual_seed(seed))
    if not (labels != -100).any():
        labels[0, 1], inputs[0, 1] = ids[0, 1], MASK
    return {"input_ids": inputs.to(device), "attention_mask": attn.to(device), "labels": labels.to(device)}


SMALL_V = 100


class MlmSetup:
    """What the MLM-step tests share (a short repr: hypothesis prints it in failure reports)."""

    def __init__(self, config, model, reference, device):
        self.config, self.model, self.reference, self.device = config, model, reference, device

    def __repr__(self):
        return "<small BertForMaskedLM>"


@pytest.fixture(scope="module")
def small_mlm(reference, device):
    from transformers import BertForMaskedLM

    config = hf.small_config(vocab_size=SMALL_V)
    return MlmSetup(config, hf.seeded(lambda: BertForMaskedLM(config), 1), reference, device)


def random_mlm_batch(rng, rows, length, seed, device, reference):
    ids = torch.from_numpy(rng.integers(5, SMALL_V, size=(rows, length)))
    n_real = rng.integers(1, length - 1, size=rows)
    n_real[0] = length - 2                                     # the longest row fills the batch
    for r, n in enumerate(n_real):
        ids[r, 0], ids[r, n + 1], ids[r, n + 2:] = CLS, SEP, PAD
    attn = (ids != PAD).long()
    special = ((ids == CLS) | (ids == SEP) | (ids == PAD)).long()
    return mlm_batch(ids, attn, special, seed, device, reference, SMALL_V)


def student_model(student, config, model, device):
    m = hf.in_sandbox(student, "transformers.BertForMaskedLM", config, model.state_dict(), train=False)
    return m.to(str(device))


def compare_state(got: dict, model, when: str):
    want = model.state_dict()
    if not isinstance(got, dict) or set(got) != set(want):
        raise AssertionError(msg("pretraining.model_state_dict_keys", when=when))
    for k, w in want.items():
        # float32 parameters after an SGD step; 1-thread vs multi-thread sums differ by ~1e-7, a
        # missing/extra step or gradient moves them by lr * grad, far above 1e-5
        assert_close(got[k], w, atol=1e-5, name=msg("pretraining.parameter", when=when, k=k))


@pytest.mark.judges("mlm_train_step", stage=3, item="mlm_step")
@graded(max_examples=6, phases=[Phase.explicit, Phase.generate])   # no shrinking: each example trains
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 4), length=st.integers(4, 16))
def test_mlm_train_step_matches_reference_step(student, small_mlm, seed, rows, length):
    """Two SGD steps (lr 0.1) from the same weights give the same losses and the same parameters as
    the reference: gradients zeroed every step, labels and attention mask used, optimizer stepped."""
    config, base, reference, device = small_mlm.config, small_mlm.model, small_mlm.reference, small_mlm.device
    rng = np.random.default_rng(seed)
    b1 = random_mlm_batch(rng, rows, length, seed, device, reference)
    b2 = random_mlm_batch(rng, rows, length, seed + 1, device, reference)
    model = student_model(student, config, base, device)
    opt = student.build("torch.optim.SGD", model.parameters(), lr=0.1)
    ref = copy.deepcopy(base).to(device)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for step, batch in enumerate((b1, b2), 1):
        loss = student.mlm_train_step(model, batch, opt)
        want = reference.mlm_train_step(ref, batch, ref_opt)
        if not isinstance(loss, float):
            raise AssertionError(msg("pretraining.step_mlm_train_step", step=step,
                                     loss_type=type(loss).__name__))
        # the loss is computed before the step from equal weights: float32 noise only
        assert_close(np.asarray(loss), np.asarray(want), atol=1e-5,
                     name=msg("pretraining.step_returned_loss", step=step))
        compare_state(model.state_dict(), ref, msg("pretraining.after_step", step=step))


def padded_mlm_batch(reference, device):
    """4 rows of 14 tokens of which 2-12 are real, the rest [PAD] (id 0), 17 of them masked."""
    ids = torch.from_numpy(np.random.default_rng(0).integers(5, SMALL_V, size=(4, 14)))
    for r, n in enumerate((12, 2, 5, 8)):
        ids[r, 0], ids[r, n + 1], ids[r, n + 2:] = CLS, SEP, PAD
    attn = (ids != PAD).long()
    special = ((ids == CLS) | (ids == SEP) | (ids == PAD)).long()
    inputs, labels = reference.mask_tokens(ids, MASK, SMALL_V, special, mlm_probability=0.5,
                                           generator=torch.Generator().manual_seed(0))
    return {"input_ids": inputs.to(device), "attention_mask": attn.to(device), "labels": labels.to(device)}


def context_mlm(student, device):
    """A small BertForMaskedLM whose initial weights (initializer_range 0.2, 10x BERT's) make the
    context matter: on ``padded_mlm_batch`` its loss is 5.778 with the attention mask and 5.552
    without (0.23 apart; with BERT's 0.02 the two differ by only ~1e-4).  Returns (local, remote)."""
    from transformers import BertForMaskedLM

    config = hf.small_config(vocab_size=SMALL_V, initializer_range=0.2)
    local = hf.seeded(lambda: BertForMaskedLM(config), 1).eval()
    return local, student_model(student, config, local, device)


@pytest.mark.judges("mlm_train_step", stage=2, item="mlm_step")
def test_mlm_train_step_uses_the_attention_mask(student, reference, device):
    """The loss is BertForMaskedLM's with the batch's attention_mask: padding never takes part in
    attention.  The returned loss is the one computed before the optimizer's step."""
    local, model = context_mlm(student, device)
    opt = student.build("torch.optim.SGD", model.parameters(), lr=0.1)
    batch = padded_mlm_batch(reference, device)
    local = local.to(device)
    with torch.no_grad():     # small_config has no dropout: train and eval mode give the same loss
        with_mask = local(**batch).loss.item()
        without = local(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()
    assert abs(with_mask - without) > 1e-1, self_check_failed("attention mask")
    loss = as_float(student.mlm_train_step(model, batch, opt), "mlm_train_step(...)", plain=True)
    # the same weights and batch: float32 noise only (about 1e-6 on 5.8); the unmasked loss is 0.23 away
    if abs(loss - without) <= 1e-5:
        raise AssertionError(msg("pretraining.loss_without_attention_mask", loss=loss, want=with_mask, without=without))
    assert_close(np.asarray(loss), np.asarray(with_mask), atol=1e-5, name=msg("pretraining.returned_loss_before_step"))


@pytest.mark.judges("mlm_train_step", stage=2, item="mlm_step")
def test_mlm_train_step_does_not_modify_the_batch(student, reference, device, small_mlm):
    """batch (a dict of tensors) comes back as it was: no key popped or added, no tensor changed."""
    model = student_model(student, small_mlm.config, small_mlm.model, device)
    opt = student.build("torch.optim.SGD", model.parameters(), lr=0.1)
    student.mlm_train_step(model, padded_mlm_batch(reference, device), opt)
    assert_not_mutated(student, "batch")


@pytest.mark.judges("mlm_train_step", stage=2, item="mlm_step")
def test_mlm_train_step_sets_train_mode_and_returns_float(student, reference, device, small_mlm):
    """Handed over in eval mode, the model is in train mode after the step; the loss is a Python float."""
    model = student_model(student, small_mlm.config, small_mlm.model, device)    # eval mode
    opt = student.build("torch.optim.SGD", model.parameters(), lr=0.1)
    batch = random_mlm_batch(np.random.default_rng(5), 3, 12, 5, device, reference)
    loss = student.mlm_train_step(model, batch, opt)
    if not isinstance(loss, float):
        raise AssertionError(msg("pretraining.mlm_train_step_return", loss_type=type(loss).__name__))
    if model.training is not True:
        raise AssertionError(msg("pretraining.model_still_eval_mode"))


@pytest.mark.judges("mlm_train_step", stage=3, item="mlm_step")
def test_mlm_train_step_loss_falls_on_medical_corpus(student, reference, device, corpus):
    """Continued pre-training (ドメイン適応) on data/medical_corpus.txt: 60 AdamW steps on batches of 16
    masked sentences lower the MLM loss on a fixed masked evaluation set (the whole corpus) by at
    least 0.5 nats (the reference: from 7.11, about ln V, to 5.87).  A step that does not update the
    weights leaves it exactly where it was."""
    from transformers import BertForMaskedLM

    docs, vocab = corpus
    sentences = [s for d in docs for s in d]
    config = hf.small_config(vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                             max_position_embeddings=64)
    base = hf.seeded(lambda: BertForMaskedLM(config), 3)
    model = student_model(student, config, base, device)
    opt = student.build("torch.optim.AdamW", model.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    losses = []
    for step in range(60):
        pick = rng.choice(len(sentences), size=16, replace=False)
        ids, attn, special = encode_single(vocab, [sentences[i] for i in pick])
        batch = mlm_batch(ids, attn, special, 1000 + step, device, reference, len(vocab))
        loss = student.mlm_train_step(model, batch, opt)
        if not isinstance(loss, float) or not math.isfinite(loss):
            raise AssertionError(msg("pretraining.step_loss_not_finite", step=step, loss=loss))
        losses.append(loss)

    ids, attn, special = encode_single(vocab, sentences)
    ev = mlm_batch(ids, attn, special, 7, "cpu", reference, len(vocab))
    after = copy.deepcopy(base)
    after.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    with torch.no_grad():
        before_loss = base.eval()(**ev).loss.item()
        after_loss = after.eval()(**ev).loss.item()
    if not after_loss <= before_loss - 0.5:
        raise AssertionError(msg("pretraining.mlm_loss_masked_corpus", before_loss=before_loss,
                                 after_loss=after_loss, first=np.round(losses[:3], 3).tolist(),
                                 last=np.round(losses[-3:], 3).tolist()))
