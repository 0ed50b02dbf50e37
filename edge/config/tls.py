"""The TLS context for MQTT, built in one place from `[mqtt.tls]`: for the daemon, `health` and `check-config`.

Every problem with the files is an `EdgeError` naming the key: a missing or junk CA file, a certificate and a
key that do not belong together, a key protected by a passphrase (a service cannot type it: without this check
OpenSSL would prompt on the terminal and wait for ever).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.config.schema import TlsConfig


class _Encrypted(Exception):
    """Raised by the passphrase callback: the key is encrypted."""


def _no_passphrase() -> str:
    raise _Encrypted


def _reason(e: ssl.SSLError) -> str:
    return (e.reason or str(e)).replace("_", " ").lower()


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """A client context verifying the broker (CA from `tls.ca`, else the system's), with the client certificate.

    Raises:
        EdgeError: one line naming `mqtt.tls.<key>` and the fix.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if tls.ca:
        try:
            ctx.load_verify_locations(cafile=tls.ca)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise EdgeError(f"mqtt.tls.ca: {tls.ca} is not a readable PEM CA certificate ({_describe(e)})") from None
    if tls.cert or tls.key:
        try:
            ctx.load_cert_chain(certfile=str(tls.cert), keyfile=str(tls.key), password=_no_passphrase)
        except _Encrypted:
            raise EdgeError(
                f"mqtt.tls.key: {tls.key} is protected by a passphrase, which a service cannot type; "
                "give an unencrypted key (openssl pkey -in KEY -out KEY.plain), readable by the service only"
            ) from None
        except ssl.SSLError as e:
            if "mismatch" in _reason(e):
                raise EdgeError(
                    f"mqtt.tls.cert/key: the key {tls.key} does not belong to the certificate {tls.cert}; "
                    "give the key the certificate was issued for"
                ) from None
            raise EdgeError(
                f"mqtt.tls.cert/key: cannot load {tls.cert} with {tls.key} ({_describe(e)}); give PEM files"
            ) from None
        except (OSError, ValueError) as e:
            raise EdgeError(f"mqtt.tls.cert/key: cannot read {tls.cert} / {tls.key} ({_describe(e)})") from None
    if tls.insecure:
        ctx.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    return ctx


def _describe(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return _reason(e)
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
