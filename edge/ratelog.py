"""A log line that repeats at most once per interval, counting what it held back (for floods from the network)."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """Logs a message at most once per `interval_s`; the next line says how many were held back meanwhile.

    Args:
        logger: where the lines go.
        interval_s: the least time between two lines.
    """

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger, self._interval = logger, interval_s
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._held = 0

    def log(self, level: int, message: str, *args: object, now: float | None = None) -> bool:
        """Log unless a line went out less than `interval_s` ago; True when logged."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last < self._interval:
                self._held += 1
                return False
            held, self._held, self._last = self._held, 0, now
        suffix = f" ({held} more like this in the last {self._interval:g} s)" if held else ""
        self._logger.log(level, message + suffix, *args)
        return True

    def info(self, message: str, *args: object) -> bool:
        """`log` at INFO."""
        return self.log(logging.INFO, message, *args)

    def warning(self, message: str, *args: object) -> bool:
        """`log` at WARNING."""
        return self.log(logging.WARNING, message, *args)
