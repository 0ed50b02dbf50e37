"""Prometheus metrics of the running daemon (`/metrics`), with the official client, `prometheus_client`.

Counters and gauges are read from the daemon's own counters when Prometheus scrapes (a custom collector: no
work per frame); only the inference-time histogram is fed per frame (one bucket increment under a lock).
The process collector adds `process_cpu_seconds_total`, `process_resident_memory_bytes` and friends.

Why a dependency: `prometheus_client` is pure Python (one wheel for every platform, about 2 MB of memory when
loaded, imported only when `[http] listen` is set) and is maintained by the Prometheus project; it gets the
text and OpenMetrics formats, their escaping and content negotiation right, which a hand-written exposition
would have to re-learn. Names follow Prometheus' rules: `edge_daemon_` prefix, snake_case, base units in the
name (`_seconds`), `_total` on counters, and no label whose values can grow (only the model's name and device,
on the `_info` metric).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from edge.http.state import Snapshot

PREFIX = "edge_daemon_"
# From 0.5 ms (a small model on a Pi 5 or a Coral) to 2.5 s (a large model on a Pi Zero).
INFERENCE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)

# (name without prefix and `_total`, help, where the value is): counters read from the snapshot at scrape time.
COUNTERS = (
    ("frames_captured", "Frames read from the camera.", lambda s: s.camera.captured),
    ("frames_classified", "Frames classified.", lambda s: s.classified),
    ("frames_dropped", "Frames the camera delivered that the classifier never took (it takes the newest).",
     lambda s: s.camera.dropped),
    ("inference_errors", "Frames whose inference failed.", lambda s: s.errors),
    ("camera_reconnects", "Times the camera was opened again after a loss.", lambda s: s.camera.reconnects),
    ("mqtt_published_messages", "MQTT messages the broker acknowledged.", lambda s: s.mqtt["published"]),
    ("mqtt_dropped_messages", "MQTT messages lost: the offline queue was full, or QoS 0 while disconnected.",
     lambda s: s.mqtt["dropped"]),
    ("mqtt_reconnects", "Reconnections to the MQTT broker.", lambda s: s.mqtt["mqtt_reconnects"]),
)  # fmt: skip
GAUGES = (
    ("camera_up", "1 while the camera delivers frames, else 0.", lambda s: int(bool(s.camera.connected))),
    ("mqtt_connected", "1 while connected to the MQTT broker, else 0.", lambda s: int(bool(s.mqtt_connected))),
    ("mqtt_queued_messages", "MQTT messages waiting for the broker (queue plus unacknowledged).",
     lambda s: s.mqtt["queued"]),
)  # fmt: skip


class _DaemonCollector(Collector):
    """Everything but the histogram, read when scraped."""

    def __init__(self, snapshot: Callable[[], Snapshot], http_counts: Callable[[], Mapping[str, float]]) -> None:
        self._snapshot, self._http_counts = snapshot, http_counts

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        for name, doc, value in COUNTERS:
            yield CounterMetricFamily(PREFIX + name, doc, value=value(snap))
        for name, doc, value in GAUGES:
            yield GaugeMetricFamily(PREFIX + name, doc, value=value(snap))
        yield GaugeMetricFamily(PREFIX + "start_time_seconds", "Unix time the daemon started.", value=snap.started_at)
        yield InfoMetricFamily(PREFIX + "model", "The model that classifies and where it runs.",
                               value={"model": snap.model, "device": snap.device})  # fmt: skip
        yield from _drift_gauges(snap)
        http = self._http_counts()
        yield GaugeMetricFamily(PREFIX + "http_connections", "HTTP connections being served now.",
                                value=http["connections"])  # fmt: skip
        yield GaugeMetricFamily(PREFIX + "http_stream_clients", "Viewers of /stream.mjpg now.",
                                value=http["stream_clients"])  # fmt: skip
        yield CounterMetricFamily(PREFIX + "http_jpegs_encoded", "JPEGs encoded for viewers (none while nobody "
                                  "watches).", value=http["jpegs_encoded"])  # fmt: skip
        yield CounterMetricFamily(PREFIX + "http_refused_connections",
                                  "HTTP connections refused: too many at once or arriving too fast.",
                                  value=http["refused_connections"])  # fmt: skip


def _drift_gauges(snap: Snapshot) -> Iterator[Metric]:
    """Per stream (`region`, "" for the whole frame): the drift score, the unknown rate, drifting as 1/0."""
    score = GaugeMetricFamily(PREFIX + "drift_score", "Jensen-Shannon divergence of the window against the "
                              "model's reference (0..1; NaN before the first judgement).", labels=["region"])
    unknown = GaugeMetricFamily(PREFIX + "unknown_rate", "Share of unknown frames in the drift window.",
                                labels=["region"])  # fmt: skip
    drifting = GaugeMetricFamily(PREFIX + "drifting", "1 while the drift state is drifting, else 0.",
                                 labels=["region"])  # fmt: skip
    for name, p in snap.drift.items():
        if p is None:
            continue
        region = [name or ""]
        score.add_metric(region, float("nan") if p["score"] is None else p["score"])
        unknown.add_metric(region, float("nan") if p["unknown_rate"] is None else p["unknown_rate"])
        drifting.add_metric(region, 1.0 if p["state"] == "drifting" else 0.0)
    yield from (score, unknown, drifting)


class Metrics:
    """The daemon's metrics registry.

    Args:
        snapshot: the daemon's state now (`edge.http.state.Snapshot`), called once per scrape.
        http_counts: the server's own figures: `connections`, `stream_clients`, `jpegs_encoded`,
            `refused_connections`.
    """

    def __init__(self, snapshot: Callable[[], Snapshot], http_counts: Callable[[], Mapping[str, float]]) -> None:
        self.registry = CollectorRegistry()
        self._inference = Histogram(PREFIX + "inference_seconds", "Time spent in the interpreter per classified frame.",
                                    buckets=INFERENCE_BUCKETS, registry=self.registry)  # fmt: skip
        self.registry.register(_DaemonCollector(snapshot, http_counts))
        ProcessCollector(registry=self.registry)

    def observe_inference(self, seconds: float) -> None:
        """One classified frame's inference time."""
        self._inference.observe(seconds)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for a scrape's `Accept` header: (body, content type); OpenMetrics when asked for."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
