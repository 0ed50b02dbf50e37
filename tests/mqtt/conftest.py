"""Fixtures for the MQTT tests: Publishers wired to a test broker, stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from edge.publisher import MqttOptions, Publisher

LABELS = ("cat", "dog", "bird")


@pytest.fixture
def publisher_factory() -> Iterator[Callable[..., Publisher]]:
    """Make Publishers for a broker: ``publisher_factory(broker, start=True, **MqttOptions fields)``."""
    made: list[Publisher] = []

    def make(broker, *, start: bool = True, model: str = "tiny", device: str = "cpu", **options) -> Publisher:
        options.setdefault("device_id", "pi1")
        opts = MqttOptions(host=broker.host, port=broker.port, **options)
        pub = Publisher(opts, model=model, labels=LABELS, device=device)
        made.append(pub)
        if start:
            pub.start()
        return pub

    yield make
    for pub in made:
        pub.stop(timeout=1.0)
