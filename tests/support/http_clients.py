"""Test helpers: HTTP clients for the daemon's server, well-behaved and not.

`get()` makes one request with http.client; `MjpegReader` reads a multipart MJPEG stream part by part;
`stalled_stream()` asks for the stream and then never reads; `idle_connections()` opens many connections that
send nothing; `Slowloris` trickles a request head one byte at a time; `Flood` holds half request lines from
another loopback address. All talk to loopback only and stop by
themselves (every socket has a timeout; `close()` ends them).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def get(port: int, path: str, *, headers: dict[str, str] | None = None, method: str = "GET",
        timeout: float = 10.0) -> Response:  # fmt: skip
    """One request to 127.0.0.1:port; the whole response."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


class MjpegReader:
    """Reads `multipart/x-mixed-replace` JPEG parts from a GET of `path`."""

    def __init__(self, port: int, path: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()
        content_type = self.response.getheader("Content-Type", "")
        self.boundary = content_type.partition("boundary=")[2].encode()

    def next_jpeg(self) -> bytes:
        """The next part's body (a JPEG)."""
        r = self.response
        line = r.readline()
        while line in (b"\r\n", b"\n"):
            line = r.readline()
        if not line:
            raise EOFError("the stream ended")
        assert line.strip() == b"--" + self.boundary, line
        length = None
        while (line := r.readline()).strip():
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length is not None
        data = r.read(length)
        assert len(data) == length
        return data

    def close(self) -> None:
        self.response.close()  # it holds the socket's file: without this the connection stays open
        self.conn.close()


def stalled_stream(port: int, path: str) -> socket.socket:
    """Ask for `path` (the MJPEG stream), then never read: the server's writes fill the socket buffers and stall."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up quickly
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def idle_connections(port: int, n: int) -> list[socket.socket]:
    """Open `n` connections that send nothing (refused ones are simply counted as closed later)."""
    socks = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    return socks


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `timeout` s (whatever it sent first is read)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


class Slowloris:
    """`n` connections each sending a request head one byte every `interval` s, on a thread, until closed.

    `cut` counts connections the server ended (refused or timed out) before their head was complete.
    """

    def __init__(self, port: int, n: int = 20, interval: float = 0.5) -> None:
        self.port, self.n, self.interval = port, n, interval
        self.cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Slowloris:
        self._thread.start()
        return self

    def _run(self) -> None:
        head = b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 4000 + b"\r\n\r\n"
        socks: dict[socket.socket, int] = {}
        try:
            while not self._stop.is_set():
                while len(socks) < self.n and not self._stop.is_set():  # keep n open: replace cut ones
                    try:
                        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                        s.settimeout(0.01)
                        socks[s] = 0
                    except OSError:
                        break
                for s, sent in list(socks.items()):
                    try:
                        s.send(head[sent : sent + 1])
                        socks[s] = sent + 1
                        if s.recv(1) == b"" or sent + 1 >= len(head):
                            raise ConnectionResetError
                    except TimeoutError:
                        pass
                    except OSError:
                        self.cut += 1
                        s.close()
                        del socks[s]
                self._stop.wait(self.interval)
        finally:
            for s in socks:
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Flood:
    """An unauthenticated flood, on a thread until closed: keeps up to `n` connections open from `source` (another
    loopback address: 127.0.0.2 is this machine too), each having sent half a request line and then nothing,
    opening at most `rate` new ones a second as the server closes or refuses them.

    `opened` counts connections made, `cut` those the server ended (refused, or timed out).
    """

    HALF_LINE = b"GET /healthz HT"

    def __init__(self, port: int, *, n: int = 100, rate: float = 200.0, source: str = "127.0.0.2") -> None:
        self.port, self.n, self.rate, self.source = port, n, rate, source
        self.opened = self.cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Flood:
        self._thread.start()
        return self

    def _run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                while len(sel.get_map()) < self.n and next_at <= now:
                    next_at = max(next_at + 1.0 / self.rate, now - 1.0)
                    try:
                        s = socket.create_connection(("127.0.0.1", self.port), 1, (self.source, 0))
                        s.sendall(self.HALF_LINE)
                        s.setblocking(False)
                    except OSError:
                        continue
                    self.opened += 1
                    sel.register(s, selectors.EVENT_READ)
                for key, _ in sel.select(timeout=max(0.0, min(0.05, next_at - time.monotonic()))):
                    s = key.fileobj
                    try:
                        if s.recv(65536):  # type: ignore[union-attr]
                            continue  # a 503 or 408 first: the close follows
                    except BlockingIOError:
                        continue
                    except OSError:
                        pass
                    self.cut += 1
                    sel.unregister(s)
                    s.close()  # type: ignore[union-attr]
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> Flood:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
