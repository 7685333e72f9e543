"""The distillation losses against values computed by hand (written out below)."""

import math

import pytest
import torch

from rokd.distill.losses import (
    LossWeights,
    combine,
    cosine_alignment,
    mlm_cross_entropy,
    soft_target_kl,
    soft_target_positions,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def test_soft_target_kl_hand_computed_with_temperature():
    # Row 1: teacher logits [2 ln 3, 0] at T=2 -> softmax([ln 3, 0]) = [3/4, 1/4]; student logits [0, 0] -> [1/2, 1/2].
    #   KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.304099 - 0.173287 = 0.130812; times T^2 = 4 -> 0.523248.
    # Row 2: student = teacher -> 0.  batchmean over the 2 rows -> 0.261624.
    student = torch.tensor([[0.0, 0.0], [2 * LN3, 0.0]])
    teacher = torch.tensor([[2 * LN3, 0.0], [2 * LN3, 0.0]])
    expected = (0.75 * math.log(1.5) + 0.25 * math.log(0.5)) * 4 / 2
    assert expected == pytest.approx(0.261624, abs=1e-6)
    assert soft_target_kl(student, teacher, temperature=2.0).item() == pytest.approx(expected, abs=1e-6)


def test_soft_target_kl_from_probabilities_and_zero_mass():
    # Teacher probabilities [3/4, 1/4, 0] (a vocabulary-mapped teacher may have zero mass: 0 log 0 = 0),
    # student logits [0, 0, ln 2] at T=1 -> [1/4, 1/4, 1/2].
    #   KL = 3/4 ln 3 + 1/4 ln 1 = 0.823959.
    student = torch.tensor([[0.0, 0.0, LN2]])
    teacher = torch.tensor([[0.75, 0.25, 0.0]])
    got = soft_target_kl(student, teacher, temperature=1.0, teacher_is_probs=True)
    assert got.item() == pytest.approx(0.75 * LN3, abs=1e-6)
    assert math.isfinite(got.item())


def test_soft_target_kl_softmax_is_over_the_last_dim():
    # (batch, length, vocab) shaped input flattened to rows must give the same as 2-D rows.
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    flat = soft_target_kl(s.reshape(6, 5), t.reshape(6, 5), 2.0)
    ref = (
        torch.nn.functional.kl_div(
            torch.log_softmax(s / 2, -1).reshape(6, 5), torch.softmax(t / 2, -1).reshape(6, 5), reduction="batchmean"
        )
        * 4
    )
    assert flat.item() == pytest.approx(ref.item(), rel=1e-5)


def test_mlm_cross_entropy_hand_computed():
    # Row 1: softmax([ln 3, 0, 0]) = [3/5, 1/5, 1/5], label 0 -> -ln 0.6 = 0.510826.
    # Row 2: ignored (-100).  Row 3: uniform over 3, label 2 -> ln 3 = 1.098612.  Mean -> 0.804719.
    logits = torch.tensor([[LN3, 0.0, 0.0], [5.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, -100, 2])
    assert mlm_cross_entropy(logits, labels).item() == pytest.approx((-math.log(0.6) + LN3) / 2, abs=1e-6)
    assert mlm_cross_entropy(logits, torch.tensor([-100, -100, -100])).item() == 0.0


def test_cosine_alignment_hand_computed_and_matches_torch():
    # Row 1: s=[1,0], t=[1,1]: cos = 1/sqrt 2 -> 1 - 0.707107 = 0.292893.
    # Row 2: s=[0,2], t=[0,-1]: cos = -1 -> 2.   Row 3: masked out (pad).  Mean of rows 1-2: 1.146447.
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
    t = torch.tensor([[[1.0, 1.0], [0.0, -1.0], [0.0, 1.0]]])
    mask = torch.tensor([[1, 1, 0]])
    got = cosine_alignment(s, t, mask)
    assert got.item() == pytest.approx((1 - 1 / math.sqrt(2) + 2) / 2, abs=1e-6)
    hf = torch.nn.CosineEmbeddingLoss()(s[0, :2], t[0, :2], torch.ones(2))
    assert got.item() == pytest.approx(hf.item(), abs=1e-6)


def test_combine_uses_the_configured_weights():
    terms = {"ce": torch.tensor(0.5), "mlm": torch.tensor(2.0), "cos": torch.tensor(0.25)}
    assert combine(terms, LossWeights()).item() == pytest.approx(5 * 0.5 + 2 * 2.0 + 1 * 0.25)  # defaults 5/2/1
    assert combine(terms, LossWeights(alpha_ce=1, alpha_mlm=0, alpha_cos=3)).item() == pytest.approx(0.5 + 0.75)
    with pytest.raises(ValueError):
        combine(terms, LossWeights(0, 0, 0))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shapes differ"):
        soft_target_kl(torch.zeros(2, 3), torch.zeros(2, 4))


def test_soft_targets_masked_or_at_every_token_hand_computed():
    # One sequence [CLS] a [MASK] [SEP] [PAD]; vocabulary of 2; T = 1; student logits 0 everywhere -> [1/2, 1/2].
    # Teacher logits: [CLS] [0, 0] (KL 0), a [ln 3, 0] (-> [3/4, 1/4]: KL k = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812),
    # [MASK] [0, ln 3] (-> [1/4, 3/4]: KL k), [SEP] [0, 0] (KL 0), [PAD] anything (never counted).
    labels = torch.tensor([[-100, -100, 7, -100, -100]])
    attention = torch.tensor([[1, 1, 1, 1, 0]])
    student = torch.zeros(1, 5, 2)
    teacher = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [0.0, LN3], [0.0, 0.0], [9.0, -9.0]]])
    k = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    masked = soft_target_positions(labels, attention, "masked")
    every = soft_target_positions(labels, attention, "all")
    assert masked.tolist() == [[False, False, True, False, False]]
    assert every.tolist() == [[True, True, True, True, False]]  # special tokens too, as in the HF recipe
    # masked: the one masked row -> k; all: (0 + k + k + 0) / 4 non-pad rows -> k / 2
    assert soft_target_kl(student[masked], teacher[masked], temperature=1.0).item() == pytest.approx(k, abs=1e-6)
    assert soft_target_kl(student[every], teacher[every], temperature=1.0).item() == pytest.approx(k / 2, abs=1e-6)
    with pytest.raises(ValueError, match="soft_targets"):
        soft_target_positions(labels, attention, "unmasked")


@pytest.mark.parametrize("subset", [False, True])
def test_fused_kl_and_mlm_equal_the_separate_terms_in_value_and_gradient(subset):
    from rokd.distill.losses import soft_target_kl_and_mlm

    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(7, 11, generator=g, dtype=torch.float64)).requires_grad_()
    rows = torch.tensor([0, 2, 3, 6]) if subset else None
    n_soft = 4 if subset else 7
    soft = torch.softmax(torch.randn(n_soft, 11, generator=g, dtype=torch.float64), -1)
    soft[0, :5] = 0.0  # a vocabulary-mapped row with zero mass on some tokens...
    soft[0] /= soft[0].sum()
    soft[1] *= 0.5  # ...and one whose mapped mass is not 1
    targets = torch.randint(11, (7,), generator=g)
    kl, ce = soft_target_kl_and_mlm(logits, soft, targets, 2.0, rows)
    (0.7 * kl + 1.3 * ce).backward()
    fused_grad = logits.grad.clone()
    logits.grad = None
    ref_kl = soft_target_kl(logits[rows] if subset else logits, soft, 2.0, teacher_is_probs=True)
    ref_ce = mlm_cross_entropy(logits, targets)
    (0.7 * ref_kl + 1.3 * ref_ce).backward()
    assert kl.item() == pytest.approx(ref_kl.item(), rel=1e-6) and ce.item() == pytest.approx(ref_ce.item(), rel=1e-6)
    assert torch.allclose(fused_grad.float(), logits.grad.float(), atol=1e-6)
