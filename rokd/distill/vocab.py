"""Tokenizer families and the normalised surface form of a token: what lets two vocabularies be compared.

A token string means different things in different tokenizer families:

| family | model | word-start token | continuation token | alphabet |
|---|---|---|---|---|
| ``wordpiece`` (BERT) | WordPiece | ``casa`` | ``##sa`` | text |
| ``sentencepiece`` (XLM-R, CamemBERT, mmBERT) | Unigram, or BPE + Metaspace | ``▁casa`` | ``sa`` | text |
| ``byte-bpe`` (RoBERTa, GPT-2) | BPE + ByteLevel pre-tokenizer | ``Ġcasa`` | ``sa`` | bytes shown as characters |
| ``bpe`` / ``wordlevel`` | BPE (its own continuation prefix, if any) / WordLevel | ``casa`` | ``##sa`` / -- | text |

:func:`tokenizer_family` reads the family from the tokenizer's own pipeline (``backend_tokenizer``: the
model type, the pre-tokenizer, the normalizer), never from its Python class. :func:`surface_form` turns
a token into ``(text, starts_word)``: markers removed, the byte alphabet decoded to UTF-8 (GPT-2's
``bytes_to_unicode`` inverse, through the ``tokenizers`` ByteLevel decoder), NFC, Romanian cedilla
``ş ţ Ş Ţ`` -> comma-below ``ș ț Ș Ț``, and -- only when asked, because one of the two tokenizers is
uncased or strips accents -- lower-cased and accent-stripped. Two tokens of different families stand
for the same text when their surface texts are equal; whether each starts a word is kept apart,
because the families disagree on it (a WordPiece ``.`` after a word starts a word; a SentencePiece
``.`` there does not; a byte-level BPE's first word of a line has no ``Ġ``). The vocabulary map
(:class:`rokd.distill.ensemble.VocabularyMap`) uses the two flags position by position.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rokd.errors import UsageError

FAMILIES = ("wordpiece", "sentencepiece", "byte-bpe", "bpe", "wordlevel")
_CEDILLA = str.maketrans({"ş": "ș", "ţ": "ț", "Ş": "Ș", "Ţ": "Ț"})
# Roles whose special tokens correspond across families (``[MASK]`` <-> ``<mask>``).
SPECIAL_ROLES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token")


class TokenizerFamilyError(UsageError, ValueError):
    """A tokenizer rokd cannot align or map (no character offsets, unknown model type)."""


@dataclass(frozen=True)
class TokenizerFamily:
    """How a tokenizer writes its tokens (see the module doc)."""

    kind: str  # one of FAMILIES
    word_start: str = ""  # marker of a word-initial token: "▁" (sentencepiece); byte-bpe: a decoded space
    continuation: str = ""  # prefix of a word-internal token: "##" (wordpiece)
    uncased: bool = False  # the normalizer lower-cases the text
    strips_accents: bool = False  # the normalizer removes combining marks

    def __post_init__(self):
        if self.kind not in FAMILIES:
            raise ValueError(f"unknown tokenizer family {self.kind!r}; known: {list(FAMILIES)}")


WORDPIECE = TokenizerFamily("wordpiece", continuation="##")


def _walk(node: Any):
    """Every component of a (possibly nested ``Sequence``) normalizer / pre-tokenizer spec."""
    if isinstance(node, dict):
        yield node
        for key in ("normalizers", "pretokenizers"):
            for child in node.get(key) or []:
                yield from _walk(child)


def _spec(tokenizer) -> dict:
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        raise TokenizerFamilyError(
            f"{type(tokenizer).__name__} is not a fast tokenizer: rokd aligns tokenizers by character offsets, "
            "which only fast (Rust) tokenizers give; load it with AutoTokenizer.from_pretrained(..., use_fast=True) "
            "or convert it with `tokenizers`"
        )
    return json.loads(tokenizer.backend_tokenizer.to_str())


def tokenizer_family(tokenizer) -> TokenizerFamily:
    """The family of a fast tokenizer, read from its model type, pre-tokenizer and normalizer."""
    spec = _spec(tokenizer)
    model = spec.get("model") or {}
    model_type = model.get("type")
    pre = list(_walk(spec.get("pre_tokenizer")))
    norm = list(_walk(spec.get("normalizer")))
    bert = [n for n in norm if n.get("type") == "BertNormalizer"]
    uncased = any(n.get("type") == "Lowercase" for n in norm) or any(n.get("lowercase") for n in bert)
    # BertNormalizer: strip_accents None means "as lowercase"
    strips = any(n.get("type") == "StripAccents" for n in norm) or any(
        n.get("strip_accents") or (n.get("strip_accents") is None and n.get("lowercase")) for n in bert
    )
    # A slow-tokenizer flag kept in the config (a few converted tokenizers lower-case in Python only).
    uncased = uncased or bool(getattr(tokenizer, "init_kwargs", {}).get("do_lower_case", False))
    flags = dict(uncased=uncased, strips_accents=strips)
    if any(p.get("type") == "ByteLevel" for p in pre):
        if model_type != "BPE":
            raise TokenizerFamilyError(f"a byte-level pre-tokenizer with a {model_type} model is not supported")
        return TokenizerFamily("byte-bpe", word_start=" ", **flags)
    meta = [p for p in pre if p.get("type") == "Metaspace"]
    if model_type == "Unigram" or meta:
        marker = meta[0].get("replacement", "▁") if meta else "▁"
        return TokenizerFamily("sentencepiece", word_start=marker, **flags)
    if model_type == "WordPiece":
        return TokenizerFamily("wordpiece", continuation=model.get("continuing_subword_prefix") or "##", **flags)
    if model_type == "BPE":
        return TokenizerFamily("bpe", continuation=model.get("continuing_subword_prefix") or "", **flags)
    if model_type == "WordLevel":
        return TokenizerFamily("wordlevel", **flags)
    raise TokenizerFamilyError(
        f"unknown tokenizer model type {model_type!r}; rokd knows WordPiece, Unigram, BPE and WordLevel"
    )


@lru_cache(maxsize=1)
def _byte_decoder():
    from tokenizers import decoders

    return decoders.ByteLevel()


def normalise_text(text: str, fold_case: bool = False, strip_accents: bool = False) -> str:
    """NFC, cedilla -> comma-below; lower-cased / accents removed only when asked."""
    text = unicodedata.normalize("NFC", text).translate(_CEDILLA)
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = unicodedata.normalize("NFC", text)
    if fold_case:
        text = text.lower()
    return text


def surface_form(
    token: str, family: TokenizerFamily, *, fold_case: bool = False, strip_accents: bool = False
) -> tuple[str, bool] | None:
    """``(text, starts_word)`` of a (non-special) token, or None when it stands for no whole character
    (a lone marker, a fragment of a multi-byte character, whitespace)."""
    kind = family.kind
    if kind == "byte-bpe":
        raw = _byte_decoder().decode([token])
        if "\ufffd" in raw:  # a fragment of a multi-byte UTF-8 character
            return None
        starts, text = raw[:1].isspace(), raw.strip()
    elif kind == "sentencepiece":
        starts = token.startswith(family.word_start)
        text = token.replace(family.word_start, " ").strip()
    elif family.continuation and token.startswith(family.continuation) and len(token) > len(family.continuation):
        starts, text = False, token[len(family.continuation) :]
    else:
        starts, text = True, token
    if not text or text.isspace():
        return None
    return normalise_text(text, fold_case, strip_accents), starts


def special_roles(tokenizer) -> dict[int, str]:
    """Token id -> role (``mask_token``, ``cls_token``, ...) of the tokenizer's special tokens."""
    out: dict[int, str] = {}
    for role in SPECIAL_ROLES:
        token_id = getattr(tokenizer, f"{role}_id", None)
        if token_id is not None and int(token_id) not in out:
            out[int(token_id)] = role
    return out


def looks_uncased(vocab: dict[str, int]) -> bool:
    """For a bare vocabulary (no tokenizer): no ordinary token has an upper-case letter."""
    return not any(t != t.lower() for t in vocab if not (t[:1] in "[<" and t[-1:] in "]>"))


@dataclass
class SurfaceTable:
    """The surface form of every token id of one vocabulary (``None``: maps nowhere), plus specials."""

    texts: list[str | None]
    starts: list[bool]
    special: dict[int, str]


def surface_table(
    vocab: dict[str, int],
    family: TokenizerFamily,
    size: int,
    *,
    fold_case: bool,
    strip_accents: bool,
    special: dict[int, str] | None = None,
) -> SurfaceTable:
    texts: list[str | None] = [None] * size
    starts = [True] * size
    special = dict(special or {})
    for token, i in vocab.items():
        if i in special or i >= size:
            continue
        form = surface_form(token, family, fold_case=fold_case, strip_accents=strip_accents)
        if form is not None:
            texts[i], starts[i] = form
    return SurfaceTable(texts, starts, special)
