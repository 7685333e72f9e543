"""Teacher analysis: sizes, vocabularies, tokenization, layer similarity (linear CKA), throughput.

Every function takes loaded models / tokenizers (or registry refs) and returns plain numbers or a
``pandas.DataFrame``; the teacher chapter only calls them and plots.

Word-level alignment: the two teachers tokenize differently (cased vs uncased vocabularies), so their
subword sequences do not line up. Both are fed the *same pre-split words* (``is_split_into_words``),
each word's representation is the mean of its subwords' hidden states, and only words that survive
truncation in both are compared. Layer similarity is linear CKA (Kornblith et al., 2019) between the
(n_words × hidden) matrices of every pair of layers.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rokd import io

WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def split_words(text: str) -> list[str]:
    """A tokenizer-independent word split (letters/digits runs, single punctuation marks)."""
    return WORD_RE.findall(text)


# --- sizes -----------------------------------------------------------------------------------------------


def parameter_shares(model) -> dict:
    """Total parameters, the input embeddings' share, and the non-embedding rest (shared weights once)."""
    total = io.count_params(model)
    emb = model.get_input_embeddings().weight.numel()
    return {"parameters": total, "embedding_parameters": emb, "embedding_share": emb / total}


def size_on_disk(folder: str | Path) -> int:
    """Bytes of all files in a model folder (weights, tokenizer, configs, logs)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def weights_size_on_disk(folder: str | Path) -> int:
    """Bytes of the weight files only (``*.safetensors`` / ``*.bin``)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in {".safetensors", ".bin"})


def student_size_ratio(
    vocab_size: int,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
) -> dict:
    """Parameters of a BERT teacher (base model, as the paper counts) and of a DistilBERT student with
    half its layers and the same vocabulary/width; built on the ``meta`` device (no memory used)."""
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

    with torch.device("meta"):
        teacher = BertModel(
            BertConfig(
                vocab_size=vocab_size,
                hidden_size=hidden_size,
                num_hidden_layers=num_hidden_layers,
                num_attention_heads=num_attention_heads,
                intermediate_size=intermediate_size,
                max_position_embeddings=max_position_embeddings,
            )
        )
        student = DistilBertModel(
            DistilBertConfig(
                vocab_size=vocab_size,
                dim=hidden_size,
                n_layers=num_hidden_layers // 2,
                n_heads=num_attention_heads,
                hidden_dim=intermediate_size,
                max_position_embeddings=max_position_embeddings,
            )
        )
    t, s = io.count_params(teacher), io.count_params(student)
    return {
        "teacher_parameters": t,
        "student_parameters": s,
        "student_layers": num_hidden_layers // 2,
        "embedding_share": vocab_size * hidden_size / t,
        "reduction": 1 - s / t,
    }


def shape_ratio_table(shapes: dict[str, object]) -> "pandas.DataFrame":  # noqa: F821
    """One row per named ``BertShape`` (or mapping with the same fields): teacher/student parameters and reduction."""
    import pandas as pd

    rows = []
    for name, shape in shapes.items():
        get = (lambda k: shape[k]) if isinstance(shape, dict) else (lambda k: getattr(shape, k))
        r = student_size_ratio(
            get("vocab_size"),
            get("hidden_size"),
            get("num_hidden_layers"),
            get("num_attention_heads"),
            get("intermediate_size"),
            get("max_position_embeddings"),
        )
        rows.append(
            {
                "model": name,
                "vocab": get("vocab_size"),
                "hidden": get("hidden_size"),
                "layers": get("num_hidden_layers"),
                **r,
            }
        )
    return pd.DataFrame(rows).set_index("model")


# --- vocabularies ------------------------------------------------------------------------------------------


def vocab_overlap(tok_a, tok_b) -> dict:
    """Overlap of two vocabularies, exact and case-folded (``str.casefold`` of every entry)."""
    a, b = set(tok_a.get_vocab()), set(tok_b.get_vocab())
    fa, fb = {t.casefold() for t in a}, {t.casefold() for t in b}
    return {
        "vocab_a": len(a),
        "vocab_b": len(b),
        "shared_exact": len(a & b),
        "jaccard_exact": len(a & b) / len(a | b),
        "share_of_b_in_a_exact": len(a & b) / len(b),
        "casefolded_a": len(fa),
        "casefolded_b": len(fb),
        "shared_casefolded": len(fa & fb),
        "jaccard_casefolded": len(fa & fb) / len(fa | fb),
        "share_of_b_in_a_casefolded": len(fa & fb) / len(fb),
    }


def tokenization_stats(tokenizer, texts: Sequence[str]) -> dict:
    """Fertility (subwords per word) and unknown-token rates on ``texts`` (pre-split with :func:`split_words`)."""
    unk = tokenizer.unk_token_id
    words = subwords = unk_subwords = unk_words = 0
    batch: list[list[str]] = []

    def flush(batch):
        nonlocal words, subwords, unk_subwords, unk_words
        enc = tokenizer(batch, is_split_into_words=True, add_special_tokens=False, verbose=False)
        for i, ids in enumerate(enc["input_ids"]):
            wids = enc.word_ids(i)
            words += len(batch[i])
            subwords += len(ids)
            unk_subwords += sum(t == unk for t in ids)
            unk_words += len({w for w, t in zip(wids, ids) if t == unk and w is not None})

    for text in texts:
        w = split_words(text)
        if w:
            batch.append(w)
        if len(batch) >= 256:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return {
        "texts": len(texts),
        "words": words,
        "subwords": subwords,
        "fertility": subwords / words if words else float("nan"),
        "unk_subword_rate": unk_subwords / subwords if subwords else float("nan"),
        "unk_word_rate": unk_words / words if words else float("nan"),
    }


# Probes for diacritics and case: comma-below (standard) vs cedilla (legacy encodings) forms, and case.
DIACRITIC_PROBES = (
    "știință",
    "ştiinţă",
    "stiinta",
    "țară",
    "ţară",
    "tara",
    "București",
    "Bucureşti",
    "BUCUREȘTI",
    "bucurești",
    "Ștefan",
    "ŞTEFAN",
    "învățământ",
    "învăţământ",
)


def diacritics_table(tokenizers: dict[str, object], probes: Sequence[str] = DIACRITIC_PROBES) -> "pandas.DataFrame":  # noqa: F821
    """How each tokenizer splits each probe word; ``[UNK]`` shows characters it cannot represent."""
    import pandas as pd

    rows = []
    for word in probes:
        row = {"word": word, "code points": " ".join(f"U+{ord(c):04X}" for c in word if ord(c) > 127) or "ascii"}
        for name, tok in tokenizers.items():
            pieces = tok.tokenize(word)
            row[name] = " ".join(pieces)
            row[f"{name} n"] = len(pieces)
        rows.append(row)
    return pd.DataFrame(rows).set_index("word")


def normalization_summary(tokenizers: dict[str, object]) -> "pandas.DataFrame":  # noqa: F821
    """What each tokenizer's normalizer does to case and diacritics, shown on a probe sentence."""
    import pandas as pd

    probe = "Ștefan şi Ţara ÎNVĂȚĂMÂNT"
    rows = []
    for name, tok in tokenizers.items():
        norm = tok.backend_tokenizer.normalizer
        rows.append(
            {
                "tokenizer": name,
                "normalized probe": norm.normalize_str(probe) if norm is not None else probe,
                "lowercases": norm.normalize_str("A") == "a" if norm is not None else False,
                "keeps diacritics": norm.normalize_str("ș") == "ș" if norm is not None else True,
                "folds cedilla ş to ș": norm.normalize_str("ş") == "ș" if norm is not None else False,
            }
        )
    return pd.DataFrame(rows).set_index("tokenizer")


def is_nfc(text: str) -> bool:
    return unicodedata.normalize("NFC", text) == text


# --- word-level representations and CKA --------------------------------------------------------------------


@torch.no_grad()
def word_representations(
    model, tokenizer, sentences: Sequence[Sequence[str]], *, max_length: int = 128, batch_size: int = 16
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Mean-pooled subword hidden states per word, for every layer (embeddings output included).

    Returns ``(layers, kept)``: ``layers[l]`` is an (n_kept_words × hidden) array, ``kept`` lists the
    ``(sentence, word)`` index of each row (words cut off by truncation are absent).
    """
    model.eval()
    device = next(model.parameters()).device
    per_layer: list[list[np.ndarray]] = []
    kept: list[tuple[int, int]] = []
    for start in range(0, len(sentences), batch_size):
        chunk = [list(s) for s in sentences[start : start + batch_size]]
        enc = tokenizer(
            chunk, is_split_into_words=True, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        out = model(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            output_hidden_states=True,
        )
        hidden = torch.stack(out.hidden_states).float().cpu()  # (layers, batch, seq, hidden)
        if not per_layer:
            per_layer = [[] for _ in range(hidden.shape[0])]
        for b in range(len(chunk)):
            wids = enc.word_ids(b)
            n_words = max((w for w in wids if w is not None), default=-1) + 1
            if n_words == 0:
                continue
            index = torch.tensor([w if w is not None else -1 for w in wids])
            valid = index >= 0
            onehot = torch.zeros(n_words, len(wids))
            onehot[index[valid], torch.nonzero(valid).squeeze(1)] = 1.0
            # The last word may be partly truncated; drop it unless the sequence ended before max_length.
            if int(enc["attention_mask"][b].sum()) >= max_length:
                n_words -= 1
                onehot = onehot[:n_words]
            if n_words <= 0:
                continue
            counts = onehot.sum(1)
            present = torch.nonzero(counts > 0).squeeze(1)  # a word can vanish in normalisation
            onehot = onehot[present] / counts[present].unsqueeze(1)
            pooled = torch.einsum("ws,lsh->lwh", onehot, hidden[:, b])
            for layer in range(hidden.shape[0]):
                per_layer[layer].append(pooled[layer].numpy())
            kept.extend((start + b, int(w)) for w in present)
    if not kept:
        raise ValueError("no words to represent: the texts are empty")
    return [np.concatenate(x) for x in per_layer], kept


def align_words(kept_a: list[tuple[int, int]], kept_b: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into A and B of the words both kept, in the same order."""
    pos_b = {k: i for i, k in enumerate(kept_b)}
    ia, ib = [], []
    for i, k in enumerate(kept_a):
        j = pos_b.get(k)
        if j is not None:
            ia.append(i)
            ib.append(j)
    return np.asarray(ia, dtype=int), np.asarray(ib, dtype=int)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between representations ``x`` (n × p) and ``y`` (n × q) of the same n items.

    CKA = ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F · ||Yᶜᵀ Yᶜ||_F) with column-centred Xᶜ, Yᶜ (Kornblith et al., 2019).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same items in both: {x.shape[0]} vs {y.shape[0]} rows")
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    denom = np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")
    return float(cross / denom) if denom > 0 else float("nan")


def cka_matrix(layers_a: list[np.ndarray], layers_b: list[np.ndarray]) -> np.ndarray:
    """CKA of every layer of A (rows) with every layer of B (columns)."""
    return np.array([[linear_cka(a, b) for b in layers_b] for a in layers_a])


def teacher_cka(
    model_a, tok_a, model_b, tok_b, texts: Sequence[str], *, max_length: int = 128
) -> tuple[np.ndarray, int]:
    """Word-level linear CKA between all layers of two models on ``texts``; returns (matrix, n_words)."""
    sentences = [w for w in (split_words(t) for t in texts) if w]
    la, ka = word_representations(model_a, tok_a, sentences, max_length=max_length)
    lb, kb = word_representations(model_b, tok_b, sentences, max_length=max_length)
    ia, ib = align_words(ka, kb)
    if len(ia) < 2:
        raise ValueError("fewer than two words aligned between the two models; give more text")
    return cka_matrix([layer[ia] for layer in la], [layer[ib] for layer in lb]), len(ia)


# --- throughput -----------------------------------------------------------------------------------------------


@torch.no_grad()
def inference_throughput(
    model, tokenizer, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 128, warmup_batches: int = 1
) -> dict:
    """Forward-pass speed of the base encoder on ``texts`` (sorted by length, padded per batch)."""
    model.eval()
    device = next(model.parameters()).device
    encoder = getattr(model, "base_model", model)
    texts = sorted(texts, key=len)
    batches = [
        tokenizer(
            list(texts[i : i + batch_size]), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        for i in range(0, len(texts), batch_size)
    ]
    for enc in batches[:warmup_batches]:
        encoder(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
    tokens = 0
    t0 = time.perf_counter()
    for enc in batches:
        encoder(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
        tokens += int(enc["attention_mask"].sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {
        "sentences": len(texts),
        "tokens": tokens,
        "seconds": dt,
        "sentences_per_s": len(texts) / dt if dt > 0 else math.inf,
        "tokens_per_s": tokens / dt if dt > 0 else math.inf,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


# --- tables the teacher chapter shows -------------------------------------------------------------------------


def task_texts(task: str, n: int = 300, seed: int = 0) -> list[str]:
    """A seeded sample of ``n`` texts from a task's *train* split (tagging tasks: tokens joined by spaces)."""
    from rokd.data import load_task

    train = load_task(task)["train"]
    idx = sorted(np.random.default_rng(seed).choice(len(train), size=min(n, len(train)), replace=False).tolist())
    rows = train.select(idx)
    if "tokens" in rows.column_names:
        return [" ".join(toks) for toks in rows["tokens"]]
    pairs = rows["text_pair"] if "text_pair" in rows.column_names else [""] * len(rows)
    return [f"{a} {b}".strip() for a, b in zip(rows["text"], pairs)]


def fertility_table(
    tokenizers: dict[str, object], tasks: Sequence[str], n: int = 300, seed: int = 0
) -> "pandas.DataFrame":  # noqa: F821
    """Fertility and unknown rates of every tokenizer on a sample of every task's train text.

    Tasks that share a data set (UPOS/XPOS, SAPN/SAR) share their text, so each data set is measured once.
    """
    import pandas as pd

    from rokd.data import TASK_DATASET

    by_dataset: dict[str, list[str]] = {}
    for task in tasks:
        by_dataset.setdefault(TASK_DATASET[task], []).append(task)
    rows = []
    for dataset, ts in by_dataset.items():
        texts = task_texts(ts[0], n=n, seed=seed)
        for name, tok in tokenizers.items():
            rows.append(
                {"dataset": dataset, "tasks": "/".join(ts), "tokenizer": name, **tokenization_stats(tok, texts)}
            )
    return pd.DataFrame(rows)


def parameter_table(models: dict[str, object], refs: dict[str, object]) -> "pandas.DataFrame":  # noqa: F821
    """Parameters, embedding share, vocabulary and size on disk of loaded models (refs from the registry)."""
    import pandas as pd

    rows = []
    for name, model in models.items():
        ref = refs[name]
        row = {
            "model": name,
            "source": ref.name_or_path,
            **parameter_shares(model),
            "vocab_size": model.config.vocab_size,
            "layers": model.config.num_hidden_layers,
            "hidden": model.config.hidden_size,
        }
        if ref.source == "local":
            row["weights_mb"] = weights_size_on_disk(ref.path) / 2**20
            row["folder_mb"] = size_on_disk(ref.path) / 2**20
        else:
            row["weights_mb"] = (
                sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
            )  # in memory, as fp32
            row["folder_mb"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def train_log_frame(folders: dict[str, str | Path]) -> "pandas.DataFrame":  # noqa: F821
    """The ``train_log.jsonl`` of each built teacher as one long frame (column ``model``)."""

    import pandas as pd

    frames = []
    for name, folder in folders.items():
        path = Path(folder) / "train_log.jsonl"
        if path.exists():
            frames.append(pd.DataFrame(io.read_jsonl(path)).assign(model=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def quality_frame(qualities: dict[str, dict]) -> "pandas.DataFrame":  # noqa: F821
    """Model vs unigram baseline, one row per (model, measure)."""
    import pandas as pd

    rows = []
    for name, q in qualities.items():
        for measure, key, base in [
            ("MLM accuracy (whole-word masks)", "mlm_accuracy", "unigram_mlm_accuracy"),
            ("single-mask accuracy", "single_mask_accuracy", "unigram_single_mask_accuracy"),
            ("pseudo-perplexity", "pseudo_perplexity", "unigram_pseudo_perplexity"),
            ("whole-word pseudo-perplexity", "whole_word_pseudo_perplexity", "unigram_pseudo_perplexity"),
        ]:
            if key in q:  # quality files written before a measure existed lack it
                rows.append({"model": name, "measure": measure, "teacher": q[key], "unigram baseline": q[base]})
    return pd.DataFrame(rows)


def quality_summary(qualities: dict[str, dict]) -> str:
    """Markdown bullets: each teacher against its unigram baseline, with the ratio, and its training time."""
    lines = []
    for name, q in qualities.items():
        parts = [
            f"MLM accuracy **{q['mlm_accuracy']:.3f}** vs {q['unigram_mlm_accuracy']:.3f} for the unigram baseline "
            f"({q['mlm_accuracy'] / q['unigram_mlm_accuracy']:.1f}x)"
        ]
        base = q["unigram_pseudo_perplexity"]
        for key, label in (
            ("whole_word_pseudo_perplexity", "whole-word pseudo-perplexity"),
            ("pseudo_perplexity", "single-token pseudo-perplexity"),
        ):
            if key in q:
                verdict = "beats" if q[key] < base else "does not beat"
                parts.append(
                    f"{label} **{q[key]:,.0f}** vs {base:,.0f} ({verdict} the baseline, ratio {q[key] / base:.2f})"
                )
        trained = q.get("trained_s") or q.get("train_wall_s")  # every sitting of a resumed run where known
        if trained:
            threads = f" at {q['torch_threads']} torch thread(s)" if q.get("torch_threads") else ""
            sittings = (
                f" (over several sittings; the last took {q['train_wall_s'] / 60:.0f} min)"
                if q.get("train_wall_s") and q.get("trained_s") and q["trained_s"] > 1.05 * q["train_wall_s"]
                else ""
            )
            parts.append(f"pretrained in {trained / 60:.0f} min on {q.get('device', 'cpu')}{threads}{sittings}")
        lines.append(f"- **{name}**: " + "; ".join(parts) + ".")
    return "\n".join(lines)
