"""第3章 章末演習 5（SentimentDataset と学習・評価ループ）と 3.7 節・3.8 節のリスト。

The chapter's listings, adapted only where exercises/finetuning.py documents a difference:
- SentimentDataset: the book calls the tokenizer with ``padding="max_length", truncation=True,
  max_length=..., return_tensors="pt"`` and ``.flatten()``s the result, which "only works with"
  a HuggingFace tokenizer; the docstring says to ask for lists and make the tensors with
  ``torch.tensor(..., dtype=torch.long)``, so ``return_tensors="pt"`` is dropped and
  ``.flatten()`` becomes ``torch.tensor(..., dtype=torch.long)``;
- predict_sentiment (3.8): the book sends the inputs to its script's global ``device``; the
  docstring says to use the model's device, ``next(model.parameters()).device``.
train_model, evaluate_model and compute_metrics are as printed (model.train(); zero_grad; outputs.loss;
backward; step; total_loss / len(train_loader) / model.eval(); torch.no_grad(); argmax;
accuracy_score and f1_score(average="weighted")).  No argument checks (the book has none).
"""
import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch.utils.data import Dataset


class SentimentDataset(Dataset):
    """感情分析用のデータセット"""

    def __init__(self, texts, labels, tokenizer, max_length=128):
        self.texts = texts
        self.labels = labels
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, idx):
        text = self.texts[idx]
        label = self.labels[idx]

        encoding = self.tokenizer(
            text,
            max_length=self.max_length,
            padding="max_length",
            truncation=True,
        )

        return {
            "input_ids": torch.tensor(encoding["input_ids"], dtype=torch.long),
            "attention_mask": torch.tensor(encoding["attention_mask"], dtype=torch.long),
            "labels": torch.tensor(label, dtype=torch.long),
        }


def train_model(model, train_loader, optimizer, device, epochs=3):
    """学習ループ"""
    model.train()
    losses = []

    for epoch in range(epochs):
        total_loss = 0

        for batch in train_loader:
            optimizer.zero_grad()

            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            labels = batch["labels"].to(device)

            outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            loss = outputs.loss

            loss.backward()
            optimizer.step()

            total_loss += loss.item()

        avg_loss = total_loss / len(train_loader)
        losses.append(avg_loss)
        print(f"Epoch {epoch + 1}/{epochs}, Loss: {avg_loss:.4f}")

    return losses


def evaluate_model(model, test_loader, device):
    """評価"""
    model.eval()
    predictions = []
    true_labels = []

    with torch.no_grad():
        for batch in test_loader:
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            labels = batch["labels"].to(device)

            outputs = model(input_ids=input_ids, attention_mask=attention_mask)
            preds = torch.argmax(outputs.logits, dim=1)

            predictions.extend(preds.cpu().numpy())
            true_labels.extend(labels.cpu().numpy())

    accuracy = accuracy_score(true_labels, predictions)
    f1 = f1_score(true_labels, predictions, average="weighted")

    return {"accuracy": accuracy, "f1": f1, "predictions": predictions}


def compute_metrics(eval_pred):
    """Trainer 用の評価指標"""
    predictions, labels = eval_pred
    predictions = np.argmax(predictions, axis=1)
    return {
        "accuracy": accuracy_score(labels, predictions),
        "f1": f1_score(labels, predictions, average="weighted"),
    }


def predict_sentiment(texts, model, tokenizer, labels=("ネガティブ", "ポジティブ")):
    """新しいテキストの感情を予測する"""
    model.eval()
    device = next(model.parameters()).device
    results = []

    for text in texts:
        inputs = tokenizer(text, return_tensors="pt", truncation=True)
        inputs = {k: v.to(device) for k, v in inputs.items()}

        with torch.no_grad():
            outputs = model(**inputs)

        probs = torch.softmax(outputs.logits, dim=-1)
        pred = torch.argmax(probs, dim=-1).item()
        confidence = probs[0][pred].item()

        results.append((labels[pred], confidence))

    return results
