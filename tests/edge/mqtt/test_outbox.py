"""The outbox forgets acknowledged messages only when that can change its answer, and its bounds still hold."""

from __future__ import annotations

from edge.mqtt.outbox import Message, Outbox


class Info:
    """What paho's MQTTMessageInfo answers for a tracked message (acknowledged or not)."""

    def __init__(self, published: bool = False) -> None:
        self.published, self.asked = published, 0

    def is_published(self) -> bool:
        self.asked += 1
        return self.published


def test_acknowledged_messages_are_not_inspected_per_message() -> None:
    box = Outbox(size=10, inflight_max=3)
    first = Info(published=True)
    box.track(first)
    for n in range(2):
        box.put(Message("t", str(n).encode(), False))
        assert box.take(connected=True) is not None
        box.track(Info())
    assert first.asked == 0  # two takes, no pruning: below the bound nothing needed it
    assert box.counters() == (2, 0, 1)  # the counters prune: one acknowledged, two in flight
    assert first.asked == 1


def test_the_in_flight_bound_holds_and_frees_once_acknowledged() -> None:
    box = Outbox(size=10, inflight_max=2)
    a, b = Info(), Info()
    box.track(a)
    box.track(b)
    box.put(Message("t", b"x", False))
    assert box.take(connected=True) is None  # two in flight, none acknowledged
    a.published = True
    assert box.take(connected=True) is not None  # pruned at the bound: room again


def test_nothing_new_while_paho_resends_after_a_reconnect() -> None:
    box = Outbox(size=3, inflight_max=5)
    unacked = Info()
    box.track(unacked)
    box.disconnected()
    box.put(Message("t", b"x", False))
    assert box.take(connected=True) is None
    unacked.published = True
    assert box.take(connected=True) is not None  # the re-sent message was acknowledged: order kept
