"""`edge.http.admission` alone: pre-auth places per address and in all, the per-address rate, the slots."""

from __future__ import annotations

from edge.http.admission import Admission, client_key


def test_a_client_is_its_ipv4_address_or_its_ipv6_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7" and client_key("fe80::1%eth0") == "fe80::/64"


def test_places_per_address_and_in_all_are_freed_when_the_head_is_read() -> None:
    a = Admission(2, per_address=2, total=3)
    k1, k2 = a.arrive("10.0.0.1", 0.0), a.arrive("10.0.0.1", 0.0)
    assert k1 == k2 == "10.0.0.1" and a.arrive("10.0.0.1", 0.0) is None  # its two places are held
    assert a.arrive("10.0.0.2", 0.0) == "10.0.0.2" and a.arrive("10.0.0.3", 0.0) is None  # three in all
    a.head_read(k1)
    assert a.arrive("10.0.0.3", 0.0) == "10.0.0.3" and a.preauth == 3
    assert a.take_slot() and a.take_slot() and not a.take_slot() and a.served == 2  # max_clients
    a.free_slot()
    assert a.take_slot()


def test_new_connections_are_rate_bounded_per_address() -> None:
    a = Admission(8, per_address=1000, total=1000, rate=10.0, burst=5)
    assert [a.arrive("10.0.0.1", 0.0) is not None for _ in range(6)] == [True] * 5 + [False]
    assert a.arrive("10.0.0.2", 0.0) is not None  # another address has its own bucket
    assert a.arrive("10.0.0.1", 0.1) is not None and a.arrive("10.0.0.1", 0.1) is None  # 10 a second after
