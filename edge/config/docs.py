"""The configuration written out: the effective config (`check-config`), the example file, the reference.

All three come from the schema (`edge.config.schema`), so the documentation cannot drift from the code:
`edge/config/default-config.toml` and the reference tables of `docs/configuration.md` are generated here and tests
compare them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edge.config.fields import table_list, toml_value, type_name
from edge.config.schema import Config, schema_fields
from edge.config.urls import redact_url


def _tables(cls: type, obj: Any, prefix: str) -> list[tuple[str, list[tuple[dataclasses.Field, Any, Any]]]]:
    """(TOML header, rows of (field, type, value)) for every table; arrays of tables as `[[name]]` (for the
    documentation, `obj` None: one with the defaults)."""
    rows, nested = [], []
    for f, tp in schema_fields(cls):
        value = getattr(obj, f.name) if obj is not None else f.default
        if (item := table_list(tp)) is not None:
            for each in value if obj is not None else (None,):
                nested += [(f"[[{prefix}{f.name}]]", r) for _, r in _tables(item, each, "")]
        elif dataclasses.is_dataclass(tp):
            nested += _tables(tp, value if obj is not None else None, f"{prefix}{f.name}.")
        else:
            rows.append((f, tp, value))
    return ([(f"[{prefix.rstrip('.')}]", rows)] if rows else []) + nested


def to_toml(cfg: Config) -> str:
    """The effective configuration as TOML, secrets redacted (only file paths shown, camera URLs masked)."""
    out = [f"# effective configuration from {cfg.source} (defaults and environment overrides applied)"]
    for header, rows in _tables(Config, cfg, ""):
        out.append(f"\n{header}")
        for f, _, value in rows:
            if value is None:
                out.append(f"# {f.name} = (not set)")
            elif header == "[camera]" and f.name == "source":
                out.append(f"{f.name} = {toml_value(redact_url(value))}")
            else:
                out.append(f"{f.name} = {toml_value(value)}")
    if cfg.password is not None:
        out.append("# password: <redacted> (read from password_file)")
    return "\n".join(out) + "\n"


def example_toml() -> str:
    """A commented config file with every key at its default (what `edge/config/default-config.toml` holds)."""
    out = [
        "# edge-daemon configuration. Every key is optional: the values shown are the defaults.",
        "# Check a file with: edge-daemon check-config /etc/edge-daemon/config.toml",
    ]
    for header, rows in _tables(Config, None, ""):
        out.append(f"\n{'# ' if header.startswith('[[') else ''}{header}")
        for f, _, value in rows:
            out.append(f"# {f.metadata['doc']}{_range(f)}")
            out.append(f"# {f.name} = (not set)" if value is None else f"# {f.name} = {toml_value(value)}")
    return "\n".join(out) + "\n"


def _range(f: dataclasses.Field) -> str:
    rules = f.metadata
    if "length" in rules:
        return f" ({rules['length']} numbers)" if "min" in rules else f" (at most {rules['length']})"
    if "min" in rules:
        return f" ({toml_value(rules['min'])} to {toml_value(rules['max'])})"
    if "choices" in rules and not isinstance(rules["choices"][0], str):
        return f" ({', '.join(toml_value(c) for c in rules['choices'])})"
    return ""


def reference_markdown() -> str:
    """The configuration reference as Markdown, a heading and a table per section, from the schema's descriptions
    (`docs/configuration.md` holds it between its `BEGIN reference` and `END reference` marks)."""
    out = []
    for header, rows in _tables(Config, None, ""):
        out += [f"\n### `{header}`\n", "| key | type | default | description |", "|---|---|---|---|"]
        for f, tp, value in rows:
            default = "(not set)" if value is None else f"`{toml_value(value)}`"
            doc = (f.metadata["doc"] + _range(f)).replace("|", "\\|")
            out.append(f"| `{f.name}` | {type_name(tp, short=True)} | {default} | {doc} |")
    return "\n".join(out).lstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.config.docs [--reference]`: the example config file (default) or the reference's Markdown."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(reference_markdown() if "--reference" in args else example_toml())
    return 0


if __name__ == "__main__":  # python -m edge.config.docs > edge/config/default-config.toml
    raise SystemExit(main())
