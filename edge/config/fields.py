"""The schema's field types in words and as TOML: what the loader's messages and the generated docs share.

`type_name` names a field's type (`an integer`), `toml_value` writes a value as TOML, `table_list` finds an array of
tables (`[[regions]]`). Pure: the loader (`edge.config.load`) and the docs (`edge.config.docs`) both import it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

_TYPE_NAMES = {str: ("string", "a string"), int: ("integer", "an integer"), float: ("number", "a number"),
               bool: ("boolean", "true or false")}  # fmt: skip


def base_type(tp: Any) -> Any:
    """`str` for `str | None`, the type itself otherwise."""
    return next((a for a in typing.get_args(tp) if a is not type(None)), tp)


def is_optional(tp: Any) -> bool:
    """True for `X | None`."""
    return type(None) in typing.get_args(tp)


def table_list(tp: Any) -> Any:
    """The table type of an array of tables (`tuple[RegionConfig, ...]` -> RegionConfig), else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def number_list(tp: Any) -> bool:
    """True for a list of numbers (`tuple[float, ...]`: a region box)."""
    return typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (float,)


def string_list(tp: Any) -> bool:
    """True for a list of strings (`tuple[str, ...]`: `model.trusted_keys`)."""
    return typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (str,)


def type_name(tp: Any, short: bool = False) -> str:
    """`integer` / `an integer` ... for a schema field's type."""
    if number_list(tp):
        return "numbers" if short else "a list of numbers"
    if string_list(tp):
        return "strings" if short else "a list of strings"
    base = base_type(tp)
    return _TYPE_NAMES.get(base, (str(base), str(base)))[0 if short else 1]


def toml_value(value: Any) -> str:
    """A value written as TOML (`true`, `3`, `0.5`, `"text"`, `[0.1, 0.2]`)."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))
