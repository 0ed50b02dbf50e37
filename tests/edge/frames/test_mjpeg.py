"""The MJPEG splitter and the reduced decode, on real MJPEG written by ffmpeg and real JPEGs from OpenCV."""

from __future__ import annotations

import random
import struct

import cv2
import numpy as np
import pytest

from edge.frames.decode import decode_for, decode_jpeg, frame_size, reduction, reduction_for
from edge.frames.mjpeg import JpegSplitter, jpeg_size
from tests.support.media import solid_frames, write_video
from tests.support.streams import mjpeg_bytes


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clip = write_video(tmp_path_factory.mktemp("mjpeg") / "c.avi", solid_frames(10, (240, 320)), fps=25)
    return mjpeg_bytes(clip, 12)


def split_all(data: bytes, chunks: list[int], **kw: int) -> tuple[list[bytes], JpegSplitter]:
    sp, out, pos = JpegSplitter(**kw), [], 0
    for n in chunks:
        out += sp.feed(data[pos : pos + n])
        pos += n
    out += sp.feed(data[pos:])
    return out, sp


def test_ffmpeg_stream_split_in_any_chunking(stream: bytes) -> None:
    whole, _ = split_all(stream, [])
    assert len(whole) == 12 and b"".join(whole) == stream
    rng = random.Random(1)
    for _ in range(5):  # reads of any size, down to one byte, give the same frames
        chunks = [rng.choice([1, 2, 7, 100, 4096, 65536]) for _ in range(len(stream) // 50)]
        frames, sp = split_all(stream, chunks)
        assert frames == whole and sp.skipped == 0 and sp.buffered == 0
    for f in whole:
        assert decode_jpeg(f).shape == (240, 320, 3)


def test_garbage_between_and_before_frames_is_skipped_and_counted(stream: bytes) -> None:
    frames, _ = split_all(stream, [])
    junk = b"rpicam-vid banner\n\x00\xff\x12" + bytes(range(0xD0)) + b"\xff\xd9\xff"
    data = junk + frames[0] + junk + frames[1] + frames[2]
    got, sp = split_all(data, [5] * 200)
    assert got == frames[:3]
    assert sp.skipped == 2 * len(junk)


def test_truncated_frame_is_dropped_when_the_next_one_starts(stream: bytes) -> None:
    frames, _ = split_all(stream, [])
    cut = frames[0][: len(frames[0]) // 2]  # a child killed mid-frame, restarted: the next frame begins
    got, sp = split_all(cut + frames[1], [])
    # the half frame's entropy data ends at the next SOI marker: it is not a frame, the next one is whole
    assert got == [frames[1]] and sp.skipped == len(cut)


def with_thumbnail(jpeg: bytes, thumb: bytes) -> bytes:
    """An EXIF-like APP1 segment holding a whole JPEG (SOI..EOI) inserted after SOI."""
    body = b"Exif\x00\x00" + thumb
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_embedded_thumbnail_does_not_end_the_frame() -> None:
    img = solid_frames(1, (64, 80))[0]
    thumb = cv2.imencode(".jpg", cv2.resize(img, (16, 16)))[1].tobytes()
    big = with_thumbnail(cv2.imencode(".jpg", img)[1].tobytes(), thumb)
    got, _ = split_all(big + big, [3] * 1000)
    assert got == [big, big]
    assert decode_jpeg(got[0]).shape == (64, 80, 3) and jpeg_size(big) == (80, 64)


def test_memory_is_bounded_by_max_frame_bytes() -> None:
    header = cv2.imencode(".jpg", solid_frames(1)[0])[1].tobytes()
    sos = header.index(b"\xff\xda")
    endless = header[: sos + 14] + bytes(1000) * 300  # a scan that never ends
    sp = JpegSplitter(max_frame_bytes=50_000)
    for i in range(0, len(endless), 4096):
        assert sp.feed(endless[i : i + 4096]) == []
        assert sp.buffered <= 50_000 + 4096
    assert sp.skipped > 200_000
    assert sp.feed(header) == [header]  # and the next real frame still comes through


def test_only_garbage_gives_nothing_and_keeps_nothing() -> None:
    rng = np.random.default_rng(0)
    sp = JpegSplitter()
    for _ in range(50):
        data = rng.integers(0, 256, 65536, dtype=np.uint8).tobytes()
        frames = sp.feed(data)
        assert all(decode_jpeg(f) is None for f in frames)  # a rare false start never decodes
        assert sp.buffered < 70_000
    assert sp.skipped > 3_000_000


@pytest.mark.parametrize(
    ("box", "need", "factor"),
    [((640, 480), (224, 224), 2), ((1280, 720), (224, 224), 2), ((1920, 1080), (224, 224), 4),
     ((640, 480), (96, 96), 4), ((640, 480), (28, 28), 8), ((320, 240), (224, 224), 1), ((200, 200), (224, 224), 1),
     ((449, 449), (224, 224), 2), ((445, 445), (224, 224), 1), ((1280, 720), (320, 320), 2)],
)  # fmt: skip
def test_reduction_is_the_largest_factor_that_covers_the_input(box, need, factor) -> None:
    assert reduction(box, need) == factor


def test_one_factor_for_several_jobs_is_the_smallest() -> None:
    assert reduction_for([((1920, 1080), (96, 96)), ((400, 300), (224, 224))]) == 1
    assert reduction_for([((1920, 1080), (96, 96)), ((1920, 1080), (224, 224))]) == 4
    assert reduction_for([]) == 1


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720), (643, 481)])
def test_reduced_decode_covers_the_input_and_matches_a_full_decode(w: int, h: int) -> None:
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    assert frame_size(jpeg) == (w, h) and frame_size(jpeg.tobytes()) == (w, h)
    small = decode_for(jpeg, [(224, 224)])
    assert small.shape[1] >= 224 and small.shape[0] >= 224 and small.shape[0] < h
    full = cv2.resize(decode_jpeg(jpeg), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - full.astype(int)).mean() < 2.0
    gray = decode_for(jpeg, [(224, 224)], gray=True)
    assert gray.ndim == 2 and gray.shape == small.shape[:2]
    assert np.abs(gray.astype(int) - cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(int)).mean() < 2.0


def test_not_a_jpeg() -> None:
    assert jpeg_size(b"\x00\x01garbage") is None and jpeg_size(b"") is None
    assert decode_jpeg(b"\xff\xd8\xff\xd9") is None
    assert decode_for(b"not a jpeg at all", [(10, 10)]) is None
