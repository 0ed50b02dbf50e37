"""Home Assistant MQTT discovery as a pure function: one retained config per entity of this device.

`edge.mqtt.publisher` sends `discovery_configs()` on every connect, when Home Assistant announces `online` on
`{ha_prefix}/status` (coalesced: a flood of announcements sends them once), and after a model reload.
The value templates read the payloads of `edge.mqtt.contract`, whose keys the tests check against these.

Availability rule: every entity is unavailable while the device is `offline`; the Label and Score entities
are also unavailable while the camera is `offline` (`availability_mode: all` over both topics), so a
dashboard never shows a label the device is not seeing any more. With regions of interest, the
classification and drift entities (Label, Score, Last change, Model drift, Unknown rate) exist once per region,
named after it; the others once. Model drift is `on` while the stream's drift state is `drifting`, `off` while
`ok`, unknown while `learning` or `unavailable`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from edge import __version__
from edge.mqtt.contract import NO_LABEL, PAYLOAD_OFFLINE, PAYLOAD_ONLINE, UNKNOWN_LABEL, stream_topics, topics

ORIGIN_NAME = "edge-daemon"
_NOT_NODE_ID = re.compile(r"[^a-zA-Z0-9_-]")
_DIAGNOSTIC = {"entity_category": "diagnostic"}

# key -> (platform, name, state topic, value template, extra config, needs the camera). The unique ids
# (`edge_daemon_<node>_<key>`) are kept across releases: Home Assistant keeps an entity's id and history by them.
ENTITIES: dict[str, tuple[str, str, str, str | None, dict, bool]] = {
    "label": ("sensor", "Label", "classification",
              "{{ value_json.label if value_json.label is not none else ('" + UNKNOWN_LABEL + "' if value_json.unknown "
              "else '" + NO_LABEL + "') }}",
              {"device_class": "enum", "icon": "mdi:label-outline", "json_attributes_topic": None}, True),
    "score": ("sensor", "Score", "classification", "{{ (value_json.score * 100) | round(1) }}",
              {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent"}, True),
    "last_change": ("sensor", "Last change", "classification", "{{ value_json.changed_at }}",
                    {"device_class": "timestamp", "icon": "mdi:swap-horizontal"}, False),
    "drift": ("binary_sensor", "Model drift", "drift",
              "{{ 'ON' if value_json.state == 'drifting' else ('OFF' if value_json.state == 'ok' else 'None') }}",
              {"device_class": "problem", "json_attributes_topic": None}, False),
    "unknown_rate": ("sensor", "Unknown rate", "drift",
                     "{{ (value_json.unknown_rate * 100) | round(1) if value_json.unknown_rate is not none "
                     "else 'None' }}", {"unit_of_measurement": "%", "state_class": "measurement",
                                        "icon": "mdi:help-circle-outline"}, False),
    "camera": ("binary_sensor", "Camera", "camera", None,
               {"device_class": "connectivity", "payload_on": PAYLOAD_ONLINE, "payload_off": PAYLOAD_OFFLINE}, False),
    "inference_ms": ("sensor", "Inference time", "stats", "{{ value_json.inference_ms_p50 }}",
                     {"unit_of_measurement": "ms", "device_class": "duration", "state_class": "measurement",
                      **_DIAGNOSTIC}, False),
    "fps": ("sensor", "Classified FPS", "stats", "{{ value_json.fps_classified }}",
            {"unit_of_measurement": "fps", "state_class": "measurement", **_DIAGNOSTIC}, False),
    "dropped": ("sensor", "Dropped MQTT messages", "stats", "{{ value_json.dropped }}",
                {"state_class": "total_increasing", "icon": "mdi:message-alert", **_DIAGNOSTIC}, False),
    "started_at": ("sensor", "Started", "stats", "{{ value_json.started_at }}",
                   {"device_class": "timestamp", "icon": "mdi:restart", **_DIAGNOSTIC}, False),
}  # fmt: skip
SENSOR_KEYS: tuple[str, ...] = tuple(ENTITIES)
RETIRED = (("sensor", "uptime"),)  # entities of earlier releases; their configs are cleared, so HA removes them


def node_id(device_id: str) -> str:
    """The device id made safe for discovery topics and unique ids (only ``[a-zA-Z0-9_-]``)."""
    return _NOT_NODE_ID.sub("_", device_id)


def ha_status_topic(ha_prefix: str) -> str:
    """Where Home Assistant announces ``online``/``offline`` (discovery is re-sent on ``online``)."""
    return f"{ha_prefix}/status"


def config_topic(ha_prefix: str, platform: str, device_id: str, key: str) -> str:
    """`{ha_prefix}/{platform}/{node}_{key}/config`."""
    return f"{ha_prefix}/{platform}/{node_id(device_id)}_{key}/config"


def retired_topics(ha_prefix: str, device_id: str) -> list[str]:
    """Config topics of entities earlier releases created; an empty retained payload removes them from HA."""
    return [config_topic(ha_prefix, platform, device_id, key) for platform, key in RETIRED]


def label_options(labels: Sequence[str]) -> list[str]:
    """The Label entity's `options`: the model's labels, once each, plus `none` (nothing above the threshold) and
    `unknown` (below the class's calibrated threshold)."""
    return list(dict.fromkeys([*labels, NO_LABEL, UNKNOWN_LABEL]))


def discovery_configs(ha_prefix: str, topic_prefix: str, device_id: str, *, model: str, device: str,
                      labels: Sequence[str] = (),
                      regions: Sequence[tuple[str, Sequence[str]]] = ()) -> dict[str, dict]:  # fmt: skip
    """Home Assistant MQTT discovery: {config topic: config payload} for every entity of this device.

    All entities belong to one HA device named after `device_id` (model = the loaded model, hardware version =
    `cpu`/`edgetpu`). Full key names are used (HA also accepts abbreviations such as ``stat_t``).

    Args:
        ha_prefix: Home Assistant's discovery prefix (default ``homeassistant``).
        topic_prefix: this daemon's topic prefix.
        device_id: this device's id.
        model: the loaded model's name; device: ``cpu`` or ``edgetpu``.
        labels: the model's labels (the Label entity's options).
        regions: (name, labels) of each region of interest; none: the whole frame.
    """
    t = topics(topic_prefix, device_id)
    node = node_id(device_id)
    streams = [(r, stream_topics(topic_prefix, device_id, r), lbls) for r, lbls in regions] or [
        (None, stream_topics(topic_prefix, device_id), labels)]  # fmt: skip
    state_topics = {"stats": t.stats, "camera": t.camera}
    ha_device = {"identifiers": [f"edge_daemon_{node}"], "name": device_id, "manufacturer": "edge-daemon",
                 "model": model, "hw_version": device, "sw_version": __version__}  # fmt: skip
    origin = {"name": ORIGIN_NAME, "sw_version": __version__}

    def availability(topic: str) -> dict:
        return {"topic": topic, "payload_available": PAYLOAD_ONLINE, "payload_not_available": PAYLOAD_OFFLINE}

    configs: dict[str, dict] = {}
    for entity, (platform, name, source, template, extra, needs_camera) in ENTITIES.items():
        per_stream = source in ("classification", "drift")
        for region, stream, stream_labels in streams if per_stream else [(None, None, ())]:
            key = f"{region}_{entity}" if region else entity
            state_topic = getattr(stream, source) if stream else state_topics[source]
            config: dict = {"name": f"{region} {name}" if region else name, "unique_id": f"edge_daemon_{node}_{key}",
                            "state_topic": state_topic}  # fmt: skip
            if template is not None:
                config["value_template"] = template
            config["availability"] = [availability(t.availability)]
            if needs_camera:
                config["availability"].append(availability(t.camera))
                config["availability_mode"] = "all"
            config.update(device=ha_device, origin=origin)
            config.update({k: (state_topic if v is None else v) for k, v in extra.items()})
            if extra.get("device_class") == "enum":
                config["options"] = label_options(stream_labels)
            configs[config_topic(ha_prefix, platform, device_id, key)] = config
    return configs
