"""演習：Trainer API によるファインチューニング（3.7 節）。

作るもの：``training_arguments(output_dir)`` は章の設定（学習率 2e-5、バッチサイズ 16（学習・評価とも）、
3 エポック、weight decay 0.01、エポックごとの評価と保存、最後に最良モデルを読み込む）を持つ
``TrainingArguments`` を返します。``build_trainer(model, train_dataset, eval_dataset, output_dir,
**overrides)`` は、その設定（``overrides`` で上書き可能）と、あなたが ``finetuning.py`` に書いた
``compute_metrics`` をつないだ ``Trainer`` を返します。
章との違い：章の ``evaluation_strategy="epoch"`` は transformers 5 では ``eval_strategy="epoch"`` という
名前です（古い名前は TypeError になります）。採点は引数の値と、小さな BERT を CPU で数秒学習させる
実際の ``Trainer`` の実行で行います。

Exercise: fine-tuning with HuggingFace's ``Trainer`` API — chapter 3.7.

The ``finetuning`` exercise wrote the training loop by hand.  The chapter then shows the short
way: ``TrainingArguments`` holds the settings, ``Trainer`` runs the loop, evaluates, saves
checkpoints (チェックポイント) and calls ``compute_metrics`` after every evaluation:

    args = training_arguments("./results")
    trainer = build_trainer(model, train_dataset, eval_dataset, "./results")
    trainer.train()
    trainer.evaluate()        # {"eval_loss": ..., "eval_accuracy": ..., "eval_f1": ..., ...}

The datasets are anything ``Trainer`` can batch: for instance your ``SentimentDataset`` from
``finetuning.py``, whose items are dicts of ``input_ids``, ``attention_mask`` and ``labels``.

**An argument was renamed.**  The chapter writes ``TrainingArguments(...,
evaluation_strategy="epoch")``, as transformers 4 did.  transformers 4.41 renamed it
``eval_strategy`` (the old name stayed a while as a deprecated alias, then was removed), and
transformers 5 answers the old name with ``TypeError: TrainingArguments.__init__() got an
unexpected keyword argument 'evaluation_strategy'``.  The chapter's other arguments keep their
names.

``Trainer`` needs the ``accelerate`` package (installed with the kata).  Nothing is downloaded:
``report_to="none"`` (the default in transformers 5) keeps the logs local, and every file goes
under ``output_dir``.

Run ``nox -s grade -- trainer`` to check your work, and ``nox -s hint -- trainer`` if you are
stuck.
"""
from transformers import Trainer, TrainingArguments  # noqa: F401

from finetuning import compute_metrics  # noqa: F401  (your own, from finetuning.py)


def training_arguments(output_dir):
    """The chapter's training settings as a ``TrainingArguments`` (学習の設定).

    Args:
        output_dir: the folder (a ``str`` or ``pathlib.Path``) where ``Trainer`` writes its
            checkpoints (``checkpoint-<step>/``).

    Returns:
        ``transformers.TrainingArguments`` with ``output_dir`` and the chapter's settings:

        * learning rate (学習率) ``2e-5``;
        * batch size 16 per device, for training **and** for evaluation;
        * 3 epochs;
        * weight decay (重み減衰) ``0.01``;
        * evaluate at the end of every epoch and save a checkpoint at the end of every epoch
          (in transformers 5 names: ``eval_strategy`` and ``save_strategy``);
        * load the best checkpoint at the end of training (``load_best_model_at_end``; it needs
          evaluation and saving on the same schedule, and by default "best" means the lowest
          evaluation loss).

    Leave every other argument at its default.
    """
    raise NotImplementedError("training_arguments")


def build_trainer(model, train_dataset, eval_dataset, output_dir, **overrides):
    """A ``Trainer`` for ``model`` with the chapter's settings and your ``compute_metrics``.

    Args:
        model: a ``BertForSequenceClassification`` (or any model ``Trainer`` accepts).
        train_dataset, eval_dataset: datasets whose items are dicts with ``input_ids``,
            ``attention_mask`` and ``labels``.
        output_dir: passed to ``training_arguments``.
        **overrides: ``TrainingArguments`` fields that replace the chapter's values, e.g.
            ``learning_rate=1e-3, num_train_epochs=5, seed=0`` (the grader uses them to train a
            tiny model in seconds).  A name ``TrainingArguments`` does not know raises
            ``TypeError``.

    Returns:
        a ``transformers.Trainer`` whose ``args`` are ``training_arguments(output_dir)`` with the
        overrides applied, and whose ``compute_metrics`` is the one you wrote in
        ``finetuning.py`` (imported above), so that every evaluation reports ``eval_accuracy``
        and ``eval_f1``.  Do not train here: the caller calls ``trainer.train()``.
    """
    raise NotImplementedError("build_trainer")
