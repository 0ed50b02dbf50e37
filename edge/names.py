"""One rule for names taken from outside: labels, class and region names, device file names, sidecar fields.

A name may not be blank, may not carry a control character (C0, DEL, C1: ESC, BEL, NUL, newline, tab...) or a
bidirectional override or isolate (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C), and is at most
`MAX_NAME_CHARS` characters. Such a name would forge a line in a log or an index, move the cursor on a
terminal, reorder what a user reads, or publish an empty Home Assistant option.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 256  # a label or file name; longer is not a name but a payload

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_fault(name: str) -> str | None:
    """Why `name` breaks the rule (one short phrase, the offending character escaped), or None when it is fine."""
    if not name.strip():
        return "is blank"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long (at most {MAX_NAME_CHARS})"
    for ch in name:
        if ch in _BIDI:
            return f"holds the bidirectional control U+{ord(ch):04X}"
        if unicodedata.category(ch) == "Cc":
            return f"holds the control character {ch!r}"
    return None


def escaped(name: str) -> str:
    """`name` with every character the rule forbids written as an escape (`\\n`, `\\x1b`, `\\u202e`), for logs."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if ch in _BIDI or unicodedata.category(ch) == "Cc" else ch
        for ch in name
    )
