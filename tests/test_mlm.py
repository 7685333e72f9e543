"""Tests of rokd.mlm: tokenized corpus, length-grouped resumable batches, whole-word masking,
logits at masked positions only. Offline: a tiny WordPiece tokenizer trained here, tiny models from configs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM, PreTrainedTokenizerFast

from rokd import mlm

WORDS = (
    "casa mare frumoasă copilul aleargă prin parcul orașului seara când soarele apune încet peste dealuri "
    "și râuri ţara noastră are munţi înalţi şi câmpii întinse lângă Dunăre"
).split()


def make_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14))) + rng.choice([".", "!", " ?"]) for _ in range(n)
    ]


def make_tokenizer(lines: list[str], vocab_size: int = 90, lowercase: bool = False) -> PreTrainedTokenizerFast:
    """A tiny BERT-style WordPiece tokenizer; the small vocabulary splits most words into several subwords."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        lines,
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return make_lines(400)


@pytest.fixture(scope="module")
def tokenizer(lines) -> PreTrainedTokenizerFast:
    return make_tokenizer(lines)


@pytest.fixture(scope="module")
def corpus(lines, tokenizer) -> mlm.TokenizedLines:
    return mlm.tokenize_lines(lines, tokenizer, max_length=24)


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


# ---------------------------------------------------------------------------- tokenized corpus


def test_tokenize_lines_matches_tokenizer_and_skips_blank_lines(tmp_path, tokenizer):
    path = tmp_path / "train.txt"
    path.write_text("casa mare.\n\n   \nparcul orașului seara!\n", encoding="utf-8")
    corpus = mlm.tokenize_lines(path, tokenizer, max_length=32)
    assert len(corpus) == 2
    assert corpus.line_index.tolist() == [0, 3]
    enc = tokenizer("parcul orașului seara!", return_offsets_mapping=True)
    ex = corpus[1]
    assert ex["input_ids"].tolist() == enc["input_ids"]
    assert ex["word_ids"].tolist() == [-1 if w is None else w for w in enc.word_ids()]
    assert [tuple(s) for s in ex["char_spans"].tolist()] == [tuple(s) for s in enc["offset_mapping"]]
    assert corpus.lengths.tolist() == [len(corpus[0]["input_ids"]), len(enc["input_ids"])]


@pytest.mark.parametrize("kind", ["bert-cased", "bert-uncased", "xlm-roberta", "roberta"])
def test_tokenize_lines_reads_what_the_tokenizer_call_returns(kind):
    """The arrays read straight from the Rust encodings equal the transformers call's lists for every
    tokenizer family (WordPiece cased / uncased, SentencePiece, byte-level BPE), truncation included; the
    reading leaves the tokenizer's own truncation / padding settings as they were."""
    from family_fixtures import ROMANIAN_TEXT, family_tokenizers

    from rokd.mlm.corpus import _blank_token_ids, _encode_chunk, _spans_include_spaces, visible_spans

    tok = family_tokenizers()[kind]
    texts = [t for t in ROMANIAN_TEXT if t.strip()] + ["", "  două   spații ", "x" * 300]
    texts = [t.strip() for t in texts if t.strip()]
    backend = tok.backend_tokenizer
    backend.enable_padding(pad_id=tok.pad_token_id, pad_token=tok.pad_token, length=7)
    before = (backend.truncation, backend.padding)
    _encode_chunk(tok, texts, 20)
    assert (backend.truncation, backend.padding) == before
    backend.no_padding()
    corpus = mlm.tokenize_lines(texts, tok, max_length=20)
    blank = _blank_token_ids(tok) if _spans_include_spaces(tok) else None
    for j, text in enumerate(texts):  # the reference: the transformers call, one line at a time
        enc = tok(text, truncation=True, max_length=20, return_offsets_mapping=True)
        ids = np.asarray(enc["input_ids"], dtype=np.int32)
        spans = np.asarray(enc["offset_mapping"], dtype=np.int32).reshape(-1, 2)
        if blank is not None:
            spans = visible_spans(text, ids, spans, blank)
        ex = corpus[j]
        assert ex["input_ids"].tolist() == ids.tolist()
        assert ex["word_ids"].tolist() == [-1 if w is None else w for w in enc.word_ids()]
        assert ex["char_spans"].tolist() == spans.tolist()
    assert corpus.lengths.max() == 20


def test_tokenize_lines_truncates_and_caches(tmp_path, lines, tokenizer):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cache = tmp_path / "cache" / "ids.npz"
    first = mlm.tokenize_lines(path, tokenizer, max_length=10, cache_path=cache)
    assert cache.is_file() and first.lengths.max() <= 10
    assert all(first[i]["input_ids"][-1] == tokenizer.sep_token_id for i in range(len(first)))
    mtime = cache.stat().st_mtime_ns
    again = mlm.tokenize_lines(path, tokenizer, max_length=10, cache_path=cache)
    assert cache.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert np.array_equal(first.input_ids, again.input_ids) and np.array_equal(first.offsets, again.offsets)
    longer = mlm.tokenize_lines(path, tokenizer, max_length=16, cache_path=cache)  # fingerprint changed -> rebuilt
    assert longer.lengths.max() > 10


def test_tokenize_lines_clear_errors(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        mlm.tokenize_lines(tmp_path / "missing.txt", tokenizer, 16)
    (tmp_path / "blank.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match="blank.txt"):
        mlm.tokenize_lines(tmp_path / "blank.txt", tokenizer, 16)

    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        mlm.tokenize_lines(["a b"], Slow(), 16)


# ---------------------------------------------------------------------------- batches


def test_length_grouped_sampler_covers_epoch_groups_lengths_and_resumes(corpus):
    lengths = corpus.lengths
    sampler = mlm.LengthGroupedBatchSampler(lengths, batch_size=8, seed=3, mega_batch_mult=10)
    epoch0 = sampler.epoch_batches(0)
    flat = [i for b in epoch0 for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every example once per epoch
    assert epoch0 != sampler.epoch_batches(1)  # reshuffled each epoch
    # length grouping: the spread of lengths inside a batch is far below that of random batches
    spread = np.mean([np.ptp(lengths[b]) for b in epoch0])
    rng = np.random.default_rng(0)
    random_spread = np.mean([np.ptp(lengths[rng.choice(len(lengths), 8, replace=False)]) for _ in range(200)])
    assert spread < 0.5 * random_spread

    it = iter(sampler)
    first = [next(it) for _ in range(len(epoch0) + 5)]  # crosses into epoch 1
    assert first[: len(epoch0)] == epoch0
    state = sampler.state_dict()
    assert state["epoch"] == 1 and state["position"] == 5
    rest = [next(it) for _ in range(7)]
    fresh = mlm.LengthGroupedBatchSampler(lengths, batch_size=8, seed=3, mega_batch_mult=10)
    fresh.load_state_dict(state)
    assert [b for _, b in zip(range(7), iter(fresh))] == rest


def test_sampler_shards_are_disjoint_and_equal(corpus):
    shards = [mlm.LengthGroupedBatchSampler(corpus.lengths, 8, seed=1, num_shards=3, shard_index=k) for k in range(3)]
    batches = [s.epoch_batches(0) for s in shards]
    assert len({len(b) for b in batches}) == 1
    seen = [i for bs in batches for b in bs for i in b]
    assert len(seen) == len(set(seen))
    with pytest.raises(ValueError, match="batch_size"):
        shards[0].load_state_dict({"epoch": 0, "position": 0, "seed": 1, "batch_size": 16})


def test_batch_stream_state_restores_batches_and_masks(corpus, tokenizer):
    def stream():
        return mlm.BatchStream(
            corpus,
            mlm.LengthGroupedBatchSampler(corpus.lengths, 8, seed=5),
            mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7),
        )

    a = stream()
    for _ in range(9):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(6)]
    b = stream()
    next(b)  # advance it, so load_state_dict must really rewind/forward
    b.load_state_dict(state)
    got = [next(b) for _ in range(6)]
    for e, g in zip(expected, got):
        assert e.keys() == g.keys()
        for k in e:
            assert torch.equal(e[k], g[k]), k


def _same_batches(expected, got):
    for e, g in zip(expected, got, strict=True):
        assert e.keys() == g.keys()
        assert all(torch.equal(e[k], g[k]) for k in e)


def test_workers_mask_in_parallel_and_resume_exactly(corpus, tokenizer):
    """Per-batch seeds: 2 DataLoader workers give the batches of the in-process stream, and a stream
    resumed from a state taken mid-way (with prefetched batches in flight) continues with them exactly."""

    def stream(workers):
        collator = mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7, per_batch_seed=True)
        sampler = mlm.LengthGroupedBatchSampler(corpus.lengths, 64, seed=5)
        return mlm.BatchStream(corpus, sampler, collator, num_workers=workers)

    serial = stream(0)
    expected = [next(serial) for _ in range(12)]  # 400 lines in batches of 64: crosses into the second epoch
    parallel = stream(2)
    first = [next(parallel) for _ in range(5)]
    state = parallel.state_dict()
    assert state["drawn"] == 5 and "collator" not in state  # the state is the cursor, not a generator
    _same_batches(expected[:5], first)
    for workers in (2, 0):
        resumed = stream(workers)
        resumed.load_state_dict(state)
        _same_batches(expected[5:], [next(resumed) for _ in range(7)])
    # control: per-batch masks are not the continuous stream's (documented: same distribution, other draws)
    continuous = mlm.BatchStream(
        corpus,
        mlm.LengthGroupedBatchSampler(corpus.lengths, 64, seed=5),
        mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7),
    )
    assert not all(torch.equal(e["labels"], next(continuous)["labels"]) for e in expected[:5])
    with pytest.raises(ValueError, match="per-batch mode"):
        mlm.BatchStream(
            corpus,
            mlm.LengthGroupedBatchSampler(corpus.lengths, 64, seed=5),
            mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7),
            num_workers=2,
        )


def test_starting_the_workers_leaves_the_global_rng_alone(corpus, tokenizer):
    """A resumed run restores the global RNG (dropout) and then starts the workers: starting them must not draw
    from it, or the resumed run's dropout differs from the uninterrupted run's."""
    stream = mlm.BatchStream(
        corpus,
        mlm.LengthGroupedBatchSampler(corpus.lengths, 64, seed=5),
        mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7, per_batch_seed=True),
        num_workers=2,
    )
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    next(stream)
    assert torch.equal(torch.rand(4), expected)
    stream.close()


def test_closing_a_stream_stops_its_workers_and_it_continues_where_it_was(corpus, tokenizer):
    def stream(workers):
        collator = mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7, per_batch_seed=True)
        return mlm.BatchStream(
            corpus, mlm.LengthGroupedBatchSampler(corpus.lengths, 64, seed=5), collator, num_workers=workers
        )

    serial = stream(0)
    expected = [next(serial) for _ in range(8)]
    parallel = stream(2)
    first = [next(parallel) for _ in range(3)]
    workers = list(parallel._loader._workers)
    parallel.close()
    assert parallel._loader is None and not any(w.is_alive() for w in workers)
    _same_batches(expected, first + [next(parallel) for _ in range(5)])  # workers restarted from the cursor
    in_process = stream(0)
    drawn = [next(in_process) for _ in range(3)]
    in_process.close()  # no workers: nothing to stop, the stream goes on
    _same_batches(expected, drawn + [next(in_process) for _ in range(5)])


def test_batch_seed_depends_on_seed_and_number_only():
    assert mlm.batch_seed(7, 3) == mlm.batch_seed(7, 3)
    assert len({mlm.batch_seed(7, n) for n in range(100)} | {mlm.batch_seed(8, 0)}) == 101
    assert 0 <= mlm.batch_seed(2**40, 10**9) < 2**63


# ---------------------------------------------------------------------------- whole-word masking


def _big_batch(corpus, tokenizer, seed=0, **kw):
    collator = mlm.WholeWordMaskCollator(tokenizer, seed=seed, **kw)
    return collator([corpus[i] for i in range(len(corpus))]), collator


def test_whole_words_masked_never_specials_or_padding(corpus, tokenizer):
    batch, _ = _big_batch(corpus, tokenizer)
    original = mlm.pad_examples([corpus[i] for i in range(len(corpus))], tokenizer.pad_token_id)
    labels, word_ids = batch["labels"], batch["word_ids"]
    predicted = labels != -100
    assert torch.equal(word_ids, original["word_ids"]) and torch.equal(
        batch["attention_mask"], original["attention_mask"]
    )
    # labels hold the original ids where predicted, -100 elsewhere
    assert torch.equal(labels[predicted], original["input_ids"][predicted])
    # never special tokens or padding
    special = torch.isin(original["input_ids"], torch.tensor(tokenizer.all_special_ids))
    assert not (predicted & special).any() and not (predicted & (batch["attention_mask"] == 0)).any()
    # inputs change only at predicted positions
    assert torch.equal(batch["input_ids"][~predicted], original["input_ids"][~predicted])
    multi_subword_words_seen = 0
    for b in range(len(corpus)):
        n_words = int(word_ids[b].max()) + 1
        chosen = {int(w) for w in word_ids[b][predicted[b]]}
        assert len(chosen) == max(1, round(0.15 * n_words))
        for w in range(n_words):
            at = word_ids[b] == w
            # every subword of a chosen word is predicted, none of an unchosen one
            assert bool(predicted[b][at].all()) == (w in chosen) and bool(predicted[b][at].any()) == (w in chosen)
            multi_subword_words_seen += int(w in chosen and at.sum() > 1)
            assert (batch["word_actions"][b, w] != 0) == (w in chosen)
    assert multi_subword_words_seen > 50  # the check above really involved words split into subwords


def test_80_10_10_proportions(corpus, tokenizer):
    batches = [_big_batch(corpus, tokenizer, seed=s)[0] for s in range(12)]
    actions = torch.cat([b["word_actions"].flatten() for b in batches])
    chosen = actions[actions != 0]
    n = len(chosen)
    assert n > 3000
    for action, p in ((mlm.ACTION_MASK, 0.8), (mlm.ACTION_RANDOM, 0.1), (mlm.ACTION_KEEP, 0.1)):
        share = float((chosen == action).float().mean())
        assert abs(share - p) < 4 * (p * (1 - p) / n) ** 0.5, (action, share)
    # token level: [MASK] inputs where action==mask, original kept where keep, non-special random ids otherwise
    special = torch.tensor(tokenizer.all_special_ids)
    n_tok = {mlm.ACTION_MASK: 0, mlm.ACTION_RANDOM: 0, mlm.ACTION_KEEP: 0}
    changed_random = 0
    for b in batches:
        token_action = torch.where(
            b["word_ids"] >= 0,
            torch.gather(b["word_actions"].long(), 1, b["word_ids"].clamp(min=0)),
            torch.zeros_like(b["word_ids"]),
        )
        assert (b["input_ids"][token_action == mlm.ACTION_MASK] == tokenizer.mask_token_id).all()
        assert torch.equal(
            b["input_ids"][token_action == mlm.ACTION_KEEP], b["labels"][token_action == mlm.ACTION_KEEP]
        )
        rnd = b["input_ids"][token_action == mlm.ACTION_RANDOM]
        assert not torch.isin(rnd, special).any()
        changed_random += int((rnd != b["labels"][token_action == mlm.ACTION_RANDOM]).sum())
        for a in n_tok:
            n_tok[a] += int((token_action == a).sum())
    assert changed_random > 0.8 * n_tok[mlm.ACTION_RANDOM]  # random draws mostly differ from the original
    total = sum(n_tok.values())
    assert abs(n_tok[mlm.ACTION_MASK] / total - 0.8) < 0.03


def test_collator_deterministic_given_seed(corpus, tokenizer):
    examples = [corpus[i] for i in range(64)]
    a = mlm.WholeWordMaskCollator(tokenizer, seed=11)
    b = mlm.WholeWordMaskCollator(tokenizer, seed=11)
    c = mlm.WholeWordMaskCollator(tokenizer, seed=12)
    ba, bb, bc = a(examples), b(examples), c(examples)
    assert torch.equal(ba["input_ids"], bb["input_ids"]) and torch.equal(ba["labels"], bb["labels"])
    assert not torch.equal(ba["labels"], bc["labels"])
    state = a.state_dict()
    n1 = a(examples)
    a.load_state_dict(state)
    assert torch.equal(a(examples)["input_ids"], n1["input_ids"])


def test_functional_whole_word_mask_matches_collator(corpus, tokenizer):
    examples = [corpus[i] for i in range(32)]
    batch = mlm.WholeWordMaskCollator(tokenizer, seed=3)(examples)
    plain = mlm.pad_examples(examples, tokenizer.pad_token_id)
    masked, labels, actions = mlm.whole_word_mask(
        plain["input_ids"], plain["word_ids"], tokenizer, torch.Generator().manual_seed(3)
    )
    assert (
        torch.equal(masked, batch["input_ids"])
        and torch.equal(labels, batch["labels"])
        and torch.equal(actions, batch["word_actions"])
    )


def test_accepts_tokenizer_word_ids_with_none(tokenizer):
    enc = tokenizer(["casa mare frumoasă", "copilul aleargă prin parcul orașului"])
    examples = [{"input_ids": enc["input_ids"][i], "word_ids": enc.word_ids(i)} for i in range(2)]
    batch = mlm.WholeWordMaskCollator(tokenizer, seed=0)(examples)
    assert batch["word_ids"][0, 0] == -1 and (batch["labels"] != -100).any(dim=1).all()
    with pytest.raises(KeyError, match="word_ids"):
        mlm.WholeWordMaskCollator(tokenizer)([{"input_ids": [2, 5, 3]}])


def test_frequency_smoothed_masking_prefers_rare_words(tokenizer):
    rng = random.Random(1)
    # "și" is in every line three times; the other words are each rare
    lines = [f"și {rng.choice(WORDS)} și {rng.choice(WORDS)} și" for _ in range(300)]
    corpus = mlm.tokenize_lines(lines, tokenizer, 32)
    si = tokenizer.convert_tokens_to_ids("și")
    assert si != tokenizer.unk_token_id
    counts = mlm.token_counts(corpus, len(tokenizer))
    weights = mlm.smoothed_token_weights(counts, tokenizer.all_special_ids)
    assert torch.allclose(weights[si], torch.tensor(float(counts[si]) ** -0.7))
    assert (weights[tokenizer.all_special_ids] == 0).all()

    def share_of_si_masked(token_weights):
        hits = total = 0
        for s in range(4):
            b, _ = _big_batch(corpus, tokenizer, seed=s, token_weights=token_weights)
            is_si = b["labels"] == si
            hits += int(is_si.sum())
            total += int((b["labels"] != -100).sum())
        return hits / total

    plain, smooth = share_of_si_masked(None), share_of_si_masked(weights)
    assert plain > 0.25  # 3 of 5 words are "și" (the others span several subwords, so under 60 % of tokens)
    assert smooth < 0.3 * plain  # smoothed weights steer masking to the rare words


def test_apply_word_actions_on_second_tokenization(lines, tokenizer):
    """The same chosen words, masked in another tokenizer's view of the same text (cross-tokenizer distillation)."""
    other = make_tokenizer(lines, vocab_size=70, lowercase=True)
    text = ["Copilul aleargă prin parcul orașului seara", "Ţara noastră are munţi înalţi"]
    ea, eb = mlm.tokenize_lines(text, tokenizer, 32), mlm.tokenize_lines(text, other, 32)
    a = mlm.WholeWordMaskCollator(tokenizer, 0.4, seed=0)([ea[0], ea[1]])
    pb = mlm.pad_examples([eb[0], eb[1]], other.pad_token_id)
    g = torch.Generator().manual_seed(0)
    masked_b, labels_b = mlm.apply_word_actions(
        pb["input_ids"], pb["word_ids"], a["word_actions"], other.mask_token_id, torch.arange(5, len(other)), g
    )
    for row in range(2):
        words_a = set(a["word_ids"][row][a["labels"][row] != -100].tolist())
        words_b = set(pb["word_ids"][row][labels_b[row] != -100].tolist())
        assert words_a == words_b and words_a


def test_apply_word_actions_leaves_uncovered_words_unmasked():
    input_ids = torch.tensor([[2, 10, 11, 12, 13, 3]])
    word_ids = torch.tensor([[-1, 0, 1, 1, 2, -1]])
    actions = torch.tensor([[0, 1]], dtype=torch.int8)  # only words 0-1 known; word 2 lies beyond
    g = torch.Generator().manual_seed(0)
    masked, labels = mlm.apply_word_actions(input_ids, word_ids, actions, 4, torch.arange(5, 20), g)
    assert masked.tolist() == [[2, 10, 4, 4, 13, 3]]
    assert labels.tolist() == [[-100, -100, 11, 12, -100, -100]]


# ---------------------------------------------------------------------------- logits at masked positions


def _tiny_bert(vocab):
    return BertForMaskedLM(
        BertConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            attn_implementation="sdpa",
        )
    ).eval()


def _tiny_distilbert(vocab):
    return DistilBertForMaskedLM(
        DistilBertConfig(
            vocab_size=vocab,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=64,
            attn_implementation="sdpa",
        )
    ).eval()


@pytest.mark.parametrize("build", [_tiny_bert, _tiny_distilbert], ids=["bert", "distilbert"])
def test_masked_positions_logits_equal_full_logits(build, corpus, tokenizer):
    torch.manual_seed(0)
    model = build(len(tokenizer))
    batch = mlm.WholeWordMaskCollator(tokenizer, seed=0)([corpus[i] for i in range(16)])
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        enc = mlm.encoder_hidden_states(model, batch["input_ids"], batch["attention_mask"])
        logits, targets = mlm.masked_positions_logits(enc.last_hidden_state, batch["labels"], mlm.mlm_head(model))
        sparse = mlm.SparseMLM(model)(
            batch["input_ids"], batch["attention_mask"], batch["labels"], output_hidden_states=True
        )
    pos = batch["labels"] != -100
    assert logits.shape == (int(pos.sum()), len(tokenizer))
    assert torch.allclose(logits, full.logits[pos], atol=1e-5, rtol=1e-5)
    assert torch.equal(targets, batch["labels"][pos])
    assert torch.allclose(sparse.logits, full.logits[pos], atol=1e-5, rtol=1e-5)
    assert len(sparse.hidden_states) == len(full.hidden_states)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(sparse.hidden_states, full.hidden_states))


def test_mlm_head_unknown_model_type_is_clear():
    with pytest.raises(KeyError, match="MLM_HEADS"):
        mlm.mlm_head(torch.nn.Linear(2, 2))


def test_sparse_mlm_registers_no_duplicate_parameters(tokenizer):
    model = _tiny_bert(len(tokenizer))
    sparse = mlm.SparseMLM(model)
    assert set(sparse.state_dict()) == {f"model.{k}" for k in model.state_dict()}


def test_evaluation_mask_masks_whole_words_only_and_uses_the_training_choice():
    """The held-out masking is the training masker with every chosen word fully [MASK]ed: 10 words at p = 0.15
    -> round(1.5) = 2 words, all their sub-words masked, special tokens and padding never."""
    from rokd.mlm import choose_word_actions, evaluation_mask

    # [CLS] w0 w0 w1 w2 w3 w3 w4 w5 w6 w7 w8 w9 [SEP] [PAD]
    words = torch.tensor([[-1, 0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, -1, -1]])
    ids = torch.arange(100, 115).unsqueeze(0)
    masked, labels = evaluation_mask(words, ids, 4, torch.Generator().manual_seed(3), 0.15)
    chosen = choose_word_actions(words, ids, torch.Generator().manual_seed(3), 0.15)[0].nonzero().flatten().tolist()
    assert len(chosen) == 2
    expected = torch.isin(words, torch.tensor(chosen))
    assert torch.equal(labels != -100, expected)
    assert torch.equal(masked[expected], torch.full((int(expected.sum()),), 4))
    assert torch.equal(masked[~expected], ids[~expected]) and torch.equal(labels[expected], ids[expected])


def _worker_stream(corpus, tokenizer, workers):
    return mlm.BatchStream(
        corpus,
        mlm.LengthGroupedBatchSampler(corpus.lengths, 64, seed=5),
        mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=7, per_batch_seed=True),
        num_workers=workers,
    )


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_workers_leave_stop_signals_to_the_training_process(corpus, tokenizer, sig):
    """Ctrl-C from a terminal, and SIGTERM sent to a whole job (Slurm preemption, systemd, a machine shutting
    down), reach every process; while the training process catches them (rokd.trainer does during its loop)
    the workers keep serving batches, so it can finish its step and checkpoint."""
    import signal
    import subprocess
    import time

    serial = _worker_stream(corpus, tokenizer, 0)
    expected = [next(serial) for _ in range(6)]
    parallel = _worker_stream(corpus, tokenizer, 2)
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # as the trainer's loop does
    try:
        got = [next(parallel)]
        workers = parallel._loader._workers  # torch's worker processes
        # sent by another process, as a terminal's or Slurm's is (torch's worker handler treats a SIGTERM from
        # the training process itself as its shutdown)
        subprocess.run(["kill", f"-{sig[3:]}", *(str(w.pid) for w in workers)], check=True)
        time.sleep(0.5)
        assert all(w.is_alive() for w in workers)
        got += [next(parallel) for _ in range(5)]
    finally:
        signal.signal(signal.SIGTERM, previous)
        parallel.close()
    _same_batches(expected, got)


def test_workers_end_quietly_on_sigterm_when_the_training_process_does_not_catch_it(corpus, tokenizer):
    """Outside a training loop SIGTERM ends a worker at once, with exit status 0 as torch's own handler does:
    Python's multiprocessing ends leftover workers so at exit (a worker ignoring it hung pytest's exit)."""
    import os
    import signal

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as outside rokd's training loop
    parallel = _worker_stream(corpus, tokenizer, 2)
    try:
        next(parallel)
        workers = parallel._loader._workers
        for w in workers:
            os.kill(w.pid, signal.SIGTERM)
        for w in workers:
            w.join(timeout=20)
        assert [w.exitcode for w in workers] == [0, 0]
    finally:
        parallel.close()
        signal.signal(signal.SIGTERM, previous)
