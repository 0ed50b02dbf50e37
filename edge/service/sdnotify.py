"""A tiny sd_notify(3): READY, WATCHDOG, STATUS and STOPPING datagrams to systemd's $NOTIFY_SOCKET.

No dependency: one AF_UNIX datagram per message. Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
Sends never block (a listener that stops reading would otherwise stall the main loop once its queue is full);
errors are logged once and otherwise ignored: notification must never stop the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the service manager named by `NOTIFY_SOCKET` in `environ` (default os.environ)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr  # '@': Linux abstract namespace
        self._sock: socket.socket | None = None
        self._warned = False
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return bool(self._addr)

    def notify(self, **fields: object) -> bool:
        """Send `KEY=value` lines (keys upper-cased), e.g. notify(ready=1, status="ok"); True when sent."""
        if not self._addr:
            return False
        msg = "\n".join(f"{k.upper()}={str(v).replace(chr(10), ' ')}" for k, v in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(msg.encode(), socket.MSG_DONTWAIT, self._addr)
            return True
        except OSError as e:
            if not self._warned:
                log.warning("cannot notify the service manager at %s: %s", self._addr.lstrip("\0"), e)
                self._warned = True
            return False

    def ready(self, status: str) -> bool:
        """READY=1 with a status line."""
        return self.notify(ready=1, status=status)

    def watchdog(self) -> bool:
        """WATCHDOG=1: the main loop made progress."""
        return self.notify(watchdog=1)

    def status(self, text: str) -> bool:
        """STATUS=<one line>."""
        return self.notify(status=text)

    def stopping(self) -> bool:
        """STOPPING=1."""
        return self.notify(stopping=1, status="stopping")

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None when no watchdog is asked for us."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
        pid = int(env.get("WATCHDOG_PID", "0") or 0)
    except ValueError:
        return None
    if usec <= 0 or (pid and pid != os.getpid()):
        return None
    return usec / 2e6
