# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend for Java PKCS#12 keystores (the JDK's default keystore type since 9).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library, plus ``cryptography`` when present.

Two ways to read and write, chosen per store and reported in ``details["backend"]``:

``cryptography``
    when cryptography (>= 45) is importable on the target and the store holds only
    Java trusted certificates (each with a friendlyName and Oracle's trusted-key-usage
    attribute, as keytool writes them), read with ``pkcs12.load_pkcs12`` and write with
    ``pkcs12.serialize_java_truststore``.
``keytool``
    otherwise (a private or secret key in the store, no cryptography, legacy
    encryption...): keytool is run on a private scratch copy, the result is written
    next to the store and listed again by keytool before it replaces the original.

Whatever the backend, a stdlib pass first checks the outer structure (not PKCS#12 →
unknown_format, truncated → corrupt) and the password-based MAC (→ wrong_password), so
that errors are the same with or without the optional tools. The password never
appears on a command line nor in a file: keytool reads it from its own environment
(``-storepass:env``, see ``_formats/keytool.py``).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    VERIFY_FAILED,
    WRONG_PASSWORD,
    Malformed,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._formats.keytool import (
    STOREPASS,
    EntryKey,
    ListedEntry,
    _Scratch,
    keytool_path,
    list_with,
    run_keytool,
)
from ansible_collections.sne.guichet.plugins.module_utils._formats.pkcs12 import (
    _KDF_ROUNDS,
    HAS_CRYPTOGRAPHY,
    OID_CERT_BAG,
    Outline,
    mac_matches,
    open_bags,
    outline,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._keystore import JavaKeystore
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan

# The optional fast path (HAS_CRYPTOGRAPHY): cryptography's submodules are imported where they
# are used, so that a run with no PKCS#12 store to write pays none of their import time.


# --------------------------------------------------------------------------------------

class Pkcs12Store(JavaKeystore):
    """A Java PKCS#12 keystore."""

    TYPE = "pkcs12"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trusted: List[Tuple[str, bytes]] = []  # cryptography view: (friendlyName, der)
        self._listing: List[ListedEntry] = []  # keytool view: every entry, keys included

    # ------------------------------------------------------------ helpers
    def _pkcs12_password(self) -> str:
        return self._password("PKCS#12 keystores cannot be read or written without it")

    def _keytool(self) -> str:
        return keytool_path(self.find_tool)

    def _run(self, args: List[str], path: str, scratch: _Scratch) -> str:
        return run_keytool(args, path, self.run_command, self.find_tool, scratch)

    def _list(self, scratch: _Scratch, path: str) -> List[ListedEntry]:
        return list_with(scratch, path, self.run_command, self.find_tool)

    def _check(self, data: bytes, password: str) -> Outline:
        info = outline(data)
        if mac_matches(info, password) is False:
            raise StoreError(WRONG_PASSWORD, "store password incorrect or store damaged "
                             "(integrity check failed)")
        return info

    def _trusted_only(self, data: bytes, info: Outline, password: str) -> Optional[List[Tuple[str, bytes]]]:
        """(friendlyName, der) of every entry if the store is a pure Java truststore that
        cryptography can rewrite losslessly; None otherwise."""
        if not HAS_CRYPTOGRAPHY or not password:
            return None
        bags = open_bags(info, password)
        if bags is None:
            return None
        found = []
        try:
            for bag in bags:
                der = bag.cert_der
                name = bag.friendly_name
                if der is None or name is None or not bag.trusted or bag.oid != OID_CERT_BAG:
                    return None
                found.append((name, der))
        except (Malformed, IndexError):
            return None
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

        try:
            loaded = pkcs12.load_pkcs12(data, password.encode("utf-8"))
        except (ValueError, TypeError, x509.InvalidVersion):  # a version-4 certificate (fuzzing)
            return None
        if loaded.key is not None or loaded.cert is not None:
            return None
        theirs = sorted((c.friendly_name or b"", c.certificate.public_bytes(Encoding.DER))
                        for c in loaded.additional_certs)
        if theirs != sorted((n.encode("utf-8"), d) for n, d in found):
            return None
        return found

    # ------------------------------------------------------------ reading
    @property
    def listing(self) -> List[ListedEntry]:
        """Every entry read by :meth:`load` (aliases, types, certificates), keys included."""
        return list(self._listing)

    def load(self) -> List[CertEntry]:
        data = self.read()
        if data is None:
            self._trusted, self._listing = [], []
            self._key_details([], [], backend="cryptography" if HAS_CRYPTOGRAPHY else "keytool",
                              exists=False)
            return []
        password = self._pkcs12_password()
        info = self._check(data, password)
        trusted = self._trusted_only(data, info, password)
        if trusted is not None:
            self._trusted = trusted
            self._listing = [ListedEntry(n.lower(), "trustedCertEntry", [d]) for n, d in trusted]
            backend = "cryptography"
        else:
            self._keytool()
            with _Scratch(password) as scratch:
                self._listing = self._list(scratch, self.spec.path)
            self._trusted = []
            backend = "keytool"
        self._key_details([{"alias": e.alias, "chain": [sha256_fingerprint(d) for d in e.ders]}
                           for e in self._listing if e.type == "PrivateKeyEntry"],
                          [e.alias for e in self._listing if e.type == "SecretKeyEntry"],
                          backend=backend, exists=True)
        return [CertEntry(e.alias, e.ders[0]) for e in self._listing
                if e.type == "trustedCertEntry" and e.ders]

    # ------------------------------------------------------------ writing
    def _new_aliases(self, plan: Plan) -> List[Tuple[str, CertEntry]]:
        removed = set(c.name.lower() for c in plan.remove)
        taken = set(e.alias.lower() for e in self._listing) - removed
        out = []
        for cert in plan.add:
            alias = cert.name
            n = 2
            while alias.lower() in taken:
                alias = "%s-%d" % (cert.name, n)
                n += 1
            taken.add(alias.lower())
            out.append((alias, cert))
        return out

    def _expected(self, plan: Plan, adds: List[Tuple[str, CertEntry]]) -> List[EntryKey]:
        by_alias = dict((e.alias.lower(), e) for e in self._listing)
        for cert in plan.remove:
            entry = by_alias.get(cert.name.lower())
            if entry is None or entry.type != "trustedCertEntry" or \
                    sha256_fingerprint(entry.ders[0]) != cert.sha256:
                raise StoreError(VERIFY_FAILED, "entry %r is not the trusted certificate %s that "
                                 "was planned for removal" % (cert.name, cert.sha256))
            del by_alias[cert.name.lower()]
        keys = [e.key() for e in by_alias.values()]
        keys.extend((alias.lower(), "trustedCertEntry", (cert.sha256,)) for alias, cert in adds)
        return sorted(keys)

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        password = self._pkcs12_password()
        adds = self._new_aliases(plan)
        expected = self._expected(plan, adds)
        if self.details.get("backend") == "cryptography":
            data = self._build_with_cryptography(plan, adds, password)
            if data is not None:
                return self._replace(
                    data, lambda tmp: self._verify_with_cryptography(tmp, password, expected), backups)
        # keytool: on a copy in a private scratch folder, then written next to the store
        self._keytool()
        self.details["backend"] = "keytool"
        with _Scratch(password) as scratch:
            data = self._build_with_keytool(plan, adds, scratch)
            return self._replace(data, lambda tmp: self._verify_with_keytool(tmp, scratch, expected),
                                 backups)

    # cryptography path
    def _build_with_cryptography(self, plan: Plan, adds: List[Tuple[str, CertEntry]],
                                 password: str) -> Optional[bytes]:
        if not HAS_CRYPTOGRAPHY or not password:
            return None
        removed = set(c.name.lower() for c in plan.remove)
        wanted = [(n, d) for n, d in self._trusted if n.lower() not in removed]
        wanted.extend((alias, cert.der) for alias, cert in adds)
        if not wanted:
            return None  # serialize_java_truststore cannot write an empty store
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

        try:
            certs = [pkcs12.PKCS12Certificate(x509.load_der_x509_certificate(der), name.encode("utf-8"))
                     for name, der in wanted]
            protection = (PrivateFormat.PKCS12.encryption_builder()
                          .kdf_rounds(_KDF_ROUNDS)
                          .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                          .hmac_hash(hashes.SHA256())
                          .build(password.encode("utf-8")))
            return pkcs12.serialize_java_truststore(certs, protection)
        except (ValueError, TypeError):
            return None

    def _verify_with_cryptography(self, tmp: str, password: str,
                                  expected: List[EntryKey]) -> None:
        try:
            with open(tmp, "rb") as handle:
                data = handle.read()
            info = self._check(data, password)
        except (OSError, StoreError) as exc:
            raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc)
        if mac_matches(info, password) is not True:
            raise StoreError(VERIFY_FAILED, "written keystore's integrity cannot be checked")
        found = self._trusted_only(data, info, password)
        if found is None:
            raise StoreError(VERIFY_FAILED, "written keystore is not a pure Java truststore")
        got = sorted((n.lower(), "trustedCertEntry", (sha256_fingerprint(d),)) for n, d in found)
        if got != expected:
            raise StoreError(VERIFY_FAILED, "written keystore differs from the planned one")

    # keytool path
    def _build_with_keytool(self, plan: Plan, adds: List[Tuple[str, CertEntry]],
                            scratch: _Scratch) -> bytes:
        work = scratch.path("work.p12")
        if self._original is not None:
            with open(work, "wb") as handle:
                handle.write(self._original)
        common = ["-storetype", "PKCS12", "-keystore", work] + STOREPASS
        for cert in plan.remove:
            self._run(["-delete", "-alias", cert.name] + common, self.spec.path, scratch)
        for number, (alias, cert) in enumerate(adds):
            der_file = scratch.path("add-%d.der" % number)
            with open(der_file, "wb") as handle:
                handle.write(cert.der)
            self._run(["-importcert", "-noprompt", "-trustcacerts", "-alias", alias,
                       "-file", der_file] + common, self.spec.path, scratch)
        try:
            with open(work, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise StoreError(VERIFY_FAILED, "keytool left no keystore: %s" % exc)

    def _verify_with_keytool(self, tmp: str, scratch: _Scratch,
                             expected: List[EntryKey]) -> None:
        try:
            with open(tmp, "rb") as handle:
                self._check(handle.read(), self._pkcs12_password())
            listing = self._list(scratch, tmp)
        except StoreError as exc:
            raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc.reason)
        except OSError as exc:
            raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc)
        if sorted(e.key() for e in listing) != expected:
            raise StoreError(VERIFY_FAILED, "written keystore differs from the planned one")
