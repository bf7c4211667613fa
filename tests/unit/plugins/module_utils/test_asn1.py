# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_asn1 (the one BER/DER reader) and _oids, against cryptography's encoder and real files."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat._oid import _OID_NAMES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.name import _NAMEOID_TO_NAME
from cryptography.x509.oid import ExtensionOID, ObjectIdentifier, PublicKeyAlgorithmOID

from ansible_collections.sne.guichet.plugins.module_utils import _asn1
from ansible_collections.sne.guichet.plugins.module_utils import _oids as O
from ansible_collections.sne.guichet.plugins.module_utils._asn1 import Garbled, Malformed, Truncated
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import CORRUPT, SneError


def tlv(tag, body, indefinite=False):
    if indefinite:
        return bytes([tag, 0x80]) + body + b"\0\0"
    return _asn1.encode(tag, body)


def walk(node, found=None):
    """Every element below ``node`` read (the DER an OCTET STRING holds too, when it is DER);
    returns the OIDs met, in order."""
    found = [] if found is None else found
    if node.tag == _asn1.OID:
        found.append(node.oid())
    elif node.constructed:
        for child in node.children():
            walk(child, found)
    elif node.tag == _asn1.OCTET_STRING and node.content:
        try:
            inner = _asn1.read_one(node.content, contained=True)
        except Malformed:
            return found  # not DER inside (a key, a digest, ciphertext)
        walk(inner, found)
    return found


def to_indefinite(node):
    """The same structure with every constructed element in BER indefinite-length form."""
    if not node.constructed:
        return node.raw
    return tlv(node.tag, b"".join(to_indefinite(child) for child in node.children()), True)


@pytest.fixture(scope="module")
def cert_der(pki):
    with open(os.path.join(pki["dir"], "chiffrement-v5.der"), "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def p12_files(pki, cert_der):
    with open(os.path.join(pki["dir"], "chiffrement-v5.key"), "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    cert = x509.load_der_x509_certificate(cert_der)
    return {
        "key": pkcs12.serialize_key_and_certificates(
            b"sne", key, cert, None, serialization.BestAvailableEncryption(b"secret")),
        "truststore": pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(cert, b"sne-chiffrement-v5")], serialization.NoEncryption()),
    }


# --------------------------------------------------------------------------- the errors


def test_errors_are_corrupt_store_errors_and_value_errors():
    for error, kind in ((Truncated(12, "a header"), "truncated"), (Garbled(7, "bad"), "garbled")):
        assert isinstance(error, SneError) and isinstance(error, ValueError)
        assert error.code == CORRUPT and error.offset in (12, 7)
        assert error.reason.startswith(kind + " at byte %d" % error.offset)
    assert Truncated(3).reason == "truncated at byte 3" and Truncated(3).what == ""


# --------------------------------------------------------------------------- BER and DER


@pytest.mark.parametrize("data, check, ber", [
    (b"\x30\x80\x02\x01\x05\x00\x00", lambda n: n.children()[0].integer(), 5),  # indefinite
    (b"\x04\x81\x03abc", lambda n: n.octets(), b"abc"),  # long form for a short length
    (b"\x04\x82\x00\x81" + b"x" * 129, lambda n: len(n.octets()), 129),  # leading zero octet
    (b"\x24\x06\x04\x01a\x04\x01b", lambda n: n.octets(), b"ab"),  # constructed OCTET STRING
    (b"\x02\x02\x00\x01", lambda n: n.integer(), 1),  # non-minimal INTEGER
    (b"\x02\x02\xff\xff", lambda n: n.integer(), -1),
    (b"\x01\x01\x01", lambda n: n.boolean(), True),  # BER: any non-zero octet is TRUE
])
def test_ber_accepts_what_strict_der_refuses(data, check, ber):
    assert check(_asn1.read_one(data)) == ber
    with pytest.raises(Garbled):
        check(_asn1.read_one(data, strict=True))


@pytest.mark.parametrize("data", [
    b"\x02\x01\x05", b"\x02\x02\x00\x80", b"\x02\x02\xff\x7f", b"\x01\x01\xff", b"\x01\x01\x00",
    b"\x04\x81\x80" + b"y" * 128, b"\x30\x03\x02\x01\x00", b"\x9f\x1f\x00", b"\xbf\x81\x00\x00",
])
def test_strict_der_reads_der(data):
    assert _asn1.read_one(data, strict=True).raw == _asn1.read_one(data).raw == data


@pytest.mark.parametrize("data, error, message", [
    (b"", Truncated, "header"),
    (b"\x04", Truncated, "header"),
    (b"\x04\x02a", Truncated, "element of 2 bytes"),
    (b"\x04\x82\x01", Truncated, "header"),
    (b"\x04\x85\x00\x00\x00\x00\x01a", Garbled, "length field of 5 bytes"),
    (b"\x04\x80ab\x00\x00", Garbled, "indefinite length on a primitive"),
    (b"\x30\x80\x02\x01\x05", Truncated, "header"),  # no end-of-contents
    (b"\x30\x80\x02\x01\x05\x00", Truncated, "header"),
    (b"\x9f", Truncated, "header"),
    (b"\x9f\x81", Truncated, "header"),
    (b"\x9f\x1e\x00", Garbled, "non-minimal tag"),  # 30 fits the low tag form
    (b"\x9f\x80\x1f\x00", Garbled, "non-minimal tag"),
    (b"\x9f\x81\x80\x80\x80\x00\x00", Garbled, "tag number too large"),
    (b"\x02\x01\x05\x00", Garbled, "1 unexpected bytes"),
])
def test_header_errors(data, error, message):
    with pytest.raises(error, match=message):
        _asn1.read_one(data)


def test_an_element_past_its_container_is_garbled_even_at_the_end_of_the_data():
    data = b"\x30\x03\x04\x05a"  # the OCTET STRING claims 5 bytes, its SEQUENCE holds 3
    outer = _asn1.read_one(data)
    with pytest.raises(Garbled, match="past the end of its container") as err:
        outer.children()
    assert err.value.offset == 2
    # The content of an element read as a buffer of its own: the same with contained=True.
    with pytest.raises(Truncated):
        _asn1.read_one(b"\x04\x05abc")
    with pytest.raises(Garbled):
        _asn1.read_one(b"\x04\x05abc", contained=True)


def test_indefinite_lengths_nest_and_read_back_as_der():
    inner = tlv(0x30, tlv(0x02, b"\x07") + tlv(0x24, tlv(0x04, b"ab") + tlv(0x04, b"c"), True), True)
    data = tlv(0x30, inner + tlv(0x05, b""), True)
    node = _asn1.read_one(data)
    assert (node.start, node.end, node.cend) == (0, len(data), len(data) - 2)
    first, null = node.children()
    assert null.tag == 0x05 and null.raw == b"\x05\x00"
    number, string = first.children()
    assert number.integer() == 7 and string.octets() == b"abc"
    assert node.definite() == tlv(0x30, tlv(0x30, tlv(0x02, b"\x07") + tlv(
        0x24, tlv(0x04, b"ab") + tlv(0x04, b"c"))) + tlv(0x05, b""))
    assert node.raw == data


def test_constructed_octet_strings():
    nested = tlv(0x24, tlv(0x04, b"a") + tlv(0x24, tlv(0x04, b"bc"), True) + tlv(0x04, b""))
    assert _asn1.read_one(nested).octets() == b"abc"
    implicit = tlv(0xA0, tlv(0x04, b"xy") + tlv(0x04, b"z"))  # [0] IMPLICIT OCTET STRING
    assert _asn1.read_one(implicit).octets() == b"xyz"
    assert _asn1.read_one(tlv(0x80, b"xyz")).octets() == b"xyz"
    with pytest.raises(Garbled, match="not an OCTET STRING"):
        _asn1.read_one(tlv(0x24, tlv(0x04, b"a") + tlv(0x0C, b"b"))).octets()
    with pytest.raises(Garbled, match="not DER"):
        _asn1.read_one(nested, strict=True).octets()


def test_helpers():
    node = _asn1.read_one(tlv(0xA3, tlv(0x06, b"\x55\x1d\x13")))
    assert node.explicit(3, "extensions").oid() == "2.5.29.19"
    with pytest.raises(Garbled, match="expected tag 0xA0, found 0xA3"):
        node.explicit(0, "version")
    with pytest.raises(Garbled, match="one element"):
        _asn1.read_one(tlv(0xA0, b"\x05\x00\x05\x00")).explicit(0, "x")
    with pytest.raises(Garbled, match="expected a constructed element"):
        _asn1.read_one(b"\x04\x00").children()
    assert _asn1.context(0) == 0xA0 and _asn1.context(2, constructed=False) == 0x82
    assert _asn1.read_all(b"\x05\x00\x02\x01\x01")[1].integer() == 1
    assert repr(node) == "Node(tag=0xA3, start=0, end=7)"
    assert _asn1.read_one(tlv(0x1E, "é€".encode("utf-16-be"))).utf8() == "é€".encode()
    assert _asn1.read_one(tlv(0x14, b"\xe9")).utf8() == "é".encode()
    with pytest.raises(Garbled, match="invalid character"):
        _asn1.read_one(tlv(0x1E, "🙂".encode("utf-16-be"))).utf8()


# --------------------------------------------------------------------------- depth


@pytest.mark.parametrize("indefinite", [False, True])
def test_depth_bound(indefinite):
    def nested(levels):
        data = tlv(0x30, b"", indefinite)
        for _n in range(levels - 1):
            data = tlv(0x30, data, indefinite)
        return data

    walk(_asn1.read_one(nested(_asn1.MAX_DEPTH)))
    with pytest.raises(Garbled, match="nested too deeply"):
        walk(_asn1.read_one(nested(_asn1.MAX_DEPTH + 1)))


def test_a_crafted_file_never_exhausts_the_stack():
    deep = b"\x30\x80" * 100000 + b"\x00\x00" * 100000
    with pytest.raises(Garbled, match="nested too deeply"):
        _asn1.read(deep)
    segments = tlv(0x04, b"x")
    for _n in range(3000):
        segments = tlv(0x24, segments)
    with pytest.raises(Garbled, match="nested too deeply"):
        _asn1.read_one(segments).octets()


# --------------------------------------------------------------------------- real structures


def _every_cut_is_truncated(raw, strict=False):
    wrong = {}
    for cut in range(len(raw)):
        try:
            walk(_asn1.read(raw[:cut], strict=strict))
            wrong[cut] = "read"
        except Truncated as exc:
            if not 0 <= exc.offset <= cut:
                wrong[cut] = "offset %d" % exc.offset
        except Malformed as exc:
            wrong[cut] = exc.reason
    return wrong


def test_certificate_every_cut_is_truncated(cert_der):
    assert walk(_asn1.read_one(cert_der, strict=True))
    assert _every_cut_is_truncated(cert_der, strict=True) == {}
    assert _every_cut_is_truncated(cert_der) == {}


def test_certificate_in_indefinite_form(cert_der):
    ber = to_indefinite(_asn1.read_one(cert_der))
    assert ber[:2] == b"\x30\x80" and len(ber) > len(cert_der)
    node = _asn1.read_one(ber)
    assert node.definite() == cert_der
    assert walk(node) == walk(_asn1.read_one(cert_der, strict=True))
    with pytest.raises(Garbled, match="indefinite length is not DER"):
        _asn1.read_one(ber, strict=True)
    assert _every_cut_is_truncated(ber) == {}


@pytest.mark.parametrize("name", ["key", "truststore"])
def test_pkcs12_every_cut_is_truncated(p12_files, name):
    raw = p12_files[name]
    walk(_asn1.read_one(raw))
    assert _every_cut_is_truncated(raw) == {}
    assert _every_cut_is_truncated(to_indefinite(_asn1.read_one(raw))) == {}


def test_garbled_real_structures(cert_der, p12_files):
    for raw in (cert_der, p12_files["truststore"]):
        with pytest.raises(Garbled) as err:
            _asn1.read_one(raw + b"\x00")
        assert err.value.offset == len(raw)
        for cut in range(len(raw)):  # a cut content, read as the content it was
            with pytest.raises(Garbled):
                walk(_asn1.read_one(raw[:cut], contained=True))
    wrong_tag = bytearray(cert_der)
    wrong_tag[4] = 0x31  # tbsCertificate as a SET
    with pytest.raises(Garbled, match="expected tag 0x30"):
        _asn1.read_one(bytes(wrong_tag), strict=True).children()[0].expect(_asn1.SEQUENCE, "tbs")


# --------------------------------------------------------------------------- OIDs


def _named_oids():
    values = {}
    for name in dir(O):
        value = getattr(O, name)
        if name.startswith("OID_"):
            values[name] = value
        elif isinstance(value, dict) and name.isupper():
            values.update(("%s[%s]" % (name, key), key) for key in value if isinstance(key, str))
    return values


_EXTRA_OIDS = ["0.0", "0.39", "1.0", "1.39", "2.0", "2.47", "2.48", "2.999.1234567890123456789",
               "1.2.840.113549.1.9.16.3.1048575", "2.5.4.3"]


@pytest.mark.parametrize("dotted", sorted(set(_named_oids().values())) + _EXTRA_OIDS)
def test_oid_round_trip_through_cryptography(dotted):
    assert ObjectIdentifier(dotted).dotted_string == dotted
    der = x509.Name([x509.NameAttribute(ObjectIdentifier(dotted), "FR")]).public_bytes()
    rdn, = _asn1.read_one(der, strict=True).children()
    attribute, = rdn.children()
    oid, value = attribute.expect(_asn1.SEQUENCE, "attribute").children()
    assert oid.oid() == dotted and value.utf8() == b"FR"


def test_named_oids_are_cryptography_s():
    assert O.DN_SHORT_NAMES == {oid.dotted_string: name for oid, name in _NAMEOID_TO_NAME.items()}
    assert O.OID_BASIC_CONSTRAINTS == ExtensionOID.BASIC_CONSTRAINTS.dotted_string
    assert O.OID_KEY_USAGE == ExtensionOID.KEY_USAGE.dotted_string
    assert O.OID_RSA_ENCRYPTION == PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5.dotted_string
    for dotted, name in O.HASHES.items():
        assert _OID_NAMES[ObjectIdentifier(dotted)] == name
    assert set(O.AES_CBC_KEY_SIZES) <= set(O.ALGORITHM_NAMES)


def test_the_oids_of_cryptography_s_pkcs12_are_named(p12_files):
    key = set(walk(_asn1.read_one(p12_files["key"])))
    assert {O.OID_DATA, O.OID_ENCRYPTED_DATA, O.OID_SHROUDED_KEY_BAG, O.OID_PBES2, O.OID_PBKDF2,
            O.OID_AES256_CBC} <= key
    assert key & set(O.HASHES) and key & set(O.HMAC_PRFS)
    trust = set(walk(_asn1.read_one(p12_files["truststore"])))
    assert {O.OID_DATA, O.OID_CERT_BAG, O.OID_X509_CERT, O.OID_FRIENDLY_NAME,
            O.OID_ORACLE_TRUSTED_KEY_USAGE} <= trust


@pytest.mark.parametrize("body, message", [
    (b"", "empty"), (b"\x2a\x86", "unfinished"), (b"\x2a\x80\x01", "non-minimal"),
])
def test_bad_oids(body, message):
    with pytest.raises(Garbled, match=message):
        _asn1.read_one(tlv(0x06, body)).oid()
