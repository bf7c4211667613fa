"""_formats/cms: who a CMS EnvelopedData is encrypted to, read from messages made by real
``openssl cms -encrypt`` (DER, BER indefinite length, PEM, S/MIME; by issuer and serial and by
subject key identifier), never decrypted; a cut message is Truncated at every length, a file
that is not an EnvelopedData is None. Also ``_x509.recipient_identifiers`` against what
``openssl x509`` prints."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import Malformed, Truncated
from ansible_collections.sne.guichet.plugins.module_utils._formats.cms import (
    DER,
    ISSUER_SERIAL,
    PEM,
    SKI,
    SMIME,
    read_envelope,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    load_certificates,
    recipient_identifiers,
)


def openssl(*args: str, data: bytes = b"") -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def encrypt(pki, tmp_path, *recipients: str, options=("-outform", "DER"), keyid=False) -> bytes:
    """A message encrypted by ``openssl cms -encrypt`` to the test PKI's ``recipients``."""
    source = tmp_path / "message.xml"
    source.write_bytes(b"<demande>registration 0001</demande>\n")
    args = ["cms", "-encrypt", "-binary", "-aes256", "-in", str(source), *options]
    for ident in recipients:
        args += ["-recip", os.path.join(pki["dir"], ident + ".pem")] + (["-keyid"] if keyid else [])
    return openssl(*args)


def ids(pki, ident):
    with open(os.path.join(pki["dir"], ident + ".pem"), "rb") as handle:
        return recipient_identifiers(load_certificates(handle.read())[0])


def openssl_issuer_der(pki, ident) -> bytes:
    """The issuer Name's DER as openssl reads it: the tbsCertificate's 4th element (v3)."""
    der = os.path.join(pki["dir"], ident + ".der")
    parsed = openssl("asn1parse", "-inform", "DER", "-in", der).decode()
    # the issuer is the first SEQUENCE at depth 2 after the signature algorithm: find its offset
    lines = [line for line in parsed.splitlines() if ":d=2 " in line]
    offset = int(lines[3].split(":")[0])  # [0] version, serial, algorithm, issuer
    return openssl("asn1parse", "-inform", "DER", "-in", der, "-strparse", str(offset), "-noout",
                   "-out", "/dev/stdout")


@pytest.mark.parametrize("form, options", [
    (DER, ("-outform", "DER")),
    (PEM, ("-outform", "PEM")),
    (SMIME, ("-outform", "SMIME")),
    (DER, ("-outform", "DER", "-stream")),
])
@pytest.mark.parametrize("keyid", [False, True])
def test_each_form_names_its_recipient(pki, tmp_path, form, options, keyid):
    message = encrypt(pki, tmp_path, "chiffrement-v4", options=options, keyid=keyid)
    envelope = read_envelope(message)
    assert envelope is not None and envelope.form == form
    assert envelope.indefinite == ("-stream" in options)
    v4 = ids(pki, "chiffrement-v4")
    (recipient,) = envelope.recipients
    if keyid:
        assert recipient.kind == SKI and recipient.ski == v4["subject_key_identifiers"][0]
    else:
        assert recipient.kind == ISSUER_SERIAL
        assert (recipient.issuer, recipient.serial) == (v4["issuer"], v4["serial"])


def test_the_stream_form_is_indefinite_length_ber(pki, tmp_path):
    message = encrypt(pki, tmp_path, "chiffrement-v5", options=("-outform", "DER", "-stream"))
    (tmp_path / "s.der").write_bytes(message)
    parsed = openssl("asn1parse", "-inform", "DER", "-in", str(tmp_path / "s.der")).decode()
    assert "l=inf" in parsed.splitlines()[0]  # openssl's own reading: indefinite length
    (recipient,) = read_envelope(message).recipients
    assert recipient.serial == ids(pki, "chiffrement-v5")["serial"]


def test_several_recipients_and_other_kinds_are_walked(pki, tmp_path):
    message = encrypt(pki, tmp_path, "chiffrement-v5", "chiffrement-v4")
    kinds = sorted((r.kind, r.serial) for r in read_envelope(message).recipients)
    assert kinds == [(ISSUER_SERIAL, ids(pki, "chiffrement-v4")["serial"]),
                     (ISSUER_SERIAL, ids(pki, "chiffrement-v5")["serial"])]
    source = tmp_path / "message.xml"
    password = openssl("cms", "-encrypt", "-binary", "-aes256", "-in", str(source), "-outform", "DER",
                       "-pwri_password", "test-only-pass")
    assert [r.kind for r in read_envelope(password).recipients] == ["pwri"]


@pytest.mark.parametrize("options", [("-outform", "DER"), ("-outform", "DER", "-stream"),
                                     ("-outform", "PEM"), ("-outform", "SMIME")])
def test_a_cut_message_is_truncated_never_none(pki, tmp_path, options):
    message = encrypt(pki, tmp_path, "chiffrement-v4", options=options)
    # past what says it is an EnvelopedData (for S/MIME: its headers, and a line of base64)
    head = message.index(b"\n\n") + 66 if options[1] == "SMIME" else 20
    for length in sorted({head, head + 1, len(message) // 3, len(message) // 2, len(message) - 40}):
        with pytest.raises(Malformed) as caught:
            read_envelope(message[:length])
        assert caught.value.code == "corrupt", length
    with pytest.raises(Truncated):
        read_envelope(message[:len(message) // 2])


def test_files_that_are_not_an_envelope_are_none(pki, tmp_path):
    with open(os.path.join(pki["dir"], "chiffrement-v4.pem"), "rb") as handle:
        cert_pem = handle.read()
    with open(os.path.join(pki["dir"], "chiffrement-v4.der"), "rb") as handle:
        cert_der = handle.read()
    source = tmp_path / "message.xml"
    source.write_bytes(b"hello\n")
    signed = openssl("cms", "-sign", "-binary", "-in", str(source), "-outform", "DER", "-nodetach",
                     "-signer", os.path.join(pki["dir"], "chiffrement-v5.pem"),
                     "-inkey", os.path.join(pki["dir"], "chiffrement-v5.key"))
    mail = b"From: guichet@example.org\nSubject: plain\nContent-Type: text/plain\n\nhello\n"
    for data in (b"", b"plain text, not a message\n", b"0\x03\x02\x01\x00", cert_pem, cert_der,
                 signed, mail, b"\x30\x80"):
        assert read_envelope(data) is None, data[:20]


def test_recipient_identifiers_are_what_openssl_prints(pki):
    for ident in ("chiffrement-v4", "chiffrement-v5"):
        pem = os.path.join(pki["dir"], ident + ".pem")
        got = ids(pki, ident)
        serial = openssl("x509", "-in", pem, "-noout", "-serial").decode().strip().split("=")[1]
        assert got["serial"] == int(serial, 16)
        text = openssl("x509", "-in", pem, "-noout", "-ext", "subjectKeyIdentifier").decode()
        printed = text.splitlines()[1].strip().replace(":", "").lower()
        assert got["subject_key_identifiers"][0].hex() == printed
        assert got["issuer"] == openssl_issuer_der(pki, ident)


def test_the_key_identifier_of_a_certificate_without_the_extension_is_rfc5280_method_1(tmp_path):
    key = tmp_path / "k.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    made = {}
    for name, extra in (("with", []), ("without", ["-addext", "subjectKeyIdentifier=none"])):
        out = tmp_path / (name + ".pem")
        openssl("req", "-x509", "-new", "-key", str(key), "-subj", "/CN=test only", "-days", "1",
                "-out", str(out), *extra)
        made[name] = recipient_identifiers(load_certificates(out.read_bytes())[0])
    assert b"Subject Key Identifier" not in openssl("x509", "-in", str(tmp_path / "without.pem"),
                                                    "-noout", "-text")
    # OpenSSL's own subjectKeyIdentifier=hash is method 1: the same key gives the same identifier
    assert made["without"]["subject_key_identifiers"] == made["with"]["subject_key_identifiers"]
