# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_certs against cryptography's parser and the real ``openssl x509``."""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.sne.guichet.plugins.module_utils import _asn1
from ansible_collections.sne.guichet.plugins.module_utils import _x509 as _certs
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")

UTC = datetime.timezone.utc
NA = x509.NameAttribute


def _rdn(*attrs):
    return x509.RelativeDistinguishedName(list(attrs))


def _name(*rdns):
    return x509.Name([r if isinstance(r, x509.RelativeDistinguishedName) else _rdn(r)
                      for r in rdns])


SNE_O = NA(NameOID.ORGANIZATION_NAME, "Ministere du Logement")

# Varied subjects: string types, case, whitespace, multi-valued RDNs, non-ASCII,
# attributes printed by dotted OID, empty name.
SUBJECTS = [
    _name(NA(NameOID.COUNTRY_NAME, "FR"), SNE_O, NA(NameOID.COMMON_NAME, "Chiffrement_SNEV5")),
    _name(NA(NameOID.COUNTRY_NAME, "FR"), SNE_O, NA(NameOID.COMMON_NAME, "Chiffrement_SNEV4")),
    _name(NA(NameOID.COMMON_NAME, "AC SNE Racine")),
    _name(NA(NameOID.COMMON_NAME, "UPPER lower MiXeD")),
    _name(NA(NameOID.COMMON_NAME, "upper lower mixed")),
    _name(NA(NameOID.COMMON_NAME, "  leading and trailing  ")),
    _name(NA(NameOID.COMMON_NAME, "many     internal\t\tspaces \n here")),
    _name(NA(NameOID.COMMON_NAME, "Préfecture Île-de-France ÉTÉ")),
    _name(NA(NameOID.COMMON_NAME, "日本語 の 名前")),
    _name(NA(NameOID.COMMON_NAME, "emoji 🙂 Name")),
    _name(NA(NameOID.COMMON_NAME, "Printable Name", _ASN1Type.PrintableString)),
    _name(NA(NameOID.COMMON_NAME, "IA5 Name", _ASN1Type.IA5String)),
    _name(NA(NameOID.COMMON_NAME, "Visible  NAME ", _ASN1Type.VisibleString)),
    _name(NA(NameOID.COMMON_NAME, "T61 Name", _ASN1Type.T61String)),
    _name(NA(NameOID.COMMON_NAME, "T61 Latin é", _ASN1Type.T61String)),
    _name(NA(NameOID.COMMON_NAME, "BMP Name É", _ASN1Type.BMPString)),
    _name(NA(NameOID.COMMON_NAME, "Universal NAME ü", _ASN1Type.UniversalString)),
    _name(NA(NameOID.SERIAL_NUMBER, "00123 456", _ASN1Type.NumericString)),
    _name(NA(NameOID.SERIAL_NUMBER, "SN-ABC-001")),
    _name(NA(NameOID.EMAIL_ADDRESS, "Admin@Example.FR"), NA(NameOID.COMMON_NAME, "mail")),
    _name(NA(NameOID.DOMAIN_COMPONENT, "fr"), NA(NameOID.DOMAIN_COMPONENT, "Gouv"),
          NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "SNE"), NA(NameOID.COMMON_NAME, "dc style")),
    _name(NA(NameOID.COUNTRY_NAME, "FR"), NA(NameOID.STATE_OR_PROVINCE_NAME, "Ile de France"),
          NA(NameOID.LOCALITY_NAME, "Paris"), NA(NameOID.ORGANIZATION_NAME, "Bailleur"),
          NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "DSI"),
          NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "Exploitation"),
          NA(NameOID.COMMON_NAME, "guichet.example.fr")),
    _name(_rdn(NA(NameOID.COMMON_NAME, "multi"), NA(NameOID.ORGANIZATION_NAME, "Valued"))),
    # Multi-valued RDN whose order changes after canonicalisation (types differ).
    _name(_rdn(NA(NameOID.COMMON_NAME, "B second", _ASN1Type.PrintableString),
               NA(NameOID.COMMON_NAME, "a first", _ASN1Type.UTF8String))),
    _name(_rdn(NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "Zeta"),
               NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "alpha"),
               NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "Mu"))),
    _name(NA(NameOID.COUNTRY_NAME, "FR"),
          _rdn(NA(NameOID.ORGANIZATION_NAME, "O1"), NA(NameOID.ORGANIZATIONAL_UNIT_NAME, "U1")),
          NA(NameOID.COMMON_NAME, "after multi")),
    _name(NA(NameOID.COMMON_NAME, "special ,+\"\\<>;= chars")),
    _name(NA(NameOID.COMMON_NAME, "#starts with hash")),
    _name(NA(NameOID.COMMON_NAME, " ")),
    _name(NA(NameOID.STREET_ADDRESS, "1 Rue de la Paix"), NA(NameOID.USER_ID, "uid42"),
          NA(NameOID.COMMON_NAME, "street")),
    _name(NA(ObjectIdentifier("1.3.6.1.4.1.99999.1"), "private OID"),
          NA(NameOID.COMMON_NAME, "custom")),
    _name(NA(NameOID.COMMON_NAME, "x" * 64)),
    _name(NA(NameOID.ORGANIZATION_NAME, "o" * 200)),
    _name(NA(NameOID.GIVEN_NAME, "Jean"), NA(NameOID.SURNAME, "DUPONT"),
          NA(NameOID.TITLE, "Agent")),
    _name(NA(NameOID.COMMON_NAME, "tab\tinside", _ASN1Type.IA5String)),
    _name(),
]

KEY_USAGES = [
    None,
    dict(digital_signature=True, key_encipherment=True),
    dict(key_encipherment=True),
    dict(key_cert_sign=True, crl_sign=True),
    dict(content_commitment=True, data_encipherment=True),
    dict(key_agreement=True, encipher_only=True),
    dict(key_agreement=True, decipher_only=True),
    dict(digital_signature=True, content_commitment=True, key_encipherment=True,
         data_encipherment=True, key_agreement=True, key_cert_sign=True, crl_sign=True,
         encipher_only=False, decipher_only=True),
]
KU_FIELDS = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
             "encipher_only", "decipher_only")


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(key, subject, issuer=None, serial=1, ca=None, key_usage=None,
              not_before=datetime.datetime(2026, 1, 7, 9, 0, tzinfo=UTC),
              not_after=datetime.datetime(2031, 1, 7, 9, 0, tzinfo=UTC)):
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer if issuer is not None else subject)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(not_before).not_valid_after(not_after))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None),
                                        critical=True)
    if key_usage is not None:
        builder = builder.add_extension(
            x509.KeyUsage(**{f: key_usage.get(f, False) for f in KU_FIELDS}), critical=True)
    return builder.sign(key, hashes.SHA256())


def der_of(cert):
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def subject_certs(key):
    issuer = SUBJECTS[2]
    return [make_cert(key, subject, issuer=issuer, serial=1000 + i,
                      ca=(None, True, False)[i % 3], key_usage=KEY_USAGES[i % len(KEY_USAGES)])
            for i, subject in enumerate(SUBJECTS)]


def openssl(args, data):
    return subprocess.run([OPENSSL] + args, input=data, capture_output=True, check=True).stdout


def expected_info(cert):
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        usages = []
        for field in KU_FIELDS:
            try:
                if getattr(ku, field):
                    usages.append(field)
            except ValueError:  # encipher_only/decipher_only without key_agreement
                pass
    except x509.ExtensionNotFound:
        usages = []
    serial = "%X" % cert.serial_number
    if len(serial) % 2:
        serial = "0" + serial
    return {
        "sha256": sha256_fingerprint(der_of(cert)),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": serial,
        "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "is_ca": is_ca,
        "key_usage": usages,
    }


def test_enough_subjects():
    assert len(SUBJECTS) >= 30


def test_cert_info_matches_cryptography(subject_certs):
    for cert in subject_certs:
        info = _certs.cert_info(der_of(cert))
        want = expected_info(cert)
        got = {k: info[k] for k in want}
        assert got == want, cert.subject


@needs_openssl
def test_subject_hash_matches_openssl(subject_certs):
    mismatches = []
    unreadable = []
    compared = 0
    for cert in subject_certs:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        done = subprocess.run([OPENSSL, "x509", "-hash", "-noout"], input=pem,
                              capture_output=True, check=False)
        if done.returncode:
            # OpenSSL's name entry type (B_ASN1_PRINTABLE) has no VisibleString: such a
            # certificate cannot be loaded by OpenSSL at all, so has no -CApath hash.
            unreadable.append(cert.subject.rfc4514_string())
            continue
        want = done.stdout.decode().strip()
        compared += 1
        der = der_of(cert)
        got = _certs.subject_hash(der)
        assert _certs.cert_info(der)["subject_hash"] == got
        if got != want:
            mismatches.append((cert.subject.rfc4514_string(), got, want))
    assert mismatches == []
    assert unreadable == ["CN=Visible  NAME\\ "]
    assert compared >= 30


@needs_openssl
def test_subject_hash_same_name_different_spelling(key):
    """Case/whitespace variants share OpenSSL's hash; the lookup relies on it."""
    a = make_cert(key, _name(NA(NameOID.COMMON_NAME, "Chiffrement  SNE")))
    b = make_cert(key, _name(NA(NameOID.COMMON_NAME, " chiffrement sne",
                                _ASN1Type.PrintableString)))
    assert _certs.subject_hash(der_of(a)) == _certs.subject_hash(der_of(b))
    assert _certs.cert_info(der_of(a))["subject"] != _certs.cert_info(der_of(b))["subject"]


@needs_openssl
@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFF, 0x100, 0x0123, 0xDEADBEEF,
                                    2 ** 159 - 1, 0x00FF00FF00FF00FF00FF])
def test_serial_like_openssl(key, serial):
    cert = make_cert(key, SUBJECTS[0], serial=serial)
    want = openssl(["x509", "-serial", "-noout"], cert.public_bytes(serialization.Encoding.PEM))
    assert "serial=" + _certs.cert_info(der_of(cert))["serial"] == want.decode().strip()


@needs_openssl
def test_negative_serial_like_openssl(key):
    der = der_of(make_cert(key, SUBJECTS[0], serial=1))
    patched = der.replace(b"\x02\x01\x01\x30", b"\x02\x01\xfe\x30", 1)  # serial := -2
    assert patched != der
    want = openssl(["x509", "-inform", "DER", "-serial", "-noout"], patched).decode().strip()
    assert "serial=" + _certs.cert_info(patched)["serial"] == want == "serial=-02"


@pytest.mark.parametrize("when", [
    (datetime.datetime(1999, 12, 31, 23, 59, 59), datetime.datetime(2049, 12, 31, 23, 59, 59)),
    (datetime.datetime(1950, 1, 1), datetime.datetime(2050, 1, 1)),
    (datetime.datetime(2026, 1, 7, 9, 0), datetime.datetime(9999, 12, 31, 23, 59, 59)),
])
def test_times_utc_and_generalized(key, when):
    nb, na = (w.replace(tzinfo=UTC) for w in when)
    info = _certs.cert_info(der_of(make_cert(key, SUBJECTS[0], not_before=nb, not_after=na)))
    assert info["not_before"] == nb.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["not_after"] == na.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_sne_like_certificate(key):
    cert = make_cert(key, SUBJECTS[0], issuer=SUBJECTS[2], ca=False,
                     key_usage=dict(key_encipherment=True))
    info = _certs.cert_info(der_of(cert))
    assert info["subject"] == "CN=Chiffrement_SNEV5,O=Ministere du Logement,C=FR"
    assert info["issuer"] == "CN=AC SNE Racine"
    assert info["not_before"] == "2026-01-07T09:00:00Z"
    assert info["is_ca"] is False
    assert info["key_usage"] == ["key_encipherment"]
    assert info["version"] == 3
    assert info["self_issued"] is False


def test_email_and_serialnumber_printed_as_cryptography_does(key):
    cert = make_cert(key, _name(NA(NameOID.SERIAL_NUMBER, "42"),
                                NA(NameOID.EMAIL_ADDRESS, "a@b.fr"),
                                NA(NameOID.COMMON_NAME, "x")))
    assert _certs.cert_info(der_of(cert))["subject"] == \
        "CN=x,1.2.840.113549.1.9.1=a@b.fr,2.5.4.5=42"


@needs_openssl
def test_version1_certificate(tmp_path):
    """openssl x509 -req without extensions makes a v1 certificate: no basicConstraints."""
    key_file = tmp_path / "k.pem"
    subprocess.run([OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key_file),
                    "-subj", "/CN=Old V1 Root/O=Legacy", "-out", str(tmp_path / "r.csr")],
                   check=True, capture_output=True)
    subprocess.run([OPENSSL, "x509", "-req", "-in", str(tmp_path / "r.csr"), "-signkey",
                    str(key_file), "-days", "10", "-outform", "DER", "-out",
                    str(tmp_path / "c.der"), "-set_serial", "5"], check=True, capture_output=True)
    der = (tmp_path / "c.der").read_bytes()
    info = _certs.cert_info(der)
    parsed = x509.load_der_x509_certificate(der)
    assert info["version"] == parsed.version.value + 1 == 1
    assert info["is_ca"] is False and info["key_usage"] == []
    assert info["self_issued"] is True
    assert info["subject"] == parsed.subject.rfc4514_string() == "O=Legacy,CN=Old V1 Root"
    want = openssl(["x509", "-inform", "DER", "-hash", "-noout"], der).decode().strip()
    assert _certs.subject_hash(der) == want


# ----------------------------------------------------------------------------- PEM


def test_der_to_pem_matches_cryptography(subject_certs):
    for cert in subject_certs[:5]:
        assert _certs.der_to_pem(der_of(cert)) == cert.public_bytes(serialization.Encoding.PEM)


def test_pem_blocks_offsets_and_other_blocks(subject_certs):
    a, b = (c.public_bytes(serialization.Encoding.PEM) for c in subject_certs[:2])
    key_block = (b"-----BEGIN EC PRIVATE KEY-----\n" + base64.encodebytes(b"k" * 40)
                 + b"-----END EC PRIVATE KEY-----")
    legacy = (b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
              b"DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n"
              + base64.encodebytes(b"z" * 48) + b"-----END RSA PRIVATE KEY-----\n")
    text = b"# bundle\r\nsubject=CN=a\n" + a + b"\n" + key_block + b"\n" + legacy + b
    blocks = _certs.pem_blocks(text)
    assert [blk[0] for blk in blocks] == ["CERTIFICATE", "EC PRIVATE KEY", "RSA PRIVATE KEY",
                                          "CERTIFICATE"]
    assert blocks[0][1] == der_of(subject_certs[0])
    assert blocks[1][1] == b"k" * 40
    assert blocks[2][1] == b"z" * 48
    for _label, _der, start, end in blocks:
        assert text[start:start + 11] == b"-----BEGIN "
        assert text[end - 5:end] == b"-----"
    assert text[blocks[0][2]:blocks[0][3]] + b"\n" == a
    assert _certs.load_certificates(text) == [der_of(subject_certs[0]), der_of(subject_certs[1])]
    assert _certs.looks_like_pem(text)
    assert not _certs.looks_like_pem(der_of(subject_certs[0]))


@needs_openssl
def test_trusted_certificate_block(subject_certs):
    pem = subject_certs[0].public_bytes(serialization.Encoding.PEM)
    trusted = openssl(["x509", "-trustout", "-addtrust", "emailProtection"], pem)
    assert b"BEGIN TRUSTED CERTIFICATE" in trusted
    assert _certs.load_certificates(trusted) == [der_of(subject_certs[0])]


def test_load_certificates_der_and_concatenated(subject_certs):
    a, b = der_of(subject_certs[0]), der_of(subject_certs[1])
    assert _certs.load_certificates(a) == [a]
    assert _certs.load_certificates(a + b) == [a, b]
    assert _certs.load_certificates(b"# comment\n"
                                    + _certs.der_to_pem(a)) == [a]


@pytest.mark.parametrize("text, message", [
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n", "no END"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n", "ends with END"),
    (b"-----BEGIN CERTIFICATE-----\nA*AA\n-----END CERTIFICATE-----\n", "base64"),
    (b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n", "base64"),
    (b"x\n-----END CERTIFICATE-----\n", "without BEGIN"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\nAAAA\n"
     b"-----END CERTIFICATE-----\n", "not closed"),
])
def test_pem_errors(text, message):
    with pytest.raises(ValueError, match=message):
        _certs.pem_blocks(text)


def test_pem_certificate_with_garbage_der():
    text = _certs.der_to_pem(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError):
        _certs.load_certificates(text)


# ----------------------------------------------------------------------------- strict DER


@pytest.fixture(scope="module")
def sample_der(subject_certs):
    return der_of(subject_certs[0])


def test_malformed_der(sample_der):
    der = sample_der
    body_len = int.from_bytes(der[2:4], "big")
    assert der[1] == 0x82 and body_len + 4 == len(der)
    cases = {
        "empty": b"",
        "truncated": der[:-1],
        "trailing": der + b"\x00",
        "indefinite": b"\x30\x80" + der[4:] + b"\x00\x00",
        "non-minimal length": b"\x30\x83\x00" + der[2:],
        "not a sequence": b"\x04" + der[1:],
        "random": os.urandom(64),
        "inner truncated": der[:4] + der[4:40],
    }
    for what, data in cases.items():
        with pytest.raises(ValueError):
            _certs.cert_info(data)
        with pytest.raises(ValueError):
            _certs.subject_hash(data)
        if what != "empty":
            with pytest.raises(ValueError):
                _certs.load_certificates(data)


def test_not_bytes():
    with pytest.raises(ValueError):
        _certs.cert_info("text")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutations_raise_only_value_error(data):
    """Flipped, cut or inserted bytes: parsed or ValueError, never anything else."""
    base = _MUTATION_BASE
    op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    pos = data.draw(st.integers(0, len(base) - 1))
    if op == "flip":
        blob = base[:pos] + bytes([base[pos] ^ data.draw(st.integers(1, 255))]) + base[pos + 1:]
    elif op == "cut":
        blob = base[:pos] + base[pos + data.draw(st.integers(1, 8)):]
    else:
        blob = base[:pos] + data.draw(st.binary(min_size=1, max_size=4)) + base[pos:]
    try:
        _certs.cert_info(blob)
        _certs.subject_hash(blob)
    except ValueError:
        pass


def _make_mutation_base():
    k = ec.generate_private_key(ec.SECP256R1())
    cert = make_cert(k, SUBJECTS[25], issuer=SUBJECTS[7], ca=True,
                     key_usage=dict(key_cert_sign=True, crl_sign=True))
    return der_of(cert)


_MUTATION_BASE = _make_mutation_base()


@needs_openssl
def test_bmp_surrogates_readable_but_no_openssl_hash(key):
    """OpenSSL refuses a BMPString with surrogate pairs (no hash); cryptography reads it."""
    cert = make_cert(key, _name(NA(NameOID.COMMON_NAME, "emoji 🙂", _ASN1Type.BMPString)))
    der = der_of(cert)
    info = _certs.cert_info(der)
    assert info["subject"] == cert.subject.rfc4514_string() == "CN=emoji 🙂"
    assert info["subject_hash"] is None and info["self_issued"] is True
    with pytest.raises(ValueError):
        _certs.subject_hash(der)
    done = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-hash", "-noout"], input=der,
                          capture_output=True, check=False)
    assert done.returncode != 0


@pytest.mark.parametrize("tag, text, want", [
    (0x17, b"260107090000Z", "2026-01-07T09:00:00Z"),
    (0x17, b"2601070900Z", "2026-01-07T09:00:00Z"),
    (0x17, b"260107100000+0100", "2026-01-07T09:00:00Z"),
    (0x17, b"991231230000-0130", "2000-01-01T00:30:00Z"),
    (0x18, b"20260107090000Z", "2026-01-07T09:00:00Z"),
    (0x18, b"20260107090000.123Z", "2026-01-07T09:00:00Z"),
    (0x18, b"99991231235959Z", "9999-12-31T23:59:59Z"),
])
def test_time_forms(tag, text, want):
    assert _asn1.read(bytes([tag, len(text)]) + text).time("t") == want


@pytest.mark.parametrize("tag, text", [
    (0x17, b"261307090000Z"), (0x17, b"2601070900"), (0x18, b"2026010709Z"),
    (0x17, b"26010709000\xffZ"), (0x02, b"260107090000Z"), (0x18, b"20260230090000Z"),
])
def test_time_invalid(tag, text):
    with pytest.raises(ValueError):
        _asn1.read(bytes([tag, len(text)]) + text).time("t")
