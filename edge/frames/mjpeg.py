"""Pure: a byte stream of concatenated JPEG images (MJPEG on a pipe) split into frames; a JPEG's size from its header.

`JpegSplitter.feed()` takes whatever bytes a read returned and gives back the complete JPEG frames found so far.
It follows the JPEG structure rather than searching for the end marker alone: marker segments are skipped by
their length (an embedded EXIF thumbnail carries its own SOI/EOI), and inside entropy-coded data only a 0xFF
that is followed by a marker byte ends the scan (0xFF00 is a stuffed byte, 0xFFD0-D7 restart markers). Bytes
outside any frame (a banner, garbage) are skipped and counted; a frame growing past `max_frame_bytes` is
dropped and counted, so memory stays bounded whatever the other end writes.
"""

from __future__ import annotations

import re

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 carry no length
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # the first marker after entropy-coded data
DEFAULT_MAX_FRAME_BYTES = 32 << 20


class JpegSplitter:
    """Incremental splitter of an MJPEG byte stream into complete JPEG images.

    Args:
        max_frame_bytes: a frame larger than this is dropped (and the buffer with it).
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.skipped = 0  # bytes outside any complete frame (garbage, broken or oversized frames)
        self.frames = 0
        self._buf = bytearray()
        self._pos = 0  # where parsing goes on; the current frame (if any) starts at 0
        self._in_frame = False
        self._in_scan = False

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the stream; the JPEG frames completed by them, in order."""
        self._buf += data
        out: list[bytes] = []
        while True:
            if not self._in_frame and not self._sync():
                break
            end = self._walk()
            if end is None:  # needs more data
                if len(self._buf) > self.max_frame_bytes:
                    self._discard(len(self._buf))
                break
            if end > 0:
                out.append(bytes(self._buf[:end]))
                self.frames += 1
                del self._buf[:end]
                self._reset()
        return out

    def _reset(self) -> None:
        self._pos, self._in_frame, self._in_scan = 0, False, False

    def _discard(self, n: int) -> None:
        """Drop the first n bytes as not part of any frame and look for the next start of image."""
        self.skipped += n
        del self._buf[:n]
        self._reset()

    def _sync(self) -> bool:
        """Move to the next start-of-image marker; False when there is none yet (keeps a trailing 0xFF)."""
        i = self._buf.find(b"\xff\xd8")
        if i < 0:
            keep = 1 if self._buf[-1:] == b"\xff" else 0
            self._discard(len(self._buf) - keep)
            return False
        if i:
            self._discard(i)
        self._in_frame, self._pos = True, 2
        return True

    def _walk(self) -> int | None:
        """Parse the current frame from `_pos`: its length when complete, None for more data, 0 if broken."""
        buf = self._buf
        while True:
            if self._in_scan:
                m = _MARKER_IN_SCAN.search(buf, self._pos)
                if m is None:
                    self._pos = max(self._pos, len(buf) - 1)
                    return None
                self._pos, self._in_scan = m.start(), False
            pos = self._pos
            while pos + 1 < len(buf) and buf[pos] == 0xFF and buf[pos + 1] == 0xFF:
                pos += 1  # fill bytes before a marker
            if pos + 1 >= len(buf):
                self._pos = pos
                return None
            if buf[pos] != 0xFF:
                return self._broken(pos)
            marker = buf[pos + 1]
            if marker == EOI:
                return pos + 2
            if marker == SOI:  # a new image before this one ended: this one is lost
                self._discard(pos)
                self._in_frame, self._pos = True, 2
                return self._walk()
            if marker in _STANDALONE:
                self._pos = pos + 2
                continue
            if pos + 3 >= len(buf):
                self._pos = pos
                return None
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if length < 2:
                return self._broken(pos)
            self._pos, self._in_scan = pos + 2 + length, marker == SOS
            if self._pos > len(buf):
                return None

    def _broken(self, pos: int) -> int:
        """Not JPEG structure at `pos`: drop the frame so far and look for the next start of image."""
        self._discard(max(pos, 1))
        return 0


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding; None when it has none."""
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != SOI:
        return None
    pos = 2
    while pos + 3 < n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (EOI, SOS):
            return None
        if marker in _SOF:
            if pos + 8 >= n:
                return None
            height = (buf[pos + 5] << 8) | buf[pos + 6]
            width = (buf[pos + 7] << 8) | buf[pos + 8]
            return (width, height) if width and height else None
        pos += 2 + ((buf[pos + 2] << 8) | buf[pos + 3])
    return None
