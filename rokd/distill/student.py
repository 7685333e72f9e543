"""Students: half the teacher's layers (or the layers asked for), initialised from the teacher.

The recipe of Sanh et al. (2019, the Hugging Face DistilBERT): same width as the teacher, every other
layer dropped, the kept layers, the embeddings and the MLM head copied from the teacher. Which student
a teacher gets is looked up by ``config.model_type`` in :data:`STUDENT_BUILDERS` (:func:`make_student`):

- a BERT teacher gets a ``DistilBertForMaskedLM``, as in the paper (correspondence below);
- any other encoder family in the table (RoBERTa, XLM-R, CamemBERT, ELECTRA's generator, DistilBERT)
  gets its own architecture with fewer layers: the same config with a smaller depth, every parameter
  copied by name, the ``i``-th layer of the student from teacher layer ``layers[i]``
  (:func:`shorter_same_architecture`). Another family is one line in the table.

Weight correspondence (BERT -> DistilBERT):

- ``bert.embeddings.word_embeddings`` -> ``distilbert.embeddings.word_embeddings``;
- ``bert.embeddings.position_embeddings`` + ``token_type_embeddings[0]`` ->
  ``distilbert.embeddings.position_embeddings``. DistilBERT has no token-type (segment) embeddings.
  BERT adds the segment-0 vector to every token of a single-segment input, so folding that one vector
  into each position vector makes the student's embedding layer compute *exactly* the teacher's for
  single-segment inputs (segment 1 is lost, as in DistilBERT, which is trained without sentence pairs).
  It is folded into the position table rather than the word table because the word table is tied to
  the output projection;
- the embedding ``LayerNorm``, and for each kept layer: query/key/value/output -> ``q_lin``/``k_lin``/
  ``v_lin``/``out_lin``, attention ``LayerNorm`` -> ``sa_layer_norm``, ``intermediate``/``output`` dense
  -> ``ffn.lin1``/``ffn.lin2``, output ``LayerNorm`` -> ``output_layer_norm`` (both are post-LN blocks
  with the same arithmetic);
- MLM head: ``cls.predictions.transform.dense`` -> ``vocab_transform``, ``transform.LayerNorm`` ->
  ``vocab_layer_norm``, decoder bias -> ``vocab_projector.bias`` (the decoder weight is tied to the
  word embeddings in both models).

Which layers are kept: :func:`layer_map`.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import torch


def layer_map(n_teacher_layers: int, n_student_layers: int | None = None) -> list[int]:
    """Teacher layer indices copied into the student's layers, in order.

    Rule: the student has ``k = max(1, n // 2)`` layers unless told otherwise; its first ``ceil(k/2)``
    layers are teacher layers ``0, 2, 4, ...`` and its last ``floor(k/2)`` mirror that from the top,
    ``..., n-5, n-3, n-1``. So the bottom and the top layer are always kept and the gaps are even.
    For 12 layers this gives the DistilBERT recipe's ``0, 2, 4, 7, 9, 11``; 6 -> ``0, 2, 5``;
    4 -> ``0, 3``; 2 -> ``0``. When an explicit ``n_student_layers`` is too large for the strides to
    stay apart (more than about half the teacher's), the kept layers are spread evenly instead.
    """
    n = int(n_teacher_layers)
    if n < 1:
        raise ValueError(f"the teacher needs at least one layer, got {n}")
    k = max(1, n // 2) if n_student_layers is None else int(n_student_layers)
    if not 1 <= k <= n:
        raise ValueError(f"student layers must be between 1 and {n} (the teacher's), got {k}")
    bottom = [2 * i for i in range(math.ceil(k / 2))]
    top = [n - 1 - 2 * i for i in range(k // 2)][::-1]
    if len(set(bottom + top)) == k and (not top or bottom[-1] < top[0]):
        return bottom + top
    # The strided halves would collide: spread the kept layers evenly (always distinct for k <= n).
    return [round(i * (n - 1) / (k - 1)) for i in range(k)]


def student_layers(n_teacher_layers: int, layers: list[int] | None = None, depth: int | None = None) -> list[int]:
    """The teacher layers a student keeps: ``layers`` as given (checked), else :func:`layer_map` with ``depth``."""
    if layers is not None and depth is not None:
        raise ValueError("give the student's layers or its depth, not both")
    if layers is None:
        return layer_map(n_teacher_layers, depth)
    layers = [int(x) for x in layers]
    if not layers or layers != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= n_teacher_layers:
        raise ValueError(
            "student layers must be distinct teacher layer indices in increasing order, "
            f"within 0..{n_teacher_layers - 1}; got {layers}"
        )
    return layers


def student_config_from_teacher(teacher_config, n_layers: int | None = None, layers: list[int] | None = None):
    """A ``DistilBertConfig`` with the teacher's width, heads, FFN, vocabulary and half its depth."""
    from transformers import DistilBertConfig

    act = teacher_config.hidden_act
    if not isinstance(act, str):
        raise ValueError(f"teacher hidden_act must be a named activation, got {act!r}")
    return DistilBertConfig(
        vocab_size=teacher_config.vocab_size,
        max_position_embeddings=teacher_config.max_position_embeddings,
        dim=teacher_config.hidden_size,
        n_layers=len(layers) if layers is not None else len(layer_map(teacher_config.num_hidden_layers, n_layers)),
        n_heads=teacher_config.num_attention_heads,
        hidden_dim=teacher_config.intermediate_size,
        activation=act,
        dropout=teacher_config.hidden_dropout_prob,
        attention_dropout=teacher_config.attention_probs_dropout_prob,
        initializer_range=teacher_config.initializer_range,
        pad_token_id=teacher_config.pad_token_id if teacher_config.pad_token_id is not None else 0,
        tie_word_embeddings=True,
        sinusoidal_pos_embds=False,
    )


# (DistilBERT layer name, BERT layer name) for the parameters of one transformer block.
_BLOCK_NAMES = (
    ("attention.q_lin", "attention.self.query"),
    ("attention.k_lin", "attention.self.key"),
    ("attention.v_lin", "attention.self.value"),
    ("attention.out_lin", "attention.output.dense"),
    ("sa_layer_norm", "attention.output.LayerNorm"),
    ("ffn.lin1", "intermediate.dense"),
    ("ffn.lin2", "output.dense"),
    ("output_layer_norm", "output.LayerNorm"),
)


def weight_correspondence(layers: list[int]) -> list[tuple[str, str]]:
    """(student parameter, teacher parameter) names copied verbatim (position embeddings excluded)."""
    pairs = [
        ("distilbert.embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"),
        ("distilbert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.weight"),
        ("distilbert.embeddings.LayerNorm.bias", "bert.embeddings.LayerNorm.bias"),
        ("vocab_transform.weight", "cls.predictions.transform.dense.weight"),
        ("vocab_transform.bias", "cls.predictions.transform.dense.bias"),
        ("vocab_layer_norm.weight", "cls.predictions.transform.LayerNorm.weight"),
        ("vocab_layer_norm.bias", "cls.predictions.transform.LayerNorm.bias"),
        ("vocab_projector.bias", "cls.predictions.bias"),
    ]
    for s, t in enumerate(layers):
        for s_name, t_name in _BLOCK_NAMES:
            for kind in ("weight", "bias"):
                pairs.append(
                    (f"distilbert.transformer.layer.{s}.{s_name}.{kind}", f"bert.encoder.layer.{t}.{t_name}.{kind}")
                )
    return pairs


@torch.no_grad()
def init_student_from_teacher(teacher, n_layers: int | None = None, layers: list[int] | None = None):
    """A ``DistilBertForMaskedLM`` initialised from a ``BertForMaskedLM`` teacher (see module doc)."""
    from transformers import DistilBertForMaskedLM

    tcfg = teacher.config
    layers = layers if layers is not None else layer_map(tcfg.num_hidden_layers, n_layers)
    student = DistilBertForMaskedLM(student_config_from_teacher(tcfg, layers=layers))
    t_params = dict(teacher.named_parameters())
    t_params.update(dict(teacher.named_buffers()))
    s_params = dict(student.named_parameters())
    for s_name, t_name in weight_correspondence(layers):
        if t_name not in t_params:
            raise KeyError(f"teacher has no parameter {t_name!r}: is it a BertForMaskedLM?")
        s_params[s_name].copy_(t_params[t_name])
    pos = t_params["bert.embeddings.position_embeddings.weight"]
    token_type0 = t_params["bert.embeddings.token_type_embeddings.weight"][0]
    s_params["distilbert.embeddings.position_embeddings.weight"].copy_(pos + token_type0)
    student.config.rokd_teacher_layers = layers  # kept in config.json: documents the init
    return student


def shorter_same_architecture(layer_list: str, depth_field: str):
    """A student builder for families whose student is the teacher's own architecture, shorter.

    ``layer_list``: the name of the layer list in parameter names (``encoder.layer``); ``depth_field``:
    the config field that counts the layers. Every student parameter is copied from the teacher's of the
    same name, with the layer index ``i`` of ``<layer_list>.<i>.`` read as teacher layer ``layers[i]``.
    """
    pattern = re.compile(rf"(^|\.)({re.escape(layer_list)})\.(\d+)\.")

    @torch.no_grad()
    def build(teacher, layers: list[int]):
        from transformers import AutoModelForMaskedLM

        cfg = copy.deepcopy(teacher.config)
        setattr(cfg, depth_field, len(layers))
        student = AutoModelForMaskedLM.from_config(cfg)
        t_state = teacher.state_dict()
        state = {}
        for name in student.state_dict():
            src = pattern.sub(lambda m: f"{m[1]}{m[2]}.{layers[int(m[3])]}.", name, count=1)
            if src not in t_state:
                raise KeyError(f"teacher ({cfg.model_type}) has no parameter {src!r} for the student's {name!r}")
            state[name] = t_state[src]
        student.load_state_dict(state, strict=True)
        student.tie_weights()
        return student

    return build


def _distilbert_from_bert(teacher, layers: list[int]):
    return init_student_from_teacher(teacher, layers=layers)


#: ``config.model_type`` of the teacher -> ``build(teacher, layers) -> student *ForMaskedLM``.
STUDENT_BUILDERS = {
    "bert": _distilbert_from_bert,
    "roberta": shorter_same_architecture("encoder.layer", "num_hidden_layers"),
    "xlm-roberta": shorter_same_architecture("encoder.layer", "num_hidden_layers"),
    "camembert": shorter_same_architecture("encoder.layer", "num_hidden_layers"),
    "electra": shorter_same_architecture("encoder.layer", "num_hidden_layers"),
    "distilbert": shorter_same_architecture("transformer.layer", "n_layers"),
}

# Families whose position ids start after the padding index (RoBERTa's convention): the longest input
# is ``max_position_embeddings - pad_token_id - 1`` tokens.
_PADDING_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert"}


def max_input_tokens(config) -> int:
    """The longest input (special tokens included) a model of this config accepts."""
    n = int(config.max_position_embeddings)
    if config.model_type in _PADDING_OFFSET_POSITIONS:
        n -= int(config.pad_token_id) + 1
    return n


def make_student(teacher, layers: list[int] | None = None, depth: int | None = None):
    """The student of ``teacher`` (see :data:`STUDENT_BUILDERS`), keeping teacher layers ``layers``
    (default: :func:`layer_map` of ``depth`` or of half the teacher's depth); ``config.rokd_teacher_layers``
    records them."""
    model_type = teacher.config.model_type
    if model_type not in STUDENT_BUILDERS:
        raise ValueError(
            f"no student recipe for a {model_type!r} teacher; known: {sorted(STUDENT_BUILDERS)} "
            "(add one to rokd.distill.student.STUDENT_BUILDERS)"
        )
    kept = student_layers(int(teacher.config.num_hidden_layers), layers, depth)
    student = STUDENT_BUILDERS[model_type](teacher, kept)
    student.config.rokd_teacher_layers = kept  # kept in config.json: documents the init
    return student


def save_student(student, tokenizer, out_dir: str | Path, extra_files: dict[str, str] | None = None) -> Path:
    """``save_pretrained`` (safetensors) model + tokenizer into ``out_dir`` atomically (:func:`rokd.io.save_model`:
    an existing ``out_dir`` is replaced only when rokd made it)."""
    from rokd import io

    return io.save_model(out_dir, student, tokenizer, "a student", extra_files)


def build_init_only_control(profile, *, force: bool = False, log=print) -> Path:
    """``artifacts/<profile>/controls/control-init-only``: Distil-BERT-base-ro as distillation starts, not distilled.

    The student of its first teacher initialised by :func:`init_student_from_teacher`, exactly as
    :func:`rokd.distill.distiller.build_setup` does before the first distillation step. Fine-tuned like
    the students, student minus this control is what distillation added beyond the initialisation.
    """
    from rokd.models.controls import FORMAT_VERSION, is_current, save_control, source_fingerprint
    from rokd.models.registry import CONTROL_OF, STUDENT_TEACHERS, load_model, load_tokenizer, resolve
    from rokd.profiles import resolve_profile
    from rokd.spec import INIT_ONLY_CONTROL

    prof = resolve_profile(profile)
    key = INIT_ONLY_CONTROL
    student = CONTROL_OF[key]
    teacher = STUDENT_TEACHERS[student][0]
    out = Path(resolve(key, prof).name_or_path)
    record = {
        "control": key,
        "format_version": FORMAT_VERSION,
        "profile": prof.name,
        "built_from": teacher,
        "weights": f"{student} initialised from {teacher}'s layers (rokd.distill.student.init_student_from_teacher), "
        "not distilled",
        "source_fingerprint": source_fingerprint(prof, teacher, ("model.safetensors",)),
    }
    if not force and is_current(out, record):
        return out
    model = init_student_from_teacher(load_model(teacher, "mlm", prof).eval())
    save_control(model, load_tokenizer(teacher, prof), out, record)
    if log:
        log(f"{key}: built {out} ({student} initialised from {teacher}, layers {model.config.rokd_teacher_layers})")
    return out
