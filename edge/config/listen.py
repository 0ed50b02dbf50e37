"""The `[http] listen` setting parsed: which address and port the daemon's HTTP server binds, and who can reach it.

Pure and part of the config layer: `edge.config.checks` refuses a bad value (and a server reachable from other
machines without a token) before `run` starts; `edge.http.server` binds what this returns.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from edge.errors import EdgeError

EXAMPLE = '"127.0.0.1:8080" (this machine only) or "0.0.0.0:8080" (every interface)'


@dataclass(frozen=True)
class Listen:
    """Where the server listens: an IP address (v4 or v6) and a TCP port."""

    host: str
    port: int

    @property
    def ipv6(self) -> bool:
        """True for an IPv6 address (the server then binds an AF_INET6 socket)."""
        return ":" in self.host

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1, ::ffff:127.x.x.x)."""
        address = ipaddress.ip_address(self.host)
        mapped = getattr(address, "ipv4_mapped", None)  # the same on every Python version
        return (mapped or address).is_loopback

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:8080/`` or ``http://[::1]:8080/``."""
        return f"http://[{self.host}]:{self.port}/" if self.ipv6 else f"http://{self.host}:{self.port}/"


def parse_listen(text: str, key: str = "http.listen") -> Listen:
    """`HOST:PORT` (IPv6 as `[ADDR]:PORT`; `localhost` means 127.0.0.1) as a `Listen`.

    Raises:
        EdgeError: one line naming `key`, what is wrong and an example.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise EdgeError(f"{key}: {text!r:.80} is not ADDRESS:PORT; write e.g. {EXAMPLE}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise EdgeError(f"{key}: {text!r:.80}: put an IPv6 address in brackets, e.g. \"[::1]:8080\"")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise EdgeError(f"{key}: {host!r:.80} is not an IP address of this machine; write e.g. {EXAMPLE}") from None
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise EdgeError(f"{key}: port {port!r:.20} is not a number from 1 to 65535; write e.g. {EXAMPLE}")
    return Listen(str(address), int(port))
