"""The camera grabber against real sources: video files written by OpenCV and an MJPEG HTTP stream."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edge.config.schema import CameraConfig
from edge.sources.camera import Camera, source_kind
from tests.support.media import MjpegServer, solid_frames, write_video


def read_n(cam: Camera, n: int, timeout: float = 10.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        f = cam.read(0.5)
        if f is not None:
            frames.append(f)
        elif cam.stats.ended:
            break
    return frames


@pytest.mark.parametrize(
    ("source", "kind"),
    [("0", "v4l2"), ("/dev/video2", "v4l2"), ("rtsp://cam/stream", "stream"), ("http://x/s.mjpg", "stream"),
     ("/data/clip.avi", "file")],
)  # fmt: skip
def test_source_kind(source: str, kind: str) -> None:
    assert source_kind(source) == kind


def test_video_file_loops_paced_at_its_frame_rate(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "c.avi", solid_frames(10), fps=50)
    with Camera(CameraConfig(source=str(clip), loop=True)) as cam:
        t0 = time.monotonic()
        frames = read_n(cam, 25)
        elapsed = time.monotonic() - t0
        st = cam.stats
    assert len(frames) == 25 and not st.ended  # past the 10-frame end: looped
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert elapsed >= 0.3  # 25 frames at 50 fps take ~0.5 s: paced, not read as fast as possible
    assert frames[0].image.shape == (96, 128, 3)


def test_video_file_ends_without_loop(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "c.avi", solid_frames(8), fps=100)
    with Camera(CameraConfig(source=str(clip), loop=False)) as cam:
        frames = read_n(cam, 100, timeout=3)
        assert cam.stats.ended and cam.stats.captured == 8
        assert cam.read(0.1) is None
    assert 1 <= len(frames) <= 8


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "c.avi", solid_frames(20), fps=50)
    with Camera(CameraConfig(source=str(clip), loop=True)) as cam:
        taken = []
        for _ in range(4):
            time.sleep(0.2)  # ~10 frames arrive meanwhile
            f = cam.read(1.0)
            assert f is not None
            taken.append(f)
            assert f.seq >= cam.stats.captured - 1  # the newest (or the one after it), not the oldest
        st = cam.stats
    assert st.dropped >= 20
    assert st.captured - st.dropped - len(taken) in (0, 1)  # every frame was either taken or dropped


def test_video_file_not_realtime_is_paced_by_the_consumer(tmp_path: Path) -> None:
    """realtime = false: every frame in order, none dropped, none decoded ahead of a slow consumer."""
    frames = solid_frames(12)
    clip = write_video(tmp_path / "c.avi", frames, fps=5)  # at its header's rate this would take 2.4 s
    with Camera(CameraConfig(source=str(clip), loop=False, realtime=False)) as cam:
        t0 = time.monotonic()
        taken = read_n(cam, 6)
        fast = time.monotonic() - t0
        time.sleep(0.3)  # a slow consumer: the camera must wait, holding at most one decoded frame
        assert cam.stats.captured == 7
        taken += read_n(cam, 100, timeout=2)
        st = cam.stats
    assert fast < 1.0  # not paced at 5 fps (6 frames would take 1.2 s)
    assert [f.seq for f in taken] == list(range(1, 13)) and st.ended
    assert st.dropped == 0 and st.captured == 12
    for got, want in zip(taken, frames, strict=True):  # the file's frames, in order (MJPG is lossy)
        assert np.abs(got.image.astype(int) - want.astype(int)).mean() < 8


def test_absent_source_is_retried_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = "http://admin:s3cret@127.0.0.1:9/none.mjpg"
    cam = Camera(CameraConfig(source=source, reconnect_min_s=0.1, reconnect_max_s=0.2, timeout_s=1)).start()
    try:
        assert cam.read(0.8) is None
        st = cam.stats
        assert not st.connected and not st.ended and st.captured == 0
        assert time.monotonic() - st.last_activity < 1.0  # retrying on schedule
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 1 and "admin:***@127.0.0.1" in logged[0] and "s3cret" not in logged[0]  # once
    finally:
        t0 = time.monotonic()
        cam.close()
        cam.close()  # idempotent
        assert time.monotonic() - t0 < 2.5


def test_absent_v4l2_device_is_retried_not_fatal() -> None:
    # No camera is attached on CI machines: this checks only the "absent at start-up" path of a V4L2 source
    # (a real capture needs a device; the daemon then reads it exactly like the other sources).
    with Camera(CameraConfig(source="/dev/video97", reconnect_min_s=0.1, reconnect_max_s=0.2)) as cam:
        assert cam.read(0.5) is None
        st = cam.stats
        assert not st.connected and not st.ended and time.monotonic() - st.last_activity < 1.0


def test_mjpeg_stream_killed_and_back_resumes(tmp_path: Path) -> None:
    server = MjpegServer(solid_frames(5), fps=25).start()
    cam = Camera(CameraConfig(source=server.url, reconnect_min_s=0.2, reconnect_max_s=0.5, timeout_s=2)).start()
    try:
        assert len(read_n(cam, 5)) == 5 and cam.stats.connected
        server.stop()
        deadline = time.monotonic() + 5
        while cam.stats.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not cam.stats.connected
        while cam.read(0.1) is not None:  # drain a frame captured before the cut
            pass
        time.sleep(0.6)
        assert cam.read(0.2) is None  # nothing while the stream is away
        server.start()
        back = read_n(cam, 3)
        st = cam.stats
        assert len(back) == 3 and st.connected and st.reconnects == 1
    finally:
        cam.close()
        server.stop()
