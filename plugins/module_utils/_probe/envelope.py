# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Encrypt a message for the SNE: CMS EnvelopedData, AES-256-CBC, RSA PKCS#1 v1.5.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library, plus ``cryptography`` when present.

Two ways to encrypt, tried in this order by :func:`encrypt` (``backend="auto"``):

``cryptography``
    ``pkcs7.PKCS7EnvelopeBuilder`` when cryptography (>= 45, for the choice of AES-256)
    is importable on the target;
``openssl``
    the ``openssl cms -encrypt -aes256 -binary -outform DER -recip CERT`` command, the
    message and the certificate given through files of a private temporary folder.

Whichever ran, :func:`inspect_envelope` (a small BER reader) then checks what was built:
an EnvelopedData with a single key-transport recipient named by the issuer and serial
number of the certificate, RSA key transport, AES-256-CBC content encryption.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import cryptography_problem
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import EnvelopeError
from ansible_collections.sne.guichet.plugins.module_utils._x509 import der_to_pem

try:  # optional fast path
    from cryptography import x509 as _x509
    from cryptography.hazmat.primitives import serialization as _serialization
    from cryptography.hazmat.primitives.serialization import pkcs7 as _pkcs7

    HAS_CRYPTOGRAPHY = cryptography_problem() is None and hasattr(
        _pkcs7.PKCS7EnvelopeBuilder, "set_content_encryption_algorithm")
except ImportError:  # pragma: no cover - depends on the target
    HAS_CRYPTOGRAPHY = False

BACKENDS = ("auto", "cryptography", "openssl")

OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_DATA = "1.2.840.113549.1.7.1"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"  # RSA PKCS#1 v1.5 key transport
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_ALGORITHM_NAMES = {
    OID_RSA_ENCRYPTION: "rsaEncryption (PKCS#1 v1.5)",
    "1.2.840.113549.1.1.7": "RSAES-OAEP",
    OID_AES256_CBC: "aes-256-cbc",
    "2.16.840.1.101.3.4.1.2": "aes-128-cbc",
    "2.16.840.1.101.3.4.1.22": "aes-192-cbc",
    "1.2.840.113549.3.7": "des-ede3-cbc",
}

NO_BACKEND_MESSAGE = (
    "cannot encrypt the probe message on this host: neither the Python library cryptography "
    "(>= 45) nor the openssl command is available. Run the probe delegated to the controller "
    "(delegate_to: localhost) with certificate_pem set to the certificate read from the host "
    "(this module returns it as certificate.pem even when it cannot encrypt)")

# run_command(argv) -> (rc, stdout, stderr); AnsibleModule.run_command fits.
CommandRunner = Callable[..., Any]


# --------------------------------------------------------------------------------------
# A small BER reader (DER is BER): enough to check the envelope and read a certificate's
# issuer and serial number.
# --------------------------------------------------------------------------------------

class _Node:
    __slots__ = ("tag", "raw", "value", "children")

    def __init__(self, tag: int, raw: bytes, value: bytes, children: Optional[List[_Node]]) -> None:
        self.tag = tag
        self.raw = raw  # the whole TLV as read
        self.value = value  # content octets of a primitive value
        self.children = children  # None for a primitive value

    def kids(self, what: str) -> List[_Node]:
        if self.children is None:
            raise EnvelopeError("envelope", "%s: constructed value expected" % what)
        return self.children


def _parse(data: bytes, pos: int = 0, depth: int = 0) -> Tuple[_Node, int]:
    if depth > 32:
        raise EnvelopeError("envelope", "nesting too deep")
    if pos + 2 > len(data):
        raise EnvelopeError("envelope", "truncated at byte %d" % pos)
    start = pos
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise EnvelopeError("envelope", "unexpected high tag number at byte %d" % pos)
    first = data[pos + 1]
    pos += 2
    constructed = bool(tag & 0x20)
    if first == 0x80:
        if not constructed:
            raise EnvelopeError("envelope", "indefinite length on a primitive value")
        children = []
        while True:
            if pos + 2 > len(data):
                raise EnvelopeError("envelope", "truncated (no end-of-contents)")
            if data[pos] == 0 and data[pos + 1] == 0:
                pos += 2
                return _Node(tag, data[start:pos], b"", children), pos
            child, pos = _parse(data, pos, depth + 1)
            children.append(child)
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise EnvelopeError("envelope", "bad length at byte %d" % start)
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    else:
        length = first
    end = pos + length
    if end > len(data):
        raise EnvelopeError("envelope", "truncated at byte %d" % start)
    if not constructed:
        return _Node(tag, data[start:end], data[pos:end], None), end
    children = []
    while pos < end:
        child, pos = _parse(data, pos, depth + 1)
        children.append(child)
    if pos != end:
        raise EnvelopeError("envelope", "a value overruns its parent at byte %d" % start)
    return _Node(tag, data[start:end], b"", children), end


def _oid(node: _Node) -> str:
    if node.tag != 0x06 or not node.value:
        raise EnvelopeError("envelope", "OBJECT IDENTIFIER expected")
    values: List[int] = []
    current = 0
    for byte in node.value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(current)
            current = 0
    first = min(values[0] // 40, 2)
    return ".".join(str(v) for v in [first, values[0] - 40 * first] + values[1:])


def _integer(node: _Node) -> int:
    if node.tag != 0x02 or not node.value:
        raise EnvelopeError("envelope", "INTEGER expected")
    return int.from_bytes(node.value, "big", signed=True)


def _canonical(node: _Node) -> bytes:
    """Definite-length encoding of ``node`` (a Name read from BER compares as DER)."""
    if node.children is None:
        content = node.value
    else:
        content = b"".join(_canonical(child) for child in node.children)
    length = len(content)
    if length < 0x80:
        header = bytes([node.tag, length])
    else:
        raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([node.tag, 0x80 | len(raw)]) + raw
    return header + content


def issuer_and_serial(cert_der: bytes) -> Tuple[bytes, int]:
    """The issuer Name (DER) and serial number of a certificate: how CMS names a recipient."""
    try:
        cert, _end = _parse(cert_der)
        tbs = cert.kids("certificate")[0].kids("tbsCertificate")
        index = 1 if tbs and tbs[0].tag == 0xA0 else 0
        return _canonical(tbs[index + 2]), _integer(tbs[index])
    except IndexError:
        raise EnvelopeError("certificate", "not an X.509 certificate")


def inspect_envelope(cms: bytes) -> Dict[str, Any]:
    """What a CMS ContentInfo holding EnvelopedData says about its recipients and algorithms.

    Keys: ``recipients`` (list of dicts: ``kind`` (issuer_serial, ski, other), ``issuer_der``
    and ``serial`` or ``ski``, ``key_encryption`` OID), ``content_encryption`` OID,
    ``content_type`` OID of the encrypted content, ``size``.
    """
    try:
        root, end = _parse(cms)
        if cms[end:].strip(b"\x00"):
            raise EnvelopeError("envelope", "trailing bytes after the CMS structure")
        top = root.kids("ContentInfo")
        if root.tag != 0x30 or _oid(top[0]) != OID_ENVELOPED_DATA or top[1].tag != 0xA0:
            raise EnvelopeError("envelope", "not a CMS EnvelopedData")
        fields = top[1].kids("content")[0].kids("EnvelopedData")
        index = 2 if fields[1].tag == 0xA0 else 1  # originatorInfo
        infos, eci = fields[index], fields[index + 1]
        if infos.tag != 0x31 or eci.tag != 0x30:
            raise EnvelopeError("envelope", "bad EnvelopedData")
        recipients = []
        for info in infos.kids("RecipientInfos"):
            if info.tag != 0x30:
                recipients.append({"kind": "other"})
                continue
            parts = info.kids("KeyTransRecipientInfo")
            rid = parts[1]
            entry: Dict[str, Any] = {"kind": "other", "key_encryption": _oid(parts[2].kids("alg")[0])}
            if rid.tag == 0x30:
                issuer, serial = rid.kids("IssuerAndSerialNumber")
                entry.update(kind="issuer_serial", issuer_der=_canonical(issuer), serial=_integer(serial))
            elif rid.tag == 0x80:
                entry.update(kind="ski", ski=rid.value)
            recipients.append(entry)
        eci_parts = eci.kids("EncryptedContentInfo")
        return {
            "recipients": recipients,
            "content_type": _oid(eci_parts[0]),
            "content_encryption": _oid(eci_parts[1].kids("algorithm")[0]),
            "size": len(cms),
        }
    except IndexError:
        raise EnvelopeError("envelope", "CMS structure too short")


def algorithm_name(oid: str) -> str:
    return _ALGORITHM_NAMES.get(oid, oid)


def check_envelope(cms: bytes, cert_der: bytes) -> Dict[str, Any]:
    """Check that ``cms`` is encrypted to ``cert_der`` only, as the SNE expects; return a
    summary (recipient serial, algorithms, size). EnvelopeError otherwise."""
    info = inspect_envelope(cms)
    issuer, serial = issuer_and_serial(cert_der)
    recipients = info["recipients"]
    if len(recipients) != 1:
        raise EnvelopeError("envelope", "the envelope has %d recipients, 1 expected" % len(recipients))
    recipient = recipients[0]
    if recipient["kind"] != "issuer_serial":
        raise EnvelopeError("envelope", "the envelope does not name its recipient by issuer and serial "
                            "number (%s)" % recipient["kind"])
    if recipient["issuer_der"] != issuer or recipient["serial"] != serial:
        raise EnvelopeError("envelope", "the envelope's recipient (serial %X) is not the certificate "
                            "read (serial %X)" % (recipient["serial"], serial))
    if recipient["key_encryption"] != OID_RSA_ENCRYPTION:
        raise EnvelopeError("envelope", "key transport is %s, not RSA PKCS#1 v1.5"
                            % algorithm_name(recipient["key_encryption"]))
    if info["content_encryption"] != OID_AES256_CBC:
        raise EnvelopeError("envelope", "content encryption is %s, not AES-256-CBC"
                            % algorithm_name(info["content_encryption"]))
    return {
        "recipient_serial": "%X" % serial,
        "key_transport": algorithm_name(recipient["key_encryption"]),
        "content_encryption": algorithm_name(info["content_encryption"]),
        "size": info["size"],
    }


# --------------------------------------------------------------------------------------
# Encryption backends
# --------------------------------------------------------------------------------------

def encrypt_with_cryptography(plaintext: bytes, cert_der: bytes) -> bytes:
    if not HAS_CRYPTOGRAPHY:
        raise EnvelopeError("encryption", "the Python library cryptography (>= 45) is not available: %s"
                            % (cryptography_problem() or "PKCS7EnvelopeBuilder cannot choose AES-256"))
    try:
        cert = _x509.load_der_x509_certificate(cert_der)
        builder = (_pkcs7.PKCS7EnvelopeBuilder().set_data(plaintext).add_recipient(cert)
                   .set_content_encryption_algorithm(_pkcs7.algorithms.AES256))
        return builder.encrypt(_serialization.Encoding.DER, [_pkcs7.PKCS7Options.Binary])
    except (ValueError, TypeError) as exc:
        raise EnvelopeError("encryption", "cryptography cannot encrypt to this certificate: %s" % exc)


def encrypt_with_openssl(plaintext: bytes, cert_der: bytes, openssl: str,
                         run_command: CommandRunner) -> bytes:
    """``openssl cms -encrypt`` through files of a private (0700) temporary folder."""
    folder = tempfile.mkdtemp(prefix="sne-probe-")
    try:
        source = os.path.join(folder, "message.xml")
        cert_file = os.path.join(folder, "recipient.pem")
        target = os.path.join(folder, "message.p7m")
        with open(source, "wb") as handle:
            handle.write(plaintext)
        with open(cert_file, "wb") as handle:
            handle.write(der_to_pem(cert_der))
        argv = [openssl, "cms", "-encrypt", "-aes256", "-binary", "-outform", "DER",
                "-in", source, "-out", target, "-recip", cert_file]
        rc, out, err = run_command(argv)
        if rc != 0:
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else (err or "")
            text = text.strip() or (out.decode("utf-8", "replace") if isinstance(out, bytes) else out or "")
            raise EnvelopeError("encryption", "openssl cms -encrypt failed (rc=%s): %s"
                                % (rc, text.strip()[-500:]))
        try:
            with open(target, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise EnvelopeError("encryption", "openssl cms -encrypt wrote no envelope: %s" % exc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def encrypt(plaintext: bytes, cert_der: bytes, backend: str = "auto",
            run_command: Optional[CommandRunner] = None,
            find_tool: Optional[Callable[[str], Optional[str]]] = None) -> Tuple[bytes, str]:
    """The envelope (DER) and the name of the backend that made it."""
    if backend not in BACKENDS:
        raise EnvelopeError("encryption", "unknown encryption backend %r" % backend)
    if backend == "cryptography" or (backend == "auto" and HAS_CRYPTOGRAPHY):
        return encrypt_with_cryptography(plaintext, cert_der), "cryptography"
    openssl = find_tool("openssl") if find_tool is not None else None
    if openssl and run_command is not None:
        return encrypt_with_openssl(plaintext, cert_der, openssl, run_command), "openssl"
    if backend == "openssl":
        raise EnvelopeError("encryption", "the openssl command is not available on this host")
    raise EnvelopeError("no_backend", NO_BACKEND_MESSAGE)
