"""Vocabulary logits only where they are needed: MLM head adaptors looked up by ``config.model_type``,
the encoder's hidden states, and :class:`SparseMLM` (a ``*ForMaskedLM`` computing logits at masked positions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, ModelOutput

from rokd.mlm.masking import IGNORE_INDEX


def bert_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``BertForMaskedLM``: hidden -> logits through ``model.cls``."""
    return lambda hidden: model.cls(hidden)


def distilbert_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``DistilBertForMaskedLM``: vocab_transform -> activation -> vocab_layer_norm -> vocab_projector."""
    return lambda hidden: model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))


def roberta_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``RobertaForMaskedLM`` / XLM-R: ``model.lm_head``."""
    return lambda hidden: model.lm_head(hidden)


def electra_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``ElectraForMaskedLM`` (the generator): generator_predictions -> generator_lm_head."""
    return lambda hidden: model.generator_lm_head(model.generator_predictions(hidden))


#: ``config.model_type`` -> adaptor returning the model's MLM head as a callable hidden -> logits.
MLM_HEADS: dict[str, Callable[[nn.Module], Callable[[torch.Tensor], torch.Tensor]]] = {
    "bert": bert_mlm_head,
    "distilbert": distilbert_mlm_head,
    "roberta": roberta_mlm_head,
    "xlm-roberta": roberta_mlm_head,
    "camembert": roberta_mlm_head,
    "electra": electra_mlm_head,
}


def mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MLM head of a ``*ForMaskedLM`` model, found by ``config.model_type`` in :data:`MLM_HEADS`."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in MLM_HEADS:
        raise KeyError(
            f"no MLM head adaptor for model_type {model_type!r}; known: {sorted(MLM_HEADS)} (add one to "
            "rokd.mlm.MLM_HEADS)"
        )
    return MLM_HEADS[model_type](model)


def encoder_hidden_states(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    output_hidden_states: bool = True,
) -> BaseModelOutput:
    """Run only the encoder (``model.base_model``) of a ``*ForMaskedLM`` model.

    ``last_hidden_state`` is (batch, length, hidden); ``hidden_states`` (embeddings + every layer) when
    asked for. No vocabulary projection is computed.
    """
    return model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True
    )


def masked_positions_logits(
    hidden_states: torch.Tensor, labels: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``head`` only where ``labels != -100``.

    Returns ``(logits, targets)``: ``(n_masked, vocab)`` and ``(n_masked,)``, rows in row-major order of
    the masked positions (the order of ``hidden_states[labels != -100]``).
    """
    if hidden_states.shape[:2] != labels.shape:
        raise ValueError(
            f"hidden_states {tuple(hidden_states.shape)} and labels {tuple(labels.shape)} disagree on (batch, length)"
        )
    positions = labels != IGNORE_INDEX
    return head(hidden_states[positions]), labels[positions]


@dataclass
class SparseMLMOutput(ModelOutput):
    """Output of :class:`SparseMLM`: logits/targets at masked positions, plus encoder states."""

    logits: torch.Tensor | None = None  # (n_masked, vocab)
    targets: torch.Tensor | None = None  # (n_masked,)
    last_hidden_state: torch.Tensor | None = None  # (batch, length, hidden)
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SparseMLM(nn.Module):
    """A ``*ForMaskedLM`` model whose forward computes vocabulary logits only at masked positions.

    Give this module (not the bare model) to ``rokd.trainer.train`` so that, under DDP, the forward
    goes through the wrapper. Save with ``sparse.model.save_pretrained(...)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._head = mlm_head(model)  # a plain function over model's own modules: nothing registered twice

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        output_hidden_states: bool = False,
    ) -> SparseMLMOutput:
        enc = encoder_hidden_states(self.model, input_ids, attention_mask, output_hidden_states)
        logits, targets = masked_positions_logits(enc.last_hidden_state, labels, self._head)
        return SparseMLMOutput(
            logits=logits, targets=targets, last_hidden_state=enc.last_hidden_state, hidden_states=enc.hidden_states
        )
