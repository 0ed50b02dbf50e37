"""Process-wide hooks for the daemon: SIGTERM/SIGINT/SIGHUP handlers and the report of a thread that died.

`install()` returns a function restoring what was there before. Signal handlers only set flags (they must
take no lock: the interrupted main thread may hold it); the daemon's loop polls them.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def install(on_stop: Callable[[], None], on_reload: Callable[[], None],
            on_thread_death: Callable[[str], None]) -> Callable[[], None]:  # fmt: skip
    """Route SIGTERM/SIGINT to `on_stop`, SIGHUP to `on_reload` (main thread only), and any thread dying of an
    uncaught exception to `on_thread_death(thread name)` after one log line saying what killed it."""
    previous_hook = threading.excepthook

    def thread_died(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread else "?"
        log.error("thread %s died: %s: %s", name, args.exc_type.__name__, args.exc_value)
        on_thread_death(name)

    threading.excepthook = thread_died
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {signal.SIGTERM: lambda *_: on_stop(), signal.SIGINT: lambda *_: on_stop(),
                    signal.SIGHUP: lambda *_: on_reload()}  # fmt: skip
        previous = {sig: signal.signal(sig, h) for sig, h in handlers.items()}

    def restore() -> None:
        threading.excepthook = previous_hook
        for sig, h in previous.items():
            signal.signal(sig, h)  # type: ignore[arg-type]

    return restore
