"""The publisher's bounded, ordered queue of QoS >= 1 messages and its accounting of paho's in-flight ones.

Thread-safe, no I/O: the publisher puts messages in, takes them out while connected and below `inflight_max`,
and hands each `paho.mqtt.client.MQTTMessageInfo` back with `track()`. Acknowledged messages are forgotten
when the in-flight bound is reached, while paho re-sends, and for the counters, not on every message. When
full, the OLDEST message is dropped (and counted). After a reconnect, paho re-sends its unacknowledged
messages first, so nothing is taken until they are acknowledged: the broker sees messages in the order they
were produced.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    """One message waiting for the broker."""

    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """Bounded FIFO of messages plus the in-flight ones handed to paho.

    Args:
        size: messages kept while the broker is away (`mqtt.queue_size`).
        inflight_max: messages handed to paho and not yet acknowledged, at most.
    """

    def __init__(self, size: int, inflight_max: int) -> None:
        self.size, self.inflight_max = size, inflight_max
        self._lock = threading.Lock()
        self._queue: deque[Message] = deque()
        self._inflight: list[Any] = []
        self._resend_first = False
        self._published = self._dropped = 0
        self._drop_reported = False

    def put(self, message: Message) -> bool:
        """Queue a message, dropping the oldest when full; True the first time a drop happens since a connect."""
        with self._lock:
            first = False
            if len(self._queue) >= self.size:
                self._queue.popleft()
                self._dropped += 1
                first, self._drop_reported = not self._drop_reported, True
            self._queue.append(message)
            return first

    def take(self, connected: bool) -> Message | None:
        """The next message to hand to paho, or None (disconnected, paho re-sending first, or enough in flight)."""
        with self._lock:
            self._prune_if_needed()
            if not self._ready(connected):
                return None
            return self._queue.popleft()

    def track(self, info: Any) -> None:
        """Remember a message handed to paho until it is acknowledged."""
        with self._lock:
            self._inflight.append(info)

    def count(self, published: int = 0, dropped: int = 0) -> None:
        """Count messages that bypassed the queue (QoS 0) or that paho refused."""
        with self._lock:
            self._published += published
            self._dropped += dropped

    def more(self, connected: bool) -> bool:
        """True when `take()` would give a message now."""
        with self._lock:
            self._prune_if_needed()
            return self._ready(connected)

    def connected(self) -> None:
        """A new connection: report the next queue overflow again."""
        with self._lock:
            self._drop_reported = False

    def disconnected(self) -> None:
        """The connection went: paho will re-send its unacknowledged messages first after the reconnect."""
        with self._lock:
            self._prune()
            self._resend_first = bool(self._inflight)

    def counters(self) -> tuple[int, int, int]:
        """(queued, dropped, published): waiting here or in paho, lost, acknowledged by the broker."""
        with self._lock:
            self._prune()
            return len(self._queue) + len(self._inflight), self._dropped, self._published

    def _ready(self, connected: bool) -> bool:
        return connected and not self._resend_first and bool(self._queue) and len(self._inflight) < self.inflight_max

    def _prune_if_needed(self) -> None:
        """Prune only when it can change the answer: the in-flight list is full, or paho is re-sending."""
        if self._resend_first or len(self._inflight) >= self.inflight_max:
            self._prune()

    def _prune(self) -> None:
        """Forget acknowledged messages (caller holds the lock); paho's refusals count as dropped."""
        keep = []
        for info in self._inflight:
            try:
                if info.is_published():
                    self._published += 1
                    continue
            except (ValueError, RuntimeError):  # paho did not queue it (ERR_QUEUE_SIZE, ...): lost
                self._dropped += 1
                continue
            keep.append(info)
        self._inflight = keep
        if not keep:
            self._resend_first = False
