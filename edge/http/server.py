"""The daemon's HTTP server: the live page, snapshots, `/api/state`, `/healthz` and Prometheus `/metrics`.

An I/O edge like the publisher: the service hands it the `[http]` section, the token, and a function returning
a `Snapshot` of its state; it feeds frames through `tap` (`edge.http.tap.FrameTap`). It never touches the
service and never makes the classifier wait: every endpoint reads copies or references the loop already made.

Built on the standard library's `http.server` (`ThreadingHTTPServer`, one thread per connection): no dependency
to install on a Pi, request parsing that is maintained with Python, and a thread per connection is cheap at the
few connections a device serves; an MJPEG stream is naturally a blocking loop on its own thread. Bounded
(`edge.http.admission`): until its request head is read a connection holds only a pre-auth place (a few per
client address, its head due within a short timeout and MAX_HEAD_BYTES); only an authenticated (or public)
request then takes one of the `max_clients` slots, so an unauthenticated flood never holds one. More than that
is answered 503 and closed; each write must finish within WRITE_TIMEOUT_S, one request per connection. Routes
and responses are `edge.http.routes`.
With `listen` not set, nothing listens and `tap.offer()` returns at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any

from edge.config.listen import parse_listen
from edge.errors import EdgeError
from edge.http.admission import Admission
from edge.http.state import Snapshot, health, stale_after_s, state_payload
from edge.http.tap import FrameTap
from edge.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from edge.config.schema import HttpConfig, Secret

log = logging.getLogger(__name__)

LIVE_WINDOW_S = 5.0  # the live stats of /api/state cover this long (the server's thread rolls the window)
REFUSAL = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 2\r\n"
           b"Connection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n")  # fmt: skip


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bound on connections and their rate; every connection can be cut on stop."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, app: HttpServer, handler: type) -> None:
        self.app = app
        where = app.where
        self.address_family = socket.AF_INET6 if where.ipv6 else socket.AF_INET
        self.admission = Admission(app.cfg.max_clients)
        self._lock = threading.Lock()
        self._open: dict[socket.socket, list[Any]] = {}  # connection: [its pre-auth key or None, holds a slot]
        self.refused = 0
        self._errors = RateLimitedLog(log, 60.0)
        super().__init__((where.host, where.port), handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # not HTTPServer's: its getfqdn() may wait on DNS
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        key = self.admission.arrive(str(client_address[0]), time.monotonic())
        if key is None:  # this address holds its pre-auth places, or connects too fast
            self.refuse(request)
            self.shutdown_request(request)
            return
        with self._lock:
            self._open[request] = [key, False]
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread could be started: give the place back
            self._leave(request)
            self.shutdown_request(request)
            raise

    def refuse(self, request: Any) -> None:
        """Answer 503 without waiting on the client."""
        self.refused += 1
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(REFUSAL)

    def admit(self, request: Any) -> bool:
        """The request on `request` is authenticated (or public): take a `max_clients` slot and free its pre-auth
        place; False when every slot is held (the place is kept until the connection ends)."""
        if not self.admission.take_slot():
            return False
        with self._lock:
            state = self._open[request]
            key, state[0], state[1] = state[0], None, True
        if key is not None:
            self.admission.head_read(key)
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._leave(request)

    def _leave(self, request: Any) -> None:
        with self._lock:
            key, slot = self._open.pop(request, (None, False))
        if key is not None:
            self.admission.head_read(key)
        if slot:
            self.admission.free_slot()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        self._errors.warning("http: a request failed: %s: %s", type(exc).__name__, exc)

    def service_actions(self) -> None:  # serve_forever calls it at least every poll_interval
        self.app.tick(time.monotonic())

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._open)

    def cut_connections(self) -> None:
        """Shut every open connection down, so threads blocked on a slow client return at once."""
        with self._lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class HttpServer:
    """The HTTP endpoints for one daemon run. `start()`, feed `tap`, `stop()`.

    Args:
        cfg: the ``[http]`` section (`listen` None: no server).
        token: the secret read from `token_file` (None: no token asked for, loopback only).
        snapshot: returns the daemon's state now; called from the server's threads.
        max_rate: `camera.max_rate`, for how old the newest classification may be while healthy.
    """

    def __init__(self, cfg: HttpConfig, *, token: Secret | None, snapshot: Callable[[], Snapshot],
                 max_rate: float = 0.0) -> None:  # fmt: skip
        self.cfg = cfg
        self.where = parse_listen(cfg.listen) if cfg.listen else None
        self.token = token
        self._snapshot = snapshot
        self.stale_after = stale_after_s(max_rate)
        self.stopping = threading.Event()
        self.streams = 0  # viewers of /stream.mjpg now
        self.max_streams = max(1, cfg.max_clients // 2)  # the other half stays free for the page and scrapes
        self._lock = threading.Lock()
        self._next_roll = 0.0
        self._tick_errors = RateLimitedLog(log, 60.0)
        self.metrics: Any = None
        if self.where is not None:
            try:
                from edge.http.metrics import Metrics  # prometheus_client is loaded only when the server is wanted
            except ImportError as e:
                raise EdgeError(f"http.listen: /metrics needs prometheus-client ({e}); reinstall edge-daemon") from None
            self.metrics = Metrics(self.snapshot, self.counts)
        observe = self.metrics.observe_inference if self.metrics else None
        self.tap = FrameTap(active=self.where is not None, observe=observe)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HttpServer:
        """Listen and serve on a thread (nothing when `listen` is not set).

        Raises:
            EdgeError: the address cannot be bound (in use, not this machine's, a port below 1024), one line.
        """
        if self.where is None or self._server is not None:
            return self
        from edge.http.routes import Handler

        try:
            self._server = _Server(self, Handler)
        except OSError as e:
            hint = "; ports below 1024 need privileges: use e.g. 8080" if self.where.port < 1024 else ""
            raise EdgeError(f"http.listen: cannot listen on {self.where.url} ({e.strerror or e}){hint}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="http", daemon=True)  # fmt: skip
        self._thread.start()
        access = "token required" if self.token else "no token: this machine only"
        log.info("http: live page, /api/state, /healthz and /metrics on %s (%s)", self.where.url, access)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening, end every stream and cut slow clients; idempotent."""
        self.stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        self.tap.close()
        server.shutdown()
        server.cut_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- what the routes read -------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The daemon's state now."""
        return self._snapshot()

    def counts(self) -> dict[str, float]:
        """The server's own figures, for the metrics."""
        server = self._server
        return {"connections": server.open_connections if server else 0, "stream_clients": self.streams,
                "jpegs_encoded": self.tap.encoded, "refused_connections": server.refused if server else 0}  # fmt: skip

    def state(self) -> dict:
        """`/api/state` (the live stats window is rolled first if none was yet)."""
        snap = self.snapshot()
        window = self.tap.window() or self._roll(time.monotonic(), snap)
        return state_payload(snap, window)

    def health(self) -> tuple[bool, str]:
        """`/healthz`: (healthy, reason)."""
        return health(self.snapshot(), self.tap.last_at, time.monotonic(), self.stale_after)

    def stream_opened(self) -> bool:
        """Count a new viewer of the stream; False when there are already `max_streams`."""
        with self._lock:
            if self.streams >= self.max_streams:
                return False
            self.streams += 1
            return True

    def stream_closed(self) -> None:
        with self._lock:
            self.streams -= 1

    def tick(self, now: float) -> None:
        """Called by the server's thread: roll the live stats window every LIVE_WINDOW_S. Never raises."""
        if now < self._next_roll:
            return
        try:
            self._roll(now, self.snapshot())
        except Exception as e:  # a failed roll must not end the server's thread
            self._tick_errors.warning("http: live stats failed: %s: %s", type(e).__name__, e)
        self._next_roll = now + LIVE_WINDOW_S

    def _roll(self, now: float, snap: Snapshot) -> dict[str, float]:
        return self.tap.roll_window(now, snap.camera.captured, snap.camera.dropped, snap.classified)
