"""Deterministic test PKI and SNE-like certificate bundles for ``sne.guichet``.

A TEST tool (shipped with the collection for editors' CI, role ``sne.guichet.simulate``): never
trust anything it signs. The RSA keys come from a keys folder (``--keys DIR``, default
``OUTDIR/keys``): the keys found there are used, the missing ones generated there first. The
collection's own tests use the keys committed in its repository (``tests/pki/keys``, generated
once with ``--new-keys``, public on purpose). Everything else is derived from the keys
deterministically (fixed serial numbers and validity dates, RSA PKCS#1 v1.5 + SHA-256
signatures, which are deterministic, fixed zip member order, timestamps and attributes, zip
members STORED so the bytes do not depend on the zlib build), so running the generator twice,
into two folders, gives byte-identical files, and ``manifest.json`` is stable.

Usage::

    python make_pki.py OUTDIR [--keys DIR]     # writes certificates, bundles/*.zip, manifest.json
    python make_pki.py --keys DIR --new-keys [--force]   # (re)generate every key in DIR

or, from Python, ``build(outdir, keys_dir=None) -> manifest`` (the dict written to
``OUTDIR/manifest.json``; every path in it is relative to OUTDIR).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# name -> RSA modulus size. Files: <keys folder>/<name>.pem (PKCS#8, unencrypted).
KEY_SIZES: Dict[str, int] = {
    "root": 2048,
    "ac-v4": 2048,
    "ac-v5": 2048,
    "ac-v6": 2048,
    "leaf-v4": 2048,
    "leaf-v5": 2048,
    "leaf-v6": 2048,
    "wrong-ca": 2048,  # impostor "AC SNE V5 (test)", self-signed, not under the root
    "impostor-leaf": 2048,  # key of the leaf the impostor CA signs
    "weak": 1024,  # the key-size defect
}

ORG = "Ministere du Logement (test)"
ZIP_DATE_TIME = (2016, 1, 7, 9, 0, 0)  # V4 revoked on 2016-01-07 at 09:00
BOMB_SIZE = 64 * 1024 * 1024
VALID_AT = "2026-06-01T00:00:00Z"
# Where chiffrement-v5-cdp says the CRL of AC SNE V5 is (served by the tests, never resolved).
CRL_DISTRIBUTION_POINT = "http://crl.sne.test/ac-v5.crl"
# V4 revoked by the ministry on 2016-01-07 at 09:00, Paris time.
V4_REVOKED_AT = dt.datetime(2016, 1, 7, 8, 0, 0, tzinfo=dt.timezone.utc)
# The order of the bundle verifier's checks that the ``expect`` values assume: the expected
# value of a bundle is the FIRST check it fails (an expired leaf also fails ``chain``, a
# 1024-bit leaf also fails ``chain`` because cryptography's verifier wants RSA >= 2048, ...).
CHECK_ORDER = [
    "zip_format", "zip_empty", "zip_path", "zip_limits", "parse", "private_key", "leaf_count",
    "retired", "generation", "key_size", "basic_constraints", "key_usage", "validity", "chain",
]


def utc(year: int, month: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.timezone.utc)


def name(cn: str, ou: Optional[str] = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
    ]
    if ou is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def openssl_fingerprint(der: bytes) -> str:
    """SHA-256 as ``openssl x509 -fingerprint -sha256`` prints it (AB:CD:...)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


# --------------------------------------------------------------------------------------- keys
def new_keys(keys_dir: str, force: bool = False, missing_only: bool = False) -> List[str]:
    """Generate the keys into ``keys_dir`` (0700, files 0600); return the paths written."""
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    written = []
    for key_name, bits in KEY_SIZES.items():
        path = os.path.join(keys_dir, key_name + ".pem")
        if os.path.exists(path):
            if missing_only:
                continue
            if not force:
                raise SystemExit(f"{path} exists; --force to replace ALL fingerprints of the test PKI")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem(key))
        os.replace(path + ".tmp", path)
        written.append(path)
    return written


def load_keys(keys_dir: str) -> Dict[str, rsa.RSAPrivateKey]:
    keys: Dict[str, rsa.RSAPrivateKey] = {}
    for key_name in KEY_SIZES:
        with open(os.path.join(keys_dir, key_name + ".pem"), "rb") as fh:
            # Keys this generator wrote: skipping the (slow) consistency check is safe.
            key = serialization.load_pem_private_key(
                fh.read(), password=None, unsafe_skip_rsa_key_validation=True
            )
        assert isinstance(key, rsa.RSAPrivateKey)
        keys[key_name] = key
    return keys


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# ------------------------------------------------------------------------------- certificates
def ku(*, key_encipherment: bool = False, digital_signature: bool = False, cert_sign: bool = False,
       crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
        key_cert_sign=cert_sign, crl_sign=crl_sign, encipher_only=False, decipher_only=False,
    )


CA_KU = ku(cert_sign=True, crl_sign=True)
LEAF_KU = ku(key_encipherment=True)


@dataclass
class CertSpec:
    ident: str  # file stem in OUTDIR and key of manifest["certificates"]
    cn: str
    serial: int
    key: str
    issuer: Optional[str]  # ident of the issuing certificate; None = self-signed
    not_before: dt.datetime
    not_after: dt.datetime
    ca: bool = False
    path_length: Optional[int] = None
    key_usage: x509.KeyUsage = field(default_factory=lambda: LEAF_KU)
    export_key: bool = False  # write <ident>.key (for the SNE simulator)
    ou: Optional[str] = None  # organizationalUnitName, between O and CN
    crl_urls: Tuple[str, ...] = ()  # cRLDistributionPoints (full names), none when empty


def _specs() -> List[CertSpec]:
    ca_from, ca_to = utc(2020), utc(2045)
    leaf_from, leaf_to = utc(2021), utc(2040)
    specs = [
        CertSpec("root", "SNE Test Root CA", 0x5E0001, "root", None, utc(2020), utc(2050),
                 ca=True, key_usage=CA_KU),
        CertSpec("ac-v5-impostor", "AC SNE V5 (test)", 0x5E0666, "wrong-ca", None, ca_from, ca_to,
                 ca=True, key_usage=CA_KU),
    ]
    for gen in (4, 5, 6):
        specs.append(CertSpec(f"ac-v{gen}", f"AC SNE V{gen} (test)", 0x5E0100 + gen, f"ac-v{gen}",
                              "root", ca_from, ca_to, ca=True, path_length=0, key_usage=CA_KU))
    for gen in (4, 5, 6):
        specs.append(CertSpec(f"chiffrement-v{gen}", f"Chiffrement_SNEV{gen}", 0x5E1000 + gen,
                              f"leaf-v{gen}", f"ac-v{gen}", leaf_from, leaf_to, export_key=True))
    cn5 = "Chiffrement_SNEV5"
    specs += [
        CertSpec("chiffrement-v5-expired", cn5, 0x5E2001, "leaf-v5", "ac-v5",
                 utc(2015), utc(2016, 1, 7)),
        CertSpec("chiffrement-v5-not-yet-valid", cn5, 0x5E2002, "leaf-v5", "ac-v5",
                 utc(2041), utc(2050)),
        CertSpec("chiffrement-v5-wrong-key-usage", cn5, 0x5E2003, "leaf-v5", "ac-v5",
                 leaf_from, leaf_to, key_usage=ku(digital_signature=True)),
        CertSpec("chiffrement-v5-leaf-is-ca", cn5, 0x5E2004, "leaf-v5", "ac-v5", leaf_from, leaf_to,
                 ca=True, key_usage=ku(key_encipherment=True, cert_sign=True)),
        CertSpec("chiffrement-v5-impostor", cn5, 0x5E2005, "impostor-leaf", "ac-v5-impostor",
                 leaf_from, leaf_to),
        CertSpec("chiffrement-v5-weak-key", cn5, 0x5E2006, "weak", "ac-v5", leaf_from, leaf_to),
        # Genuine V5 (same key, authority and validity as chiffrement-v5) whose common name
        # does not name the generation: CN=Chiffrement SNE,OU=SNE,O=...,C=FR.
        CertSpec("chiffrement-v5-unlabelled", "Chiffrement SNE", 0x5E2007, "leaf-v5", "ac-v5",
                 leaf_from, leaf_to, ou="SNE"),
        # Genuine V5 (same key, authority and validity) that names where its authority's CRL
        # is published; the host (.test, RFC 2606) resolves nowhere: tests serve it by a proxy.
        CertSpec("chiffrement-v5-cdp", cn5, 0x5E2008, "leaf-v5", "ac-v5", leaf_from, leaf_to,
                 crl_urls=(CRL_DISTRIBUTION_POINT,)),
    ]
    return specs


def make_cert(spec: CertSpec, keys: Dict[str, rsa.RSAPrivateKey], key_of: Dict[str, str],
              issued: Dict[str, x509.Certificate]) -> x509.Certificate:
    """Sign ``spec``; ``issued`` holds the certificates already made, ``key_of`` ident -> key name."""
    key = keys[spec.key]
    if spec.issuer is None:
        issuer_name, issuer_key, issuer_pub = name(spec.cn, spec.ou), key, key.public_key()
    else:
        parent = issued[spec.issuer]
        issuer_name, issuer_key = parent.subject, keys[key_of[spec.issuer]]
        issuer_pub = parent.public_key()
    assert isinstance(issuer_pub, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(spec.cn, spec.ou))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length), critical=True)
        .add_extension(spec.key_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub), critical=False)
    )
    if spec.crl_urls:
        points = [x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)], relative_name=None,
                                         reasons=None, crl_issuer=None) for url in spec.crl_urls]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    # PKCS#1 v1.5 is the default padding for RSA keys: deterministic signatures.
    return builder.sign(issuer_key, hashes.SHA256())


def tamper(der: bytes) -> bytes:
    """Flip one byte inside the signature (the BIT STRING ends the DER encoding)."""
    out = bytearray(der)
    out[-17] ^= 0x5A
    return bytes(out)


def pem_wrap(der: bytes, label: str = "CERTIFICATE") -> bytes:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)).encode()


# ------------------------------------------------------------------------------------ bundles
def tiny_pdf(gen: str) -> bytes:
    """A few hundred bytes, structurally valid PDF (correct xref offsets)."""
    text = f"Installation du certificat de chiffrement SNE {gen} - document de test"
    stream = f"BT /F1 12 Tf 72 770 Td ({text}) Tj ET".encode("ascii")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _zipinfo(member: str, compress: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member, date_time=ZIP_DATE_TIME)
    info.compress_type = compress
    info.create_system = 3  # "unix", also when generated on Windows
    info.external_attr = 0o100644 << 16
    return info


def write_zip(path: str, members: Sequence[Tuple[str, bytes]], bomb: Optional[str] = None) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members:
            zf.writestr(_zipinfo(member), data)
        if bomb is not None:
            # 64 MiB of zeros, deflated while streaming: ~64 KiB on disk, never 64 MiB in memory.
            chunk = bytes(1024 * 1024)
            with zf.open(_zipinfo(bomb, zipfile.ZIP_DEFLATED), "w") as fh:
                for _chunk in range(BOMB_SIZE // len(chunk)):
                    fh.write(chunk)


@dataclass
class BundleSpec:
    members: List[Tuple[str, bytes]]
    expect: str
    leaf: Optional[str] = None  # ident of the encryption certificate in the bundle
    authority: Optional[str] = None
    note: Optional[str] = None
    expect_default: Optional[str] = None
    # With the default policy the bundle passes but the result warns about this check.
    warn_default: Optional[str] = None
    # {"generation_pattern": ..., "expect": ...}: result with the default policy plus that pattern.
    generation_pattern_cases: Optional[List[Dict[str, str]]] = None
    bomb: Optional[str] = None
    raw: Optional[bytes] = None  # the file is these bytes, not a zip we build


def official(gen: str, leaf_der: bytes, auth_der: bytes, doc: bytes) -> List[Tuple[str, bytes]]:
    """Members of an official-looking bundle for generation ``gen`` (e.g. "V5")."""
    return [
        (f"Chiffrement_SNE{gen}.cer", leaf_der),
        (f"Chiffrement-SNE{gen}.pem", pem_wrap(leaf_der)),
        (f"AC_SNE_{gen}.cer", auth_der),
        ("Installation_certificat_SNE.pdf", doc),
    ]


def garbage_der() -> bytes:
    """Random-looking, fixed bytes that start like a DER SEQUENCE but are not a certificate."""
    stream = b"".join(hashlib.sha256(b"sne.guichet garbage %d" % i).digest() for i in range(40))
    return b"\x30\x82\x04\xff" + stream[: 1024 + 256 - 4]


def _bundles(der: Dict[str, bytes], tampered: bytes, leaf_key_pem: bytes) -> Dict[str, BundleSpec]:
    docs = {g: tiny_pdf(g) for g in ("V4", "V5", "V6")}
    pdf = docs["V5"]

    def v5(leaf: bytes, auth: Optional[bytes] = None) -> List[Tuple[str, bytes]]:
        return official("V5", leaf, der["ac-v5"] if auth is None else auth, pdf)

    good = v5(der["chiffrement-v5"])
    ok = {"leaf": "chiffrement-v5", "authority": "ac-v5"}
    garbage_pem = pem_wrap(b"\x30\x82\x01\x00" + hashlib.sha512(b"not a certificate").digest() * 3)
    return {
        # ------------------------------------------------------------------------ good ones
        "good-v5": BundleSpec(good, "ok", **ok),
        "good-v5-der-only": BundleSpec(
            [good[0], good[2], good[3]], "ok", **ok),
        "good-v5-pem-only": BundleSpec(
            [good[1], ("AC-SNE-V5.pem", pem_wrap(der["ac-v5"])), good[3]], "ok", **ok),
        "good-v5-with-root": BundleSpec(
            good[:3] + [("AC_Racine_SNE.cer", der["root"]), good[3]], "ok", **ok),
        "good-v5-misnamed": BundleSpec(
            [("Chiffrement_SNEV5.cer", pem_wrap(der["chiffrement-v5"])),
             ("Chiffrement-SNEV5.pem", der["chiffrement-v5"]),
             ("AC_SNE_V5.cer", pem_wrap(der["ac-v5"])),
             good[3]],
            "ok", note="DER stored under .pem names and PEM under .cer names: content decides", **ok),
        "good-v4": BundleSpec(
            official("V4", der["chiffrement-v4"], der["ac-v4"], docs["V4"]), "ok",
            leaf="chiffrement-v4", authority="ac-v4", expect_default="retired",
            note="ok only with generation=V4 and V4 not retired"),
        "good-v6": BundleSpec(
            official("V6", der["chiffrement-v6"], der["ac-v6"], docs["V6"]), "ok",
            leaf="chiffrement-v6", authority="ac-v6", warn_default="generation",
            generation_pattern_cases=[{"generation_pattern": "Chiffrement_SNEV5(?![0-9])",
                                       "expect": "generation"}],
            note="genuine (chains to the root): with generation=V5 accepted with a warning, its CN "
                 "says V6; refused by the V5 pins (pin) or a V5 generation_pattern (generation)"),
        "good-v5-unlabelled": BundleSpec(
            v5(der["chiffrement-v5-unlabelled"]), "ok", leaf="chiffrement-v5-unlabelled",
            authority="ac-v5", warn_default="generation",
            generation_pattern_cases=[
                {"generation_pattern": "Chiffrement_SNEV5", "expect": "generation"},
                {"generation_pattern": "^CN=Chiffrement SNE,OU=SNE,", "expect": "ok"}],
            note="genuine V5 whose CN (Chiffrement SNE) does not name the generation: accepted "
                 "with a warning, refused by generation_pattern Chiffrement_SNEV5"),
        # ------------------------------------------------------------------------- bad ones
        "not-a-zip": BundleSpec([], "zip_format",
                                raw=b"<html><body>Service temporairement indisponible</body></html>\n"),
        "empty": BundleSpec([], "zip_empty"),
        "path-traversal": BundleSpec(good + [("../x", b"x\n"), ("/etc/evil", b"evil\n")], "zip_path",
                                     **ok),
        "oversized": BundleSpec(good, "zip_limits", bomb="Annexe_technique.pdf",
                                note="member of 64 MiB of zeros (deflated): compression bomb", **ok),
        "too-many-members": BundleSpec(
            good + [("annexe-%03d.txt" % i, b"%d\n" % i) for i in range(300)], "zip_limits",
            note="304 members", **ok),
        "garbage-cert": BundleSpec(
            [("Chiffrement_SNEV5.cer", garbage_der()), ("Chiffrement-SNEV5.pem", garbage_pem),
             good[2], good[3]], "parse", authority="ac-v5"),
        "private-key": BundleSpec(good + [("Chiffrement_SNEV5.key", leaf_key_pem)], "private_key", **ok),
        "two-leaves": BundleSpec(good[:3] + [("Chiffrement_SNEV6.cer", der["chiffrement-v6"]), good[3]],
                                 "leaf_count", **ok, note="second leaf: chiffrement-v6"),
        "no-leaf": BundleSpec([good[2], good[3]], "leaf_count", authority="ac-v5"),
        "v4-as-v5": BundleSpec(v5(der["chiffrement-v4"], der["ac-v4"]), "retired",
                               leaf="chiffrement-v4", authority="ac-v4"),
        "weak-key": BundleSpec(v5(der["chiffrement-v5-weak-key"]), "key_size",
                               leaf="chiffrement-v5-weak-key", authority="ac-v5"),
        "leaf-is-ca": BundleSpec(
            v5(der["chiffrement-v5-leaf-is-ca"]), "basic_constraints", leaf="chiffrement-v5-leaf-is-ca",
            authority="ac-v5",
            note="leaf has CA:TRUE + keyEncipherment: find the leaf by usage/issuance, not by CA:FALSE"),
        "wrong-key-usage": BundleSpec(v5(der["chiffrement-v5-wrong-key-usage"]), "key_usage",
                                      leaf="chiffrement-v5-wrong-key-usage", authority="ac-v5"),
        "expired": BundleSpec(v5(der["chiffrement-v5-expired"]), "validity",
                              leaf="chiffrement-v5-expired", authority="ac-v5"),
        "not-yet-valid": BundleSpec(v5(der["chiffrement-v5-not-yet-valid"]), "validity",
                                    leaf="chiffrement-v5-not-yet-valid", authority="ac-v5"),
        "wrong-authority": BundleSpec(v5(der["chiffrement-v5-impostor"], der["ac-v5-impostor"]), "chain",
                                      leaf="chiffrement-v5-impostor", authority="ac-v5-impostor",
                                      note="impostor CA has the same subject as the real AC SNE V5"),
        "tampered": BundleSpec(v5(tampered), "chain", leaf="chiffrement-v5-tampered", authority="ac-v5",
                               note="one byte of the leaf signature flipped (DER and PEM)"),
    }


# --------------------------------------------------------------------------------------- CRLs
# A private OID (the "example" arc of RFC 7229's neighbour, unassigned to anything real): the
# unknown critical extension a CRL verifier must refuse.
UNKNOWN_CRITICAL_OID = x509.ObjectIdentifier("1.3.6.1.4.1.32473.1.1")


@dataclass
class CrlSpec:
    ident: str  # file stem under crls/ and key of manifest["crls"]
    issuer: str  # ident of the certificate whose subject names the CRL's issuer
    key: str  # name of the key that signs it (the issuer's own, or not)
    number: int  # cRLNumber
    this_update: dt.datetime
    next_update: dt.datetime
    revoked: Tuple[Tuple[str, dt.datetime, x509.ReasonFlags], ...] = ()  # (certificate ident, date, reason)
    unknown_critical: bool = False
    expect: str = "ok"  # the result for the good V5 bundle given this CRL alone (see _crls)
    note: Optional[str] = None


def _crls() -> List[CrlSpec]:
    """The CRLs of the test PKI. ``expect`` is what verifying the good V5 bundle (default policy)
    with this CRL as the only one gives: a CRL of another authority is never ignored."""
    fresh, stale = utc(2040), utc(2022, 2, 1)
    since = utc(2025)
    return [
        CrlSpec("ac-v4", "ac-v4", "ac-v4", 4, since, fresh,
                revoked=(("chiffrement-v4", V4_REVOKED_AT, x509.ReasonFlags.superseded),),
                expect="crl_issuer", note="good CRL of AC SNE V4: revokes chiffrement-v4 since "
                "2016-01-07 09:00 Paris time; for the V5 certificate it is another issuer's"),
        CrlSpec("ac-v5", "ac-v5", "ac-v5", 5, since, fresh,
                revoked=(("chiffrement-v5-wrong-key-usage", utc(2025, 3, 1),
                          x509.ReasonFlags.cessation_of_operation),),
                note="good CRL of AC SNE V5: revokes another serial, not chiffrement-v5"),
        CrlSpec("ac-v5-revokes-v5", "ac-v5", "ac-v5", 6, since, fresh,
                revoked=(("chiffrement-v5", utc(2026, 3, 1), x509.ReasonFlags.key_compromise),),
                expect="revoked", note="good CRL of AC SNE V5 that revokes chiffrement-v5"),
        CrlSpec("ac-v5-expired", "ac-v5", "ac-v5", 3, utc(2022), stale, expect="crl_stale",
                note="nextUpdate 2022-02-01: expired"),
        CrlSpec("ac-v5-not-yet-valid", "ac-v5", "ac-v5", 7, utc(2039), fresh, expect="crl_stale",
                note="thisUpdate 2039-01-01: not yet valid"),
        CrlSpec("ac-v5-wrong-key", "ac-v5", "wrong-ca", 8, since, fresh,
                revoked=(("chiffrement-v5", utc(2026, 3, 1), x509.ReasonFlags.key_compromise),),
                expect="crl_signature", note="names AC SNE V5 as issuer but is signed by the impostor's "
                "key; it lists chiffrement-v5: its signature must be checked before any lookup"),
        CrlSpec("ac-v5-unknown-critical", "ac-v5", "ac-v5", 9, since, fresh, unknown_critical=True,
                expect="crl_extension", note="carries an unknown critical extension"),
        CrlSpec("ac-v6", "ac-v6", "ac-v6", 6, since, fresh, expect="crl_issuer",
                note="good CRL of AC SNE V6, another issuer"),
    ]


def make_crl(spec: CrlSpec, keys: Dict[str, rsa.RSAPrivateKey], certs: Dict[str, x509.Certificate]
             ) -> x509.CertificateRevocationList:
    issuer = certs[spec.issuer]
    key = keys[spec.key]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(spec.this_update)
        .next_update(spec.next_update)
        .add_extension(x509.CRLNumber(spec.number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    if spec.unknown_critical:
        builder = builder.add_extension(x509.UnrecognizedExtension(UNKNOWN_CRITICAL_OID, b"\x05\x00"),
                                        critical=True)
    for ident, when, reason in spec.revoked:
        entry = (x509.RevokedCertificateBuilder().serial_number(certs[ident].serial_number)
                 .revocation_date(when).add_extension(x509.CRLReason(reason), critical=False).build())
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, hashes.SHA256())


def _crl_entry(spec: CrlSpec, crl: x509.CertificateRevocationList, certs: Dict[str, x509.Certificate]
               ) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "der": "crls/%s.crl" % spec.ident,
        "pem": "crls/%s.pem" % spec.ident,
        "issuer": crl.issuer.rfc4514_string(),
        "issuer_certificate": spec.issuer,
        "signed_by": spec.key,
        "this_update": crl.last_update_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "next_update": spec.next_update.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revoked": [{"certificate": ident, "serial": certs[ident].serial_number,
                     "serial_hex": "%X" % certs[ident].serial_number,
                     "revoked_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": reason.value}
                    for ident, when, reason in spec.revoked],
        "expect": spec.expect,
        "sha256": hashlib.sha256(crl.public_bytes(serialization.Encoding.DER)).hexdigest(),
    }
    if spec.note:
        entry["note"] = spec.note
    return entry


# -------------------------------------------------------------------------------------- build
def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cert_entry(ident: str, cert: x509.Certificate, key_path: Optional[str]) -> Dict[str, Any]:
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:  # pragma: no cover - all ours have it
        bc = False
    pub = cert.public_key()
    entry: Dict[str, Any] = {
        "path": ident + ".pem",
        "der": ident + ".der",
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "cn": cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
        "sha256": openssl_fingerprint(der),
        "serial": cert.serial_number,
        "serial_hex": f"{cert.serial_number:X}",  # as `openssl x509 -serial` prints it
        "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "is_ca": bc,
        "key_size": pub.key_size if isinstance(pub, rsa.RSAPublicKey) else None,
        "key": key_path,
    }
    return entry


def build(outdir: str, keys_dir: Optional[str] = None) -> Dict[str, Any]:
    """Write the test PKI and bundles into ``outdir``; return (and write) the manifest.

    ``keys_dir`` (default ``outdir/keys``): the keys it lacks are generated there first."""
    os.makedirs(os.path.join(outdir, "bundles"), exist_ok=True)
    keys_dir = keys_dir or os.path.join(outdir, "keys")
    new_keys(keys_dir, missing_only=True)
    keys = load_keys(keys_dir)
    specs = {s.ident: s for s in _specs()}
    key_of = {ident: s.key for ident, s in specs.items()}
    certs: Dict[str, x509.Certificate] = {}
    for spec in specs.values():  # issuers come before what they issue
        certs[spec.ident] = make_cert(spec, keys, key_of, certs)
    der = {ident: c.public_bytes(serialization.Encoding.DER) for ident, c in certs.items()}
    der["chiffrement-v5-tampered"] = tampered = tamper(der["chiffrement-v5"])
    certs["chiffrement-v5-tampered"] = x509.load_der_x509_certificate(tampered)

    manifest_certs: Dict[str, Any] = {}
    for ident, cert in certs.items():
        key_path = None
        spec = specs.get(ident)
        if spec is not None and spec.export_key:
            key_path = ident + ".key"
            _write(os.path.join(outdir, key_path), key_pem(keys[spec.key]))
        _write(os.path.join(outdir, ident + ".der"), der[ident])
        _write(os.path.join(outdir, ident + ".pem"), pem_wrap(der[ident]))
        manifest_certs[ident] = _cert_entry(ident, cert, key_path)
    manifest_certs["chiffrement-v5-tampered"]["note"] = "signature corrupted: fails chain verification"

    manifest_bundles: Dict[str, Any] = {}
    for bname, b in _bundles(der, tampered, key_pem(keys["leaf-v5"])).items():
        rel = f"bundles/{bname}.zip"
        path = os.path.join(outdir, rel)
        if b.raw is not None:
            _write(path, b.raw)
        else:
            write_zip(path, b.members, bomb=b.bomb)
        entry: Dict[str, Any] = {
            "file": rel,
            "sha256": _sha256_file(path),
            "expect": b.expect,
            "leaf": b.leaf,
            "authority": b.authority,
            "members": [m[0] for m in b.members] + ([b.bomb] if b.bomb else []),
        }
        for opt in ("note", "expect_default", "warn_default", "generation_pattern_cases"):
            if getattr(b, opt) is not None:
                entry[opt] = getattr(b, opt)
        manifest_bundles[bname] = entry

    os.makedirs(os.path.join(outdir, "crls"), exist_ok=True)
    manifest_crls: Dict[str, Any] = {}
    for crl_spec in _crls():
        crl = make_crl(crl_spec, keys, certs)
        crl_der = crl.public_bytes(serialization.Encoding.DER)
        _write(os.path.join(outdir, "crls", crl_spec.ident + ".crl"), crl_der)
        _write(os.path.join(outdir, "crls", crl_spec.ident + ".pem"), pem_wrap(crl_der, "X509 CRL"))
        manifest_crls[crl_spec.ident] = _crl_entry(crl_spec, crl, certs)
    # Named like a CRL, holds none (DER-looking garbage; a PEM block of garbage).
    _write(os.path.join(outdir, "crls", "garbage.crl"), garbage_der())
    _write(os.path.join(outdir, "crls", "garbage.pem"),
           pem_wrap(hashlib.sha512(b"not a CRL").digest() * 4, "X509 CRL"))
    manifest_crls["garbage"] = {"der": "crls/garbage.crl", "pem": "crls/garbage.pem", "expect": "crl_parse",
                                "revoked": [], "note": "not a CRL, DER-looking bytes and a PEM block"}

    manifest: Dict[str, Any] = {
        "schema": 1,
        "generator": "sne.guichet simulate role: files/make_pki.py",
        "verifier_defaults": {
            "trust_anchors": ["root"],
            "generation": "V5",
            "retired_sha256": [manifest_certs["chiffrement-v4"]["sha256"], manifest_certs["ac-v4"]["sha256"]],
            "valid_at": VALID_AT,
        },
        "check_order": CHECK_ORDER,
        "certificates": manifest_certs,
        "bundles": manifest_bundles,
        "crls": manifest_crls,
        "crl_distribution_point": CRL_DISTRIBUTION_POINT,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    _write(os.path.join(outdir, "manifest.json"), text.encode("utf-8"))
    return json.loads(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", help="folder to write the PKI, bundles and manifest.json into")
    parser.add_argument("--keys", help="keys folder (default OUTDIR/keys; missing keys are generated there)")
    parser.add_argument("--new-keys", action="store_true", help="generate every key of the --keys folder")
    parser.add_argument("--force", action="store_true", help="with --new-keys: overwrite existing keys")
    args = parser.parse_args(argv)
    if args.new_keys:
        if not args.keys:
            parser.error("--new-keys needs --keys DIR")
        for path in new_keys(args.keys, force=args.force):
            print("wrote", path)
    if args.outdir:
        manifest = build(args.outdir, args.keys)
        print(f"{len(manifest['certificates'])} certificates, {len(manifest['bundles'])} bundles"
              f" -> {os.path.join(args.outdir, 'manifest.json')}")
    elif not args.new_keys:
        parser.error("OUTDIR or --new-keys required")
    return 0


if __name__ == "__main__":
    sys.exit(main())
