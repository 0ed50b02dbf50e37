"""The daemon's configuration schema: sections as frozen dataclasses, every field with a default and a description.

Rules ride in each field's metadata (`min`, `max`, `choices`, `path`, `secret`, `mqtt`); `edge.config.load` loads and
checks a TOML file against them, and the configuration reference (`docs/configuration.md`) is generated from the
descriptions. Every number has a finite range (nan and inf are refused), every string is free of NUL characters.

This module is a leaf: it imports nothing else of `edge`, and the parts of the daemon receive their section
(`CameraConfig`, `MqttConfig`, ...) from the service, never importing the config at run time.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

MAX_THREADS = 64  # model.threads and `edge-daemon classify --threads`: one bound for both
MQTT_STRING_BYTES = 65_535  # MQTT's limit for a UTF-8 string (client id, user name, a topic)
SMOOTHING_MODES = ("stable", "average", "off")
DRIFT_REFERENCES = ("model", "off")


def _f(default: Any, doc: str, **rules: Any) -> Any:
    """A schema field: its default, its description, and rules.

    Rules: `min`/`max` (numbers: required, finite), `choices`, `path` (a file that must be readable),
    `secret` (looked up in $CREDENTIALS_DIRECTORY first), `mqtt` (`prefix`: topic levels; `level`: one topic
    level; `string`: any MQTT string) for MQTT's own limits, `required` (no default), `length` (a list's).
    """
    return field(default=default, metadata={"doc": doc, **rules})


class Secret:
    """A secret string read from a file; `repr`/`str` never show it, `reveal()` does."""

    def __init__(self, value: str, source: str) -> None:
        self._value, self.source = value, source

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (the MQTT client)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<redacted, from {self.source}>)"

    __str__ = __repr__


@dataclass(frozen=True)
class CameraConfig:
    source: str = _f(
        "0",
        "V4L2 index (`0`), `/dev/videoN`, a video file, an `rtsp://` / `http://` (MJPEG) URL, `csi:N` (a Pi camera "
        "through `rpicam-vid`), or `exec:COMMAND` (any command writing MJPEG to stdout, run without a shell)",
    )
    width: int = _f(
        0,
        "capture width asked of a V4L2 or CSI camera, pixels; 0 = V4L2: the mode nearest the model's input, CSI: "
        "rpicam-vid's default",
        min=0,
        max=16384,
    )
    height: int = _f(0, "capture height asked of a V4L2 or CSI camera, pixels; 0 = as for `width`", min=0, max=16384)
    frame_rate: float = _f(0.0, "frames per second asked of a V4L2 or CSI camera; 0 = the camera's default",
                           min=0, max=1000)  # fmt: skip
    max_rate: float = _f(0.0, "classifications per second at most; 0 = as fast as the model allows", min=0, max=1000)
    loop: bool = _f(True, "video files: start again at the end (true) or stop the daemon after the last frame")
    realtime: bool = _f(
        True,
        "video files: play at the file's own frame rate like a camera, dropping frames the classifier misses "
        "(true), or as fast as the classifier takes them, none dropped (false: batch runs, benchmarks)",
    )
    reconnect_min_s: float = _f(
        1.0, "first retry delay when the camera is absent or lost; doubles per failure", min=0.1, max=3600
    )
    reconnect_max_s: float = _f(30.0, "longest retry delay", min=0.1, max=3600)
    timeout_s: float = _f(
        10.0, "network streams: open/read timeout; a stream silent this long counts as lost", min=0.5, max=600
    )


@dataclass(frozen=True)
class ModelConfig:
    path: str = _f("/var/lib/edge-daemon/model.tflite", "the .tflite classifier (labels embedded or `labels`)", path=1)
    labels: str | None = _f(None, "label file; default: the labels embedded in the model", path=1)
    device: str = _f("auto", "`auto`, `cpu`, `edgetpu`, `edgetpu:usb` or `edgetpu:pci`; an Edge TPU form may end in "
                     "`:N`, its index from 0 (`edgetpu:usb:1`: the second on USB)")
    threads: int = _f(2, "CPU threads of each interpreter", min=1, max=MAX_THREADS)
    workers: int = _f(
        1,
        "interpreters classifying frames in parallel, results published in frame order; more than 1 raises "
        "throughput when frames come faster than one interpreter takes them (`workers = 2`, `threads = 1` on 2 "
        "cores), at the cost of about one inference of latency and one more interpreter's memory each",
        min=1,
        max=MAX_THREADS,
    )
    top_k: int = _f(3, "classes per classification message", min=1, max=100)
    threshold: float = _f(0.0, "minimum score for a class to count (and for `average` smoothing)", min=0, max=1)
    calibrated: bool = _f(False, "also use the model's calibrated per-class thresholds (its `metrics.json` "
                                 "reference): a frame whose best class scores below its class's threshold is "
                                 "published as `label: null`, `unknown: true`")  # fmt: skip
    watch: bool = _f(True, "reload the model when its file changes (also on SIGHUP)")
    watch_interval_s: float = _f(2.0, "how often the model file's modification time is checked", min=0.1, max=3600)
    trusted_keys: tuple[str, ...] = _f(
        (),
        "Ed25519 public keys (`edge-deploy keygen`'s `.pub` files); when set, every model (and label file) is loaded "
        "only if its `.sig` beside it verifies with one of them, at start-up, on reload and in `check-config` "
        "(several keys: rotation); empty = models are not checked",
        path=1,
        length=8,
    )


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = _f(False, "connect with TLS")
    ca: str | None = _f(None, "CA certificate file to trust; default: the system's CAs", path=1)
    cert: str | None = _f(None, "client certificate file (with `key`)", path=1)
    key: str | None = _f(None, "client private key file (a secret: `$CREDENTIALS_DIRECTORY` first)", path=1, secret=1)
    insecure: bool = _f(False, "skip the server hostname check (testing only)")


@dataclass(frozen=True)
class MqttConfig:
    host: str = _f("localhost", "broker host name or address")
    port: int = _f(1883, "broker port (8883 is usual for TLS)", min=1, max=65535)
    username: str | None = _f(None, "user name; default: connect anonymously", mqtt="string")
    password_file: str | None = _f(None, "file holding the password (`$CREDENTIALS_DIRECTORY` first)", path=1, secret=1)
    client_id: str | None = _f(None, "MQTT client id; default: `edge-daemon-<device_id>`", mqtt="string")
    qos: int = _f(1, "QoS of published messages", choices=(0, 1, 2))
    keepalive: int = _f(60, "keepalive seconds", min=5, max=65535)
    topic_prefix: str = _f("edge", "first topic level(s): `<topic_prefix>/<device_id>/...`", mqtt="prefix")
    device_id: str | None = _f(
        None, "second topic level and Home Assistant id (letters, digits, `_-.`); default: the host name", mqtt="level"
    )
    queue_size: int = _f(1000, "messages kept while the broker is away (oldest dropped first)", min=1, max=100_000)
    label_topic: bool = _f(
        False, "also publish the plain label on `<topic_prefix>/<device_id>/label` (retained, on change), "
        "as Frigate's classification topics do"
    )
    tls: TlsConfig = field(default_factory=TlsConfig, metadata={"doc": "TLS settings"})


@dataclass(frozen=True)
class HomeAssistantConfig:
    discovery: bool = _f(True, "publish Home Assistant MQTT discovery configs (retained)")
    prefix: str = _f("homeassistant", "Home Assistant's discovery prefix", mqtt="prefix")


@dataclass(frozen=True)
class SmoothingConfig:
    mode: str = _f(
        "stable",
        "`stable`: publish a label change after `frames` frames in a row voted for it; `average`: when the best "
        "moving average over `frames` frames changes; `off`: publish every classified frame (no hysteresis, no "
        "dwell)",
        choices=SMOOTHING_MODES,
    )
    frames: int = _f(
        3, "frames a new label must hold (`stable`) or moving-average window (`average`)", min=1, max=1000
    )
    hysteresis: float = _f(
        0.1,
        "a new label must score this much more than the current one (and `model.threshold` + this to leave "
        "nothing): entering takes more than keeping, so a scene on the border does not flicker",
        min=0,
        max=1,
    )
    min_dwell_s: float = _f(
        10.0,
        "the least time between two published label changes; a change that comes sooner is published when "
        "the time is up, if it still holds (0 = none)",
        min=0,
        max=3600,
    )
    heartbeat_s: float = _f(60.0, "re-publish the current state this often; 0 = only on changes", min=0, max=86400)


@dataclass(frozen=True)
class RegionConfig:
    name: str = _f(None, "the region's name: its topics are `<topic_prefix>/<device_id>/<name>/...` (letters, digits, "
                         "`_-.`)", mqtt="level", required=1)  # fmt: skip
    box: tuple[float, ...] = _f(
        None, "`[x, y, w, h]`: pixels of the camera frame (needs camera.width/height), or fractions of it when "
        "all four are at most 1", required=1, min=0, max=16384, length=4,
    )  # fmt: skip
    model: str | None = _f(None, "this region's own .tflite classifier; default: `model.path`", path=1)
    labels: str | None = _f(None, "label file for this region's own model; default: its embedded labels", path=1)
    threshold: float | None = _f(None, "this region's `model.threshold`; default: the model's", min=0, max=1)
    mode: str | None = _f(None, "this region's `smoothing.mode`; default: `[smoothing]`'s", choices=SMOOTHING_MODES)
    frames: int | None = _f(None, "this region's `smoothing.frames`; default: `[smoothing]`'s", min=1, max=1000)
    hysteresis: float | None = _f(None, "this region's `smoothing.hysteresis`; default: `[smoothing]`'s", min=0,
                                  max=1)  # fmt: skip
    min_dwell_s: float | None = _f(None, "this region's `smoothing.min_dwell_s`; default: `[smoothing]`'s", min=0,
                                   max=3600)  # fmt: skip


@dataclass(frozen=True)
class CollectConfig:
    enabled: bool = _f(False, "keep the frames the policies below pick, for retraining (`edge-deploy collect`)")
    dir: str | None = _f(None, "where: `<dir>/<predicted label>/<stem>.jpg` + `.json`; default: `collected` in the "
                               "service's state directory (`$STATE_DIRECTORY`, else /var/lib/edge-daemon)")  # fmt: skip
    max_mb: float = _f(500.0, "hard quota for everything kept, MB; the oldest frames are deleted first", min=1,
                       max=1_000_000)  # fmt: skip
    min_free_mb: float = _f(200.0, "keep nothing while the file system has less free space than this, MB", min=0,
                            max=1_000_000)  # fmt: skip
    max_per_hour: int = _f(120, "frames kept in any hour at most, whatever the policies say", min=1, max=100_000)
    dedupe_s: float = _f(600.0, "skip a frame that looks like one this stream kept in the last this many seconds (a "
                               "near-duplicate by perceptual hash; it takes no slot of `max_per_hour`); 0 = off",
                         min=0, max=86400)  # fmt: skip
    below_score: float = _f(0.0, "keep a frame whose best score is below this (0 = off)", min=0, max=1)
    margin: float = _f(0.0, "keep a frame whose best score minus the second best is below this (0 = off)", min=0,
                       max=1)  # fmt: skip
    on_change: bool = _f(False, "keep the frames around a published label change (the last before, the first after)")
    on_drift: bool = _f(False, "keep every frame (within the quota and the hourly cap) while the stream's drift "
                               "state is `drifting`")  # fmt: skip
    every_s: float = _f(0.0, "keep one frame every this many seconds, a sample of the ordinary (0 = off)", min=0,
                        max=86400)  # fmt: skip
    jpeg_quality: int = _f(90, "JPEG quality of the kept frames", min=10, max=100)


@dataclass(frozen=True)
class DriftConfig:
    reference: str = _f("model", "`model`: judge drift against the reference the trainer embedded in the model's "
                                 "`metrics.json` (a model without one: drift `unavailable`); `off`: no drift "
                                 "tracking", choices=DRIFT_REFERENCES)  # fmt: skip
    window_s: float = _f(600.0, "the sliding window the drift is judged over, seconds", min=10, max=86400)
    min_frames: int = _f(300, "frames the window must hold before judging (until then: `learning`)", min=10,
                         max=1_000_000)  # fmt: skip
    threshold: float = _f(0.3, "the Jensen-Shannon divergence (0..1) between the window and the reference at "
                                "which the state turns `drifting`", min=0.001, max=1)  # fmt: skip
    unknown_rate: float = _f(0.25, "the share of unknown frames in the window at which the state turns "
                                   "`drifting`", min=0.001, max=1)  # fmt: skip
    hysteresis: float = _f(0.25, "`drifting` ends only when both figures fall below (1 - this) times their "
                                "thresholds", min=0, max=0.95)  # fmt: skip


@dataclass(frozen=True)
class StatsConfig:
    interval_s: float = _f(30.0, "publish statistics (and update the systemd status) this often", min=1, max=86400)


@dataclass(frozen=True)
class HttpConfig:
    listen: str | None = _f(
        None,
        "address:port of the live page, snapshots, `/healthz` and Prometheus `/metrics`, e.g. `127.0.0.1:8080` "
        "(this machine only) or `0.0.0.0:8080` (every interface: needs `token_file`); not set = no server",
    )
    token_file: str | None = _f(
        None,
        "file holding the access token clients must send (`Authorization: Bearer`), at least 16 visible ASCII "
        "characters (`$CREDENTIALS_DIRECTORY` first); required when `listen` is not a loopback address",
        path=1,
        secret=1,
    )
    max_clients: int = _f(8, "connections served at once (viewers, scrapes); more are refused with 503", min=1, max=64)
    stream_fps: float = _f(5.0, "frames per second at most sent to each `/stream.mjpg` viewer", min=0.1, max=30)


@dataclass(frozen=True)
class DeploymentConfig:
    state_file: str | None = _f(
        None,
        "pull mode: the pull agent's outcome file (`edge-deploy pull-setup` sets it), published retained on "
        "`<topic_prefix>/<device_id>/deployment` with a `deployment` event when it changes; not set = none",
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration, validated; `password` and `http_token` are the secrets read from
    `mqtt.password_file` and `http.token_file`."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    regions: tuple[RegionConfig, ...] = field(default=(), metadata={
        "doc": "regions of interest (`[[regions]]` tables): each is cropped from every classified frame, classified "
               "and published on its own; none: the whole frame, on the device's own topics"})  # fmt: skip
    password: Secret | None = field(default=None, metadata={"internal": 1})
    http_token: Secret | None = field(default=None, metadata={"internal": 1})
    source: str = field(default="<defaults>", metadata={"internal": 1})


def schema_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The schema fields of a config dataclass with their resolved types (internal fields left out)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
