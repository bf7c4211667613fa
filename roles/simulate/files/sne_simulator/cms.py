# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator's own minimal BER/DER and CMS reader.

This is the test oracle, kept apart ON PURPOSE: it must not import or share any code of
``plugins/module_utils`` (``_asn1``, ``_x509``, ``_probe/envelope``...), the code it checks. A bug
in the collection's readers must not be able to hide itself by being in the simulator too.

It reads enough of CMS to name the RecipientInfos, and turns BER (indefinite lengths,
constructed OCTET STRINGs, as streaming encoders write) into the DER that cryptography's
``pkcs7_decrypt_der`` accepts. ``extract_cms`` finds the CMS inside DER, PEM or an S/MIME entity.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from cryptography import x509


class Asn1Error(ValueError):
    """The input is not the BER/DER structure expected."""


@dataclass
class Node:
    """One TLV: ``children`` is None for a primitive (then ``value`` is its content)."""

    tag: int
    value: bytes = b""
    children: Optional[List[Node]] = None

    def kids(self) -> List[Node]:
        if self.children is None:
            raise Asn1Error("tag 0x%02x: constructed value expected" % self.tag)
        return self.children


def _parse(data: bytes, pos: int, depth: int) -> Tuple[Node, int]:
    if depth > 48:
        raise Asn1Error("nesting too deep")
    if pos + 2 > len(data):
        raise Asn1Error("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Asn1Error("high tag numbers are not used by CMS EnvelopedData")
    first = data[pos + 1]
    pos += 2
    constructed = bool(tag & 0x20)
    if first == 0x80:  # indefinite length: children up to the end-of-contents octets
        if not constructed:
            raise Asn1Error("indefinite length on a primitive value")
        children: List[Node] = []
        while True:
            if pos + 2 > len(data):
                raise Asn1Error("truncated (no end-of-contents)")
            if data[pos] == 0 and data[pos + 1] == 0:
                return Node(tag, children=children), pos + 2
            child, pos = _parse(data, pos, depth + 1)
            children.append(child)
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise Asn1Error("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    else:
        length = first
    end = pos + length
    if end > len(data):
        raise Asn1Error("truncated")
    if not constructed:
        return Node(tag, value=data[pos:end]), end
    children = []
    while pos < end:
        child, pos = _parse(data, pos, depth + 1)
        children.append(child)
    if pos != end:
        raise Asn1Error("a value overruns its parent")
    return Node(tag, children=children), end


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _encode(node: Node) -> bytes:
    """Definite-length encoding of ``node``."""
    if node.children is None:
        content = node.value
    else:
        content = b"".join(_encode(child) for child in node.children)
    return bytes([node.tag]) + _encode_length(len(content)) + content


def _flatten(node: Node) -> bytes:
    """Content of a (possibly constructed, BER) string value."""
    if node.children is None:
        return node.value
    return b"".join(_flatten(child) for child in node.children)


def _to_der_strings(node: Node) -> None:
    """Constructed OCTET STRINGs (BER) become primitive ones, as DER requires."""
    if node.children is None:
        return
    for index, child in enumerate(node.children):
        if child.tag == 0x24:
            node.children[index] = Node(0x04, value=_flatten(child))
        else:
            _to_der_strings(child)


_OID_ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")  # 1.2.840.113549.1.7.3
_NAME_OIDS = {
    bytes.fromhex("550403"): "CN", bytes.fromhex("55040a"): "O", bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C", bytes.fromhex("550407"): "L", bytes.fromhex("550408"): "ST",
}


def _name_text(name: Node) -> str:
    """RFC 4514-like text of a DER Name (most specific first, as cryptography prints it)."""
    parts: List[str] = []
    for rdn in name.kids():
        for atv in rdn.kids():
            oid, value = atv.kids()[0], atv.kids()[1]
            label = _NAME_OIDS.get(oid.value, "OID." + oid.value.hex())
            raw = _flatten(value)
            text = raw.decode("utf-16-be", "replace") if value.tag == 0x1E else raw.decode("utf-8", "replace")
            parts.append("%s=%s" % (label, text))
    return ",".join(reversed(parts))


@dataclass
class Recipient:
    """Who a KeyTransRecipientInfo designates: issuer + serial, or a subject key identifier."""

    kind: str  # "issuer_serial", "ski" or "other"
    issuer_der: bytes = b""
    issuer: str = ""
    serial: Optional[int] = None
    ski: bytes = b""

    def describe(self) -> Dict[str, Any]:
        if self.kind == "issuer_serial":
            return {"issuer": self.issuer, "serial_hex": "%X" % (self.serial or 0)}
        if self.kind == "ski":
            return {"subject_key_identifier": self.ski.hex().upper()}
        return {"kind": "other (not key transport)"}


@dataclass
class Envelope:
    der: bytes  # DER, ready for pkcs7_decrypt_der
    recipients: List[Recipient]
    root: Optional[Node] = None
    recipient_infos: Optional[Node] = None

    def der_for(self, certificate: x509.Certificate) -> bytes:
        """DER for decrypting with ``certificate``'s key.

        cryptography's pkcs7_decrypt_der only looks recipients up by issuer and serial number:
        a KeyTransRecipientInfo naming ``certificate`` by subject key identifier (``openssl cms
        -keyid``) is rewritten to name it by issuer and serial (version 2 -> 0).
        """
        ski = subject_key_identifier(certificate)
        if self.root is None or self.recipient_infos is None:
            return self.der
        if not any(r.kind == "ski" and r.ski == ski for r in self.recipients):
            return self.der
        issuer = _parse(certificate.issuer.public_bytes(), 0, 0)[0]
        serial = certificate.serial_number
        serial_node = Node(0x02, value=serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True))
        for info in self.recipient_infos.kids():
            kids = info.kids() if info.tag == 0x30 else []
            if len(kids) > 1 and kids[1].tag == 0x80 and kids[1].value == ski:
                kids[0] = Node(0x02, value=b"\x00")
                kids[1] = Node(0x30, children=[issuer, serial_node])
        self.recipient_infos.children = sorted(self.recipient_infos.kids(), key=_encode)
        return _encode(self.root)


def parse_envelope(data: bytes) -> Envelope:
    """Read a CMS ContentInfo holding EnvelopedData (BER or DER); raise Asn1Error otherwise."""
    root, end = _parse(data, 0, 0)
    if data[end:].strip(b"\x00\r\n\t "):
        raise Asn1Error("trailing data after the CMS structure")
    top = root.kids()
    if root.tag != 0x30 or len(top) < 2 or top[0].tag != 0x06 or top[0].value != _OID_ENVELOPED_DATA:
        raise Asn1Error("not a CMS EnvelopedData ContentInfo")
    if top[1].tag != 0xA0 or len(top[1].kids()) != 1:
        raise Asn1Error("bad ContentInfo content")
    env = top[1].kids()[0]
    fields = env.kids()
    index = 1
    if len(fields) > index and fields[index].tag == 0xA0:  # originatorInfo
        index += 1
    if len(fields) < index + 2 or fields[index].tag != 0x31 or fields[index + 1].tag != 0x30:
        raise Asn1Error("bad EnvelopedData")
    rinfos, eci = fields[index], fields[index + 1]
    recipients = [_recipient(info) for info in rinfos.kids()]
    if not recipients:
        raise Asn1Error("no RecipientInfo")
    parts = eci.kids()
    if len(parts) > 2 and parts[2].tag == 0xA0:  # encryptedContent [0] IMPLICIT, constructed (BER)
        parts[2] = Node(0x80, value=_flatten(parts[2]))
    _to_der_strings(root)
    rinfos.children = sorted(rinfos.kids(), key=_encode)  # DER orders SET OF
    return Envelope(_encode(root), recipients, root, rinfos)


def _recipient(info: Node) -> Recipient:
    if info.tag != 0x30:  # kari [1], kekri [2], pwri [3], ori [4]
        return Recipient("other")
    rid = info.kids()[1]
    if rid.tag == 0x30:
        issuer, serial = rid.kids()[0], rid.kids()[1]
        return Recipient("issuer_serial", issuer_der=_encode(issuer), issuer=_name_text(issuer),
                         serial=int.from_bytes(serial.value, "big", signed=True))
    if rid.tag == 0x80:
        return Recipient("ski", ski=rid.value)
    return Recipient("other")


def extract_cms(data: bytes) -> Tuple[bytes, str]:
    """The CMS bytes carried by ``data`` (DER/BER, PEM, or an S/MIME entity) and the container."""
    stripped = data.lstrip()
    if stripped[:1] == b"\x30":
        return stripped, "der"
    if stripped.startswith(b"-----BEGIN "):
        match = re.search(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END [A-Z0-9 ]+-----", stripped, re.S)
        if not match:
            raise ValueError("unterminated PEM block")
        return base64.b64decode(b"".join(match.group(1).split()), validate=True), "pem"
    if re.match(rb"^[A-Za-z][A-Za-z0-9-]*:", stripped):
        message = email.message_from_bytes(stripped, policy=email.policy.compat32)
        for part in message.walk():
            if part.get_content_type() in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and payload:
                    return payload, "smime"
        raise ValueError("no application/pkcs7-mime part in the MIME entity")
    raise ValueError("neither DER, PEM nor S/MIME")


def subject_key_identifier(certificate: x509.Certificate) -> bytes:
    """The certificate's subject key identifier (extension, or computed as RFC 5280 method 1)."""
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ext.value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
