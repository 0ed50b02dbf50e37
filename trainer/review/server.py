"""`edge-train review INBOX --dataset DATA`: a local page to relabel the frames devices kept, many at a time.

The page (`page.html`, one file of HTML and plain JavaScript) shows the inbox's images grouped by predicted
label with their scores; a person selects some (click, shift-click for a range, select all of a group) and
assigns a class or discards them. The server is the standard library's, bound to 127.0.0.1 only, and answers:

    GET  /                 the page
    GET  /api/inbox        {"groups": [...], "classes": [...], "inbox", "dataset", "target"} (near-duplicates in "same")
    GET  /image/<id>       an inbox image (ids are `<label folder>/<file>`)
    POST /api/assign       {"files": [ids], "class": "name"}  -> {"moved", "failed", "classes"}
    POST /api/discard      {"files": [ids]}                   -> the same

The moves are `trainer.review.inbox.assign` and `discard`. Requests from other sites are refused: the Host header must
be this server's own address (no DNS rebinding), a POST must be JSON (a cross-site form cannot send it without
asking first, and nothing here answers that) and its Origin, when sent, this server; the page may not be framed.
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edge.cli.shape import bounded_int
from edge.errors import EdgeError
from trainer.review import inbox as box

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_FILES = 10_000  # ids in one assign or discard: a page of the inbox is far fewer
MAX_BODY = 4 << 20
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
}


class ReviewServer(ThreadingHTTPServer):
    """The review page's HTTP server for one inbox and one dataset, on 127.0.0.1."""

    daemon_threads = True

    def __init__(self, inbox: str | Path, dataset: str | Path, port: int = 0) -> None:
        self.inbox, self.dataset = Path(inbox), Path(dataset)
        box.check_folders(self.inbox, self.dataset)
        self.page = resources.files("trainer.review").joinpath("page.html").read_bytes()
        try:
            super().__init__((HOST, port), ReviewHandler)
        except OSError as e:
            raise EdgeError(f"--port {port}: cannot listen on {HOST}:{port} ({e.strerror or e}); give another "
                            "--port, or 0 for any free one") from None  # fmt: skip
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def listing(self) -> dict[str, Any]:
        """What `GET /api/inbox` answers."""
        return {"groups": box.list_inbox(self.inbox), **self._places()}

    def _places(self) -> dict[str, Any]:
        return {"classes": box.dataset_classes(self.dataset), "inbox": str(self.inbox), "dataset": str(self.dataset),
                "target": box.destination(self.dataset)}  # fmt: skip

    def apply(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run `assign` or `discard` for a request body; the answer the page applies (one log line per request)."""
        files = body.get("files")
        if isinstance(files, list) and len(files) > MAX_FILES:
            raise EdgeError(f"{len(files)} files in one request (at most {MAX_FILES}); send them in parts")
        if action == "assign":
            new = body.get("new") is True  # confirmed: a new class although its name looks like an existing one
            done = box.assign(self.inbox, self.dataset, body.get("files"), body.get("class"), new=new)
        else:
            done = box.discard(self.inbox, body.get("files"))
        if done.moved:
            log.info("%s: %d file(s) moved, first %s -> %s", action, len(done.moved), *done.moved[0])
        if done.failed:
            log.warning("%s: %d file(s) failed, first %s: %s", action, len(done.failed), *done.failed[0])
        return {"moved": [{"file": f, "to": str(dest)} for f, dest in done.moved],
                "failed": [{"file": f, "error": why} for f, why in done.failed], **self._places()}  # fmt: skip

    def start(self) -> ReviewServer:
        """Serve on a background thread (for tests and embedding); `close()` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="review", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()


class ReviewHandler(BaseHTTPRequestHandler):
    """GET and POST only; every answer is the page, an image, or JSON."""

    server: ReviewServer
    server_version = "edge-train-review"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def _refuse(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        if self.headers.get("Host", "") in self.server.allowed_hosts:
            return True
        self._refuse(HTTPStatus.FORBIDDEN, "wrong Host: open the address edge-train review printed")
        return False

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8", PAGE_HEADERS)
        elif path == "/api/inbox":
            self._json(HTTPStatus.OK, self.server.listing())
        elif path.startswith("/image/"):
            self._image(unquote(path.removeprefix("/image/")))
        else:
            self._refuse(HTTPStatus.NOT_FOUND, "no such page")

    def _image(self, file_id: str) -> None:
        try:
            image = box.resolve_item(self.server.inbox, file_id)
            data = image.read_bytes()
        except (EdgeError, OSError) as e:
            self._refuse(HTTPStatus.NOT_FOUND, str(e) if isinstance(e, EdgeError) else "no such image")
            return
        kind = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, data, kind)

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin.removeprefix("http://") not in self.server.allowed_hosts:
            self._refuse(HTTPStatus.FORBIDDEN, "requests from other sites are refused")
            return
        if self.headers.get_content_type() != "application/json":
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON (Content-Type: application/json)")
            return
        action = {"/api/assign": "assign", "/api/discard": "discard"}.get(urlsplit(self.path).path)
        if action is None:
            self._refuse(HTTPStatus.NOT_FOUND, "no such API")
            return
        body = self._body()
        if body is None:
            return
        try:
            answer = self.server.apply(action, body)
        except box.SimilarClass as e:  # the page asks, then sends again with "new": true
            self._json(HTTPStatus.CONFLICT, {"error": str(e), "similar": e.similar})
            return
        except EdgeError as e:
            self._refuse(HTTPStatus.BAD_REQUEST, str(e))
            return
        self._json(HTTPStatus.OK, answer)

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return None
        if not 0 <= length <= MAX_BODY:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"at most {MAX_BODY} bytes")
            return None
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting deeper than Python's stack
            body = None
        if not isinstance(body, dict):
            self._refuse(HTTPStatus.BAD_REQUEST, 'the body is not a JSON object like {"files": [...], "class": "..."}')
            return None
        return body

    def _not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed


def add_review_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inbox", help="the frames to review: <predicted label>/<stem>.jpg + .json (edge-deploy collect)")
    p.add_argument(
        "--dataset",
        "-d",
        required=True,
        help="the dataset the frames go into: <class>/ folders (train/<class>/ with split folders)",
    )
    p.add_argument("--port", type=bounded_int(0, 65535), default=0, help="port on 127.0.0.1 (0: any free one)")


def cmd_review(args: argparse.Namespace) -> int:
    """Serve the review page until Ctrl-C."""
    dataset = Path(args.dataset)
    box.check_folders(Path(args.inbox), dataset)
    if not dataset.exists():
        dataset.mkdir(parents=True)
        log.info("created the dataset folder %s", dataset)
    server = ReviewServer(args.inbox, dataset, args.port)
    count = sum(1 + len(item["same"]) for g in box.list_inbox(server.inbox) for item in g["items"])  # hashes cached
    print(f"reviewing {count} image(s) of {args.inbox} into {box.destination(dataset)}: open {server.url} "
          "(Ctrl-C to stop)", flush=True)  # fmt: skip
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
