"""The paho client set up in one place (credentials, TLS, last will) and connection failures put into words.

Used by `edge.mqtt.publisher` (the daemon) and `edge.cli.health` (the fleet's check), so both talk to the broker the
same way. `connect_failure()` turns what went wrong into one line with the likely fix: the TLS certificate
chain or host name, TLS spoken to a plain port, a broker that wants a client certificate, a refused
connection, a name that does not resolve.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.tls import ssl_context

if TYPE_CHECKING:
    from edge.config.schema import MqttConfig, Secret

CONNECT_TIMEOUT_S = 3.0  # TCP (and TLS) connect; bounds stop() while an attempt hangs
CONNACK_TIMEOUT_S = 10.0  # a TCP connection without an MQTT answer this long is not a broker (or not MQTT)


def make_client(mqtt_cfg: MqttConfig, password: Secret | None, client_id: str,
                will: tuple[str, str] | None = None, qos: int = 1) -> mqtt.Client:  # fmt: skip
    """A paho 2 client (VERSION2 callbacks, clean session) with credentials, TLS and an optional retained will.

    Raises:
        EdgeError: the TLS files do not load (see `edge.config.tls.ssl_context`).
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if mqtt_cfg.username is not None:
        client.username_pw_set(mqtt_cfg.username, password.reveal() if password else None)
    if mqtt_cfg.tls.enabled:
        client.tls_set_context(ssl_context(mqtt_cfg.tls))
    if will is not None:
        client.will_set(will[0], will[1], qos=qos, retain=True)
    client.connect_timeout = CONNECT_TIMEOUT_S
    return client


def connect_failure(error: BaseException | str | None, host: str, port: int, tls: bool) -> str:
    """One line saying why connecting to `host:port` failed and what to check (pure).

    Args:
        error: the exception raised by the connect, or the text paho logged when the connection broke during
            the handshake (e.g. a TLS alert), or None when nothing is known.
        host, port: the broker. tls: whether `mqtt.tls.enabled` is set.
    """
    where = f"broker {host}:{port}"
    text = str(error or "").lower()
    if isinstance(error, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        detail = getattr(error, "verify_message", None) or "certificate verify failed"
        if "hostname" in text or "ip address mismatch" in text:
            return (f"{where}: TLS host name check failed ({detail}); connect by the name in the broker's "
                    "certificate, or set mqtt.tls.insecure = true (testing only)")  # fmt: skip
        return f"{where}: TLS certificate not trusted ({detail}); set mqtt.tls.ca to the CA that signed it"
    if "wrong version number" in text or "record layer failure" in text or "packet length too long" in text:
        return f"{where}: TLS handshake failed: the port does not speak TLS; use the TLS port or tls.enabled = false"
    if "certificate required" in text or ("handshake failure" in text and tls):
        return f"{where}: the broker requires a client certificate; set mqtt.tls.cert and mqtt.tls.key"
    if isinstance(error, ssl.SSLError):
        return f"{where}: TLS failed ({error.reason or error}); check [mqtt.tls]"
    if tls and isinstance(error, ConnectionResetError):
        return f"{where}: reset during the TLS handshake: is it a TLS port? (a plain MQTT port: tls.enabled = false)"
    if isinstance(error, ConnectionRefusedError):
        return f"{where}: connection refused; is the broker running and listening on that port?"
    if isinstance(error, socket.gaierror):
        return f"{where}: cannot resolve {host!r} ({error.strerror}); check mqtt.host"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"{where}: no answer within {CONNECT_TIMEOUT_S:g} s; check mqtt.host, mqtt.port and the network"
    if isinstance(error, OSError):
        return f"{where}: cannot connect ({error.strerror or error}); check mqtt.host, mqtt.port and the network"
    if text:
        hint = "check [mqtt.tls] and the broker's log" if tls else "is it a TLS port? then set mqtt.tls.enabled = true"
        return f"{where}: the connection broke before the broker accepted it ({str(error)[:120]}); {hint}"
    hint = "check [mqtt.tls] and the broker's log" if tls else "is it a TLS port? then set mqtt.tls.enabled = true"
    return f"{where}: the connection closed before the broker accepted it; {hint}"


class ConnectionReporter:
    """Says why connecting fails, once per distinct reason, and breaks a connection the broker never answers.

    The publisher calls it from paho's callbacks: `attempt()` before each TCP connect, `failed()` when the
    connect raised, `closed()` when the connection broke before CONNACK (the reason is paho's last error line,
    e.g. a TLS alert), `refused()` on a refused CONNACK, `accepted()` on success; `check(now)` from the
    daemon's loop breaks a connection without CONNACK after `CONNACK_TIMEOUT_S` so paho retries.
    """

    def __init__(self, logger: logging.Logger, mqtt_cfg: MqttConfig, client: mqtt.Client) -> None:
        self._log, self._client = logger, client
        self._host, self._port, self._tls = mqtt_cfg.host, mqtt_cfg.port, mqtt_cfg.tls.enabled
        self._client_cert = bool(mqtt_cfg.tls.cert)
        self._last: str | None = None
        self.attempt_at: float | None = None  # monotonic time of the current connect, until its CONNACK
        self._paho_error = _LastError()
        self._paho_log = logging.getLogger(f"{__name__}.paho.{id(self):x}")
        self._paho_log.propagate, self._paho_log.level = False, logging.WARNING
        self._paho_log.addHandler(self._paho_error)
        client.enable_logger(self._paho_log)

    def attempt(self, now: float) -> None:
        self._paho_error.text, self.attempt_at = None, now

    def accepted(self) -> None:
        self.attempt_at, self._last = None, None

    def refused(self, reason: object) -> None:
        self.attempt_at = None
        self._report(f"broker {self._host}:{self._port} refused the connection: {reason}; check mqtt.username, "
                     "mqtt.password_file and [mqtt.tls]", logging.ERROR)  # fmt: skip

    def failed(self, error: BaseException | None) -> None:
        self.attempt_at = None
        self._report(connect_failure(error, self._host, self._port, self._tls))

    def closed(self) -> None:
        """The connection closed; a failure only when it happened during the handshake."""
        if self.attempt_at is not None:
            self.attempt_at = None
            text = self._paho_error.text
            if self._tls and not self._client_cert and _broken_off(text):
                text = "certificate required"  # the same failure however it surfaced (see _broken_off)
            self._report(connect_failure(text, self._host, self._port, self._tls))

    def check(self, now: float) -> None:
        """Break a TCP connection that got no CONNACK within `CONNACK_TIMEOUT_S` (paho then retries)."""
        if self.attempt_at is None or now - self.attempt_at <= CONNACK_TIMEOUT_S:
            return
        self.attempt_at = None
        hint = ("is it an MQTT broker's TLS port?" if self._tls else
                "is it a TLS port (then set mqtt.tls.enabled = true) or not an MQTT broker?")  # fmt: skip
        self._report(f"broker {self._host}:{self._port}: no MQTT answer (CONNACK) within {CONNACK_TIMEOUT_S:g} s; "
                     f"{hint}")  # fmt: skip
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Detach from paho's logger."""
        self._paho_log.removeHandler(self._paho_error)

    def _report(self, what: str, level: int = logging.WARNING) -> None:
        if what == self._last:
            self._log.debug("MQTT: %s (still)", what)
            return
        self._last = what
        self._log.log(level, "MQTT: %s (retrying)", what)


def _broken_off(text: str | None) -> bool:
    """True when paho saw the connection end without a reason (EOF, reset, nothing logged).

    Called only once the TLS handshake has completed (a handshake failure raises in connect: `failed()`). With TLS
    1.3 a broker that wants a client certificate checks it only after the client's handshake is done, then sends
    the "certificate required" alert and closes; whether the client reads that alert or only the close (an EOF,
    or a reset when the alert is lost to it) is a race. Without `mqtt.tls.cert`, all three are that one failure,
    logged once with one reason, not alternating lines."""
    if not text:
        return True
    text = text.lower()
    return "eof" in text or "reset" in text or "broken pipe" in text or "connection closed" in text


class _LastError(logging.Handler):
    """Keeps paho's last warning or error line (e.g. a TLS alert while reading)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.text = record.getMessage()
