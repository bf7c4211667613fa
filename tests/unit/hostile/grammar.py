"""Mutations that keep a file's framing right, so the readers go past their first checks.

A byte inserted anywhere makes every enclosing ASN.1 length wrong, and the reader stops at
the outermost element. Here the file is a tree instead (:class:`Tree`: ASN.1 elements, the
DER an OCTET STRING holds included); one element is changed (content, tag, dropped,
repeated, a bomb or a huge OID added) and every length above it is written again. Java
keystores get the same for their length-prefixed certificates and aliases. ``reseal`` then
recomputes the integrity check (JKS digest, PKCS#12 MAC) with the test password, so that the
password check passes and what lies behind it is read too.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import List, Optional, Tuple
from unittest import mock

from hypothesis import strategies as st

from ansible_collections.sne.guichet.plugins.module_utils import _asn1
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import Malformed
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as _p12
from ansible_collections.sne.guichet.plugins.module_utils._oids import HASHES

TAGS = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x14, 0x16, 0x17, 0x18, 0x1E, 0x30, 0x31,
        0x80, 0xA0, 0xA3)


class Tree:
    """One element: its identifier octets, and its children (constructed, or an OCTET
    STRING holding DER: ``wrapped``) or its content."""

    __slots__ = ("ident", "children", "content", "wrapped")

    def __init__(self, ident: bytes, children: Optional[List[Tree]] = None, content: bytes = b"",
                 wrapped: bool = False) -> None:
        self.ident, self.children, self.content, self.wrapped = ident, children, content, wrapped

    def encode(self) -> bytes:
        if self.children is None:
            body = self.content
        else:
            body = b"".join(child.encode() for child in self.children)
        return self.ident + _asn1.encode(0x05, body)[1:]  # the length octets of any tag

    def nodes(self) -> List[Tuple[Optional[Tree], Tree]]:
        """(parent, element) of every element, this one first."""
        found: List[Tuple[Optional[Tree], Tree]] = [(None, self)]
        pending = [self]
        while pending:
            node = pending.pop()
            for child in node.children or []:
                found.append((node, child))
                pending.append(child)
        return found


def _ident(node: _asn1.Node) -> bytes:
    end = node.start + 1
    if node.tag & 0x1F == 0x1F:
        while node.data[end] & 0x80:
            end += 1
        end += 1
    return node.data[node.start:end]


def tree(data: bytes, depth: int = 0) -> Optional[Tree]:
    """``data`` (one DER element) as a Tree; None when it is not one."""
    try:
        root = _asn1.read_one(data)
    except Malformed:
        return None
    return _tree(root, depth)


def _tree(node: _asn1.Node, depth: int) -> Tree:
    if node.constructed and node.cend == node.end and depth < 40:  # definite lengths only
        return Tree(_ident(node), [_tree(child, depth + 1) for child in node.children()])
    if node.tag == _asn1.OCTET_STRING and node.content[:1] in (b"\x30", b"\x31") and depth < 40:
        inner = tree(node.content, depth + 1)
        if inner is not None:
            return Tree(_ident(node), [inner], wrapped=True)
    return Tree(_ident(node), None, node.content)


@st.composite
def changed_tree(draw: st.DrawFn, data: bytes, bomb: st.SearchStrategy) -> Optional[bytes]:
    """``data`` with one element changed and every length above it right again."""
    root = tree(data)
    if root is None:
        return None
    nodes = root.nodes()
    parent, node = nodes[draw(st.integers(0, len(nodes) - 1))]
    op = draw(st.sampled_from(("content", "tag", "drop", "repeat", "bomb", "empty", "integer")))
    if op == "content" and node.children is None:
        content = bytearray(node.content)
        for _n in range(draw(st.integers(1, 3))):
            where = draw(st.integers(0, len(content)))
            choice = draw(st.sampled_from(("flip", "insert", "cut")))
            if choice == "flip" and where < len(content):
                content[where] ^= 1 << draw(st.integers(0, 7))
            elif choice == "insert":
                content[where:where] = draw(st.binary(min_size=1, max_size=4))
            else:
                del content[where:]
        node.content = bytes(content)
    elif op == "tag":
        node.ident = bytes([draw(st.sampled_from(TAGS))])
    elif op in ("drop", "repeat") and parent is not None:
        index = parent.children.index(node)
        if op == "drop":
            del parent.children[index]
        else:
            parent.children[index:index] = [node] * draw(st.integers(1, 200))
    elif op == "bomb":
        raw = draw(bomb)
        parent_of_bomb = node if node.children is not None else parent or node
        if parent_of_bomb.children is None:
            parent_of_bomb.content += raw
        else:
            parent_of_bomb.children.append(_raw(raw))
    elif op == "empty":
        node.children, node.content, node.wrapped = None, b"", False
    else:  # an INTEGER-like content: huge, negative, zero
        node.children, node.wrapped = None, False
        node.content = draw(st.sampled_from((b"\x7f" + b"\xff" * 7, b"\xff" * 9, b"\x00", b"\x80",
                                             b"\x7f\xff\xff\xff", b"\x01" * 600, b"\x01" * 2000)))
    return root.encode()


class _Raw(Tree):
    """Bytes put as they are (a bomb), whatever they hold."""

    def encode(self) -> bytes:
        return self.content


def _raw(data: bytes) -> Tree:
    return _Raw(b"", None, data)


# ----------------------------------------------------------------------------- Java keystores


def java_frames(data: bytes) -> List[Tuple[int, int, int]]:
    """(offset of the length, width of the length, size) of each length-prefixed part of a
    JKS/JCEKS file: certificates and keys (u32), aliases and type names (u16)."""
    frames: List[Tuple[int, int, int]] = []

    class Recorder(_jks._Reader):
        def blob(self, what):
            frames.append((self.pos, 4, struct.unpack(">I", self.data[self.pos:self.pos + 4])[0]))
            return super().blob(what)

        def utf(self, what):
            frames.append((self.pos, 2, struct.unpack(">H", self.data[self.pos:self.pos + 2])[0]))
            return super().utf(what)

    with mock.patch.object(_jks, "_Reader", Recorder):
        _jks.parse(data, None)
    return frames


ALIASES = ("", "a" * 70000, "\ud800", "\x00", "café", "x\ny", "root", "ROOT", "../../etc/passwd",
           "\U0001f600" * 50)


@st.composite
def changed_java(draw: st.DrawFn, data: bytes, frames: List[Tuple[int, int, int]],
                 bomb: st.SearchStrategy) -> bytes:
    """A JKS/JCEKS with one part changed, its length prefix right again."""
    offset, width, size = draw(st.sampled_from(frames))
    body = data[offset + width:offset + width + size]
    if width == 2:  # an alias or a certificate type
        new = _jks.encode_modified_utf8(draw(st.sampled_from(ALIASES)))[:0xFFFF]
    else:
        new = draw(changed_tree(body, bomb)) if body[:1] == b"\x30" else None
        if new is None:
            new = body[:draw(st.integers(0, len(body)))] + draw(bomb)
    prefix = struct.pack(">H" if width == 2 else ">I", len(new))
    return data[:offset] + prefix + new + data[offset + width + size:]


def reseal(data: bytes, password: str) -> bytes:
    """The integrity check recomputed with ``password``: JKS digest, PKCS#12 MAC (when the
    structure still has the places for it); ``data`` as it is otherwise."""
    if data[:4] in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce") and len(data) > _jks.DIGEST_SIZE:
        body = data[:-_jks.DIGEST_SIZE]
        return body + _jks._integrity_digest(password, body)
    try:
        pfx = _asn1.read_one(data).children()
        auth_safe = pfx[1].children()[1].children()[0].octets()
        mac = pfx[2].children()
        digest_info = mac[0].children()
        name = HASHES[digest_info[0].children()[0].oid()]
        salt, iterations = mac[1].octets(), mac[2].integer() if len(mac) > 2 else 1
        if not 1 <= iterations <= 100000:
            return data
        key = _p12._pkcs12_kdf(name, password.encode("utf-16-be") + b"\0\0", salt, 3, iterations,
                               hashlib.new(name).digest_size)
        digest = hmac.new(key, auth_safe, name).digest()
        old = digest_info[1]
        if old.cend - old.cstart != len(digest):
            return data
        return data[:old.cstart] + digest + data[old.cend:]
    except (Malformed, IndexError, KeyError):
        return data
