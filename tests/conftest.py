"""Shared pytest fixtures: a real mosquitto broker on a free loopback port, and collecting MQTT subscribers.

Usage in a test::

    def test_x(mosquitto, subscriber_factory):
        sub = subscriber_factory(mosquitto, ["edge/#"])
        ...  # connect something to mosquitto.host / mosquitto.port
        sub.wait_for_topic("edge/dev/availability")

    def test_tls(mosquitto_factory):
        broker = mosquitto_factory(tls=True, users={"u": "p"}, allow_anonymous=False)
        broker.tls_files.ca  # the CA to trust

Tests using these fixtures are skipped with a reason when /usr/sbin/mosquitto is missing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, Subscriber, mosquitto_available

# The tests call the project's commands (edge-daemon, edge-train, edge-deploy, ansible-*) by name: those installed
# beside the interpreter running pytest come first on PATH, however pytest was started (tests/run.sh does the same).
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = os.pathsep.join(p for p in (_BIN, os.environ.get("PATH")) if p)

MOSQUITTO_MISSING = "mosquitto broker not installed (apt-get install mosquitto mosquitto-clients)"


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Make started brokers with `Mosquitto(**options)`; every one is killed at teardown."""
    if not mosquitto_available():
        pytest.skip(MOSQUITTO_MISSING)
    brokers: list[Mosquitto] = []

    def make(**options: object) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto-{len(brokers)}", **options)  # type: ignore[arg-type]
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A started mosquitto on 127.0.0.1:<free port>, anonymous access, no persistence."""
    return mosquitto_factory()


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    """Make started `Subscriber`s (paho, VERSION2 callbacks); all are disconnected at teardown."""
    subs: list[Subscriber] = []

    def make(broker: Mosquitto, topics: list[str] | tuple[str, ...] = ("#",), **options: object) -> Subscriber:
        sub = Subscriber(broker, topics, **options)  # type: ignore[arg-type]
        subs.append(sub)
        return sub.start()

    yield make
    for sub in subs:
        sub.stop()
