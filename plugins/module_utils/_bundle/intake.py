# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bundle intake: read the ministry's zip within limits and sort its members.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: needs ``cryptography`` (see ``_common.cryptography_dep``).
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import zipfile
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import CRYPTOGRAPHY_VERSION
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import BundleError

if CRYPTOGRAPHY_VERSION is not None:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    # What cryptography raises for a certificate it cannot read: ValueError mostly, TypeError for
    # a name attribute of the wrong type, InvalidVersion and DuplicateExtension (no ValueErrors).
    _UNREADABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension)

# Extensions that say "this member is meant to hold a certificate": if its content is
# not one, the bundle is refused (``parse``) instead of being treated as documentation.
CERT_EXTENSIONS = (".cer", ".crt", ".der", ".pem", ".p7b", ".p7c", ".cert")
# PEM labels of private keys. Spelt in two words so that the shipped collection holds no
# private-key label written out (the tarball test, and secret scanners, look for one).
_PRIVATE_KEY = " ".join(("PRIVATE", "KEY"))
KEY_PEM_LABELS = tuple((prefix + " " + _PRIVATE_KEY).strip()
                       for prefix in ("", "RSA", "EC", "DSA", "ENCRYPTED", "OPENSSH"))
MIN_RSA_BITS = 2048

try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # pragma: no cover - a Python built without lzma cannot read such members
    _LZMAError = zlib.error


class Limits:
    """Bounds for reading an untrusted zip in memory."""

    def __init__(self, max_archive_size: int = 16 * 1024 * 1024, max_members: int = 64,
                 max_member_size: int = 4 * 1024 * 1024,
                 max_total_size: int = 16 * 1024 * 1024, max_ratio: int = 100) -> None:
        self.max_archive_size = max_archive_size
        self.max_members = max_members
        self.max_member_size = max_member_size
        self.max_total_size = max_total_size
        self.max_ratio = max_ratio


# --------------------------------------------------------------------------- zip

def _unsafe_name(name: str) -> Optional[str]:
    """Why a member name could escape an extraction folder, or None when it is safe."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = re.split(r"[\\/]+", name)
    if ".." in parts:
        return "parent-directory component"
    return None


def read_zip(data: bytes, limits: Limits) -> List[Tuple[str, bytes]]:
    """Return (name, content) of each file member, enforcing ``limits``."""
    if len(data) > limits.max_archive_size:
        raise BundleError("zip_limits", "archive is %d bytes, more than the limit of %d"
                          % (len(data), limits.max_archive_size))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError) as exc:
        raise BundleError("zip_format", "not a valid zip archive: %s" % exc)
    # (ZipInfo.is_dir fails on an empty name; such a member is refused below, zip_path.)
    files = [info for info in infos if not info.filename.endswith("/")]
    if not files:
        raise BundleError("zip_empty", "the archive holds no file")
    if len(infos) > limits.max_members:
        raise BundleError("zip_limits", "the archive holds %d members, more than the limit of %d"
                          % (len(infos), limits.max_members))
    for info in infos:
        why = _unsafe_name(info.filename)
        if why:
            raise BundleError("zip_path", "unsafe member name %r (%s)" % (info.filename, why))
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BundleError("zip_path", "member %r is a symbolic link" % info.filename)
    members: List[Tuple[str, bytes]] = []
    total = 0
    for info in files:
        if info.flag_bits & 0x1:
            raise BundleError("zip_format", "member %r is encrypted" % info.filename)
        if info.file_size > limits.max_member_size:
            raise BundleError("zip_limits", "member %r declares %d bytes, more than the limit of %d"
                              % (info.filename, info.file_size, limits.max_member_size))
        if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
            raise BundleError("zip_limits", "member %r has a compression ratio of %d:1 (limit %d:1)"
                              % (info.filename, info.file_size // info.compress_size,
                                 limits.max_ratio))
        try:
            with archive.open(info) as handle:
                # The declared size can lie: never read more than the limit allows.
                content = handle.read(limits.max_member_size + 1)
        except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, ValueError,
                zlib.error, _LZMAError) as exc:  # damaged compressed data
            raise BundleError("zip_format", "cannot read member %r: %s" % (info.filename, exc))
        if len(content) > limits.max_member_size:
            raise BundleError("zip_limits", "member %r inflates past the limit of %d bytes"
                              % (info.filename, limits.max_member_size))
        total += len(content)
        if total > limits.max_total_size:
            raise BundleError("zip_limits", "the archive inflates past the limit of %d bytes"
                              % limits.max_total_size)
        members.append((info.filename, content))
    return members


# ----------------------------------------------------------------- certificates

def _pem_blocks(content: bytes) -> List[Tuple[str, bytes]]:
    """(label, full block text) of every PEM block in ``content``."""
    # A block stops at the next BEGIN: a BEGIN without END costs one pass, not one per BEGIN.
    pattern = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(?:(?!-----BEGIN ).)*?-----END \1-----", re.S)
    return [(m.group(1).decode("ascii"), m.group(0)) for m in pattern.finditer(content)]


def _is_der_private_key(content: bytes) -> bool:
    try:
        serialization.load_der_private_key(content, password=None)
        return True
    except TypeError:  # encrypted key: it is a private key all the same
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False


def parse_members(members: Sequence[Tuple[str, bytes]]
                  ) -> Tuple[List[Any], List[str], List[str]]:
    """Split members into certificates (deduplicated), documents, and sources.

    Content decides, not the extension: a DER file named ``.pem`` is read as DER.
    Returns (certificates, document names, names of members that held certificates).
    """
    certs: Dict[bytes, Any] = {}
    documents: List[str] = []
    sources: List[str] = []

    def add(cert: Any) -> None:
        try:  # cryptography reads these when first asked: a damaged one is refused here
            for field in ("subject", "issuer", "extensions", "serial_number", "not_valid_before_utc",
                          "not_valid_after_utc"):
                getattr(cert, field)
            cert.public_key()
        except _UNREADABLE as exc:
            raise BundleError("parse", "member %r holds a certificate that cannot be read: %s" % (name, exc))
        certs.setdefault(cert.public_bytes(serialization.Encoding.DER), cert)

    for name, content in members:
        lower = name.lower()
        meant_for_cert = lower.endswith(CERT_EXTENSIONS)
        blocks = _pem_blocks(content)
        if blocks:
            for label, _block in blocks:
                if label in KEY_PEM_LABELS:
                    raise BundleError("private_key", "member %r holds a private key (%s): the "
                                      "ministry never ships one; refusing the bundle" % (name, label))
            found = False
            for label, block in blocks:
                try:
                    if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
                        add(x509.load_pem_x509_certificate(block))
                        found = True
                    elif label in ("PKCS7", "CMS"):
                        for cert in pkcs7.load_pem_pkcs7_certificates(block):
                            add(cert)
                        found = True
                except _UNREADABLE as exc:
                    raise BundleError("parse", "member %r: PEM %s block is not a valid "
                                      "certificate: %s" % (name, label, exc))
            if found:
                sources.append(name)
            elif meant_for_cert:
                raise BundleError("parse", "member %r holds no certificate" % name)
            else:
                documents.append(name)
            continue
        try:
            add(x509.load_der_x509_certificate(content))
            sources.append(name)
            continue
        except x509.InvalidVersion as exc:  # a certificate, of a version that does not exist
            raise BundleError("parse", "member %r holds a certificate that cannot be read: %s" % (name, exc))
        except ValueError:
            pass
        if _is_der_private_key(content):
            raise BundleError("private_key", "member %r holds a private key: the ministry never "
                              "ships one; refusing the bundle" % name)
        try:
            for cert in pkcs7.load_der_pkcs7_certificates(content):
                add(cert)
            sources.append(name)
            continue
        except _UNREADABLE:
            pass
        if meant_for_cert:
            raise BundleError("parse", "member %r is neither a DER nor a PEM certificate" % name)
        documents.append(name)
    return list(certs.values()), documents, sources


def check_checksum(data: bytes, checksum: str) -> None:
    """``algorithm:hexdigest`` as ansible.builtin.get_url takes it (sha256 if no prefix)."""
    algorithm, expected = "sha256", checksum
    prefix = checksum.split(":", 1)[0].strip().lower()
    if ":" in checksum and prefix.isalnum() and not all(c in "0123456789abcdef" for c in prefix):
        algorithm, expected = prefix, checksum.split(":", 1)[1]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise BundleError("checksum", "unsupported checksum algorithm %r (use sha256, sha384 "
                          "or sha512)" % algorithm)
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected.strip().lower().replace(":", ""):
        raise BundleError("checksum", "archive %s is %s, expected %s"
                          % (algorithm, actual, expected.strip()))
