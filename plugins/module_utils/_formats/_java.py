# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Java data encodings: modified UTF-8, a DataInputStream reader, skipping one serialization stream
(JCEKS secret keys are SealedObjects).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import Garbled, Truncated

# --------------------------------------------------------------------------------------
# Modified UTF-8 (DataOutputStream.writeUTF)
# --------------------------------------------------------------------------------------


def encode_modified_utf8(text: str) -> bytes:
    """Java modified UTF-8 of ``text``, without the length prefix.

    U+0000 takes two bytes (C0 80); characters outside the BMP are written as their
    UTF-16 surrogate pair, three bytes per surrogate. Lone surrogates are allowed
    (a Java String may hold them).
    """
    units = text.encode("utf-16-be", "surrogatepass")
    out = bytearray()
    for i in range(0, len(units), 2):
        c = (units[i] << 8) | units[i + 1]
        if 0x0001 <= c <= 0x007F:
            out.append(c)
        elif c <= 0x07FF:
            out.append(0xC0 | (c >> 6))
            out.append(0x80 | (c & 0x3F))
        else:
            out.append(0xE0 | (c >> 12))
            out.append(0x80 | ((c >> 6) & 0x3F))
            out.append(0x80 | (c & 0x3F))
    return bytes(out)


def decode_modified_utf8(data: bytes) -> str:
    """Inverse of :func:`encode_modified_utf8`; ValueError on malformed input."""
    units = bytearray()
    i = 0
    n = len(data)
    while i < n:
        a = data[i]
        if a < 0x80:
            if a == 0:
                raise ValueError("NUL byte at %d (Java writes U+0000 as C0 80)" % i)
            c = a
            i += 1
        elif a & 0xE0 == 0xC0:
            if i + 1 >= n or data[i + 1] & 0xC0 != 0x80:
                raise ValueError("bad 2-byte sequence at %d" % i)
            c = ((a & 0x1F) << 6) | (data[i + 1] & 0x3F)
            i += 2
        elif a & 0xF0 == 0xE0:
            if i + 2 >= n or data[i + 1] & 0xC0 != 0x80 or data[i + 2] & 0xC0 != 0x80:
                raise ValueError("bad 3-byte sequence at %d" % i)
            c = ((a & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
            i += 3
        else:
            raise ValueError("bad byte 0x%02x at %d" % (a, i))
        units.append(c >> 8)
        units.append(c & 0xFF)
    # Pairs of surrogates become one character; lone ones are kept as they are.
    return bytes(units).decode("utf-16-be", "surrogatepass")


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: Optional[int] = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise Truncated(self.pos, what)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack(">H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack(">I", self.take(4, what))[0]

    def i32(self, what: str) -> int:
        return struct.unpack(">i", self.take(4, what))[0]

    def i64(self, what: str) -> int:
        return struct.unpack(">q", self.take(8, what))[0]

    def utf(self, what: str) -> str:
        start = self.pos
        body = self.take(self.u16(what), what)
        try:
            return decode_modified_utf8(body)
        except ValueError as exc:
            raise Garbled(start, "%s is not modified UTF-8 (%s)" % (what, exc))

    def blob(self, what: str) -> bytes:
        start = self.pos
        size = self.u32(what + " length")
        if size > self.end - self.pos:
            raise Truncated(start, "%s (claims %d bytes, %d left)" % (what, size, self.end - self.pos))
        return self.take(size, what)


# --------------------------------------------------------------------------------------
# Skipping one Java serialization stream (JCEKS secret keys: a SealedObject)
# --------------------------------------------------------------------------------------

_PRIM_SIZES = {"B": 1, "C": 2, "D": 8, "F": 4, "I": 4, "J": 8, "S": 2, "Z": 1}
_SC_WRITE_METHOD = 0x01
_SC_SERIALIZABLE = 0x02
_SC_EXTERNALIZABLE = 0x04
_SC_BLOCK_DATA = 0x08


class _ClassDesc:
    __slots__ = ("name", "flags", "fields", "superdesc")

    def __init__(self, name: str, flags: int, fields: List[Tuple[str, str]],
                 superdesc: Optional[_ClassDesc]) -> None:
        self.name = name
        self.flags = flags
        self.fields = fields  # (type code, name)
        self.superdesc = superdesc


class _JavaSerialSkipper:
    """Walk one ObjectOutputStream (header + one object) to find where it ends.

    Only what a SealedObject needs is understood (objects, class descriptors, strings,
    arrays, block data, references, enums); anything else is reported as garbled.
    """

    def __init__(self, reader: _Reader, what: str) -> None:
        self.r = reader
        self.what = what
        self.handles: List[object] = []
        self.depth = 0

    def fail(self, why: str) -> Garbled:
        return Garbled(self.r.pos, "%s: %s" % (self.what, why))

    def skip_stream(self) -> None:
        if self.r.u16(self.what) != 0xACED or self.r.u16(self.what) != 5:
            raise self.fail("not a Java serialization stream")
        self.content()

    def content(self) -> object:
        self.depth += 1
        if self.depth > 64:
            raise self.fail("nested too deeply")
        try:
            return self._content()
        finally:
            self.depth -= 1

    def _new_handle(self, value: object) -> int:
        self.handles.append(value)
        return len(self.handles) - 1

    def _reference(self) -> object:
        handle = self.r.u32(self.what) - 0x7E0000
        if not 0 <= handle < len(self.handles):
            raise self.fail("bad back reference")
        return self.handles[handle]

    def _content(self) -> object:
        tc = self.r.u8(self.what)
        if tc == 0x70:  # TC_NULL
            return None
        if tc == 0x71:  # TC_REFERENCE
            return self._reference()
        if tc in (0x72, 0x7D):  # TC_CLASSDESC, TC_PROXYCLASSDESC
            return self._class_desc_body(tc)
        if tc == 0x74:  # TC_STRING
            handle = self._new_handle(None)
            self.handles[handle] = self.r.utf(self.what)
            return self.handles[handle]
        if tc == 0x7C:  # TC_LONGSTRING
            handle = self._new_handle(None)
            size = self.r.i64(self.what)
            self.handles[handle] = self.r.take(size, self.what).decode("utf-8", "replace")
            return self.handles[handle]
        if tc == 0x73:  # TC_OBJECT
            desc = self.class_desc()
            self._new_handle(object())
            self._class_data(desc)
            return "object"
        if tc == 0x75:  # TC_ARRAY
            desc = self.class_desc()
            self._new_handle(object())
            size = self.r.i32(self.what)
            if desc is None or not desc.name.startswith("[") or size < 0:
                raise self.fail("bad array")
            code = desc.name[1]
            if code in _PRIM_SIZES:
                self.r.take(size * _PRIM_SIZES[code], self.what)
            else:
                for _n in range(size):
                    self.content()
            return "array"
        if tc == 0x76:  # TC_CLASS
            self.class_desc()
            self._new_handle(object())
            return "class"
        if tc == 0x7E:  # TC_ENUM
            self.class_desc()
            handle = self._new_handle(None)
            self.handles[handle] = self.content()
            return "enum"
        if tc == 0x77:  # TC_BLOCKDATA
            self.r.take(self.r.u8(self.what), self.what)
            return "block"
        if tc == 0x7A:  # TC_BLOCKDATALONG
            self.r.take(self.r.i32(self.what), self.what)
            return "block"
        if tc == 0x79:  # TC_RESET
            self.handles = []
            return self.content()
        raise self.fail("unsupported serialization tag 0x%02x" % tc)

    def class_desc(self) -> Optional[_ClassDesc]:
        value = self.content()
        if value is not None and not isinstance(value, _ClassDesc):
            raise self.fail("class descriptor expected")
        return value

    def _annotations(self) -> None:
        while True:
            if self.r.pos >= self.r.end:
                raise Truncated(self.r.pos, self.what)
            if self.r.data[self.r.pos] == 0x78:  # TC_ENDBLOCKDATA
                self.r.pos += 1
                return
            self.content()

    def _class_desc_body(self, tc: int) -> _ClassDesc:
        if tc == 0x7D:
            handle = self._new_handle(None)
            for _n in range(self.r.i32(self.what)):
                self.r.utf(self.what)
            self._annotations()
            desc = _ClassDesc("<proxy>", _SC_SERIALIZABLE, [], self.class_desc())
            self.handles[handle] = desc
            return desc
        name = self.r.utf(self.what)
        self.r.take(8, self.what)  # serialVersionUID
        handle = self._new_handle(None)
        flags = self.r.u8(self.what)
        fields = []
        for _n in range(self.r.u16(self.what)):
            code = chr(self.r.u8(self.what))
            field_name = self.r.utf(self.what)
            if code in ("L", "["):
                self.content()  # class name string
            elif code not in _PRIM_SIZES:
                raise self.fail("bad field type %r" % code)
            fields.append((code, field_name))
        desc = _ClassDesc(name, flags, fields, None)
        self.handles[handle] = desc
        self._annotations()
        desc.superdesc = self.class_desc()
        return desc

    def _class_data(self, desc: Optional[_ClassDesc]) -> None:
        lineage: List[_ClassDesc] = []
        while desc is not None:
            if desc in lineage:  # a back reference made a class its own superclass
                raise self.fail("class %r is its own superclass" % desc.name)
            lineage.append(desc)
            desc = desc.superdesc
        for cls in reversed(lineage):
            if cls.flags & _SC_EXTERNALIZABLE:
                if not cls.flags & _SC_BLOCK_DATA:
                    raise self.fail("old externalizable format")
                self._annotations()
                continue
            if cls.flags & _SC_SERIALIZABLE:
                for code, _name in cls.fields:
                    if code in _PRIM_SIZES:
                        self.r.take(_PRIM_SIZES[code], self.what)
                    else:
                        self.content()
                if cls.flags & _SC_WRITE_METHOD:
                    self._annotations()
