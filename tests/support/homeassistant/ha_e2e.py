"""A minimal Home Assistant core with only its MQTT integration, connected to a test broker (run by a test).

Usage: ``ha_e2e.py PORT [TOPIC]`` under a Python with ``homeassistant`` installed. Each line read on stdin is a
JSON object ``{entity_id: expected state}`` (``"*"``: any state but unknown/unavailable); it waits until every
entity named has that state and prints one JSON line ``{entity_id: {"state", "attributes"}}`` of all sensor and
binary_sensor entities, or ``{"timeout": <those states>}`` after TIMEOUT_S. The line ``"log"`` prints
``{"log": [...]}`` and starts a new log: every sensor state change HA made (``{"t", "entity", "old", "new"}``,
`t` in `time.monotonic()`, the clock of every process on this machine) and, with TOPIC (an MQTT filter), every
message HA received on it (``{"t", "topic", "payload"}``), in the order HA saw them. Does not import this project.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

TIMEOUT_S = 30.0


def sensor_states(hass) -> dict[str, dict]:
    return {
        s.entity_id: {"state": s.state, "attributes": {k: v for k, v in s.attributes.items() if k != "top_k"}}
        for s in hass.states.async_all(("sensor", "binary_sensor"))
    }


def matches(states: dict[str, dict], expected: dict[str, str]) -> bool:
    for entity, want in expected.items():
        state = states.get(entity, {}).get("state")
        if state is None or (state in ("unknown", "unavailable") if want == "*" else state != want):
            return False
    return True


async def wait_for(hass, predicate) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while loop.time() < deadline:
        states = sensor_states(hass)
        if predicate(states):
            return states
        await asyncio.sleep(0.1)
    return {"timeout": sensor_states(hass)}


LOG: list[dict] = []


def log_state_change(event) -> None:
    old, new = event.data.get("old_state"), event.data.get("new_state")
    if new is not None and new.domain in ("sensor", "binary_sensor") and (old is None or old.state != new.state):
        LOG.append({"t": time.monotonic(), "entity": new.entity_id, "old": old and old.state, "new": new.state})


def log_message(msg) -> None:
    payload = msg.payload if isinstance(msg.payload, str) else msg.payload.decode(errors="replace")
    LOG.append({"t": time.monotonic(), "topic": msg.topic, "payload": payload})


async def main(port: int, topic: str | None) -> None:
    from homeassistant import bootstrap, config_entries, loader
    from homeassistant.auth import auth_manager_from_config
    from homeassistant.core import HomeAssistant
    from homeassistant.setup import async_setup_component

    with tempfile.TemporaryDirectory() as config_dir:
        Path(config_dir, "configuration.yaml").write_text("{}\n")
        hass = HomeAssistant(config_dir)
        loader.async_setup(hass)
        hass.config_entries = config_entries.ConfigEntries(hass, {})
        await bootstrap.async_load_base_functionality(hass)
        hass.auth = await auth_manager_from_config(hass, [], [])
        with socket.socket() as s:  # MQTT depends on HA's http server: keep it on loopback, on a free port
            s.bind(("127.0.0.1", 0))
            http_port = s.getsockname()[1]
        assert await async_setup_component(
            hass, "http", {"http": {"server_host": ["127.0.0.1"], "server_port": http_port}}
        )
        entry = config_entries.ConfigEntry(
            data={"broker": "127.0.0.1", "port": port, "discovery": True},
            discovery_keys=MappingProxyType({}),
            domain="mqtt",
            minor_version=2,
            options=None,
            source="user",
            subentries_data=None,
            title="test broker",
            unique_id=None,
            version=1,
        )
        await hass.config_entries.async_add(entry)
        hass.bus.async_listen("state_changed", log_state_change)
        await hass.async_start()
        if topic:
            from homeassistant.components import mqtt

            await mqtt.async_subscribe(hass, topic, log_message)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            expected = json.loads(line)
            if expected == "log":
                print(json.dumps({"log": LOG}), flush=True)
                LOG.clear()
                continue
            states = await wait_for(hass, lambda s, e=expected: matches(s, e))
            print(json.dumps(states, default=str), flush=True)
        await hass.async_stop(force=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
