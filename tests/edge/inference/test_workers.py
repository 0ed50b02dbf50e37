"""The worker pool: jobs on several threads, results strictly in job order, bounded, errors kept in place."""

from __future__ import annotations

import random
import threading
import time

import numpy as np

from edge.errors import EdgeError
from edge.inference.flow import FrameFlow, Task, prepare
from edge.inference.model import load_model
from edge.inference.workers import Job, WorkerPool


def slow_runner(seed: int):
    rng = random.Random(seed)

    def run(tensor: np.ndarray) -> tuple[np.ndarray, float]:
        if int(tensor[0]) == 13:
            raise EdgeError("frame 13 failed")
        time.sleep(rng.uniform(0.0, 0.01))  # the workers finish out of order
        return tensor * 2, 1.0

    return run


def test_results_come_back_in_job_order_whatever_order_workers_finish() -> None:
    woke = threading.Event()
    pool = WorkerPool([[slow_runner(i)] for i in range(3)], on_result=woke.set)
    assert pool.capacity == 4
    got, n = [], 0
    deadline = time.monotonic() + 20
    while len(got) < 60 and time.monotonic() < deadline:
        while n < 60 and pool.has_room():
            pool.submit(Job(n, float(n), (np.array([n]),)))
            n += 1
        assert pool.pending <= pool.capacity
        woke.wait(0.5)
        woke.clear()
        got += pool.completed()
    pool.close()
    assert [r.frame for r in got] == list(range(60))
    assert [int(r.scores[0][0]) for r in got if r.error is None] == [2 * i for i in range(60) if i != 13]
    assert got[13].error == "frame 13 failed" and got[13].scores == ()


def test_a_job_that_could_not_be_prepared_keeps_its_place() -> None:
    pool = WorkerPool([[slow_runner(0)]])
    pool.submit(Job(1, 0.0, (np.array([1]),)))
    pool.submit(Job(2, 0.0, (), error="frame 2 is not a decodable JPEG image"))
    left = pool.close()
    assert [(r.frame, r.error) for r in left] == [(1, None), (2, "frame 2 is not a decodable JPEG image")]


def test_flow_decodes_jpeg_frames_at_the_reduced_size_and_paces_at_max_rate(demo_model, tmp_path) -> None:
    import cv2

    from edge.config.schema import CameraConfig
    from edge.sources.camera import Camera, CapturedFrame
    from tests.support.media import solid_frames, write_video

    clf = load_model(demo_model, threads=1)
    img = np.full((480, 640, 3), 200, np.uint8)
    jpeg = cv2.imencode(".jpg", img)[1].reshape(-1)
    job = prepare(CapturedFrame(1, 0.0, jpeg=jpeg), [Task(clf.spec.input)])
    assert job.tensors[0].shape == clf.spec.input.shape and job.error is None
    bad = prepare(CapturedFrame(2, 0.0, jpeg=np.frombuffer(b"\xff\xd8junk", np.uint8)), [Task(clf.spec.input)])
    assert bad.error == "frame 2 is not a decodable JPEG image"

    clip = write_video(tmp_path / "c.avi", solid_frames(50, (480, 640)), fps=25)
    cam = Camera(CameraConfig(source=str(clip), realtime=False, loop=True))  # a frame is always there
    flow = FrameFlow(cam, [Task(clf.spec.input)], [[clf.infer]], max_rate=10.0)
    cam.start()
    try:
        got = flow.poll(5.0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            got += flow.poll(0.1)
    finally:
        flow.close()
        cam.close()
    assert 10 <= len(got) <= 13  # the first, then 10 per second
    assert [r.frame for r in got] == sorted(r.frame for r in got) and all(r.error is None for r in got)
