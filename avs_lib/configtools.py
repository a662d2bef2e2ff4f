"""Dataclass configs from nested dicts, YAML files and `a.b=c` strings, with errors that name the key.

Kept apart from `config.py`, so the generic mechanism (tested once) and the science read separately.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import reprlib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value that cannot be accepted; the message names the key."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without anchors and aliases (`&a`, `*a`: a few lines can expand to gigabytes,
    "billion laughs") or duplicate keys (silently resolved to the last value: a stale setting survives)."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            name = f"{'*' if isinstance(event, yaml.AliasEvent) else '&'}{event.anchor}"
            raise yaml.composer.ComposerError(None, None, f"{shorten(name)} on line {event.start_mark.line + 1}: "
                                              "anchors and aliases are not allowed in a config (write the value out)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges are resolved by SafeLoader, and overriding them is their use
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in lines:
                message = f"duplicate key {shorten(key)} on lines {lines[key]} and {line}"
                raise yaml.constructor.ConstructorError(None, None, message)
            lines[key] = line
        return super().construct_mapping(node, deep)


_QUOTED = 80  # characters of a user's value an error message quotes
_REPR = reprlib.Repr()  # bounded work too: a million-item list is not printed to be cut
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = _QUOTED


def shorten(value: Any) -> str:
    """`repr(value)` cut to 80 characters: an error quoting a pasted blob stays one readable line."""
    text = _REPR.repr(value)
    return text if len(text) <= _QUOTED else text[: _QUOTED - 3] + "..."


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check (and gently convert) one value against its field annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (arg for arg in args if arg is not type(None)):
            with contextlib.suppress(ConfigError):
                return _coerce(value, arg, key)
        raise ConfigError(f"{key}: {shorten(value)} does not match {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {shorten(value)} is not one of {list(args)}")
        return value
    if origin is tuple:  # the configs' tuples are all tuple[X, ...]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {shorten(value)}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {annotation.__name__} fields, got {shorten(value)}")
        return from_dict(annotation, value, prefix=f"{key}.")
    if annotation is float:
        # YAML 1.1 (PyYAML) reads `1e-4` (no dot) as a string, and learning rates are mostly written so.
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):
                return float(value)
        raise ConfigError(f"{key}: expected a number, got {shorten(value)}")
    if annotation in _SCALARS and type(value) is not annotation:  # exactly: True is no integer
        raise ConfigError(f"{key}: expected {_SCALARS[annotation]}, got {shorten(value)}")
    return value


_SCALARS = {bool: "true/false", int: "an integer", str: "a string"}
Rule = tuple[Callable[[Any], bool], str]  # (test of a value, what the value must be)


def check_fields(obj: Any, rules: dict[str, Rule]) -> None:
    """Raise a ValueError naming the first field of `obj` that fails its test, what it must be and what it is."""
    for name, (ok, expected) in rules.items():
        value = getattr(obj, name)
        if not ok(value):
            raise ValueError(f"{name} must be {expected}, got {shorten(value)}")


def at_least(low: float, optional: bool = False, strict: bool = False) -> Callable[[Any], bool]:
    """A test for `check_fields`: a finite number >= `low` (> with `strict`; or None if `optional`)."""
    def ok(value: Any) -> bool:
        if value is None:
            return optional
        number = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and math.isfinite(value)
        return number and (value > low if strict else value >= low)
    return ok


def one_of(choices: tuple) -> Rule:
    return (lambda value: value in choices), f"one of {choices}"


def check_at_most(obj: Any, limits: dict[str, tuple[int, str]]) -> None:
    """Raise a ValueError for the first field of `obj` above its limit, saying why the limit is there:
    upper bounds catch a slipped digit (`image_size=22400`) before it allocates, not after."""
    check_fields(obj, {name: (lambda value, limit=limit: value <= limit, f"at most {limit} ({why})")
                       for name, (limit, why) in limits.items()})


def from_dict(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from a (possibly partial) nested dict; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names, key=str)
    if unknown:
        raise ConfigError(f"unknown config key {shorten(prefix + str(unknown[0]))}; "
                          f"valid keys here: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in values.items()}
    try:
        obj = cls(**kwargs)  # dataclasses validate in __post_init__ or `validate`
        if hasattr(obj, "validate"):
            obj.validate()
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {err}") from err
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass as plain nested dicts/lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: {"optim": {"lr": 1}} -> {"optim.lr": 1}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_assignment(text: str) -> dict[str, Any]:
    """`'loss.crop_ce=1.0'` -> `{'loss': {'crop_ce': 1.0}}`; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {shorten(text)}: expected the form section.key=value")
    dotted, raw = text.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {shorten(text)}: empty key in {shorten(dotted)}")
    try:
        value: Any = yaml.load(raw, Loader=StrictLoader) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {shorten(text)}: the value {shorten(raw)} is not valid YAML "
                          f"({_first_line(err)})") from None
    return functools.reduce(lambda inner, key: {key: inner}, reversed(keys), value)  # a.b=v -> {a: {b: v}}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file; anything else is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as file:  # an open file lets the YAML marks name it
            data = yaml.load(file, Loader=StrictLoader)
    except yaml.YAMLError as err:  # syntax errors, and tags such as !!python/object
        raise ConfigError(f"{path}: not a valid YAML config ({_first_line(err)})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data or {}


def _first_line(err: Exception) -> str:
    """A YAML error on one line (PyYAML spreads the context and the mark over several)."""
    return " ".join(str(err).split())
