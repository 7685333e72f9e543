"""WordPiece tokenizers for the miniature teachers, trained with the ``tokenizers`` library.

Two flavours mirror the real teachers' tokenizers:

- **cased** (``bert-base-romanian-cased-v1``): BERT normalizer with ``lowercase=False,
  strip_accents=False`` — case and diacritics are kept.
- **uncased** (``RoBERT-base``): ``lowercase=True`` but ``strip_accents=False``. This is what RoBERT's
  published ``tokenizer_config.json`` says (``"do_lower_case": true, "strip_accents": false``), so
  lower-casing keeps Romanian diacritics (ă â î ș ț). Note that the ``tokenizers`` BERT normalizer
  strips accents by default whenever it lower-cases, so ``strip_accents=False`` must be explicit.

Neither tokenizer maps cedilla ş/ţ to comma-below ș/ț: the real ones do not either; whether the text
is normalised is the corpus' business (``rokd.data``). The result is saved as a ``BertTokenizer``
folder (``save_pretrained``) that ``AutoTokenizer`` loads.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from rokd import io

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _lines(files: Iterable[str | Path], batch: int = 1000) -> Iterator[list[str]]:
    buf: list[str] = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    buf.append(line)
                    if len(buf) >= batch:
                        yield buf
                        buf = []
    if buf:
        yield buf


def train_wordpiece(
    texts: Iterable[str] | None = None,
    *,
    files: Iterable[str | Path] | None = None,
    vocab_size: int,
    lowercase: bool,
    min_frequency: int = 2,
    limit_alphabet: int | None = None,
    model_max_length: int = 512,
):
    """Train a BERT WordPiece tokenizer on ``texts`` (an iterable of strings) or ``files`` (UTF-8 text).

    Returns a ``transformers`` ``BertTokenizer`` (fast, tokenizers-backed) with the trained vocabulary,
    ``do_lower_case=lowercase`` and ``strip_accents=False``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    if (texts is None) == (files is None):
        raise ValueError("give exactly one of texts= or files=")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    # Rare characters (OCR noise, foreign scripts) would otherwise take a large share of a small vocabulary.
    if limit_alphabet is None:
        limit_alphabet = max(100, min(1000, vocab_size // 10))
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        limit_alphabet=limit_alphabet,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    if files is not None:
        files = [str(f) for f in files]
        for f in files:
            if not Path(f).exists():
                raise FileNotFoundError(f"tokenizer training file not found: {f}")
        iterator: Iterable = _lines(files)
    else:
        iterator = (t for t in texts if t and t.strip())
    tok.train_from_iterator(iterator, trainer=trainer)
    trained = tok.get_vocab()
    if len(trained) <= len(SPECIAL_TOKENS):
        raise ValueError("tokenizer training produced an empty vocabulary: the training text is empty")
    # The trainer breaks ties between equally frequent merges in hash-map order, so ids (and, on small
    # texts, a few tokens) differ from run to run. Ids are made a function of the token set (special
    # tokens first, then sorted); a resumed teacher build reuses its saved tokenizer instead of retraining.
    rest = sorted(t for t in trained if t not in SPECIAL_TOKENS)
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + rest)}
    # The transformers BertTokenizer rebuilds exactly this pipeline (normalizer, pre-tokenizer,
    # WordPiece, [CLS]/[SEP] template) from the vocabulary and the two flags.
    return BertTokenizer(
        vocab=vocab,
        do_lower_case=lowercase,
        strip_accents=False,
        tokenize_chinese_chars=True,
        model_max_length=model_max_length,
    )


def save_tokenizer(tokenizer, out_dir: str | Path) -> Path:
    """``save_pretrained`` into ``out_dir`` atomically (a marked temp folder, then rename); an existing
    ``out_dir`` is replaced only if rokd made it (or it is empty), never a folder of the user's."""
    stage = io.make_stage(out_dir, "a tokenizer")
    try:
        io.write_tokenizer(stage, tokenizer)
        return io.replace_dir(stage, out_dir, "a tokenizer")
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone after the rename; left over only on an error
