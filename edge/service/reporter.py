"""The device's current state as the world sees it: the last classification, the label, the camera.

The service tells the reporter what happened (a frame classified, a smoothing decision, the camera coming or
going); the reporter builds the payloads with `edge.mqtt.contract` and hands them to the publisher, and keeps
the current state so that after every (re)connect it can be re-sent whole (`resend()`): a broker restarted
without persistence has lost its retained messages, and a dashboard must be complete again at once.
`state()` is the same classification any subscriber sees, for other outputs (the web page).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge.inference.drift import DriftState
from edge.inference.smoothing import Publish
from edge.mqtt import contract


class Sink(Protocol):
    """Where the payloads go (the publisher)."""

    def publish_classification(self, payload: dict, topic: str | None = None) -> None: ...
    def publish_label(self, text: str, topic: str | None = None) -> None: ...
    def publish_camera(self, state: str) -> None: ...
    def publish_event(self, payload: dict) -> None: ...
    def publish_drift(self, payload: dict, topic: str | None = None) -> None: ...


class Reporter:
    """Builds and sends the state payloads; remembers them to re-send.

    Args:
        sink: the publisher.
        model: the model's name (in every classification).
        label_topic: also publish the plain label on `.../label` (on changes and re-sends).
        clock: wall-clock time (Unix seconds), for `published_at`.
        topics: a region's topics (`edge.mqtt.contract.stream_topics`); None: the device's own.
    """

    def __init__(self, sink: Sink, *, model: str, label_topic: bool = False, clock: Callable[[], float] = time.time,
                 topics: contract.StreamTopics | None = None) -> None:  # fmt: skip
        self._sink, self.model, self._label_topic, self._clock = sink, model, label_topic, clock
        self._topics = topics
        self._lock = threading.Lock()  # state() may be read from another thread
        self._frame, self._inference_ms, self._captured_at = 0, 0.0, None  # the last classified frame
        self._decision: Publish | None = None
        self._changed_at: float | None = None
        self._label: str | None = None
        self._camera: bool | None = None
        self._payload: dict | None = None
        self._drift: dict | None = None  # the last drift payload

    def frame(self, frame: int, inference_ms: float, captured_at: float) -> None:
        """A frame was classified: its count, inference time and capture time (Unix seconds)."""
        self._frame, self._inference_ms, self._captured_at = frame, inference_ms, captured_at

    def publish(self, decision: Publish, changed_at: float | None, reason: str | None = None) -> dict:
        """Publish a smoothing decision about the last classified frame; returns the classification payload.

        A heartbeat while no frame comes (the camera is away) keeps the last frame's capture time: no message
        claims a fresh classification. `changed_at`: when the label last changed (Unix seconds).
        """
        now = self._clock()
        payload = contract.classification_payload(
            decision.predictions, reason=reason or decision.reason, frame=self._frame,
            inference_ms=self._inference_ms, model=self.model,
            timestamp=self._captured_at if self._captured_at is not None else now, published_at=now,
            changed_at=changed_at, unknown=decision.unknown,
        )  # fmt: skip
        with self._lock:
            self._decision, self._changed_at, self._payload = decision, changed_at, payload
        topics = self._topics
        self._sink.publish_classification(payload, topics.classification if topics else None)
        text = contract.label_text(decision.predictions, decision.unknown)
        if self._label_topic and (text != self._label or reason == "reconnect"):
            self._sink.publish_label(text, topics.label if topics else None)
        self._label = text
        return payload

    def drift(self, state: DriftState, *, since: float, region: str | None, changed: bool) -> dict:
        """Publish the stream's drift state (retained), and a `drift_changed` event when it `changed`."""
        payload = contract.drift_payload(state, since=since, model=self.model)
        with self._lock:
            previous, self._drift = self._drift, payload
        topics = self._topics
        self._sink.publish_drift(payload, topics.drift if topics else None)
        if changed and previous is not None:
            self._sink.publish_event(contract.drift_event(payload, previous=previous["state"], region=region,
                                                          timestamp=self._clock()))  # fmt: skip
        return payload

    def drift_state(self) -> dict | None:
        """The last drift payload sent (None before the first)."""
        with self._lock:
            return None if self._drift is None else dict(self._drift)

    def camera(self, connected: bool, *, source: str, reconnects: int) -> None:
        """The camera came or went: its retained state and an event (the first state only if it is known)."""
        if connected == self._camera:
            return
        first, self._camera = self._camera is None, connected
        self._sink.publish_camera(contract.camera_state(connected))
        if not (first and not connected):  # not "lost" for a camera that never came
            self._sink.publish_event(contract.camera_event(connected, source=source, reconnects=reconnects,
                                                           timestamp=self._clock()))  # fmt: skip

    def resend(self) -> None:
        """After a (re)connect: the camera's state, the current classification (reason `reconnect`), the label."""
        if self._camera is not None:
            self._sink.publish_camera(contract.camera_state(self._camera))
        if self._decision is not None:
            self.publish(self._decision, self._changed_at, reason="reconnect")
        if self._drift is not None:
            topics = self._topics
            self._sink.publish_drift(self._drift, topics.drift if topics else None)

    def state(self) -> dict | None:
        """The last classification payload sent (None before the first)."""
        with self._lock:
            return None if self._payload is None else dict(self._payload)


def wall_time(monotonic: float | None) -> float | None:
    """A `time.monotonic()` reading as Unix time (None stays None)."""
    return None if monotonic is None else time.time() - (time.monotonic() - monotonic)
