# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one BER/DER reader of the collection: PKCS#12 files, CMS envelopes, certificates.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

:func:`read` returns a :class:`Node`: one element, its first identifier octet and where
its content lies in the buffer. By default it reads BER, as PKCS#12 files and CMS envelopes
may be written: indefinite lengths (content up to an end-of-contents marker) and constructed
strings. ``strict=True`` reads DER, as certificates must be: definite minimal lengths, no
constructed strings, minimal INTEGERs, BOOLEAN 00 or FF; the children of a strict node are
read strictly too. Children are read when asked for (a definite-length element is only
bounds-checked); no element is nested more than :data:`MAX_DEPTH` deep, so a crafted file
cannot exhaust the stack.

Every error is :class:`Truncated` (the data ends inside an element) or :class:`Garbled` (a
byte that is there does not fit), with the offset where it went wrong; both are ``SneError``
(code ``corrupt``) and ``ValueError``. Every byte is judged only once it is there, so a prefix
of a well-formed structure is always ``Truncated``, never ``Garbled``. An element that runs
past its container (not past the data) is ``Garbled``.

OIDs are dotted text; the ones the collection looks for are named in ``_oids.py``.
"""

from __future__ import annotations

import datetime
import re
from typing import List, NamedTuple, Optional, Tuple

# The errors live in the one exception tree; readers may import them from here as well.
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import Garbled, Malformed, Truncated

MAX_DEPTH = 32
# An OID arc is at most this many bits (UUID arcs under 2.25 are 128): a bigger one is Garbled.
MAX_ARC_BITS = 136

# First identifier octets of the universal types the collection reads.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
VISIBLE_STRING = 0x1A
UNIVERSAL_STRING = 0x1C
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31
CONSTRUCTED = 0x20

# Character string types decoded by :meth:`Node.utf8`: bytes per character (0 = UTF-8).
STRING_WIDTHS = {UTF8_STRING: 0, PRINTABLE_STRING: 1, T61_STRING: 1, IA5_STRING: 1,
                 VISIBLE_STRING: 1, BMP_STRING: 2, UNIVERSAL_STRING: 4}


def context(number: int, constructed: bool = True) -> int:
    """The identifier octet of the context-specific tag ``[number]`` (number < 31)."""
    return 0x80 | (CONSTRUCTED if constructed else 0) | number


def _say(what: str, text: str) -> str:
    return "%s: %s" % (what, text) if what else text


def _overrun(end: Optional[int], offset: int, what: str, text: str) -> Malformed:
    """Past the end of the data (``end`` None): Truncated; past a container's end: Garbled."""
    if end is None:
        return Truncated(offset, _say(what, text + " runs past the end of the data"))
    return Garbled(offset, _say(what, text + " runs past the end of its container"))


# --------------------------------------------------------------------------- reading


def _high_tag(data: bytes, pos: int, end: Optional[int], start: int, what: str) -> int:
    """The position after the subsequent octets of a high tag number (X.690 8.1.2.4)."""
    limit = len(data) if end is None else end
    number = 0
    while True:
        if pos >= limit:
            raise _overrun(end, start, what, "a header")
        octet = data[pos]
        pos += 1
        if octet == 0x80 and number == 0:
            raise Garbled(start, _say(what, "non-minimal tag encoding"))
        number = (number << 7) | (octet & 0x7F)
        if number >= 1 << 28:
            raise Garbled(start, _say(what, "tag number too large"))
        if not octet & 0x80:
            break
    if number < 31:
        raise Garbled(start, _say(what, "non-minimal tag encoding"))
    return pos


def read_header(data: bytes, pos: int, end: Optional[int] = None, strict: bool = False,
                what: str = "") -> Tuple[int, int, Optional[int]]:
    """(first identifier octet, content start, content length or None when indefinite).

    ``end``: where the container of the element ends; None for the end of the data."""
    limit = len(data) if end is None else end
    start = pos
    if pos >= limit:
        raise _overrun(end, start, what, "a header")
    tag = data[pos]
    pos = _high_tag(data, pos + 1, end, start, what) if tag & 0x1F == 0x1F else pos + 1
    if pos >= limit:
        raise _overrun(end, start, what, "a header")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return tag, pos, first
    if first == 0x80:
        if strict:
            raise Garbled(start, _say(what, "indefinite length is not DER"))
        if not tag & CONSTRUCTED:
            raise Garbled(start, _say(what, "indefinite length on a primitive element"))
        return tag, pos, None
    count = first & 0x7F
    if count > 4:
        raise Garbled(start, _say(what, "length field of %d bytes" % count))
    if pos + count > limit:
        raise _overrun(end, start, what, "a header")
    length = int.from_bytes(data[pos:pos + count], "big")
    if strict and (data[pos] == 0 or length < 0x80):
        raise Garbled(start, _say(what, "non-minimal length encoding is not DER"))
    return tag, pos + count, length


def read(data: bytes, pos: int = 0, end: Optional[int] = None, strict: bool = False,
         what: str = "", depth: int = 0) -> Node:
    """The element at ``pos``. It must end by ``end``, the end of its container: running past
    it is Garbled; by default (None) the end of the data: running past that is Truncated."""
    tag, cstart, length = read_header(data, pos, end, strict, what)
    if length is not None:
        cend = cstart + length
        if cend > (len(data) if end is None else end):
            raise _overrun(end, pos, what, "an element of %d bytes" % length)
        return Node(data, tag, pos, cstart, cend, cend, depth, strict)
    if depth >= MAX_DEPTH:
        raise Garbled(pos, _say(what, "nested too deeply"))
    child = cstart
    limit = len(data) if end is None else end
    while data[child:child + 2] != b"\0\0" or child + 2 > limit:  # up to the end-of-contents
        child = read(data, child, end, strict, what, depth + 1).end
    return Node(data, tag, pos, cstart, child, child + 2, depth, strict)


def _elements(data: bytes, pos: int, end: Optional[int], strict: bool, what: str,
              depth: int) -> List[Node]:
    nodes: List[Node] = []
    while pos < (len(data) if end is None else end):
        nodes.append(read(data, pos, end, strict, what, depth))
        pos = nodes[-1].end
    return nodes


def read_one(data: bytes, what: str = "", strict: bool = False, contained: bool = False) -> Node:
    """The one element ``data`` holds: Garbled when bytes follow it.

    ``contained``: ``data`` is the content of an element already read (an OCTET STRING that
    holds DER), so running past its end is Garbled, not Truncated."""
    node = read(data, 0, len(data) if contained else None, strict, what)
    if node.end != len(data):
        raise Garbled(node.end, _say(what, "%d unexpected bytes after the element"
                                     % (len(data) - node.end)))
    return node


def read_all(data: bytes, what: str = "", strict: bool = False) -> List[Node]:
    """The elements of ``data``, one after the other (concatenated certificates)."""
    return _elements(data, 0, None, strict, what, 0)


def _length_octets(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(tag: int, content: bytes) -> bytes:
    """The DER of one element: identifier octet ``tag``, minimal definite length, content."""
    return bytes([tag]) + _length_octets(len(content)) + content


_UTC_TIME = re.compile(r"^(\d{10})(\d{2})?(Z|[+-]\d{4})$")
_GEN_TIME = re.compile(r"^(\d{12})(\d{2})?(?:[.,]\d+)?(Z|[+-]\d{4})?$")


class Node(NamedTuple):
    """One element read from ``data``: ``tag`` is its first identifier octet (the number of
    a high tag is checked, not kept); header at ``start``, content ``cstart:cend``, next
    element at ``end``; ``depth`` below the element first read; ``strict``: read as DER."""

    data: bytes
    tag: int
    start: int
    cstart: int
    cend: int
    end: int
    depth: int
    strict: bool

    def __repr__(self) -> str:
        return "Node(tag=0x%02X, start=%d, end=%d)" % (self.tag, self.start, self.end)

    @property
    def content(self) -> bytes:
        return self.data[self.cstart:self.cend]

    @property
    def raw(self) -> bytes:
        """The whole encoding as read: header, content (and end-of-contents)."""
        return self.data[self.start:self.end]

    @property
    def constructed(self) -> bool:
        return bool(self.tag & CONSTRUCTED)

    def _fail(self, what: str, text: str) -> Garbled:
        return Garbled(self.start, _say(what, text))

    def children(self, what: str = "") -> List[Node]:
        """The elements of a constructed element's content (Garbled for a primitive one)."""
        if not self.constructed:
            raise self._fail(what, "expected a constructed element")
        if self.depth >= MAX_DEPTH:
            raise self._fail(what, "nested too deeply")
        return _elements(self.data, self.cstart, self.cend, self.strict, what, self.depth + 1)

    def expect(self, tag: int, what: str) -> Node:
        """This element, if its identifier octet is ``tag``; Garbled otherwise."""
        if self.tag != tag:
            raise self._fail(what, "expected tag 0x%02X, found 0x%02X" % (tag, self.tag))
        return self

    def explicit(self, number: int, what: str) -> Node:
        """The one element inside this ``[number] EXPLICIT`` tag."""
        inner = self.expect(context(number), what).children(what)
        if len(inner) != 1:
            raise self._fail(what, "[%d] EXPLICIT must hold one element" % number)
        return inner[0]

    def oid(self, what: str = "object identifier") -> str:
        """An OBJECT IDENTIFIER as dotted text (minimal arcs, as BER requires too)."""
        arcs: List[int] = []
        value = 0
        fresh = True
        for octet in self.expect(OID, what).content:
            if fresh and octet == 0x80:
                raise self._fail(what, "non-minimal OID arc")
            value = (value << 7) | (octet & 0x7F)
            if value >> MAX_ARC_BITS:  # str() of a huge arc would fail (and cost)
                raise self._fail(what, "OID arc of more than %d bits" % MAX_ARC_BITS)
            fresh = not octet & 0x80
            if fresh:
                arcs.append(value)
                value = 0
        if not arcs or not fresh:
            raise self._fail(what, "empty or unfinished OID")
        first = min(arcs[0] // 40, 2)
        return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first] + arcs[1:])

    def integer_bytes(self, what: str = "integer") -> bytes:
        """The content octets of an INTEGER (two's complement; minimal when strict)."""
        body = self.expect(INTEGER, what).content
        if not body:
            raise self._fail(what, "empty INTEGER")
        if self.strict and len(body) > 1 and ((body[0] == 0 and not body[1] & 0x80)
                                              or (body[0] == 0xFF and body[1] & 0x80)):
            raise self._fail(what, "non-minimal INTEGER encoding")
        return body

    def integer(self, what: str = "integer") -> int:
        return int.from_bytes(self.integer_bytes(what), "big", signed=True)

    def boolean(self, what: str = "boolean") -> bool:
        body = self.expect(BOOLEAN, what).content
        if len(body) != 1 or (self.strict and body[0] not in (0x00, 0xFF)):
            raise self._fail(what, "a BOOLEAN is one byte (00 or FF in DER)")
        return body[0] != 0

    def octets(self, what: str = "octet string") -> bytes:
        """The content of an OCTET STRING (or of a string IMPLICITly tagged); in BER the
        segments of a constructed one, joined."""
        if not self.constructed:
            return self.content
        if self.strict:
            raise self._fail(what, "a constructed string is not DER")
        segments = []
        for child in self.children(what):
            if child.tag & ~CONSTRUCTED != OCTET_STRING:
                raise child._fail(what, "a segment of a constructed string is not an OCTET STRING")
            segments.append(child.octets(what))
        return b"".join(segments)

    def definite(self) -> bytes:
        """This element re-encoded with definite lengths (a Name read from BER compares as DER)."""
        ident_end = self.start + 1
        if self.tag & 0x1F == 0x1F:
            while self.data[ident_end] & 0x80:
                ident_end += 1
            ident_end += 1
        if self.constructed:
            content = b"".join(child.definite() for child in self.children())
        else:
            content = self.content
        return self.data[self.start:ident_end] + _length_octets(len(content)) + content

    def utf8(self, what: str = "string") -> bytes:
        """The characters of a string type (:data:`STRING_WIDTHS`) as UTF-8, decoded as
        OpenSSL's ASN1_STRING_to_UTF8 does: T61String as Latin-1, no surrogates."""
        width = STRING_WIDTHS.get(self.tag)
        body = self.content
        if width is None:
            raise self._fail(what, "tag 0x%02X is not a character string" % self.tag)
        if width == 1:
            return body.decode("latin-1").encode("utf-8")
        if width == 0:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                raise self._fail(what, "UTF8String is not valid UTF-8")
            return body
        if len(body) % width:
            kind = "BMPString" if width == 2 else "UniversalString"
            raise self._fail(what, "%s has an odd length" % kind)
        chars = []
        for i in range(0, len(body), width):
            code = int.from_bytes(body[i:i + width], "big")
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise self._fail(what, "invalid character U+%X" % code)
            chars.append(chr(code))
        return "".join(chars).encode("utf-8")

    def time(self, what: str = "time") -> str:
        """A UTCTime or GeneralizedTime as ISO 8601 UTC.

        RFC 5280 forms (YYMMDDHHMMSSZ, YYYYMMDDHHMMSSZ) and, like OpenSSL, the older ones
        still met in long-lived authorities: no seconds, a +hhmm offset, fractions.
        """
        try:
            text = self.content.decode("ascii")
        except UnicodeDecodeError:
            raise self._fail(what, "time is not ASCII")
        if self.tag not in (UTC_TIME, GENERALIZED_TIME):
            raise self._fail(what, "expected UTCTime or GeneralizedTime")
        match = (_UTC_TIME if self.tag == UTC_TIME else _GEN_TIME).match(text)
        if not match:
            raise self._fail(what, "%r is not YY[YY]MMDDHHMM[SS]Z" % text)
        if self.tag == UTC_TIME:  # RFC 5280: YY < 50 is 20YY
            year = int(text[:2]) + (2000 if int(text[:2]) < 50 else 1900)
        else:
            year = int(text[:4])
        digits = match.group(1)[-8:]
        month, day, hour, minute = (int(digits[i:i + 2]) for i in range(0, 8, 2))
        try:
            when = datetime.datetime(year, month, day, hour, minute, min(int(match.group(2) or 0), 59))
            zone = match.group(3)
            if zone and zone != "Z":
                offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
                when = when - offset if zone[0] == "+" else when + offset
        except (ValueError, OverflowError):
            raise self._fail(what, "%r is not a valid date" % text)
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (when.year, when.month, when.day, when.hour,
                                                   when.minute, when.second)
