"""rokd.data on the real data mirror (ROKD_DATA_DIR): the official split sizes, the substitutes, and the
corpus' no-leakage rule on real text. These tests FAIL (they do not skip) when ROKD_DATA_DIR is unset:
CI and ``make test`` run with the mirror."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from rokd.data import TASKS, label_names, load_task, split_provenance

pytestmark = pytest.mark.mirror


@pytest.fixture(scope="module")
def mirror() -> Path:
    value = os.environ.get("ROKD_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.fail(
            f"ROKD_DATA_DIR is {'unset' if not value else repr(value) + ' (not a directory)'}: these tests check the "
            "real data. "
            "Set ROKD_DATA_DIR to the data mirror (e.g. ../shared/data, layout of MANIFEST.md), as .ci/run does."
        )
    return Path(value)


def sizes(dd):
    return {s: len(d) for s, d in dd.items()}


def kinds(dd):
    return {s: p["kind"] for s, p in split_provenance(dd).items()}


def test_rrt_official_counts(mirror):
    for task in ("upos", "xpos"):
        dd = load_task(task, data_dir=mirror)
        assert sizes(dd) == {"train": 8043, "validation": 752, "test": 729}
        assert kinds(dd) == {"train": "rebuilt", "validation": "official", "test": "official"}
        assert sum(len(t) for t in dd["train"]["tokens"]) == 185125
    up = load_task("upos", data_dir=mirror)
    names = label_names(up)
    counts = Counter(names[i] for labels in up["train"]["labels"] for i in labels)
    assert counts["NOUN"] == 45972 and counts["INTJ"] == 32 and "SYM" not in counts  # MANIFEST's train distribution
    assert len(label_names(load_task("xpos", data_dir=mirror))) == 489


def test_rosts_official_counts(mirror):
    dd = load_task("sts", data_dir=mirror)
    assert sizes(dd) == {"train": 5749, "validation": 1500, "test": 1379}
    assert set(kinds(dd).values()) == {"official"}
    assert sum(dd["train"]["label"]) / 5749 == pytest.approx(2.701, abs=1e-3)


def test_laroseda_counts(mirror):
    for task in ("sapn", "sar"):
        dd = load_task(task, data_dir=mirror)
        n = sizes(dd)
        assert n["test"] == 3000 and n["train"] + n["validation"] == 12000
        assert kinds(dd) == {"train": "rebuilt", "validation": "substitute", "test": "official"}
    sar = load_task("sar", data_dir=mirror)
    names = label_names(sar)
    train_stars = Counter(names[i] for s in ("train", "validation") for i in sar[s]["label"])
    assert train_stars == {"1": 4459, "2": 1541, "4": 1018, "5": 4982}  # MANIFEST's train table


def test_substitutes(mirror):
    ner = load_task("ner", data_dir=mirror)
    assert sum(sizes(ner).values()) == 1330 + 2000 and set(kinds(ner).values()) == {"substitute"}
    di = load_task("di", data_dir=mirror)
    assert sum(sizes(di).values()) == 5923 and set(kinds(di).values()) == {"substitute"}
    md = sum(1 for s in di.values() for lab in s["label"] if lab == 0)
    assert md == 2718  # MANIFEST: MD 2,718 / RO 3,205


def test_real_corpus_slice_has_no_eval_text(mirror, tmp_path):
    from rokd.data.corpus import build_corpus, line_key, split_sentences

    stats = build_corpus(tmp_path / "corpus", data_dir=mirror, max_chars=1_500_000, heldout_lines=200)
    assert stats["train_chars"] + stats["heldout_chars"] > 1_000_000
    assert any(s.startswith("task:") for s in stats["sources"]) and any(s.startswith("eltec") for s in stats["sources"])
    eval_keys = set()
    for task in TASKS:
        dd = load_task(task, data_dir=mirror)
        for split in ("validation", "test"):
            texts = (
                [" ".join(t) for t in dd[split]["tokens"]]
                if "tokens" in dd[split].column_names
                else list(dd[split]["text"]) + list(dd[split]["text_pair"])
            )
            for t in texts:
                eval_keys |= {line_key(s) for s in split_sentences(t)}
    eval_keys.discard(line_key(""))
    for name in ("train.txt", "heldout.txt"):
        with open(tmp_path / "corpus" / name, encoding="utf-8") as f:
            assert not any(line_key(line.rstrip("\n")) in eval_keys for line in f)
