"""``python -m grader.student.plots`` (``nox -s plots``): the chapter's pictures, drawn from YOUR code.

Four PNG files:

* ``positional_encoding.png``: your ``positional_encoding.sinusoidal_table(100, 128)`` as a
  heat map (position down, dimension across), as the chapter draws it (3.4);
* ``attention_layer<N>.png``: the attention weights of a sentence in one layer of the real
  all-MiniLM-L6-v2 model, one heat map per head, computed by YOUR
  ``attention_torch.MultiHeadAttention(384, 12)`` holding that layer's weights (3.3);
* ``encoder_attention_layer<N>.png``: the same layer's weights as YOUR whole
  ``encoder.BertEncoder.from_hf(MiniLM)`` returns them with ``output_attentions=True`` (the
  graded code path: embeddings, every layer before N, then layer N's attention, 3.6);
* ``decoder_causal_attention.png``: the masked self-attention of YOUR
  ``decoder.DecoderLayer(384, 12, 1536)`` (its ``self_attn`` holding MiniLM's layer-N
  attention weights) under YOUR ``decoder.causal_mask``: every token attends only to itself
  and the tokens before it (3.1).

Each attention picture says whether the weights match HuggingFace's own (for the decoder:
the same weights with a causal mask), and by how much they differ when they do not.

Student code runs only in the grader's sandbox (exactly as when grading); this process
imports the trusted HuggingFace model and matplotlib, never the student's modules.
A picture whose exercise is not done yet is skipped with one line saying which exercise
to finish; the exit status is 0 when at least one picture was drawn, else 1.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

from grader import manifest as manifest_mod
from grader import settings
from grader.i18n import say
from grader.manifest import root
from grader.student.cli import UsageError, default_lang, resolve_target
from grader.sandbox.remote import StudentModule
from grader.sandbox.controller import RemoteError, Sandbox, SandboxDied

DEFAULT_SENTENCE = "The animal didn't cross the street because it was too tired."
PE_SHAPE = (100, 128)
D_MODEL, HEADS, LAYERS = 384, 12, 6
MAX_TOKENS = 48



CJK_FONTS = ("Noto Sans CJK JP", "Noto Sans JP", "Noto Serif CJK JP", "IPAexGothic", "IPAGothic",
             "IPAPGothic", "TakaoGothic", "TakaoPGothic", "VL Gothic", "Hiragino Sans",
             "Hiragino Kaku Gothic ProN", "Yu Gothic", "Meiryo", "MS Gothic", "Source Han Sans JP",
             "Droid Sans Fallback", "WenQuanYi Zen Hei", "Noto Sans CJK SC")


class Skipped(Exception):
    """A picture that cannot be drawn; the message is one line for the student."""


# ------------------------------------------------------------------ sandbox

def open_student(target: Path, name: str, device: str = "cpu"):
    """The student's module ``name`` from ``target``, in its sandbox, built exactly as
    the ``student`` fixture in grader/grading/plugin.py builds it (``grader.settings.sandbox_settings``)."""
    sandbox = Sandbox(target, name, [e.name for e in manifest_mod.load()],
                      **settings.sandbox_settings(target, manifest_mod.by_name()[name], device))
    return sandbox, StudentModule(sandbox, device, name)


def explain(exc: BaseException, lang: str, ex: str, func: str) -> str:
    if isinstance(exc, SandboxDied):
        return say("plots.died", lang, detail=exc.detail.rstrip("."), func=func, ex=ex)
    if isinstance(exc, RemoteError):
        if exc.type_name == "NotImplementedError":
            return say("plots.todo", lang, func=func, ex=ex)
        return say("plots.raised", lang, func=func, err=_one_line(exc.describe()), ex=ex)
    return say("plots.raised", lang, func=func, err=_one_line(f"{type(exc).__name__}: {exc}"), ex=ex)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _check_started(sandbox: Sandbox, lang: str, ex: str, target: Path):
    if not (target / f"{ex}.py").is_file():
        raise Skipped(say("plots.missing", lang, target=target, ex=ex))
    try:
        sandbox.start()
    except SandboxDied as exc:
        raise Skipped(say("plots.died", lang, detail=exc.detail.rstrip("."), func=f"import {ex}", ex=ex)) from None
    if sandbox.import_error is not None:
        err = sandbox.import_error
        if err.type_name == "NotImplementedError":
            raise Skipped(say("plots.todo", lang, func=f"{ex}.py", ex=ex))
        raise Skipped(say("plots.import", lang, ex=ex, err=_one_line(err.describe())))


def _attention_weights(result, L: int, lang: str, func: str, ex: str):
    """The weights of an ``(output, weights)`` pair, (1, HEADS, L, L) and finite, as float64 on the CPU;
    anything else is a picture that cannot be drawn (``Skipped``)."""
    import torch

    want = f"(output, weights) with weights of shape (1, {HEADS}, {L}, {L})"
    weights = result[1] if isinstance(result, (tuple, list)) and len(result) == 2 else None
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (1, HEADS, L, L):
        got = (f"a pair whose weights are {_describe_value(weights)}" if weights is not None
               else _describe_value(result))
        raise Skipped(say("plots.bad", lang, func=func, got=got, want=want, ex=ex))
    weights = weights.detach().cpu().double()
    if not torch.isfinite(weights).all():
        raise Skipped(say("plots.bad", lang, func=func, got="weights holding NaN or inf", want=want, ex=ex))
    return weights


def _describe_value(value) -> str:
    import numpy as np
    import torch

    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


# ------------------------------------------------------------------ fonts

def setup_fonts() -> bool:
    """Use a Japanese-capable font when one is installed; True if there is one."""
    import matplotlib
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    found = next((n for n in CJK_FONTS if n in names), None)
    if found is None:
        found = next((n for n in sorted(names) if "CJK" in n or n.endswith(" JP")), None)
    if found is None:
        return False
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", found]
    return True


def safe_label(text: str, cjk: bool) -> str:
    """Text matplotlib can draw: without a CJK font, characters past U+2E7F are escaped."""
    if cjk:
        return text
    return "".join(c if ord(c) < 0x2E80 else f"\\u{ord(c):04x}" for c in text)


# ------------------------------------------------------------------ picture a

def chapter_table(max_len: int, d_model: int):
    """The chapter's formula (3.4), computed here in float64 to compare with."""
    import numpy as np

    pos = np.arange(max_len)[:, None]
    i = np.arange(d_model)[None, :]
    angle = pos / np.power(10000.0, (2 * (i // 2)) / d_model)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


def draw_positional_encoding(target: Path, out: Path, lang: str, cjk: bool, opened=None) -> tuple[Path, list[str]]:
    import numpy as np
    import torch

    ex, func = "positional_encoding", "positional_encoding.sinusoidal_table"
    sandbox, student = opened or open_student(target, ex)
    try:
        _check_started(sandbox, lang, ex, target)
        try:
            table = student.sinusoidal_table(*PE_SHAPE)
        except (RemoteError, SandboxDied) as exc:
            raise Skipped(explain(exc, lang, ex, func)) from None
    finally:
        sandbox.close()
    want = f"a tensor of shape {PE_SHAPE}"
    if not isinstance(table, (torch.Tensor, np.ndarray)) or tuple(table.shape) != PE_SHAPE:
        raise Skipped(say("plots.bad", lang, func=func, got=_describe_value(table), want=want, ex=ex))
    table = (table.detach().cpu().double().numpy() if isinstance(table, torch.Tensor)
             else np.asarray(table, dtype=np.float64))
    if not np.isfinite(table).all():
        raise Skipped(say("plots.bad", lang, func=func, got="a table holding NaN or inf", want=want, ex=ex))
    notes = []
    diff = float(np.abs(table - chapter_table(*PE_SHAPE)).max())
    if diff > 1e-3:
        notes.append(say("plots.pe_diff", lang, diff=diff))

    import matplotlib.pyplot as plt

    shown_lang = lang if cjk else "en"   # Japanese titles only with a Japanese font
    fig, ax = plt.subplots(figsize=(10, 6.5))
    im = ax.imshow(table, cmap="RdBu", aspect="auto", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel(say("plots.title_pe_x", shown_lang))
    ax.set_ylabel(say("plots.title_pe_y", shown_lang))
    ax.set_title(say("plots.title_pe", shown_lang))
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path = out / "positional_encoding.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, notes


# ------------------------------------------------------------------ picture b

def draw_attention(target: Path, out: Path, lang: str, cjk: bool, layer: int,
                   sentence: str, opened=None) -> tuple[Path, list[str]]:
    ex = "attention_torch"
    notes = []
    sandbox, student = opened or open_student(target, ex)
    try:
        _check_started(sandbox, lang, ex, target)
        func = "attention_torch.MultiHeadAttention(384, 12)"
        try:
            mha = student.MultiHeadAttention(D_MODEL, HEADS)
            sd = mha.state_dict()
        except (RemoteError, SandboxDied) as exc:
            raise Skipped(explain(exc, lang, ex, func)) from None
        names = ("W_Q", "W_K", "W_V", "W_O")
        wanted = [f"{n}.{p}" for n in names for p in ("weight", "bias")]
        if not isinstance(sd, dict) or any(k not in sd for k in wanted):
            missing = wanted if not isinstance(sd, dict) else [k for k in wanted if k not in sd]
            raise Skipped(say("plots.params", lang, names=", ".join(missing)))

        hidden, mask, tokens, hf_weights, truncated = trusted_minilm(sentence, layer)
        if truncated:
            notes.append(say("plots.truncated", lang, n=MAX_TOKENS))
        attn = hf_layer_weights(layer)
        sd = {k: v for k, v in sd.items()}
        sd.update(attn)
        func = "MultiHeadAttention.forward"
        try:
            mha.load_state_dict(sd)
            mha.eval()
            result = mha(hidden, hidden, hidden, mask[:, None, None, :])
        except (RemoteError, SandboxDied) as exc:
            raise Skipped(explain(exc, lang, ex, func)) from None
    finally:
        sandbox.close()

    L = len(tokens)
    weights = _attention_weights(result, L, lang, func, ex)
    diff = float((weights - hf_weights.double()).abs().max())
    notes.append(say("plots.att_diff", lang, diff=diff) if diff > 1e-4 else say("plots.att_ok", lang, diff=max(diff, 1e-7)))
    if not cjk and safe_label(sentence, False) != sentence:
        notes.append(say("plots.no_font", lang))
    path = out / f"attention_layer{layer}.png"
    plot_heads(weights[0].numpy(), tokens, layer, sentence, lang, cjk, path)
    return path, notes


def trusted_minilm(sentence: str, layer: int):
    """Tokens, the input hidden states of ``layer`` and HF's own attention weights there,
    from the trusted all-MiniLM-L6-v2 (this process; no student code involved)."""
    import torch
    from transformers import BertTokenizer

    from grader.grading.hf import vocab_path

    tokenizer = BertTokenizer(vocab=str(vocab_path()))
    full = tokenizer([sentence], return_tensors="pt")
    enc = tokenizer([sentence], return_tensors="pt", truncation=True, max_length=MAX_TOKENS)
    truncated = full["input_ids"].shape[1] > enc["input_ids"].shape[1]
    model = minilm()
    with torch.no_grad():
        outputs = model(**enc, output_hidden_states=True, output_attentions=True)
    hidden = outputs.hidden_states[layer].float().contiguous()
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return hidden, enc["attention_mask"].bool(), tokens, outputs.attentions[layer], truncated


_MODEL = None


def minilm():
    global _MODEL
    if _MODEL is None:
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        from grader.grading.hf import minilm_dir

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        _MODEL = BertModel.from_pretrained(str(minilm_dir()), attn_implementation="eager").eval()
    return _MODEL


def hf_layer_weights(layer: int) -> dict:
    """Layer ``layer``'s query/key/value/output.dense as W_Q/W_K/W_V/W_O (the mapping of
    tests/test_attention_torch.py::test_matches_hf_bert_self_attention)."""
    hf = minilm().encoder.layer[layer].attention
    pairs = {"W_Q": hf.self.query, "W_K": hf.self.key, "W_V": hf.self.value, "W_O": hf.output.dense}
    out = {}
    for name, linear in pairs.items():
        out[f"{name}.weight"] = linear.weight.detach().cpu().clone()
        out[f"{name}.bias"] = linear.bias.detach().cpu().clone()
    return out


# ------------------------------------------------------------------ picture c: the whole encoder

def _attention_result(result, L: int, layers: int):
    """The attentions of ``forward(..., output_attentions=True)``, or None if malformed."""
    import torch

    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        return None
    atts = result[1]
    if not (isinstance(atts, (tuple, list)) and len(atts) == layers):
        return None
    if not all(isinstance(a, torch.Tensor) and tuple(a.shape) == (1, HEADS, L, L) for a in atts):
        return None
    return [a.detach().cpu().double() for a in atts]


def draw_encoder_attention(target: Path, out: Path, lang: str, cjk: bool, layer: int,
                           sentence: str, opened=None) -> tuple[Path, list[str]]:
    import torch

    from grader.grading.hf import minilm_dir

    ex = "encoder"
    notes = []
    hidden, mask, tokens, _, truncated = trusted_minilm(sentence, layer)
    ids, hf_atts = trusted_minilm_ids(sentence)
    if truncated:
        notes.append(say("plots.truncated", lang, n=MAX_TOKENS))
    sandbox, student = opened or open_student(target, ex)
    try:
        _check_started(sandbox, lang, ex, target)
        func = "encoder.BertEncoder.from_hf"
        try:
            remote = student.build("transformers.BertModel.from_pretrained", str(minilm_dir()))
            enc = student.BertEncoder.from_hf(remote)
            enc.eval()
            func = "BertEncoder.forward(..., output_attentions=True)"
            result = enc(ids, mask.long(), torch.zeros_like(ids), output_attentions=True)
        except (RemoteError, SandboxDied) as exc:
            raise Skipped(explain(exc, lang, ex, func)) from None
    finally:
        sandbox.close()
    L = len(tokens)
    atts = _attention_result(result, L, LAYERS)
    if atts is None:
        want = f"(last_hidden_state, attentions) with {LAYERS} attentions of shape (1, {HEADS}, {L}, {L})"
        raise Skipped(say("plots.bad", lang, func=func, got=_describe_value(result), want=want, ex=ex))
    weights = atts[layer]
    if not torch.isfinite(weights).all():
        raise Skipped(say("plots.bad", lang, func=func, got="weights holding NaN or inf", want="finite weights", ex=ex))
    diff = float((weights - hf_atts[layer].double()).abs().max())
    notes.append(say("plots.enc_diff", lang, layer=layer, diff=diff) if diff > 1e-4
                 else say("plots.enc_ok", lang, diff=max(diff, 1e-7)))
    if not cjk and safe_label(sentence, False) != sentence:
        notes.append(say("plots.no_font", lang))
    path = out / f"encoder_attention_layer{layer}.png"
    plot_heads(weights[0].numpy(), tokens, layer, sentence, lang, cjk, path, title="enc")
    return path, notes


def trusted_minilm_ids(sentence: str):
    """The sentence's input_ids (as trusted_minilm tokenizes it) and HF's attentions of every layer."""
    import torch
    from transformers import BertTokenizer

    from grader.grading.hf import vocab_path

    tokenizer = BertTokenizer(vocab=str(vocab_path()))
    enc = tokenizer([sentence], return_tensors="pt", truncation=True, max_length=MAX_TOKENS)
    with torch.no_grad():
        outputs = minilm()(**enc, output_attentions=True)
    return enc["input_ids"], outputs.attentions


# ------------------------------------------------------------------ picture d: the decoder's causal self-attention

def causal_reference(hidden, layer: int):
    """Causally masked attention weights with MiniLM layer ``layer``'s query/key weights,
    computed here (trusted), (1, HEADS, L, L)."""
    import torch

    w = {k: v.to(hidden.dtype) for k, v in hf_layer_weights(layer).items()}
    B, L, _ = hidden.shape
    d_k = D_MODEL // HEADS
    q = (hidden @ w["W_Q.weight"].T + w["W_Q.bias"]).view(B, L, HEADS, d_k).transpose(1, 2)
    k = (hidden @ w["W_K.weight"].T + w["W_K.bias"]).view(B, L, HEADS, d_k).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)
    allowed = torch.ones(L, L, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def draw_decoder_attention(target: Path, out: Path, lang: str, cjk: bool, layer: int,
                           sentence: str, opened=None) -> tuple[Path, list[str]]:
    import torch

    ex = "decoder"
    notes = []
    hidden, _, tokens, _, truncated = trusted_minilm(sentence, layer)
    if truncated:
        notes.append(say("plots.truncated", lang, n=MAX_TOKENS))
    L = len(tokens)
    sandbox, student = opened or open_student(target, ex)
    try:
        _check_started(sandbox, lang, ex, target)
        func = f"decoder.DecoderLayer({D_MODEL}, {HEADS}, {4 * D_MODEL})"
        try:
            dec = student.DecoderLayer(D_MODEL, HEADS, 4 * D_MODEL)
            dec.eval()
            attn = dec.self_attn
            sd = attn.state_dict()
            names = [f"{n}.{p}" for n in ("W_Q", "W_K", "W_V", "W_O") for p in ("weight", "bias")]
            if not isinstance(sd, dict) or any(k not in sd for k in names):
                raise Skipped(say("plots.params", lang, names=", ".join(k for k in names if not isinstance(sd, dict)
                                                                 or k not in sd)))
            sd.update(hf_layer_weights(layer))
            attn.load_state_dict(sd)
            func = f"decoder.causal_mask({L})"
            mask = student.causal_mask(L)
            func = "DecoderLayer.self_attn(x, x, x, causal_mask(L))"
            result = attn(hidden, hidden, hidden, mask)
        except (RemoteError, SandboxDied) as exc:
            raise Skipped(explain(exc, lang, ex, func)) from None
    finally:
        sandbox.close()
    weights = _attention_weights(result, L, lang, func, ex)
    above = torch.ones(L, L, dtype=torch.bool).triu(1)
    leak = float((weights * above).sum(-1).max())
    if leak > 1e-6:
        notes.append(say("plots.dec_leak", lang, leak=leak))
    diff = float((weights - causal_reference(hidden.double(), layer).double()).abs().max())
    notes.append(say("plots.dec_diff", lang, diff=diff) if diff > 1e-4 else say("plots.dec_ok", lang, diff=max(diff, 1e-7)))
    if not cjk and safe_label(sentence, False) != sentence:
        notes.append(say("plots.no_font", lang))
    path = out / "decoder_causal_attention.png"
    plot_heads(weights[0].numpy(), tokens, layer, sentence, lang, cjk, path, title="dec")
    return path, notes


def plot_heads(weights, tokens, layer, sentence, lang, cjk, path: Path, title: str = "att") -> None:
    import matplotlib.pyplot as plt

    shown_lang = lang if cjk else "en"   # Japanese titles only with a Japanese font
    labels = [safe_label(tok, cjk) for tok in tokens]
    L = len(labels)
    cols = 4
    rows = math.ceil(weights.shape[0] / cols)
    size = 3.2 + 0.06 * L
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size + 1.0), squeeze=False)
    font = max(4.0, min(9.0, 180.0 / L))
    vmax = float(weights.max()) or 1.0
    im = None
    for h, ax in enumerate(axes.ravel()):
        if h >= weights.shape[0]:
            ax.axis("off")
            continue
        im = ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(say("plots.title_head", shown_lang, h=h), fontsize=10)
        ax.set_xticks(range(L))
        ax.set_yticks(range(L))
        ax.set_xticklabels(labels, rotation=90, fontsize=font)
        ax.set_yticklabels(labels, fontsize=font)
        if h % cols == 0:
            ax.set_ylabel(say("plots.title_att_y", shown_lang), fontsize=9)
        if h // cols == rows - 1:
            ax.set_xlabel(say("plots.title_att_x", shown_lang), fontsize=9)
    shown = sentence if len(sentence) <= 90 else sentence[:87] + "..."
    fig.suptitle(say("plots.title_" + title, shown_lang, layer=layer) + "\n\"" + safe_label(shown, cjk) + "\"", fontsize=13)
    fig.tight_layout(rect=(0, 0, 0.93, 0.96))
    cax = fig.add_axes((0.945, 0.15, 0.012, 0.7))
    fig.colorbar(im, cax=cax)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------ main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m grader.student.plots",
        description="Draw the chapter's pictures from your own implementation: the positional-encoding "
                    "heat map and the attention weights of a sentence in the real MiniLM model (your "
                    "MultiHeadAttention, your whole BertEncoder, your DecoderLayer with its causal mask).")
    p.add_argument("--target", default="exercises",
                   help="folder of your modules: exercises (default), solutions, or any path")
    p.add_argument("--out", default=None, help="folder for the PNG files (default: plots/)")
    p.add_argument("--layer", type=int, default=0,
                   help=f"which MiniLM layer's attention to draw: 0 (first) to {LAYERS - 1} (last); default 0")
    p.add_argument("--sentence", default=DEFAULT_SENTENCE, help="the sentence to run through the model")
    p.add_argument("--lang", choices=["en", "ja"], default=None, help="language of messages (default: locale)")
    args = p.parse_args(argv)
    if not 0 <= args.layer < LAYERS:
        raise UsageError(f"--layer {args.layer}: all-MiniLM-L6-v2 has layers 0 to {LAYERS - 1}")
    if not args.sentence.strip():
        raise UsageError("--sentence: give a non-empty sentence")
    args.target = resolve_target(args.target)
    args.out = Path(args.out) if args.out is not None else root() / "plots"
    args.lang = args.lang or default_lang()
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        args.out.mkdir(parents=True, exist_ok=True)
    except UsageError as exc:
        print(f"grader.plots: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"grader.plots: error: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import matplotlib

    matplotlib.use("Agg")
    warnings.filterwarnings("ignore", message=".*[Gg]lyph.*missing.*")
    cjk = setup_fonts()
    lang = args.lang
    # The sandboxes start (import torch, the student's module) in the background while the
    # positional-encoding picture is drawn; _check_started waits for each.
    opened, starts = {}, {}
    for ex in ("attention_torch", "encoder", "decoder"):
        opened[ex] = open_student(args.target, ex)
        starts[ex] = _background_start(opened[ex][0], args.target / f"{ex}.py")

    def after_start(ex, draw):
        def job():
            starts[ex].join()
            return draw(args.target, args.out, args.lang, cjk, args.layer, args.sentence, opened=opened[ex])
        return job

    drawn = 0
    extra = {"layer": args.layer, "heads": HEADS}
    jobs = (("pe_what", "pe_done", lambda: draw_positional_encoding(args.target, args.out, args.lang, cjk), {}),
            ("att_what", "att_done", after_start("attention_torch", draw_attention), extra),
            ("enc_what", "enc_done", after_start("encoder", draw_encoder_attention), extra),
            ("dec_what", "dec_done", after_start("decoder", draw_decoder_attention), extra))
    try:
        for what, done, job, extra in jobs:
            try:
                path, notes = job()
            except Skipped as exc:
                print(say("plots.skipped", lang, what=say("plots." + what, lang), why=exc), flush=True)
                continue
            drawn += 1
            print(say("plots." + done, lang, path=_shown(path), **extra), flush=True)
            for note in notes:
                print(note, flush=True)
    finally:
        for ex in opened:
            starts[ex].join()
            opened[ex][0].close()
    if not drawn:
        print(say("plots.none", lang))
    return 0 if drawn else 1


def _background_start(sandbox: Sandbox, module_file: Path):
    """Start ``sandbox`` in a thread (errors are kept on the sandbox: dead / import_error)."""
    import threading

    def run():
        try:
            if module_file.is_file():
                sandbox.start()
        except Exception:   # SandboxDied is recorded in sandbox.dead; reported when used
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _shown(path: Path) -> str:
    path = path.resolve()
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


if __name__ == "__main__":
    sys.exit(main())
