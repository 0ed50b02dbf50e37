"""MQTT: the contract (topics, payloads, `schemas/`), Home Assistant discovery, the paho client, the outbox and
the publisher."""
