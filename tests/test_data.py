"""rokd.data on tiny fixtures written by the tests: every loader, provenance, the normalizer, the corpus'
no-leakage rule, the download path (local http.server) and each bad-input error."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import threading
from pathlib import Path

import data_fixtures as fx
import datasets
import pytest

from rokd.data import (
    DATASETS,
    TASK_DATASET,
    TASKS,
    ChecksumError,
    DataError,
    DataFormatError,
    MissingDataError,
    is_tagging,
    label_names,
    load_task,
    sources,
    split_provenance,
)
from rokd.data.normalize import diacritic_style, normalize_diacritics
from rokd.data.splits import stratified_split


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real mirror, a private cache and artifacts dir for every test."""
    monkeypatch.delenv("ROKD_DATA_DIR", raising=False)
    monkeypatch.setenv("ROKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    return fx.write_mirror(tmp_path / "mirror", monkeypatch)


# ------------------------------------------------------------------ constants and normalizer


def test_contract_constants():
    assert TASKS == ("upos", "xpos", "ner", "sapn", "sar", "di", "sts")
    assert DATASETS == ("rrt", "ronec", "laroseda", "moroco", "rosts")
    assert set(TASK_DATASET) == set(TASKS) and set(TASK_DATASET.values()) == set(DATASETS)
    assert [t for t in TASKS if is_tagging(t)] == ["upos", "xpos", "ner"]
    with pytest.raises(ValueError, match="unknown task"):
        is_tagging("pos")


def test_normalize_diacritics():
    assert normalize_diacritics("ştiinţă ŞTIINŢĂ") == "știință ȘTIINȚĂ"
    assert normalize_diacritics("s\u0327i t\u0327ara") == "și țara"  # combining cedilla
    assert normalize_diacritics("Bucurescĭ Ĭaşi") == "Bucurescĭ Ĭași"
    assert normalize_diacritics("Bucurescĭ Ĭaşi", breve_i=True) == "Bucuresci Iași"
    assert normalize_diacritics("ăâî ș ț") == "ăâî ș ț"
    assert [diacritic_style(t) for t in ("și", "şi", "şi și", "si")] == ["comma", "cedilla", "mixed", "none"]


def test_stratified_split_is_deterministic_and_proportional():
    strata = ["a"] * 50 + ["b"] * 30
    parts = stratified_split(strata, {"train": 0.6, "validation": 0.2, "test": 0.2}, seed=5)
    assert parts == stratified_split(strata, {"train": 0.6, "validation": 0.2, "test": 0.2}, seed=5)
    assert sorted(sum(parts.values(), [])) == list(range(80))
    assert [sum(strata[i] == "a" for i in parts[p]) for p in ("train", "validation", "test")] == [30, 10, 10]
    assert parts != stratified_split(strata, {"train": 0.6, "validation": 0.2, "test": 0.2}, seed=6)


# ------------------------------------------------------------------ loaders


def test_rrt_upos_xpos(mirror):
    up, xp = load_task("upos", data_dir=mirror), load_task("xpos", data_dir=mirror)
    assert {s: len(d) for s, d in up.items()} == {"train": 2, "validation": 1, "test": 1}
    assert up["train"][0]["tokens"] == ["Ea", "știe", "."]  # cedilla normalized
    assert len(label_names(up)) == 17 and label_names(up)[up["train"][0]["labels"][1]] == "VERB"
    names = label_names(xp)
    assert names == sorted(names) and "_" in names and "EXCL" in names  # union over all splits, sorted
    assert [names[i] for i in xp["test"][0]["labels"]] == ["Pp3msr--------s", "Vmip3s", "EXCL"]
    prov = split_provenance(up)
    assert prov["train"]["kind"] == "rebuilt" and "Rodna" in prov["train"]["note"]
    assert prov["validation"]["kind"] == prov["test"]["kind"] == "official"


def test_rrt_official_train_is_preferred(tmp_path, monkeypatch):
    fx.write_rrt(tmp_path / "m", monkeypatch, official_train=True)
    dd = load_task("upos", data_dir=tmp_path / "m")
    assert split_provenance(dd)["train"]["kind"] == "official"


def test_ronec_substitute_split(mirror):
    dd = load_task("ner", data_dir=mirror)
    sizes = {s: len(d) for s, d in dd.items()}
    assert sum(sizes.values()) == 30 and sizes["train"] > sizes["test"] > 0 and sizes["validation"] > 0
    ids = [set(dd[s]["id"]) for s in dd]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert label_names(dd)[:3] == ["O", "B-PERSON", "I-PERSON"] and len(label_names(dd)) == 31
    assert all(p["kind"] == "substitute" for p in split_provenance(dd).values())
    again = load_task("ner", data_dir=mirror, use_cache=False)
    assert again["test"]["id"] == dd["test"]["id"]  # seeded: same split every time
    ex = dd["train"][0]
    assert ex["tokens"][1] == "Țară" and ex["tokens"][3].startswith("propoziția")


def test_ronec_official_when_train_present(tmp_path, monkeypatch):
    fx.write_ronec(tmp_path / "m", monkeypatch, with_train=True)
    dd = load_task("ner", data_dir=tmp_path / "m")
    assert {s: len(d) for s, d in dd.items()} == {"train": 6, "validation": 12, "test": 18}
    assert all(p["kind"] == "official" for p in split_provenance(dd).values())


def test_laroseda_sapn_sar(mirror):
    sapn, sar = load_task("sapn", data_dir=mirror), load_task("sar", data_dir=mirror)
    assert label_names(sapn) == ["negative", "positive"] and label_names(sar) == ["1", "2", "4", "5"]
    assert len(sapn["test"]) == 4 and len(sapn["train"]) + len(sapn["validation"]) == 36
    assert not set(sapn["test"]["id"]) & (set(sapn["train"]["id"]) | set(sapn["validation"]["id"]))
    row = sar["test"][0]
    assert (
        row["id"] == "laroseda-1"
        and row["text"] == "Titlu 1. produsul numărul 1 este ok sau nu"
        and row["text_pair"] == ""
    )
    # SAPN and SAR agree: stars 1,2 -> negative, 4,5 -> positive
    for a, b in zip(sapn["train"], sar["train"]):
        assert a["id"] == b["id"] and a["label"] == (1 if label_names(sar)[b["label"]] in ("4", "5") else 0)
    prov = split_provenance(sapn)
    assert (prov["train"]["kind"], prov["validation"]["kind"], prov["test"]["kind"]) == (
        "rebuilt",
        "substitute",
        "official",
    )
    assert len(set(sar["validation"]["label"])) == 4  # stratified by star: every star in the dev split


def test_moroco_substitute_and_the_diacritics_decision(mirror):
    dd = load_task("di", data_dir=mirror)
    assert sum(len(d) for d in dd.values()) == 40 and label_names(dd) == ["MD", "RO"]
    assert all(p["kind"] == "substitute" for p in split_provenance(dd).values())
    for split in dd.values():  # stratified: both dialects in every split
        assert set(split["label"]) == {0, 1}
    assert all(diacritic_style(t) == "comma" for s in dd.values() for t in s["text"])
    raw = load_task("di", data_dir=mirror, normalize=False)
    styles = {(label_names(raw)[ex["label"]], diacritic_style(ex["text"])) for s in raw.values() for ex in s}
    assert styles == {("MD", "comma"), ("RO", "cedilla")}  # raw keeps the shortcut, default removes it


def test_moroco_official_texts(tmp_path, monkeypatch):
    fx.write_moroco_official(tmp_path / "m", monkeypatch)
    dd = load_task("di", data_dir=tmp_path / "m")
    assert {s: len(d) for s, d in dd.items()} == {"train": 6, "validation": 3, "test": 3}
    assert dd["train"]["label"][:2] == [0, 1]  # 1 = MD, 2 = RO
    assert all(p["kind"] == "official" for p in split_provenance(dd).values())


def test_rosts_quotes_and_scores(mirror):
    dd = load_task("sts", data_dir=mirror)
    assert {s: len(d) for s, d in dd.items()} == {"train": 3, "validation": 1, "test": 2}
    assert dd["train"][1]["text"] == 'El spune "da" mereu.' and dd["train"][1]["text_pair"] == 'Ea spune "nu.'
    assert dd["train"]["label"] == pytest.approx([5.0, 1.6, 3.8])
    assert label_names(dd) is None and dd["train"].features["label"].dtype == "float32"


def test_provenance_survives_select_map_filter_and_disk(mirror, tmp_path):
    dd = load_task("sts", data_dir=mirror)
    want = split_provenance(dd)["train"]
    ds = dd["train"].select([0]).map(lambda e: {"n": len(e["text"])}).filter(lambda e: True).shuffle(seed=1)
    got = split_provenance(datasets.DatasetDict(train=ds))["train"]
    assert got == want and got["kind"] == "official"
    dd.save_to_disk(str(tmp_path / "saved"))
    assert split_provenance(datasets.load_from_disk(str(tmp_path / "saved"))) == split_provenance(dd)
    with pytest.raises(ValueError, match="provenance"):
        split_provenance(datasets.DatasetDict(train=datasets.Dataset.from_dict({"a": [1]})))


def test_parsed_data_is_cached_by_file_hash(mirror, tmp_path, monkeypatch):
    load_task("sts", data_dir=mirror)
    cached = list((tmp_path / "cache" / "datasets").glob("sts-*"))
    assert len(cached) == 1
    path = mirror / "rosts/RO-STS.dev.tsv"
    path.write_text("1.0\tAlt text aici.\tAltceva acolo.\n", encoding="utf-8")
    fx.pin(monkeypatch, "rosts/RO-STS.dev.tsv", path)
    assert load_task("sts", data_dir=mirror)["validation"]["text"] == ["Alt text aici."]
    assert len(list((tmp_path / "cache" / "datasets").glob("sts-*"))) == 2


def test_summary_cli_json(mirror, capsys):
    from rokd.cli import main

    assert main(["data", "summary", "--json", "--data-dir", str(mirror)]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == set(TASKS)
    assert table["sts"]["test"] == {
        "dataset": "rosts",
        "n": 2,
        "kind": "official",
        "source": "mirror:rosts/RO-STS.test.tsv",
        "note": "",
    }
    assert table["ner"]["train"]["kind"] == "substitute"
    assert main(["data", "summary", "--data-dir", str(mirror)]) == 0
    assert "substitute" in capsys.readouterr().out


# ------------------------------------------------------------------ bad input


def test_missing_file_names_path_env_and_fix(mirror):
    (mirror / "rosts/RO-STS.test.tsv").unlink()
    with pytest.raises(MissingDataError) as e:
        load_task("sts", data_dir=mirror)
    msg = str(e.value)
    assert str(mirror / "rosts/RO-STS.test.tsv") in msg and "ROKD_DATA_DIR" in msg and "Fix" in msg


def test_mirror_only_file_without_mirror(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "GITHUB_RAW_BASE", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(MissingDataError, match="ROKD_DATA_DIR"):
        sources.Fetcher("download").get("moroco/vardial2019_mrc_test/test.txt")
    with pytest.raises(MissingDataError, match="ROKD_DATA_DIR is not set"):
        load_task("sts", source="mirror")


def test_checksum_mismatch_in_mirror_names_both_hashes(mirror):
    path = mirror / "rosts/RO-STS.dev.tsv"
    expected = sources.FILES["rosts/RO-STS.dev.tsv"].sha256
    path.write_text("2.0\tAltă propoziție aici.\tȘi încă una.\n", encoding="utf-8")
    with pytest.raises(ChecksumError) as e:
        load_task("sts", data_dir=mirror)
    assert expected in str(e.value) and sources.file_digests(path)[0] in str(e.value) and str(path) in str(e.value)


def _bad(root, monkeypatch, name, text):
    fx._write(root, name, text, monkeypatch)
    return root / name


def test_malformed_conllu_names_file_and_line(mirror, monkeypatch):
    text = fx.conllu_text(fx.RRT_SENTS["dev"], "dev").splitlines()
    text[3] = "2\tmare\tmare\tADJ\tAfpfsrn\t_\t1\tamod\t_"  # 9 fields
    path = _bad(mirror, monkeypatch, "rrt/ro_rrt-ud-dev.conllu", "\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=f"{path}:4: CoNLL-U token line must have 10"):
        load_task("upos", data_dir=mirror)
    text[3] = "x\tmare\tmare\tADJ\tAfpfsrn\t_\t1\tamod\t_\t_"  # bad ID, caught by the conllu library
    _bad(mirror, monkeypatch, "rrt/ro_rrt-ud-dev.conllu", "\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=f"{path}:1: unparsable CoNLL-U"):
        load_task("upos", data_dir=mirror)


def test_malformed_json_names_file_and_line(mirror, monkeypatch):
    recs = fx.ronec_records(0, 3)
    text = "[\n" + ",\n".join(json.dumps(r) for r in recs) + "\n]\n"
    broken = text.replace('"tokens"', '"tokens" ', 1).replace('"ner_ids": [', '"ner_ids": [,', 1)
    path = _bad(mirror, monkeypatch, "ronec/valid.json", broken)
    with pytest.raises(DataFormatError, match=f"{path}:2: invalid JSON"):
        load_task("ner", data_dir=mirror)
    recs[2].pop("tokens")
    _bad(mirror, monkeypatch, "ronec/valid.json", "[\n" + ",\n".join(json.dumps(r) for r in recs) + "\n]\n")
    with pytest.raises(DataFormatError, match=f"{path}:4: record has no field 'tokens'"):
        load_task("ner", data_dir=mirror)
    reviews = [fx.review(1, "3")]
    path = _bad(mirror, monkeypatch, "laroseda/laroseda_test.json", json.dumps({"reviews": reviews}, indent=4))
    with pytest.raises(DataFormatError, match=f"{path}:3: review 1: starRating '3'"):
        load_task("sar", data_dir=mirror)


def test_malformed_tsv_names_file_and_line(mirror, monkeypatch):
    path = _bad(mirror, monkeypatch, "rosts/RO-STS.dev.tsv", "2.5\tA b c.\tD e f.\n3.0\tonly two fields\n")
    with pytest.raises(DataFormatError, match=f"{path}:2: expected 3 tab-separated fields, found 2"):
        load_task("sts", data_dir=mirror)
    _bad(mirror, monkeypatch, "rosts/RO-STS.dev.tsv", "2.5\tA b c.\tD e f.\nfive\tA b c.\tD e f.\n")
    with pytest.raises(DataFormatError, match=f"{path}:2: score 'five' is not a number"):
        load_task("sts", data_dir=mirror)
    path = _bad(mirror, monkeypatch, "moroco/vardial2019_mrc_test/labels.tsv", "line\tdialect\tcategory\n1\tXX\tPOL\n")
    with pytest.raises(DataFormatError, match=f"{path}:2: dialect 'XX'"):
        load_task("di", data_dir=mirror)


# ------------------------------------------------------------------ download path


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A local http.server on 127.0.0.1 serving ``root/<owner>/<repo>/<commit>/<path>`` like raw GitHub."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.handle_error = lambda *a: None  # a client that stops reading early (the size cap) is expected
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(sources, "GITHUB_RAW_BASE", f"http://127.0.0.1:{server.server_address[1]}")
    yield root
    server.shutdown()
    server.server_close()


def _serve(root: Path, mirror: Path, monkeypatch, name: str, use_git_blob: bool = False) -> Path:
    spec = sources.FILES[name]
    target = root / spec.repo / spec.commit / spec.repo_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((mirror / name).read_bytes())
    fx.pin(monkeypatch, name, target, use_git_blob=use_git_blob)
    return target


def test_download_verifies_and_caches(http_root, tmp_path, monkeypatch):
    mirror = tmp_path / "src"
    fx.write_rosts(mirror, monkeypatch)
    for name in ("rosts/RO-STS.train.tsv", "rosts/RO-STS.dev.tsv", "rosts/RO-STS.test.tsv"):
        _serve(http_root, mirror, monkeypatch, name)
    dd = load_task("sts")  # auto + no ROKD_DATA_DIR = download
    assert len(dd["train"]) == 3
    assert split_provenance(dd)["test"]["source"].startswith("http://127.0.0.1:")
    cached = tmp_path / "cache" / "downloads" / "rosts" / "RO-STS.test.tsv"
    assert cached.read_bytes() == (mirror / "rosts/RO-STS.test.tsv").read_bytes()


def test_download_checks_git_blob_ids(http_root, tmp_path, monkeypatch):
    mirror = tmp_path / "src"
    fx.write_rrt(mirror, monkeypatch, official_train=True)
    for name in ("rrt/ro_rrt-ud-dev.conllu", "rrt/ro_rrt-ud-test.conllu"):
        _serve(http_root, mirror, monkeypatch, name)
    _serve(http_root, mirror, monkeypatch, "rrt/ro_rrt-ud-train.conllu", use_git_blob=True)
    dd = load_task("upos", source="download")
    assert split_provenance(dd)["train"]["kind"] == "official" and len(dd["train"]) == 2


def test_download_checksum_mismatch_leaves_nothing(http_root, tmp_path, monkeypatch):
    mirror = tmp_path / "src"
    fx.write_rosts(mirror, monkeypatch)
    served = _serve(http_root, mirror, monkeypatch, "rosts/RO-STS.train.tsv")
    expected = sources.FILES["rosts/RO-STS.train.tsv"].sha256
    served.write_text("0.0\tAltceva complet.\tNimic comun aici.\n", encoding="utf-8")  # tampered upstream
    with pytest.raises(ChecksumError) as e:
        sources.Fetcher("download").get("rosts/RO-STS.train.tsv")
    assert expected in str(e.value) and sources.file_digests(served)[0] in str(e.value)
    downloads = tmp_path / "cache" / "downloads"
    assert [p for p in downloads.rglob("*") if p.is_file()] == []  # no partial or unverified file


def test_download_network_error_is_explained(http_root, monkeypatch):
    with pytest.raises(DataError, match="could not download .*ROKD_DATA_DIR"):
        sources.Fetcher("download").get("rosts/RO-STS.train.tsv")  # not served: HTTP 404


def test_download_stops_past_the_pinned_size(http_root, tmp_path, monkeypatch):
    mirror = tmp_path / "src"
    fx.write_rosts(mirror, monkeypatch)
    name = "rosts/RO-STS.train.tsv"
    served = _serve(http_root, mirror, monkeypatch, name)
    size = served.stat().st_size
    monkeypatch.setitem(sources.FILES, name, dataclasses.replace(sources.FILES[name], size=size))
    assert sources.Fetcher("download").get(name).stat().st_size == size  # exactly the pinned size: fine
    (tmp_path / "cache" / "downloads" / name).unlink()
    served.write_bytes(served.read_bytes() * 1000)  # a server sending far more than the pinned file
    with pytest.raises(DataError, match=f"stopped: .*more than its expected size, {size:,} bytes"):
        sources.Fetcher("download").get(name)
    assert [p for p in (tmp_path / "cache" / "downloads").rglob("*") if p.is_file()] == []


def test_download_of_unknown_size_is_capped(http_root, tmp_path, monkeypatch):
    mirror = tmp_path / "src"
    fx.write_rrt(mirror, monkeypatch, official_train=True)
    name = "rrt/ro_rrt-ud-train.conllu"  # pinned by git blob id: its size is not in the table
    served = _serve(http_root, mirror, monkeypatch, name, use_git_blob=True)
    assert sources.FILES[name].size is None
    monkeypatch.setattr(sources, "MAX_DOWNLOAD_BYTES", served.stat().st_size - 1)
    with pytest.raises(DataError, match=f"more than the {served.stat().st_size - 1:,}-byte cap"):
        sources.Fetcher("download").get(name)
    assert not (tmp_path / "cache" / "downloads" / name).exists()


def test_pinned_sizes_match_the_manifest():
    """Every sha256-pinned official file carries its byte count (the cap of its download)."""
    assert all(spec.size for spec in sources.FILES.values() if spec.sha256 and spec.url)


# ------------------------------------------------------------------ corpus


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_corpus_has_no_validation_or_test_text(mirror, tmp_path):
    from rokd.data.corpus import build_corpus, line_key, split_sentences

    stats = build_corpus(tmp_path / "corpus", data_dir=mirror, heldout_lines=2)
    out = _lines(tmp_path / "corpus" / "train.txt") + _lines(tmp_path / "corpus" / "heldout.txt")
    assert stats["train_lines"] + stats["heldout_lines"] == len(out) and stats["heldout_lines"] == 2
    eval_keys = set()
    for task in TASKS:
        dd = load_task(task, data_dir=mirror)
        for split in ("validation", "test"):
            for ex in dd[split]:
                texts = [" ".join(ex["tokens"])] if "tokens" in ex else [ex["text"], ex["text_pair"]]
                for t in texts:
                    eval_keys |= {line_key(s) for s in split_sentences(t)} | {line_key(t)}
    assert not {line_key(ln) for ln in out} & eval_keys
    assert fx.ROSTS_TEST_SENTENCE not in out and "O femeie taie o ceapă." not in out
    assert stats["dropped"]["blocked_eval_sentences"] >= 3
    # train text of the tasks is in, the corpus files' text is in, normalized; README/INDEX/metadata are not
    assert "Un avion este în curs de decolare." in out and "Ea știe ." in out
    assert "Era o zi frumoasă și caldă de vară." in out and "Bucuresci era un oraș mare și vechi." in out
    assert out.count("Era o zi frumoasă și caldă de vară.") == 1 and stats["dropped"]["duplicates"] >= 1
    assert not any("README" in ln or "index file" in ln or "metadata" in ln or ln.startswith("TITLE:") for ln in out)
    assert not any(c in ln for ln in out for c in "şţŞŢĭ")


def test_corpus_is_deterministic_and_capped(mirror, tmp_path):
    from rokd.data.corpus import build_corpus

    a = build_corpus(tmp_path / "a", data_dir=mirror, heldout_lines=3, seed=1)
    b = build_corpus(tmp_path / "b", data_dir=mirror, heldout_lines=3, seed=1)
    for f in ("train.txt", "heldout.txt"):
        assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()
    assert a == b | {"mirror": a["mirror"]}
    capped = build_corpus(tmp_path / "c", data_dir=mirror, heldout_lines=1, max_chars=200)
    assert 0 < capped["train_chars"] + capped["heldout_chars"] <= 200
    assert len(capped["sources"]) > 2  # round-robin: a cap still samples several sources
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["heldout.txt", "stats.json", "train.txt"]
    no_tasks = build_corpus(tmp_path / "d", data_dir=mirror, include_task_train_text=False)
    assert not any(s.startswith("task:") for s in no_tasks["sources"])


def test_ensure_corpus_is_idempotent(mirror, monkeypatch):
    from rokd.data.corpus import ensure_corpus
    from rokd.profiles import DataConfig, Profile

    monkeypatch.setenv("ROKD_DATA_DIR", str(mirror))
    profile = Profile(name="fixture", data=DataConfig(corpus_max_chars=None, corpus_heldout_lines=2))
    out = ensure_corpus(profile)
    assert out.name == "corpus" and out.parent.name == "fixture"
    mtime = (out / "train.txt").stat().st_mtime_ns
    assert ensure_corpus(profile) == out and (out / "train.txt").stat().st_mtime_ns == mtime
    profile.data.corpus_heldout_lines = 1
    ensure_corpus(profile)
    assert json.loads((out / "stats.json").read_text())["heldout_lines"] == 1


def test_failed_corpus_build_leaves_nothing_half_written(mirror, tmp_path, monkeypatch):
    from rokd.data import corpus

    def exploding(sources):
        yield "x", "O propoziție destul de lungă aici."
        raise OSError("disk full")

    monkeypatch.setattr(corpus, "_round_robin", exploding)
    with pytest.raises(OSError, match="disk full"):
        corpus.build_corpus(tmp_path / "broken", data_dir=mirror)
    assert list((tmp_path / "broken").iterdir()) == []


def test_iter_lines_streams_without_newlines(tmp_path):
    from rokd.data.corpus import iter_lines

    (tmp_path / "f.txt").write_text("una\ndouă\n", encoding="utf-8")
    assert list(iter_lines(tmp_path / "f.txt")) == ["una", "două"]
