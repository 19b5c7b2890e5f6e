"""Reference solution: fine-tuning with the Trainer API (chapter 3.7)."""
import dataclasses

from transformers import Trainer, TrainingArguments

from finetuning import compute_metrics


def training_arguments(output_dir):
    return TrainingArguments(
        output_dir=str(output_dir),
        eval_strategy="epoch",              # the chapter's evaluation_strategy (renamed in transformers 5)
        save_strategy="epoch",              # must match eval_strategy for load_best_model_at_end
        learning_rate=2e-5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=16,
        num_train_epochs=3,
        weight_decay=0.01,
        load_best_model_at_end=True,
    )


def build_trainer(model, train_dataset, eval_dataset, output_dir, **overrides):
    args = dataclasses.replace(training_arguments(output_dir), **overrides)   # unknown name: TypeError
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        compute_metrics=compute_metrics,    # the student's own, from finetuning.py
    )
