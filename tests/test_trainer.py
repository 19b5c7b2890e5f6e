"""Suite for the ``trainer`` exercise (chapter 3.7: fine-tuning with the Trainer API).

Two kinds of checks: the values of the student's ``TrainingArguments`` (the chapter's settings
in transformers 5 names), and one short real ``Trainer`` run in the sandbox: a tiny BERT
(``grader.grading.hf.small_config`` sizes, seeded) fine-tuned on ``data/sentiment_en.tsv``
(254 training, 62 evaluation sentences, bert-base-uncased ids, max_length 32).  The run must
train, evaluate after every epoch, save a checkpoint per epoch under ``output_dir``, load the
best checkpoint at the end, and report ``eval_accuracy`` / ``eval_f1`` equal to the student's
own ``finetuning.compute_metrics`` on the same predictions.

The run overrides the chapter's learning rate and epoch count (``RUN_OVERRIDES``): at 2e-5 a tiny
random BERT does not move in 3 epochs, and every prediction would be one class.  Measured here
(1 CPU thread): the whole run (5 epochs, 80 steps, 5 evaluations and checkpoints) takes about
1.6 s of CPU time for training, plus about 13 s to import ``transformers.Trainer`` cold; eval
accuracy goes 0.50, 0.50, 0.68, 0.76, 0.76 over the epochs.

``output_dir`` is a fresh folder made by ``tempfile.mkdtemp`` inside the sandbox, i.e. under its
private scratch tmpfs (``TMPDIR``); the rest of the file system is read-only there, so the
Trainer cannot write anywhere else.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.grading import hf
from grader.grading.checks import assert_close
from grader.grading.testing import as_float, as_record, is_handle
from grader.i18n import msg
from grader.sandbox.controller import RemoteError

DATA = Path(__file__).resolve().parents[1] / "data"
MAX_LENGTH = 32
RUN_SEED = 0
RUN_EPOCHS = 5
RUN_OVERRIDES = dict(learning_rate=2e-3, num_train_epochs=RUN_EPOCHS, seed=RUN_SEED, report_to="none",
                     disable_tqdm=True)
# the chapter's settings (transformers 5 names), as TrainingArguments.to_dict() shows them
CHAPTER = {
    "learning_rate": 2e-5,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "num_train_epochs": 3,
    "weight_decay": 0.01,
}


# ---------------------------------------------------------------- helpers
def scratch_dir(student) -> str:
    """A fresh folder in the sandbox's private scratch space."""
    path = student.build("tempfile.mkdtemp", prefix="kata-trainer-")
    assert isinstance(path, str)
    return path


def arguments_dict(args, what: str) -> dict:
    """``TrainingArguments.to_dict()`` (enums as their string values), or a clear failure."""
    try:
        d = args.to_dict()
    except (AttributeError, RemoteError) as exc:
        raise AssertionError(msg("trainer.expected_transformers_trainingarguments_got", what=what, exc=exc)) from None
    assert isinstance(d, dict), msg("trainer.dict_did_not_return", what=what)
    return d


def chapter_arguments_here(output_dir: str) -> dict:
    """``TrainingArguments(output_dir, <the chapter's settings>).to_dict()`` built in the grader's
    process, never in the sandbox, where a submission could wrap the class (issue 25), under the
    sandbox's logging level (``TRANSFORMERS_VERBOSITY=error``: ``disable_tqdm`` follows it)."""
    import transformers
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        args = transformers.TrainingArguments(output_dir, eval_strategy="epoch", save_strategy="epoch",
                                              load_best_model_at_end=True, **CHAPTER)
    finally:
        hf_logging.set_verbosity(before)
    return args.to_dict()


def check_value(d: dict, key: str, want, what: str) -> None:
    got = d.get(key, "<missing>")
    ok = (isinstance(got, (int, float)) and not isinstance(got, bool) and isinstance(want, (int, float))
          and not isinstance(want, bool) and math.isclose(got, want, rel_tol=1e-12)) or got == want
    assert ok, msg("trainer.chapter_setting", what=what, key_name=key, got=got, want=want)


def read_tsv(name):
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split("\t"))
    return [(split, int(label), text) for split, label, text in rows[1:]]


def encode(tokenizer, rows):
    enc = tokenizer([t for _, _, t in rows], max_length=MAX_LENGTH, padding="max_length", truncation=True)
    return [{"input_ids": torch.tensor(i), "attention_mask": torch.tensor(m), "labels": torch.tensor(y)}
            for i, m, (_, y, _) in zip(enc["input_ids"], enc["attention_mask"], rows)]


@pytest.fixture(scope="module")
def sentiment():
    from transformers import BertTokenizer

    tok = BertTokenizer(vocab=str(hf.vocab_path()))
    rows = read_tsv("sentiment_en.tsv")
    train = encode(tok, [r for r in rows if r[0] == "train"])
    test = encode(tok, [r for r in rows if r[0] == "test"])
    return tok.vocab_size, train, test


def tiny_model(student, vocab_size, seed=RUN_SEED):
    """The same seeded tiny BertForSequenceClassification here (initial weights) and in the sandbox."""
    from transformers import BertForSequenceClassification

    # initial weights 5x BERT's usual spread: the tiny model leaves "all one class" within a few epochs
    cfg = hf.small_config(vocab_size=vocab_size, num_labels=2, max_position_embeddings=MAX_LENGTH,
                          initializer_range=0.1)
    local = hf.seeded(lambda: BertForSequenceClassification(cfg), seed)
    remote = hf.in_sandbox(student, "transformers.BertForSequenceClassification", cfg, local.state_dict(),
                           train=True)
    return local, remote


class Run:
    """What one Trainer run left behind (a short repr for reports)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "<Trainer run>"


@pytest.fixture(scope="module")
def run(student, sentiment):
    """One real Trainer run with the student's build_trainer (shared by the run tests).  A failure
    is kept and re-raised by every test that needs the run."""
    vocab_size, train, test = sentiment
    try:
        local, remote = tiny_model(student, vocab_size)
        out = scratch_dir(student)
        trainer = student.build_trainer(remote, train, test, out, **RUN_OVERRIDES)
        trainer.train()
        get = lambda path: student.build("operator.attrgetter", path)(trainer)  # noqa: E731
        history = get("state.log_history")
        best = get("state.best_model_checkpoint")
        metrics = trainer.evaluate()
        logits, label_ids = tuple(trainer.predict(test))[:2]     # PredictionOutput comes back as a tuple
        listing = student.build("os.listdir", out)
        final = remote.state_dict()
    except RemoteError as exc:
        return exc
    return Run(local=local, history=history, metrics=metrics, logits=logits, label_ids=label_ids,
               listing=listing, final=final, test=test, best=best)


def the_run(run) -> Run:
    if isinstance(run, RemoteError):
        if run.type_name == "NotImplementedError" and "compute_metrics" in str(run):
            raise AssertionError(msg("trainer.trainer_calls_finetuning_compute",
                                     run_remote_message=run.remote_message))
        if run.type_name == "NotImplementedError":
            raise run
        raise AssertionError(msg("trainer.trainer_run_failed", run=run))
    return run


def eval_entries(history) -> list[dict]:
    return [h for h in history if isinstance(h, dict) and "eval_loss" in h]


# ---------------------------------------------------------------- training_arguments
@pytest.mark.judges("training_arguments", stage=2, item="arguments")
def test_training_arguments_evaluate_and_save_every_epoch(student):
    """eval_strategy (the chapter's evaluation_strategy, renamed) and save_strategy are "epoch"."""
    d = arguments_dict(student.training_arguments(scratch_dir(student)), "training_arguments(output_dir)")
    check_value(d, "eval_strategy", "epoch", "training_arguments(output_dir)")
    check_value(d, "save_strategy", "epoch", "training_arguments(output_dir)")


@pytest.mark.judges("training_arguments", stage=2, item="arguments")
def test_training_arguments_chapter_hyperparameters(student):
    """Learning rate 2e-5, batch size 16 for training and evaluation, 3 epochs, weight decay 0.01."""
    d = arguments_dict(student.training_arguments(scratch_dir(student)), "training_arguments(output_dir)")
    for key, want in CHAPTER.items():
        check_value(d, key, want, "training_arguments(output_dir)")


@pytest.mark.judges("training_arguments", stage=2, item="arguments")
def test_training_arguments_load_best_model_at_end(student):
    d = arguments_dict(student.training_arguments(scratch_dir(student)), "training_arguments(output_dir)")
    check_value(d, "load_best_model_at_end", True, "training_arguments(output_dir)")


@pytest.mark.judges("training_arguments", stage=2, item="arguments")
def test_training_arguments_use_output_dir(student):
    out = scratch_dir(student)
    d = arguments_dict(student.training_arguments(out), "training_arguments(output_dir)")
    check_value(d, "output_dir", out, "training_arguments(output_dir)")


@pytest.mark.judges("training_arguments", stage=2, item="arguments")
def test_training_arguments_leave_every_other_argument_at_its_default(student):
    """"Leave every other argument at its default": the whole to_dict() equals TrainingArguments
    built with only output_dir and the chapter's settings (warmup_steps, logging_steps,
    metric_for_best_model, ... all untouched), built by the grader (``chapter_arguments_here``)."""
    out = scratch_dir(student)
    d = arguments_dict(student.training_arguments(out), "training_arguments(output_dir)")
    want = chapter_arguments_here(out)
    changed = {k: (d.get(k, "<missing>"), v) for k, v in want.items() if d.get(k, "<missing>") != v}
    assert not changed, msg("trainer.other_arguments_changed",
                            changed=", ".join(f"{k}={got!r} (default {v!r})" for k, (got, v) in sorted(changed.items())))


# ---------------------------------------------------------------- build_trainer
@pytest.mark.judges("build_trainer", stage=2, item="wiring")
def test_build_trainer_applies_overrides_over_chapter_settings(student, sentiment):
    """The Trainer's args are training_arguments(output_dir) with the overrides replacing fields;
    the chapter's other settings stay; compute_metrics is wired."""
    vocab_size, train, test = sentiment
    _, remote = tiny_model(student, vocab_size)
    out = scratch_dir(student)
    trainer = student.build_trainer(remote, train[:8], test[:8], out, learning_rate=1e-3, seed=7)
    d = arguments_dict(student.build("operator.attrgetter", "args")(trainer), "build_trainer(...).args")
    what = msg("trainer.build_trainer_learning_rate")
    check_value(d, "learning_rate", 1e-3, what)
    check_value(d, "seed", 7, what)
    check_value(d, "output_dir", out, what)
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "num_train_epochs", "weight_decay"):
        check_value(d, key, CHAPTER[key], what)
    check_value(d, "eval_strategy", "epoch", what)
    check_value(d, "save_strategy", "epoch", what)
    check_value(d, "load_best_model_at_end", True, what)


# Overrides of every kind: chapter settings (batch sizes, epochs, weight decay, both strategies, best
# model), and fields the chapter leaves at their defaults; the learning rate stays the chapter's.
MANY_OVERRIDES = dict(per_device_train_batch_size=4, per_device_eval_batch_size=2, num_train_epochs=1,
                      weight_decay=0.0, eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
                      load_best_model_at_end=False, logging_steps=3, lr_scheduler_type="constant", warmup_steps=2)


@pytest.mark.judges("build_trainer", stage=2, item="wiring")
def test_build_trainer_applies_any_override(student, sentiment):
    """Every TrainingArguments field given as an override replaces the chapter's value (or the
    default), not only the ones the docstring names; the others stay the chapter's."""
    vocab_size, train, test = sentiment
    _, remote = tiny_model(student, vocab_size)
    out = scratch_dir(student)
    trainer = student.build_trainer(remote, train[:8], test[:8], out, **MANY_OVERRIDES)
    d = arguments_dict(student.build("operator.attrgetter", "args")(trainer), "build_trainer(...).args")
    what = msg("trainer.build_trainer_many_overrides", keys=", ".join(MANY_OVERRIDES))
    for key, want in MANY_OVERRIDES.items():
        check_value(d, key, want, what)
    check_value(d, "learning_rate", CHAPTER["learning_rate"], what)
    check_value(d, "output_dir", out, what)


@pytest.mark.judges("build_trainer", stage=2, item="wiring")
def test_build_trainer_wires_your_compute_metrics(student, sentiment):
    """trainer.compute_metrics gives what your finetuning.compute_metrics gives, on predictions where
    a different formula shows (12 labels, 3 of class 0: weighted F1 0.732, macro F1 0.621, binary
    F1 0.842), handed over as Trainer hands them (a transformers.EvalPrediction)."""
    vocab_size, train, test = sentiment
    _, remote = tiny_model(student, vocab_size)
    trainer = student.build_trainer(remote, train[:8], test[:8], scratch_dir(student))
    wired = student.build("operator.attrgetter", "compute_metrics")(trainer)
    assert is_handle(wired) and student.build("builtins.callable", wired) is True, msg("trainer.build_trainer_trainer_has")
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    preds = np.array([0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1])
    logits = np.where(np.eye(2, dtype=bool)[preds], 1.5, -0.5).astype(np.float32)
    pred = student.build("transformers.EvalPrediction", predictions=logits, label_ids=labels)
    try:      # (an unwritten finetuning.compute_metrics is a failure here, not "trainer not started")
        own = student.build("finetuning.compute_metrics", pred)
    except RemoteError as exc:
        raise AssertionError(msg("trainer.own_compute_metrics_failed", error=exc)) from None
    if not isinstance(own, dict):
        raise AssertionError(msg("trainer.own_compute_metrics_failed", error=type(own).__name__))
    got = as_record(wired(pred), ("accuracy", "f1"), "trainer.compute_metrics(EvalPrediction)")
    for key in ("accuracy", "f1"):
        assert_close(np.asarray(as_float(got[key], f"trainer.compute_metrics(...)[{key!r}]")),
                     np.asarray(as_float(own.get(key), f"finetuning.compute_metrics(...)[{key!r}]")), atol=1e-12,
                     name=msg("trainer.wired_vs_own_compute_metrics", key_name=key))


@pytest.mark.judges("build_trainer", "training_arguments", stage=0, item="contract")
def test_build_trainer_rejects_the_old_argument_name(student, sentiment):
    """An override TrainingArguments does not know (the chapter's evaluation_strategy) raises TypeError.
    (It judges training_arguments too: build_trainer starts from it, so an invalid TrainingArguments,
    e.g. load_best_model_at_end without matching strategies, raises its ValueError here first.)"""
    vocab_size, train, test = sentiment
    _, remote = tiny_model(student, vocab_size)
    with pytest.raises(TypeError, match="evaluation_strategy"):
        student.build_trainer(remote, train[:8], test[:8], scratch_dir(student), evaluation_strategy="epoch")


# ---------------------------------------------------------------- a real run
@pytest.mark.judges("build_trainer", stage=3, item="run")
def test_trainer_run_evaluates_every_epoch_with_accuracy_and_f1(run):
    r = the_run(run)
    entries = eval_entries(r.history)
    epochs = [round(float(h.get("epoch", -1))) for h in entries]
    assert epochs == list(range(1, RUN_EPOCHS + 1)), msg("trainer.expected_one_evaluation_end",
                                                         run_epochs=RUN_EPOCHS, epochs=epochs)
    for h in entries:
        for key in ("eval_accuracy", "eval_f1"):
            assert isinstance(h.get(key), float), msg("trainer.evaluation_after_epoch_reports",
                                                      h=h.get('epoch'), key_name=key, h_2=sorted(h))


@pytest.mark.judges("build_trainer", stage=3, item="run")
def test_trainer_run_metrics_equal_compute_metrics_on_predictions(run, student, reference):
    """trainer.evaluate()'s eval_accuracy / eval_f1 equal your finetuning.compute_metrics (and the
    reference's) on trainer.predict()'s logits for the same data."""
    r = the_run(run)
    logits, labels = np.asarray(r.logits), np.asarray(r.label_ids)
    want_labels = np.array([int(e["labels"]) for e in r.test])
    assert logits.shape == (len(r.test), 2) and np.array_equal(labels, want_labels), msg("trainer.trainer_predict_eval_dataset",
                                                                                         logits_shape=logits.shape,
                                                                                         labels=labels[:8])
    own = student.build("finetuning.compute_metrics", (logits, labels))
    ref = reference.compute_metrics((logits, labels))
    for key in ("accuracy", "f1"):
        got = r.metrics.get(f"eval_{key}")
        assert isinstance(got, float), msg("trainer.trainer_evaluate_reports_no", key_name=key,
                                           r_metrics=sorted(r.metrics))
        # the same logits give the same argmax: the numbers must agree to float precision
        assert_close(np.asarray(got, dtype=np.float64), np.asarray(own[key], dtype=np.float64), atol=1e-12,
                     name=msg("trainer.eval_compute_metrics_trainer", key_name=key))
        assert_close(np.asarray(got, dtype=np.float64), np.asarray(ref[key], dtype=np.float64), atol=1e-12,
                     name=msg("trainer.eval_accuracy_weighted_f1", key_name=key))


@pytest.mark.judges("build_trainer", stage=3, item="run")
def test_trainer_run_trains_and_saves_a_checkpoint_per_epoch(run):
    r = the_run(run)
    steps_per_epoch = math.ceil(254 / 16)
    want = {f"checkpoint-{steps_per_epoch * e}" for e in range(1, RUN_EPOCHS + 1)}
    got = set(r.listing)
    assert want <= got, msg("trainer.output_dir_hold_checkpoint", want=sorted(want), got=sorted(got))
    start = r.local.state_dict()
    moved = max(float((r.final[k].cpu().float() - v.float()).abs().max()) for k, v in start.items()
                if v.is_floating_point())
    # AdamW steps of 2e-3 move every trained weight by about 1e-3 per step; float noise is 1e-7
    assert moved > 1e-3, msg("trainer.after_trainer_train_weights", moved=moved)


@pytest.mark.judges("build_trainer", stage=3, item="run")
def test_trainer_run_loads_best_model_at_end(run):
    """With load_best_model_at_end the final model is the checkpoint with the lowest eval_loss."""
    r = the_run(run)
    losses = [float(h["eval_loss"]) for h in eval_entries(r.history)]
    final = float(r.metrics.get("eval_loss", float("nan")))
    # evaluating the same weights on the same data again: equal up to float summation order
    assert losses and abs(final - min(losses)) <= 1e-6, msg("trainer.after_training_eval_loss", final=final,
                                                            np=np.round(losses, 6).tolist())
    best_step = math.ceil(254 / 16) * (int(np.argmin(losses)) + 1)
    assert isinstance(r.best, str) and Path(r.best).name == f"checkpoint-{best_step}", msg("trainer.trainer_state_best_model",
                                                                                           r_best=r.best,
                                                                                           best_step=best_step)
