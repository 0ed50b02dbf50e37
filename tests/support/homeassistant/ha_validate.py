"""Validate discovery payloads with Home Assistant's own MQTT code (run by test_ha_schema.py under HA's Python).

Reads ``{"configs": {topic: payload}}`` as JSON on stdin and prints ``{topic: {"ok", "error", "dropped",
"expanded"}}``: each payload goes through HA's abbreviation expansion, origin check and the
DISCOVERY_SCHEMA of the entity's platform (`sensor`, `binary_sensor`: the topic's second level), as HA's
discovery does. ``dropped`` lists keys HA silently ignored (typos). Needs a Python with
``homeassistant`` installed (HA 2026.2.3 runs on Python 3.13); it does not import this project.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
import tempfile


async def validate(configs: dict[str, dict]) -> dict[str, dict]:
    import importlib

    from homeassistant.components.mqtt import discovery
    from homeassistant.core import HomeAssistant

    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)  # template validation needs a running instance and loop
        results = {}
        for topic, payload in configs.items():
            expanded = copy.deepcopy(payload)
            discovery._replace_all_abbreviations(expanded)
            result = {"ok": False, "error": None, "dropped": [], "expanded": expanded}
            if not discovery._valid_origin_info(expanded):
                result["error"] = "origin rejected"
            else:
                try:
                    platform = topic.split(":", 1)[-1].split("/")[1] if "/" in topic else "sensor"
                    schema = importlib.import_module(f"homeassistant.components.mqtt.{platform}").DISCOVERY_SCHEMA
                    validated = schema(copy.deepcopy(expanded))
                    result["ok"] = True
                    result["dropped"] = sorted(set(expanded) - set(validated))
                except Exception as exc:  # voluptuous.Invalid and friends: reported, not raised
                    result["error"] = f"{type(exc).__name__}: {exc}"
            results[topic] = result
        await hass.async_stop(force=True)
        return results


def main() -> int:
    configs = json.load(sys.stdin)["configs"]
    print(json.dumps(asyncio.run(validate(configs)), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
