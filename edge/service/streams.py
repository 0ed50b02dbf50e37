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

from edge.frames.regions import WHOLE_FRAME
from edge.inference.flow import Task
from edge.inference.model import Classifier
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


def fraction_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A region's box as fractions of the frame (pixel boxes refer to camera.width x camera.height)."""
    if max(box) <= 1:
        return tuple(float(v) for v in box)  # type: ignore[return-value]
    x, y, w, h = box
    return (x / width, y / height, w / width, h / height)


def new_smoother(cfg: Config, labels: Sequence[str], region=None) -> Smoother:  # region: RegionConfig | None
    """A smoother from `[smoothing]` and `[model]`, with a region's own settings where it gives them."""
    s, m = cfg.smoothing, cfg.model

    def pick(name: str, default: object) -> object:
        value = getattr(region, name, None) if region is not None else None
        return default if value is None else value

    return Smoother(labels, mode=pick("mode", s.mode), frames=pick("frames", s.frames), top_k=m.top_k,
                    threshold=pick("threshold", m.threshold), hysteresis=pick("hysteresis", s.hysteresis),
                    min_dwell_s=pick("min_dwell_s", s.min_dwell_s), heartbeat_s=s.heartbeat_s)  # fmt: skip


def build_streams(cfg: Config, models: dict[ModelKey, Classifier], sink: Sink) -> list[Stream]:
    """The streams of this config, with the loaded models (`models`: one per key of `model_keys`)."""
    m, cam = cfg.mqtt, cfg.camera
    if not cfg.regions:
        clf = models[main_key(cfg)]
        reporter = Reporter(sink, model=clf.spec.name, label_topic=m.label_topic)
        return [Stream(None, WHOLE_FRAME, main_key(cfg), new_smoother(cfg, clf.spec.labels), reporter)]
    streams = []
    for r in cfg.regions:
        key = region_key(cfg, r)
        spec = models[key].spec
        reporter = Reporter(sink, model=spec.name, label_topic=m.label_topic,
                            topics=stream_topics(m.topic_prefix, str(m.device_id), r.name))  # fmt: skip
        streams.append(Stream(r.name, fraction_box(r.box, cam.width, cam.height), key,
                              new_smoother(cfg, spec.labels, r), reporter))  # fmt: skip
    return streams


def region_labels(cfg: Config, models: dict[ModelKey, Classifier]) -> list[tuple[str, tuple[str, ...]]]:
    """(name, labels) of each region, for its Home Assistant entities (empty without regions)."""
    return [(r.name, models[region_key(cfg, r)].spec.labels) for r in cfg.regions]


def renew(cfg: Config, streams: Sequence[Stream], models: dict[ModelKey, Classifier]) -> None:
    """After a model reload: new smoothers for the new labels, the reporters told the new names."""
    regions = {r.name: r for r in cfg.regions}
    for s in streams:
        spec = models[s.model].spec
        s.smoother = new_smoother(cfg, spec.labels, regions.get(s.name))
        s.reporter.model = spec.name


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
        changed = decision is not None and decision.reason == "change"
        if decision is not None:
            payload = st.reporter.publish(decision, wall_time(st.smoother.changed_at))
            if changed:
                log.info("label%s: %s (%.2f)", f" ({st.name})" if st.name else "", payload["label"], payload["score"])
        if collector is not None and captured_at is not None:
            preds = top_k(class_scores, st.smoother.labels, 3)
            collector.offer(seq, i, preds, class_scores, now=now, changed=changed, model=st.reporter.model,
                            captured_at=captured_at, frame_no=frame_no)  # fmt: skip
