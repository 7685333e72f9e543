"""Tiny fixture files laid out like the data mirror (MANIFEST.md), written by the tests into tmp_path.

``pin`` re-pins a file's checksum in ``rokd.data.sources.FILES`` to the fixture's bytes, so the mirror /
download verification code runs on fixtures exactly as it does on the real files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from rokd.data import sources

ROSTS_TEST_SENTENCE = "Un om cântă la chitară."


def pin(monkeypatch, name: str, path: Path, use_git_blob: bool = False) -> None:
    data = path.read_bytes()
    spec = sources.FILES.get(name, sources.DataFile(name))
    if use_git_blob:
        blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
        new = dataclasses.replace(spec, sha256=None, git_blob=blob)
    else:
        new = dataclasses.replace(spec, sha256=hashlib.sha256(data).hexdigest(), git_blob=None)
    monkeypatch.setitem(sources.FILES, name, new)


def _write(root: Path, name: str, text: str, monkeypatch=None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if monkeypatch is not None:
        pin(monkeypatch, name, path)
    return path


def conllu_text(sentences: list[list[tuple[str, str, str]]], prefix: str) -> str:
    out = []
    for i, sent in enumerate(sentences, 1):
        out.append(f"# sent_id = {prefix}-{i}")
        out.append("# text = " + " ".join(t[0] for t in sent))
        for j, (form, upos, xpos) in enumerate(sent, 1):
            out.append(
                "\t".join(
                    [
                        str(j),
                        form,
                        form.lower(),
                        upos,
                        xpos,
                        "_",
                        "0" if j == 1 else "1",
                        "root" if j == 1 else "dep",
                        "_",
                        "_",
                    ]
                )
            )
        out.append("")
    return "\n".join(out) + "\n"


RRT_SENTS = {
    "train": [
        [("Ea", "PRON", "Pp3fsr--------s"), ("ştie", "VERB", "Vmip3s"), (".", "PUNCT", "PERIOD")],
        [("Un", "DET", "Tifsr"), ("cuvânt", "NOUN", "Ncms-n"), ("zise", "X", "_")],
    ],
    "dev": [[("Casa", "NOUN", "Ncfsry"), ("mare", "ADJ", "Afpfsrn"), (",", "PUNCT", "COMMA")]],
    "test": [[("El", "PRON", "Pp3msr--------s"), ("vine", "VERB", "Vmip3s"), ("!", "PUNCT", "EXCL")]],
}


def write_rrt(root: Path, monkeypatch, official_train: bool = False) -> None:
    _write(root, "rrt/ro_rrt-ud-dev.conllu", conllu_text(RRT_SENTS["dev"], "dev"), monkeypatch)
    _write(root, "rrt/ro_rrt-ud-test.conllu", conllu_text(RRT_SENTS["test"], "test"), monkeypatch)
    name = "rrt/ro_rrt-ud-train.conllu" if official_train else "rrt/ro_rrt-ud-train.reconstructed.conllu"
    _write(root, name, conllu_text(RRT_SENTS["train"], "train"), monkeypatch)


TYPES = ["PERSON", "GPE", "ORG"]


def ronec_records(start: int, n: int) -> list[dict]:
    from rokd.data.loaders import NER_TAGS

    recs = []
    for k in range(start, start + n):
        typ = TYPES[k % 3]
        tags = ["B-" + typ, "I-" + typ, "O", "O"] if k % 4 else ["O", "O", "O", "O"]
        recs.append(
            {
                "id": k,
                "ner_tags": tags,
                "ner_ids": [NER_TAGS.index(t) for t in tags],
                "tokens": [f"Nume{k}", "Ţară", "este", f"propoziţia{k}"],
                "space_after": [True, True, True, False],
            }
        )
    return recs


def write_ronec(root: Path, monkeypatch, with_train: bool = False) -> None:
    _write(root, "ronec/valid.json", json.dumps(ronec_records(0, 12), ensure_ascii=False), monkeypatch)
    _write(root, "ronec/test.json", json.dumps(ronec_records(100, 18), ensure_ascii=False), monkeypatch)
    if with_train:
        _write(root, "ronec/train.json", json.dumps(ronec_records(200, 6), ensure_ascii=False), monkeypatch)


def review(index: int, star: str) -> dict:
    return {
        "index": str(index),
        "title": f"Titlu {index}",
        "content": f"produsul numărul {index} este ok   sau nu",
        "starRating": star,
    }


STARS = ["1", "2", "4", "5"]


def write_laroseda(root: Path, monkeypatch) -> dict:
    pos = [review(i, STARS[2 + i % 2]) for i in range(1, 21)]
    neg = [review(i, STARS[i % 2]) for i in range(21, 41)]
    test = [pos[0], pos[1], neg[0], neg[1]]
    _write(root, "laroseda/positive_reviews.json", json.dumps({"reviews": pos}, indent=4), monkeypatch)
    _write(root, "laroseda/negative_reviews.json", json.dumps({"reviews": neg}, indent=4), monkeypatch)
    _write(root, "laroseda/laroseda_test.json", json.dumps({"reviews": test}, indent=4), monkeypatch)
    return {"all": pos + neg, "test": test}


def moroco_text(i: int, dialect: str) -> str:
    # RO texts use cedilla, MD texts comma-below: the diacritics shortcut of the real data.
    return f"Ştirea {i} despre preţuri ." if dialect == "RO" else f"Știrea {i} despre prețuri ."


def write_moroco_substitute(root: Path, monkeypatch, n: int = 40) -> list[str]:
    dialects = ["MD" if i % 3 == 0 else "RO" for i in range(1, n + 1)]
    _write(
        root,
        "moroco/vardial2019_mrc_test/test.txt",
        "".join(moroco_text(i, d) + "\n" for i, d in enumerate(dialects, 1)),
        monkeypatch,
    )
    _write(
        root,
        "moroco/vardial2019_mrc_test/labels.tsv",
        "line\tdialect\tcategory\n" + "".join(f"{i}\t{d}\tPOL\n" for i, d in enumerate(dialects, 1)),
        monkeypatch,
    )
    return dialects


def write_moroco_official(root: Path, monkeypatch) -> None:
    for s, n in (("train", 6), ("validation", 3), ("test", 3)):
        ids = [f"{s}{i}" for i in range(n)]
        _write(
            root,
            f"moroco/preprocessed/{s}/samples.txt",
            "".join(f"{x}\t{moroco_text(i, 'RO')}\n" for i, x in enumerate(ids)),
            monkeypatch,
        )
        _write(
            root,
            f"moroco/preprocessed/{s}/dialect_labels.txt",
            "".join(f"{x}\t{1 + i % 2}\n" for i, x in enumerate(ids)),
            monkeypatch,
        )


def write_rosts(root: Path, monkeypatch) -> None:
    _write(
        root,
        "rosts/RO-STS.train.tsv",
        "5.0\tUn avion decolează.\tUn avion este în curs de decolare.\n"
        '1.6\tEl spune "da" mereu.\tEa spune "nu.\n'
        "3.8\tUn bărbat cântă la un flaut mare.\tUn bărbat cântă la un flaut.\n",
        monkeypatch,
    )
    _write(root, "rosts/RO-STS.dev.tsv", "2.5\tO femeie taie o ceapă.\tO femeie taie un cartof.\n", monkeypatch)
    _write(
        root,
        "rosts/RO-STS.test.tsv",
        f"4.0\t{ROSTS_TEST_SENTENCE}\tUn bărbat cântă la chitară.\n0.0\tPisica doarme pe canapea.\tMașina este "
        "roșie.\n",
        monkeypatch,
    )


def write_corpus(root: Path) -> None:
    _write(
        root,
        "corpus/eltec-rom/ROM001.txt",
        "Capitolul întâi începe aici. Era o zi frumoasă şi caldă de vară.\n"
        f"Atunci a tăcut cineva. {ROSTS_TEST_SENTENCE} Apoi a plecat acasă repede.\n"
        "Era o zi frumoasă şi caldă de vară.\n"
        "Bucurescĭ era un oraș mare și vechi.\n",
    )
    _write(root, "corpus/eltec-rom/README.md", "This README line must not appear in the corpus at all.\n")
    _write(root, "corpus/eltec-rom/ELTeC-rom_metadata.tsv", "id\tauthor\ttitle of the metadata file\n")
    _write(
        root,
        "corpus/romaniancorpus/written__stiri_news.txt",
        "TITLE: Un titlu de știre\nGuvernul a anunţat noi măsuri economice azi.\n\nO femeie taie o ceapă.\nPisica "
        "doarme pe canapea.\n",
    )
    _write(root, "corpus/romaniancorpus/INDEX.tsv", "file\tstart\tlines in the index file\n")


def write_mirror(root: Path, monkeypatch) -> Path:
    """Every task's files plus a raw corpus: a complete fixture mirror."""
    write_rrt(root, monkeypatch)
    write_ronec(root, monkeypatch)
    write_laroseda(root, monkeypatch)
    write_moroco_substitute(root, monkeypatch)
    write_rosts(root, monkeypatch)
    write_corpus(root)
    return root
