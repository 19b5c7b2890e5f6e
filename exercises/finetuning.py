"""演習：感情分類のための BERT のファインチューニング（3.7 節、3.8 節、章末演習 5）。

作るもの：``SentimentDataset``（テキストを max_length にパディング・切り詰めし、input_ids と
attention_mask（長さ max_length の LongTensor）と labels（0 次元）を返す）、``train_model``（エポック
ごとのバッチ損失の平均のリストを返す）、``evaluate_model``（accuracy、重み付き F1、predictions）、
``compute_metrics``（Trainer 用のコールバック）、``predict_sentiment``（(ラベル, 確信度) のリスト）。
ラベルは章と同じく 0 = ネガティブ、1 = ポジティブ。

Exercise: fine-tuning BERT for sentiment classification (ファインチューニング) — chapter 3.7, 3.8
and the chapter's exercise 5.

Pre-trained BERT (事前学習済みモデル) already knows a lot about language; fine-tuning
teaches it one task with a little labelled data.  For sentiment analysis (感情分析) the
chapter uses ``BertForSequenceClassification``: BERT plus a linear layer on the [CLS]
position.  Given ``labels`` it also returns the cross-entropy loss (``outputs.loss``);
``outputs.logits`` has shape ``(batch, num_labels)``.

You write the pieces of the chapter's hand-written training script:

    dataset = SentimentDataset(texts, labels, tokenizer, max_length=128)
    loader = DataLoader(dataset, batch_size=16, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    losses = train_model(model, loader, optimizer, device, epochs=3)
    results = evaluate_model(model, test_loader, device)    # accuracy, weighted F1, predictions
    predict_sentiment(["この映画は最高でした！"], model, tokenizer)   # [("ポジティブ", 0.9...)] once trained

and ``compute_metrics``, the callback the chapter hands to HuggingFace's ``Trainer``.

Labels: 0 = negative (ネガティブ), 1 = positive (ポジティブ), as in the chapter.
The data sets ``data/sentiment_en.tsv`` and ``data/sentiment_ja.tsv`` (written for this
kata) are there to play with.

Run ``nox -s grade -- finetuning`` to check your work, and
``nox -s hint -- finetuning`` if you are stuck.
"""
import numpy as np  # noqa: F401
import torch  # noqa: F401
from torch.utils.data import Dataset


class SentimentDataset(Dataset):
    """Texts and their labels, tokenized for BERT (chapter 3.7).

    Args:
        texts: a list of strings.
        labels: a list of ints (0 = negative, 1 = positive), one per text.
        tokenizer: a tokenizer called as ``tokenizer(text, max_length=..., padding=...,
            truncation=...)`` that returns a dict with ``"input_ids"`` and
            ``"attention_mask"``.  It may be a HuggingFace ``BertTokenizer`` *or* the kata's own
            ``WordPieceTokenizer`` (exercise ``tokenization``), which returns plain Python lists
            and has **no** ``return_tensors`` argument: the chapter's
            ``return_tensors="pt"`` + ``.flatten()`` only works with the first one.  Ask for
            lists and make the tensors yourself (``torch.tensor(..., dtype=torch.long)``).
        max_length: every item is padded (``padding="max_length"``) and truncated
            (``truncation=True``) to exactly this many tokens, [CLS] and [SEP] included.

    ``len(dataset)`` is the number of texts.  ``dataset[i]`` is a dict:

        "input_ids":      LongTensor of shape (max_length,)
        "attention_mask": LongTensor of shape (max_length,)  (1 = real token, 0 = padding)
        "labels":         LongTensor of shape ()             (a 0-dim tensor: torch.tensor(label))

    so that a ``DataLoader`` stacks them into ``(batch, max_length)`` and ``(batch,)``.

    Raises:
        ValueError: if ``len(texts) != len(labels)`` (say both lengths in the message).
    """

    def __init__(self, texts, labels, tokenizer, max_length=128):
        raise NotImplementedError("SentimentDataset.__init__")

    def __len__(self):
        raise NotImplementedError("SentimentDataset.__len__")

    def __getitem__(self, idx):
        raise NotImplementedError("SentimentDataset.__getitem__")


def train_model(model, train_loader, optimizer, device, epochs=3):
    """Train ``model`` (a ``BertForSequenceClassification`` already on ``device``) for ``epochs``
    passes over ``train_loader`` (学習ループ, chapter 3.7).

    Each batch from ``train_loader`` is a dict with ``"input_ids"`` and ``"attention_mask"``
    ``(B, L)`` and ``"labels"`` ``(B,)``, on the CPU.  For every batch, in this order of ideas:

    1. move the batch tensors to ``device`` (``.to(device)``): on a GPU the model's weights are
       there, and inputs left on the CPU make the forward pass fail;
    2. clear the gradients left by the previous step (``optimizer.zero_grad()``): PyTorch *adds*
       each ``backward()`` into ``.grad``;
    3. forward with ``labels=...`` so the model returns ``outputs.loss``; ``loss.backward()``;
       ``optimizer.step()``.

    Put the model in training mode (``model.train()``) before the loop: it switches dropout on,
    and the model may arrive in evaluation mode (the chapter's ``evaluate_model`` leaves it so).

    Args:
        model: the classifier to train (changed in place).
        train_loader: an iterable of batches (a ``DataLoader``); ``len(train_loader)`` is the
            number of batches.
        optimizer: e.g. ``torch.optim.AdamW(model.parameters(), lr=2e-5)``.
        device: a ``torch.device`` or a string such as ``"cpu"`` / ``"cuda"``.
        epochs: number of passes over the data.

    Returns:
        A list of ``epochs`` floats: for each epoch, the mean of that epoch's batch losses
        (sum of ``loss.item()`` divided by the number of batches, as the chapter computes it).

    Hint: the loss of one batch is a tensor with a graph behind it; keep ``loss.item()`` (a
    float) for the running total, not the tensor.
    """
    raise NotImplementedError("train_model")


def evaluate_model(model, test_loader, device):
    """Evaluate ``model`` on ``test_loader`` (評価, chapter 3.7).

    Put the model in evaluation mode (``model.eval()``: dropout off, so two evaluations agree)
    and run the forward passes inside ``with torch.no_grad():`` (no autograd graph: less memory,
    faster).  Move ``input_ids`` and ``attention_mask`` to ``device`` as in ``train_model``; the
    prediction for an example is the argmax of its logits.  The model may arrive in training mode;
    afterwards it may stay in evaluation mode (as in the chapter) or get its previous mode back:
    either is fine.

    Returns:
        ``{"accuracy": float, "f1": float, "predictions": list of int}`` where ``accuracy`` is
        the share of correct predictions, ``f1`` the *weighted* F1 score (each class's F1
        weighted by how often it occurs among the true labels; scikit-learn's
        ``f1_score(y_true, y_pred, average="weighted")``), and ``predictions`` the predicted
        class ids in the loader's order.
    """
    raise NotImplementedError("evaluate_model")


def compute_metrics(eval_pred):
    """The ``compute_metrics`` callback of HuggingFace's ``Trainer`` (chapter 3.7).

    Args:
        eval_pred: ``(logits, labels)``: a tuple or a ``transformers.EvalPrediction`` (which
            unpacks the same way), with ``logits`` a NumPy array ``(N, num_labels)`` and
            ``labels`` a NumPy int array ``(N,)``.

    Returns:
        ``{"accuracy": float, "f1": float}``: the same numbers as scikit-learn's
        ``accuracy_score`` and ``f1_score(..., average="weighted")`` on the argmax predictions.

    Careful if you write the F1 yourself: a class can be predicted but never be a true label (its
    weight is 0), be a true label but never predicted (its F1 is 0), or never occur at all;
    none of these may produce NaN.
    """
    raise NotImplementedError("compute_metrics")


def predict_sentiment(texts, model, tokenizer, labels=("ネガティブ", "ポジティブ")):
    """Predict the sentiment of new texts (推論, chapter 3.8 with a Japanese BERT).

    Args:
        texts: a list of strings.
        model: a ``BertForSequenceClassification`` (on any device: send the inputs to the
            model's device, ``next(model.parameters()).device``).
        tokenizer: a HuggingFace tokenizer for that model (``BertJapaneseTokenizer`` in the
            chapter); batching the texts with ``padding=True`` is fine as long as the
            ``attention_mask`` goes to the model too.  A review may be longer than the model can
            read (``max_position_embeddings`` tokens): truncate, as the chapter does with
            ``truncation=True`` (the tokenizer then cuts at its ``model_max_length``); where exactly
            to cut is up to you, as long as every text fits the model.
        labels: the name of each class, by class id; the chapter's are
            ``("ネガティブ", "ポジティブ")`` (0 = negative, 1 = positive).

    Returns:
        A list with one ``(label, confidence)`` tuple per text: the name of the predicted class
        and its softmax probability (a Python float; ``.item()``).  Predictions must not depend on
        dropout: evaluation mode, no gradients (the model may arrive in training mode).  Afterwards
        the model may stay in evaluation mode or get its previous mode back: either is fine.

    Example (the numbers depend on the model: the chapter's classifier head is freshly
    initialised, not trained, so its confidences are near 0.5; after fine-tuning they grow):
        >>> predict_sentiment(["この映画は最高でした！"], model, tokenizer)   # doctest: +SKIP
        [('ポジティブ', 0.9...)]
    """
    raise NotImplementedError("predict_sentiment")
