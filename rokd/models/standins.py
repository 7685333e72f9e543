"""Local stand-ins for teachers of the common tokenizer families, built offline from a text corpus.

A stand-in is a folder in Hugging Face format (``save_pretrained``: safetensors, tokenizer, config) that
``AutoModelForMaskedLM`` / ``AutoTokenizer`` load like a hub model. It has the family's tokenizer,
trained on the given text with the ``tokenizers`` library, and the family's masked-LM architecture with
random weights (optionally pretrained briefly with the shared MLM loop, :func:`rokd.models.teachers.pretrain_mlm`):

| kind | tokenizer | model |
|---|---|---|
| ``bert-cased`` | WordPiece, case and diacritics kept (BERT-base-ro's) | ``BertForMaskedLM`` |
| ``bert-uncased`` | WordPiece, lower-cased, diacritics kept (RoBERT-base's) | ``BertForMaskedLM`` |
| ``xlm-roberta`` | SentencePiece Unigram, ``▁`` word-start marker (XLM-R's; see below) | ``XLMRobertaForMaskedLM`` |
| ``roberta`` | byte-level BPE, ``Ġ`` marker over a byte alphabet (RoBERTa's) | ``RobertaForMaskedLM`` |

They let the cross-tokenizer code, the students of each family and the real models' shapes (12 x 768,
50,000-token vocabularies) be exercised where the hub cannot be reached: in the tests, in the "Distil
your own" chapter on the offline profiles, and in the stand-in run of the real shapes.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rokd import io
from rokd.config import to_dict
from rokd.profiles import BertShape, TeachersConfig

STANDIN_FILE = "standin_config.json"
# Special tokens of the RoBERTa / XLM-R families, in their ids' order (pad = 1, as in the real models).
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@dataclass(frozen=True)
class StandinKind:
    tokenizer: str  # "wordpiece" | "sentencepiece" | "byte-bpe"
    model_type: str  # config.model_type of the masked LM
    lowercase: bool = False


STANDIN_KINDS = {
    "bert-cased": StandinKind("wordpiece", "bert"),
    "bert-uncased": StandinKind("wordpiece", "bert", lowercase=True),
    "xlm-roberta": StandinKind("sentencepiece", "xlm-roberta"),
    "roberta": StandinKind("byte-bpe", "roberta"),
}


def _texts(texts: Iterable[str] | None, files: Iterable[str | Path] | None) -> Iterable[str]:
    if (texts is None) == (files is None):
        raise ValueError("give exactly one of texts= or files=")
    if texts is not None:
        return (t for t in texts if t and t.strip())

    def lines():
        for f in files:
            with open(f, encoding="utf-8") as fh:
                yield from (ln.strip() for ln in fh if ln.strip())

    return lines()


def _roberta_family_tokenizer(backend, cls_name: str, model_max_length: int):
    import transformers

    cls = getattr(transformers, cls_name)
    return cls(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )


def train_tokenizer(
    kind: str,
    texts: Iterable[str] | None = None,
    *,
    files: Iterable[str | Path] | None = None,
    vocab_size: int,
    model_max_length: int = 512,
):
    """A fast tokenizer of stand-in ``kind`` (see :data:`STANDIN_KINDS`) trained on ``texts`` or ``files``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    spec = STANDIN_KINDS[kind]
    if spec.tokenizer == "wordpiece":
        from rokd.models.tokenizers import train_wordpiece

        return train_wordpiece(
            _texts(texts, files),
            vocab_size=vocab_size,
            lowercase=spec.lowercase,
            min_frequency=1,
            model_max_length=model_max_length,
        )
    if spec.tokenizer == "sentencepiece":
        # The Unigram trainer of `tokenizers`, given a few thousand sentences, keeps pieces far shorter than
        # a SentencePiece model trained on gigabytes (``▁P reș edi nte le``). The stand-in's Unigram model
        # takes its pieces from a BPE trainer instead (split at punctuation, as SentencePiece splits at
        # script changes), scored by their log-frequency in the text: whole frequent words, as in XLM-R.
        lines = list(_texts(texts, files))
        metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        seed = Tokenizer(models.BPE(unk_token="<unk>"))
        seed.normalizer = normalizers.NFKC()
        seed.pre_tokenizer = pre_tokenizers.Sequence([metaspace, pre_tokenizers.Punctuation("isolated")])
        seed_trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=ROBERTA_SPECIALS, show_progress=False)
        seed.train_from_iterator(lines, trainer=seed_trainer)
        counts = Counter(t for enc in seed.encode_batch(lines, add_special_tokens=False) for t in enc.tokens)
        pieces = sorted(t for t in seed.get_vocab() if t not in ROBERTA_SPECIALS)
        total = sum(counts.values()) + len(pieces)
        scored = [(t, 0.0) for t in ROBERTA_SPECIALS] + [(t, math.log((counts[t] + 1) / total)) for t in pieces]
        backend = Tokenizer(models.Unigram(scored, unk_id=ROBERTA_SPECIALS.index("<unk>")))
        backend.normalizer = normalizers.NFKC()
        backend.pre_tokenizer = metaspace
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        backend.add_special_tokens(ROBERTA_SPECIALS)
        bos, eos = backend.token_to_id("<s>"), backend.token_to_id("</s>")
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
        )
        return _roberta_family_tokenizer(backend, "XLMRobertaTokenizerFast", model_max_length)
    if spec.tokenizer == "byte-bpe":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=ROBERTA_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(_texts(texts, files), trainer=trainer)
        sep, cls = ("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>"))
        backend.post_processor = processors.RobertaProcessing(sep, cls, trim_offsets=True, add_prefix_space=False)
        return _roberta_family_tokenizer(backend, "RobertaTokenizerFast", model_max_length)
    raise ValueError(f"unknown stand-in tokenizer {spec.tokenizer!r}")


def standin_config(kind: str, tokenizer, shape: BertShape):
    """The masked LM's config for ``shape``; ``vocab_size`` is the shape's when larger than the tokenizer's
    (the real models' output size, padded beyond a vocabulary trained on a small text)."""
    from transformers import AutoConfig

    spec = STANDIN_KINDS[kind]
    pad = int(tokenizer.pad_token_id)
    extra = {}
    if spec.model_type != "bert":  # RoBERTa family: positions start after the padding index, one segment
        extra = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1)
    return AutoConfig.for_model(
        spec.model_type,
        vocab_size=max(len(tokenizer), shape.vocab_size),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings + (pad + 1 if spec.model_type != "bert" else 0),
        pad_token_id=pad,
        **extra,
    )


def new_standin(kind: str, tokenizer, shape: BertShape, seed: int = 0):
    """A randomly initialised masked LM of the kind's architecture (``AutoModelForMaskedLM.from_config``)."""
    import torch
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(seed)
    return AutoModelForMaskedLM.from_config(standin_config(kind, tokenizer, shape))


def build_standin(
    kind: str,
    out_dir: str | Path,
    *,
    texts: list[str] | None = None,
    files: list[str | Path] | None = None,
    shape: BertShape,
    seed: int = 0,
    pretrain: TeachersConfig | None = None,
    pretrain_txt: str | Path | None = None,
    device: str = "cpu",
    log=print,
) -> Path:
    """Train the tokenizer, make the model (pretrained for ``pretrain.steps`` on ``pretrain_txt`` when
    given) and ``save_pretrained`` both into ``out_dir``. Reused when ``standin_config.json`` matches."""
    from rokd.models.teachers import file_sha256

    if kind not in STANDIN_KINDS:
        raise ValueError(f"unknown stand-in kind {kind!r}; choose one of {list(STANDIN_KINDS)}")
    out_dir = Path(out_dir)
    record = {
        "kind": kind,
        "shape": to_dict(shape),
        "seed": seed,
        "texts": len(texts) if texts is not None else None,
        "files": [[str(f), file_sha256(f)] for f in files] if files is not None else None,
        "pretrain": to_dict(pretrain) if pretrain is not None else None,
        "pretrain_txt": str(pretrain_txt) if pretrain_txt is not None else None,
    }
    stamp = out_dir / STANDIN_FILE
    built = stamp.is_file() and (out_dir / "config.json").is_file()
    if built and json.loads(stamp.read_text(encoding="utf-8")) == record:
        log(f"[stand-in] {kind}: up to date in {out_dir}")
        return out_dir
    log(f"[stand-in] {kind}: training a {STANDIN_KINDS[kind].tokenizer} tokenizer (vocabulary {shape.vocab_size})")
    tokenizer = train_tokenizer(
        kind, texts, files=files, vocab_size=shape.vocab_size, model_max_length=shape.max_position_embeddings
    )
    model = new_standin(kind, tokenizer, shape, seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp", dir=out_dir.parent))
    try:
        if pretrain is not None:
            from rokd.models.teachers import pretrain_mlm

            if pretrain_txt is None:
                raise ValueError("pretrain= needs pretrain_txt= (a one-sentence-per-line text file)")
            log(f"[stand-in] {kind}: pretraining for {pretrain.steps} steps on {pretrain_txt}")
            pretrain_mlm(model, tokenizer, pretrain_txt, pretrain, tmp / "run", device=device, resume=False)
            shutil.rmtree(tmp / "run")
        model.to("cpu").save_pretrained(str(tmp), safe_serialization=True)
        io.write_tokenizer(tmp, tokenizer)
        (tmp / STANDIN_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        if out_dir.exists():
            if not (out_dir / STANDIN_FILE).is_file():
                raise FileExistsError(f"{out_dir} exists and is not a rokd stand-in: choose another folder")
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"[stand-in] {kind}: saved to {out_dir}")
    return out_dir


def profile_standin(profile, kind: str, steps: int | None = None, log=print) -> Path:
    """A stand-in teacher of ``kind`` for a profile's offline runs, in ``artifacts/<profile>/teachers/standin-<kind>``:
    the shape of the profile's cased teacher, the tokenizer trained on the profile's corpus, pretrained with
    the profile's teacher settings for ``steps`` (default: the profile's). Reused when built alike."""
    import dataclasses

    from rokd.models.teachers import _device, corpus_files
    from rokd.paths import artifacts_dir
    from rokd.profiles import resolve_profile

    prof = resolve_profile(profile)
    cfg = prof.teachers
    steps = cfg.steps if steps is None else int(steps)
    pretrain = dataclasses.replace(
        cfg, steps=steps, warmup_steps=min(cfg.warmup_steps, steps // 10), checkpoint_every=0, curve_every=0
    )
    train_txt, _ = corpus_files(prof)
    return build_standin(
        kind,
        artifacts_dir(prof.name) / "teachers" / f"standin-{kind}",
        files=[train_txt],
        shape=cfg.cased,
        seed=cfg.seed,
        pretrain=pretrain,
        pretrain_txt=train_txt,
        device=_device(prof),
        log=log,
    )
