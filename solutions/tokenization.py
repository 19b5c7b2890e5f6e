"""Reference solution: WordPiece tokenization, English and Japanese (chapter 3.6, 3.8)."""
import unicodedata
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PADDING = {False: False, "do_not_pad": False, True: "longest", "longest": "longest", "max_length": "max_length"}
TRUNCATION = {False: False, "do_not_truncate": False, True: True, "longest_first": True}

# CJK Unified Ideographs blocks, as BERT's basic tokenizer lists them
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _check_text(name, text):
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}: {text!r:.80}")


def _is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch):
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True   # all non-letter/number ASCII, e.g. "$", "^", "`" (not category P)
    return unicodedata.category(ch).startswith("P")


def _is_cjk(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK)


def basic_tokenize(text, do_lower_case=True):
    _check_text("text", text)
    out = []
    for ch in text:
        if ch == "\x00" or ch == "\ufffd" or _is_control(ch):
            continue                                   # cleaning: control characters go
        if _is_whitespace(ch):
            out.append(" ")                            # any whitespace is a space
        elif _is_cjk(ch):
            out.append(f" {ch} ")                      # every CJK ideograph is a word
        else:
            out.append(ch)
    words = []
    for word in "".join(out).split():
        if do_lower_case:
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")   # strip accents
        piece = ""
        for ch in word:                                # split off each punctuation character
            if _is_punctuation(ch):
                if piece:
                    words.append(piece)
                words.append(ch)
                piece = ""
            else:
                piece += ch
        if piece:
            words.append(piece)
    return words


def wordpiece(word, vocab, unk_token="[UNK]", max_chars_per_word=100):
    _check_text("word", word)
    if len(word) > max_chars_per_word:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:                             # longest match first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk_token]                         # some part cannot be matched: the whole word is unknown
        pieces.append(piece)
        start = end
    return pieces


def load_vocab(vocab_file):
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"vocab_file {str(vocab_file)!r} does not exist or is not a file")
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.rstrip("\n")] = index           # id = line number
    return vocab


class WordPieceTokenizer:
    def __init__(self, vocab_file, do_lower_case=True):
        if not isinstance(vocab_file, (str, Path)):
            raise TypeError(f"vocab_file must be a path (str), got {type(vocab_file).__name__}")
        self.vocab = load_vocab(vocab_file)
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise ValueError(f"vocab_file {str(vocab_file)!r} has no {', '.join(missing)} token")
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.unk_token, self.unk_token_id = "[UNK]", self.vocab["[UNK]"]
        self.cls_token_id, self.sep_token_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.pad_token_id = self.vocab["[PAD]"]

    def words(self, text):
        return basic_tokenize(text, self.do_lower_case)

    def tokenize(self, text):
        _check_text("text", text)
        return [p for w in self.words(text) for p in wordpiece(w, self.vocab, self.unk_token)]

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def __call__(self, text, text_pair=None, max_length=None, padding=False, truncation=False):
        _check_text("text", text)
        if text_pair is not None:
            _check_text("text_pair", text_pair)
        if padding not in PADDING:
            raise ValueError(f"padding must be False, True, 'longest' or 'max_length', got {padding!r}")
        if truncation not in TRUNCATION:
            raise ValueError(f"truncation must be False, True or 'longest_first', got {truncation!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
            raise ValueError(f"max_length must be a non-negative int or None, got {max_length!r}")
        a = self.convert_tokens_to_ids(self.tokenize(text))
        b = self.convert_tokens_to_ids(self.tokenize(text_pair)) if text_pair else None   # "" = no pair, as HF
        if TRUNCATION[truncation] and max_length is not None:
            budget = max_length - (3 if b is not None else 2)
            if b is None and budget >= 0:
                a = a[:budget]
            elif b is not None and budget >= 0 and len(a) + len(b) > budget:
                # HF "longest_first": the shorter keeps min(its length, budget // 2), the other the
                # rest; on a tie the first counts as the shorter.
                if len(a) <= len(b):
                    n_a = min(len(a), budget // 2)
                    a, b = a[:n_a], b[:budget - n_a]
                else:
                    n_b = min(len(b), budget // 2)
                    a, b = a[:budget - n_b], b[:n_b]
        ids = [self.cls_token_id] + a + [self.sep_token_id]
        types = [0] * len(ids)
        if b is not None:
            ids += b + [self.sep_token_id]
            types += [1] * (len(b) + 1)
        mask = [1] * len(ids)
        if PADDING[padding] == "max_length" and max_length is not None and len(ids) < max_length:
            n = max_length - len(ids)                  # pad on the right
            ids, types, mask = ids + [self.pad_token_id] * n, types + [0] * n, mask + [0] * n
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


class JapaneseWordPieceTokenizer(WordPieceTokenizer):
    def __init__(self, vocab_file, do_lower_case=False):
        super().__init__(vocab_file, do_lower_case)
        import fugashi
        import unidic_lite

        dicdir = unidic_lite.DICDIR
        self.tagger = fugashi.GenericTagger(f'-d "{dicdir}" -r "{Path(dicdir) / "mecabrc"}"')

    def words(self, text):
        text = unicodedata.normalize("NFKC", text)     # full-width ASCII to half-width, etc.
        words = [w.surface for w in self.tagger(text)]
        return [w.lower() for w in words] if self.do_lower_case else words
