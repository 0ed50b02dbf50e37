"""Camera source strings made safe to show: credentials in a URL replaced by `***` (pure).

A camera URL may carry a password in its user info (`rtsp://admin:secret@cam/live`) or, as many MJPEG
cameras take it, in its query (`http://cam/video.cgi?user=admin&pwd=secret`). Logs, MQTT events and
`check-config` show `redact_url(source)`; only the camera itself gets the real string.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# Query keys whose values are credentials (compared case-insensitively, after percent-decoding).
SECRET_QUERY_KEYS = frozenset(
    {
        "user", "username", "usr", "login", "pwd", "pw", "pass", "passwd", "password", "token", "access_token",
        "auth", "authorization", "key", "apikey", "api_key", "secret", "signature", "sig",
    }
)  # fmt: skip


def is_url(source: str) -> bool:
    """True for `scheme://...` strings (rtsp, http, https, ...), as opposed to paths and device indices."""
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme[:1].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme)


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        key, sep, _ = part.partition("=")
        parts.append(f"{key}={MASK}" if sep and unquote(key).strip().lower() in SECRET_QUERY_KEYS else part)
    return "&".join(parts)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def redact_text(text: str) -> str:
    """Every URL inside a text (an `exec:` command, a child's error output) with its credentials masked."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_url(source: str) -> str:
    """`source` with every credential replaced by `***`; anything that is not a URL is returned unchanged.

    An `exec:` source (a command) has the URLs in it masked.

    User info keeps a user name followed by a password (`admin:***@`) and is masked whole otherwise
    (`***@`: a lone user info is often a token). Credential query values (`pwd=***`) are masked too.
    """
    if source.startswith("exec:"):
        return redact_text(source)
    if not is_url(source):
        return source
    try:
        parts = urlsplit(source)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show no more than the scheme
        return f"{source.partition('://')[0]}://{MASK}"
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")  # the last '@' ends the user info: 'a:p@ss@host'
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon and user else f"{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_query(parts.query), parts.fragment))
