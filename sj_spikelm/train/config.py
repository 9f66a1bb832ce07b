"""Job configuration: a dataclass of defaults, overridden by an optional YAML file
(``--config file.yaml``), overridden by command-line flags (``--lr 3e-5``). Values are checked
against the field types; an unknown key raises ``ValueError`` listing the accepted ones."""
from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Type, TypeVar

import yaml

C = TypeVar("C")


def _coerce(name: str, value: Any, hint) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(name, value, next(a for a in args if a is not type(None)))
    if isinstance(value, str) and hint is not str:
        value = yaml.safe_load(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "5e-5" as a string
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin in (dict, Dict) or hint is dict:
        if isinstance(value, dict):
            return value
    elif origin in (list, List) or hint is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise ValueError(f"config field {name!r}: {value!r} is not a valid {getattr(hint, '__name__', hint)}")


def from_dict(cls: Type[C], values: Dict[str, Any], base: Optional[C] = None) -> C:
    """``cls`` with ``values`` applied over ``base`` (or the defaults). Dict-valued fields are
    merged key by key, so ``distill_weights: {hidden: 0}`` keeps the other weights."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown} for {cls.__name__}; "
                         f"accepted: {', '.join(names)}")
    current = dataclasses.asdict(base) if base is not None else dataclasses.asdict(cls())
    for key, value in values.items():
        value = _coerce(key, value, hints[key])
        if isinstance(value, dict) and isinstance(current[key], dict):
            value = {**current[key], **value}
        current[key] = value
    return cls(**current)


def parse_config(cls: Type[C], argv: Optional[Sequence[str]] = None, description: str = "") -> C:
    """Defaults of ``cls`` < YAML file given by ``--config`` < ``--field value`` flags."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file with any of the fields below")
    defaults = cls()
    for f in dataclasses.fields(cls):
        parser.add_argument(f"--{f.name}", default=argparse.SUPPRESS, metavar="VALUE",
                            help=f"(default: {getattr(defaults, f.name)!r})")
    args = vars(parser.parse_args(argv))
    path = args.pop("config", None)
    values: Dict[str, Any] = {}
    if path:
        with open(path, encoding="utf-8") as fh:
            values = yaml.safe_load(fh) or {}
        if not isinstance(values, dict):
            raise ValueError(f"--config {path}: expected a mapping of field: value")
    config = from_dict(cls, values)
    return from_dict(cls, args, base=config)


def save_config(config, path: os.PathLike) -> None:
    """Write ``config`` (a dataclass) as YAML, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    os.replace(tmp, path)


def resolve_locations(config: C) -> C:
    """``config`` with every ``data:...`` / ``pkg:...`` string field expanded to a path
    (:func:`sj_spikelm.data.paths.resolve_location`)."""
    from ..data.paths import resolve_location

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    changes = {k: resolve_location(v) for k, v in values.items()
               if isinstance(v, str) and v.startswith(("data:", "pkg:"))}
    return dataclasses.replace(config, **changes)
