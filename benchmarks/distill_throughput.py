"""Throughput of rokd's distillation step against a reference step written the way the Hugging Face
DistilBERT research distiller (``examples/research_projects/distillation/distiller.py``) does it.

Same student, teachers, batches and machine for every step kind; only the step differs:

- **reference**: the student and the teacher compute logits over the full vocabulary at every position,
  which are then masked (``masked_select``) for the KL term, while the MLM cross-entropy runs over the full
  ``(batch*length, vocab)`` logits; fp32; eager attention; teacher under ``no_grad``; torch's default AdamW.
- **rokd**: :func:`rokd.distill.distiller.make_step_fn` plus the trainer's optimizer
  (:func:`rokd.trainer.make_optimizer`) and clipping: logits only at masked positions for student and
  teacher, teacher in ``inference_mode``, SDPA attention, the KL and MLM terms from one fused pass over the
  masked logits, a single teacher's distribution used as is; in a given precision (autocast).

rokd runs at **fp32** (the like-for-like comparison) and at **auto** (:func:`rokd.precision.resolve_precision`:
bf16 where the CPU has AMX and a probe shows it faster, or on a GPU; fp32 elsewhere -- then the auto
rows repeat the fp32 ones). All step kinds are timed alternately on the same batch in each of several
rounds; the reported ratios are medians of the per-round ratios, so machine load falls on all alike.
Batches are collated beforehand (collation is timed separately and printed). Models have the ``mini``
profile's teacher shapes (random weights: the cost does not depend on the values); tokenizers are trained
on the first lines of the corpus with the ``mini`` vocabulary sizes. ``--breakdown`` also prints where the
time of one rokd step and one reference step goes.

    python benchmarks/distill_throughput.py [--batch-size 32] [--rounds 7] [--device cpu|cuda] [--threads N]

The last three lines are ``speedup fp32: X.XX``, ``speedup auto: Y.YY`` and ``speedup: Y.YY``
(reference step time / rokd single-teacher step time; the last one is rokd's own setting, auto).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def corpus_lines(path: Path, n: int) -> list[str]:
    if not path.is_file():
        raise SystemExit(
            f"corpus not found: {path}. Build it first: `rokd data corpus --profile smoke` (or pass --corpus FILE)"
        )
    lines = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line.strip())
            if len(lines) >= n:
                break
    return lines


def reference_step(student, teacher, batch, optimizer, temperature=2.0, alphas=(5.0, 2.0, 1.0), max_grad_norm=5.0):
    """One step as the HF research distiller computes it (full-vocabulary logits, then masked)."""
    input_ids, attention_mask, lm_labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    s_out = student(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    s_logits, s_hidden = s_out.logits, s_out.hidden_states[-1]
    with torch.no_grad():
        t_out = teacher(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    t_logits, t_hidden = t_out.logits, t_out.hidden_states[-1]
    mask = (lm_labels > -1).unsqueeze(-1).expand_as(s_logits)
    s_logits_slct = torch.masked_select(s_logits, mask).view(-1, s_logits.size(-1))
    t_logits_slct = torch.masked_select(t_logits, mask).view(-1, s_logits.size(-1))
    loss_ce = (
        F.kl_div(
            F.log_softmax(s_logits_slct / temperature, dim=-1),
            F.softmax(t_logits_slct / temperature, dim=-1),
            reduction="batchmean",
        )
        * temperature**2
    )
    loss_mlm = F.cross_entropy(s_logits.view(-1, s_logits.size(-1)), lm_labels.view(-1), ignore_index=-100)
    hmask = attention_mask.unsqueeze(-1).expand_as(s_hidden).bool()
    dim = s_hidden.size(-1)
    s_slct = torch.masked_select(s_hidden, hmask).view(-1, dim)
    t_slct = torch.masked_select(t_hidden, hmask).view(-1, dim)
    loss_cos = F.cosine_embedding_loss(s_slct, t_slct, s_slct.new_ones(s_slct.size(0)))
    loss = alphas[0] * loss_ce + alphas[1] * loss_mlm + alphas[2] * loss_cos
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def rokd_step(net, step_fn, batch, optimizer, precision, max_grad_norm=5.0):
    """One rokd optimizer step as :func:`rokd.trainer.train` takes it (autocast, backward, clipping, AdamW)."""
    with precision.autocast():
        terms = step_fn(net, batch)
    terms["loss"].backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(terms["loss"].detach())


def step_flops(step, shares: bool = False) -> int:
    """Floating-point operations of one call of ``step`` as torch's FlopCounterMode counts them (matrix
    products and attention; element-wise work such as softmax is not counted). ``shares``: also print the
    share of the modules that do the work (teacher encoder and MLM head, student, its vocabulary projection)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    total = int(counter.get_total_flops())
    if shares:
        by_module = {m: sum(ops.values()) for m, ops in counter.get_flop_counts().items()}
        parts = (
            "BertModel.encoder",
            "BertOnlyMLMHead",
            "DistillNet.student",
            "DistillNet.student.model.vocab_projector",
        )
        print(
            "FLOPs of the rokd single step by module: "
            + ", ".join(f"{m} {by_module.get(m, 0) / total:.0%}" for m in parts)
        )
    return total


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    from transformers import BertConfig, BertForMaskedLM

    from rokd.distill.distiller import DistillOverrides, build_setup, make_step_fn, resolve_run
    from rokd.models.tokenizers import train_wordpiece
    from rokd.paths import artifacts_dir
    from rokd.profiles import load_profile
    from rokd.runinfo import hardware

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="mini", help="profile whose teacher shapes are used")
    ap.add_argument("--corpus", type=Path, default=artifacts_dir("smoke") / "corpus" / "train.txt")
    ap.add_argument("--lines", type=int, default=30000, help="corpus lines for the tokenizers")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=None, help="default: the profile's distill.max_length")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps-per-round", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--breakdown", action="store_true", help="also time the phases of one rokd and one reference step")
    ap.add_argument(
        "--save",
        action="store_true",
        help="also write results/<profile>/distill_throughput.json (read by the distillation chapter)",
    )
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    from rokd.precision import set_threads

    set_threads(args.threads or 0)  # --threads, else ROKD_THREADS, else torch's default
    torch.manual_seed(0)

    prof = load_profile(args.profile)
    shapes = {"bert-base-ro": prof.teachers.cased, "robert-base": prof.teachers.uncased}
    max_length = args.max_length or prof.distill.max_length
    lines = corpus_lines(args.corpus, args.lines)
    t0 = time.perf_counter()
    toks = {k: train_wordpiece(lines, vocab_size=s.vocab_size, lowercase=s.lowercase) for k, s in shapes.items()}
    print(
        f"tokenizers: {', '.join(f'{k} {len(t)}' for k, t in toks.items())} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )

    def teacher(key):
        s = shapes[key]
        cfg = BertConfig(
            vocab_size=len(toks[key]),
            hidden_size=s.hidden_size,
            num_hidden_layers=s.num_hidden_layers,
            num_attention_heads=s.num_attention_heads,
            intermediate_size=s.intermediate_size,
            max_position_embeddings=s.max_position_embeddings,
        )
        return BertForMaskedLM(cfg).eval()

    teachers = {k: teacher(k) for k in shapes}
    # the profile's objective and budget, with this benchmark's batch shape; the single-teacher run has the
    # multi-teacher student with its first teacher only, so both steps see the same batches and student
    budget = dict(steps=1, batch_size=args.batch_size, max_length=max_length, lr=1e-4)
    single_run = resolve_run(prof, "distilmulti-bert-base-ro", DistillOverrides(teachers=["bert-base-ro"], **budget))
    multi_run = resolve_run(prof, "distilmulti-bert-base-ro", DistillOverrides(**budget))
    text = lines[: 40 * args.batch_size]
    single = build_setup(single_run, teachers, toks, text)
    multi = build_setup(multi_run, teachers, toks, text)

    n_batches = max(2, args.rounds * args.steps_per_round + 1)
    t0 = time.perf_counter()
    multi_batches = [next(multi.batches) for _ in range(n_batches)]
    collate_multi = (time.perf_counter() - t0) / n_batches
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(single.batches)
    collate_single = (time.perf_counter() - t0) / n_batches
    # The same batches for every step kind: single-teacher and reference steps ignore the other teacher's keys.
    batches = [{k: v.to(device) for k, v in b.items()} for b in multi_batches]
    tokens = [int(b["attention_mask"].sum()) for b in batches]

    # Reference: the same initial student, eager attention, fp32.
    from rokd.distill.student import init_student_from_teacher

    for m in teachers.values():
        m.to(device).requires_grad_(False)
    ref_teacher = teacher("bert-base-ro")
    ref_teacher.load_state_dict(teachers["bert-base-ro"].state_dict())
    ref_teacher.set_attn_implementation("eager")
    ref_teacher.to(device).requires_grad_(False).eval()
    ref_student = init_student_from_teacher(teachers["bert-base-ro"].cpu()).to(device)
    ref_student.set_attn_implementation("eager")
    teachers["bert-base-ro"].to(device)
    ref_student.train()
    ref_opt = torch.optim.AdamW(ref_student.parameters(), lr=1e-4)

    from rokd.precision import resolve_precision
    from rokd.trainer import TrainerConfig, make_optimizer

    fp32 = resolve_precision("fp32", device.type)
    auto = resolve_precision("auto", device.type)
    kinds = {}
    for label, setup, run in (("single", single, single_run), ("multi", multi, multi_run)):
        setup.net.to(device).train()
        fn = make_step_fn(setup.adaptors, run)
        opt = make_optimizer(setup.net, TrainerConfig(lr=1e-4, weight_decay=0.0, steps=1))
        kinds[f"rokd {label} fp32"] = (setup.net, fn, opt, fp32)
        if auto.name != "fp32":
            kinds[f"rokd {label} auto"] = (setup.net, fn, opt, auto)

    def timed(kind, batch):
        sync(device)
        t = time.perf_counter()
        if kind == "reference":
            reference_step(ref_student, ref_teacher, batch, ref_opt)
        else:
            net, fn, opt, prec = kinds[kind]
            rokd_step(net, fn, batch, opt, prec)
        sync(device)
        return time.perf_counter() - t

    order = ["reference", *kinds]
    for kind in order:  # warm-up (allocator, kernels)
        timed(kind, batches[-1])
    flops = {
        k: step_flops(lambda k=k: timed(k, batches[-1]), shares=k == "rokd single fp32")
        for k in order
        if not k.endswith("auto")
    }
    times = {k: [] for k in order}
    tok = {k: [] for k in order}
    for r in range(args.rounds):
        for kind in order:
            for s in range(args.steps_per_round):
                i = r * args.steps_per_round + s
                dt = timed(kind, batches[i])
                times[kind].append(dt)
                tok[kind].append(tokens[i] / dt)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {times[k][-1]:.3f} s" for k in order), flush=True)
    if auto.name == "fp32":  # auto resolved to fp32 here: the auto step is the fp32 step
        for label in ("single", "multi"):
            times[f"rokd {label} auto"] = times[f"rokd {label} fp32"]
            tok[f"rokd {label} auto"] = tok[f"rokd {label} fp32"]

    med = {k: statistics.median(v) for k, v in times.items()}
    med_tok = {k: statistics.median(v) for k, v in tok.items()}

    def ratio(num, den):  # median of per-round ratios: same batch, same machine load
        return statistics.median(a / b for a, b in zip(times[num], times[den]))

    speedup = {p: ratio("reference", f"rokd single {p}") for p in ("fp32", "auto")}
    multi_over_single = {p: ratio(f"rokd multi {p}", f"rokd single {p}") for p in ("fp32", "auto")}
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"{hardware()}, {threads} threads"
    print(f"device: {device} ({where}); reference: fp32, eager attention")
    print(f"rokd auto precision: {auto.name} ({auto.reason})")
    print(
        f"shapes: profile {prof.name}, teacher {shapes['bert-base-ro'].num_hidden_layers} layers x "
        f"{shapes['bert-base-ro'].hidden_size}, "
        f"student {single.net.student.model.config.n_layers} layers; vocab {len(toks['bert-base-ro'])} / "
        f"{len(toks['robert-base'])}; "
        f"batch {args.batch_size} x <= {max_length} tokens (mean {statistics.mean(tokens):.0f} non-pad tokens)"
    )
    for k in times:
        print(f"{k:17s}: median step {med[k]:.3f} s, {med_tok[k]:,.0f} tokens/s")
    print(
        f"collation (outside the step): single {collate_single * 1000:.1f} ms, multi {collate_multi * 1000:.1f} ms "
        "per batch"
    )
    for p in ("fp32", "auto"):
        print(f"multi/single step time {p} (median of per-round ratios): {multi_over_single[p]:.2f}")
    # What the step costs in arithmetic: a step kind that runs at the same FLOP rate as another cannot be
    # faster than their FLOP ratio, so these ratios are the bounds of the speedups above at fp32.
    print(
        "FLOPs per step (torch FlopCounterMode, one batch): "
        + ", ".join(f"{k} {v / 1e9:.1f} G ({v / 1e9 / med[k]:.0f} GFLOP/s)" for k, v in flops.items())
    )
    print(
        f"FLOP ratio reference / rokd single: {flops['reference'] / flops['rokd single fp32']:.2f}; "
        f"rokd multi / single: {flops['rokd multi fp32'] / flops['rokd single fp32']:.2f}"
    )
    if args.breakdown:
        reference = (ref_student, ref_teacher, ref_opt)
        print_breakdown(kinds["rokd single fp32"], single.adaptors, reference, batches, device)
    if args.save:
        import json

        from rokd.distill.report import BENCHMARK_FILE
        from rokd.paths import results_dir

        out = results_dir(prof.name) / BENCHMARK_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "hardware": hardware(),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "rokd_precision": auto.name,
            "rokd_precision_reason": auto.reason,
            "profile_shapes": prof.name,
            "vocab_sizes": [len(toks["bert-base-ro"]), len(toks["robert-base"])],
            "teacher_layers": shapes["bert-base-ro"].num_hidden_layers,
            "hidden_size": shapes["bert-base-ro"].hidden_size,
            "batch_size": args.batch_size,
            "max_length": max_length,
            "rounds": args.rounds,
            "steps": {k: {"median_step_s": med[k], "median_tokens_per_s": med_tok[k]} for k in times},
            "speedup": speedup["auto"],
            "speedup_fp32": speedup["fp32"],
            "speedup_auto": speedup["auto"],
            "multi_over_single": multi_over_single["auto"],
            "multi_over_single_fp32": multi_over_single["fp32"],
            "flops_per_step": flops,
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)
        print(f"saved {out}")
    print(f"speedup fp32: {speedup['fp32']:.2f}")
    print(f"speedup auto: {speedup['auto']:.2f}")
    print(f"speedup: {speedup['auto']:.2f}")
    return 0


def print_breakdown(rokd_kind, adaptors, reference, batches, device, repeats: int = 3) -> None:
    """Where the time of one step goes: median ms of each phase over a few batches (fp32)."""
    from rokd.distill.distiller import teacher_targets

    net, fn, opt, prec = rokd_kind
    student, teacher, ref_opt = reference
    phases: dict[str, list[float]] = {}

    def clock(name, f):
        sync(device)
        t = time.perf_counter()
        out = f()
        sync(device)
        phases.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return out

    for batch in batches[:repeats]:
        if adaptors:
            clock(
                "rokd: teachers (inference, masked logits, soft target)", lambda: teacher_targets(adaptors, batch, 2.0)
            )
        terms = clock("rokd: whole forward (teachers + student + losses)", lambda: fn(net, batch))
        clock("rokd: backward", lambda: terms["loss"].backward())
        clock(
            "rokd: clip + AdamW",
            lambda: (torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0), opt.step(), opt.zero_grad()),
        )
        with torch.no_grad():
            clock(
                "reference: teacher forward (full-vocabulary logits)",
                lambda: teacher(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
                ),
            )
        clock("reference: whole step", lambda: reference_step(student, teacher, batch, ref_opt))
    print("breakdown (median ms over %d batches):" % repeats)
    for name, values in phases.items():
        print(f"  {name:58s} {statistics.median(values):8.1f}")


if __name__ == "__main__":
    sys.exit(main())
