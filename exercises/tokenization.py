"""演習：WordPiece によるトークン化（英語と日本語）（3.6 節、3.8 節）。

作るもの：``basic_tokenize``（空白・句読点で分割、小文字化とアクセント除去、漢字を 1 文字ずつ）、
``wordpiece``（1 単語を最長一致でサブワードに、続きは ``##``）、``WordPieceTokenizer``
（[CLS]/[SEP] を付けて input_ids・token_type_ids・attention_mask を返す。切り詰めとパディングは
HuggingFace と同じ意味）、``JapaneseWordPieceTokenizer``（MeCab で単語に分けてから WordPiece）。
章との違い：日本語は章の cl-tohoku のモデルではなく、unidic-lite 辞書とこのカタ独自の小さな語彙
（data/ja_vocab.txt）を使います（採点中はダウンロードできないため）。

Exercise: WordPiece tokenization (トークン化), English and Japanese — chapter 3.6 and 3.8.

BERT never sees characters or whole words: it sees *subwords* (サブワード) from a fixed
vocabulary (語彙) of about 30,000 entries.  Turning text into ids takes three steps:

1. ``basic_tokenize``: clean the text and cut it into words (whitespace and punctuation;
   lower-casing and accent stripping for the uncased model; every CJK ideograph alone).
   For Japanese, which has no spaces between words, MeCab (形態素解析) does this step.
2. ``wordpiece``: cut each word into vocabulary pieces, greedy longest-match-first; a piece
   that continues a word is written with ``##`` (``"unaffable" -> ["un", "##aff", "##able"]``).
3. ``WordPieceTokenizer.__call__``: add ``[CLS]`` / ``[SEP]``, map tokens to ids, and build
   ``token_type_ids`` and ``attention_mask``, truncating and padding like HuggingFace.

The graded yardstick is transformers 5's ``BertTokenizer`` with the real ``bert-base-uncased``
vocabulary: your tokens and ids must be identical, character for character.  The chapter's
example ``"Hello, how are you?"`` gives ``[101, 7592, 1010, 2129, 2024, 2017, 1029, 102]``.
The Japanese yardstick is ``BertJapaneseTokenizer(word_tokenizer_type="mecab",
mecab_kwargs={"mecab_dic": "unidic_lite"})`` with the kata's own vocabulary
``data/ja_vocab.txt`` (built from ``data/ja_corpus.txt`` by ``scripts/build_ja_vocab.py``).
The chapter loads cl-tohoku's pretrained Japanese BERT tokenizer from the HuggingFace Hub; the
kata cannot download anything while grading, so it uses the ``unidic-lite`` dictionary (a pip
package) and a small vocabulary of its own.  The ids differ from cl-tohoku's; the method (MeCab
words, then WordPiece) is the same, and the chapter's sentence 「自然言語処理は人工知能の重要な
分野です。」 is one of the checked sentences.

Run ``nox -s grade -- tokenization`` to check your work, and
``nox -s hint -- tokenization`` if you are stuck.
"""
import unicodedata  # noqa: F401  (categories, NFD/NFKC normalisation)
from pathlib import Path  # noqa: F401


def basic_tokenize(text, do_lower_case=True):
    """BERT's basic tokenizer: text -> list of words (no vocabulary involved yet).

    In this order:

    1. Clean: drop NUL (U+0000), the replacement character U+FFFD and every control or
       format character (``unicodedata.category(ch)`` starting with ``"C"``), except tab,
       newline and carriage return, which are whitespace.  Every whitespace character
       (space, ``\\t``, ``\\n``, ``\\r``, or category ``"Zs"`` such as U+3000, the
       ideographic space) becomes a plain space.
    2. CJK: put spaces around every CJK ideograph (漢字), so each one is a word of its own.
       The blocks are U+4E00-9FFF, U+3400-4DBF, U+20000-2A6DF, U+2A700-2B73F,
       U+2B740-2B81F, U+2B820-2CEAF, U+F900-FAFF and U+2F800-2FA1F.  Kana are *not* in them.
    3. Split on whitespace.  If ``do_lower_case``: lower-case each word, then strip accents
       (decompose with ``unicodedata.normalize("NFD", ...)`` and drop the combining marks,
       category ``"Mn"``): ``"Naïve" -> "naive"``.
    4. Split every punctuation character off as a word of its own: category ``"P..."``, and
       also every non-letter, non-digit ASCII character (``$``, ``+``, ``^``, ``` ` ``` ...).
       ``"don't" -> ["don", "'", "t"]``.

    Examples: ``basic_tokenize("Hello, World!") == ["hello", ",", "world", "!"]``,
    ``basic_tokenize("日本語です", do_lower_case=False) == ["日", "本", "語", "です"]``,
    ``basic_tokenize("Héllo", do_lower_case=False) == ["Héllo"]``.  Careful with the default
    ``do_lower_case=True`` on Japanese: accent stripping also drops the voicing mark (濁点) of
    ``"で"``, as in HuggingFace's ``BertTokenizer``: ``basic_tokenize("日本語です")`` gives
    ``[..., "てす"]`` (the chapter's ``BertJapaneseTokenizer`` defaults to ``do_lower_case=False``).

    Raises ``TypeError`` (naming ``text``) if ``text`` is not a ``str``.
    """
    raise NotImplementedError("basic_tokenize")


def wordpiece(word, vocab, unk_token="[UNK]", max_chars_per_word=100):
    """Cut one word into WordPiece pieces: greedy longest-match-first (最長一致).

    Args:
        word: one word from ``basic_tokenize`` (a ``str`` without whitespace).
        vocab: the vocabulary, a dict ``token -> id`` (only ``token in vocab`` is needed).
        unk_token: what an unknown word becomes.
        max_chars_per_word: a word with more characters than this is ``[unk_token]`` at once.

    Start at the beginning of the word; take the longest prefix that is in ``vocab``; then,
    from where it ended, the longest continuation that is in ``vocab`` *written with* ``##``
    (``"##aff"``); and so on to the end.  If at some point no piece matches, the WHOLE word
    becomes ``[unk_token]`` (not just the part that failed).

    Examples (bert-base-uncased): ``"unaffable" -> ["un", "##aff", "##able"]``,
    ``"hello" -> ["hello"]``, ``"a" * 101 -> ["[UNK]"]``.

    Raises ``TypeError`` (naming ``word``) if ``word`` is not a ``str``.
    """
    raise NotImplementedError("wordpiece")


class WordPieceTokenizer:
    """A BERT tokenizer from a ``vocab.txt`` file: ``basic_tokenize`` then ``wordpiece``.

    ``WordPieceTokenizer(vocab_file, do_lower_case=True)``:
        ``vocab_file`` is a text file with one token per line; a token's id is its line
        number, starting at 0 (``[PAD]`` is 0 and ``[CLS]`` 101 in bert-base-uncased).  The
        file must contain ``[PAD]``, ``[UNK]``, ``[CLS]`` and ``[SEP]``.

    Raises:
        FileNotFoundError (or ValueError), naming the file, if ``vocab_file`` does not exist.
        ValueError naming ``[UNK]`` (or the missing token) if the vocabulary lacks it.
    """

    def __init__(self, vocab_file, do_lower_case=True):
        raise NotImplementedError("WordPieceTokenizer.__init__")

    def tokenize(self, text):
        """Text -> list of WordPiece tokens (strings), without ``[CLS]`` / ``[SEP]``.

        ``tokenize("Hello, how are you?") == ["hello", ",", "how", "are", "you", "?"]``.
        Raises ``TypeError`` (naming ``text``) if ``text`` is not a ``str``.
        """
        raise NotImplementedError("WordPieceTokenizer.tokenize")

    def convert_tokens_to_ids(self, tokens):
        """List of tokens -> list of ids (ints); a token not in the vocabulary gets ``[UNK]``'s id."""
        raise NotImplementedError("WordPieceTokenizer.convert_tokens_to_ids")

    def __call__(self, text, text_pair=None, max_length=None, padding=False, truncation=False):
        """Encode one text or a sentence pair (文ペア) as BERT's input.

        Returns a dict of three lists of ints, as HuggingFace's tokenizers do:

        - ``input_ids``: ``[CLS] A [SEP]``, or ``[CLS] A [SEP] B [SEP]`` for a pair;
        - ``token_type_ids`` (segment ids): 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``;
        - ``attention_mask``: 1 for real tokens, 0 for padding.

        The arguments mean what they mean in HuggingFace:

        - ``truncation``: ``False`` (or ``"do_not_truncate"``) never truncates.  ``True`` (or
          ``"longest_first"``) cuts the tokens (not the special ones) so the whole fits in
          ``max_length`` (no ``max_length``: nothing to cut, however long).  One text keeps
          its first ``max_length - 2`` tokens.  A pair ("longest_first") keeps
          ``budget = max_length - 3`` tokens in all: if both do not fit, the *shorter* one
          keeps ``min(its length, budget // 2)`` tokens and the other one the rest of the
          budget; when both are equally long, the first counts as the shorter.
          Example: lengths 7 and 3, ``max_length=8`` -> budget 5 -> keeps 3 and 2.
        - ``padding``: ``False`` (or ``"do_not_pad"``) never pads.  ``True`` (or ``"longest"``) pads
          to the longest sequence of the batch, and a single text is its own batch, so it is
          not padded.  ``"max_length"`` pads on the right with ``[PAD]``'s id up to
          ``max_length`` (a longer encoding is left as it is).

        Example (bert-base-uncased): ``tok("Hello, how are you?")["input_ids"] ==
        [101, 7592, 1010, 2129, 2024, 2017, 1029, 102]``.

        Raises ``TypeError`` naming ``text`` / ``text_pair`` for an argument that is not text
        (``None`` as ``text``, a number, bytes).  A list of texts, which HuggingFace takes as a
        batch, is not graded: you may reject it or accept it.
        (HuggingFace treats ``text_pair=""`` as no pair; you may too.)
        """
        raise NotImplementedError("WordPieceTokenizer.__call__")


class JapaneseWordPieceTokenizer(WordPieceTokenizer):
    """Japanese BERT's tokenizer (chapter 3.8): MeCab words, then WordPiece.

    ``JapaneseWordPieceTokenizer(vocab_file, do_lower_case=False)`` — note the default: the
    Japanese model is cased.  Everything else (ids, ``__call__``) works as in
    ``WordPieceTokenizer``; only the word-splitting step changes:

    1. Normalise the text with ``unicodedata.normalize("NFKC", text)``: full-width
       ``ＡＢＣ１２３`` become ``ABC123`` and half-width ``ｶﾀｶﾅ`` become ``カタカナ``.
    2. Cut it into words (形態素) with MeCab through ``fugashi`` and the ``unidic-lite``
       dictionary; a word is ``node.surface``.  Spaces are not words.
    3. If ``do_lower_case``, lower-case each word.  No accent stripping, no punctuation split.
    4. ``wordpiece`` each word with this vocabulary.

    This equals HuggingFace's ``BertJapaneseTokenizer(vocab_file, word_tokenizer_type="mecab",
    subword_tokenizer_type="wordpiece", mecab_kwargs={"mecab_dic": "unidic_lite"})``.
    Example with ``data/ja_vocab.txt``: ``"自然言語処理を研究しています。"`` ->
    ``["自", "##然", "言語", "処理", "を", "研究", "し", "て", "い", "ます", "。"]``.

    Hint: ``fugashi.Tagger()`` finds ``unidic-lite`` by itself; HuggingFace builds
    ``fugashi.GenericTagger(f'-d "{unidic_lite.DICDIR}" -r "{unidic_lite.DICDIR}/mecabrc"')``.
    Both give the same words.  Build the tagger once, in ``__init__``.
    """

    def __init__(self, vocab_file, do_lower_case=False):
        raise NotImplementedError("JapaneseWordPieceTokenizer.__init__")
