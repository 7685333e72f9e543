"""Masked-language-model pieces shared by teacher pretraining (``rokd.models``) and distillation
(``rokd.distill``).

The pieces, from text to logits:

1. :func:`tokenize_lines` reads a one-sentence-per-line file (``artifacts/<profile>/corpus/train.txt``)
   and tokenizes it once with a *fast* tokenizer into a :class:`TokenizedLines` (flat numpy arrays:
   token ids, word ids, character spans). ``cache_path=`` stores it as ``.npz`` (no pickle) and reuses it
   while the file, tokenizer and ``max_length`` are unchanged. Example ``i`` always comes from
   ``line_index[i]`` of the file (empty lines are skipped), so two tokenizations of the same file line
   up example by example -- what cross-tokenizer distillation needs.
2. :class:`LengthGroupedBatchSampler` yields batches of example indices of similar length, shuffled by a
   seed, endlessly (epoch after epoch). Its position is a cursor ``(epoch, position)``: ``state_dict()`` /
   ``load_state_dict()`` make a resumed run see exactly the same batches.
3. :class:`WholeWordMaskCollator` pads a list of examples and masks whole *words*: it chooses
   ``max(1, round(p * n_words))`` words per example (uniformly, or weighted by smoothed token frequency,
   the DistilBERT recipe ``count ** -0.7``), and for each chosen word decides once: 80 % all its subwords
   become ``[MASK]``, 10 % each subword becomes a random (non-special) token, 10 % it is kept. Special
   tokens and padding are never chosen. All randomness comes from the collator's own
   ``torch.Generator``, whose state is part of ``state_dict()``. The per-word decisions are returned as
   ``word_actions`` so another tokenization of the same text can be masked identically with
   :func:`apply_word_actions`; :func:`whole_word_mask` is the same masking as a plain function of a
   padded batch (for evaluation). (Word indices of two tokenizers agree only when their pre-tokenizers
   split the text the same way -- two BERT pre-tokenizers do, a SentencePiece one (whitespace only:
   ``mere.`` is one word) does not; :mod:`rokd.distill.batching` therefore maps the other tokenization's
   tokens onto the student's words by ``char_spans``.)
4. :class:`BatchStream` = dataset + sampler + collator, an endless iterator of ready batches with one
   ``state_dict()`` (sampler cursor + collator generator). ``rokd.trainer.train`` checkpoints it. With
   ``num_workers`` > 0 (a GPU run) it collates and masks in DataLoader worker processes; the collator then
   masks batch ``n`` with a seed derived from ``(seed, n)`` (``per_batch_seed=True``), so the state stays
   a cursor and resume stays exact.
5. :class:`SparseMLM` wraps a ``*ForMaskedLM`` model: encoder forward, then the MLM head **only at masked
   positions** (``labels != -100``). Head adaptors (:func:`bert_mlm_head`, :func:`distilbert_mlm_head`,
   :func:`roberta_mlm_head`) are looked up by ``config.model_type`` in :data:`MLM_HEADS`, so callers
   never branch on the model class. :func:`masked_positions_logits` and :func:`encoder_hidden_states`
   are the functional forms (for frozen teachers).

Usage (teacher pretraining)::

    from rokd import mlm, trainer
    corpus = mlm.tokenize_lines(train_txt, tokenizer, max_length=128, cache_path=out / "train_ids.npz")
    sampler = mlm.LengthGroupedBatchSampler(corpus.lengths, batch_size=32, seed=13)
    collator = mlm.WholeWordMaskCollator(tokenizer, mlm_probability=0.15, seed=13)
    batches = mlm.BatchStream(corpus, sampler, collator)
    net = mlm.SparseMLM(BertForMaskedLM(config))          # trainable module given to the trainer

    def step_fn(net, batch):
        out = net(batch["input_ids"], batch["attention_mask"], batch["labels"])
        return {"loss": torch.nn.functional.cross_entropy(out.logits.float(), out.targets)}

    result = trainer.train(net, step_fn, batches, trainer.TrainerConfig(output_dir=out, steps=1000))
    net.model.save_pretrained(out)

Batch keys: ``input_ids``, ``attention_mask``, ``labels`` (``-100`` where not predicted), ``word_ids``
(``-1`` for special tokens and padding), ``word_actions`` (``(batch, max_words)`` int8: 0 = not
chosen, 1 = ``[MASK]``, 2 = random token, 3 = kept), ``example_index`` (dataset indices).

The package: :mod:`rokd.mlm.corpus` (1), :mod:`rokd.mlm.batching` (2, 4), :mod:`rokd.mlm.masking` (3),
:mod:`rokd.mlm.heads` (5); everything is importable from ``rokd.mlm`` itself.
"""

from rokd.mlm.batching import BatchStream, LengthGroupedBatchSampler, count_tokens
from rokd.mlm.corpus import TokenizedLines, smoothed_token_weights, token_counts, tokenize_lines, visible_spans
from rokd.mlm.heads import (
    MLM_HEADS,
    SparseMLM,
    SparseMLMOutput,
    bert_mlm_head,
    distilbert_mlm_head,
    electra_mlm_head,
    encoder_hidden_states,
    masked_positions_logits,
    mlm_head,
    roberta_mlm_head,
)
from rokd.mlm.masking import (
    ACTION_KEEP,
    ACTION_MASK,
    ACTION_RANDOM,
    IGNORE_INDEX,
    NOT_CHOSEN,
    WholeWordMaskCollator,
    apply_word_actions,
    batch_seed,
    choose_word_actions,
    evaluation_mask,
    masking_stamp,
    pad_examples,
    whole_word_mask,
)

__all__ = [
    "IGNORE_INDEX",
    "NOT_CHOSEN",
    "ACTION_MASK",
    "ACTION_RANDOM",
    "ACTION_KEEP",
    "visible_spans",
    "TokenizedLines",
    "tokenize_lines",
    "token_counts",
    "smoothed_token_weights",
    "LengthGroupedBatchSampler",
    "choose_word_actions",
    "apply_word_actions",
    "whole_word_mask",
    "evaluation_mask",
    "pad_examples",
    "WholeWordMaskCollator",
    "BatchStream",
    "batch_seed",
    "masking_stamp",
    "bert_mlm_head",
    "distilbert_mlm_head",
    "roberta_mlm_head",
    "electra_mlm_head",
    "MLM_HEADS",
    "mlm_head",
    "encoder_hidden_states",
    "masked_positions_logits",
    "SparseMLM",
    "SparseMLMOutput",
    "count_tokens",
]
