"""Dataclass configs that round-trip to JSON / YAML.

Every config in rokd is a (possibly nested) dataclass. ``to_dict`` / ``from_dict`` convert them,
``save_config`` writes the resolved config of a run next to its outputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rokd.errors import UsageError

T = TypeVar("T")


class ConfigError(UsageError, ValueError):
    """A config file or dict does not match its dataclass (a usage error: exit code 2 on the command line)."""


def choices(*allowed: str) -> dict[str, Any]:
    """Field metadata: ``field(default=..., metadata=choices("a", "b"))`` makes ``from_dict`` refuse other values."""
    return {"choices": tuple(allowed)}


def about(help: str) -> dict[str, Any]:
    """Field metadata: what the field means, in a few words (command-line help of generated flags)."""
    return {"help": help}


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def to_dict(cfg: Any) -> Any:
    """Dataclass (nested, lists, dicts) -> plain JSON-able values."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp``; a value of another type is an error naming ``where`` (nothing is guessed)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(non_none[0], value, where)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {k: _convert(inner, v, _join(where, k)) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        # 60.5 would silently become 60, "16" would fail late: refuse both (a float like 60.0 is a whole number)
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    if tp is float:
        number = value
        if isinstance(value, str):  # YAML 1.1 reads `5e-4` (no dot) as text: accept numeric text only
            try:
                number = float(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(number)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys, wrong types and values outside a field's
    ``choices`` are errors that name the field (``where`` is the path of ``data``, "" at the top of a file)."""
    where = cls.__name__ if where is None else where
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {k: _convert(hints[k], v, _join(where, k)) for k, v in data.items()}
    for k, v in kwargs.items():
        allowed = fields[k].metadata.get("choices")
        for item in v if isinstance(v, list) else [v]:  # a list field: each of its items
            if allowed and item is not None and item not in allowed:
                raise ConfigError(f"{_join(where, k)}: {item!r} is not allowed; choose one of {list(allowed)}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def _without_none(tp: Any) -> Any:
    """``X`` of ``X | None``; other types as they are."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def optional_fields(cls: type, names: typing.Iterable[str]) -> list[tuple[str, Any, Any]]:
    """``(name, T | None, field(default=None))`` of the fields ``names`` of dataclass ``cls``, their metadata kept:
    the fields of an overrides class (``dataclasses.make_dataclass``) in which ``None`` means "not given"."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    return [
        (n, _without_none(hints[n]) | None, dataclasses.field(default=None, metadata=by_name[n].metadata))
        for n in names
    ]


_METAVARS = {int: "N", float: "X"}


def add_arguments(
    parser: Any, cls: type, names: typing.Iterable[str] | None = None, special: dict[str, dict[str, Any]] | None = None
) -> None:
    """One flag per field of dataclass ``cls`` (``alpha_ce`` -> ``--alpha-ce``; all fields when ``names`` is None),
    its default None ("not given"), its type, choices and help taken from the field: a list takes several values,
    a bool is ``--x`` / ``--no-x``. ``special[name]`` replaces any of those argparse keywords for one flag."""
    import argparse

    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name in names if names is not None else by_name:
        tp, meta = _without_none(hints[name]), by_name[name].metadata
        kwargs: dict[str, Any] = {"default": None, "help": meta.get("help")}
        if typing.get_origin(tp) in (list, tuple):
            inner = typing.get_args(tp)[0]
            kwargs.update(nargs="+", type=inner, metavar=_METAVARS.get(inner))
        elif tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=tp, metavar=_METAVARS.get(tp))
        if "choices" in meta:
            kwargs.pop("metavar", None)
            kwargs["choices"] = list(meta["choices"])
        kwargs.update((special or {}).get(name, {}))
        parser.add_argument("--" + name.replace("_", "-"), **kwargs)


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def command_flags(cfg: Any, names: typing.Iterable[str], show: typing.Callable[[Any], str] = _short) -> list[str]:
    """The flags of :func:`add_arguments` that give ``cfg``'s fields ``names`` their values (None fields left out);
    ``show`` writes one value (default: numbers in their shortest form, ``2`` for 2.0)."""
    parts: list[str] = []
    for name in names:
        value = getattr(cfg, name)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            parts += [flag, *(show(v) for v in value)]
        else:
            parts += [flag, show(value)]
    return parts


def config_text(cfg: Any, path: str | Path) -> str:
    """A resolved config as the text :func:`save_config` writes to ``path``: JSON (``.json``) or YAML."""
    data = to_dict(cfg)
    if Path(path).suffix == ".json":
        return json.dumps(data, indent=2, sort_keys=True)
    return yaml.safe_dump(data, sort_keys=False)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a resolved config as JSON (``.json``) or YAML (anything else)."""
    from rokd.io import atomic_write_text

    return atomic_write_text(path, config_text(cfg, path))


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a JSON / YAML config file; every problem is a :class:`ConfigError` naming the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}, line {e.lineno}: invalid JSON ({e.msg})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{path}{line}: invalid YAML ({problem}); fix the syntax there") from None
    try:
        return from_dict(cls, data, where="")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
