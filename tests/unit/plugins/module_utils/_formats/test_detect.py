"""What a file is, by content: the head-only classification and the whole-data detection."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, NoEncryption, pkcs12
from javatools import PASSWORD, keytool, make_cert, needs_keytool

from ansible_collections.sne.guichet.plugins.module_utils._formats import detect as D


def read(pki, name, kind="der"):
    entry = pki["certificates"][name]
    with open(os.path.join(pki["dir"], entry["der" if kind == "der" else "path"]), "rb") as handle:
        return handle.read()


def p12(der, encryption):
    cert = pkcs12.PKCS12Certificate(x509.load_der_x509_certificate(der), b"sne")
    return pkcs12.serialize_key_and_certificates(b"x", None, None, [cert], encryption)


def test_certificates_and_text(pki):
    der, pem = read(pki, "chiffrement-v5"), read(pki, "chiffrement-v5", "pem")
    assert (D.classify(der[:D.HEAD_SIZE]), D.detect(der)) == (D.DER, D.DER)
    assert D.detect(der + read(pki, "ac-v5")) == D.DER  # several, concatenated
    assert (D.classify(pem), D.detect(pem)) == (D.TEXT, D.PEM)
    # a PEM block far beyond the head: the head says text, the whole data says PEM
    late = b"# settings\n" * 1000 + pem
    assert (D.classify(late[:D.HEAD_SIZE]), D.detect(late)) == (D.TEXT, D.PEM)
    assert D.detect(b"key=value\n") == D.TEXT
    assert D.text_kind(b"a -----BEGIN CERTIFICATE----- b") == D.PEM


def test_pkcs12_header_is_confirmed_by_the_whole_data(pki):
    clear = p12(read(pki, "chiffrement-v5"), NoEncryption())
    sealed = p12(read(pki, "chiffrement-v5"), BestAvailableEncryption(b"pw"))
    for data in (clear, sealed):
        assert D.classify(data[:D.HEAD_SIZE]) == D.PKCS12
        assert D.detect(data) == D.PKCS12
    assert D.detect(sealed[:len(sealed) // 2]) == D.PKCS12  # truncated: still one, damaged
    # a PFX header whose ContentInfo holds no content type: DER, but no PKCS#12 behind it
    fake = b"\x30\x0a\x02\x01\x03\x30\x05\x04\x03abc"
    assert D.classify(fake) == D.PKCS12
    assert D.detect(fake) is None


@pytest.mark.parametrize("data", [
    b"",
    b"\x7fELF\x02\x01\x01\x00" + b"\0" * 64,
    b"PK\x03\x04" + b"\0" * 64,
    b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01" + b"\1" * 1188,  # RSA private key
    b"\x30\x82\x05\x10\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" + b"\1" * 1296,  # PKCS#7
])
def test_nothing_known(data):
    assert D.detect(data) is None


@needs_keytool
def test_java_keystores(tmp_path):
    (tmp_path / "ca.der").write_bytes(make_cert("detect test"))
    for kind, expected in (("JKS", D.JKS), ("JCEKS", D.JCEKS), ("PKCS12", D.PKCS12)):
        store = tmp_path / ("store." + kind.lower())
        keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(tmp_path / "ca.der"),
                "-storetype", kind, "-keystore", str(store), "-storepass", PASSWORD)
        data = store.read_bytes()
        assert D.classify(data[:D.HEAD_SIZE]) == expected, kind
        assert D.detect(data) == expected, kind
        assert expected in D.KEYSTORES
