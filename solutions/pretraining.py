"""Reference solution: BERT pre-training data and one MLM step (chapter 3.6, exercise 3, 3.9)."""
import random

import numpy as np
import torch

IS_NEXT = 0     # HuggingFace BertForPreTraining: next_sentence_label 0 = B follows A
NOT_NEXT = 1    # 1 = B is a random sentence (the chapter prints the opposite)


def _checked_special(input_ids, vocab_size, special_tokens_mask, mlm_probability):
    """The checks mask_tokens and whole_word_mask_tokens share; special_tokens_mask as a bool tensor."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.is_complex():
        raise TypeError(f"input_ids must be an integer torch.Tensor, got {type(input_ids).__name__}")
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if not 0.0 <= mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability!r}")
    special = torch.as_tensor(special_tokens_mask, device=input_ids.device).bool()
    if special.shape != input_ids.shape:
        raise ValueError(f"special_tokens_mask has shape {tuple(special.shape)}, "
                         f"expected input_ids' shape {tuple(input_ids.shape)}")
    return special


def mask_tokens(input_ids, mask_token_id, vocab_size, special_tokens_mask, mlm_probability=0.15,
                generator=None):
    special = _checked_special(input_ids, vocab_size, special_tokens_mask, mlm_probability)
    dev = generator.device if generator is not None else input_ids.device

    def bernoulli(p):  # an independent coin per position, drawn on the generator's device
        return torch.bernoulli(torch.full(input_ids.shape, p, device=dev), generator=generator).bool()

    inputs, labels = input_ids.clone(), input_ids.clone()
    prob = torch.full(input_ids.shape, float(mlm_probability), device=dev)
    prob.masked_fill_(special.to(dev), 0.0)
    selected = torch.bernoulli(prob, generator=generator).bool()             # ~15 % of real tokens
    replaced = bernoulli(0.8) & selected                                     # 80 % -> [MASK]
    randomized = bernoulli(0.5) & selected & ~replaced                       # half the rest -> random id
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=dev)
    selected, replaced, randomized = (t.to(input_ids.device) for t in (selected, replaced, randomized))
    labels[~selected] = -100                                                 # loss only where selected
    inputs[replaced] = mask_token_id
    inputs[randomized] = random_ids.to(input_ids.device, input_ids.dtype)[randomized]
    return inputs, labels                                                    # the other 10 % stay


def _randrange(rng, n):
    if isinstance(rng, random.Random):
        return rng.randrange(n)
    return int(rng.integers(n))


def _sample(rng, n, k):
    if isinstance(rng, random.Random):
        return rng.sample(range(n), k)
    return [int(i) for i in rng.choice(n, size=k, replace=False)]


def make_nsp_examples(documents, rng):
    if not isinstance(rng, (random.Random, np.random.Generator)):
        raise TypeError(f"rng must be a random.Random or a numpy.random.Generator, got {type(rng).__name__}")
    if not isinstance(documents, (list, tuple)) or len(documents) < 2:
        raise ValueError(f"documents must be a list of at least two documents, got {documents!r:.200}")
    pairs = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]
    n = len(pairs)
    not_next = set(_sample(rng, n, n // 2))                                 # exactly n // 2 NotNext
    examples = []
    for k, (d, i) in enumerate(pairs):
        a = documents[d][i]
        if k not in not_next:
            examples.append((a, documents[d][i + 1], IS_NEXT))
            continue
        others = [e for e, doc in enumerate(documents) if e != d and len(doc) > 0]
        if not others:
            raise ValueError(f"documents: document {d} has no other non-empty document to draw from")
        other = documents[others[_randrange(rng, len(others))]]
        examples.append((a, other[_randrange(rng, len(other))], NOT_NEXT))
    return examples


def mlm_train_step(model, batch, optimizer):
    model.train()
    optimizer.zero_grad()
    keys = ("input_ids", "attention_mask", "token_type_ids", "labels")
    loss = model(**{k: batch[k] for k in keys if k in batch}).loss          # CE over labels != -100
    loss.backward()
    optimizer.step()
    return loss.item()


def _word_index(word_ids, shape, device):
    """word_ids (nested lists / tuples / a tensor, None or a negative number = no word) -> LongTensor
    of ``shape`` with -1 where there is no word."""
    if isinstance(word_ids, torch.Tensor):
        wid = word_ids.to(device=device, dtype=torch.long)
    else:
        def fill(x):
            if isinstance(x, (list, tuple)):
                return [fill(v) for v in x]
            return -1 if x is None else int(x)
        try:
            wid = torch.tensor(fill(word_ids), dtype=torch.long, device=device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"word_ids must be nested lists of ints or None shaped like input_ids: {exc}") from None
    if tuple(wid.shape) != tuple(shape):
        raise ValueError(f"word_ids has shape {tuple(wid.shape)}, expected input_ids' shape {tuple(shape)}")
    return wid.clamp(min=-1)


def whole_word_mask_tokens(input_ids, word_ids, mask_token_id, vocab_size, special_tokens_mask,
                           mlm_probability=0.15, generator=None):
    special = _checked_special(input_ids, vocab_size, special_tokens_mask, mlm_probability)
    dev = generator.device if generator is not None else input_ids.device
    rows = input_ids.reshape(-1, input_ids.shape[-1])                       # (R, L): (L,) is one row
    wid = _word_index(word_ids, input_ids.shape, dev).reshape(rows.shape)
    wid = wid.masked_fill(special.to(dev).reshape(rows.shape), -1)          # special: never selected
    valid = wid >= 0
    same = (wid[:, :, None] == wid[:, None, :]) & valid[:, :, None] & valid[:, None, :]   # (R, L, L)
    earlier = torch.ones(same.shape[-2:], dtype=torch.bool, device=dev).tril(-1)         # j < i
    first = valid & ~(same & earlier).any(-1)                               # first piece of each word
    prob = torch.where(first, float(mlm_probability), 0.0)
    word_coin = torch.bernoulli(prob, generator=generator).bool()           # one coin per word
    selected = (same & word_coin[:, None, :]).any(-1).reshape(input_ids.shape)   # all its pieces

    def bernoulli(p):  # an independent coin per piece
        return torch.bernoulli(torch.full(input_ids.shape, p, device=dev), generator=generator).bool()

    inputs, labels = input_ids.clone(), input_ids.clone()
    replaced = bernoulli(0.8) & selected                                     # 80 % of pieces -> [MASK]
    randomized = bernoulli(0.5) & selected & ~replaced                       # 10 % -> random id
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=dev)
    selected, replaced, randomized = (t.to(input_ids.device) for t in (selected, replaced, randomized))
    labels[~selected] = -100
    inputs[replaced] = mask_token_id
    inputs[randomized] = random_ids.to(input_ids.device, input_ids.dtype)[randomized]
    return inputs, labels                                                    # 10 % stay
