"""An embedded MQTT broker on loopback for demos on a machine with no broker installed.

It wraps amqtt (a maintained asyncio MQTT 3.1.1 broker from PyPI; ``pip install 'edge-daemon[demo]'``) running
on its own thread and event loop: QoS 0/1/2, retained messages and last wills work with paho 2 clients.
It listens on 127.0.0.1 only and allows anonymous clients; it is not meant for production (use mosquitto).

    with EmbeddedBroker(port=0) as broker:      # 0: a free port
        ...  # connect clients to 127.0.0.1:broker.port

Standalone: ``python -m edge.cli.demo_broker --port 1883``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import threading
from types import TracebackType

from edge.errors import EdgeError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _check_bindable(port: int) -> None:
    """Raise OSError when HOST:port cannot be listened on (checked before amqtt logs a traceback for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server does
        s.bind((HOST, port))


class EmbeddedBroker:
    """An amqtt broker on 127.0.0.1, running on a background thread.

    Args:
        port: TCP port; 0 picks a free one (read it from `port` after `start()`).
        quiet: lower amqtt's own loggers to WARNING (it logs every connection at INFO).
    """

    def __init__(self, port: int = 0, *, quiet: bool = True) -> None:
        self.host = HOST
        self.port = port
        self._quiet = quiet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        """Start the broker and return once it accepts connections.

        Raises:
            EdgeError: amqtt is not installed, or the port cannot be bound.
        """
        if self._thread is not None:
            return self
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise EdgeError("the embedded broker needs amqtt: pip install 'edge-daemon[demo]'") from None
        if self._quiet:
            logging.getLogger("amqtt").setLevel(logging.WARNING)
            logging.getLogger("transitions").setLevel(logging.WARNING)
        attempts = 1 if self.port else 3  # a port picked by us may be taken by someone else meanwhile
        for attempt in range(attempts):
            port = self.port or _free_port()
            try:
                _check_bindable(port)
                self._start_on(Broker, port, timeout)
            except OSError as exc:
                if attempt + 1 == attempts:
                    raise EdgeError(f"embedded broker: cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
                continue
            self.port = port
            log.info("embedded MQTT broker listening on %s:%d", HOST, port)
            return self
        raise AssertionError("unreachable")

    def _start_on(self, broker_cls: type, port: int, timeout: float) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._broker = broker_cls(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        thread = threading.Thread(target=run, name="embedded-mqtt-broker", daemon=True)
        thread.start()
        if not started.wait(timeout):
            raise EdgeError(f"embedded broker did not start within {timeout} s")
        if failure:
            thread.join(timeout)
            exc = failure[0]
            cause = exc.__cause__ or exc.__context__
            if isinstance(exc, OSError):
                raise exc
            if isinstance(cause, OSError):
                raise cause
            raise EdgeError(f"embedded broker failed to start: {exc}")
        self._loop, self._thread = loop, thread

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down and join its thread (idempotent)."""
        loop, thread, broker = self._loop, self._thread, self._broker
        self._loop = self._thread = self._broker = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout)
        except Exception as exc:  # shutting down anyway
            log.warning("embedded broker: unclean shutdown: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the embedded broker in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m edge.cli.demo_broker", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=1883, help="TCP port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with EmbeddedBroker(args.port) as broker:
            print(f"MQTT broker on {broker.host}:{broker.port} (Ctrl-C to stop)", flush=True)
            threading.Event().wait()
    except EdgeError as exc:
        print(f"edge.cli.demo_broker: error: {exc}")
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
