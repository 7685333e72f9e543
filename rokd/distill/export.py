"""Smaller, faster students for CPU users: export a model as **int8** (dynamic quantisation) or **bf16**.

    rokd export --model artifacts/mini/students/distil-bert-base-ro --to int8 --output-dir students-int8/
    rokd export --model artifacts/mini/students/distil-bert-base-ro --to bf16 --output-dir students-bf16/

``--model`` is any Hugging Face model folder made by rokd (a distilled student, a teacher, a fine-tuned
task model); the architecture is the one named in its ``config.json`` (a ``transformers`` class; nothing
from outside ``transformers`` is imported, no remote code).

**bf16**: the weights cast to bfloat16 and saved with ``save_pretrained`` (safetensors). Any
``AutoModel*.from_pretrained(folder)`` loads it as is. Half the size on disk. Fast only where the CPU
has AMX (or on a GPU): on a CPU with AVX512-BF16 but no AMX, bf16 matmuls ran at 0.55x fp32 (see
:mod:`rokd.precision`).

**int8**: the ``nn.Linear`` layers quantised dynamically (int8 weights, per-tensor scale; activations
quantised on the fly, per batch), everything else (embeddings, LayerNorm) kept in fp32 -- the recipe of
``torch.ao.quantization.quantize_dynamic``. An int8 model cannot be a plain ``AutoModel`` checkpoint, so
the folder holds ``model.int8.safetensors`` (per quantised layer ``<name>.weight.int8``,
``<name>.weight.scale``, ``<name>.weight.zero_point`` and ``<name>.bias``; every other parameter under its
own name, fp32), ``config.json``, the tokenizer, and ``rokd_export.json`` (format, version, layer list).
:func:`load_exported` rebuilds the model: the architecture from ``config.json``, the fp32 tensors, then
the same quantisation, then the saved int8 weights put in place. Only safetensors and JSON are read: no
pickle is ever loaded.

Why ``torch.ao.quantization`` and not ``torchao``: both install offline and run on torch 2.13 (CPU), but on
this project's Xeon a DistilBERT at base shapes ran 2.5x faster than fp32 with ``torch.ao``'s x86 kernels
and 1.4x with ``torchao``'s ``Int8DynamicActivationInt8WeightConfig`` (1 thread, batch 8 x 128); and
``torch.ao`` needs no extra dependency. torch marks ``torch.ao.quantization`` deprecated in favour of
torchao; :func:`quantize_int8` is the one place to change when it goes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

EXPORT_FILE = "rokd_export.json"
INT8_WEIGHTS = "model.int8.safetensors"
FORMAT_VERSION = 1
VARIANTS = ("fp32", "bf16", "int8")


@contextlib.contextmanager
def _quiet_deprecation():
    """torch 2.13 warns on every quantised-tensor creation that torch.ao.quantization is deprecated (see module doc)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(torch\.ao\.quantization|quantized tensor creation|quantize_per_tensor).*"
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
        yield


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are dynamically quantised to int8 (CPU inference only)."""
    with _quiet_deprecation():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def make_variant(model: nn.Module, variant: str) -> nn.Module:
    """``model`` for inference in ``variant``: ``fp32`` (itself), ``bf16`` (a copy with bf16 weights), ``int8``."""
    if variant == "fp32":
        return model
    if variant == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16).eval()
    if variant == "int8":
        return quantize_int8(model)
    raise ValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}")


def _dynamic_linear_type():
    return torch.ao.nn.quantized.dynamic.Linear


def int8_state(qmodel: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Tensors that describe a :func:`quantize_int8` model: int8 weights + scale/zero point, the rest fp32."""
    qlinear = _dynamic_linear_type()
    tensors: dict[str, torch.Tensor] = {}
    layers: list[str] = []
    for name, module in qmodel.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, qlinear):
            w = module.weight()
            if w.qscheme() != torch.per_tensor_affine:
                raise ValueError(f"{name}: only per-tensor int8 weights are exported (got {w.qscheme()})")
            tensors[prefix + "weight.int8"] = w.int_repr().contiguous()
            tensors[prefix + "weight.scale"] = torch.tensor(w.q_scale(), dtype=torch.float64)
            tensors[prefix + "weight.zero_point"] = torch.tensor(w.q_zero_point(), dtype=torch.int64)
            if module.bias() is not None:
                tensors[prefix + "bias"] = module.bias().detach().contiguous()
            layers.append(name)
            continue
        for pname, p in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if p is not None:
                tensors[prefix + pname] = p.detach().contiguous()
    return tensors, layers


def _architecture(config) -> type:
    import transformers

    names = list(getattr(config, "architectures", None) or [])
    for name in names:
        cls = getattr(transformers, name, None)
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls
    raise ValueError(
        f"config.json names no transformers architecture ({names}); export only models made with transformers"
    )


def export_model(model_dir: str | Path, variant: str, output_dir: str | Path) -> Path:
    """Write ``model_dir`` (a Hugging Face model folder) as ``variant`` into ``output_dir`` (see the module doc).

    The folder is written beside its destination and renamed into place; an existing ``output_dir`` is
    replaced only when it is an earlier export (it holds ``rokd_export.json``).
    """
    from transformers import AutoConfig

    src, out = Path(model_dir), Path(output_dir)
    if variant not in ("bf16", "int8"):
        raise ValueError(f"--to {variant!r}: export to 'int8' or 'bf16'")
    if not (src / "config.json").is_file():
        raise FileNotFoundError(
            f"{src}: no config.json; give a Hugging Face model folder (e.g. artifacts/<profile>/students/<key>)"
        )
    if out.exists() and not (out / EXPORT_FILE).is_file():
        raise FileExistsError(
            f"{out} exists and is not a rokd export; choose another --output-dir (nothing was written)"
        )
    if out.resolve() == src.resolve():
        raise ValueError("--output-dir must differ from the model folder")
    config = AutoConfig.from_pretrained(src)
    cls = _architecture(config)
    model = cls.from_pretrained(src, dtype=torch.float32).eval()
    stage = out.with_name(out.name + ".tmp-export")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    record = {
        "format": f"rokd-{variant}",
        "version": FORMAT_VERSION,
        "source": str(src),
        "architecture": cls.__name__,
        "torch": torch.__version__,
    }
    if variant == "bf16":
        model.to(torch.bfloat16).save_pretrained(stage)
        record["load"] = "AutoModel*.from_pretrained(folder) (weights in bf16)"
    else:
        from safetensors.torch import save_file

        tensors, layers = int8_state(quantize_int8(model))
        save_file(tensors, str(stage / INT8_WEIGHTS), metadata={"format": "rokd-int8"})
        config.save_pretrained(stage)
        record.update(
            quantized_layers=layers,
            scheme="dynamic int8, per-tensor weights (torch.ao.quantization)",
            load="rokd.distill.export.load_exported(folder)",
        )
    for f in src.iterdir():  # tokenizer files travel with the model
        if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens", "vocab")) or f.suffix == ".model"):
            shutil.copy2(f, stage / f.name)
    (stage / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
    return out


def load_exported(folder: str | Path) -> nn.Module:
    """The model of an exported folder, ready for inference (eval mode, CPU)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    folder = Path(folder)
    meta_path = folder / EXPORT_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder}: no {EXPORT_FILE}; not a folder written by `rokd export`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    config = AutoConfig.from_pretrained(folder)
    cls = _architecture(config)
    if meta["format"] == "rokd-bf16":
        return cls.from_pretrained(folder, dtype=torch.bfloat16).eval()
    if meta["format"] != "rokd-int8" or int(meta["version"]) > FORMAT_VERSION:
        raise ValueError(f"{meta_path}: format {meta['format']} v{meta['version']} is not one this rokd reads")
    tensors = load_file(str(folder / INT8_WEIGHTS))
    qmodel = quantize_int8(cls(config))  # same structure; its random weights are all replaced below
    qlinear = _dynamic_linear_type()
    modules = dict(qmodel.named_modules())
    expected, _ = int8_state(qmodel)
    if set(expected) != set(tensors):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ValueError(
            f"{folder / INT8_WEIGHTS}: tensors do not match {cls.__name__} "
            f"(missing {missing[:5]}, unexpected {extra[:5]})"
        )
    with torch.no_grad(), _quiet_deprecation():
        for name in meta["quantized_layers"]:
            module, prefix = modules[name], f"{name}." if name else ""
            if not isinstance(module, qlinear):
                raise ValueError(f"{folder}: layer {name} is not a quantised Linear in {cls.__name__}")
            weight = torch._make_per_tensor_quantized_tensor(
                tensors[prefix + "weight.int8"],
                float(tensors[prefix + "weight.scale"]),
                int(tensors[prefix + "weight.zero_point"]),
            )
            module.set_weight_bias(weight, tensors.get(prefix + "bias"))
        for name, module in modules.items():
            if isinstance(module, qlinear):
                continue
            prefix = f"{name}." if name else ""
            for pname, p in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
                if p is not None:
                    p.copy_(tensors[prefix + pname])
    return qmodel.eval()


# ---------------------------------------------------------------------------------------------- CLI
