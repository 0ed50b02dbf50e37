"""The JSON Schemas of `edge/mqtt/schemas/` are well-formed, and every payload of a real `edge-daemon run` matches them.

The run goes through every payload kind: classifications, stats, and each event (camera_connected,
camera_lost, model_reloaded, model_reload_failed), from a real MJPEG stream to a real mosquitto.
`test_daemon.py` also checks every message of its own runs against the schemas.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.edge.service.test_daemon import DEV, config
from tests.support.media import MjpegServer
from tests.support.payload_schemas import KINDS, SCHEMAS, check_message


def _properties(schema: dict) -> list[tuple[str, dict]]:
    """Every (name, property schema) of an object schema, nested objects and oneOf branches included."""
    out = []
    for branch in schema.get("oneOf", [schema]):
        for name, prop in branch.get("properties", {}).items():
            out.append((name, prop))
            out += _properties(prop.get("items", {})) + _properties(prop)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_schema_documents_every_property(kind: str) -> None:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["description"]
    for branch in schema.get("oneOf", [schema]):
        assert branch["additionalProperties"] is False and set(branch["required"]) <= set(branch["properties"])
        for name in set(branch["properties"]) - set(branch["required"]):  # optional keys say when they are there
            assert "(only with" in branch["properties"][name]["description"], name
    for name, prop in _properties(schema):
        assert prop.get("description"), f"{kind}: property {name} has no description"


def test_every_payload_of_a_real_run_matches_its_schema(
    mosquitto, subscriber_factory, daemon_factory, demo_model, coral_model, fm_images, tmp_path: Path
) -> None:
    model = tmp_path / "model.tflite"
    shutil.copy(demo_model, model)
    server = MjpegServer(fm_images, fps=15).start()
    sub = subscriber_factory(mosquitto, [f"edge/{DEV}/#"])
    d = daemon_factory(config(tmp_path, mosquitto, model, server.url, camera={"max_rate": 5.0}))
    try:
        seen = lambda: {check_message(m.topic, m.payload) for m in sub.received()}  # noqa: E731
        sub.wait_for(lambda ms: {"classification", "stats", "event:camera_connected"} <= seen(), 20)
        d.send(signal.SIGHUP)  # the same model again: reloaded
        sub.wait_for(lambda ms: "event:model_reloaded" in seen(), 10)
        (tmp_path / "incoming").write_bytes(b"not a model")
        os.replace(tmp_path / "incoming", model)
        d.send(signal.SIGHUP)
        sub.wait_for(lambda ms: "event:model_reload_failed" in seen(), 10)
        server.stop()
        sub.wait_for(lambda ms: "event:camera_lost" in seen(), 10)
        assert d.stop()[0] == 0
        sub.wait_for(lambda ms: ms[-1].topic.endswith("/availability") and ms[-1].payload == b"offline", 5)
        assert seen() >= {"availability", "classification", "stats", "event:camera_connected", "event:camera_lost",
                          "event:model_reloaded", "event:model_reload_failed"}  # fmt: skip
    finally:
        server.stop()
