"""sd_notify over a real unix datagram socket bound by the test (path and abstract namespace)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from edge.service.sdnotify import Notifier


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        assert n.ready("model loaded\nsecond line")
        assert server.recv(4096) == b"READY=1\nSTATUS=model loaded second line"
        assert n.watchdog() and server.recv(4096) == b"WATCHDOG=1"
        assert n.stopping() and server.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
        n.close()
        n.close()  # idempotent


def test_abstract_namespace_socket() -> None:
    name = f"edge-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.status("hello")
        assert server.recv(4096) == b"STATUS=hello"
        n.close()


def test_without_systemd_everything_is_a_no_op(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready("x") and n.watchdog_interval is None
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not gone.watchdog() and not gone.watchdog()
    assert len([r for r in caplog.records if "cannot notify" in r.getMessage()]) == 1  # warned once
    gone.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env, expected) -> None:
    assert Notifier(env).watchdog_interval == expected


def test_a_listener_that_stops_reading_never_blocks_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))  # never read: its queue fills up
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        results = [n.watchdog() for _ in range(2000)]  # would hang here with blocking sends
        assert results[0] and not results[-1]
        n.close()
