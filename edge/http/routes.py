"""The HTTP routes of the daemon's server (`edge.http.server`): one request per connection, GET and HEAD only.

    /               the live page (`edge/http/web/index.html`, static: it holds no data, so it needs no token)
    /stream.mjpg    the overlay picture as an MJPEG stream, at most `stream_fps`, the newest frame each time
    /snapshot.jpg   the newest frame with the overlay; `?raw=1` as captured
    /api/state      JSON: the MQTT state (`edge.http.state.state_payload`)
    /healthz        200 while classifying, 503 otherwise; one line saying which and why
    /metrics        Prometheus exposition (`edge.http.metrics`)

With a token configured, every route but `/` wants `Authorization: Bearer <token>`; the two image routes also
take `?token=` (an `<img>` cannot send a header). Requests are never logged (a `?token=` would end up in the
journal); failures are, rate-limited.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import io
import ipaddress
import json
import logging
import re
import select
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edge.http.admission import PREAUTH_HEAD_TIMEOUT_S
from edge.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

HEAD_TIMEOUT_S = PREAUTH_HEAD_TIMEOUT_S  # every connection is unauthenticated until its head is read
MAX_HEAD_BYTES = 16 * 1024  # request line plus headers
WRITE_TIMEOUT_S = 5.0  # each response write (a stream frame) must be taken by the client within this
KEEPALIVE_S = 5.0  # a stream re-sends its last frame this often when no new one comes (finds closed clients)
STREAM_SNDBUF = 256 * 1024  # kernel send buffer of a stream connection, bytes
BOUNDARY = "edge-daemon-frame"
_refusals, _failures = RateLimitedLog(log, 60.0), RateLimitedLog(log, 60.0)


def _page() -> tuple[bytes, str]:
    """The page and its Content-Security-Policy (inline script and style allowed by their hashes only)."""
    html = resources.files("edge.http").joinpath("web/index.html").read_bytes()
    hashes = {}
    for tag in ("script", "style"):
        blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), html, re.S)
        hashes[tag] = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in blocks)
    csp = (f"default-src 'none'; img-src 'self' blob:; connect-src 'self'; script-src {hashes['script']}; "
           f"style-src {hashes['style']}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
    return html, csp


PAGE, PAGE_CSP = _page()


def _literal_host(host: str) -> bool:
    """True for a Host header naming this machine without DNS: an IP address or localhost (port optional)."""
    if host.startswith("[") and "]" in host:
        name = host[1 : host.index("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower()
    if name in ("localhost", ""):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _HeadReader(io.RawIOBase):
    """The connection's reading side with a deadline and a byte budget for the request head (slowloris, huge
    headers): past the deadline it raises TimeoutError, past the budget http.client.LineTooLong (431)."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        self.sock, self.deadline, self.budget = sock, deadline, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request head not complete in time")
        if self.budget <= 0:
            raise http.client.LineTooLong(f"request head over {MAX_HEAD_BYTES} bytes")
        self.sock.settimeout(remaining)
        view = memoryview(buffer)[: min(len(buffer), self.budget)]
        n = self.sock.recv_into(view)
        self.budget -= n
        return n


class Handler(BaseHTTPRequestHandler):
    """One connection, one request (HTTP/1.0 semantics: no idle keep-alive connection holds a slot)."""

    server_version = "edge-daemon"
    protocol_version = "HTTP/1.0"
    default_request_version = "HTTP/1.0"  # errors before a request line parses still get a status line
    timeout = HEAD_TIMEOUT_S
    server: Any  # edge.http.server._Server; its `app` is the HttpServer

    def setup(self) -> None:
        super().setup()
        raw = _HeadReader(self.connection, time.monotonic() + HEAD_TIMEOUT_S, MAX_HEAD_BYTES)
        self.rfile = io.BufferedReader(raw, 4096)
        self.app = self.server.app
        self.command, self.requestline, self.request_version = "", "", self.default_request_version

    def handle(self) -> None:
        try:
            super().handle()
        except http.client.LineTooLong:
            with contextlib.suppress(OSError):
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request head too large")
        except OSError:  # the client went away, reset, or did not take a write in time
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: URLs may carry `?token=`."""

    # -- routing --------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.connection.settimeout(WRITE_TIMEOUT_S)  # the head is read: from now on, writes are what may stall
        url = urlsplit(self.path)
        try:
            self.query = parse_qs(url.query, max_num_fields=8)
        except ValueError:
            self._text(HTTPStatus.BAD_REQUEST, "bad query\n")
            return
        route = ROUTES.get(url.path)
        if route is None:
            self._text(HTTPStatus.NOT_FOUND, "not found\n")
            return
        method, public, token_in_query = route
        if self.app.token is None and not _literal_host(self.headers.get("Host", "")):
            # No token (loopback only): a name in Host means a page elsewhere resolved its own name to this
            # machine (DNS rebinding) to read the camera through the visitor's browser.
            self._text(HTTPStatus.FORBIDDEN, "use an IP address or localhost in the URL\n")
            return
        if not public and not self._authorized(token_in_query):
            return
        if not self.server.admit(self.connection):  # authenticated from the head: only now does it need a slot
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n", {"Retry-After": "2"})
            self.server.refused += 1
            return
        try:
            method(self)
        except OSError:
            raise  # the client's side: handled in handle()
        except Exception as e:  # a bug or a service mid-teardown: a 500, never a dead server
            _failures.warning("http: %s failed: %s: %s", url.path, type(e).__name__, e)
            with contextlib.suppress(OSError):
                self._text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (logged)\n")

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _authorized(self, token_in_query: bool) -> bool:
        secret = self.app.token
        if secret is None:
            return True
        expected = secret.reveal().encode()
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        candidates = [given.strip()] if scheme.lower() == "bearer" else []
        if token_in_query:
            candidates += self.query.get("token", [])[:1]
        if any(hmac.compare_digest(c.encode("utf-8", "replace"), expected) for c in candidates):
            return True
        _refusals.warning("http: refused a request without a valid token from %s", self.client_address[0])
        challenge = {"WWW-Authenticate": 'Bearer realm="edge-daemon"'}
        self._text(HTTPStatus.UNAUTHORIZED, "a valid token is required\n", challenge)
        return False

    # -- responses ------------------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", headers)

    def page(self) -> None:
        self._send(HTTPStatus.OK, PAGE, "text/html; charset=utf-8",
                   {"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer"})  # fmt: skip

    def state(self) -> None:
        body = json.dumps(self.app.state(), separators=(",", ":")).encode()
        self._send(HTTPStatus.OK, body, "application/json")

    def healthz(self) -> None:
        healthy, reason = self.app.health()
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        self._text(status, f"{'ok' if healthy else 'unhealthy'}: {reason}\n")

    def metrics(self) -> None:
        body, content_type = self.app.metrics.render(self.headers.get("Accept", ""))
        self._send(HTTPStatus.OK, body, content_type)

    def snapshot(self) -> None:
        raw = self.query.get("raw", ["0"])[0].lower() in ("1", "true", "yes")
        got = self.app.tap.jpeg(raw=raw)
        if got is None:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "no frame classified yet\n", {"Retry-After": "1"})
            return
        self._send(HTTPStatus.OK, got[1], "image/jpeg")

    def stream(self) -> None:
        app = self.app
        if not app.stream_opened():
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "too many viewers\n", {"Retry-After": "5"})
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self._frames()
        finally:
            app.stream_closed()

    def _frames(self) -> None:
        """Send the newest overlay frame at most `stream_fps` times a second until the client or server ends."""
        app, tap = self.app, self.app.tap
        # A small send buffer: a slow viewer gets the newest frame instead of seconds of old ones queued in the
        # kernel (up to 4 MB each by default), and a stalled one blocks a write, and is dropped, within seconds.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        period = 1.0 / app.cfg.stream_fps
        sent_seq, sent_at = 0, 0.0
        while not app.stopping.is_set() and not self._client_gone():
            wait = sent_at + period - time.monotonic()
            if wait > 0 and app.stopping.wait(wait):
                break
            tap.wait_newer(sent_seq, KEEPALIVE_S)
            got = tap.jpeg()
            if got is None or (got[0] == sent_seq and time.monotonic() - sent_at < KEEPALIVE_S):
                continue
            seq, data = got
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            self.wfile.write(head + data + b"\r\n")
            sent_seq, sent_at = seq, time.monotonic()

    def _client_gone(self) -> bool:
        """True when the client closed its side (it sends nothing more after its request)."""
        poller = select.poll()  # (not select.select: no limit on the descriptor's number)
        poller.register(self.connection, select.POLLIN)
        if not poller.poll(0):
            return False
        try:  # readable: is it the end of the stream?
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


# path: (method, public, token also accepted as ?token=)
ROUTES = {
    "/": (Handler.page, True, False),
    "/index.html": (Handler.page, True, False),
    "/stream.mjpg": (Handler.stream, False, True),
    "/snapshot.jpg": (Handler.snapshot, False, True),
    "/api/state": (Handler.state, False, False),
    "/healthz": (Handler.healthz, False, False),
    "/metrics": (Handler.metrics, False, False),
}
