"""Reference solution: fine-tuning BERT for sentiment classification (chapter 3.7, 3.8, exercise 5)."""
import numpy as np
import torch
from torch.utils.data import Dataset


class SentimentDataset(Dataset):
    """(text, label) pairs -> fixed-length token ids for ``BertForSequenceClassification``."""

    def __init__(self, texts, labels, tokenizer, max_length=128):
        if len(texts) != len(labels):
            raise ValueError(f"texts and labels must have the same length, got len(texts)={len(texts)} "
                             f"and len(labels)={len(labels)}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2 (room for [CLS] and [SEP]), got {max_length!r}")
        self.texts = list(texts)
        self.labels = list(labels)
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, idx):
        # plain lists back (no return_tensors), so the kata's own WordPieceTokenizer works too
        enc = self.tokenizer(self.texts[idx], max_length=self.max_length, padding="max_length",
                             truncation=True)
        return {
            "input_ids": torch.tensor(enc["input_ids"], dtype=torch.long),            # (max_length,)
            "attention_mask": torch.tensor(enc["attention_mask"], dtype=torch.long),  # (max_length,)
            "labels": torch.tensor(int(self.labels[idx]), dtype=torch.long),          # ()
        }


def _forward(model, batch, device, with_labels):
    kwargs = {"input_ids": batch["input_ids"].to(device),            # (B, L)
              "attention_mask": batch["attention_mask"].to(device)}  # (B, L)
    if with_labels:
        kwargs["labels"] = batch["labels"].to(device)                 # (B,)
    return model(**kwargs)


def train_model(model, train_loader, optimizer, device, epochs=3):
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    losses = []
    for _ in range(epochs):
        model.train()                       # dropout on (evaluate_model leaves the model in eval mode)
        total, n_batches = 0.0, 0
        for batch in train_loader:
            optimizer.zero_grad()           # gradients would otherwise add up across steps
            loss = _forward(model, batch, device, with_labels=True).loss
            loss.backward()
            optimizer.step()
            total += loss.item()
            n_batches += 1
        if n_batches == 0:
            raise ValueError("train_loader yielded no batches")
        losses.append(total / n_batches)    # mean of the batch losses, as the chapter computes it
    return losses


def _accuracy_f1(y_true, y_pred):
    """Accuracy and support-weighted F1, as scikit-learn's accuracy_score / f1_score(average="weighted")."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need as many predictions as labels (and at least one), got "
                         f"{y_pred.size} predictions and {y_true.size} labels")
    f1s, support = [], []
    for c in np.union1d(y_true, y_pred):    # classes seen in either; an unseen class weighs 0 anyway
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        f1s.append(2 * tp / (2 * tp + fp + fn))      # > 0 denominator: c occurs somewhere
        support.append(np.sum(y_true == c))
    return float(np.mean(y_true == y_pred)), float(np.average(f1s, weights=support))


def evaluate_model(model, test_loader, device):
    model.eval()                            # dropout off
    preds, labels = [], []
    with torch.no_grad():                   # no autograd graph
        for batch in test_loader:
            logits = _forward(model, batch, device, with_labels=False).logits   # (B, num_labels)
            preds.extend(logits.argmax(dim=-1).tolist())
            labels.extend(batch["labels"].tolist())
    accuracy, f1 = _accuracy_f1(labels, preds)
    return {"accuracy": accuracy, "f1": f1, "predictions": preds}


def compute_metrics(eval_pred):
    logits, labels = eval_pred              # a tuple or transformers.EvalPrediction
    preds = np.argmax(np.asarray(logits), axis=-1)
    accuracy, f1 = _accuracy_f1(labels, preds)
    return {"accuracy": accuracy, "f1": f1}


def predict_sentiment(texts, model, tokenizer, labels=("ネガティブ", "ポジティブ")):
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    if not texts:
        return []
    model.eval()
    device = next(model.parameters()).device
    enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"].to(device),
                       attention_mask=enc["attention_mask"].to(device)).logits   # (N, num_labels)
    if logits.shape[-1] != len(labels):
        raise ValueError(f"labels has {len(labels)} names but the model predicts {logits.shape[-1]} classes")
    probs = torch.softmax(logits, dim=-1)
    conf, pred = probs.max(dim=-1)                                                # (N,), (N,)
    return [(labels[p], c) for p, c in zip(pred.tolist(), conf.tolist())]
