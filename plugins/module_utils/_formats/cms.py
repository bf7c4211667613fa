# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading who a CMS EnvelopedData message is encrypted to (RFC 5652), without decrypting it.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

:func:`read_envelope` takes a file's bytes, in any of the forms a guichet's software leaves in
its outbound folders:

- DER, or BER as ``openssl cms -encrypt -stream`` writes it (indefinite lengths, constructed
  OCTET STRINGs), read with ``_asn1``;
- PEM, a ``-----BEGIN CMS-----`` or ``-----BEGIN PKCS7-----`` block;
- S/MIME, a MIME message (``smime.p7m``) whose part of type ``application/pkcs7-mime`` (or
  ``application/x-pkcs7-mime``) is the base64 of the DER.

It returns None for a file that is not a CMS EnvelopedData (any other file, a CMS SignedData,
a certificate), and raises ``Malformed`` (``Truncated`` or ``Garbled``, code ``corrupt``) for
one that says it is one and is not whole: a file cut while it was written. Each RecipientInfo
is read: a KeyTransRecipientInfo names its recipient by issuer and serial number or by subject
key identifier (:class:`Recipient`); the other kinds (key agreement, KEK, password, other) are
walked and kept only as their kind. Nothing is decrypted: the encrypted content is only
bounds-checked.

The one CMS reader of the collection: the outbox step of retire reads the guichet's queued
messages with :func:`read_envelope`, the probe checks the envelope it built with
:func:`read_der` (``_probe/envelope.py``).
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import re
from typing import List, NamedTuple, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._asn1 import (
    INTEGER,
    OID,
    SEQUENCE,
    SET,
    Node,
    context,
    encode,
    read,
    read_header,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import Garbled, Truncated
from ansible_collections.sne.guichet.plugins.module_utils._oids import OID_ENVELOPED_DATA
from ansible_collections.sne.guichet.plugins.module_utils._x509 import pem_blocks

DER, PEM, SMIME = "der", "pem", "smime"
ISSUER_SERIAL, SKI = "issuer_serial", "ski"
# RecipientInfo CHOICE tags other than KeyTransRecipientInfo (a SEQUENCE), RFC 5652 6.2.
OTHER_KINDS = {context(1): "kari", context(2): "kekri", context(3): "pwri", context(4): "ori"}
PEM_LABELS = ("CMS", "PKCS7")
SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")

# OID_ENVELOPED_DATA as it is encoded: what says "EnvelopedData" before any parse.
_ENVELOPED_OID = encode(OID, bytes([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]))
_PEM_BEGIN = re.compile(rb"-----BEGIN (%s)-----" % b"|".join(label.encode() for label in PEM_LABELS))
_SMIME_MARK = re.compile(rb"(?i)application/(x-)?pkcs7-mime")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")  # an RFC 5322 header field name, then ':'
_SMIME_LOOK = 16 * 1024  # the MIME headers are looked for in the first bytes only


class Recipient(NamedTuple):
    """One RecipientInfo: ``kind`` ISSUER_SERIAL (``issuer``: the Name's DER, ``serial``), SKI
    (``ski``: the subject key identifier), or one of :data:`OTHER_KINDS`' names (or ``ktri``
    for a KeyTransRecipientInfo naming its recipient in a way RFC 5652 does not define);
    ``key_encryption``: a KeyTransRecipientInfo's algorithm OID."""

    kind: str
    issuer: Optional[bytes] = None
    serial: Optional[int] = None
    ski: Optional[bytes] = None
    key_encryption: Optional[str] = None


class Envelope(NamedTuple):
    """A CMS EnvelopedData: the form it was read from (DER, PEM, SMIME), its recipients,
    whether its BER used indefinite lengths, the OIDs of the encrypted content's type and of
    its encryption algorithm."""

    form: str
    recipients: List[Recipient]
    indefinite: bool
    content_type: str
    content_encryption: str


def _claims_enveloped(der: bytes) -> bool:
    """Whether ``der`` starts as a ContentInfo whose contentType is id-envelopedData: enough
    of it is there to say so, whatever follows (a cut file says so too)."""
    if not der or der[0] != SEQUENCE:
        return False
    try:
        pos = read_header(der, 0, what="ContentInfo")[1]
    except ValueError:  # not even the outer header: nothing says it is CMS
        return False
    return der[pos:pos + len(_ENVELOPED_OID)] == _ENVELOPED_OID


def _recipient(info: Node) -> Recipient:
    kind = OTHER_KINDS.get(info.tag)
    if kind is not None:
        info.children("RecipientInfo %s" % kind)  # walked: well-formed, then left alone
        return Recipient(kind)
    parts = info.expect(SEQUENCE, "RecipientInfo").children("KeyTransRecipientInfo")
    if len(parts) != 4:
        raise Garbled(info.start, "KeyTransRecipientInfo: expected (version, rid, "
                      "keyEncryptionAlgorithm, encryptedKey), found %d elements" % len(parts))
    parts[0].integer("KeyTransRecipientInfo version")
    key_encryption = _algorithm(parts[2], "keyEncryptionAlgorithm")
    parts[3].octets("encryptedKey")
    rid = parts[1]
    if rid.tag == SEQUENCE:
        fields = rid.children("IssuerAndSerialNumber")
        if len(fields) != 2 or fields[0].tag != SEQUENCE or fields[1].tag != INTEGER:
            raise Garbled(rid.start, "IssuerAndSerialNumber: expected (issuer Name, serial INTEGER)")
        return Recipient(ISSUER_SERIAL, issuer=fields[0].definite(),
                         serial=fields[1].integer("serialNumber"), key_encryption=key_encryption)
    if rid.tag in (context(0, False), context(0)):  # [0] IMPLICIT SubjectKeyIdentifier
        return Recipient(SKI, ski=rid.octets("subjectKeyIdentifier"), key_encryption=key_encryption)
    return Recipient("ktri", key_encryption=key_encryption)


def _algorithm(node: Node, what: str) -> str:
    """The OID of an AlgorithmIdentifier."""
    parts = node.expect(SEQUENCE, what).children(what)
    if not parts:
        raise Garbled(node.start, "%s: empty" % what)
    return parts[0].oid(what)


def read_der(der: bytes, form: str = DER) -> Envelope:
    """The EnvelopedData of a ContentInfo in DER or BER (``form``: where it was found);
    ``Malformed`` when ``der`` is not one, or not whole."""
    root = read(der, what="ContentInfo")
    if der[root.end:].strip(b"\0"):
        raise Garbled(root.end, "ContentInfo: %d unexpected bytes after it" % (len(der) - root.end))
    top = root.children("ContentInfo")
    content_oid = top[0].oid("ContentInfo contentType") if top and top[0].tag == OID else None
    if root.tag != SEQUENCE or len(top) != 2 or content_oid != OID_ENVELOPED_DATA:
        raise Garbled(root.start, "not a CMS EnvelopedData: expected ContentInfo (id-envelopedData, "
                      "[0] content)")
    fields = top[1].explicit(0, "ContentInfo content").expect(SEQUENCE, "EnvelopedData").children(
        "EnvelopedData")
    index = 1
    if len(fields) > 1 and fields[1].tag == context(0):  # originatorInfo
        fields[1].children("originatorInfo")
        index = 2
    if len(fields) < index + 2:
        raise Garbled(top[1].start, "EnvelopedData: too few fields")
    fields[0].integer("EnvelopedData version")
    infos = fields[index].expect(SET, "RecipientInfos").children("RecipientInfos")
    if not infos:
        raise Garbled(fields[index].start, "RecipientInfos: empty")
    recipients = [_recipient(info) for info in infos]
    content = fields[index + 1].expect(SEQUENCE, "EncryptedContentInfo").children("EncryptedContentInfo")
    if len(content) < 2:
        raise Garbled(fields[index + 1].start, "EncryptedContentInfo: too few fields")
    content_type = content[0].oid("EncryptedContentInfo contentType")
    content_encryption = _algorithm(content[1], "contentEncryptionAlgorithm")
    if len(content) > 2 and content[2].tag not in (context(0, False), context(0)):
        raise Garbled(content[2].start, "EncryptedContentInfo: unexpected field")
    return Envelope(form, recipients, len(der) > 1 and der[1] == 0x80, content_type, content_encryption)


def _pem_der(data: bytes) -> Optional[bytes]:
    if _PEM_BEGIN.search(data) is None:
        return None
    try:
        blocks = pem_blocks(data)
    except ValueError as exc:  # a BEGIN without END: a cut file
        raise Truncated(len(data), "PEM: %s" % exc)
    for label, der, _start, _end in blocks:
        if label in PEM_LABELS:
            return der
    return None


def _smime_der(data: bytes) -> Optional[Tuple[bytes, bool]]:
    """The DER of the first pkcs7-mime part of a MIME message, and whether it said
    ``smime-type=enveloped-data``; None when ``data`` is not such a message."""
    head = data[:_SMIME_LOOK]
    if not _HEADER_LINE.match(head) or _SMIME_MARK.search(head) is None:
        return None
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    for part in message.walk():
        if part.get_content_type() not in SMIME_TYPES or part.is_multipart():
            continue
        if str(part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64":
            raise Garbled(0, "S/MIME: the pkcs7-mime part is not base64")
        body = part.get_payload(decode=False)
        text = re.sub(r"\s+", "", body if isinstance(body, str) else "")
        try:
            der = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise Truncated(len(data), "S/MIME: the pkcs7-mime part is not whole base64")
        return der, str(part.get_param("smime-type", "")).lower() == "enveloped-data"
    return None


def read_envelope(data: bytes) -> Optional[Envelope]:
    """The EnvelopedData ``data`` holds (DER/BER, PEM or S/MIME); None when it is not one;
    ``Malformed`` (Truncated/Garbled) for one that is not whole or not well formed."""
    if _claims_enveloped(data):
        return read_der(data, DER)
    der = _pem_der(data)
    if der is not None:
        if not _claims_enveloped(der):
            if der[:1] == bytes([SEQUENCE]) and len(der) < 2 + len(_ENVELOPED_OID):
                raise Truncated(len(der), "PEM CMS block too short")
            return None  # a SignedData, a certificate list
        return read_der(der, PEM)
    smime = _smime_der(data)
    if smime is not None:
        der, enveloped = smime
        if _claims_enveloped(der):
            return read_der(der, SMIME)
        if enveloped:
            raise Truncated(len(data), "S/MIME enveloped-data whose body is not a CMS EnvelopedData")
    return None
