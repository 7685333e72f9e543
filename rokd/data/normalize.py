"""Romanian diacritics normalization.

Romanian has two encodings of the same letters: the correct comma-below ``ș ț Ș Ț`` (U+0219,
U+021B, U+0218, U+021A) and the legacy cedilla ``ş ţ Ş Ţ`` (U+015F, U+0163, U+015E, U+0162) that
pre-Unicode-5 keyboards produced. The mirror mixes both (RRT, RONEC, RO-STS: comma-below; the
``romaniancorpus`` collection: mostly cedilla; MOROCO: both). A tokenizer would otherwise learn
two spellings of every word with ș/ț, so every loader maps cedilla to comma-below by default.

``breve_i`` additionally maps the pre-1904 orthography's ``ĭ``/``Ĭ`` (e.g. ``Bucurescĭ``, frequent in
the ELTeC novels) to ``i``/``I``: the letter never occurs in modern text.
"""

from __future__ import annotations

CEDILLA_TO_COMMA = str.maketrans({"ş": "ș", "ţ": "ț", "Ş": "Ș", "Ţ": "Ț"})
BREVE_I = str.maketrans({"ĭ": "i", "Ĭ": "I"})
# A cedilla can also be a combining mark (s + U+0327); map it to the combining comma below (U+0326).
_COMBINING_CEDILLA = ("s\u0327", "t\u0327", "S\u0327", "T\u0327")

COMMA_LETTERS = "șțȘȚ"
CEDILLA_LETTERS = "şţŞŢ"


def normalize_diacritics(text: str, breve_i: bool = False) -> str:
    """Return ``text`` with cedilla ş ţ Ş Ţ replaced by comma-below ș ț Ș Ț (and ĭ→i if ``breve_i``)."""
    if "\u0327" in text:
        for seq in _COMBINING_CEDILLA:
            text = text.replace(seq, seq[0] + "\u0326")
        text = text.replace("s\u0326", "ș").replace("t\u0326", "ț").replace("S\u0326", "Ș").replace("T\u0326", "Ț")
    text = text.translate(CEDILLA_TO_COMMA)
    if breve_i:
        text = text.translate(BREVE_I)
    return text


def diacritic_counts(text: str) -> dict[str, int]:
    """Number of comma-below and of cedilla s/t letters in ``text`` (for the data chapter)."""
    return {
        "comma": sum(text.count(c) for c in COMMA_LETTERS),
        "cedilla": sum(text.count(c) for c in CEDILLA_LETTERS),
    }


def diacritic_style(text: str) -> str:
    """Classify a text as ``comma``, ``cedilla``, ``mixed`` or ``none`` by its s/t diacritics."""
    c = diacritic_counts(text)
    if c["comma"] and c["cedilla"]:
        return "mixed"
    if c["comma"]:
        return "comma"
    if c["cedilla"]:
        return "cedilla"
    return "none"
