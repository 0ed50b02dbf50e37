"""`csi:N` and `exec:COMMAND` cameras: a child process writing MJPEG, split into frames, restarted when it fails.

There is no CSI camera on a test machine, so `csi:0` runs a stand-in `rpicam-vid` put first on PATH
(`tests/support/streams.py`): it checks the flags the daemon passes and execs ffmpeg with the same size, rate
and codec, so the camera reads real MJPEG through the real parser. The stand-in can also die, hang, fail to
start and write garbage, which a real camera does too.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from edge.config.schema import CameraConfig
from edge.config.source_commands import command_for
from edge.sources.camera import Camera, source_kind
from edge.sources.pipe import PipeSource
from tests.support.media import solid_frames, write_video
from tests.support.streams import RpicamStandin, need_ffmpeg


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RpicamStandin:
    need_ffmpeg()
    clip = write_video(tmp_path / "scene.avi", solid_frames(10, (240, 320)), fps=10)
    s = RpicamStandin(tmp_path / "rpicam", clip)
    monkeypatch.setenv("PATH", f"{s.bin}{os.pathsep}{os.environ['PATH']}")
    return s


def cam_config(source: str, **kw: object) -> CameraConfig:
    base = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5, "timeout_s": 2.0}
    return CameraConfig(source=source, **{**base, **kw})  # type: ignore[arg-type]


def frames_from(cam: Camera, n: int, timeout: float = 15.0) -> list:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        f = cam.read(0.5)
        if f is not None:
            out.append(f)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.parametrize(("source", "kind"), [("csi:0", "csi"), ("exec:ffmpeg -i x -f mjpeg -", "exec")])
def test_source_kind(source: str, kind: str) -> None:
    assert source_kind(source) == kind


def test_csi_command_has_rpicam_vids_flags(standin: RpicamStandin) -> None:
    argv = command_for("csi:1", width=1280, height=720, frame_rate=15)
    assert argv[0] == str(standin.bin / "rpicam-vid")
    assert argv[1:] == ["--camera", "1", "--codec", "mjpeg", "--width", "1280", "--height", "720", "--framerate",
                        "15", "-t", "0", "--nopreview", "--flush", "-o", "-"]  # fmt: skip
    assert "--width" not in command_for("csi:0")  # 0 = the tool's default size


def test_exec_is_split_without_a_shell() -> None:
    assert command_for("exec:ffmpeg -i 'my clip.avi' -f mjpeg -") == ["ffmpeg", "-i", "my clip.avi", "-f", "mjpeg", "-"]
    for bad in ("exec:", "exec:ffmpeg 'unclosed", "csi:x"):
        with pytest.raises(ValueError):
            command_for(bad)


def test_csi_camera_gives_real_frames_at_the_asked_size(standin: RpicamStandin) -> None:
    with Camera(cam_config("csi:0", width=320, height=240, frame_rate=20)) as cam:
        frames = frames_from(cam, 5)
        assert cam.stats.connected
    assert len(frames) == 5
    assert all(f.jpeg is not None and f.pixels is None for f in frames)  # handed over undecoded
    assert frames[0].image.shape == (240, 320, 3)
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)
    (pid, args), *_ = standin.calls()
    assert args[:4] == ["--camera", "0", "--codec", "mjpeg"] and "--framerate" in args
    assert wait_until(lambda: not alive(pid), 5)  # closed: the child is gone


def test_child_that_dies_is_restarted_with_backoff_and_its_stderr_logged_once(
    standin: RpicamStandin, caplog: pytest.LogCaptureFixture
) -> None:
    standin.set("die", 3)
    caplog.set_level(logging.INFO, "edge.sources.camera")
    with Camera(cam_config("csi:0", width=160, height=120)) as cam:
        assert len(frames_from(cam, 3)) == 3
        assert wait_until(lambda: len(standin.calls()) >= 3, 15)  # died, restarted, died again ...
        standin.set("ok")
        assert wait_until(lambda: cam.stats.connected and cam.stats.reconnects >= 2, 15)
        assert len(frames_from(cam, 3)) == 3
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert lost and all("exited with status 3" in m and "camera frontend has timed out" in m for m in lost)
    assert len(lost) <= len(standin.calls())  # one line per failure, with the child's last words
    assert sum("back" in r.getMessage() for r in caplog.records) >= 1


def test_child_that_fails_to_start_is_retried_not_fatal(
    standin: RpicamStandin, caplog: pytest.LogCaptureFixture
) -> None:
    standin.set("fail")
    with Camera(cam_config("csi:0")) as cam:
        assert cam.read(1.5) is None
        assert len(standin.calls()) >= 2 and not cam.stats.connected and cam.stats.reconnects == 0
        standin.set("ok")
        assert len(frames_from(cam, 2)) == 2
        assert cam.stats.reconnects == 1
    said = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert len(said) == 1 and "no cameras available" in said[0] and "status 255" in said[0]


def test_hanging_child_is_killed_after_the_timeout(standin: RpicamStandin, caplog: pytest.LogCaptureFixture) -> None:
    standin.set("hang", 2)
    with Camera(cam_config("csi:0", width=160, height=120, timeout_s=1.0)) as cam:
        assert len(frames_from(cam, 2)) == 2
        first_pid = standin.calls()[0][0]
        assert wait_until(lambda: len(standin.calls()) >= 2, 10)  # no frame for 1 s: killed and restarted
        assert wait_until(lambda: not alive(first_pid), 5)
    assert any("no complete JPEG frame for 1 s" in r.getMessage() for r in caplog.records)
    assert all(not alive(pid) for pid, _ in standin.calls())  # close() took the sleeping child's group too


def test_garbage_is_not_a_frame_and_memory_stays_bounded(standin: RpicamStandin) -> None:
    standin.set("garbage")
    src = PipeSource(lambda: command_for("csi:0"), "csi:0", timeout_s=1.0, max_frame_bytes=1 << 20)
    try:
        assert src.open() is None
        t0 = time.monotonic()
        assert not src.grab()
        assert 0.9 <= time.monotonic() - t0 < 3
        assert "no complete JPEG frame for 1 s" in src.failure and "bytes of other data" in src.failure
        assert src._splitter.buffered < (1 << 20) + (1 << 16)
    finally:
        pid = src._proc.pid if src._proc else None
        src.close()
    assert pid is not None and not alive(pid)


def test_exec_source_runs_any_mjpeg_command(tmp_path: Path) -> None:
    ffmpeg = need_ffmpeg()
    clip = write_video(tmp_path / "c.avi", solid_frames(6, (96, 128)), fps=10)
    source = f"exec:{ffmpeg} -hide_banner -loglevel error -re -stream_loop -1 -i '{clip}' -c:v mjpeg -f mjpeg -"
    with Camera(cam_config(source)) as cam:
        frames = frames_from(cam, 4)
    assert len(frames) == 4
    img = frames[-1].image
    assert img.shape == (96, 128, 3) and np.abs(img[:, :, 1].astype(int) - solid_frames(1)[0][:, :, 1]).mean() < 10


def test_close_stops_the_child_group(standin: RpicamStandin) -> None:
    cam = Camera(cam_config("csi:0", width=160, height=120)).start()
    assert len(frames_from(cam, 2)) == 2
    pid = standin.calls()[0][0]
    assert alive(pid)
    t0 = time.monotonic()
    cam.close(timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    assert wait_until(lambda: not alive(pid), 3)


def test_credentials_in_an_exec_command_and_its_stderr_are_masked(tmp_path: Path, caplog) -> None:
    script = tmp_path / "cam.sh"
    script.write_text("#!/bin/sh\necho \"cannot open rtsp://admin:s3cret@cam/live: 401 Unauthorized\" >&2\nexit 1\n")
    script.chmod(0o755)
    source = f"exec:{script} -i 'rtsp://admin:s3cret@cam/live' -f mjpeg -"
    with Camera(cam_config(source)) as cam:
        assert "s3cret" not in cam.name and "admin:***@cam" in cam.name
        assert cam.read(1.0) is None
    said = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert said and "401 Unauthorized" in said[0] and "s3cret" not in said[0] and "admin:***@cam" in said[0]
