# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every OBJECT IDENTIFIER the collection's readers look for, in one place (dotted text).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

The values are what ``cryptography`` prints as ``ObjectIdentifier.dotted_string`` (the unit
tests check them against it and read each one back through ``_asn1``). Readers import the
names from here; ``_formats/pkcs12.py`` and ``_probe/envelope.py`` re-export the ones they
always exported.
"""

from __future__ import annotations

# PKCS#7 / CMS content types (RFC 5652)
OID_DATA = "1.2.840.113549.1.7.1"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"

# PKCS#12 bag types (RFC 7292 section 4.2) and the certificate type of a CertBag
OID_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
OID_SECRET_BAG = "1.2.840.113549.1.12.10.1.5"
OID_X509_CERT = "1.2.840.113549.1.9.22.1"

# Bag attributes: PKCS#9 friendlyName, and the JDK's mark of a trusted certificate entry
OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
OID_ORACLE_TRUSTED_KEY_USAGE = "2.16.840.1.113894.746875.1.1"

# PKCS#5 password-based encryption (RFC 8018)
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"

# X.509 extensions read by ``_x509``
OID_BASIC_CONSTRAINTS = "2.5.29.19"
OID_KEY_USAGE = "2.5.29.15"
OID_SUBJECT_KEY_IDENTIFIER = "2.5.29.14"

# Key transport and content encryption
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"  # RSA PKCS#1 v1.5
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
OID_AES128_CBC = "2.16.840.1.101.3.4.1.2"
OID_AES192_CBC = "2.16.840.1.101.3.4.1.22"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
OID_DES_EDE3_CBC = "1.2.840.113549.3.7"
OID_RC2_CBC = "1.2.840.113549.3.2"
OID_PBE_SHA1_3DES = "1.2.840.113549.1.12.1.3"  # PKCS#12 legacy: pbeWithSHAAnd3-KeyTripleDES-CBC
OID_PBE_SHA1_RC2_40 = "1.2.840.113549.1.12.1.6"  # PKCS#12 legacy: pbeWithSHAAnd40BitRC2-CBC

# Digest algorithm -> hashlib name (PKCS#12 MAC)
HASHES = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
# PBKDF2 pseudo-random function (hmacWithSHA*) -> hashlib name
HMAC_PRFS = {
    "1.2.840.113549.2.7": "sha1",
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
}
# AES-CBC -> key size in bytes
AES_CBC_KEY_SIZES = {OID_AES128_CBC: 16, OID_AES192_CBC: 24, OID_AES256_CBC: 32}

# Names shown to the operator (OpenSSL's spelling)
ALGORITHM_NAMES = {
    OID_RSA_ENCRYPTION: "rsaEncryption (PKCS#1 v1.5)",
    OID_RSAES_OAEP: "RSAES-OAEP",
    OID_AES128_CBC: "aes-128-cbc",
    OID_AES192_CBC: "aes-192-cbc",
    OID_AES256_CBC: "aes-256-cbc",
    OID_DES_EDE3_CBC: "des-ede3-cbc",
    OID_RC2_CBC: "rc2-cbc",
    OID_PBE_SHA1_3DES: "pbeWithSHA1And3-KeyTripleDES-CBC",
    OID_PBE_SHA1_RC2_40: "pbeWithSHA1And40BitRC2-CBC",
}

# Attribute types of a distinguished name that cryptography's Name.rfc4514_string() prints
# with a short name; every other one is printed as its dotted OID (emailAddress as
# 1.2.840.113549.1.9.1, serialNumber as 2.5.4.5), exactly like cryptography does.
DN_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
