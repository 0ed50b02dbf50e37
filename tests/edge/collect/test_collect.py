"""Keeping hard frames on the device: the policies (a table, time passed in) and the store's quota on a real disk."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from edge.collect.policy import CollectPolicy, CollectRules, HourlyCap
from edge.collect.store import FrameStore, folder_name
from edge.inference.postprocess import Prediction


def preds(*scores: float) -> tuple[Prediction, ...]:
    return tuple(Prediction(i, f"c{i}", s) for i, s in enumerate(scores))


@pytest.mark.parametrize(
    ("rules", "frame", "changed", "expected"),
    [
        (CollectRules(below_score=0.6), preds(0.55, 0.3), False, ["below_score"]),
        (CollectRules(below_score=0.6), preds(0.65, 0.3), False, []),
        (CollectRules(margin=0.2), preds(0.5, 0.4), False, ["margin"]),
        (CollectRules(margin=0.2), preds(0.7, 0.2), False, []),
        (CollectRules(margin=0.2), preds(0.5), False, []),  # one class: no margin to speak of
        (CollectRules(on_change=True), preds(0.9, 0.05), True, ["on_change"]),
        (CollectRules(on_change=True), preds(0.9, 0.05), False, []),
        (CollectRules(below_score=0.9, margin=0.5, on_change=True), preds(0.6, 0.3), True,
         ["below_score", "margin", "on_change"]),
        (CollectRules(), preds(0.1, 0.09), True, []),  # everything off by default
    ],
)  # fmt: skip
def test_policies(rules, frame, changed, expected) -> None:
    assert CollectPolicy(rules).reasons(frame, 0.0, changed) == expected


def test_every_s_samples_and_the_hourly_cap_holds() -> None:
    policy = CollectPolicy(CollectRules(every_s=10.0))
    sampled = [t for t in range(0, 100) if policy.reasons(preds(0.9), float(t), False)]
    assert sampled == list(range(0, 100, 10))
    cap = HourlyCap(3)
    admitted = [t for t in range(0, 7200, 600) if cap.admit(float(t))]  # one every 10 minutes, 3 an hour
    assert admitted == [0, 600, 1200, 3600, 4200, 4800] and cap.refused == 6


@pytest.mark.parametrize(("label", "folder"), [("tabby cat", "tabby_cat"), ("a/b", "a_b"), (None, "none"),
                                               ("../x", "x"), ("Ankle_boot", "Ankle_boot")])  # fmt: skip
def test_folder_names_are_safe(label, folder) -> None:
    assert folder_name(label) == folder


def _wait_for(store: FrameStore, collected: int) -> None:
    deadline = time.monotonic() + 10
    while store.counters()["collected"] < collected:
        assert time.monotonic() < deadline, store.counters()
        time.sleep(0.02)


def test_the_quota_holds_and_the_oldest_go_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = FrameStore(tmp_path / "collected", max_bytes=60_000, min_free_bytes=0, queue_size=100).start()
    stems = []
    for i in range(40):  # noise JPEGs of ~6-7 kB each: about 9 fit in the quota
        stems.append(f"20261205T1200{i:02d}_000000_pi1_frame")
        sidecar = {"label": "cat" if i % 2 else "dog", "reason": "margin", "n": i}
        assert store.submit(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), sidecar, stems[-1])
        _wait_for(store, i + 1)
    store.close()
    files = sorted((tmp_path / "collected").glob("*/*"))
    total = sum(f.stat().st_size for f in files)
    counters = store.counters()
    assert total == counters["collect_bytes"] <= 60_000, (total, counters)
    kept = sorted(f.stem for f in files if f.suffix == ".jpg")
    assert kept == stems[-len(kept):] and len(kept) >= 5  # the newest, contiguous: the oldest were pruned
    assert counters["collect_pruned"] == 40 - len(kept)
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600  # the service user's only
    assert stat.S_IMODE((tmp_path / "collected" / "cat").stat().st_mode) == 0o700
    sidecar = json.loads((tmp_path / "collected" / "cat" / f"{stems[-1]}.json").read_text())
    assert sidecar == {"label": "cat", "reason": "margin", "n": 39}
    again = FrameStore(tmp_path / "collected", max_bytes=20_000, min_free_bytes=0).start()  # a smaller quota
    again.close()
    assert sum(f.stat().st_size for f in (tmp_path / "collected").glob("*/*")) <= 20_000


def test_low_disk_writes_nothing(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "c", max_bytes=10**9, min_free_bytes=10**18).start()  # more than any disk has
    store.submit(np.zeros((8, 8, 3), np.uint8), {"label": "x"}, "s")
    store.close()
    assert store.counters() == {"collected": 0, "collect_dropped": 1, "collect_pruned": 0, "collect_bytes": 0}
    assert not list((tmp_path / "c").glob("*/*"))
