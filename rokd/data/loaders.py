"""One reader per data set: raw files -> per-split records + provenance.

Each data set has a ``resolve`` step (which files, from the mirror or by download, verified) and a
``build`` step (parse, substitute missing splits). The task loaders in ``rokd.data`` turn the records
into ``datasets.DatasetDict`` objects with the uniform schema and cache them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rokd.data.errors import DataFormatError
from rokd.data.normalize import normalize_diacritics
from rokd.data.readers import iter_json_array, read_conllu, read_lines, read_tsv, require_fields
from rokd.data.sources import Fetcher
from rokd.data.splits import SPLIT_SEED, stratified_split

SPLITS = ("train", "validation", "test")

# The 17 universal POS tags (RRT uses 16 of them: no SYM). A fixed list keeps the label ids stable.
UPOS_TAGS = [
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
]

# RONEC v2 ``ner_ids`` order (fixed by the data): 0 = O, then B-/I- per entity type.
RONEC_TYPES = [
    "PERSON",
    "ORG",
    "GPE",
    "LOC",
    "NAT_REL_POL",
    "EVENT",
    "LANGUAGE",
    "WORK_OF_ART",
    "DATETIME",
    "PERIOD",
    "MONEY",
    "QUANTITY",
    "NUMERIC",
    "ORDINAL",
    "FACILITY",
]
NER_TAGS = ["O"] + [f"{p}-{t}" for t in RONEC_TYPES for p in ("B", "I")]

SAPN_NAMES = ["negative", "positive"]
SAR_NAMES = ["1", "2", "4", "5"]
DI_NAMES = ["MD", "RO"]

# Sizes of the substitute splits (fractions of the pooled examples).
RONEC_SUBSTITUTE_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}
MOROCO_SUBSTITUTE_FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}
LAROSEDA_DEV_FRACTION = 0.1


@dataclass
class SplitData:
    records: list[dict]
    kind: str  # "official" | "rebuilt" | "substitute"
    source: str
    note: str = ""


def _norm(text: str, normalize: bool) -> str:
    return normalize_diacritics(text) if normalize else text


# ---------------------------------------------------------------- RRT (UPOS, XPOS)


def resolve_rrt(f: Fetcher) -> dict[str, str]:
    train = "rrt/ro_rrt-ud-train.conllu"
    if f.get(train, optional=True) is None:
        train = "rrt/ro_rrt-ud-train.reconstructed.conllu"
        f.get(train)
    f.get("rrt/ro_rrt-ud-dev.conllu")
    f.get("rrt/ro_rrt-ud-test.conllu")
    return {"train": train, "validation": "rrt/ro_rrt-ud-dev.conllu", "test": "rrt/ro_rrt-ud-test.conllu"}


def build_rrt(names: dict[str, str], f: Fetcher, normalize: bool = True) -> dict[str, SplitData]:
    out = {}
    for split, name in names.items():
        path = f.get(name)
        recs = read_conllu(path)
        for r in recs:
            r["tokens"] = [_norm(t, normalize) for t in r["tokens"]]
            for i, tag in enumerate(r["upos"]):
                if tag not in UPOS_TAGS:
                    raise DataFormatError(
                        path, None, f"sentence {r['id']}: token {i + 1} has UPOS {tag!r}, not one of the 17 UD tags"
                    )
        if "reconstructed" in name:
            kind, note = (
                "rebuilt",
                (
                    "official train absent from the mirror; rebuilt from RACAI Rodna's FORM/LEMMA/MSD file for the "
                    "same "
                    "8,043 sentences, UPOS mapped from MSD (est. >= 99.96 % agreement, see MANIFEST)"
                ),
            )
        else:
            kind, note = "official", ""
        out[split] = SplitData(recs, kind, f.describe(name), note)
    return out


# ---------------------------------------------------------------- RONEC v2 (NER)


def resolve_ronec(f: Fetcher) -> dict[str, str]:
    names = {"validation": "ronec/valid.json", "test": "ronec/test.json"}
    if f.get("ronec/train.json", optional=True) is not None:
        names["train"] = "ronec/train.json"
    for n in names.values():
        f.get(n)
    return names


def _read_ronec(path: Path, normalize: bool) -> list[dict]:
    recs = []
    for line, r in iter_json_array(path):
        require_fields(path, line, r, {"id": int, "tokens": list, "ner_ids": list})
        toks, ids = r["tokens"], r["ner_ids"]
        if len(toks) != len(ids):
            raise DataFormatError(path, line, f"record id {r['id']}: {len(toks)} tokens but {len(ids)} ner_ids")
        if any(not isinstance(i, int) or not 0 <= i < len(NER_TAGS) for i in ids):
            raise DataFormatError(
                path, line, f"record id {r['id']}: ner_ids must be integers in 0..{len(NER_TAGS) - 1}"
            )
        if "ner_tags" in r and [NER_TAGS[i] for i in ids] != r["ner_tags"]:
            raise DataFormatError(path, line, f"record id {r['id']}: ner_tags disagree with ner_ids")
        if not all(isinstance(t, str) for t in toks):
            raise DataFormatError(path, line, f"record id {r['id']}: tokens must be strings")
        recs.append({"id": f"ronec-{r['id']}", "tokens": [_norm(t, normalize) for t in toks], "ner": list(ids)})
    return recs


def _ronec_stratum(ids: list[int]) -> str:
    """Most frequent entity type of a sentence (ties: first in RONEC order), or 'O' if none."""
    types = Counter(NER_TAGS[i][2:] for i in ids if i % 2 == 1)
    if not types:
        return "O"
    top = max(types.values())
    return next(t for t in RONEC_TYPES if types.get(t) == top)


def build_ronec(names: dict[str, str], f: Fetcher, normalize: bool = True) -> dict[str, SplitData]:
    if "train" in names:
        return {s: SplitData(_read_ronec(f.get(names[s]), normalize), "official", f.describe(names[s])) for s in SPLITS}
    pool = _read_ronec(f.get(names["validation"]), normalize) + _read_ronec(f.get(names["test"]), normalize)
    parts = stratified_split([_ronec_stratum(r["ner"]) for r in pool], RONEC_SUBSTITUTE_FRACTIONS, SPLIT_SEED)
    src = f"{f.describe(names['validation'])} + {f.describe(names['test'])}"
    note = (
        "official v2 train (9,000 sentences) absent; the official valid (1,330) + test (2,000) sentences were pooled "
        "and "
        f"re-split 70/10/20 by sentence, stratified by each sentence's most frequent entity type, seed {SPLIT_SEED}. "
        "Scores on this test set are not comparable with the paper's."
    )
    return {s: SplitData([pool[i] for i in parts[s]], "substitute", src, note) for s in SPLITS}


# ---------------------------------------------------------------- LaRoSeDa (SAPN, SAR)


def resolve_laroseda(f: Fetcher) -> dict[str, str]:
    names = {
        "positive": "laroseda/positive_reviews.json",
        "negative": "laroseda/negative_reviews.json",
        "test": "laroseda/laroseda_test.json",
    }
    for n in names.values():
        f.get(n)
    return names


def _read_reviews(path: Path) -> list[dict]:
    recs = []
    for line, r in iter_json_array(path, key="reviews"):
        require_fields(path, line, r, {"index": str, "title": str, "content": str, "starRating": str})
        if r["starRating"] not in SAR_NAMES:
            raise DataFormatError(
                path, line, f"review {r['index']}: starRating {r['starRating']!r} is not one of {SAR_NAMES}"
            )
        recs.append(r)
    return recs


def review_text(title: str, content: str) -> str:
    """Title and content as one document: ``"<title>. <content>"`` (no extra dot after . ! ? …)."""
    title, content = " ".join(title.split()), " ".join(content.split())
    if not title:
        return content
    sep = " " if title[-1] in ".!?…" else ". "
    return title + sep + content


def build_laroseda(names: dict[str, str], f: Fetcher, normalize: bool = True) -> dict[str, SplitData]:
    every = {}
    for key in ("positive", "negative"):
        path = f.get(names[key])
        for r in _read_reviews(path):
            if r["index"] in every:
                raise DataFormatError(path, None, f"review index {r['index']} occurs twice in the polarity files")
            every[r["index"]] = r
    test_path = f.get(names["test"])
    test = _read_reviews(test_path)
    test_ids = {r["index"] for r in test}
    missing = sorted(test_ids - set(every), key=int)
    if missing:
        raise DataFormatError(
            test_path, None, f"{len(missing)} test reviews (e.g. index {missing[0]}) are not in the polarity files"
        )
    train = sorted((r for i, r in every.items() if i not in test_ids), key=lambda r: int(r["index"]))

    def rec(r):
        return {
            "id": f"laroseda-{r['index']}",
            "text": _norm(review_text(r["title"], r["content"]), normalize),
            "star": r["starRating"],
        }

    train_recs = [rec(r) for r in train]
    parts = stratified_split(
        [r["star"] for r in train_recs], {"train": 1 - LAROSEDA_DEV_FRACTION, "validation": LAROSEDA_DEV_FRACTION}
    )
    src_all = f"{f.describe(names['positive'])} + {f.describe(names['negative'])} - {f.describe(names['test'])}"
    return {
        "train": SplitData(
            [train_recs[i] for i in parts["train"]],
            "rebuilt",
            src_all,
            f"official train = all 15,000 reviews minus the 3,000 test reviews (12,000); {LAROSEDA_DEV_FRACTION:.0%} "
            "of it, "
            f"stratified by star (seed {SPLIT_SEED}), held out as validation",
        ),
        "validation": SplitData(
            [train_recs[i] for i in parts["validation"]],
            "substitute",
            src_all,
            f"no official dev split: {LAROSEDA_DEV_FRACTION:.0%} of the official train, stratified by star, seed "
            f"{SPLIT_SEED}",
        ),
        "test": SplitData([rec(r) for r in test], "official", f.describe(names["test"])),
    }


# ---------------------------------------------------------------- MOROCO (DI)


def resolve_moroco(f: Fetcher) -> dict[str, str]:
    official = {s: f"moroco/preprocessed/{s}/samples.txt" for s in SPLITS}
    if all(f.get(n, optional=True) is not None for n in official.values()):
        names = dict(official)
        for s in SPLITS:
            names[f"{s}_labels"] = f"moroco/preprocessed/{s}/dialect_labels.txt"
            f.get(names[f"{s}_labels"])
        return names
    names = {"texts": "moroco/vardial2019_mrc_test/test.txt", "labels": "moroco/vardial2019_mrc_test/labels.tsv"}
    for n in names.values():
        f.get(n)
    return names


MOROCO_DIALECT = {"1": "MD", "2": "RO"}


def build_moroco(names: dict[str, str], f: Fetcher, normalize: bool = True) -> dict[str, SplitData]:
    if "train" in names:
        out = {}
        for s in SPLITS:
            spath, lpath = f.get(names[s]), f.get(names[f"{s}_labels"])
            labels = {}
            for line, (sid, lab) in read_tsv(lpath, 2):
                if lab not in MOROCO_DIALECT:
                    raise DataFormatError(lpath, line, f"dialect label {lab!r} is not 1 (MD) or 2 (RO)")
                labels[sid] = MOROCO_DIALECT[lab]
            recs = []
            for line, text in read_lines(spath):
                if not text.strip():
                    continue
                sid, sep, body = text.partition("\t")
                if not sep:
                    raise DataFormatError(spath, line, "expected 'ID<TAB>text'")
                if sid not in labels:
                    raise DataFormatError(spath, line, f"sample {sid} has no dialect label in {lpath}")
                recs.append({"id": f"moroco-{sid}", "text": _norm(body.strip(), normalize), "dialect": labels[sid]})
            out[s] = SplitData(recs, "official", f.describe(names[s]))
        return out
    tpath, lpath = f.get(names["texts"]), f.get(names["labels"])
    labels = {}
    for line, (num, dialect, _topic) in read_tsv(lpath, 3, header=["line", "dialect", "category"]):
        if dialect not in DI_NAMES:
            raise DataFormatError(lpath, line, f"dialect {dialect!r} is not MD or RO")
        labels[num] = dialect
    pool = []
    for line, text in read_lines(tpath):
        if str(line) not in labels:
            raise DataFormatError(tpath, line, f"line {line} has no entry in {lpath}")
        pool.append({"id": f"vardial2019-{line}", "text": _norm(text.strip(), normalize), "dialect": labels[str(line)]})
    if len(pool) != len(labels):
        raise DataFormatError(lpath, None, f"{len(labels)} labels but {len(pool)} text lines in {tpath}")
    parts = stratified_split([r["dialect"] for r in pool], MOROCO_SUBSTITUTE_FRACTIONS, SPLIT_SEED)
    src = f"{f.describe(names['texts'])} + {f.describe(names['labels'])}"
    note = (
        "official MOROCO texts absent; the VarDial-2019 MRC test set (same authors, sources and preprocessing; "
        f"{len(pool):,} texts) was re-split 70/15/15 stratified by dialect, seed {SPLIT_SEED}. Not comparable with the "
        "paper's DI score (trained on 21,719 MOROCO samples)."
    )
    return {s: SplitData([pool[i] for i in parts[s]], "substitute", src, note) for s in SPLITS}


# ---------------------------------------------------------------- RO-STS (STS)


def resolve_rosts(f: Fetcher) -> dict[str, str]:
    names = {"train": "rosts/RO-STS.train.tsv", "validation": "rosts/RO-STS.dev.tsv", "test": "rosts/RO-STS.test.tsv"}
    for n in names.values():
        f.get(n)
    return names


def build_rosts(names: dict[str, str], f: Fetcher, normalize: bool = True) -> dict[str, SplitData]:
    out = {}
    for s, name in names.items():
        path = f.get(name)
        recs = []
        for line, (score, a, b) in read_tsv(path, 3):
            try:
                value = float(score)
            except ValueError:
                raise DataFormatError(path, line, f"score {score!r} is not a number") from None
            if not 0.0 <= value <= 5.0:
                raise DataFormatError(path, line, f"score {value} outside [0, 5]")
            recs.append(
                {
                    "id": f"rosts-{s}-{line}",
                    "text": _norm(a, normalize),
                    "text_pair": _norm(b, normalize),
                    "score": value,
                }
            )
        out[s] = SplitData(recs, "official", f.describe(name))
    return out


DATASET_IO = {
    "rrt": (resolve_rrt, build_rrt),
    "ronec": (resolve_ronec, build_ronec),
    "laroseda": (resolve_laroseda, build_laroseda),
    "moroco": (resolve_moroco, build_moroco),
    "rosts": (resolve_rosts, build_rosts),
}
