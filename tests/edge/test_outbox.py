"""The outbox's direct path: a message skips the queue only while connected, nothing waits and there is room."""

from __future__ import annotations

from edge.outbox import Message, Outbox


class Info:
    """What paho's MQTTMessageInfo answers for a tracked message (acknowledged or not)."""

    def __init__(self, published: bool = False) -> None:
        self.published = published

    def is_published(self) -> bool:
        return self.published


def test_direct_only_when_connected_and_nothing_waits() -> None:
    box = Outbox(size=3, inflight_max=2)
    assert box.direct(connected=True)
    assert not box.direct(connected=False)
    box.put(Message("t", b"1", False))
    assert not box.direct(connected=True)  # a queued message goes first: order is kept
    assert box.take(connected=True) is not None
    assert box.direct(connected=True)


def test_direct_respects_the_in_flight_bound_and_forgets_acknowledged_messages_lazily() -> None:
    box = Outbox(size=3, inflight_max=2)
    first, second = Info(), Info()
    box.track(first)
    box.track(second)
    assert not box.direct(connected=True)  # two in flight, none acknowledged
    first.published = True
    assert box.direct(connected=True)  # pruned when full: room again
    assert box.counters() == (1, 0, 1)


def test_direct_waits_while_paho_resends_after_a_reconnect() -> None:
    box = Outbox(size=3, inflight_max=5)
    unacked = Info()
    box.track(unacked)
    box.disconnected()
    assert not box.direct(connected=True)
    unacked.published = True
    box.more(connected=True)  # prunes: the re-sent message was acknowledged
    assert box.direct(connected=True)
