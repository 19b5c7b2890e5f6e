"""演習：BERT の事前学習データ（MLM のマスキング、全単語マスキング、NSP のペア）と MLM の 1 ステップ
（3.6 節、章末演習 3、3.9 節のドメイン適応）。

作るもの：``mask_tokens``（トークンごとに確率 mlm_probability で選び、選んだものの 80 % を [MASK]、
10 % をランダムな ID、10 % をそのまま。labels は選んだ位置だけ元の ID、他は -100。入出力とも
input_ids と同じ形状）、``whole_word_mask_tokens``（単語単位で選び、選んだ単語のサブワードはすべて
選ぶ。80/10/10 はサブワードごと）、``make_nsp_examples``（ちょうど n // 2 個を NotNext に）、
``mlm_train_step``（BertForMaskedLM の 1 ステップ、損失を float で返す）。
章との違い：NSP のラベルは HuggingFace の規約 IS_NEXT = 0、NOT_NEXT = 1（章の表示とは逆）。
乱数はすべて引数の generator / rng から引きます。

Exercise: BERT pre-training data (事前学習データ) and one MLM step — chapter 3.6, exercise 3, 3.9.

BERT is pre-trained on two tasks at once:

* **MLM, masked language modeling (マスク言語モデル)**: about 15 % of the tokens are chosen and the
  model must predict the original token there.  Of the chosen tokens, 80 % are replaced by
  ``[MASK]``, 10 % by a random token and 10 % are left unchanged, so that the model cannot rely on
  seeing ``[MASK]`` (which never appears when the model is fine-tuned later).  With
  **whole-word masking (全単語マスキング)** the choice is made per word, and every WordPiece piece of
  a chosen word is masked (``whole_word_mask_tokens``).
* **NSP, next sentence prediction (次文予測)**: given two sentences A and B, is B the sentence that
  follows A in the same document, or a random sentence from elsewhere?

Continued pre-training on text of one field (ドメイン適応, domain adaptation; chapter 3.9 uses
medical text) is just more MLM steps: see ``mlm_train_step``.  The kata ships a small bilingual
medical corpus in ``data/medical_corpus.txt``.

Run ``nox -s grade -- pretraining`` to check your work, and ``nox -s hint -- pretraining`` if you
are stuck.
"""
import random  # noqa: F401  (make_nsp_examples accepts a random.Random)

import numpy as np  # noqa: F401  (... or a numpy.random.Generator)
import torch  # noqa: F401

# NSP labels.  The kata follows HuggingFace's ``BertForPreTraining``: its ``next_sentence_label`` is
# 0 when sentence B really follows sentence A ("IsNext") and 1 when B is a random sentence
# ("NotNext").  The chapter prints IsNext as 1: that is the opposite, and a model trained with the
# chapter's labels would read pretrained BERT's NSP head backwards.  Set the two constants to
# HuggingFace's values and use them (not literal numbers) in make_nsp_examples.
IS_NEXT = None   # TODO: HuggingFace's label for "B follows A"
NOT_NEXT = None  # TODO: HuggingFace's label for "B is a random sentence"


def mask_tokens(input_ids, mask_token_id, vocab_size, special_tokens_mask, mlm_probability=0.15,
                generator=None):
    """Choose and corrupt tokens for masked language modeling (MLM のマスキング).

    Args:
        input_ids: integer ``torch.Tensor`` of token ids, any shape (usually ``(B, L)``).
        mask_token_id: the id of ``[MASK]`` (103 in ``bert-base-uncased``).
        vocab_size: random replacement ids are drawn uniformly from ``[0, vocab_size)``.
        special_tokens_mask: same shape as ``input_ids``, 1 / True where the token is special
            (``[CLS]``, ``[SEP]``, ``[PAD]``, ...).  Padding is marked here too — it is what a
            HuggingFace tokenizer returns with ``return_special_tokens_mask=True``.
        mlm_probability: the chance that one non-special token is selected (0.15 in BERT).
        generator: a ``torch.Generator`` on the same device as ``input_ids``, or ``None`` for
            torch's global generator.  Draw every random number from it
            (``torch.bernoulli(probs, generator=generator)``,
            ``torch.randint(..., generator=generator, device=...)``): the same seed must give the
            same result.

    Returns:
        ``(inputs, labels)``, both shaped, typed and placed like ``input_ids``:

        * every non-special token is selected independently with probability ``mlm_probability``
          (an independent coin per token, as HuggingFace's ``DataCollatorForLanguageModeling``
          does, not a fixed number per sentence); special tokens and padding are never selected;
        * ``labels`` holds the original id at selected positions and ``-100`` everywhere else
          (``-100`` is what ``CrossEntropyLoss`` ignores, so only selected tokens are scored);
        * in ``inputs`` a selected token becomes ``mask_token_id`` with probability 0.8, a random id
          with probability 0.1, and stays as it is with probability 0.1; every other token is
          unchanged.

    ``input_ids`` itself must not be modified (work on a ``.clone()``; HuggingFace's collator does
    change its input in place — yours must not).

    Hint: draw one Bernoulli coin per position for "selected", a second one with probability 0.8
    for "[MASK]", and a third one for "random" among the rest — careful, 10 % of *all* selected
    tokens is half of the 20 % that were not turned into [MASK].

    Raises:
        ValueError: naming the argument, if ``mlm_probability`` is outside ``[0, 1]`` or
        ``special_tokens_mask`` does not have ``input_ids``' shape.
    """
    raise NotImplementedError("mask_tokens")


def whole_word_mask_tokens(input_ids, word_ids, mask_token_id, vocab_size, special_tokens_mask,
                           mlm_probability=0.15, generator=None):
    """Whole-word masking (全単語マスキング, Whole Word Masking) for MLM.

    WordPiece splits a rare word into pieces (``"tokenization"`` -> ``token ##ization``).  Masking
    pieces one by one lets the model guess ``##ization`` from ``token``, which is easy; whole-word
    masking selects *words* and then masks every piece of a selected word.  The Japanese BERT the
    chapter uses (cl-tohoku's "whole-word-masking" model) was pre-trained this way, with MeCab
    words as the words.

    Args:
        input_ids: integer ``torch.Tensor`` of token ids, ``(L,)`` or ``(B, L)``.
        word_ids: the word of every token, shaped like ``input_ids`` as nested lists (a list of
            ``B`` lists of ``L`` entries for a batch): ``word_ids[b][i]`` is an ``int`` word number
            (tokens of the same row with the same number are pieces of one word) or ``None`` for a
            token that belongs to no word (``[CLS]``, ``[SEP]``, ``[PAD]``).  A fast HuggingFace
            tokenizer gives them as ``encoding.word_ids(b)``; for Japanese, number the MeCab words
            and give every WordPiece piece of a word that word's number.
        mask_token_id, vocab_size, special_tokens_mask, mlm_probability, generator: as in
            ``mask_tokens``.

    Returns:
        ``(inputs, labels)``, shaped, typed and placed like ``input_ids``:

        * every word (a word number of a row; tokens with ``None`` or a set ``special_tokens_mask``
          belong to none) is selected independently with probability ``mlm_probability``, and
          then *all* of its pieces are selected; no other token is;
        * ``labels``: the original id at selected pieces, ``-100`` elsewhere;
        * every selected piece, independently of the word's other pieces, becomes
          ``mask_token_id`` with probability 0.8, a random id in ``[0, vocab_size)`` with
          probability 0.1, and stays with probability 0.1 (the rule of Google's original
          whole-word-masking BERT).

    ``input_ids`` must not be modified.

    Compared with HuggingFace: ``DataCollatorForLanguageModeling(tokenizer, whole_word_mask=True)``
    in transformers 5 selects words the same way (one coin per word, on its first piece, then
    every piece of the word), so the *selection* follows the same law.  It differs in two places,
    and this kata follows the chapter's BERT instead: (1) it finds words from the tokenizer's
    ``offset_mapping`` (a token that touches the previous one continues its word), so a
    punctuation mark glued to a word, or a whole Japanese sentence without spaces, counts as one
    word; here the words are what ``word_ids`` says (MeCab's words for Japanese); (2) it turns
    off the 80/10/10 rule (it warns and replaces *every* selected piece by ``[MASK]``); here each
    selected piece follows 80/10/10 as in ``mask_tokens``.

    Raises:
        ValueError: naming the argument, if ``mlm_probability`` is outside ``[0, 1]`` or
        ``word_ids`` / ``special_tokens_mask`` is not shaped like ``input_ids``.
    """
    raise NotImplementedError("whole_word_mask_tokens")


def make_nsp_examples(documents, rng):
    """Sentence pairs for next sentence prediction (次文予測, NSP).

    Args:
        documents: a list of at least two documents, each a list of sentences (``str``), in order.
        rng: a ``random.Random`` or a ``numpy.random.Generator``; make every random choice with it
            (they differ: ``random.Random`` has ``sample`` / ``randrange``, a NumPy Generator has
            ``choice(n, size=k, replace=False)`` / ``integers``).

    Returns:
        A list of ``(sentence_a, sentence_b, label)`` tuples, one for every pair of consecutive
        sentences of a document (a document of ``m`` sentences gives ``m - 1`` examples).  Of the
        ``n`` examples, exactly ``n // 2`` — chosen with ``rng`` — are NotNext: ``sentence_b`` is
        replaced by a sentence of a *different* document and the label is ``NOT_NEXT``.  The
        others keep the real next sentence with the label ``IS_NEXT``.  The order of the list is
        up to you.

    Labels: ``IS_NEXT = 0`` and ``NOT_NEXT = 1``, HuggingFace ``BertForPreTraining``'s
    ``next_sentence_label`` convention; the chapter prints IsNext as 1 (see the constants above).

    The chapter explains NSP but has no code that builds the pairs.  BERT's paper takes the real
    next sentence half of the time and a random one the other half; this kata makes the half exact: ``n // 2`` NotNext
    examples, chosen with ``rng`` before any pair is built (a coin per example would give only
    *about* half).  A random sentence drawn from all sentences may come from the same document,
    and may even be the real next sentence: draw it from another document.

    Raises:
        ValueError: naming ``documents``, if there are fewer than two documents.
    """
    raise NotImplementedError("make_nsp_examples")


def mlm_train_step(model, batch, optimizer):
    """One step of continued MLM pre-training (継続事前学習) of a HuggingFace ``BertForMaskedLM``.

    Args:
        model: a ``transformers.BertForMaskedLM`` (it may be handed to you in eval mode).
        batch: a dict of tensors already on the model's device, masked with ``mask_tokens``:
            ``input_ids`` ``(B, L)``, ``attention_mask`` ``(B, L)`` (1 = real token, 0 = padding)
            and ``labels`` ``(B, L)`` (original id at selected positions, -100 elsewhere).
        optimizer: a ``torch.optim`` optimizer over ``model.parameters()``.

    Returns:
        The batch's loss before the update, as a Python ``float``.

    The step is the usual training loop body: put the model in training mode, zero the gradients,
    forward (with ``labels`` the model computes the MLM cross-entropy over the selected positions
    itself: ``outputs.loss``), backward, optimizer step.  Pass the attention mask, or the padding
    takes part in attention.

    Hint: five lines.  Which of them, if left out, would silently add the previous step's
    gradients to this one?
    """
    raise NotImplementedError("mlm_train_step")
