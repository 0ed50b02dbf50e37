"""The Node-RED example flow (docs/node-red/edge-daemon-flow.json) subscribes the right way: JSON only where the
payload is JSON, plain text where it is text, every topic one the daemon publishes, every wire to a real node."""

from __future__ import annotations

import json
from pathlib import Path

from edge.mqtt.contract import topics

FLOW = Path(__file__).resolve().parents[3] / "docs" / "node-red" / "edge-daemon-flow.json"
JSON_TOPICS = {"classification", "stats", "event", "drift", "deployment"}  # availability, camera, label: text


def test_each_subscription_parses_its_payload_as_what_it_is() -> None:
    nodes = json.loads(FLOW.read_text())
    ids = {n["id"] for n in nodes}
    published = {t.rsplit("/", 1)[-1] for t in vars(topics("edge", "+")).values()}
    subs = [n for n in nodes if n["type"] == "mqtt in"]
    assert {n["topic"].rsplit("/", 1)[-1] for n in subs} == published  # every topic, none invented
    for n in subs:
        kind = n["topic"].rsplit("/", 1)[-1]
        assert n["topic"] == f"edge/+/{kind}" and n["broker"] in ids
        assert n["datatype"] == ("json" if kind in JSON_TOPICS else "utf8"), n
    for n in nodes:
        for outputs in n.get("wires", []):
            assert set(outputs) <= ids, n
