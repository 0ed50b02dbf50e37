"""Home Assistant discovery configs: keys HA knows, templates that render, and HA's own schema (when available)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from edge import __version__
from edge.inference.drift import DriftState
from edge.inference.postprocess import Prediction
from edge.mqtt.contract import classification_payload, drift_payload, topics
from edge.mqtt.discovery import (
    ENTITIES,
    SENSOR_KEYS,
    discovery_configs,
    ha_status_topic,
    label_options,
    node_id,
    retired_topics,
)
from tests.support.homeassistant import HA_MISSING, HA_PYTHON, HA_TOOLS


@pytest.mark.parametrize(
    ("device_id", "node"), [("pi1", "pi1"), ("pi.local", "pi_local"), ("Cam 3", "Cam_3"), ("a-b_c", "a-b_c")]
)
def test_node_id(device_id: str, node: str) -> None:
    assert node_id(device_id) == node


# -- Home Assistant discovery against HA's schema (homeassistant/components/mqtt: abbreviations.py, sensor.py,
# entity.py). Full key name -> HA's abbreviation, for every key HA's MQTT sensor accepts that we might use.
HA_SENSOR_KEYS = {
    "availability": "avty",
    "availability_mode": "avty_mode",
    "availability_template": "avty_tpl",
    "availability_topic": "avty_t",
    "device": "dev",
    "device_class": "dev_cla",
    "enabled_by_default": "en",
    "entity_category": "ent_cat",
    "expire_after": "exp_aft",
    "force_update": "frc_upd",
    "icon": "ic",
    "json_attributes_template": "json_attr_tpl",
    "json_attributes_topic": "json_attr_t",
    "name": "name",
    "object_id": "obj_id",
    "options": "ops",
    "origin": "o",
    "payload_off": "pl_off",
    "payload_on": "pl_on",
    "payload_available": "pl_avail",
    "payload_not_available": "pl_not_avail",
    "qos": "qos",
    "state_class": "stat_cla",
    "state_topic": "stat_t",
    "suggested_display_precision": "sug_dsp_prc",
    "unique_id": "uniq_id",
    "unit_of_measurement": "unit_of_meas",
    "value_template": "val_tpl",
}
HA_DEVICE_KEYS = {
    "configuration_url": "cu",
    "connections": "cns",
    "hw_version": "hw",
    "identifiers": "ids",
    "manufacturer": "mf",
    "model": "mdl",
    "model_id": "mdl_id",
    "name": "name",
    "serial_number": "sn",
    "suggested_area": "sa",
    "sw_version": "sw",
    "via_device": "via_device",
}
HA_ORIGIN_KEYS = {"name": "name", "sw_version": "sw", "support_url": "url"}
HA_AVAILABILITY_KEYS = {"topic": "t", "payload_available": "pl_avail", "payload_not_available": "pl_not_avail",
                        "value_template": "val_tpl"}  # fmt: skip
HA_STATE_CLASSES = {"measurement", "total", "total_increasing"}
HA_DURATION_UNITS = {"d", "h", "min", "s", "ms"}
OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


LABELS = ("cat", "dog", "bird")


def _configs(device_id: str = "pi.local") -> dict[str, dict]:
    return discovery_configs("homeassistant", "edge", device_id, model="tiny", device="edgetpu", labels=LABELS)


def _abbreviate(config: dict) -> dict:
    """The same config with HA's abbreviations, as a compact publisher could send it."""
    out = {}
    for key, value in config.items():
        if key == "device":
            value = {HA_DEVICE_KEYS[k]: v for k, v in value.items()}
        elif key == "origin":
            value = {HA_ORIGIN_KEYS[k]: v for k, v in value.items()}
        elif key == "availability":
            value = [{HA_AVAILABILITY_KEYS[k]: v for k, v in item.items()} for item in value]
        out[HA_SENSOR_KEYS[key]] = value
    return out


def test_discovery_topics_ids_and_required_keys() -> None:
    configs = _configs()
    platforms = {key: ENTITIES[key][0] for key in SENSOR_KEYS}
    assert set(configs) == {f"homeassistant/{platforms[key]}/pi_local_{key}/config" for key in SENSOR_KEYS}
    for topic in configs:
        assert OBJECT_ID.match(topic.split("/")[2]), topic
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    t = topics("edge", "pi.local")
    device_only = [{"topic": t.availability, "payload_available": "online", "payload_not_available": "offline"}]
    with_camera = [*device_only, {"topic": t.camera, "payload_available": "online", "payload_not_available": "offline"}]
    for key, config in zip(SENSOR_KEYS, configs.values(), strict=True):
        assert {"name", "unique_id", "state_topic", "device", "availability", "origin"} <= set(config)
        assert config["unique_id"] == f"edge_daemon_pi_local_{key}"  # kept across releases: HA keys history on it
        assert config["state_topic"] in (t.classification, t.stats, t.camera, t.drift)
        if key in ("label", "score"):  # the rule: unavailable while the device or the camera is offline
            assert (config["availability"], config["availability_mode"]) == (with_camera, "all")
        else:
            assert config["availability"] == device_only and "availability_mode" not in config
        assert config["device"]["identifiers"] == ["edge_daemon_pi_local"]
        assert (config["device"]["model"], config["device"]["hw_version"]) == ("tiny", "edgetpu")
        assert config["origin"] == {"name": "edge-daemon", "sw_version": __version__}
    label = configs["homeassistant/sensor/pi_local_label/config"]
    assert (label["device_class"], label["options"]) == ("enum", ["cat", "dog", "bird", "none", "unknown"])
    camera = configs["homeassistant/binary_sensor/pi_local_camera/config"]
    assert (camera["device_class"], camera["payload_on"], camera["payload_off"]) == ("connectivity", "online",
                                                                                      "offline")  # fmt: skip
    assert retired_topics("homeassistant", "pi.local") == ["homeassistant/sensor/pi_local_uptime/config"]


@pytest.mark.parametrize(("labels", "options"), [(("a", "none", "a"), ["a", "none", "unknown"]),
                                                 ((), ["none", "unknown"]),
                                                 (("unknown", "b"), ["unknown", "b", "none"])])  # fmt: skip
def test_label_options_once_each_with_none(labels, options) -> None:
    assert label_options(labels) == options


def test_discovery_keys_are_known_to_home_assistant() -> None:
    for topic, config in _configs().items():
        assert set(config) <= set(HA_SENSOR_KEYS), (topic, set(config) - set(HA_SENSOR_KEYS))
        # HA rejects unknown keys inside device/origin/availability (entity-level ones are silently dropped)
        assert set(config["device"]) <= set(HA_DEVICE_KEYS), topic
        assert set(config["origin"]) <= set(HA_ORIGIN_KEYS), topic
        for item in config["availability"]:
            assert set(item) <= set(HA_AVAILABILITY_KEYS), topic
        if "state_class" in config:
            assert config["state_class"] in HA_STATE_CLASSES
        if config.get("device_class") == "duration":
            assert config["unit_of_measurement"] in HA_DURATION_UNITS
        if config.get("entity_category") is not None:
            assert config["entity_category"] in ("diagnostic", "config")
        assert "options" not in config or config.get("device_class") == "enum"


@pytest.mark.parametrize(("full", "abbreviation"), sorted(HA_SENSOR_KEYS.items()))
def test_abbreviation_table_expands_back(full: str, abbreviation: str) -> None:
    """Our table agrees with HA's: expanding an abbreviated config gives back the full one."""
    config = next(iter(_configs().values()))
    abbreviated = _abbreviate(config)
    expand = {v: k for k, v in HA_SENSOR_KEYS.items()}
    assert {expand[k] for k in abbreviated} == set(config)
    assert expand[abbreviation] == full


def test_value_templates_render_against_real_payloads() -> None:
    """Render each entity's value_template with Jinja2 as HA does (value_json = the parsed payload)."""
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 not installed")
    env = jinja2.Environment()
    cls = classification_payload((Prediction(2, "bird", 0.8766),), reason="change", frame=7, inference_ms=12.5,
                                 model="tiny", timestamp=0, published_at=0, changed_at=1.5)  # fmt: skip
    empty = classification_payload((), reason="heartbeat", frame=8, inference_ms=11.0, model="tiny", timestamp=0,
                                   published_at=0, changed_at=None, unknown=True)  # fmt: skip
    drifting = drift_payload(DriftState("drifting", 0.41, 0.22, 0.3456, 900.0, 4500, 10.0), since=10.0, model="tiny")
    learning = drift_payload(DriftState("learning", None, 0.22, None, 900.0, 12, 0.0), since=0.0, model="tiny")
    stats = {"fps_classified": 9.5, "dropped": 3, "started_at": "2026-12-05T10:00:00.000000Z", "inference_ms_p50": 11.5}
    t = topics("edge", "pi1")
    expected = {
        "label": ("bird", "unknown"),  # empty: below its calibrated threshold
        "drift": ("ON", "None"),  # learning: HA's binary sensor shows unknown
        "unknown_rate": ("34.6", "None"),
        "score": ("87.7", "0.0"),
        "last_change": ("1970-01-01T00:00:01.500000Z", "None"),  # "None": HA's MQTT sensor shows unknown
        "inference_ms": ("11.5", "11.5"),  # the median over the stats interval
        "fps": ("9.5", "9.5"),
        "dropped": ("3", "3"),
        "started_at": ("2026-12-05T10:00:00.000000Z",) * 2,
    }
    for key, config in zip(SENSOR_KEYS, _configs("pi1").values(), strict=True):
        if "value_template" not in config:  # the camera's binary sensor takes the payload as it is
            assert key == "camera" and config["state_topic"] == t.camera
            continue
        template = env.from_string(config["value_template"])
        payloads = {t.classification: (cls, empty), t.drift: (drifting, learning)}.get(config["state_topic"],
                                                                                     (stats, stats))  # fmt: skip
        rendered = tuple(template.render(value_json=p) for p in payloads)
        assert rendered == expected[key], key


def test_ha_status_topic() -> None:
    assert ha_status_topic("homeassistant") == "homeassistant/status"


@pytest.mark.skipif(not HA_PYTHON, reason=HA_MISSING)
def test_discovery_passes_home_assistants_own_schema() -> None:
    """Full and abbreviated configs go through HA's abbreviation expansion and the MQTT sensor DISCOVERY_SCHEMA;
    a deliberately misspelt key and an unknown device key are caught the same way (so the check can fail)."""
    configs = _configs()
    payload = {f"full:{t}": c for t, c in configs.items()}
    payload.update({f"abbr:{t}": _abbreviate(c) for t, c in configs.items()})
    typo = dict(next(iter(configs.values())))
    typo["stat_tt"] = typo.pop("state_topic")
    payload["typo"] = typo
    payload["bad_device"] = {**typo, "state_topic": "x", "device": {**typo["device"], "colour": "red"}}
    script = HA_TOOLS / "ha_validate.py"
    out = subprocess.run(
        [HA_PYTHON, str(script)], input=json.dumps({"configs": payload}), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)
    for topic, config in configs.items():
        for variant in ("full", "abbr"):
            r = results[f"{variant}:{topic}"]
            assert r["ok"], (variant, topic, r["error"])
            assert r["dropped"] == [], (variant, topic)  # no key silently ignored
            assert r["expanded"] == config, (variant, topic)  # our abbreviation table agrees with HA's
    assert not results["typo"]["ok"] and "state_topic" in results["typo"]["error"]
    assert not results["bad_device"]["ok"] and "colour" in results["bad_device"]["error"]
