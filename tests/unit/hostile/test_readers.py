"""Every reader of the collection on hostile bytes: a return or a named error, nothing else.

The readers: ``_formats/detect`` (classify, detect), ``_formats/keystore.open_keystore``,
``_formats/jks.parse``, ``_formats/pkcs12`` (outline, MAC, bags), ``_x509`` (load_certificates,
cert_info, subject_hash), ``_probe/envelope`` (inspect_envelope, check_envelope,
issuer_and_serial), ``_formats/cms.read_envelope`` (DER, PEM, S/MIME) and the bundle intake
(``read_zip``, ``parse_members``, ``verify_bundle``).
Allowed outcomes: a return, or an ``SneError`` (``_common/errors.py``); the certificate reader
documents ValueError as well. IndexError, struct.error, RecursionError, MemoryError,
UnicodeDecodeError, a hang (``corpus.bounded``) are bugs.

Each test runs twice: ``[default]`` with a few hundred derandomized examples (the test
command), ``[fuzz]`` with many more, random, under ``scripts/test.sh fuzz``. The examples the
fuzzing found, and the crafted files it could not reach, are regression tests at the end.
"""

from __future__ import annotations

import base64
import datetime
import os
import struct

import pytest
from hostile import corpus, grammar
from hypothesis import strategies as st
from javatools import PASSWORD

from ansible_collections.sne.guichet.plugins.module_utils import _asn1, _x509
from ansible_collections.sne.guichet.plugins.module_utils._bundle import intake
from ansible_collections.sne.guichet.plugins.module_utils._bundle.policy import Policy, verify_bundle
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNSUPPORTED,
    BundleError,
    EnvelopeError,
    Malformed,
    SneError,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._formats import cms, detect, jks, keystore, pkcs12
from ansible_collections.sne.guichet.plugins.module_utils._probe import envelope

# (default run, fuzz stage) examples per target.
EXAMPLES = {
    "detect": (1000, 50000),
    "open_keystore": (800, 30000),
    "jks": (1000, 50000),
    "pkcs12": (500, 20000),
    "x509": (1000, 50000),
    "envelope": (800, 40000),
    "cms": (800, 40000),
    "bundle": (500, 20000),
}
MODES = corpus.MODES
KEYSTORES = ("jks", "jceks", "p12_keys", "p12_trust", "p12_clear")
VALID_AT = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def fuzz(mode, name, target, strategy):
    corpus.explore(mode, name, EXAMPLES[name], strategy, target)


# ----------------------------------------------------------------------------- targets


def detect_target(data):
    kind = detect.classify(data[:detect.HEAD_SIZE])
    assert kind in (None, detect.TEXT, detect.DER, detect.JKS, detect.JCEKS, detect.PKCS12)
    assert detect.detect(data) in (None, detect.TEXT, detect.PEM, detect.DER, detect.JKS,
                                   detect.JCEKS, detect.PKCS12)


@pytest.mark.parametrize("mode", MODES)
def test_detect(seeds, mode):
    fuzz(mode, "detect", detect_target, corpus.any_of(seeds, seeds))


def open_keystore_target(example):
    data, fmt = example
    try:
        opened = keystore.open_keystore("/nonexistent/store", data, [PASSWORD, "wrong"], fmt)
    except StoreError:
        return
    for cert in opened.certificates:
        assert isinstance(cert.der, bytes)
    assert opened.problem is None or isinstance(opened.problem, StoreError)


@pytest.mark.parametrize("mode", MODES)
def test_open_keystore(seeds, mode):
    """No keytool here (``find_tool`` None): what is not readable in Python is a problem."""
    strategy = st.tuples(corpus.any_of(seeds, KEYSTORES), st.sampled_from((None, "jks", "jceks", "pkcs12")))
    fuzz(mode, "open_keystore", open_keystore_target, strategy)


def jks_target(data):
    for password in (None, PASSWORD):
        try:
            store = jks.parse(data, password)
        except StoreError:
            continue
        for entry in store.entries:
            assert isinstance(entry.raw, bytes) and isinstance(entry.alias, str)


@pytest.mark.parametrize("mode", MODES)
def test_jks_parse(seeds, mode):
    fuzz(mode, "jks", jks_target, corpus.any_of(seeds, ("jks", "jceks")))


def pkcs12_target(data):
    try:
        info = pkcs12.outline(data)
    except StoreError:
        return
    for password in (PASSWORD, ""):
        assert pkcs12.mac_matches(info, password) in (True, False, None)
        bags = pkcs12.open_bags(info, password)
        if bags is not None:
            pkcs12.certificate_bags(bags)
            for bag in bags:
                assert bag.friendly_name is None or isinstance(bag.friendly_name, str)
                assert isinstance(bag.trusted, bool)


@pytest.mark.parametrize("mode", MODES)
def test_pkcs12_outline(seeds, mode):
    fuzz(mode, "pkcs12", pkcs12_target, corpus.any_of(seeds, ("p12_keys", "p12_trust", "p12_clear")))


def x509_target(data):
    try:
        ders = _x509.load_certificates(data)
    except ValueError as exc:  # the documented error of the certificate reader
        assert corpus.documented_value_error(exc) or isinstance(exc, SneError), repr(exc)
        return
    for der in ders:
        try:
            info = _x509.cert_info(der)
            assert info["subject_hash"] is None or info["subject_hash"] == _x509.subject_hash(der)
        except ValueError as exc:
            assert corpus.documented_value_error(exc) or isinstance(exc, SneError), repr(exc)


@pytest.mark.parametrize("mode", MODES)
def test_x509(seeds, mode):
    fuzz(mode, "x509", x509_target, st.one_of(corpus.hostile(seeds["der"]), corpus.hostile_pem(seeds)))


@pytest.mark.parametrize("mode", MODES)
def test_envelope(seeds, mode):
    leaf = seeds["der"].data

    def envelope_target(example):
        cms, cert = example
        for call in (lambda: envelope.inspect_envelope(cms), lambda: envelope.check_envelope(cms, leaf),
                     lambda: envelope.issuer_and_serial(cert)):
            try:
                call()
            except EnvelopeError:
                pass

    strategy = st.tuples(corpus.hostile(seeds["cms"]), corpus.hostile(seeds["der"]))
    fuzz(mode, "envelope", envelope_target, strategy)


_SMIME_HEAD = (b"MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data;"
               b" name=smime.p7m\nContent-Transfer-Encoding: base64\n\n")


@pytest.mark.parametrize("mode", MODES)
def test_cms(seeds, mode):
    """The outbox's reader: None, an Envelope or Malformed, the broken envelope in each form."""

    def cms_target(example):
        data, form = example
        if form == "pem":
            data = _x509.der_to_pem(data, "CMS")
        elif form == "smime":
            data = _SMIME_HEAD + base64.encodebytes(data)
        try:
            cms.read_envelope(data)
        except Malformed as exc:
            assert exc.code == CORRUPT

    strategy = st.tuples(corpus.hostile(seeds["cms"]), st.sampled_from(["der", "pem", "smime"]))
    fuzz(mode, "cms", cms_target, strategy)


@pytest.mark.parametrize("mode", MODES)
def test_bundle(seeds, pki, mode):
    with open(os.path.join(pki["dir"], "root.pem"), "rb") as handle:
        policy = Policy(trust_anchors=[handle.read()], generation="V5", valid_at=VALID_AT)

    def bundle_target(data):
        try:
            intake.parse_members(intake.read_zip(data, intake.Limits()))
        except BundleError:
            pass
        try:
            verify_bundle(data, policy)
        except BundleError:
            pass

    fuzz(mode, "bundle", bundle_target, corpus.hostile_zip(seeds))


# ----------------------------------------------------------------------------- found


def test_a_huge_oid_arc_is_garbled_not_a_conversion_error():
    """Found: an OID arc of 3,000 octets made str() fail with Python's 4,300-digit limit, a
    bare ValueError out of pkcs12.outline, detect and open_keystore (the scan crashed)."""
    pfx = _asn1.encode(0x30, b"\x02\x01\x03" + _asn1.encode(0x30, corpus._huge_oid(3000) + _asn1.encode(
        0xA0, _asn1.encode(0x04, b"x"))))
    with pytest.raises(StoreError) as caught:
        pkcs12.outline(pfx)
    assert caught.value.code == CORRUPT and "OID arc of more than" in caught.value.reason
    assert detect.detect(pfx) == detect.PKCS12  # a damaged PKCS#12 file is still one
    with pytest.raises(StoreError):
        keystore.open_keystore("/x", pfx, [PASSWORD])
    with pytest.raises(EnvelopeError, match="OID arc"):
        envelope.inspect_envelope(_asn1.encode(0x30, corpus._huge_oid(3000)))
    node = _asn1.read(_asn1.encode(_asn1.OID, b"\x2a" + b"\xff" * 18 + b"\x01"))
    assert node.oid().startswith("1.2.")  # 133 bits: still an arc (UUIDs under 2.25 are 128)


def test_a_huge_certificate_version_is_a_plain_value_error():
    """Found by reading: a version INTEGER of 2,000 bytes made the message's %d fail with
    Python's 4,300-digit limit (still a ValueError, but one that says nothing)."""
    tbs = _asn1.encode(0x30, _asn1.encode(0xA0, _asn1.encode(0x02, b"\x01" * 2000)) + b"\x02\x01\x01" * 6)
    cert = _asn1.encode(0x30, tbs + _asn1.encode(0x30, b"") + _asn1.encode(0x03, b"\x00"))
    with pytest.raises(ValueError) as caught:
        _x509.cert_info(cert)
    assert corpus.documented_value_error(caught.value)
    assert str(caught.value) == "version: unsupported value too large to print"


def _jceks(stream):
    """A JCEKS file whose one secret key entry is ``stream`` (integrity digest right)."""
    body = struct.pack(">III", 0xCECECECE, 2, 1) + struct.pack(">I", jks.TAG_SECRET_KEY)
    body += jks.write_utf("s") + b"\0" * 8 + stream
    return body + jks._integrity_digest(PASSWORD, body)


def test_a_class_that_is_its_own_superclass_is_garbled_not_a_loop():
    """Found: a JCEKS secret key whose class descriptor names itself (a back reference) as its
    superclass made the serialization skipper loop forever, growing a list (memory)."""
    stream = (b"\xac\xed\x00\x05\x73\x72" + jks.write_utf("A") + b"\0" * 8 + b"\x02\x00\x00"
              + b"\x78" + b"\x71\x00\x7e\x00\x00")
    with corpus.bounded(30):
        with pytest.raises(StoreError) as caught:
            jks.parse(_jceks(stream), PASSWORD)
    assert caught.value.code == CORRUPT and "its own superclass" in caught.value.reason


def test_a_zip_of_a_newer_version_is_zip_format(seeds):
    """Found: a 'version needed' field above 6.3 made zipfile raise NotImplementedError."""
    data = bytearray(seeds["zip"].data)
    central = data.find(b"PK\x01\x02")
    data[central + 6:central + 8] = struct.pack("<H", 255)
    with pytest.raises(BundleError) as caught:
        intake.read_zip(bytes(data), intake.Limits())
    assert caught.value.check == "zip_format"


def test_a_member_with_an_empty_name_is_zip_path(seeds):
    """Found: an empty member name made ZipInfo.is_dir raise IndexError."""
    data = bytearray(seeds["zip"].data)
    central = data.find(b"PK\x01\x02")
    name_length = struct.unpack("<H", data[central + 28:central + 30])[0]
    extra_comment = 46 + name_length
    data[central + 28:central + 30] = b"\0\0"
    del data[central + 46:central + extra_comment]
    end = data.find(b"PK\x05\x06")
    size = struct.unpack("<I", data[end + 12:end + 16])[0]
    data[end + 12:end + 16] = struct.pack("<I", size - name_length)
    with pytest.raises(BundleError) as caught:
        intake.read_zip(bytes(data), intake.Limits())
    assert caught.value.check == "zip_path" and "empty name" in caught.value.msg


def test_damaged_deflate_data_is_zip_format():
    """Found: deflated data that does not inflate made zipfile raise zlib.error."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"hello hostile world " * 20)
    data = bytearray(buffer.getvalue())
    data[30 + len("a.txt")] ^= 0xFF  # the first byte of the deflate stream
    with pytest.raises(BundleError) as caught:
        intake.read_zip(bytes(data), intake.Limits())
    assert caught.value.check == "zip_format"


def test_many_begin_lines_cost_one_pass_in_the_bundle():
    """Found: a member of BEGIN lines without END made the block pattern scan to the end of
    the member from every BEGIN (16,000 lines: 36 s; a 4 MiB member: hours). Now each block
    stops at the next BEGIN. Bounded by the alarm only; speed is not asserted."""
    members = [("notes.txt", b"-----BEGIN A-----\n" * 200000)]
    with corpus.bounded(30):
        assert intake.parse_members(members) == ([], ["notes.txt"], [])


def _pfx_without_mac(rounds, parts):
    """A PKCS#12 file without MAC: ``parts`` encrypted parts, each asking for ``rounds``."""
    def tlv(tag, *content):
        return _asn1.encode(tag, b"".join(content))

    def oid(hex_text):
        return tlv(0x06, bytes.fromhex(hex_text))

    params = tlv(0x30, tlv(0x04, b"salt" * 4), tlv(0x02, rounds.to_bytes(4, "big")))
    pbkdf2 = tlv(0x30, oid("2a864886f70d01050c"), params)
    pbes2 = tlv(0x30, oid("2a864886f70d01050d"), tlv(0x30, pbkdf2, tlv(
        0x30, oid("60864801650304012a"), tlv(0x04, b"\0" * 16))))
    encrypted = tlv(0x30, oid("2a864886f70d010706"), tlv(0xA0, tlv(
        0x30, b"\x02\x01\x00", tlv(0x30, oid("2a864886f70d010701"), pbes2, tlv(0x80, b"\0" * 32)))))
    safe = tlv(0x30, encrypted * parts)
    return tlv(0x30, b"\x02\x01\x03", tlv(0x30, oid("2a864886f70d010701"), tlv(0xA0, tlv(0x04, safe))))


def test_a_pkcs12_asking_for_billions_of_rounds_is_refused_unread(monkeypatch):
    """Found by reading: a PKCS#12 file without MAC whose 50 encrypted parts each ask for
    10,000,000 PBKDF2 rounds kept the scan (and keytool, cryptography) busy for minutes per
    password tried. The rounds a file asks for are now counted first (MAX_KDF_ROUNDS)."""
    rounds = []
    monkeypatch.setattr(pkcs12.hashlib, "pbkdf2_hmac", lambda *a: rounds.append(a[3]) or b"\0" * 32)
    crafted = _pfx_without_mac(10000000, 50)
    with pytest.raises(StoreError) as caught:
        pkcs12.outline(crafted)
    assert caught.value.code == UNSUPPORTED and "key-derivation rounds" in caught.value.reason
    with pytest.raises(StoreError):
        keystore.open_keystore("/x", crafted, [PASSWORD, "other"])
    assert rounds == []
    info = pkcs12.outline(_pfx_without_mac(10000, 3))  # JDK-like counts: read as before
    assert [part.kind for part in info.parts] == ["encrypted"] * 3
    assert pkcs12.open_bags(info, PASSWORD) is None and rounds == [10000]


def test_a_certificate_whose_name_cryptography_reads_late_is_refused_at_parse(seeds, pki):
    """Found: cryptography parses a certificate's names when first asked; one whose subject
    holds an invalid UTF8String loaded fine, then find_leaves raised a bare ValueError out of
    verify_bundle (the bundle module crashed). Now parse_members asks for every field the
    checks read and refuses such a member (check ``parse``)."""
    der = bytearray(seeds["der"].data)
    subject_o = der.find(b"Ministere", der.find(b"Ministere") + 1)
    der[subject_o] = 0xFF  # the subject's O is no longer UTF-8
    members = [("AC_SNE_V5.pem", corpus.pem_of(bytes(der)))]
    with pytest.raises(BundleError) as caught:
        intake.parse_members(members)
    assert caught.value.check == "parse" and "AC_SNE_V5.pem" in caught.value.msg
    with open(os.path.join(pki["dir"], "root.pem"), "rb") as handle:
        policy = Policy(trust_anchors=[handle.read()], generation="V5", valid_at=VALID_AT)
    with pytest.raises(BundleError) as caught:
        verify_bundle(corpus.rezip(members), policy)
    assert caught.value.check == "parse"


def test_a_certificate_of_version_4_in_the_bundle_is_refused_at_parse(seeds):
    """Found (fuzz stage): cryptography raises InvalidVersion, no ValueError, for a
    certificate of version 4 (02 -> 03): it escaped parse_members, DER or PEM."""
    der = seeds["der"].data.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03", 1)
    for member in (("Chiffrement_SNEV5.cer", der), ("Chiffrement_SNEV5.pem", corpus.pem_of(der)),
                   ("notes.bin", der)):
        with pytest.raises(BundleError) as caught:
            intake.parse_members([member])
        assert caught.value.check == "parse" and member[0] in caught.value.msg


def test_a_name_attribute_of_the_wrong_type_is_refused_at_parse(seeds):
    """Found (fuzz stage): the subject's country as a BIT STRING (13 -> 03) made cryptography
    raise TypeError when the subject was first read, out of parse_members."""
    der = bytearray(seeds["der"].data)
    country = der.find(b"\x06\x03\x55\x04\x06\x13\x02FR", der.find(b"\x06\x03\x55\x04\x06") + 1)
    der[country + 5] = 0x03
    with pytest.raises(BundleError) as caught:
        intake.parse_members([("Chiffrement_SNEV5.cer", bytes(der))])
    assert caught.value.check == "parse"


def v4_truststore(seeds):
    """The truststore in clear with its first certificate made version 4 (02 -> 03), its MAC
    recomputed: cryptography's load_pkcs12 raises InvalidVersion, which is no ValueError."""
    data = seeds["p12_clear"].data.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03", 1)
    return grammar.reseal(data, PASSWORD)


def test_a_certificate_of_version_4_in_a_pkcs12_is_unreadable_not_a_crash(seeds):
    """Found (fuzz stage, store load): cryptography.x509.InvalidVersion escaped from the
    reader of last resort (cryptography's load_pkcs12), which caught ValueError only."""
    data = v4_truststore(seeds)
    assert pkcs12.mac_matches(pkcs12.outline(data), PASSWORD) is True
    assert keystore._legacy(data, PASSWORD) is None
    opened = keystore.open_keystore("/x", data, [PASSWORD])  # bags in clear: read here
    assert len(opened.certificates) == 2


def test_the_corpus_is_what_it_says(seeds):
    """The seeds are good files: each reader takes its own (else the fuzzing proves little)."""
    assert detect.detect(seeds["jks"].data) == detect.JKS
    assert detect.detect(seeds["jceks"].data) == detect.JCEKS
    for name in ("p12_keys", "p12_trust"):
        assert pkcs12.mac_matches(pkcs12.outline(seeds[name].data), PASSWORD) is True
    assert len(keystore.open_keystore("/x", seeds["p12_trust"].data, [PASSWORD]).certificates) == 2
    assert len(_x509.load_certificates(seeds["pem"].data)) == 3
    assert envelope.inspect_envelope(seeds["cms"].data)["recipients"][0]["kind"] == "issuer_serial"
    assert len(intake.read_zip(seeds["zip"].data, intake.Limits())) >= 2
    assert len(seeds["jks"].fields) > 10 and len(seeds["cms"].nodes) > 10 and seeds["zip"].fields
    assert len(keystore.open_keystore("/x", seeds["p12_clear"].data).certificates) == 2
    for name in ("der", "cms", "p12_keys", "p12_trust", "p12_clear"):  # DER: the tree gives it back
        assert grammar.tree(seeds[name].data).encode() == seeds[name].data
    assert len(seeds["jceks"].frames) > 5
