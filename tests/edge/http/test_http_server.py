"""`edge.http.server` on a real socket: routes, the token, JPEGs only while watched, streams, and clients that
misbehave (stalled, too many, too slow, too big). The daemon's state comes from a `Snapshot` the test builds
(real counters types, real frames of the bundled clip and real scores of the bundled model); the whole daemon
with a real browser and a real Prometheus is tests/edge/http/test_http_daemon.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.config.schema import HttpConfig, Secret
from edge.errors import EdgeError
from edge.http.routes import HEAD_TIMEOUT_S, MAX_HEAD_BYTES, WRITE_TIMEOUT_S
from edge.http.server import HttpServer
from edge.http.state import Snapshot
from edge.inference.model import load_model
from edge.sources.camera import CameraStats, CapturedFrame
from tests.support.http_clients import (
    MjpegReader,
    closed_by_server,
    get,
    idle_connections,
    raw_request,
    stalled_stream,
)
from tests.support.mosquitto import free_port

TOKEN = "0123456789abcdef-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def snapshot(classified: int = 5) -> Snapshot:
    cam = CameraStats(captured=10, dropped=2, reconnects=1, connected=True, ended=False, last_activity=0.0,
                      open_failures=0)  # fmt: skip
    mqtt = {"mqtt_reconnects": 3, "queued": 4, "dropped": 5, "published": 6}
    return Snapshot(cam, "/dev/video0", mqtt, True, classified, 0, 12.5, time.time() - 12.5, "demo_model", "cpu",
                    {None: None})  # fmt: skip


class Feeder:
    """Offers real frames with the bundled model's real scores to a server's tap, like the daemon's loop."""

    def __init__(self, server: HttpServer, frames: list[np.ndarray], scores: list[np.ndarray], labels) -> None:
        self.server, self.frames, self.scores, self.labels = server, frames, scores, labels
        self.offer_s: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, i: int, jpeg: bool = False) -> None:
        """Frame i as the loop hands it over: taken from the camera (decoded pixels, or a JPEG camera's bytes),
        then its result."""
        k = i % len(self.frames)
        image = self.frames[k]
        if jpeg:
            frame = CapturedFrame(i + 1, time.monotonic(), jpeg=np.frombuffer(cv2.imencode(".jpg", image)[1], np.uint8))
        else:
            frame = CapturedFrame(i + 1, time.monotonic(), pixels=image)
        t0 = time.perf_counter()
        self.server.tap.taken(frame)
        self.server.tap.offer(frame.seq, 1.5, [(None, (0, 0, 1, 1), self.scores[k], self.labels)])
        self.offer_s.append(time.perf_counter() - t0)

    def run(self, fps: float) -> Feeder:
        def loop() -> None:
            i = 0
            while not self._stop.wait(1.0 / fps):
                self.offer(i)
                i += 1

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)


@pytest.fixture(scope="module")
def verdicts(demo_model, fm_segments) -> tuple[list[np.ndarray], list[np.ndarray], tuple[str, ...]]:
    """The bundled clip's first frames and the bundled model's scores for them."""
    with load_model(str(demo_model), device="cpu", threads=1) as clf:
        frames = [frame for _, frame in fm_segments[:4]]
        return frames, [clf.scores(f) for f in frames], clf.spec.labels


@pytest.fixture
def serve(verdicts) -> Iterator[Callable[..., tuple[HttpServer, Feeder]]]:
    made: list[tuple[HttpServer, Feeder]] = []

    def make(token: str | None = None, snap: Callable[[], Snapshot] = snapshot, **cfg) -> tuple[HttpServer, Feeder]:
        section = HttpConfig(listen=f"127.0.0.1:{free_port()}", **cfg)
        server = HttpServer(section, token=Secret(token, "test") if token else None, snapshot=snap).start()
        feeder = Feeder(server, *verdicts)
        made.append((server, feeder))
        return server, feeder

    yield make
    for server, feeder in made:
        feeder.stop()
        server.stop()


def test_routes_methods_and_headers(serve) -> None:
    server, feeder = serve()
    port = server.where.port
    page = get(port, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"stream.mjpg" in page.body and b"api/state" in page.body
    assert "script-src 'sha256-" in page.headers["content-security-policy"] and "unsafe" not in page.text
    head = get(port, "/", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == page.headers["content-length"]
    assert get(port, "/nope").status == 404
    assert get(port, "/../../etc/passwd").status == 404
    assert get(port, "/api/state/").status == 404
    post = get(port, "/api/state", method="POST")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    assert get(port, "/", method="BREW").status == 501
    assert get(port, "/api/state?" + "&".join(f"k{i}=1" for i in range(50))).status == 400
    # no token: only URLs naming the machine by address (a rebound DNS name is another site reading the camera)
    assert get(port, "/snapshot.jpg", headers={"Host": f"attacker.example:{port}"}).status == 403
    assert get(port, "/", headers={"Host": f"localhost:{port}"}).status == 200
    assert get(port, "/", headers={"Host": f"[::1]:{port}"}).status == 200

    healthz = get(port, "/healthz")  # no frame yet
    assert healthz.status == 503 and healthz.text.startswith("unhealthy: starting"), healthz.text
    feeder.offer(0)
    healthz = get(port, "/healthz")
    assert healthz.status == 200 and healthz.text.startswith("ok: classifying"), healthz.text
    state = get(port, "/api/state")
    assert state.status == 200 and state.headers["content-type"] == "application/json"
    assert state.headers["cache-control"] == "no-store"


def test_the_token(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server, feeder = serve(token=TOKEN)
    port = server.where.port
    feeder.offer(0)
    assert get(port, "/").status == 200  # the page holds no data: it asks for the token itself
    assert get(port, "/healthz", headers={**AUTH, "Host": "pi.lan:8080"}).status == 200  # names are fine with a token
    for path in ("/api/state", "/healthz", "/metrics", "/snapshot.jpg", "/stream.mjpg"):
        denied = get(port, path)
        assert denied.status == 401 and denied.headers["www-authenticate"].startswith("Bearer"), path
        assert get(port, path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status == 401
        assert get(port, path, headers={"Authorization": f"Basic {TOKEN}"}).status == 401
    for path in ("/api/state", "/healthz", "/metrics", "/snapshot.jpg"):
        assert get(port, path, headers=AUTH).status == 200, path
    # ?token= only where the page cannot send a header: its <img> requests
    assert get(port, f"/snapshot.jpg?token={TOKEN}").status == 200
    reader = MjpegReader(port, f"/stream.mjpg?token={TOKEN}")
    assert reader.response.status == 200 and reader.next_jpeg()[:2] == b"\xff\xd8"
    reader.close()
    for path in ("/api/state", "/healthz", "/metrics"):
        assert get(port, f"{path}?token={TOKEN}").status == 401, path
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert any("without a valid token" in r.getMessage() for r in caplog.records)


def test_snapshots_and_jpegs_only_while_watched(serve, verdicts) -> None:
    frames, _scores, _labels = verdicts
    server, feeder = serve()
    port = server.where.port
    assert get(port, "/snapshot.jpg").status == 503  # nothing classified yet
    for i in range(40):
        feeder.offer(i)
    for path in ("/api/state", "/healthz", "/metrics", "/"):
        get(port, path)
    assert server.tap.encoded == 0  # frames came, state was read, nobody looked at a picture

    overlay = get(port, "/snapshot.jpg")
    assert overlay.status == 200 and overlay.headers["content-type"] == "image/jpeg"
    assert get(port, "/snapshot.jpg").body == overlay.body  # the same frame is encoded once
    assert server.tap.encoded == 1
    picture = cv2.imdecode(np.frombuffer(overlay.body, np.uint8), cv2.IMREAD_COLOR)
    newest = frames[39 % len(frames)]
    assert picture.shape[1] == max(480, min(newest.shape[1], 960))  # sized for viewing

    raw = cv2.imdecode(np.frombuffer(get(port, "/snapshot.jpg?raw=1").body, np.uint8), cv2.IMREAD_COLOR)
    assert raw.shape == newest.shape and np.abs(raw.astype(int) - newest).mean() < 4  # the frame as captured
    assert server.tap.encoded == 2
    band = picture[: picture.shape[0] // 12].astype(int)  # the overlay darkens the top and writes on it
    assert band.mean() < np.asarray(cv2.resize(newest, picture.shape[1::-1])[: band.shape[0]]).mean() + 60
    assert band.max() > 200


def test_the_stream_sends_the_newest_frame_at_most_stream_fps(serve) -> None:
    server, feeder = serve(stream_fps=4.0)
    feeder.run(fps=40)
    reader = MjpegReader(server.where.port, "/stream.mjpg")
    assert reader.response.status == 200
    reader.next_jpeg()
    t0, n = time.monotonic(), 0
    while time.monotonic() - t0 < 2.5:
        jpeg = reader.next_jpeg()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
        n += 1
    reader.close()
    rate = n / (time.monotonic() - t0)
    assert 2.0 <= rate <= 4.6, rate  # the classifier offers 40 fps; a viewer gets at most 4
    assert server.tap.encoded <= n + 3  # one encode per frame sent, not per frame classified


def test_a_stalled_viewer_never_blocks_the_classifier_nor_other_viewers(serve) -> None:
    server, feeder = serve(stream_fps=30.0)
    feeder.run(fps=60)
    stalled = stalled_stream(server.where.port, "/stream.mjpg")
    time.sleep(1.0)
    healthy = MjpegReader(server.where.port, "/stream.mjpg")
    got = [healthy.next_jpeg() for _ in range(20)]  # still served, while the other fills its buffers
    assert len(got) == 20
    assert server.streams == 2
    healthy.close()
    # the stalled one is dropped once a write to it has waited WRITE_TIMEOUT_S (it is not read meanwhile)
    deadline = time.monotonic() + WRITE_TIMEOUT_S + 10
    while server.streams and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.streams == 0, "the stalled viewer was never dropped"
    assert server.counts()["connections"] == 0  # its connection is closed (what it did not read drains slowly)
    stalled.close()
    feeder.stop()
    assert max(feeder.offer_s) < 0.05, max(feeder.offer_s)  # offer() only stores references


def test_too_many_connections_are_refused_then_recover(serve) -> None:
    server, feeder = serve(max_clients=4)
    port = server.where.port
    feeder.offer(0)
    idle = idle_connections(port, 4)
    time.sleep(0.3)
    refused = get(port, "/api/state")
    assert refused.status == 503 and refused.text == "too many connections\n"
    # the idle ones never finished a request head: they are cut after HEAD_TIMEOUT_S
    assert all(closed_by_server(s, HEAD_TIMEOUT_S + 3) for s in idle)
    assert get(port, "/api/state").status == 200
    metrics = get(port, "/metrics").text
    assert "edge_daemon_http_refused_connections_total 1.0" in metrics
    for s in idle:
        s.close()


def test_streams_leave_room_for_the_page_and_scrapes(serve) -> None:
    server, feeder = serve(max_clients=4)
    feeder.run(fps=20)
    readers = [MjpegReader(server.where.port, "/stream.mjpg") for _ in range(2)]
    third = get(server.where.port, "/stream.mjpg")
    assert third.status == 503 and "too many viewers" in third.text
    assert get(server.where.port, "/metrics").status == 200
    for r in readers:
        r.close()


def test_slow_and_huge_request_heads(serve) -> None:
    server, _ = serve()
    port = server.where.port
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"GET /api/state HTTP/1.0\r\n")
        for _ in range(40):  # a header trickling in, one byte every 0.25 s
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(0.25)
        assert closed_by_server(s, 5)
    assert time.monotonic() - t0 < HEAD_TIMEOUT_S + 3

    huge = b"GET /api/state HTTP/1.0\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(30)) + b"\r\n"
    assert len(huge) > MAX_HEAD_BYTES
    assert raw_request(port, huge).startswith(b"HTTP/1.0 431")
    long_line = b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n"
    assert raw_request(port, long_line).startswith(b"HTTP/1.0 431")
    assert raw_request(port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert get(port, "/healthz").status in (200, 503)  # still serving


def test_metrics_follow_prometheus_naming(serve) -> None:
    server, feeder = serve()
    for i in range(10):
        feeder.offer(i)
    text = get(server.where.port, "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ours = {n: f for n, f in families.items() if n.startswith("edge_daemon_")}
    assert set(ours) >= {
        "edge_daemon_inference_seconds", "edge_daemon_frames_captured", "edge_daemon_frames_classified",
        "edge_daemon_frames_dropped", "edge_daemon_camera_up", "edge_daemon_mqtt_queued_messages",
        "edge_daemon_mqtt_published_messages", "edge_daemon_mqtt_dropped_messages", "edge_daemon_mqtt_reconnects",
        "edge_daemon_model_info", "edge_daemon_start_time_seconds",
    }  # fmt: skip
    for name, family in ours.items():
        assert name == name.lower() and " " not in name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
            allowed = {"le"} if family.type == "histogram" else {"model", "device"} if name.endswith("_info") else set()
            assert set(sample.labels) <= allowed, sample
    value = {s.name: s.value for f in ours.values() for s in f.samples}
    assert value["edge_daemon_frames_classified_total"] == 5 and value["edge_daemon_frames_captured_total"] == 10
    assert value["edge_daemon_mqtt_queued_messages"] == 4 and value["edge_daemon_camera_up"] == 1
    assert value["edge_daemon_inference_seconds_count"] == 10
    assert abs(value["edge_daemon_start_time_seconds"] - (time.time() - 12.5)) < 5
    info = next(s for s in ours["edge_daemon_model_info"].samples)
    assert info.name == "edge_daemon_model_info" and info.labels == {"model": "demo_model", "device": "cpu"}
    openmetrics = get(server.where.port, "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_a_failing_snapshot_is_a_500_not_a_dead_server(serve) -> None:
    def broken() -> Snapshot:
        raise RuntimeError("the service is mid-teardown")

    server, _ = serve(snap=broken)
    assert get(server.where.port, "/api/state").status == 500
    time.sleep(0.7)  # the server thread's tick called it too
    assert server._thread.is_alive() and get(server.where.port, "/").status == 200


def test_bind_failure_is_one_line_and_stop_is_prompt(serve) -> None:
    server, feeder = serve()
    feeder.run(fps=30)
    with pytest.raises(EdgeError, match=r"^http\.listen: cannot listen on http://127\.0\.0\.1:\d+/ \(.*in use\)$"):
        HttpServer(server.cfg, token=None, snapshot=snapshot).start()
    stalled = stalled_stream(server.where.port, "/stream.mjpg")
    time.sleep(1.0)
    inner = server._server
    assert inner.open_connections == 1
    t0 = time.monotonic()
    server.stop()
    while inner.open_connections and time.monotonic() - t0 < 2.5:
        time.sleep(0.05)
    assert inner.open_connections == 0 and time.monotonic() - t0 < 2.5  # the stalled viewer was cut at once
    stalled.close()


def test_off_by_default_costs_nothing(verdicts) -> None:
    frames, scores, labels = verdicts
    server = HttpServer(HttpConfig(), token=None, snapshot=snapshot).start()
    assert server.where is None and server.metrics is None
    server.tap.taken(CapturedFrame(1, 0.0, pixels=frames[0]))
    server.tap.offer(1, 1.0, [(None, (0, 0, 1, 1), scores[0], labels)])
    assert server.tap.seq == 0 and server.tap.jpeg() is None and not server.tap._taken


def test_a_jpeg_camera_frame_is_served_as_it_came(serve, verdicts) -> None:
    frames, _, _ = verdicts
    server, feeder = serve()
    feeder.offer(0, jpeg=True)
    camera_jpeg = cv2.imencode(".jpg", frames[0])[1].tobytes()
    raw = get(server.where.port, "/snapshot.jpg?raw=1")
    assert raw.body == camera_jpeg and server.tap.encoded == 0  # the camera's own bytes: nothing encoded
    overlay = get(server.where.port, "/snapshot.jpg")
    picture = cv2.imdecode(np.frombuffer(overlay.body, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == max(480, min(frames[0].shape[1], 960)) and server.tap.encoded == 1


def test_results_find_their_frames_in_flight(serve, verdicts) -> None:
    """With several workers, frames are taken before earlier ones are classified; a failed one never comes."""
    frames, scores, labels = verdicts
    server, _ = serve()
    tap = server.tap
    for seq in (1, 2, 3, 4):
        tap.taken(CapturedFrame(seq, 0.0, pixels=frames[seq % len(frames)]))
    tap.offer(1, 1.0, [(None, (0, 0, 1, 1), scores[0], labels)])
    assert tap.seq == 1 and tap._latest.frame.pixels is frames[1]
    tap.offer(3, 1.0, [(None, (0, 0, 1, 1), scores[0], labels)])  # frame 2 failed (no result): dropped, not kept
    assert tap.seq == 3 and list(tap._taken) == [4]
    for seq in range(5, 100):
        tap.taken(CapturedFrame(seq, 0.0, pixels=frames[0]))  # results that never come: bounded
    assert len(tap._taken) <= 16


def test_ipv6_loopback(verdicts) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port = free_port()
    try:
        server = HttpServer(HttpConfig(listen=f"[::1]:{port}"), token=None, snapshot=snapshot).start()
    except EdgeError as e:
        pytest.skip(f"cannot bind ::1 here: {e}")
    try:
        with socket.create_connection(("::1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 503")  # listening on ::1, nothing classified yet
    finally:
        server.stop()


def test_regions_are_drawn_with_their_names_and_labels(serve, verdicts) -> None:
    frames, scores, labels = verdicts
    server, _ = serve()
    frame = CapturedFrame(1, 0.0, pixels=cv2.resize(frames[0], (320, 240)))
    server.tap.taken(frame)
    server.tap.offer(1, 2.0, [("left", (0.0, 0.2, 0.5, 0.6), scores[0], labels),
                              ("right", (0.5, 0.2, 0.5, 0.6), scores[1], labels)])  # fmt: skip
    picture = cv2.imdecode(np.frombuffer(get(server.where.port, "/snapshot.jpg").body, np.uint8), cv2.IMREAD_COLOR)
    amber = (np.abs(picture.astype(int) - (0, 200, 255)).sum(axis=2) < 90)
    assert amber[int(360 * 0.8) - 3 : int(360 * 0.8) + 3, 10:230].any(axis=0).mean() > 0.8  # the left box's bottom
