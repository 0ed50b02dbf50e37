"""Loading the daemon's configuration: one TOML file checked against the schema, environment overrides, secrets.

The schema (types, defaults, ranges, descriptions) is `edge.config.schema`; the rules between fields are in
`edge.config.checks`; this module reads the file and builds the validated `Config`. Every error is one line
naming the file, the key path and the fix; unknown keys are rejected.

Environment variables override the file: `EDGE_<SECTION>__<KEY>` (nested tables add `__<KEY>`), e.g.
`EDGE_MQTT__HOST=broker.lan`, `EDGE_MQTT__TLS__ENABLED=true`. Relative paths are relative to the config
file's directory; secret files (`mqtt.password_file`, `mqtt.tls.key`) are looked up first in
`$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`). The password is read at load time into a `Secret`
whose repr never shows it; it is never logged and never printed by `check-config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.config.checks import check_password, check_text, cross_checks
from edge.config.fields import base_type, is_optional, number_list, string_list, table_list, toml_value, type_name
from edge.config.schema import Config, Secret, schema_fields
from edge.errors import EdgeError

__all__ = ["DEFAULT_PATH", "Config", "Secret", "config_from_dict", "load_config"]

DEFAULT_PATH = Path("/etc/edge-daemon/config.toml")
ENV_PREFIX = "EDGE_"
MAX_FILE_BYTES = 1 << 20  # a config file is a few kB; refuse to read a device or a huge file into memory


def _check_list(value: Any, f: dataclasses.Field, key: str) -> tuple[float, ...]:
    n = f.metadata["length"]
    if not isinstance(value, list) or len(value) != n:
        name = key.rsplit(".", 1)[-1]
        raise EdgeError(f"{key}: expected a list of {n} numbers, got {value!r:.80}; e.g. {name} = [0, 0, 0.5, 0.5]")
    return tuple(_check_value(v, float, f, f"{key}[{i}]") for i, v in enumerate(value))


def _check_strings(value: Any, f: dataclasses.Field, key: str) -> tuple[str, ...]:
    n, name = f.metadata["length"], key.rsplit(".", 1)[-1]
    if not isinstance(value, list) or len(value) > n:
        raise EdgeError(f"{key}: expected a list of at most {n} strings, got {value!r:.80}; e.g. {name} = "
                        '["/etc/edge-daemon/keys/a.pub"]')  # fmt: skip
    return tuple(_check_value(v, str, f, f"{key}[{i}]") for i, v in enumerate(value))


def _check_value(value: Any, tp: Any, f: dataclasses.Field, key: str) -> Any:
    """Type and rule check of one value; returns it normalised (int -> float, source int -> str)."""
    if number_list(tp):
        return _check_list(value, f, key)
    if string_list(tp):
        return _check_strings(value, f, key)
    base = base_type(tp)
    example = f.default if f.default not in (None, dataclasses.MISSING) else "..."
    if key == "camera.source" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    ok = (
        isinstance(value, bool)
        if base is bool
        else isinstance(value, int | float) and not isinstance(value, bool)
        if base is float
        else isinstance(value, base) and not isinstance(value, bool)
    )
    if not ok:
        raise EdgeError(
            f"{key}: expected {type_name(tp)}, got {value!r:.80}; write e.g. "
            f"{key.rsplit('.', 1)[-1]} = {toml_value(example)}"
        )
    rules = f.metadata
    if base is float:
        if not math.isfinite(value):
            raise EdgeError(f"{key}: {value} is not a finite number; use {rules['min']} to {rules['max']}")
        value = float(value)
    if "choices" in rules and value not in rules["choices"]:
        raise EdgeError(f"{key}: {value!r:.80} is not one of {', '.join(toml_value(c) for c in rules['choices'])}")
    if "min" in rules and value < rules["min"]:
        raise EdgeError(f"{key}: {value} is too small; use {rules['min']} to {rules['max']}")
    if "max" in rules and value > rules["max"]:
        raise EdgeError(f"{key}: {value:.6g} is too large; use {rules['min']} to {rules['max']}")
    if base is str:
        if value == "":
            raise EdgeError(f"{key}: must not be empty; remove the line to use the default")
        check_text(value, key, rules.get("mqtt"))
    return value


def _unknown(key: str, valid: list[str], origin: str = "") -> EdgeError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return EdgeError(f"{key:.200}{origin}: unknown key; {hint}valid keys here: {', '.join(valid)}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    """A validated dataclass instance from a TOML table; unknown keys and wrong types are errors."""
    fields_ = schema_fields(cls)
    names = [f.name for f, _ in fields_]
    for key in data:
        if key not in names:
            raise _unknown(f"{prefix}{key}", names)
    values = {}
    for f, tp in fields_:
        key = f"{prefix}{f.name}"
        if (item := table_list(tp)) is not None:
            tables = data.get(f.name, [])
            if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
                raise EdgeError(f"{key}: expected [[{key}]] tables, got {tables!r:.80}")
            values[f.name] = tuple(_build(item, t, f"{key}.{t.get('name', i + 1)}.") for i, t in enumerate(tables))
        elif f.metadata.get("required") and f.name not in data:
            raise EdgeError(f"{key}: required; give it (see the configuration reference)")
        elif dataclasses.is_dataclass(tp):
            table = data.get(f.name, {})
            if not isinstance(table, dict):
                raise EdgeError(f"{key}: expected a table [{key}], got {table!r:.80}")
            values[f.name] = _build(tp, table, f"{key}.")
        elif f.name in data and not (data[f.name] is None and is_optional(tp)):
            values[f.name] = _check_value(data[f.name], tp, f, key)
    return cls(**values)


def _parse_env(text: str, tp: Any, var: str) -> Any:
    base = base_type(tp)
    if text == "" and is_optional(tp):
        return None
    try:
        if base is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text.lower()]
        return base(text)
    except (KeyError, ValueError):
        raise EdgeError(f"{var}: expected {type_name(tp)}, got {text!r:.80}; fix the environment variable") from None


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Merge `EDGE_SECTION__KEY` overrides into the raw TOML data."""
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        cls, table, tp = Config, data, None
        for i, part in enumerate(parts):
            fields_ = dict((f.name, t) for f, t in schema_fields(cls))
            if part not in fields_:
                raise _unknown(".".join(parts[: i + 1]), list(fields_), f" (from {var})")
            tp = fields_[part]
            if table_list(tp) is not None or string_list(tp):
                raise EdgeError(f"{var}: lists and [[{part}]] tables cannot be set from the environment; write them "
                                "in the file")  # fmt: skip
            if dataclasses.is_dataclass(tp) and i < len(parts) - 1:
                table = table.setdefault(part, {})
                if not isinstance(table, dict):
                    raise EdgeError(f"{'.'.join(parts[: i + 1])}: expected a table, got {table!r:.80}")
                cls = tp
            elif i < len(parts) - 1 or dataclasses.is_dataclass(tp):
                raise EdgeError(f"{var}: {'.'.join(parts)} is not a single setting; name one key of it")
        table[parts[-1]] = _parse_env(environ[var], tp, var)


def _resolve(path: str, base: Path, environ: Mapping[str, str], secret: bool) -> Path:
    p = Path(path).expanduser()
    creds = environ.get("CREDENTIALS_DIRECTORY")
    if secret and creds and not p.is_absolute() and (Path(creds) / p).exists():
        return Path(creds) / p
    return p if p.is_absolute() else base / p


def _readable(value: str, base: Path, environ: Mapping[str, str], f: dataclasses.Field, key: str) -> str:
    p = _resolve(value, base, environ, bool(f.metadata.get("secret")))
    if not p.is_file() or not os.access(p, os.R_OK):
        where = " (looked in $CREDENTIALS_DIRECTORY first)" if f.metadata.get("secret") else ""
        raise EdgeError(f"{key}: cannot read file {p}{where}; fix the path or the file's permissions")
    return str(p)


def _resolve_paths(obj: Any, base: Path, environ: Mapping[str, str], prefix: str) -> Any:
    """Relative paths made absolute; every file the config names must exist and be readable."""
    changes = {}
    for f, tp in schema_fields(type(obj)):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if table_list(tp) is not None:
            changes[f.name] = tuple(_resolve_paths(v, base, environ, f"{key}.{v.name}.") for v in value)
        elif dataclasses.is_dataclass(tp):
            changes[f.name] = _resolve_paths(value, base, environ, f"{key}.")
        elif f.metadata.get("path") and string_list(tp):
            changes[f.name] = tuple(_readable(v, base, environ, f, f"{key}[{i}]") for i, v in enumerate(value))
        elif f.metadata.get("path") and value is not None:
            changes[f.name] = _readable(value, base, environ, f, key)
    return dataclasses.replace(obj, **changes)


def _read_password(path: str) -> Secret:
    key = "mqtt.password_file"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        text = data.decode("utf-8").rstrip("\r\n")
    except (UnicodeDecodeError, OSError) as e:
        raise EdgeError(f"{key}: cannot read {path} ({e.__class__.__name__}); fix the file") from None
    if len(data) > MAX_FILE_BYTES:
        raise EdgeError(f"{key}: {path} is over {MAX_FILE_BYTES} bytes; it should hold only the password")
    check_password(text, key)
    return Secret(text, path)


def config_from_dict(
    data: Mapping[str, Any], *, base: Path | None = None, environ: Mapping[str, str] | None = None, source: str = ""
) -> Config:
    """Validate raw config data (as parsed from TOML) plus environment overrides into a `Config`.

    `base`: the directory relative paths are relative to (default: the current one); `environ`: for `EDGE_*`
    overrides and `CREDENTIALS_DIRECTORY` (default: os.environ); `source`: the file, named in errors.

    Raises:
        EdgeError: one line naming the source, the key path (or environment variable) and the fix.
    """
    environ = os.environ if environ is None else environ
    base = Path.cwd() if base is None else base
    try:
        raw = json.loads(json.dumps(data, default=str))  # a deep copy the overrides may change
        _apply_env(raw, environ)
        cfg = _build(Config, raw, "")
        cfg = _resolve_paths(cfg, base, environ, "")
        cfg = cross_checks(cfg, base, environ)
        if cfg.mqtt.password_file:
            cfg = dataclasses.replace(cfg, password=_read_password(cfg.mqtt.password_file))
    except EdgeError as e:
        raise EdgeError(f"{source}: {e}" if source else str(e)) from None
    except RecursionError:
        raise EdgeError(f"{source or 'config'}: tables nested too deeply; the configuration has two levels") from None
    return dataclasses.replace(cfg, source=source or "<defaults>")


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve the daemon's TOML config file.

    Args:
        path: the TOML file.
        environ: environment for overrides and `CREDENTIALS_DIRECTORY` (default: os.environ).

    Raises:
        EdgeError: one line naming the file, the key path and the fix.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise EdgeError(f"{path}: is a directory; give the config file")
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise EdgeError(f"{path}: over {MAX_FILE_BYTES} bytes; a config file is a few kB: give the right file")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise EdgeError(f"{path}: config file not found; create it (see edge/config/default-config.toml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeError(f"{path}: cannot read config ({e.__class__.__name__}: {e}); fix the file") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgeError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    except RecursionError:
        raise EdgeError(f"{path}: tables or arrays nested too deeply; the configuration has two levels") from None
    return config_from_dict(data, base=path.resolve().parent, environ=environ, source=str(path))

