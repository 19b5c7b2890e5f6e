"""Build data/ja_vocab.txt, the kata's small Japanese WordPiece vocabulary.

    python scripts/build_ja_vocab.py            # writes data/ja_vocab.txt
    python scripts/build_ja_vocab.py --check    # exits 1 if data/ja_vocab.txt differs from a fresh build

Steps (chapter 3.8): every sentence of data/ja_corpus.txt (written for this project) is
NFKC-normalised and cut into words by MeCab (fugashi with the unidic-lite dictionary, the
same set-up as HuggingFace's ``BertJapaneseTokenizer(word_tokenizer_type="mecab",
mecab_kwargs={"mecab_dic": "unidic_lite"})``); the `tokenizers` library's WordPiece
trainer then learns the vocabulary from those words.  The result is deterministic: the
same corpus gives the same file, byte for byte (checked with --check).
"""
from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")   # one thread: same merges every run

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "ja_corpus.txt"
VOCAB = ROOT / "data" / "ja_vocab.txt"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_SIZE = 5000        # an upper bound: the trainer stops when no pair is left to merge
MIN_FREQUENCY = 2        # a pair seen once is not merged, so rare words stay split into pieces


def read_corpus(path: Path = CORPUS) -> list[str]:
    """The corpus' sentences: one per line, '#' lines and blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def mecab_words(sentences: list[str]) -> list[str]:
    """Each sentence as MeCab words joined by single spaces."""
    import fugashi
    import unidic_lite

    dicdir = unidic_lite.DICDIR
    tagger = fugashi.GenericTagger(f'-d "{dicdir}" -r "{os.path.join(dicdir, "mecabrc")}"')
    return [" ".join(w.surface for w in tagger(unicodedata.normalize("NFKC", s))) for s in sentences]


def build(sentences: list[str]) -> list[str]:
    """The vocabulary, one token per line, ids in file order (special tokens first)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    lines = mecab_words(sentences)
    # Determinism: the trainer gives the continuation pieces "##x" their ids in hash-map order
    # and breaks ties between equally frequent pairs by id, so two runs can learn different
    # merges (huggingface/tokenizers#1794).  Handing it every "##x" up front, sorted, as
    # extra initial tokens fixes their ids and with them every tie-break.
    continuation = sorted({"##" + ch for line in lines for word in line.split() for ch in word[1:]})
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=MIN_FREQUENCY, special_tokens=SPECIAL_TOKENS + continuation,
        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    # Special tokens first (ids 0-4), then every learnt piece in sorted order.
    rest = sorted(t for t in tok.get_vocab() if t not in SPECIAL_TOKENS)
    return SPECIAL_TOKENS + rest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with data/ja_vocab.txt instead of writing it")
    parser.add_argument("--out", type=Path, default=VOCAB)
    args = parser.parse_args(argv)
    tokens = build(read_corpus())
    text = "\n".join(tokens) + "\n"
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from a fresh build'} ({len(tokens)} tokens)")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(tokens)} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
