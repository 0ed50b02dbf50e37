"""`edge-daemon run` on the camera sources of issue 14 and the parallel workers of issue 18, end to end.

- `csi:0` through a stand-in `rpicam-vid` (no CSI camera exists here; see tests/support/streams.py) that execs
  ffmpeg with the daemon's flags: the right labels arrive, and SIGTERM takes the child with the daemon.
- RTSP for real: GStreamer's RTSP server on loopback serving an H.264 clip; the daemon asks for TCP, the
  server killed gives `camera_lost`, restarted the classifications resume within the backoff.
- `model.workers = 2`: two interpreters, results published in frame order.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.edge.conftest import CLI, REPO
from tests.edge.service.test_daemon import T, config, payloads, wait_payload
from tests.edge.sources.test_pipe_source import alive, wait_until
from tests.support.media import write_video
from tests.support.mosquitto import free_port
from tests.support.streams import RpicamStandin, RtspServer, h264_clip, need_ffmpeg, rtsp_server_available


@pytest.fixture
def first_class_clip(tmp_path: Path, fm_segments) -> Path:
    """2 s at 10 fps of the bundled clip's first class (a Fashion-MNIST test image)."""
    return write_video(tmp_path / "first.avi", [fm_segments[0][1]] * 20, fps=10)


def test_csi_camera_classifies_and_sigterm_stops_rpicam_vid(
    mosquitto, subscriber_factory, daemon_factory, demo_model, first_class_clip, fm_labels, tmp_path
) -> None:
    need_ffmpeg()
    standin = RpicamStandin(tmp_path / "rpicam", first_class_clip)
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    cfg = config(tmp_path, mosquitto, demo_model, "csi:0", camera={"width": 320, "height": 240, "frame_rate": 15,
                 "max_rate": 5.0}, smoothing={"mode": "off"})  # fmt: skip
    d = daemon_factory(cfg, {"PATH": f"{standin.bin}{os.pathsep}{os.environ['PATH']}"})
    first = wait_payload(sub, f"{T}/classification", lambda p: True, timeout=30)
    assert first["label"] == fm_labels[0]
    wait_payload(sub, f"{T}/event", lambda p: p["event"] == "camera_connected" and p["source"] == "csi:0")
    stats = wait_payload(sub, f"{T}/stats", lambda p: p["frames_classified"] >= 5 and p["fps_classified"] > 0, 15)
    assert stats["camera_connected"] and stats["fps_captured"] > stats["fps_classified"]
    (pid, args), *_ = standin.calls()
    assert args == ["--camera", "0", "--codec", "mjpeg", "--width", "320", "--height", "240", "--framerate", "15",
                    "-t", "0", "--nopreview", "--flush", "-o", "-"]  # fmt: skip
    assert alive(pid)
    rc, took = d.stop()
    assert rc == 0 and took < 5, d.log()
    assert wait_until(lambda: not alive(pid), 3), "rpicam-vid outlived the daemon"
    assert "opened: rpicam-vid" in d.log()


def test_check_config_refuses_a_csi_camera_without_rpicam_vid(demo_model, tmp_path: Path) -> None:
    cfg = config(tmp_path, None, demo_model, "csi:0")
    env = {**os.environ, "PATH": "/nonexistent"}
    out = subprocess.run([*CLI, "check-config", str(cfg)], capture_output=True, text=True, cwd=REPO, env=env,
                         check=False, timeout=60)  # fmt: skip
    assert out.returncode == 2, out
    assert out.stderr.strip().count("\n") == 0 and "apt install rpicam-apps" in out.stderr
    cfg = config(tmp_path, None, demo_model, "exec:no-such-program -f mjpeg -")
    out = subprocess.run([*CLI, "check-config", str(cfg)], capture_output=True, text=True, cwd=REPO, check=False,
                         timeout=60)  # fmt: skip
    assert out.returncode == 2 and "'no-such-program' is not an executable on PATH" in out.stderr, out


@pytest.fixture
def rtsp_clip(tmp_path: Path, first_class_clip: Path) -> Path:
    reason = rtsp_server_available()
    if reason:
        pytest.skip(reason)
    return h264_clip(first_class_clip, tmp_path / "first.mkv", seconds=90, fps=10)


def test_rtsp_stream_over_tcp_killed_and_restarted(
    mosquitto, subscriber_factory, daemon_factory, demo_model, rtsp_clip, fm_labels, tmp_path
) -> None:
    server = RtspServer(rtsp_clip, free_port()).start()
    try:
        sub = subscriber_factory(mosquitto, [f"{T}/#"])
        cfg = config(tmp_path, mosquitto, demo_model, server.url, camera={"max_rate": 5.0, "timeout_s": 3.0},
                     smoothing={"mode": "off"})  # fmt: skip
        d = daemon_factory(cfg)
        first = wait_payload(sub, f"{T}/classification", lambda p: True, timeout=30)
        assert first["label"] == fm_labels[0]
        assert server.setups and all("RTP/AVP/TCP" in s for s in server.setups), server.setups  # asked for TCP

        server.kill()
        lost = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "camera_lost", timeout=15)
        assert lost["source"] == server.url
        time.sleep(0.5)
        n = max(p["frame"] for p in payloads(sub, f"{T}/classification"))

        server.start()
        back_at = time.monotonic()
        wait_payload(sub, f"{T}/event", lambda p: p["event"] == "camera_connected" and p["reconnects"] >= 1,
                     timeout=20)  # fmt: skip
        resumed = wait_payload(sub, f"{T}/classification", lambda p: p["frame"] > n, timeout=20)
        # backoff 0.2-1 s, plus the RTSP open (DESCRIBE/SETUP/PLAY and the first key frame)
        assert time.monotonic() - back_at < 15
        assert resumed["label"] == fm_labels[0]
        rc, _ = d.stop()
        assert rc == 0
        log = d.log()
        assert "lost; retrying" in log and "back: 320x240 h264" in log, log
    finally:
        server.kill()


def test_two_workers_publish_in_frame_order(
    mosquitto, subscriber_factory, daemon_factory, demo_model, fm_clip, fm_labels, tmp_path
) -> None:
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    cfg = config(tmp_path, mosquitto, demo_model, fm_clip, camera={"realtime": False, "loop": True},
                 model={"workers": 2, "threads": 1}, smoothing={"mode": "off", "heartbeat_s": 0.0})  # fmt: skip
    d = daemon_factory(cfg)
    sub.wait_for_topic(f"{T}/classification", count=200, timeout=60)
    rc, _ = d.stop()
    assert rc == 0
    got = [p for p in payloads(sub, f"{T}/classification") if p["reason"] != "reconnect"]  # not the state re-sent
    assert [p["frame"] for p in got] == list(range(got[0]["frame"], got[0]["frame"] + len(got)))
    stamps = [p["timestamp"] for p in got]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # capture times: frame order, none twice
    # the clip is 20 frames of one class, then 20 of another, looping, none dropped (realtime = false): in
    # frame order the labels change every 20 frames, never back and forth
    labels = [p["label"] for p in got]
    changes = sum(a != b for a, b in itertools.pairwise(labels))
    assert set(labels) == set(fm_labels[:2]) and changes <= len(labels) // 20 + 1, labels
    assert "2 workers x 1 thread" in d.log()
