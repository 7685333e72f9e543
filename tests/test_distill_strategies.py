"""Cross-tokenizer strategies (rokd.distill.strategies): each loss and vocabulary treatment against a hand-computed
case on vocabularies of 3-5 tokens, the suppression diagnostic, and the registry / alias / selection."""

import math

import pytest
import torch

from rokd.distill import strategies as S
from rokd.distill.ensemble import VocabularyMap
from rokd.distill.losses import soft_target_kl

pytestmark = pytest.mark.usefixtures("one_thread")


def test_uld_sorted_l1_hand_computed():
    # student q over 3 tokens, teacher p over 4 tokens (different vocabularies, no map at all)
    q = torch.tensor([[0.5, 0.2, 0.3]])
    p = torch.tensor([[0.1, 0.6, 0.1, 0.2]])
    # sorted q = [.5 .3 .2 0(pad)], sorted p = [.6 .2 .1 .1] -> |.1|+|.1|+|.1|+|.1| = 0.4
    assert S.sorted_l1_rows(q, p).item() == pytest.approx(0.4)
    # no token identity: permuting either side changes nothing; equal sorted shapes give 0
    assert S.sorted_l1_rows(q[:, [2, 0, 1]], p[:, [3, 1, 0, 2]]).item() == pytest.approx(0.4)
    assert S.sorted_l1_rows(torch.tensor([[0.7, 0.3]]), torch.tensor([[0.0, 0.3, 0.7]])).item() == pytest.approx(0.0)


def test_gold_hybrid_hand_computed():
    student_vocab = {"a": 0, "b": 1, "X": 2}
    teacher_vocab = {"b": 0, "a": 1, "y": 2, "z": 3}
    s_ids, t_ids = S.exact_matches(student_vocab, teacher_vocab)
    assert s_ids.tolist() == [1, 0] and t_ids.tolist() == [0, 1]  # (b: s1 <-> t0), (a: s0 <-> t1), by teacher id
    q = torch.tensor([[0.4, 0.2, 0.4]])  # a .4, b .2, X .4
    p = torch.tensor([[0.25, 0.5, 0.125, 0.125]])  # b .25, a .5, y .125, z .125
    # matched: .25 ln(.25/.2) + .5 ln(.5/.4) = .75 ln 1.25 = 0.167358
    # unmatched: sorted [X .4, pad 0] vs [.125, .125] -> .275 + .125 = 0.4
    # GOLD's adaptive weights: 2 matched / 4 teacher tokens -> 0.5 / 0.5
    matched, unmatched = 0.75 * math.log(1.25), 0.4
    assert S.gold_hybrid_rows(q, p, s_ids, t_ids).item() == pytest.approx(0.5 * matched + 0.5 * unmatched, abs=1e-6)
    assert S.gold_hybrid_rows(q, p, s_ids, t_ids, 0.6, 0.4).item() == pytest.approx(
        0.6 * matched + 0.4 * unmatched, abs=1e-6
    )
    # beta = 1 is the reverse KL on the matched part: .2 ln(.2/.25) + .4 ln(.4/.5) = .6 ln .8
    rev = S.gold_hybrid_rows(q, p, s_ids, t_ids, 1.0, 0.0, beta=1.0).item()
    assert rev == pytest.approx(0.6 * math.log(0.8), abs=1e-6)
    with pytest.raises(ValueError):
        S.gold_hybrid_rows(q, p, s_ids, t_ids, 0.5, None)


STUDENT = {"[UNK]": 0, "a": 1, "A": 2, "ab": 3, "##q": 4}
TEACHER = {"[UNK]": 0, "a": 1, "b": 2, "##b": 3}


def test_projection_matrix_from_string_rules():
    vm = VocabularyMap(STUDENT, TEACHER)
    assert vm.target.tolist() == [0, 1, 1, -1, -1]  # "ab" and "##q" have no counterpart
    m = S.projection_matrix(STUDENT, TEACHER, vm).to_dense()
    expected = torch.tensor(
        [
            [1.0, 0, 0, 0],  # [UNK] -> [UNK] (exact)
            [0, 1.0, 0, 0],  # a -> a
            [0, 1.0, 0, 0],  # A -> a (lower-cased counterpart)
            [0, 10 / 11, 0, 1 / 11],  # ab -> a + ##b, X-Token's weights .9, .09 normalised
            [1.0, 0, 0, 0],  # ##q: no piece for "q" in the teacher's vocabulary -> [UNK]
        ]
    )
    assert torch.allclose(m, expected)
    assert torch.allclose(m.sum(1), torch.ones(5))  # row-stochastic: no student token is left without a row
    assert S.piece_weights(3) == pytest.approx([0.9 / 0.999, 0.09 / 0.999, 0.009 / 0.999])


def test_projected_kl_hand_computed():
    m = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [10 / 11, 0, 1 / 11]])  # student a, A, ab -> teacher a, b, ##b
    q = torch.tensor([[0.5, 0.3, 0.2]])
    p = torch.tensor([[0.9, 0.05, 0.05]])
    # qM = [.5 + .3 + .2*10/11, 0, .2/11] = [0.981818, 0, 0.018182]. No student token reaches "b": that column is a
    # constant of the loss and is left out, the teacher renormalised over a, ##b: [.9, .05] / .95.
    qm = [0.5 + 0.3 + 0.2 * 10 / 11, 0.2 / 11]
    pr = [0.9 / 0.95, 0.05 / 0.95]
    expected = pr[0] * math.log(pr[0] / qm[0]) + pr[1] * math.log(pr[1] / qm[1])  # = 0.022104
    assert expected == pytest.approx(0.022104, abs=1e-6)
    assert S.projected_kl_rows(q, p, m, 1.0).item() == pytest.approx(expected, abs=1e-6)
    assert S.projected_kl_rows(q, p, m.to_sparse(), 2.0).item() == pytest.approx(4 * expected, abs=1e-5)  # T^2


def test_suppression_span_map_versus_projection():
    """The unmatched student token "ab": span-map gives it no target mass, so the KL pushes it down; under the
    projection, teacher mass on "##b" can only be reached through "ab", so the loss pulls it up."""
    student = {"a": 0, "A": 1, "ab": 2}
    teacher = {"a": 0, "b": 1, "##b": 2}
    vm = VocabularyMap(student, teacher)
    unmatched = vm.target < 0
    assert unmatched.tolist() == [False, False, True]
    p = torch.tensor([[0.6, 0.1, 0.3]])  # teacher: a .6, b .1, ##b .3
    mapped, mass = vm.map_probs(p)
    assert mass.item() == pytest.approx(0.6)  # only "a" moves (to a and A)
    assert S.unmatched_mass(mapped, unmatched).item() == 0.0  # span-map: target mass on "ab" is 0
    logits = torch.zeros(1, 3, requires_grad=True)  # student uniform: 1/3 each
    assert S.unmatched_mass(torch.softmax(logits, -1), unmatched).item() == pytest.approx(1 / 3)
    # d/dz_ab KL(target || softmax z) = q_ab - target_ab = 1/3 - 0 > 0: gradient descent lowers "ab"
    S.kl_rows(logits, mapped, 1.0).sum().backward()
    assert logits.grad[0, 2].item() == pytest.approx(1 / 3, abs=1e-6)
    logits.grad = None
    proj = S.projection_matrix(student, teacher, vm)
    S.projected_kl_rows(torch.softmax(logits, -1), p, proj, 1.0).sum().backward()
    assert logits.grad[0, 2].item() < 0  # projection: gradient descent raises "ab"


def test_kl_rows_is_the_row_form_of_the_distilbert_term():
    torch.manual_seed(0)
    z = torch.randn(4, 5)
    p = torch.softmax(torch.randn(4, 5), -1)
    p[1, 2] = 0.0
    assert S.kl_rows(z, p, 2.0).mean().item() == pytest.approx(
        soft_target_kl(z, p, 2.0, teacher_is_probs=True).item(), rel=1e-6
    )


def test_edit_distance_and_min_edit_vocabulary_map():
    assert S.levenshtein("kitten", "sitting") == 3
    assert S.levenshtein("", "abc") == 3 and S.levenshtein("mași", "mași") == 0
    cands = ["casa", "Casa", "##le", "mere", "##lor"]
    for q in ("case", "##l", "mer", "xyz", "##lori", ""):
        d = [S.levenshtein(q, c) for c in cands]
        assert S.nearest_by_edit_distance([q], cands)[0] == d.index(min(d))  # numpy DP = plain DP, ties -> lowest
    student = {"[UNK]": 0, "casa": 1, "Casa": 2, "##le": 3, "mere": 4}
    teacher = {"[UNK]": 0, "casa": 1, "##lor": 2, "mer": 3}
    # exact first ([UNK], casa); ##lor -> ##le (distance 2), mer -> mere (distance 1)
    m = S.min_edit_vocab_map(student, teacher)
    assert m.tolist() == [0, 1, 3, 4]
    moved = S.move_mass(torch.tensor([[0.1, 0.5, 0.3, 0.1]]), m, 5)
    assert torch.allclose(moved, torch.tensor([[0.1, 0.5, 0.0, 0.3, 0.1]]))  # nothing lost, "Casa" gets nothing


def test_dtw_alignment_and_pairings():
    cost = S.wordpiece_edit_cost()
    # same number of pieces, split elsewhere: mași|##nile vs mașin|##ile -> one-to-one both
    assert S.dtw_alignment(["mașin", "##ile"], ["mași", "##nile"], cost) == [[0], [1]]
    # Worked by hand (costs: ma/mași 2, ma/nile 4, și/mași 2, și/nile 3, nile/mași 4, nile/nile 0): the path
    # (0,0) (1,0) (2,1): "mași" <- [ma, ##și] (two: not paired), "##nile" <- [##nile] (paired)
    assert S.dtw_alignment(["ma", "##și", "##nile"], ["mași", "##nile"], cost) == [[0, 1], [2]]
    # a teacher word in one piece: each student piece aligns with it alone
    assert S.dtw_alignment(["mașinile"], ["mași", "##nile"], cost) == [[0], [0]]
    s_groups, t_groups = {0: [0, 1], 1: [2]}, {0: [0, 1, 2], 1: [3]}
    assert S.pair_by_index(s_groups, t_groups) == [(0, 0), (1, 1), (2, 3)]
    s_tok = ["mași", "##nile", "casa"]
    t_tok = ["ma", "##și", "##nile", "casa"]
    assert S.pair_by_min_edit(s_groups, t_groups, s_tok, t_tok, cost) == [(1, 2), (2, 3)]
    labels = torch.tensor([[-100, 7, 8, -100], [-100, 9, -100, -100]])
    unit = torch.tensor([-1, 0, 0, 1, -1, 2, -1, -1])
    assert S.rows_by_word(labels, unit) == {0: [0, 1], 2: [2]}


def test_wordpiece_pieces():
    vocab = {"a": 0, "##b": 1, "##bc": 2, "ab": 3, "##c": 4}
    assert S.wordpiece_pieces("abc", vocab) == [3, 4]  # longest first: ab + ##c
    assert S.wordpiece_pieces("bc", vocab, continuation=True) == [2]
    assert S.wordpiece_pieces("x", vocab) is None


def test_diagnostics_hand_computed():
    q = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    t = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3]])
    assert S.top1_agreement(q, t).tolist() == [1.0, 0.0]
    # canonical ids: tokens 0 and 2 are one teacher token (e.g. Casa / casa): row 2 now agrees
    assert S.top1_agreement(q, t, torch.tensor([0, 1, 0])).tolist() == [1.0, 1.0]
    assert S.top1_agreement(q, t, torch.tensor([-1, 1, 0])).tolist() == [0.0, 0.0]  # no counterpart: never agrees
    kl = S.kl_divergence_rows(t[:1], q[:1]).item()
    assert kl == pytest.approx(0.6 * math.log(0.6 / 0.7) + 0.3 * math.log(0.3 / 0.2))
    assert S.unmatched_mass(q, torch.tensor([False, True, True])).tolist() == pytest.approx([0.3, 0.9])


def test_registry_aliases_and_selection():
    assert list(S.STRATEGIES) == [
        "span-map",
        "uld",
        "gold-hybrid",
        "projection",
        "min-edit",
        "hidden-only",
        "cased-only",
    ]
    assert S.canonical_name("ensemble") == "span-map" and S.get_strategy("ensemble").name == "span-map"
    with pytest.raises(KeyError, match="unknown strategy"):
        S.get_strategy("majority")
    assert not S.STRATEGIES["span-map"].needs_own_probs and S.STRATEGIES["uld"].needs_own_probs
    assert S.STRATEGIES["min-edit"].needs_own_probs and not S.STRATEGIES["cased-only"].in_cosine
    from rokd.distill.distiller import DistillOverrides, resolve_run
    from rokd.profiles import Profile

    prof = Profile(name="t")
    assert prof.distill.strategy == S.DEFAULT_STRATEGY == "span-map"
    assert resolve_run(prof, "distilmulti-bert-base-ro", DistillOverrides(strategy="ensemble")).strategy == "span-map"
    run = resolve_run(prof, "distilmulti-bert-base-ro", DistillOverrides(strategy="projection", seed=7))
    assert run.strategy == "projection" and run.seed == 7


def test_old_config_with_ensemble_is_the_same_run(tmp_path):
    import json

    from rokd.config import to_dict
    from rokd.distill.distiller import _same_run, resolve_run
    from rokd.profiles import Profile

    run = resolve_run(Profile(name="t"), "distilmulti-bert-base-ro")
    old = to_dict(run) | {"strategy": "ensemble"}
    (tmp_path / "c.json").write_text(json.dumps(old))
    assert _same_run(json.loads((tmp_path / "c.json").read_text()), run)


# --------------------------------------------------------------------------------------------------
# Inside the distiller: two tiny teachers with different tokenizers (tests/distill_fixtures.py)
# --------------------------------------------------------------------------------------------------


def _setup(strategy, seed=0):
    from distill_fixtures import SENTENCES, run_config, tiny_bert, tokenizers

    from rokd.distill.distiller import build_setup

    cased, uncased = tokenizers()
    models = {"bert-base-ro": tiny_bert(cased, hidden=32, seed=1), "robert-base": tiny_bert(uncased, hidden=48, seed=2)}
    run = run_config(strategy=strategy)
    torch.manual_seed(seed)
    return run, build_setup(run, models, {"bert-base-ro": cased, "robert-base": uncased}, SENTENCES)


def test_span_map_soft_term_is_unchanged():
    """The default: the soft-target term is still KL(average of both teachers' mapped probabilities || student)."""
    from rokd.distill.distiller import make_step_fn, teacher_targets

    run, setup = _setup("span-map")
    setup.net.eval()
    batch = next(setup.batches)
    terms = make_step_fn(setup.adaptors, run)(setup.net, batch)
    _, soft, valid = teacher_targets(setup.adaptors, batch, run.temperature)
    with torch.no_grad():
        logits = setup.net.student(batch["input_ids"], batch["attention_mask"], batch["labels"]).logits
    expected = soft_target_kl(logits[valid], soft[valid], run.temperature, teacher_is_probs=True)
    assert torch.equal(terms["ce"].detach(), expected)  # bit-identical to the pre-strategy objective
    assert float(terms["stat_unmatched_target_mass.robert-base"]) == 0.0  # span-map never targets unmatched tokens
    assert float(terms["stat_strategy_coverage.robert-base"]) == pytest.approx(
        float(terms["stat_coverage.robert-base"])
    )


def test_min_edit_target_joins_the_average():
    from rokd.distill.distiller import strategy_step, teacher_targets

    run, setup = _setup("min-edit")
    batch = next(setup.batches)
    plain, cross = setup.adaptors
    targets, soft, valid = teacher_targets(setup.adaptors, batch, run.temperature, [plain.name])
    ctx = {cross.name: cross.context}
    step, soft2, valid2 = strategy_step(
        S.STRATEGIES["min-edit"], setup.adaptors, ctx, batch, targets, soft, valid, run.temperature
    )
    rows = S.cross_rows(S.STRATEGIES["min-edit"], cross.context, batch, targets[cross.name], cross.weight)
    assert len(rows.student_rows) > 0 and valid2.all()
    assert torch.allclose(rows.teacher_probs.sum(-1), torch.ones(len(rows.student_rows)), atol=1e-5)  # nothing lost
    r = rows.student_rows
    assert torch.allclose(soft2[r], 0.5 * soft[r] + 0.5 * rows.teacher_probs, atol=1e-6)
    others = torch.ones(len(soft), dtype=torch.bool)
    others[r] = False
    assert torch.allclose(soft2[others], soft[others])  # where MinED does not align: the cased teacher alone


def test_loss_strategy_combines_teachers_row_by_row():
    """uld: rows the other teacher covers get .5 KL(cased) + .5 ULD, the others the cased KL alone."""
    from rokd.distill.distiller import teacher_targets

    run, setup = _setup("uld")
    batch = next(setup.batches)
    plain, cross = setup.adaptors
    targets, soft, _ = teacher_targets(setup.adaptors, batch, run.temperature, [plain.name])
    rows = S.cross_rows(S.STRATEGIES["uld"], cross.context, batch, targets[cross.name], cross.weight)
    torch.manual_seed(3)
    z = torch.randn(soft.shape)
    got = S.loss_strategy_ce(
        S.STRATEGIES["uld"], z, soft, plain.weight, [rows], {cross.name: cross.context}, run.temperature
    )
    per_row = S.kl_rows(z, soft, run.temperature)
    uld = S.sorted_l1_rows(torch.softmax(z / run.temperature, -1)[rows.student_rows], rows.teacher_probs)
    per_row[rows.student_rows] = 0.5 * per_row[rows.student_rows] + 0.5 * uld
    assert len(rows.student_rows) > 0 and got.item() == pytest.approx(per_row.mean().item(), rel=1e-5)


@pytest.mark.parametrize("strategy", list(S.STRATEGIES))
def test_every_strategy_distils(strategy, tmp_path):
    from rokd.distill.distiller import make_step_fn, trainer_config
    from rokd.trainer import train

    run, setup = _setup(strategy)
    run.steps = 3
    seen = []
    step_fn = make_step_fn(setup.adaptors, run)

    def logged(net, b):
        terms = step_fn(net, b)
        seen.append({k: float(v.detach()) for k, v in terms.items()})
        return terms

    train(
        setup.net,
        logged,
        setup.batches,
        trainer_config(run, tmp_path, "cpu", progress=False),
        frozen_modules=[a.model for a in setup.adaptors],
    )
    assert len(seen) == 3
    for t in seen:
        assert all(math.isfinite(t[k]) for k in ("loss", "ce", "mlm", "cos"))
        for key in (
            "stat_strategy_coverage.robert-base",
            "stat_unmatched_student_mass.robert-base",
            "stat_top1_agreement.bert-base-ro",
            "stat_kl.bert-base-ro",
            "stat_top1_agreement.robert-base",
            "stat_kl.robert-base",
        ):
            assert key in t, key
        assert 0.0 <= t["stat_unmatched_student_mass.robert-base"] <= 1.0
        assert 0.0 <= t["stat_strategy_coverage.robert-base"] <= 1.0
    cov = seen[0]["stat_strategy_coverage.robert-base"]
    assert (cov == 0.0) == (strategy in ("hidden-only", "cased-only"))
    assert ("cos.robert-base" in seen[0]) == (strategy != "cased-only")


def test_heldout_diagnostics_on_tiny_teachers():
    from distill_fixtures import SENTENCES, tiny_bert, tokenizers

    from rokd.distill.heldout import heldout_diagnostics
    from rokd.distill.student import init_student_from_teacher

    cased, uncased = tokenizers()
    teachers = {
        "bert-base-ro": tiny_bert(cased, hidden=32, seed=1),
        "robert-base": tiny_bert(uncased, hidden=48, seed=2),
    }
    student = init_student_from_teacher(teachers["bert-base-ro"])
    toks = {"bert-base-ro": cased, "robert-base": uncased}
    out = {
        s: heldout_diagnostics(
            student,
            cased,
            teachers,
            toks,
            SENTENCES,
            strategy=s,
            mlm_probability=0.4,
            max_length=32,
            batch_size=4,
            seed=5,
        )
        for s in ("span-map", "uld", "projection")
    }
    for d in out.values():
        for key in (
            "mlm_accuracy",
            "top1_agreement.bert-base-ro",
            "kl.bert-base-ro",
            "top1_agreement.robert-base",
            "unmatched_student_mass.robert-base",
            "strategy_coverage.robert-base",
            "coverage.robert-base",
        ):
            assert key in d and math.isfinite(d[key]), key
    # The student and the masks are the same: only the strategy's coverage / carried mass may differ.
    for key in ("mlm_accuracy", "unmatched_student_mass.robert-base", "top1_agreement.bert-base-ro", "kl.robert-base"):
        assert out["span-map"][key] == pytest.approx(out["uld"][key]) == pytest.approx(out["projection"][key])
    assert out["uld"]["strategy_mass.robert-base"] == 0.0  # ULD carries nothing by token identity
    assert (
        out["uld"]["strategy_coverage.robert-base"] >= out["span-map"]["strategy_coverage.robert-base"]
    )  # index pairs


def test_profile_strategy_names_are_the_registry_of_strategies():
    # rokd.profiles cannot import the (torch) strategies module, so it lists the names; they must agree.
    from rokd.distill.strategies import ALIASES, STRATEGIES
    from rokd.profiles import DISTILL_STRATEGIES

    assert set(DISTILL_STRATEGIES) == set(STRATEGIES) | set(ALIASES)
