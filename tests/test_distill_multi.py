"""Multi-teacher distillation with two teachers whose vocabularies (and widths) differ."""

import itertools
import math

import pytest
import torch
from distill_fixtures import SENTENCES, run_config, tiny_bert, tokenizers

from rokd.distill.distiller import build_setup, make_step_fn, trainer_config
from rokd.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(strategy="ensemble", seed=0, **overrides):
    cased, uncased = tokenizers()
    assert cased.get_vocab() != uncased.get_vocab()
    models = {"bert-base-ro": tiny_bert(cased, hidden=32, seed=1), "robert-base": tiny_bert(uncased, hidden=48, seed=2)}
    toks = {"bert-base-ro": cased, "robert-base": uncased}
    run = run_config(strategy=strategy, **overrides)
    models = {k: models[k] for k in run.teachers}
    torch.manual_seed(seed)  # the projection 32 -> 48 is initialised from the global generator
    return run, build_setup(run, models, toks, SENTENCES)


def test_multi_teacher_step_runs_and_reports_coverage():
    run, setup = _setup()
    adaptors = {a.name: a for a in setup.adaptors}
    assert not adaptors["bert-base-ro"].needs_reference and adaptors["robert-base"].needs_reference
    assert isinstance(setup.net.projections["robert-base"], torch.nn.Linear)  # widths differ: learned projection
    batch = next(setup.batches)
    terms = make_step_fn(setup.adaptors, run)(setup.net, batch)
    assert set(terms) >= {
        "loss",
        "ce",
        "mlm",
        "cos",
        "cos.bert-base-ro",
        "cos.robert-base",
        "stat_coverage.robert-base",
        "stat_mapped_mass.robert-base",
    }
    assert all(math.isfinite(float(v.detach())) for v in terms.values())
    assert 0.0 < float(terms["stat_coverage.robert-base"]) <= 1.0
    assert 0.0 < float(terms["stat_mapped_mass.robert-base"]) <= 1.0
    # The uncased teacher's mapped distributions: on the student's vocabulary, summing to 1 where it covers
    # the position, absent elsewhere; the soft target falls back to the cased teacher there.
    from rokd.distill.distiller import teacher_targets

    targets, soft, valid = teacher_targets(setup.adaptors, batch, run.temperature)
    unc = targets["robert-base"]
    assert unc.probs.shape == targets["bert-base-ro"].probs.shape == soft.shape
    assert torch.allclose(unc.probs[unc.covered].sum(-1), torch.ones(int(unc.covered.sum())), atol=1e-5)
    assert (unc.probs[~unc.covered] == 0).all() and valid.all()
    assert torch.allclose(soft[~unc.covered], targets["bert-base-ro"].probs[~unc.covered])
    both = 0.5 * targets["bert-base-ro"].probs[unc.covered] + 0.5 * unc.probs[unc.covered]
    assert torch.allclose(soft[unc.covered], both, atol=1e-6)
    terms["loss"].backward()
    assert setup.net.projections["robert-base"].weight.grad is not None
    assert all(p.grad is None for a in setup.adaptors for p in a.model.parameters())  # teachers frozen


@pytest.mark.filterwarnings("ignore:repeat has no state_dict")  # one fixed batch: nothing to resume here
def test_multi_teacher_loss_falls(tmp_path):
    run, setup = _setup()
    batch = next(setup.batches)
    step_fn = make_step_fn(setup.adaptors, run)
    run.steps = 12
    cfg = trainer_config(run, tmp_path, "cpu", progress=False)
    seen = []

    def logged(net, b):
        terms = step_fn(net, b)
        seen.append({k: float(v.detach()) for k, v in terms.items()})
        return terms

    train(setup.net, logged, itertools.repeat(batch), cfg, frozen_modules=[a.model for a in setup.adaptors])
    assert all(math.isfinite(t["loss"]) for t in seen)
    first, last = seen[0]["loss"], seen[-1]["loss"]
    assert last < first * 0.9, (first, last)
    assert seen[-1]["cos.robert-base"] < seen[0]["cos.robert-base"]  # the projected word-level alignment is learnt


def test_hidden_only_strategy_keeps_other_vocab_teacher_out_of_soft_targets():
    from rokd.distill.distiller import teacher_targets
    from rokd.distill.losses import soft_target_kl

    run, setup = _setup(strategy="hidden-only")
    setup.net.eval()  # no dropout: the student's logits can be recomputed exactly
    batch = next(setup.batches)
    terms = make_step_fn(setup.adaptors, run)(setup.net, batch)
    assert math.isfinite(float(terms["loss"].detach())) and "cos.robert-base" in terms
    cased_only = teacher_targets(setup.adaptors, batch, run.temperature)[0]["bert-base-ro"].probs
    with torch.no_grad():
        logits = setup.net.student(batch["input_ids"], batch["attention_mask"], batch["labels"]).logits
    expected = soft_target_kl(logits, cased_only, run.temperature, teacher_is_probs=True)
    assert float(terms["ce"].detach()) == pytest.approx(float(expected), rel=1e-5)


def test_distillation_resume_gives_the_same_weights(tmp_path):
    def final_weights(out, interrupted):
        run, setup = _setup(seed=7)
        run.steps = 4
        cfg = trainer_config(run, out, "cpu", checkpoint_every=2, progress=False)
        kw = dict(frozen_modules=[a.model for a in setup.adaptors])
        if interrupted:
            train(setup.net, make_step_fn(setup.adaptors, run), setup.batches, cfg, max_steps_this_run=2, **kw)
            run, setup = _setup(seed=99)  # a fresh process: other initial projection, fresh batch stream
            run.steps = 4
            train(setup.net, make_step_fn(setup.adaptors, run), setup.batches, cfg, resume=True, **kw)
        else:
            train(setup.net, make_step_fn(setup.adaptors, run), setup.batches, cfg, **kw)
        return {k: v.detach().clone() for k, v in setup.net.state_dict().items()}

    a = final_weights(tmp_path / "a", interrupted=False)
    b = final_weights(tmp_path / "b", interrupted=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _student_logits(net, batch, positions):
    with torch.no_grad():
        model = net.student.model
        enc = model.distilbert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden = enc.last_hidden_state
        transformed = torch.nn.functional.gelu(model.vocab_transform(hidden[positions]))
        return model.vocab_projector(model.vocab_layer_norm(transformed))


def test_soft_targets_all_computes_the_kl_at_every_token_of_a_same_vocabulary_teacher():
    from rokd.distill.losses import soft_target_kl

    one_teacher = dict(student="distil-bert-base-ro", teachers=["bert-base-ro"], teacher_weights=[1.0])
    run, setup = _setup(**one_teacher, soft_targets="all")
    setup.net.eval()
    with torch.no_grad():  # tiny random models are near-uniform: move the student away so the KL is not ~0
        bias = setup.net.student.model.vocab_projector.bias
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)))
    batch = next(setup.batches)
    terms = {k: v.detach() for k, v in make_step_fn(setup.adaptors, run)(setup.net, batch).items()}
    every = batch["attention_mask"].bool()
    assert int(every.sum()) > int((batch["labels"] != -100).sum())  # more rows than the masked ones
    teacher = setup.adaptors[0].model
    with torch.no_grad():
        t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[every]
    expected = soft_target_kl(_student_logits(setup.net, batch, every), t_logits, run.temperature)
    assert float(terms["ce"]) == pytest.approx(float(expected), rel=1e-4)
    # The MLM term is unchanged: still the masked positions only.
    masked = batch["labels"] != -100
    mlm = torch.nn.functional.cross_entropy(_student_logits(setup.net, batch, masked), batch["labels"][masked])
    assert float(terms["mlm"]) == pytest.approx(float(mlm), rel=1e-4)
    # and "masked" (the default) is the old objective
    run_masked, _ = _setup(**one_teacher)
    assert run_masked.soft_targets == "masked"
    masked_terms = {k: v.detach() for k, v in make_step_fn(setup.adaptors, run_masked)(setup.net, batch).items()}
    with torch.no_grad():
        t_masked = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[masked]
    expected_masked = soft_target_kl(_student_logits(setup.net, batch, masked), t_masked, run.temperature)
    assert float(masked_terms["ce"]) == pytest.approx(float(expected_masked), rel=1e-4)


def test_soft_targets_all_with_a_cross_tokenizer_teacher_uses_its_aligned_masked_positions_only():
    from rokd.distill.adaptors import SOFT_POSITIONS
    from rokd.distill.distiller import teacher_targets

    run, setup = _setup(soft_targets="all")
    batch = next(setup.batches)
    terms = make_step_fn(setup.adaptors, run)(setup.net, batch)
    assert all(math.isfinite(float(v.detach())) for v in terms.values())
    every = batch["attention_mask"].bool()
    wide = {**batch, SOFT_POSITIONS: every}
    targets, soft, valid = teacher_targets(setup.adaptors, wide, run.temperature)
    cased, unc = targets["bert-base-ro"], targets["robert-base"]
    assert soft.shape[0] == cased.probs.shape[0] == unc.probs.shape[0] == int(every.sum()) and valid.all()
    masked_rows = (batch["labels"] != -100)[every]
    assert unc.covered.any() and not (unc.covered & ~masked_rows).any()  # never outside the masked positions
    # at the masked rows, the same targets as under "masked"
    narrow, narrow_soft, _ = teacher_targets(setup.adaptors, batch, run.temperature)
    assert torch.equal(unc.covered[masked_rows], narrow["robert-base"].covered)
    assert torch.allclose(soft[masked_rows], narrow_soft, atol=1e-6)
    assert torch.allclose(soft[~unc.covered], cased.probs[~unc.covered])  # elsewhere the cased teacher alone
