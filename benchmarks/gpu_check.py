"""GPU readiness: time rokd's distillation step, a fine-tuning step and inference at mini and base shapes.

On CUDA it prints, per shape and step, tokens/s and peak GPU memory, in the precision ``auto`` picks there
(bf16; fp16 with a gradient scaler on GPUs without bf16) with SDPA attention; the batches are collated and
masked in DataLoader workers (``--workers``, per-batch masking seeds) as a GPU run would. On a CPU it runs the
same code for a few steps (CI keeps it working: ``tests/test_gpu_check.py``).

Self-contained: needs torch and transformers (and rokd), no data, no corpus, no datasets/seqeval/conllu/
papermill (checked at the end). Models have random weights (speed does not depend on them); the
vocabulary is a synthetic WordPiece of the shape's size; sentences are random token ids with lengths
spread like the corpus's (8-``--seq-length`` tokens, grouped by length).

    python benchmarks/gpu_check.py                       # CUDA if visible: mini and base, 20 timed steps
    python benchmarks/gpu_check.py --device cpu --tiny --steps 2 --workers 0    # what CI runs

Steps: ``distill`` (batches with the corpus's spread of lengths), ``distill-fix`` (the same step, every batch at
the full length: one shape, so a large gap to ``distill`` is a per-shape cost), ``distill-cudnn`` (CUDA, half
precision: ``distill`` with cuDNN attention, which rokd turns off there, back on), ``finetune``, ``infer-t`` /
``infer-s`` (teacher / student encoder). Figures measured on GPUs are in ``results/gpu_check/``.

Output: one line per shape x step: ``<step> <shape> <precision>: <tokens/s> tokens/s, step <ms> ms, peak <MiB> MiB``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

FORBIDDEN = ("datasets", "seqeval", "conllu", "papermill")

SHAPES = {  # teacher shapes; the student has half the layers (DistilBERT recipe)
    "tiny": dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "mini": dict(vocab_size=8000, hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024),
    "base": dict(
        vocab_size=50000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
}


def synthetic_tokenizer(vocab_size: int):
    """A fast WordPiece tokenizer whose vocabulary has ``vocab_size`` entries (5 specials + ``w<i>`` words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), vocab_size)})
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def synthetic_corpus(n: int, vocab_size: int, max_length: int, seed: int = 0, fixed_length: bool = False):
    """``n`` random sentences as a :class:`rokd.mlm.TokenizedLines` (one word per token; [CLS] ... [SEP]);
    ``fixed_length``: every sentence ``max_length`` tokens long (every batch the same shape)."""
    import numpy as np

    from rokd import mlm

    rng = np.random.default_rng(seed)
    lengths = np.full(n, max_length) if fixed_length else rng.integers(8, max_length + 1, size=n)
    ids, words = [], []
    for length in lengths:
        body = rng.integers(5, vocab_size, size=length - 2)
        ids.append(np.concatenate([[2], body, [3]]))
        words.append(np.concatenate([[-1], np.arange(length - 2), [-1]]))
    flat_ids = np.concatenate(ids).astype(np.int32)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return mlm.TokenizedLines(
        input_ids=flat_ids,
        word_ids=np.concatenate(words).astype(np.int32),
        char_spans=np.zeros((len(flat_ids), 2), dtype=np.int32),
        offsets=offsets,
        line_index=np.arange(n, dtype=np.int64),
    )


class Clock:
    """Times steps on ``device`` (CUDA-synchronised), tracks peak memory."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device

    def reset(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return self.torch.cuda.max_memory_allocated() / 2**20
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # process peak RSS (KiB on Linux)


def run_shape(name: str, shape: dict, args, device, precision, clock: Clock) -> list[str]:
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    from rokd import mlm
    from rokd.distill.adaptors import make_adaptor
    from rokd.distill.distiller import DistillNet, DistillOverrides, make_step_fn, resolve_run
    from rokd.distill.student import init_student_from_teacher
    from rokd.trainer import TrainerConfig, make_optimizer

    torch.manual_seed(0)
    seq = min(args.seq_length, 512)
    cfg = BertConfig(**shape, max_position_embeddings=512, attn_implementation="sdpa")
    tokenizer = synthetic_tokenizer(shape["vocab_size"])
    teacher = BertForMaskedLM(cfg).to(device).eval().requires_grad_(False)
    student = init_student_from_teacher(teacher.cpu()).to(device)
    teacher.to(device)
    # the mini profile's objective (its strategy, temperature, loss weights), this benchmark's budget
    run = resolve_run(
        "mini", "distil-bert-base-ro", DistillOverrides(steps=args.steps, batch_size=args.batch_size, max_length=seq)
    )
    adaptor = make_adaptor("bert-base-ro", teacher, tokenizer, tokenizer, 1.0, shape["vocab_size"])
    net = DistillNet(student, {adaptor.name: adaptor.hidden_size}).to(device).train()
    step_fn = make_step_fn([adaptor], run)
    opt = make_optimizer(net, TrainerConfig(lr=1e-4, steps=1))
    scaler = torch.amp.GradScaler(device.type) if precision.name == "fp16" else None

    def batch_stream(fixed_length: bool):
        corpus = synthetic_corpus(
            max(64, args.batch_size * (args.steps + args.warmup + 1)),
            shape["vocab_size"],
            seq,
            fixed_length=fixed_length,
        )
        return mlm.BatchStream(
            corpus,
            mlm.LengthGroupedBatchSampler(corpus.lengths, args.batch_size, seed=0),
            mlm.WholeWordMaskCollator(tokenizer, 0.15, seed=0, per_batch_seed=True),
            num_workers=args.workers,
        )

    lines = []

    def timed(label: str, step, batches_for, n_tokens):
        for _ in range(args.warmup):
            step(batches_for())
        clock.reset()
        times, tokens = [], 0
        for _ in range(args.steps):
            batch = batches_for()
            clock.sync()
            t0 = time.perf_counter()
            step(batch)
            clock.sync()
            times.append(time.perf_counter() - t0)
            tokens += n_tokens(batch)
        per_s = tokens / sum(times)
        lines.append(
            f"{label:13s} {name:5s} {precision.name}: {per_s:,.0f} tokens/s, "
            f"step {statistics.median(times) * 1000:.1f} ms, peak {clock.peak_mib():,.0f} MiB"
        )
        print(lines[-1], flush=True)

    def to_device(batch):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def distill_step(batch):
        with precision.autocast():
            loss = step_fn(net, batch)["loss"]
        backward_and_step(loss, net, opt, scaler)

    # Sentence lengths as in a corpus (a new batch shape at almost every step), then every batch at the full
    # length (one shape): a large gap means per-shape costs (kernel or plan selection per sequence length).
    # ``distill-cudnn``: the first again with cuDNN attention back in SDPA's backends (torch's default, which
    # rokd.precision turns off in half precision on CUDA): the per-shape plan cost, side by side.
    variants = [("distill", False, False), ("distill-fix", True, False)]
    if device.type == "cuda" and precision.name != "fp32":
        variants.append(("distill-cudnn", False, True))
    for label, fixed_length, cudnn in variants:
        stream = batch_stream(fixed_length)
        before = torch.backends.cuda.cudnn_sdp_enabled()
        torch.backends.cuda.enable_cudnn_sdp(before or cudnn)
        try:
            timed(label, distill_step, lambda s=stream: to_device(next(s)), lambda b: int(b["attention_mask"].sum()))
        finally:
            torch.backends.cuda.enable_cudnn_sdp(before)
            stream.close()  # stop its workers before the next DataLoader forks

    # Fine-tuning: a sequence classifier on the teacher's encoder, the trainer's optimizer, the task head's loss.
    clf = (
        BertForSequenceClassification(
            BertConfig(**shape, max_position_embeddings=512, num_labels=3, attn_implementation="sdpa")
        )
        .to(device)
        .train()
    )
    clf_opt = make_optimizer(clf, TrainerConfig(lr=5e-5, steps=1))
    gen = torch.Generator().manual_seed(1)

    def task_batch():
        ids = torch.randint(5, shape["vocab_size"], (args.batch_size, seq), generator=gen)
        return {
            "input_ids": ids.to(device),
            "attention_mask": torch.ones_like(ids).to(device),
            "labels": torch.randint(3, (args.batch_size,), generator=gen).to(device),
        }

    def finetune_step(batch):
        with precision.autocast():
            loss = clf(**batch).loss
        backward_and_step(loss, clf, clf_opt, scaler)

    timed("finetune", finetune_step, task_batch, lambda b: int(b["attention_mask"].sum()))

    # Inference: the fine-tuned setting, teacher and student encoders (weights cast on a GPU, autocast on a CPU).
    for who, model in (("teacher", teacher.base_model), ("student", net.student.model.base_model)):
        model = model.eval()
        infer = model.to(precision.dtype) if device.type == "cuda" and precision.name != "fp32" else model

        def infer_step(batch, infer=infer):
            with torch.inference_mode(), precision.autocast() if device.type == "cpu" else contextlib.nullcontext():
                infer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

        timed(f"infer-{who[0]}", infer_step, task_batch, lambda b: int(b["attention_mask"].sum()))
    return lines


def backward_and_step(loss, module, opt, scaler, max_grad_norm: float = 1.0) -> None:
    import torch

    if scaler is not None:  # fp16: scale the loss, unscale before clipping
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
        opt.step()
    opt.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    import torch

    from rokd.precision import resolve_precision, set_threads
    from rokd.runinfo import hardware

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--shapes", nargs="+", choices=list(SHAPES), default=None, help="default: mini base (tiny with --tiny)"
    )
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and batches (CI)")
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps per measurement (default 20 on CUDA, 3 on CPU)"
    )
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 on CUDA, 1 on CPU)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 32 (4 with --tiny)")
    ap.add_argument(
        "--seq-length", type=int, default=None, help="longest sentence, tokens (default 128; 16 with --tiny)"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers for collation/masking (default 2 on CUDA, 0 on CPU)",
    )
    ap.add_argument("--precision", default="auto", help="rokd.precision setting (auto | fp32 | bf16 | fp16)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.shapes = args.shapes or (["tiny"] if args.tiny else ["mini", "base"])
    args.steps = args.steps or (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.batch_size = args.batch_size or (4 if args.tiny else 32)
    args.seq_length = args.seq_length or (16 if args.tiny else 128)
    args.workers = args.workers if args.workers is not None else (2 if cuda else 0)
    set_threads(args.threads)
    precision = resolve_precision(args.precision, device.type)
    where = torch.cuda.get_device_name(device) if cuda else f"{torch.get_num_threads()} CPU threads"
    cudnn = "on" if torch.backends.cuda.cudnn_sdp_enabled() else "off"
    print(
        f"machine: {hardware()}; device {device} ({where}); torch {torch.__version__}; precision {precision.name} "
        f"({precision.reason}); batch {args.batch_size} x <= {args.seq_length} tokens; {args.steps} timed steps; "
        f"{args.workers} DataLoader workers; cuDNN attention {cudnn}"
    )
    clock = Clock(device)
    for name in args.shapes:
        run_shape(name, SHAPES[name], args, device, precision, clock)
    loaded = sorted(m for m in FORBIDDEN if m in sys.modules)
    if loaded:
        print(f"error: imported {loaded}; gpu_check must run with torch + transformers only", file=sys.stderr)
        return 1
    print("gpu_check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
