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

Whichever ran, :func:`inspect_envelope` (read with ``_formats/cms.py``, BER) then checks what was built:
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
from ansible_collections.sne.guichet.plugins.module_utils._formats.cms import ISSUER_SERIAL, SKI, read_der
from ansible_collections.sne.guichet.plugins.module_utils._oids import (
    ALGORITHM_NAMES,
    OID_AES256_CBC,
    OID_RSA_ENCRYPTION,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import der_to_pem, recipient_identifiers

try:  # optional fast path
    from cryptography import x509 as _x509
    from cryptography.hazmat.primitives import serialization as _serialization
    from cryptography.hazmat.primitives.serialization import pkcs7 as _pkcs7

    HAS_CRYPTOGRAPHY = cryptography_problem() is None and hasattr(
        _pkcs7.PKCS7EnvelopeBuilder, "set_content_encryption_algorithm")
except ImportError:  # pragma: no cover - depends on the target
    HAS_CRYPTOGRAPHY = False

BACKENDS = ("auto", "cryptography", "openssl")

NO_BACKEND_MESSAGE = (
    "cannot encrypt the probe message on this host: neither the Python library cryptography "
    "(>= 45) nor the openssl command is available. Run the probe delegated to the controller "
    "(delegate_to: localhost) with certificate_pem set to the certificate read from the host "
    "(this module returns it as certificate.pem even when it cannot encrypt)")

# run_command(argv) -> (rc, stdout, stderr); AnsibleModule.run_command fits.
CommandRunner = Callable[..., Any]


# --------------------------------------------------------------------------------------
# Checking the envelope (and reading a certificate's issuer and serial number)
# --------------------------------------------------------------------------------------

def issuer_and_serial(cert_der: bytes) -> Tuple[bytes, int]:
    """The issuer Name (DER) and serial number of a certificate: how CMS names a recipient."""
    try:
        ids = recipient_identifiers(cert_der)
    except ValueError as exc:  # _asn1's Truncated and Garbled; a field missing
        raise EnvelopeError("certificate", "not an X.509 certificate: %s" % exc)
    return ids["issuer"], ids["serial"]


def inspect_envelope(cms: bytes) -> Dict[str, Any]:
    """What a CMS ContentInfo holding EnvelopedData says about its recipients and algorithms
    (read by ``_formats/cms.py``, the collection's one CMS reader).

    Keys: ``recipients`` (list of dicts: ``kind`` (issuer_serial, ski, other), ``issuer_der``
    and ``serial`` or ``ski``, ``key_encryption`` OID), ``content_encryption`` OID,
    ``content_type`` OID of the encrypted content, ``size``.
    """
    try:
        envelope = read_der(cms)
    except ValueError as exc:  # _asn1's Truncated and Garbled
        raise EnvelopeError("envelope", str(exc))
    recipients: List[Dict[str, Any]] = []
    for recipient in envelope.recipients:
        entry: Dict[str, Any] = {"kind": "other"}
        if recipient.key_encryption is not None:
            entry["key_encryption"] = recipient.key_encryption
        if recipient.kind == ISSUER_SERIAL:
            entry.update(kind="issuer_serial", issuer_der=recipient.issuer, serial=recipient.serial)
        elif recipient.kind == SKI:
            entry.update(kind="ski", ski=recipient.ski)
        recipients.append(entry)
    return {
        "recipients": recipients,
        "content_type": envelope.content_type,
        "content_encryption": envelope.content_encryption,
        "size": len(cms),
    }


def algorithm_name(oid: str) -> str:
    return ALGORITHM_NAMES.get(oid, oid)


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
