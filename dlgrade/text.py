"""Text that came from a submission, made safe for whoever reads it.

A student controls the names of their files and folders, what their code prints, the
messages of the exceptions it raises and, through a forged reply, any number in a
statistic. Three helpers keep that from reaching a person or a program as anything but
inert text:

- :func:`printable` for text shown as text (a terminal, a report): escape sequences and
  control characters go (a terminal would obey them: clear the screen, move the cursor
  over a line, write the clipboard through OSC 52), newlines and tabs stay;
- :func:`shown_name` for a file or folder name: every byte and character stays visible,
  the invisible ones escaped, so two names that differ look different;
- :func:`dumps` for JSON: strict (no ``NaN`` or ``Infinity``, which strict readers refuse)
  and encodable as UTF-8 (no lone surrogates, which is how Python holds a name that is
  not UTF-8).

Stdlib only: the worker and the trusted side both import it.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

#: characters that reorder the text after them on screen (Trojan Source, CVE-2021-42574):
#: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: what :func:`printable` keeps of the control characters
KEPT_CONTROLS = frozenset("\n\t")

# ECMA-48: CSI (7- and 8-bit) up to its final byte; the string commands (OSC, DCS, SOS, PM,
# APC) up to BEL or ST — or the end of the line, so that an unterminated one cannot swallow
# the rubric's text after it; then any other two-character escape sequence.
_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]?
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) [^\x07\x1b\x9c\n]* (?:\x07|\x1b\\|\x9c)?
    | \x1b [ -/]* [0-~]?
    """,
    re.VERBOSE,
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# what printable() drops once sequences are gone: Unicode's Cc (C0, DEL, C1) but \n and \t,
# the line separators and the bidi controls, as one class (a regex: stdout can be long)
_BIDI = "".join(sorted(BIDI_CONTROLS))
_DROPPED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
# what dumps() escapes beyond json's own C0 escapes (only ever inside a JSON string)
_INVISIBLE = re.compile(f"[\x7f-\x9f\u2028\u2029{_BIDI}]")


def _is_control(char: str) -> bool:
    return (
        unicodedata.category(char) == "Cc"
        or char in BIDI_CONTROLS
        or char in "\u2028\u2029"  # line separators: a line break to some, invisible to others
    )


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode holds it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:  # never a surrogate's byte (those are >= 0x80): no name reads as another
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}"


def _unsurrogate(text: str) -> str:
    return _SURROGATE.sub(lambda m: _escape(m.group()), text)


def printable(text: Any) -> str:
    """``text`` as a terminal or a report may show it: escape sequences removed, a carriage
    return made a newline (it would let what follows overwrite the line), every other
    control character and bidirectional override removed, newlines and tabs kept; a byte
    that is not UTF-8 shown as ``\\xNN``.

    Examples:
        >>> printable("\\x1b[2J\\rloss: 0.5\\x1b]52;c;ZXZpbA==\\x07\\n")
        '\\nloss: 0.5\\n'
    """
    text = _SEQUENCE.sub("", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    return _DROPPED.sub("", _unsurrogate(text))


def shown_name(name: str | bytes) -> str:
    """A file or folder name as a person may read it: valid UTF-8, one line, nothing
    invisible. Bytes that are not UTF-8 (``os.fsdecode`` gives them as surrogates) become
    ``\\xNN``; newlines, tabs, control characters and bidirectional overrides are escaped;
    a backslash is doubled, so that no escaped name reads as another.

    Examples:
        >>> shown_name(b"r\\xe9sum\\xe9.py")
        'r\\\\xe9sum\\\\xe9.py'
        >>> shown_name("a\\nb")
        'a\\\\nb'
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    return "".join(
        "\\\\"
        if c == "\\"
        else _escape(c)
        if _is_control(c) or "\ud800" <= c <= "\udfff"
        else c
        for c in str(name)
    )


def strict(value: Any) -> Any:
    """``value`` made strict JSON: a float that is not finite becomes ``None`` (null), a lone
    surrogate in a string (or a key) is escaped as :func:`shown_name` does, tuples become
    lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _unsurrogate(value)
    if isinstance(value, dict):
        return {
            _unsurrogate(k) if isinstance(k, str) else strict_key(k): strict(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def strict_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return str(key)
    return key


def dumps(value: Any, **options: Any) -> str:
    """:func:`json.dumps` of :func:`strict` ``value``: what every JSON file dlgrade writes
    goes through (``allow_nan=False`` is a guard: nothing non-finite is left to refuse)."""
    options.setdefault("ensure_ascii", False)
    text = json.dumps(strict(value), allow_nan=False, **options)
    # json escapes C0 only: DEL, C1 and the bidi controls (only ever inside a string) are
    # escaped too, so that the file shown in a terminal is inert, and reads back the same
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
