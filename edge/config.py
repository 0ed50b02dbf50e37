"""Loading the daemon's configuration: one TOML file checked against the schema, environment overrides, secrets.

The schema (types, defaults, descriptions, rules) is `edge.config_schema`; this module does the I/O and the
checks: unknown keys are rejected, every error is one line naming the key path and the fix.

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
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.config_schema import (
    Config,
    Secret,
    default_device_id,
    schema_fields,
)
from edge.errors import EdgeError

__all__ = ["DEFAULT_PATH", "Config", "Secret", "config_from_dict", "load_config", "to_toml"]

DEFAULT_PATH = Path("/etc/edge-daemon/config.toml")
ENV_PREFIX = "EDGE_"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


# -- loading ------------------------------------------------------------------------------------------------------


_TYPE_NAMES = {str: ("string", "a string"), int: ("integer", "an integer"), float: ("number", "a number"),
               bool: ("boolean", "true or false")}  # fmt: skip


def _base(tp: Any) -> Any:
    """`str` for `str | None`, the type itself otherwise."""
    return next((a for a in typing.get_args(tp) if a is not type(None)), tp)


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _type_name(tp: Any, short: bool = False) -> str:
    base = _base(tp)
    return _TYPE_NAMES.get(base, (str(base), str(base)))[0 if short else 1]


def _check_value(value: Any, tp: Any, f: dataclasses.Field, key: str) -> Any:
    """Type and rule check of one value; returns it normalised (int -> float, source int -> str)."""
    base = _base(tp)
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
            f"{key}: expected {_type_name(tp)}, got {value!r}; write e.g. {key.rsplit('.', 1)[-1]} = {_toml(example)}"
        )
    if base is float:
        value = float(value)
    rules = f.metadata
    if "choices" in rules and value not in rules["choices"]:
        raise EdgeError(f"{key}: {value!r} is not one of {', '.join(_toml(c) for c in rules['choices'])}")
    if "min" in rules and value < rules["min"]:
        raise EdgeError(f"{key}: {value} is too small; use at least {rules['min']}")
    if "max" in rules and value > rules["max"]:
        raise EdgeError(f"{key}: {value} is too large; use at most {rules['max']}")
    if base is str and value == "":
        raise EdgeError(f"{key}: must not be empty; remove the line to use the default")
    return value


def _unknown(key: str, valid: list[str], origin: str = "") -> EdgeError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return EdgeError(f"{key}{origin}: unknown key; {hint}valid keys here: {', '.join(valid)}")


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
        if dataclasses.is_dataclass(tp):
            table = data.get(f.name, {})
            if not isinstance(table, dict):
                raise EdgeError(f"{key}: expected a table [{key}], got {table!r}")
            values[f.name] = _build(tp, table, f"{key}.")
        elif f.name in data and not (data[f.name] is None and _optional(tp)):
            values[f.name] = _check_value(data[f.name], tp, f, key)
    return cls(**values)


def _parse_env(text: str, tp: Any, var: str) -> Any:
    base = _base(tp)
    if text == "" and _optional(tp):
        return None
    try:
        if base is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text.lower()]
        return base(text)
    except (KeyError, ValueError):
        raise EdgeError(f"{var}: expected {_type_name(tp)}, got {text!r}; fix the environment variable") from None


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
            if dataclasses.is_dataclass(tp) and i < len(parts) - 1:
                table = table.setdefault(part, {})
                if not isinstance(table, dict):
                    raise EdgeError(f"{'.'.join(parts[: i + 1])}: expected a table, got {table!r}")
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


def _resolve_paths(obj: Any, base: Path, environ: Mapping[str, str], prefix: str) -> Any:
    """Relative paths made absolute; every file the config names must exist and be readable."""
    changes = {}
    for f, tp in schema_fields(type(obj)):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            changes[f.name] = _resolve_paths(value, base, environ, f"{key}.")
        elif f.metadata.get("path") and value is not None:
            p = _resolve(value, base, environ, bool(f.metadata.get("secret")))
            if not p.is_file() or not os.access(p, os.R_OK):
                where = " (looked in $CREDENTIALS_DIRECTORY first)" if f.metadata.get("secret") else ""
                raise EdgeError(f"{key}: cannot read file {p}{where}; fix the path or the file's permissions")
            changes[f.name] = str(p)
    return dataclasses.replace(obj, **changes)


def _cross_checks(cfg: Config, base: Path) -> Config:
    cam, m = cfg.camera, cfg.mqtt
    src = cam.source.strip()
    if not (src.isdigit() or src.startswith("/dev/") or _URL.match(src)):
        p = Path(src).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise EdgeError(
                f"camera.source: {p} is not a file; give a V4L2 index, /dev/videoN, an rtsp:// or http:// URL "
                "or an existing video file"
            )
        cam = dataclasses.replace(cam, source=str(p))
    if cam.reconnect_min_s > cam.reconnect_max_s:
        raise EdgeError("camera.reconnect_min_s: larger than camera.reconnect_max_s; make it smaller or equal")
    if (cam.width == 0) != (cam.height == 0):
        raise EdgeError("camera.width/height: give both or neither (0 = the camera's default)")
    tls = m.tls
    if not tls.enabled and (tls.ca or tls.cert or tls.key or tls.insecure):
        raise EdgeError("mqtt.tls: ca/cert/key/insecure are set but mqtt.tls.enabled is false; set enabled = true")
    if bool(tls.cert) != bool(tls.key):
        raise EdgeError("mqtt.tls.cert/key: a client certificate needs both cert and key; give both or neither")
    if m.password_file and not m.username:
        raise EdgeError("mqtt.password_file: set, but mqtt.username is not; give the user name too")
    for key, value in (("mqtt.topic_prefix", m.topic_prefix), ("homeassistant.prefix", cfg.homeassistant.prefix)):
        if any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
            raise EdgeError(f'{key}: {value!r} may not contain + or # nor start/end with /; e.g. {key} = "edge"')
    device_id = m.device_id or default_device_id()
    if not _DEVICE_ID.match(device_id):
        raise EdgeError(f"mqtt.device_id: {device_id!r} may only contain letters, digits, '_', '-', '.'")
    return dataclasses.replace(cfg, camera=cam, mqtt=dataclasses.replace(m, device_id=device_id))


def redact_url(source: str) -> str:
    """The source with a password in its URL replaced by `***` (`rtsp://admin:***@cam/stream`), for logs."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", source, flags=re.IGNORECASE)


def config_from_dict(
    data: Mapping[str, Any], *, base: Path | None = None, environ: Mapping[str, str] | None = None, source: str = ""
) -> Config:
    """Validate raw config data (as parsed from TOML) plus environment overrides into a `Config`.

    Args:
        data: the TOML document as a dict.
        base: directory relative paths are relative to (default: the current directory).
        environ: environment for `EDGE_*` overrides and `CREDENTIALS_DIRECTORY` (default: os.environ).
        source: a name for the data in error messages (the config file).

    Raises:
        EdgeError: one line naming the key path (or environment variable) and the fix.
    """
    environ = os.environ if environ is None else environ
    base = Path.cwd() if base is None else base
    raw = json.loads(json.dumps(data, default=str))  # a deep copy the overrides may change
    try:
        _apply_env(raw, environ)
        cfg = _build(Config, raw, "")
        cfg = _resolve_paths(cfg, base, environ, "")
        cfg = _cross_checks(cfg, base)
        if cfg.mqtt.password_file:
            text = Path(cfg.mqtt.password_file).read_text(errors="strict").rstrip("\r\n")
            if not text:
                raise EdgeError(f"mqtt.password_file: {cfg.mqtt.password_file} is empty; write the password in it")
            cfg = dataclasses.replace(cfg, password=Secret(text, cfg.mqtt.password_file))
    except EdgeError as e:
        raise EdgeError(f"{source}: {e}" if source else str(e)) from None
    except (UnicodeDecodeError, OSError) as e:
        raise EdgeError(f"{source}: mqtt.password_file: cannot read ({e.__class__.__name__}); fix the file") from None
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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeError(f"{path}: config file not found; create it (see edge/default-config.toml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeError(f"{path}: cannot read config ({e.__class__.__name__}: {e}); fix the file") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgeError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    return config_from_dict(data, base=path.resolve().parent, environ=environ, source=str(path))


# -- output: effective config, example file, reference ---------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _tables(cls: type, obj: Any, prefix: str) -> list[tuple[str, list[tuple[dataclasses.Field, Any, Any]]]]:
    rows, nested = [], []
    for f, tp in schema_fields(cls):
        value = getattr(obj, f.name) if obj is not None else f.default
        if dataclasses.is_dataclass(tp):
            nested += _tables(tp, value if obj is not None else None, f"{prefix}{f.name}.")
        else:
            rows.append((f, tp, value))
    return ([(prefix.rstrip("."), rows)] if rows else []) + nested


def to_toml(cfg: Config) -> str:
    """The effective configuration as TOML, secrets redacted (only file paths shown)."""
    out = [f"# effective configuration from {cfg.source} (defaults and environment overrides applied)"]
    for name, rows in _tables(Config, cfg, ""):
        out.append(f"\n[{name}]")
        for f, _, value in rows:
            if value is None:
                out.append(f"# {f.name} = (not set)")
            elif name == "camera" and f.name == "source":
                out.append(f"{f.name} = {_toml(redact_url(value))}")
            else:
                out.append(f"{f.name} = {_toml(value)}")
    if cfg.password is not None:
        out.append("# password: <redacted> (read from password_file)")
    return "\n".join(out) + "\n"


def example_toml() -> str:
    """A commented config file with every key at its default (what `edge/default-config.toml` holds)."""
    out = [
        "# edge-daemon configuration. Every key is optional: the values shown are the defaults.",
        "# Check a file with: edge-daemon check-config /etc/edge-daemon/config.toml",
    ]
    for name, rows in _tables(Config, None, ""):
        out.append(f"\n[{name}]")
        for f, _, value in rows:
            out.append(f"# {f.metadata['doc']}")
            out.append(f"# {f.name} = (not set)" if value is None else f"# {f.name} = {_toml(value)}")
    return "\n".join(out) + "\n"


def reference_markdown() -> str:
    """The configuration reference as Markdown tables, one per section, from the schema's descriptions."""
    out = []
    for name, rows in _tables(Config, None, ""):
        out += [f"\n`[{name}]`\n", "| key | type | default | description |", "|---|---|---|---|"]
        for f, tp, value in rows:
            default = "(not set)" if value is None else f"`{_toml(value)}`"
            doc = f.metadata["doc"].replace("|", "\\|")
            out.append(f"| `{f.name}` | {_type_name(tp, short=True)} | {default} | {doc} |")
    return "\n".join(out).lstrip("\n") + "\n"


if __name__ == "__main__":  # python -m edge.config [--reference] > edge/default-config.toml
    import sys

    sys.stdout.write(reference_markdown() if "--reference" in sys.argv else example_toml())
