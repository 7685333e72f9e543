"""Tiny teachers for the distillation tests: two WordPiece tokenizers trained on a few Romanian
sentences (one cased, one uncased: different vocabularies) and tiny random BERT masked LMs."""

from __future__ import annotations

import functools

import torch

SENTENCES = [
    "Ana are mere și pere.",
    "Casa mare din București este veche.",
    "Mașinile noi au fost vândute ieri.",
    "Președintele României a vizitat Clujul.",
    "În Iași plouă des toamna.",
    "Copiii merg la școală dimineața.",
    "Ion citește o carte despre istoria Moldovei.",
    "Vremea este frumoasă azi în Timișoara.",
    "Universitatea din București are mulți studenți.",
    "Guvernul a aprobat bugetul pentru anul viitor.",
    "CASA din deal este a Mariei.",
    "Maria și Ion locuiesc în Brașov.",
]


@functools.lru_cache(maxsize=1)
def tokenizers():
    """(cased, uncased) tokenizers; trained once per test session (treat as read-only)."""
    from rokd.models.tokenizers import train_wordpiece

    cased = train_wordpiece(SENTENCES * 3, vocab_size=220, lowercase=False, min_frequency=1)
    uncased = train_wordpiece(SENTENCES * 3, vocab_size=160, lowercase=True, min_frequency=1)
    return cased, uncased


def tiny_bert(tokenizer, hidden: int = 32, layers: int = 4, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(cfg).eval()


def run_config(**overrides):
    from rokd.distill.distiller import DistillRun

    base = dict(
        profile="test",
        student="distilmulti-bert-base-ro",
        teachers=["bert-base-ro", "robert-base"],
        teacher_weights=[0.5, 0.5],
        teacher_fingerprints={},
        strategy="ensemble",
        temperature=2.0,
        alpha_ce=5.0,
        alpha_mlm=2.0,
        alpha_cos=1.0,
        steps=6,
        batch_size=4,
        grad_accum=1,
        max_length=32,
        lr=3e-3,
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=5.0,
        mlm_probability=0.3,
        smoothed_masking=True,
        eval_lines=8,
        seed=1,
        corpus_sha256="",
    )
    base.update(overrides)
    return DistillRun(**base)
