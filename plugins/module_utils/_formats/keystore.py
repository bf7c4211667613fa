# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The certificates of a Java keystore (JKS, JCEKS, PKCS#12), read for looking only.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library, plus ``cryptography`` or ``keytool`` when present
(only for PKCS#12 certificates that are encrypted).

:func:`open_keystore` is the one reader of the scan and the probe (the store backends, which
also write, have their own). It returns every certificate with its alias, what entry holds it
(``kind``: a trusted certificate, or the chain of a private key) and its position in that
chain when the format keeps one; and why some could not be read (``problem``), since a
PKCS#12 file can hold certificates in clear beside encrypted ones.

- JKS/JCEKS: certificates are never encrypted. Passwords given are checked against the
  integrity digest (the first that matches is kept); none matching is a problem.
- PKCS#12: certificates in clear need no password. For the encrypted ones, the password is
  the first whose MAC matches (passwords whose MAC cannot be checked here are tried after),
  and the parts are decrypted in the standard library + cryptography (PBES2/AES), else by
  cryptography's reader (legacy RC2/3DES encryption), else listed by keytool.

The structure itself being unreadable (not a keystore, truncated) raises StoreError
(UNKNOWN_FORMAT, CORRUPT...), as the format readers do.
"""

from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    TOOL_MISSING,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as _p12
from ansible_collections.sne.guichet.plugins.module_utils._formats.detect import (
    HEAD_SIZE,
    JCEKS,
    JKS,
    PKCS12,
    classify,
)
from ansible_collections.sne.guichet.plugins.module_utils._formats.keytool import list_entries

KIND_TRUSTED_CERT = _jks.KIND_TRUSTED_CERT
KIND_PRIVATE_KEY = _jks.KIND_PRIVATE_KEY
_FORMAT_NAMES = {JKS: "JKS", JCEKS: "JCEKS", PKCS12: "PKCS#12"}
NO_BACKEND_MESSAGE = ("PKCS#12 certificates are encrypted with an algorithm the standard library "
                      "cannot decrypt: install the Python library cryptography (>= 45) or keytool "
                      "on the host")

Runner = Optional[Callable[..., Any]]
ToolFinder = Optional[Callable[[str], Optional[str]]]


class KeystoreCert(NamedTuple):
    """One certificate of a keystore."""

    alias: Optional[str]  # the entry's alias (PKCS#12: the bag's friendlyName, if any)
    der: bytes
    # KIND_TRUSTED_CERT, or KIND_PRIVATE_KEY: in a private key's chain (PKCS#12: any
    # certificate without Java's trusted-certificate attribute; the JDK trusts none of those)
    kind: str
    index: Optional[int]  # position in the private key's chain; None when not known


class Opened(NamedTuple):
    """What :func:`open_keystore` read."""

    format: str  # jks, jceks or pkcs12
    certificates: List[KeystoreCert]
    password: Optional[str]  # the password that opened it; None if none was needed or none did
    problem: Optional[StoreError]  # why some (or all) certificates could not be read


def open_keystore(path: str, data: bytes, passwords: Union[None, str, Sequence[str]] = None,
                  fmt: Optional[str] = None, run_command: Runner = None,
                  find_tool: ToolFinder = None, ask: str = "its password") -> Opened:
    """Every certificate of the keystore ``data`` (read from ``path``).

    ``fmt``: jks/jceks or pkcs12 as declared; guessed from the content when None.
    ``passwords``: candidates, the right one anywhere in the list. ``run_command`` and
    ``find_tool`` (keytool) are optional. ``ask``: how the caller's user gives a password,
    for the message when one is needed (``give <ask> to read them``).
    """
    candidates = [passwords] if isinstance(passwords, str) else list(passwords or [])
    if (fmt or classify(data[:HEAD_SIZE])) in (JKS, JCEKS):
        return _open_jks(data, candidates)
    return _open_pkcs12(path, data, candidates, run_command, find_tool, ask)


def _none_opens(count: int, fmt: str) -> StoreError:
    return StoreError(WRONG_PASSWORD, "none of the %d password(s) given for this %s file opens it "
                      "(integrity check failed)" % (count, _FORMAT_NAMES[fmt]))


# --------------------------------------------------------------------------------------
# JKS / JCEKS
# --------------------------------------------------------------------------------------

def _open_jks(data: bytes, candidates: List[str]) -> Opened:
    store = _jks.parse(data, None)  # certificates are not protected by the password
    certs = []
    for entry in store.entries:
        if entry.tag == _jks.TAG_TRUSTED_CERT and entry.der is not None:
            held = [(KIND_TRUSTED_CERT, None, entry.cert_type, entry.der)]
        elif entry.tag == _jks.TAG_PRIVATE_KEY:
            held = [(KIND_PRIVATE_KEY, i, cert_type, der) for i, (cert_type, der) in enumerate(entry.chain)]
        else:
            continue  # secret keys
        certs.extend(KeystoreCert(entry.alias, der, kind, index)
                     for kind, index, cert_type, der in held if cert_type == "X.509")
    for password in candidates:
        try:
            _jks.parse(data, password)
        except StoreError:  # WRONG_PASSWORD: the rest was read above
            continue
        return Opened(store.format, certs, password, None)
    problem = _none_opens(len(candidates), store.format) if candidates else None
    return Opened(store.format, certs, None, problem)


# --------------------------------------------------------------------------------------
# PKCS#12
# --------------------------------------------------------------------------------------

Found = Tuple[Optional[List[KeystoreCert]], Optional[StoreError]]


def _open_pkcs12(path: str, data: bytes, candidates: List[str], run_command: Runner,
                 find_tool: ToolFinder, ask: str) -> Opened:
    info = _p12.outline(data)
    certs = _bag_certs([bag for part in info.parts if part.kind == "data" for bag in part.bags])
    if all(part.kind == "data" for part in info.parts):
        return Opened(PKCS12, certs, None, None)
    if not candidates:
        return Opened(PKCS12, certs, None, StoreError(
            WRONG_PASSWORD, "PKCS#12 file whose certificates are encrypted: give %s to read them" % ask))
    unchecked = []
    for password in candidates:
        matches = _p12.mac_matches(info, password)
        if matches is None:  # no MAC, or one the standard library cannot check
            unchecked.append(password)
        elif matches:
            unchecked = [password]
            break
    problem = None
    for password in unchecked:
        found, problem = _decrypt(path, data, info, password, run_command, find_tool)
        if found is not None:
            return Opened(PKCS12, found, password, None)
    return Opened(PKCS12, certs, None, problem or _none_opens(len(candidates), PKCS12))


def _decrypt(path: str, data: bytes, info: Any, password: str, run_command: Runner,
             find_tool: ToolFinder) -> Found:
    """Every certificate of the file, with ``password``; or why not."""
    if _p12.HAS_CRYPTOGRAPHY:  # read here, at call time (tests turn it off)
        bags = _p12.open_bags(info, password)
        if bags is not None:
            return _bag_certs(bags), None
        legacy = _legacy(data, password)
        if legacy is not None:
            return legacy, None
    if run_command is None or find_tool is None or not find_tool("keytool"):
        return None, StoreError(TOOL_MISSING, NO_BACKEND_MESSAGE)
    try:
        listing = list_entries(path, password, run_command, find_tool)
    except StoreError as exc:
        return None, exc
    return [KeystoreCert(entry.alias, der, KIND_PRIVATE_KEY, i) if entry.type == "PrivateKeyEntry"
            else KeystoreCert(entry.alias, der, KIND_TRUSTED_CERT, None)
            for entry in listing for i, der in enumerate(entry.ders)], None


def _legacy(data: bytes, password: str) -> Optional[List[KeystoreCert]]:
    """cryptography's own reader (RC2, 3DES...); None when it cannot read the file."""
    try:  # imported here, not with the module: only a PKCS#12 read needs it
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
        from cryptography.x509 import InvalidVersion
    except ImportError:  # pragma: no cover - depends on the target
        return None
    try:
        loaded = pkcs12.load_pkcs12(data, password.encode("utf-8"))
    except (ValueError, TypeError, InvalidVersion, UnsupportedAlgorithm):  # InvalidVersion: a v4 certificate
        return None
    held = ([(KIND_PRIVATE_KEY, 0, loaded.cert)] if loaded.cert is not None else []) + [
        (KIND_TRUSTED_CERT, None, c) for c in loaded.additional_certs]
    return [KeystoreCert((c.friendly_name or b"").decode("utf-8", "replace") or None,
                         c.certificate.public_bytes(Encoding.DER), kind, index)
            for kind, index, c in held]


def _bag_certs(bags: List[Any]) -> List[KeystoreCert]:
    return [KeystoreCert(name, der, KIND_TRUSTED_CERT if bag.trusted else KIND_PRIVATE_KEY, None)
            for bag in bags for name, der in _p12.certificate_bags([bag])]
