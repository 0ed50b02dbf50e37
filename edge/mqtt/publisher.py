"""MQTT I/O for the daemon: one paho client on its own thread, availability, Home Assistant discovery, offline queue.

Topics and payloads come from `edge.mqtt.contract` and `edge.mqtt.discovery` (pure); this module only moves bytes
and never blocks the caller on the network. QoS >= 1 messages (the default) go through `edge.mqtt.outbox`: at most
`INFLIGHT` unacknowledged in paho, the rest queued in order (at most `queue_size`; when full the OLDEST is dropped
and counted); paho re-sends its unacknowledged ones first after a reconnect. QoS 0 messages are sent only while
connected, else dropped and counted. The retained last will is ``offline``; ``online`` is published on every
connect (the first after `start(first)`'s messages, which void the previous run's state); `stop()` publishes
``offline`` and disconnects. A refused CONNACK never counts as connected; paho reconnects every 0.5-1.5 s and
each failure is logged once with its reason (`edge.mqtt.client`). Nothing another client sends makes this grow
or fail: HA's `online` re-sends discovery at most once per `DISCOVERY_MIN_INTERVAL_S`, and stats after each
discovery send (`take_stats_due`), so HA's diagnostics are not `unknown` until the next stats interval.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

from edge.mqtt.client import ConnectionReporter, make_client
from edge.mqtt.contract import PAYLOAD_OFFLINE, PAYLOAD_ONLINE, to_json, topics
from edge.mqtt.discovery import discovery_configs, ha_status_topic, retired_topics
from edge.mqtt.outbox import Message, Outbox
from edge.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from edge.config.schema import HomeAssistantConfig, MqttConfig, Secret

log = logging.getLogger(__name__)

INFLIGHT = 20  # QoS >= 1 messages handed to paho and not yet acknowledged
# Retried often (a refused connect costs nothing): the dashboard is complete within 2 s of the broker's return.
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.5, 1.5
DISCOVERY_MIN_INTERVAL_S = 10.0  # Home Assistant `online` floods are coalesced into one re-send per interval
PAHO_QUEUE_MAX = INFLIGHT + 100  # paho's own queue: our messages plus availability and discovery


class Publisher:
    """Publishes the daemon's messages over MQTT (see the module docstring for the delivery rules).

    Args:
        mqtt_cfg, ha_cfg: the validated ``[mqtt]`` (ids resolved by the config layer) and ``[homeassistant]``.
        password: the secret read from `mqtt.password_file`, if any.
        model: the loaded model's name (in discovery and payloads); device: ``cpu`` or ``edgetpu``.
        labels: the model's labels (Home Assistant's Label options); regions: (name, labels) per region.
    """

    def __init__(self, mqtt_cfg: MqttConfig, ha_cfg: HomeAssistantConfig, *, password: Secret | None = None,
                 model: str, device: str, labels: tuple[str, ...] = (),
                 regions: Sequence[tuple[str, Sequence[str]]] = ()) -> None:  # fmt: skip
        self.mqtt, self.ha = mqtt_cfg, ha_cfg
        self.topics = topics(mqtt_cfg.topic_prefix, str(mqtt_cfg.device_id))
        self._model, self._device, self._labels, self._regions = model, device, labels, tuple(regions)
        # Set on each reconnect (the daemon then re-sends its current state), on each discovery send (stats).
        self._reconnected = self._stats_due = False
        self._start: list[tuple[str, str | dict]] = []  # published before the first `online` (`start()`)
        self._qos = mqtt_cfg.qos
        self._lock = threading.Lock()  # guards the state below; never held while calling into paho
        self._pump_lock = threading.Lock()  # one thread at a time hands queued messages to paho (keeps order)
        self._outbox = Outbox(mqtt_cfg.queue_size, INFLIGHT)
        self._connected, self._connects = False, 0
        self._discovery_due, self._discovery_at = False, -DISCOVERY_MIN_INTERVAL_S
        self._ha_log = RateLimitedLog(log, 60.0)
        self._started = self._stopped = False
        self._client = self._make_client(password)
        self._reporter = ConnectionReporter(log, mqtt_cfg, self._client)

    # -- public API ----------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between an accepted CONNACK and the next disconnect."""
        return self._connected

    @property
    def network_alive(self) -> bool:
        """False once paho's network thread has died after `start()` (paho offers no public handle on it)."""
        if not self._started or self._stopped:
            return True
        thread = getattr(self._client, "_thread", None)
        return thread is not None and thread.is_alive()

    def start(self, first: Sequence[tuple[str, str | dict]] = ()) -> None:
        """Connect in the background (an unreachable broker is no error: paho retries); `first`: (topic, payload)
        published retained on the first connect before ``online`` (the previous run's state marked void)."""
        if self._started:
            return
        self._started, self._start = True, list(first)
        m = self.mqtt
        log.info("MQTT: connecting to %s:%d as %s (tls=%s)", m.host, m.port, m.client_id, m.tls.enabled)
        self._client.connect_async(m.host, m.port, keepalive=m.keepalive)
        self._client.loop_start()

    def publish_classification(self, payload: dict, topic: str | None = None) -> None:
        """Publish a classification payload (retained; `topic`: a region's). Never blocks on the network."""
        self._enqueue(topic or self.topics.classification, payload, retain=True)

    def publish_drift(self, payload: dict, topic: str | None = None) -> None:  # retained; `topic`: a region's
        self._enqueue(topic or self.topics.drift, payload, retain=True)

    def publish_stats(self, payload: dict) -> None:
        """Publish a stats payload (retained: a restarted Home Assistant's entities get it at once). Never blocks."""
        self._enqueue(self.topics.stats, payload, retain=True)

    def publish_event(self, payload: dict) -> None:  # e.g. a model reload's result; not retained
        self._enqueue(self.topics.event, payload, retain=False)

    def publish_deployment(self, payload: dict) -> None:  # the last pull's outcome, retained
        self._enqueue(self.topics.deployment, payload, retain=True)

    def publish_camera(self, state: str) -> None:  # ``online``/``offline``, retained
        self._enqueue(self.topics.camera, state, retain=True)

    def publish_label(self, text: str, topic: str | None = None) -> None:  # plain text, retained; `topic`: a region's
        self._enqueue(topic or self.topics.label, text, retain=True)

    def take_reconnected(self) -> bool:
        """True once after each reconnect: the daemon then re-sends its state (the broker may have lost it). Not
        after the first connect with QoS >= 1: what was published before it is queued and delivered then."""
        value, self._reconnected = self._reconnected, False
        return value

    def take_stats_due(self) -> bool:  # True once after each discovery send (connect, model reload, HA online)
        value, self._stats_due = self._stats_due, False
        return value

    def set_model(self, model: str, device: str, labels: tuple[str, ...] = (),
                  regions: Sequence[tuple[str, Sequence[str]]] = ()) -> None:  # fmt: skip
        """Record a reloaded model and re-send Home Assistant discovery (when connected)."""
        with self._lock:
            self._model, self._device, self._labels, self._regions = model, device, labels, tuple(regions)
        if self._connected:
            self._send_discovery(time.monotonic())

    def tick(self, now: float) -> None:
        """Periodic duties, called by the daemon's loop: coalesced discovery re-sends, the CONNACK timeout."""
        if self._discovery_due and self._connected and now - self._discovery_at >= DISCOVERY_MIN_INTERVAL_S:
            self._send_discovery(now)
        self._reporter.check(now)

    def counters(self) -> dict[str, int]:
        """``{"mqtt_reconnects", "queued", "dropped", "published"}`` for the stats payload."""
        queued, dropped, published = self._outbox.counters()
        return {"mqtt_reconnects": max(0, self._connects - 1), "queued": queued, "dropped": dropped,
                "published": published}  # fmt: skip

    def stop(self, timeout: float = 2.0) -> None:
        """Flush what can be flushed, publish retained ``offline``, disconnect and stop paho's thread (idempotent,
        waits at most about `timeout` seconds in total)."""
        was_stopped, self._stopped = self._stopped, True
        if was_stopped or not self._started:
            return
        deadline = time.monotonic() + timeout
        if self._connected:
            while time.monotonic() < deadline - timeout / 2 and self.counters()["queued"]:
                time.sleep(0.02)
            info = self._client.publish(self.topics.availability, PAYLOAD_OFFLINE, qos=1, retain=True)
            # If the connection went away meanwhile, the broker publishes the will ("offline") instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        if left := self.counters()["queued"]:
            log.warning("MQTT: stopping with %d message(s) not delivered", left)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._reporter.close()
        log.info("MQTT: stopped")

    # -- client setup --------------------------------------------------------------------------------------------

    def _make_client(self, password: Secret | None) -> mqtt.Client:
        client = make_client(self.mqtt, password, str(self.mqtt.client_id),
                             will=(self.topics.availability, PAYLOAD_OFFLINE), qos=max(1, self._qos))  # fmt: skip
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(INFLIGHT + 20)  # headroom for availability/discovery
        client.max_queued_messages_set(PAHO_QUEUE_MAX)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if self.ha.discovery:
            client.message_callback_add(ha_status_topic(self.ha.prefix), self._on_ha_status)
        return client

    # -- paho callbacks (paho's thread) --------------------------------------------------------------------------

    def _on_pre_connect(self, client, userdata) -> None:
        self._reporter.attempt(time.monotonic())

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._reporter.refused(reason_code)
            return
        self._reporter.accepted()
        with self._lock:
            self._connected = True
            self._connects += 1
            reconnect = self._connects > 1
        self._outbox.connected()
        log.info("MQTT: %s to %s:%d", "reconnected" if reconnect else "connected", self.mqtt.host, self.mqtt.port)
        if not reconnect:
            for topic, payload in self._start:
                self._publish_direct(topic, payload if isinstance(payload, str) else to_json(payload))
        self._publish_direct(self.topics.availability, PAYLOAD_ONLINE)
        if self.ha.discovery:
            client.subscribe(ha_status_topic(self.ha.prefix), qos=1)
            self._send_discovery(time.monotonic())
            for topic in retired_topics(self.ha.prefix, str(self.mqtt.device_id)):
                self._publish_direct(topic, "")  # an empty retained config: HA removes that old entity
        self._reconnected = reconnect or self._qos == 0  # QoS 0 queues nothing while disconnected
        self._stats_due = True
        self._pump()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its `except OSError:` block, so the exception is still the one being handled.
        self._reporter.failed(sys.exc_info()[1])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        self._outbox.disconnected()
        if self._stopped:
            return
        if was_connected:
            m = self.mqtt
            log.warning("MQTT: lost connection to %s:%d (%s); reconnecting every %g-%g s, queueing up to %d messages",
                        m.host, m.port, reason_code, RECONNECT_MIN_S, RECONNECT_MAX_S, m.queue_size)  # fmt: skip
        else:
            self._reporter.closed()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._pump()

    def _on_ha_status(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.payload.strip().lower() != PAYLOAD_ONLINE.encode():
            return
        self._discovery_due = self._stats_due = True  # its entities may exist (retained configs): stats now
        self._ha_log.info("MQTT: Home Assistant is online: re-sending discovery")
        now = time.monotonic()
        if now - self._discovery_at >= DISCOVERY_MIN_INTERVAL_S:
            self._send_discovery(now)

    # -- queueing ------------------------------------------------------------------------------------------------

    def _publish_direct(self, topic: str, payload: str | bytes) -> None:
        """Availability and discovery: retained, QoS >= 1, straight to paho (bounded by their own rules)."""
        try:
            self._client.publish(topic, payload, qos=max(1, self._qos), retain=True)
        except (ValueError, RuntimeError) as e:  # paho refuses (its queue is full, the payload too large)
            log.warning("MQTT: cannot publish on %s: %s", topic, e)

    def _enqueue(self, topic: str, payload: dict | str, *, retain: bool) -> None:
        data = (payload if isinstance(payload, str) else to_json(payload)).encode()
        if self._qos == 0:
            sent = False
            if self._connected:
                with contextlib.suppress(ValueError, RuntimeError):
                    sent = self._client.publish(topic, data, qos=0, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS
            self._outbox.count(published=int(sent), dropped=int(not sent))
            return
        if self._outbox.put(Message(topic, data, retain)):
            log.warning("MQTT: offline queue full (%d): dropping the oldest messages", self.mqtt.queue_size)
        self._pump()

    def _pump(self) -> None:
        """Hand queued messages to paho while connected and below INFLIGHT; safe from any thread."""
        while True:
            if not self._pump_lock.acquire(blocking=False):
                return  # another thread is pumping; it re-checks before leaving
            try:
                while (message := self._outbox.take(self._connected)) is not None:
                    try:
                        info = self._client.publish(message.topic, message.payload, qos=self._qos,
                                                    retain=message.retain)  # fmt: skip
                    except (ValueError, RuntimeError) as e:
                        log.warning("MQTT: paho refused a message on %s: %s", message.topic, e)
                        self._outbox.count(dropped=1)
                        continue
                    if info.rc == mqtt.MQTT_ERR_NO_CONN:
                        # The connection dropped a moment ago; paho keeps the message and sends it after the
                        # reconnect, marking this same info published. Clear rc so is_published() reports that.
                        info.rc = mqtt.MQTT_ERR_SUCCESS
                    self._outbox.track(info)
            finally:
                self._pump_lock.release()
            if not self._outbox.more(self._connected):
                return

    def _send_discovery(self, now: float) -> None:
        if not self.ha.discovery:
            return
        with self._lock:
            model, device, labels, regions = self._model, self._device, self._labels, self._regions
            self._discovery_due, self._discovery_at = False, now
        m = self.mqtt
        configs = discovery_configs(self.ha.prefix, m.topic_prefix, str(m.device_id), model=model, device=device,
                                    labels=labels, regions=regions)  # fmt: skip
        for topic, config in configs.items():
            self._publish_direct(topic, to_json(config))
        self._stats_due = True
        log.debug("MQTT: sent Home Assistant discovery for %d entities under %s/", len(configs), self.ha.prefix)

