"""Typed, validated construction of config dataclasses from plain mappings.

Job files are YAML; each section becomes a dataclass. :func:`build` refuses an
unknown key or a value of the wrong type with a message that names the file
and the dotted key, and lists what would be right.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def _at(where: str, key: str) -> str:
    """``file: a.b`` names: the first key follows the file, the rest nest."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def build(cls: type[T], data: Any, where: str) -> T:
    """Builds dataclass ``cls`` from ``data``, checking every key and type.

    Args:
        cls: A dataclass type; nested dataclass fields are built recursively.
        data: A mapping (None means all defaults).
        where: How to name this mapping in errors: the file for the top
            level (``"jobs/demo.yaml"``), then ``"jobs/demo.yaml: search"``.

    Raises:
        ValueError: naming the key, the bad value and what is allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys: "
            f"{', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {
        name: _convert(hints[name], value, _at(where, name))
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except ValueError as error:  # a range check of the dataclass, "key: ..."
        raise ValueError(_at(where, str(error))) from error
    except TypeError as error:  # a required key is missing
        missing = [
            n
            for n, f in fields.items()
            if n not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ValueError(f"{where}: missing required key {missing[0]!r}") from error
        raise


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0])
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ValueError(f"{where}: {value!r} is not one of {allowed}")
        return value
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported field type {hint!r}")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested mappings merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_range(
    obj: Any,
    *names: str,
    minimum: float,
    strict: bool = False,
) -> None:
    """Refuses fields of ``obj`` below ``minimum`` (or equal, if ``strict``).

    None values pass (they mean "not set"). Messages start with the field
    name, so that :func:`build` can prefix the file and the section.
    """
    for name in names:
        value = getattr(obj, name)
        if value is None:
            continue
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be a finite number, got {value}")
        if value <= minimum if strict else value < minimum:
            relation = "greater than" if strict else "at least"
            raise ValueError(f"{name}: must be {relation} {minimum:g}, got {value}")
