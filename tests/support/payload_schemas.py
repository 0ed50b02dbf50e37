"""The MQTT payload JSON Schemas of `edge/mqtt/schemas/`, applied to real messages: `check_message(topic, payload)`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "edge" / "mqtt" / "schemas"
KINDS = ("classification", "stats", "event", "drift", "deployment")  # topic suffix = schema name; the others: text


@cache
def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def check_message(topic: str, payload: bytes) -> str | None:
    """Validate one message the daemon published under `{prefix}/{device}/...`; returns its kind (None: not ours).

    Raises:
        AssertionError: the payload does not match its schema (the message names topic and error).
    """
    if topic.startswith("homeassistant/"):
        return None
    kind = topic.rsplit("/", 1)[-1]
    if kind in ("availability", "camera"):
        assert payload in (b"online", b"offline"), (topic, payload)
        return kind
    if kind == "label":  # plain text: a label or "none"
        assert payload and b"\n" not in payload, (topic, payload)
        return kind
    assert kind in KINDS, f"unexpected topic {topic}"
    document = json.loads(payload)
    errors = sorted(validator(kind).iter_errors(document), key=lambda e: e.path)
    assert not errors, f"{topic}: {errors[0].message} at {list(errors[0].path)} in {document}"
    return f"{kind}:{document['event']}" if kind == "event" else kind
