"""MQTT I/O for the daemon: one paho client on its own thread, availability, Home Assistant discovery, offline queue.

Topics and payloads come from `edge.mqtt_contract` (pure); this module only moves bytes. Nothing here blocks the
caller on the network: `publish_*` put the message in a bounded deque and hand it to paho when there is room.

Delivery of QoS >= 1 messages (the default, qos = 1):
  * While connected, at most `INFLIGHT` messages are handed to paho and not yet acknowledged; the rest wait in
    our queue. Paho keeps its unacknowledged messages across a reconnect and re-sends them first.
  * While disconnected, messages wait in our queue (at most `queue_size`; when full the OLDEST is dropped and
    counted in `counters()["dropped"]`). After the reconnect they are sent in order.
  * QoS 0 messages are sent only while connected; otherwise they are dropped (and counted).

Availability: the retained last will is ``offline``; ``online`` (retained) is published on every connect;
`stop()` publishes ``offline`` and disconnects cleanly. A refused CONNACK (bad credentials...) never counts as
connected. Paho reconnects by itself with a 1-30 s backoff; every state change is logged once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import EdgeError
from edge.mqtt_contract import PAYLOAD_OFFLINE, PAYLOAD_ONLINE, discovery_configs, ha_status_topic, topics

log = logging.getLogger(__name__)

INFLIGHT = 20  # QoS >= 1 messages handed to paho and not yet acknowledged
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class MqttOptions:
    """Where and how to publish; built by `edge.config` from the ``[mqtt]`` and ``[homeassistant]`` tables."""

    device_id: str
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None  # already read from its file; never logged
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False  # skip hostname verification (the chain is still verified)
    client_id: str | None = None  # None -> f"edge-daemon-{device_id}"
    qos: int = 1
    keepalive: int = 60
    topic_prefix: str = "edge"
    queue_size: int = 1000
    ha_discovery: bool = True
    ha_prefix: str = "homeassistant"

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        secret = "***" if self.password is not None else None
        return f"MqttOptions(device_id={self.device_id!r}, host={self.host!r}, port={self.port}, password={secret})"


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    retain: bool


class Publisher:
    """Publishes the daemon's messages over MQTT (see the module docstring for the delivery rules).

    Args:
        options: broker, credentials, TLS, topics, QoS, queue size, Home Assistant discovery.
        model: the loaded model's name (in discovery and payloads).
        labels: the model's labels.
        device: ``cpu`` or ``edgetpu``.

    Raises:
        EdgeError: a bad option (QoS, queue size, topic prefix, device id).
    """

    def __init__(self, options: MqttOptions, *, model: str, labels: Sequence[str], device: str) -> None:
        if options.qos not in (0, 1, 2):
            raise EdgeError(f"mqtt.qos = {options.qos} is invalid: use 0, 1 or 2")
        if options.queue_size < 1:
            raise EdgeError(f"mqtt.queue_size = {options.queue_size} is invalid: use a positive number")
        try:
            self.topics = topics(options.topic_prefix, options.device_id)
        except ValueError as exc:
            raise EdgeError(str(exc)) from None
        self.options = options
        self._model, self._labels, self._device = model, tuple(labels), device
        self._lock = threading.Lock()  # guards the state below; never held while calling into paho
        self._pump_lock = threading.Lock()  # one thread at a time hands queued messages to paho (keeps order)
        self._queue: deque[_Message] = deque()
        self._inflight: list[mqtt.MQTTMessageInfo] = []
        self._resend_first = False  # after a reconnect, paho re-sends its unacknowledged messages first
        self._connected = False
        self._connects = 0
        self._published = 0
        self._dropped = 0
        self._drop_logged = False
        self._last_failure: str | None = None
        self._started = self._stopped = False
        self._client = self._make_client()

    # -- public API ----------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between an accepted CONNACK and the next disconnect."""
        return self._connected

    def start(self) -> None:
        """Start connecting in the background; an unreachable broker is not an error (paho keeps retrying).

        Raises:
            EdgeError: the TLS files cannot be loaded.
        """
        if self._started:
            return
        self._configure_tls()
        self._started = True
        o = self.options
        log.info("MQTT: connecting to %s:%d as %s (tls=%s)", o.host, o.port, self._client_id, o.tls)
        self._client.connect_async(o.host, o.port, keepalive=o.keepalive)
        self._client.loop_start()

    def publish_classification(self, payload: dict) -> None:
        """Publish a classification payload (retained). Never blocks on the network."""
        self._enqueue(self.topics.classification, payload, retain=True)

    def publish_stats(self, payload: dict) -> None:
        """Publish a stats payload (not retained). Never blocks on the network."""
        self._enqueue(self.topics.stats, payload, retain=False)

    def publish_event(self, payload: dict) -> None:
        """Publish an event such as a model reload result on ``.../event`` (not retained)."""
        self._enqueue(self.topics.event, payload, retain=False)

    def set_model(self, model: str, labels: Sequence[str], device: str) -> None:
        """Record a reloaded model and re-send Home Assistant discovery (when connected)."""
        with self._lock:
            self._model, self._labels, self._device = model, tuple(labels), device
        if self._connected:
            self._send_discovery()

    def counters(self) -> dict[str, int]:
        """``{"mqtt_reconnects", "queued", "dropped", "published"}`` for the stats payload."""
        with self._lock:
            self._prune()
            return {
                "mqtt_reconnects": max(0, self._connects - 1),
                "queued": len(self._queue) + len(self._inflight),
                "dropped": self._dropped,
                "published": self._published,
            }

    def stop(self, timeout: float = 2.0) -> None:
        """Flush what can be flushed, publish retained ``offline``, disconnect and stop paho's thread.

        Idempotent. Waits at most about `timeout` seconds in total.
        """
        if self._stopped:
            return
        self._stopped = True
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        if self._connected:
            while time.monotonic() < deadline - timeout / 2 and self.counters()["queued"]:
                time.sleep(0.02)
            info = self._client.publish(self.topics.availability, PAYLOAD_OFFLINE, qos=1, retain=True)
            # If the connection went away meanwhile, the broker publishes the will ("offline") instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        left = self.counters()["queued"]
        if left:
            log.warning("MQTT: stopping with %d message(s) not delivered", left)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        log.info("MQTT: stopped")

    # -- client setup --------------------------------------------------------------------------------------------

    @property
    def _client_id(self) -> str:
        return self.options.client_id or f"edge-daemon-{self.options.device_id}"

    def _make_client(self) -> mqtt.Client:
        o = self.options
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True)
        if o.username is not None:
            client.username_pw_set(o.username, o.password)
        client.will_set(self.topics.availability, PAYLOAD_OFFLINE, qos=max(1, o.qos), retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.connect_timeout = CONNECT_TIMEOUT_S  # bounds stop() while a connect attempt hangs
        client.max_inflight_messages_set(INFLIGHT + 20)  # headroom for availability/discovery
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if o.ha_discovery:
            client.message_callback_add(ha_status_topic(o.ha_prefix), self._on_ha_status)
        return client

    def _configure_tls(self) -> None:
        o = self.options
        if not o.tls:
            return
        for field, path in (("mqtt.tls.ca", o.ca), ("mqtt.tls.cert", o.cert), ("mqtt.tls.key", o.key)):
            if path is not None and not Path(path).is_file():
                raise EdgeError(f"{field}: {path} does not exist: give the path of a PEM file")
        if bool(o.cert) != bool(o.key):
            raise EdgeError("mqtt.tls.cert and mqtt.tls.key go together: set both for a client certificate, or none")
        try:
            self._client.tls_set(ca_certs=o.ca, certfile=o.cert, keyfile=o.key, cert_reqs=ssl.CERT_REQUIRED)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise EdgeError(f"mqtt.tls: cannot load {o.ca or ''} {o.cert or ''} {o.key or ''}: {exc}") from None
        if o.insecure:
            self._client.tls_insecure_set(True)

    # -- paho callbacks (paho's thread) --------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        o = self.options
        if reason_code.is_failure:
            self._failure(f"broker {o.host}:{o.port} refused the connection: {reason_code}", refused=True)
            return
        with self._lock:
            self._connected = True
            self._connects += 1
            reconnect = self._connects > 1
            self._last_failure = None
            self._drop_logged = False
        log.info("MQTT: %s to %s:%d", "reconnected" if reconnect else "connected", o.host, o.port)
        client.publish(self.topics.availability, PAYLOAD_ONLINE, qos=max(1, o.qos), retain=True)
        if o.ha_discovery:
            client.subscribe(ha_status_topic(o.ha_prefix), qos=1)
            self._send_discovery()
        self._pump()

    def _on_connect_fail(self, client, userdata) -> None:
        o = self.options
        self._failure(f"cannot reach broker {o.host}:{o.port}")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
            self._prune()
            self._resend_first = bool(self._inflight)
        if was_connected and not self._stopped:
            o = self.options
            log.warning(
                "MQTT: lost connection to %s:%d (%s); reconnecting every %d-%d s, queueing up to %d messages",
                o.host, o.port, reason_code, RECONNECT_MIN_S, RECONNECT_MAX_S, o.queue_size,
            )  # fmt: skip

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._pump()

    def _on_ha_status(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.payload.strip().lower() == PAYLOAD_ONLINE.encode():
            log.info("MQTT: Home Assistant is online: re-sending discovery")
            self._send_discovery()

    def _failure(self, what: str, refused: bool = False) -> None:
        """Log a connection failure once (repeats of the same failure go to debug)."""
        with self._lock:
            repeated = self._last_failure == what
            self._last_failure = what
        if repeated:
            log.debug("MQTT: %s (still)", what)
        elif refused:
            log.error("MQTT: %s; check mqtt.username / mqtt.password_file / TLS settings; retrying", what)
        else:
            log.warning("MQTT: %s; retrying every %d-%d s", what, RECONNECT_MIN_S, RECONNECT_MAX_S)

    # -- queueing ------------------------------------------------------------------------------------------------

    def _enqueue(self, topic: str, payload: dict, *, retain: bool) -> None:
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        if self.options.qos == 0:
            if self._connected:
                self._client.publish(topic, data, qos=0, retain=retain)
                with self._lock:
                    self._published += 1
            else:
                with self._lock:
                    self._dropped += 1
            return
        with self._lock:
            if len(self._queue) >= self.options.queue_size:
                self._queue.popleft()
                self._dropped += 1
                first_drop, self._drop_logged = not self._drop_logged, True
            else:
                first_drop = False
            self._queue.append(_Message(topic, data, retain))
        if first_drop:
            log.warning("MQTT: offline queue full (%d): dropping the oldest messages", self.options.queue_size)
        self._pump()

    def _prune(self) -> None:
        """Forget acknowledged messages (caller holds self._lock)."""
        done = [info for info in self._inflight if info.is_published()]
        if done:
            self._published += len(done)
            self._inflight = [info for info in self._inflight if not info.is_published()]
        if not self._inflight:
            self._resend_first = False

    def _take(self) -> _Message | None:
        with self._lock:
            self._prune()
            if not self._connected or self._resend_first or not self._queue or len(self._inflight) >= INFLIGHT:
                return None
            return self._queue.popleft()

    def _pump(self) -> None:
        """Hand queued messages to paho while connected and below INFLIGHT; safe from any thread."""
        while True:
            if not self._pump_lock.acquire(blocking=False):
                return  # another thread is pumping; it re-checks before leaving
            try:
                while (message := self._take()) is not None:
                    info = self._client.publish(
                        message.topic, message.payload, qos=self.options.qos, retain=message.retain
                    )
                    if info.rc == mqtt.MQTT_ERR_NO_CONN:
                        # The connection dropped a moment ago; paho keeps the message and sends it after the
                        # reconnect, marking this same info published. Clear rc so is_published() reports that.
                        info.rc = mqtt.MQTT_ERR_SUCCESS
                    with self._lock:
                        self._inflight.append(info)
            finally:
                self._pump_lock.release()
            with self._lock:
                self._prune()
                more = self._connected and not self._resend_first and self._queue and len(self._inflight) < INFLIGHT
            if not more:
                return

    def _send_discovery(self) -> None:
        o = self.options
        if not o.ha_discovery:
            return
        with self._lock:
            model, device = self._model, self._device
        configs = discovery_configs(o.ha_prefix, o.topic_prefix, o.device_id, model=model, device=device)
        for topic, config in configs.items():
            self._client.publish(topic, json.dumps(config, separators=(",", ":")), qos=max(1, o.qos), retain=True)
        log.info("MQTT: sent Home Assistant discovery for %d sensors under %s/", len(configs), o.ha_prefix)
