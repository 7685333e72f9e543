"""Parsers for the raw formats: CoNLL-U, JSON arrays, TSV. Every malformed record raises
:class:`DataFormatError` naming ``file:line``."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import conllu
from conllu.exceptions import ParseException

from rokd.data.errors import DataFormatError, utf8_text


def read_conllu(path: Path) -> list[dict]:
    """Sentences of a CoNLL-U file as ``{"id", "tokens", "upos", "xpos"}`` (syntactic words only).

    Blocks are split on blank lines here so that errors can name the line; each block is parsed with
    the ``conllu`` library. Multiword-token ranges (``1-2``) and empty nodes (``1.1``) are skipped.
    """
    sentences: list[dict] = []
    block: list[str] = []
    start = 1
    with utf8_text(path), open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if line.strip():
                if not block:
                    start = lineno
                if not line.startswith("#") and line.count("\t") != 9:
                    raise DataFormatError(
                        path,
                        lineno,
                        f"CoNLL-U token line must have 10 tab-separated fields, found {line.count(chr(9)) + 1}: "
                        f"{line[:80]!r}",
                    )
                block.append(line)
            elif block:
                sentences.append(_conllu_block(path, start, block, len(sentences)))
                block = []
    if block:
        sentences.append(_conllu_block(path, start, block, len(sentences)))
    return sentences


def _conllu_block(path: Path, start: int, block: list[str], index: int) -> dict:
    try:
        (sent,) = conllu.parse("\n".join(block) + "\n\n")
    except (ParseException, ValueError) as e:
        raise DataFormatError(
            path, start, f"unparsable CoNLL-U sentence (lines {start}-{start + len(block) - 1}): {e}"
        ) from e
    tokens, upos, xpos = [], [], []
    first_token_line = start + sum(1 for b in block if b.startswith("#"))
    for offset, tok in enumerate(sent):
        if not isinstance(tok["id"], int):
            continue
        if tok["upos"] in (None, "_"):
            raise DataFormatError(path, first_token_line + offset, f"token {tok['form']!r} has no UPOS tag")
        tokens.append(tok["form"])
        upos.append(tok["upos"])
        # An unspecified XPOS is a value of its own ("_"): 2 tokens of the reconstructed RRT train (UPOS X).
        xpos.append(tok["xpos"] or "_")
    if not tokens:
        raise DataFormatError(path, start, "CoNLL-U sentence without any token")
    return {
        "id": sent.metadata.get("sent_id", f"{Path(path).stem}-{index + 1}"),
        "tokens": tokens,
        "upos": upos,
        "xpos": xpos,
    }


_ARRAY_IN_OBJECT = re.compile(r'\s*\{\s*"(?P<key>[^"]+)"\s*:\s*\[')


def iter_json_array(path: Path, key: str | None = None) -> Iterator[tuple[int, object]]:
    """Yield ``(line, record)`` for each element of a top-level JSON array (or of ``{key: [...]}``).

    Elements are decoded one at a time with ``raw_decode`` so a syntax error names its line.
    """
    with utf8_text(path):
        text = Path(path).read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    if key is None:
        pos = len(text) - len(text.lstrip())
        if not text[pos : pos + 1] == "[":
            raise DataFormatError(path, 1, "expected a JSON array at the top level")
        pos += 1
    else:
        m = _ARRAY_IN_OBJECT.match(text)
        if not m or m.group("key") != key:
            raise DataFormatError(path, 1, f'expected a JSON object {{"{key}": [...]}} at the top level')
        pos = m.end()
    line, counted = 1, 0

    def line_at(p: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, p)
        counted = p
        return line

    ws = re.compile(r"[\s,]*")
    blank = re.compile(r"\s*")
    expect_comma = False
    while True:
        pos = blank.match(text, pos).end()
        if pos >= len(text):
            raise DataFormatError(path, line_at(pos), "unexpected end of file inside the JSON array")
        if text[pos] == "]":
            rest = text[pos + 1 :].strip()
            if key is not None:
                rest = rest.lstrip("}").strip() if rest.startswith("}") else rest
            if rest:
                raise DataFormatError(path, line_at(pos + 1), "unexpected content after the JSON array")
            return
        if expect_comma:
            if text[pos] != ",":
                raise DataFormatError(path, line_at(pos), f"expected ',' or ']' between records, found {text[pos]!r}")
            pos = ws.match(text, pos).end()
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from e
        yield line_at(pos), obj
        pos, expect_comma = end, True


def require_fields(path: Path, line: int, record: object, fields: dict[str, type]) -> dict:
    """Check that a JSON record is an object with the given fields and types."""
    if not isinstance(record, dict):
        raise DataFormatError(path, line, f"record must be a JSON object, got {type(record).__name__}")
    for name, tp in fields.items():
        if name not in record:
            raise DataFormatError(path, line, f"record has no field {name!r} (fields: {sorted(record)})")
        if not isinstance(record[name], tp):
            raise DataFormatError(
                path, line, f"field {name!r} must be {tp.__name__}, got {type(record[name]).__name__}"
            )
    return record


def read_tsv(path: Path, n_fields: int, header: list[str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` of a tab-separated file read with quoting OFF (``csv.QUOTE_NONE``).

    Quote characters are literal text (RO-STS has 78 lines with ``"``); each line must have exactly
    ``n_fields`` fields. With ``header``, the first line must equal it and is skipped.
    """
    with utf8_text(path), open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            lineno = reader.line_num
            if lineno == 1 and header is not None:
                if row != header:
                    raise DataFormatError(path, 1, f"expected header {header}, found {row}")
                continue
            if not row:
                continue
            if len(row) != n_fields:
                raise DataFormatError(path, lineno, f"expected {n_fields} tab-separated fields, found {len(row)}")
            yield lineno, row


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line, text)`` for every line (without its newline)."""
    with utf8_text(path), open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, line.rstrip("\n").rstrip("\r")
