"""The device keeping what it finds hard: `[collect]` policies applied to every classified frame, per stream.

The service hands over each frame as it is taken for classification (`taken`, kept only while it is in flight)
and each stream's result (`offer`). When a policy picks the result (`edge.collect.policy`), the frame goes to the
store's thread, which hashes its region from a 1/8 gray decode and skips it when the stream kept a near-duplicate
within `dedupe_s`; else, when the hourly cap allows, the region is decoded at full size and stored
(`edge.collect.store`) with its sidecar: scores, top-k, model, device, region, reason, capture time. The
classifier never waits for a decode or the disk, duplicates take no slot of the hourly cap, and a frame picked
while the hour has no slot left is counted as capped at once, never queued behind the writes.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.collect.policy import CollectPolicy, CollectRules, HourlyCap, RecentPictures
from edge.collect.store import FrameStore
from edge.frames.decode import decode_jpeg, frame_size, reduction
from edge.frames.frame import Frame
from edge.frames.regions import crop, pixel_box
from edge.frames.similar import dhash
from edge.inference.postprocess import Prediction
from edge.mqtt.contract import iso_utc

if TYPE_CHECKING:
    from edge.config.schema import CollectConfig

IN_FLIGHT = 32  # frames remembered between being taken and their result (workers + a margin)
HASH_SIZE = (32, 32)  # the region decoded at least this large for its hash (dHash reads 9x8)


def region_gray(frame: Frame, box: Sequence[float]) -> np.ndarray | None:
    """The frame's region in gray, as small as its hash allows (a JPEG decoded at 1/2 to 1/8); None: undecodable."""
    if frame.jpeg is None:
        return None if frame.pixels is None else crop(frame.pixels, box)
    size = frame_size(frame.jpeg)
    if size is None:
        return None
    x0, y0, x1, y1 = pixel_box(box, *size)
    small = decode_jpeg(frame.jpeg, reduction((x1 - x0, y1 - y0), HASH_SIZE), gray=True)
    w, h = size
    return None if small is None else crop(small, (x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h))


class Collector:
    """Applies the policies to each stream's results and stores the frames they pick.

    Args:
        cfg: the ``[collect]`` section (its `dir` resolved by the config layer).
        device_id: in the sidecars and file names.
        streams: (region name or None, box in fractions) of each stream, in result order.
    """

    def __init__(self, cfg: CollectConfig, device_id: str, streams: Sequence[tuple[str | None, Sequence[float]]]):
        rules = CollectRules(cfg.below_score, cfg.margin, cfg.on_change, cfg.every_s, cfg.max_per_hour,
                             cfg.on_drift)  # fmt: skip
        cap = HourlyCap(cfg.max_per_hour)
        self._policies = [CollectPolicy(rules, cap) for _ in streams]
        self._streams, self._device = list(streams), device_id
        self._store = FrameStore(Path(str(cfg.dir)), max_bytes=int(cfg.max_mb * 1e6),
                                 min_free_bytes=int(cfg.min_free_mb * 1e6), jpeg_quality=cfg.jpeg_quality)  # fmt: skip
        self._frames: OrderedDict[int, Frame] = OrderedDict()
        self._previous: list[tuple[Frame, dict] | None] = [None for _ in streams]  # each stream's last frame, sidecar
        self._recent = [RecentPictures(cfg.dedupe_s) for _ in streams]  # used on the store's thread only
        self._cap, self._dedupe, self._duplicates = cap, cfg.dedupe_s > 0, 0

    def start(self) -> Collector:
        """Create the folder and start the writer."""
        self._store.start()
        return self

    def taken(self, frame: Frame) -> None:
        """A camera frame was handed to the classifier (kept until its result comes, at most IN_FLIGHT)."""
        self._frames[frame.seq] = frame
        while len(self._frames) > IN_FLIGHT:
            self._frames.popitem(last=False)

    def offer(self, seq: int, stream: int, predictions: Sequence[Prediction], scores: np.ndarray, *, now: float,
              changed: bool, model: str, captured_at: float, frame_no: int,
              drifting: bool = False) -> None:  # fmt: skip
        """One stream's result for frame `seq`: keep the frame if a policy picks it (and the frame around a change)."""
        frame = self._frames.get(seq)
        if frame is None:
            return
        region, _ = self._streams[stream]
        best = predictions[0] if predictions else None
        sidecar = {"label": best.label if best else None, "index": best.index if best else None,
                   "score": round(best.score, 4) if best else 0.0,
                   "top_k": [{"index": p.index, "label": p.label, "score": round(p.score, 4)} for p in predictions],
                   "scores": [round(float(v), 4) for v in scores], "model": model, "device": self._device,
                   "region": region, "reason": [], "captured_at": iso_utc(captured_at), "frame": frame_no}  # fmt: skip
        reasons = self._policies[stream].reasons(predictions, now, changed, drifting)
        before, self._previous[stream] = self._previous[stream], (frame, sidecar)
        if changed and "on_change" in reasons and before is not None:
            self._keep(before[0], stream, {**before[1], "reason": ["before_change"]}, now)
        if reasons:
            self._keep(frame, stream, {**sidecar, "reason": reasons}, now)

    def _keep(self, frame: Frame, stream: int, sidecar: dict, now: float) -> None:
        if self._cap.full(now):  # refused whatever it shows: not queued behind the writes
            return
        region, box = self._streams[stream]
        stamp = dt.datetime.fromisoformat(sidecar["captured_at"].replace("Z", "+00:00")).strftime("%Y%m%dT%H%M%S_%f")
        stem = f"{stamp}_{self._device}_{region or 'frame'}"
        recent = self._recent[stream]

        def image() -> np.ndarray | None:  # on the store's thread: None = not kept
            picture = None
            if self._dedupe:
                small = region_gray(frame, box)
                if small is None:
                    raise OSError("the frame does not decode")
                picture = dhash(small)
                if recent.duplicate(picture, now):
                    self._duplicates += 1
                    return None
            if not self._cap.admit(now):
                return None
            full = frame.image  # decoded at full size
            if full is None:
                raise OSError("the frame does not decode")
            if picture is not None:
                recent.add(picture, now)
            return np.ascontiguousarray(crop(full, box))

        self._store.submit(image, sidecar, stem)

    def counters(self) -> dict[str, int]:
        """The store's counters, the frames the hourly cap refused (`collect_capped`) and the near-duplicates of
        frames kept within `dedupe_s` that were skipped (`collect_duplicates`)."""
        return {**self._store.counters(), "collect_capped": self._cap.refused, "collect_duplicates": self._duplicates}

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, within `timeout`."""
        self._store.close(timeout)
