"""Classification streams: the whole frame, or one per region of interest, each with its model, smoother, reporter.

The models themselves are opened by `edge.service.models`; a stream names its model by key.

Without `[[regions]]` there is one stream, the whole frame, published on the device's own topics (as before
regions existed). With regions, each region is a stream: cropped from every classified frame (one decode per
frame, shared), classified by its own model or the main one (one interpreter per distinct model and worker),
smoothed by its own settings and published on `<prefix>/<device_id>/<region>/...`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.errors import EdgeError
from edge.frames.regions import WHOLE_FRAME
from edge.inference.drift import DriftRules, DriftTracker
from edge.inference.flow import Task
from edge.inference.labels import read_reference
from edge.inference.model import Classifier, ModelSpec
from edge.inference.postprocess import top_k
from edge.inference.smoothing import Smoother
from edge.mqtt.contract import stream_topics
from edge.service.models import ModelKey, main_key, region_key
from edge.service.reporter import Reporter, Sink, wall_time

if TYPE_CHECKING:
    from edge.collect.collector import Collector
    from edge.config.schema import Config
    from edge.inference.workers import Runner

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Stream:
    """One thing classified on every frame: a region (`name`) or the whole frame (`name` None)."""

    name: str | None
    box: tuple[float, float, float, float]  # fractions of the frame
    model: ModelKey
    smoother: Smoother
    reporter: Reporter
    drift: DriftTracker


def fraction_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A region's box as fractions of the frame (pixel boxes refer to camera.width x camera.height)."""
    if max(box) <= 1:
        return tuple(float(v) for v in box)  # type: ignore[return-value]
    x, y, w, h = box
    return (x / width, y / height, w / width, h / height)


def new_tracker(cfg: Config, spec: ModelSpec, now: float) -> DriftTracker:
    """A drift tracker from `[drift]` and the reference the model carries (none or malformed: `unavailable`)."""
    d = cfg.drift
    rules = DriftRules(d.window_s, d.min_frames, d.threshold, d.unknown_rate, d.hysteresis)
    if d.reference == "off":
        return DriftTracker(rules, None, now, 'turned off ([drift] reference = "off")')
    try:
        reference = read_reference(spec.path, spec.labels)
    except EdgeError as e:
        log.warning("drift unavailable: %s", e)
        return DriftTracker(rules, None, now, str(e))
    why = None if reference else f"{spec.name} carries no drift reference (not made by this edge-train)"
    return DriftTracker(rules, reference, now, why)


def new_smoother(cfg: Config, labels: Sequence[str], region=None,  # region: RegionConfig | None
                 drift: DriftTracker | None = None) -> Smoother:  # fmt: skip
    """A smoother from `[smoothing]` and `[model]`, with a region's own settings where it gives them (and the
    calibrated thresholds of the drift tracker's reference with `[model] calibrated`)."""
    s, m = cfg.smoothing, cfg.model
    floors = drift.reference.threshold if m.calibrated and drift is not None and drift.reference else None

    def pick(name: str, default: object) -> object:
        value = getattr(region, name, None) if region is not None else None
        return default if value is None else value

    return Smoother(labels, mode=pick("mode", s.mode), frames=pick("frames", s.frames), top_k=m.top_k,
                    threshold=pick("threshold", m.threshold), hysteresis=pick("hysteresis", s.hysteresis),
                    min_dwell_s=pick("min_dwell_s", s.min_dwell_s), heartbeat_s=s.heartbeat_s,
                    floors=floors)  # fmt: skip


def build_streams(cfg: Config, models: dict[ModelKey, Classifier], sink: Sink, now: float) -> list[Stream]:
    """The streams of this config, with the loaded models (`models`: one per key of `model_keys`); each publishes
    its first drift state (`learning`, or `unavailable` and why)."""
    m, cam = cfg.mqtt, cfg.camera
    streams = []
    for r in cfg.regions or [None]:
        key = region_key(cfg, r) if r else main_key(cfg)
        spec = models[key].spec
        topics = stream_topics(m.topic_prefix, str(m.device_id), r.name) if r else None
        drift = new_tracker(cfg, spec, now)
        streams.append(Stream(r.name if r else None, fraction_box(r.box, cam.width, cam.height) if r else WHOLE_FRAME,
                              key, new_smoother(cfg, spec.labels, r, drift),
                              Reporter(sink, model=spec.name, label_topic=m.label_topic, topics=topics), drift))
        report_drift(streams[-1], changed=False)
    return streams


def report_drift(st: Stream, *, changed: bool) -> None:
    """Publish a stream's drift state (retained; with `changed`, an event and a log line too)."""
    state = st.drift.state
    st.reporter.drift(state, since=wall_time(state.since), region=st.name, changed=changed)
    if changed:
        log.log(logging.WARNING if state.state == "drifting" else logging.INFO,
                "drift%s: %s (divergence %.3f, threshold %g, unknown rate %.1f %%, %d frames)",
                f" ({st.name})" if st.name else "", state.state, state.score or 0.0, state.threshold,
                100 * (state.unknown_rate or 0.0), state.frames)  # fmt: skip


def region_labels(cfg: Config, models: dict[ModelKey, Classifier]) -> list[tuple[str, tuple[str, ...]]]:
    """(name, labels) of each region, for its Home Assistant entities (empty without regions)."""
    return [(r.name, models[region_key(cfg, r)].spec.labels) for r in cfg.regions]


def renew(cfg: Config, streams: Sequence[Stream], models: dict[ModelKey, Classifier], now: float) -> None:
    """After a model reload: new drift trackers and smoothers for the new model, the reporters told the new names."""
    regions = {r.name: r for r in cfg.regions}
    for s in streams:
        spec = models[s.model].spec
        s.drift = new_tracker(cfg, spec, now)
        s.smoother = new_smoother(cfg, spec.labels, regions.get(s.name), s.drift)
        s.reporter.model = spec.name
        report_drift(s, changed=True)


def tasks_and_runners(streams: Sequence[Stream], workers: Sequence[dict[ModelKey, Classifier]],
                      ) -> tuple[list[Task], list[list[Runner]]]:  # fmt: skip
    """What every frame is classified with (one task per stream) and, per worker, each task's interpreter."""
    any_worker = workers[0]
    tasks = [Task(any_worker[s.model].spec.input, s.box) for s in streams]
    return tasks, [[worker[s.model].infer for s in streams] for worker in workers]


def publish_result(streams: Sequence[Stream], scores: Sequence[np.ndarray], inference_ms: Sequence[float], *,
                   seq: int, frame_no: int, captured_at: float | None, now: float,
                   collector: Collector | None = None) -> None:  # fmt: skip
    """One frame's scores, stream by stream: smooth, publish what the smoother decides, offer it for collection.

    `seq`: the camera's frame number; `frame_no`: frames classified so far; `captured_at`: Unix time.
    """
    for i, (st, class_scores, ms) in enumerate(zip(streams, scores, inference_ms, strict=True)):
        st.reporter.frame(frame_no, ms, captured_at)
        decision = st.smoother.update(class_scores, now)
        if st.drift.update(class_scores, now) is not None:
            report_drift(st, changed=True)
        changed = decision is not None and decision.reason == "change"
        if decision is not None:
            payload = st.reporter.publish(decision, wall_time(st.smoother.changed_at))
            if changed:
                log.info("label%s: %s (%.2f)", f" ({st.name})" if st.name else "", payload["label"], payload["score"])
        if collector is not None and captured_at is not None:
            preds = top_k(class_scores, st.smoother.labels, 3)
            collector.offer(seq, i, preds, class_scores, now=now, changed=changed, model=st.reporter.model,
                            captured_at=captured_at, frame_no=frame_no, drifting=st.drift.drifting)  # fmt: skip
