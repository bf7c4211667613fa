"""The one reader of Java keystores' certificates (scan, probe), on stores made by keytool and
by cryptography; and keytool's listing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from javatools import keytool, make_cert, make_cert_and_key, needs_keytool

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    TOOL_MISSING,
    UNKNOWN_FORMAT,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._formats import keytool as K
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as _p12
from ansible_collections.sne.guichet.plugins.module_utils._formats.keystore import (
    KIND_PRIVATE_KEY,
    KIND_TRUSTED_CERT,
    open_keystore,
)

STORE_PASSWORD = "store-Secret!"


def run_command(argv, data=None, environ_update=None):
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def no_tool(name):
    return None


def der_of(cert):
    return cert.public_bytes(Encoding.DER)


def summary(opened):
    """(alias, kind, index, DER) of every certificate read, sorted."""
    return sorted((c.alias or "", c.kind, -1 if c.index is None else c.index, c.der)
                  for c in opened.certificates)


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Two CA certificates, a leaf with its key, and keystores made by keytool and cryptography."""
    root = tmp_path_factory.mktemp("keystore")
    ca_der, ca = make_cert_and_key("keystore test CA")
    leaf_der, (_name, leaf_key) = make_cert_and_key("keystore test leaf", issuer=ca)
    other_der = make_cert("keystore test other")
    out = {"root": root, "ca": ca_der, "leaf": leaf_der, "other": other_der}
    for name, der in (("ca", ca_der), ("other", other_der)):
        (root / (name + ".der")).write_bytes(der)
    if shutil.which("keytool"):
        for kind in ("JKS", "JCEKS", "PKCS12"):
            path = str(root / ("keytool." + kind.lower()))
            common = ["-storetype", kind, "-keystore", path, "-storepass", STORE_PASSWORD]
            keytool("-genkeypair", "-alias", "guichet-tls", "-keyalg", "EC", "-dname", "CN=guichet-tls",
                    "-keypass", STORE_PASSWORD, *common)
            for alias, name in (("sne-ac", "ca"), ("other", "other")):
                keytool("-importcert", "-noprompt", "-alias", alias, "-file", str(root / (name + ".der")),
                        *common)
            out[kind.lower()] = path
        listing = keytool("-list", "-rfc", "-storetype", "PKCS12", "-keystore", out["pkcs12"],
                          "-storepass", STORE_PASSWORD).stdout
        out["tls"] = [e for e in K.parse_keytool_list(listing) if e.alias == "guichet-tls"][0].ders[0]
    certs = [pkcs12.PKCS12Certificate(x509.load_der_x509_certificate(d), n.encode())
             for n, d in (("sne-ac", ca_der), ("other", other_der))]
    leaf = x509.load_der_x509_certificate(leaf_der)
    legacy = (PrivateFormat.PKCS12.encryption_builder()
              .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
              .hmac_hash(hashes.SHA1()).build(STORE_PASSWORD.encode()))
    made = {
        "aes.p12": pkcs12.serialize_key_and_certificates(
            b"leaf", leaf_key, leaf, certs, BestAvailableEncryption(STORE_PASSWORD.encode())),
        "legacy.p12": pkcs12.serialize_key_and_certificates(b"leaf", leaf_key, leaf, certs, legacy),
        "clear.p12": pkcs12.serialize_key_and_certificates(b"x", None, None, certs, NoEncryption()),
        "trust.p12": pkcs12.serialize_java_truststore(
            certs, BestAvailableEncryption(STORE_PASSWORD.encode())),
    }
    for name, data in made.items():
        (root / name).write_bytes(data)
        out[name] = str(root / name)
    return out


def open_file(path, passwords=None, **options):
    with open(path, "rb") as handle:
        return open_keystore(path, handle.read(), passwords, **options)


# --------------------------------------------------------------------------- JKS / JCEKS


@needs_keytool
@pytest.mark.parametrize("kind", ["jks", "jceks"])
def test_java_keystores_need_no_password(world, kind):
    opened = open_file(world[kind])
    assert (opened.format, opened.password, opened.problem) == (kind, None, None)
    got = summary(opened)
    assert [(a, k, i) for a, k, i, _d in got] == [
        ("guichet-tls", KIND_PRIVATE_KEY, 0), ("other", KIND_TRUSTED_CERT, -1),
        ("sne-ac", KIND_TRUSTED_CERT, -1)]
    assert got[1][3] == world["other"] and got[2][3] == world["ca"]
    # passwords given are checked: the right one is kept, wherever it is in the list
    opened = open_file(world[kind], ["wrong", STORE_PASSWORD, "later"])
    assert (opened.password, opened.problem, summary(opened)) == (STORE_PASSWORD, None, got)
    opened = open_file(world[kind], ["wrong", "worse"])
    assert opened.password is None and summary(opened) == got  # still read: never encrypted
    assert opened.problem.code == WRONG_PASSWORD
    assert opened.problem.reason == ("none of the 2 password(s) given for this %s file opens it "
                                     "(integrity check failed)" % kind.upper())


@needs_keytool
def test_declared_format_is_the_one_read(world):
    with pytest.raises(StoreError) as caught:
        open_file(world["pkcs12"], fmt="jks")
    assert caught.value.code == UNKNOWN_FORMAT
    with pytest.raises(StoreError) as caught:
        open_file(world["jks"], fmt="pkcs12")
    assert caught.value.code == UNKNOWN_FORMAT


def test_damaged_and_foreign_files_raise(world):
    data = open(world["aes.p12"], "rb").read()
    broken_jks = b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x05"
    for sample, code in ((data[:200], CORRUPT), (broken_jks, CORRUPT),
                         (b"-----BEGIN CERTIFICATE-----\n", UNKNOWN_FORMAT), (world["ca"], UNKNOWN_FORMAT)):
        with pytest.raises(StoreError) as caught:
            open_keystore("x", sample, [STORE_PASSWORD])
        assert caught.value.code == code, sample[:16]


# --------------------------------------------------------------------------- PKCS#12


@needs_keytool
def test_pkcs12_made_by_keytool(world):
    opened = open_file(world["pkcs12"])  # keytool encrypts the certificates
    assert (opened.format, opened.certificates, opened.password) == ("pkcs12", [], None)
    assert opened.problem.code == WRONG_PASSWORD
    assert opened.problem.reason == ("PKCS#12 file whose certificates are encrypted: give its password "
                                     "to read them")
    asked = open_file(world["pkcs12"], ask="certificate.password").problem.reason
    assert "give certificate.password to read them" in asked
    opened = open_file(world["pkcs12"], ["wrong", STORE_PASSWORD])
    assert (opened.password, opened.problem) == (STORE_PASSWORD, None)
    assert summary(opened) == sorted([("guichet-tls", KIND_PRIVATE_KEY, -1, world["tls"]),
                                      ("other", KIND_TRUSTED_CERT, -1, world["other"]),
                                      ("sne-ac", KIND_TRUSTED_CERT, -1, world["ca"])])
    opened = open_file(world["pkcs12"], ["wrong", "worse"])
    assert (opened.certificates, opened.password) == ([], None)
    assert opened.problem.code == WRONG_PASSWORD
    assert opened.problem.reason == ("none of the 2 password(s) given for this PKCS#12 file opens it "
                                     "(integrity check failed)")


def test_pkcs12_made_by_cryptography(world):
    opened = open_file(world["aes.p12"], ["wrong", STORE_PASSWORD])
    assert (opened.password, opened.problem) == (STORE_PASSWORD, None)
    # no Java trusted-certificate attribute: the JDK would trust none of them
    assert summary(opened) == sorted([("leaf", KIND_PRIVATE_KEY, -1, world["leaf"]),
                                      ("other", KIND_PRIVATE_KEY, -1, world["other"]),
                                      ("sne-ac", KIND_PRIVATE_KEY, -1, world["ca"])])
    opened = open_file(world["trust.p12"], STORE_PASSWORD)  # a Java truststore
    assert summary(opened) == sorted([("other", KIND_TRUSTED_CERT, -1, world["other"]),
                                      ("sne-ac", KIND_TRUSTED_CERT, -1, world["ca"])])
    opened = open_file(world["clear.p12"], ["never tried"])  # in clear: no password needed
    assert (opened.password, opened.problem) == (None, None)
    assert [c.der for c in opened.certificates] == [world["ca"], world["other"]]


def test_pkcs12_in_legacy_encryption(world):
    """3DES: not decrypted here, cryptography's own reader does it."""
    info = _p12.outline(open(world["legacy.p12"], "rb").read())
    sealed = [part for part in info.parts if part.kind == "encrypted"]
    assert sealed and all(_p12.decrypt_part(part, STORE_PASSWORD) is None for part in sealed)
    opened = open_file(world["legacy.p12"], ["wrong", STORE_PASSWORD])
    assert (opened.password, opened.problem) == (STORE_PASSWORD, None)
    assert summary(opened) == sorted([("leaf", KIND_PRIVATE_KEY, 0, world["leaf"]),
                                      ("other", KIND_TRUSTED_CERT, -1, world["other"]),
                                      ("sne-ac", KIND_TRUSTED_CERT, -1, world["ca"])])


@needs_keytool
def test_pkcs12_without_cryptography_is_listed_by_keytool(world, monkeypatch):
    monkeypatch.setattr(_p12, "HAS_CRYPTOGRAPHY", False)
    expected = {
        "pkcs12": [("guichet-tls", KIND_PRIVATE_KEY, 0, world["tls"]),
                   ("other", KIND_TRUSTED_CERT, -1, world["other"]),
                   ("sne-ac", KIND_TRUSTED_CERT, -1, world["ca"])],
        # the JDK builds the key's chain, and ignores a certificate that is neither
        "legacy.p12": [("leaf", KIND_PRIVATE_KEY, 0, world["leaf"]),
                       ("leaf", KIND_PRIVATE_KEY, 1, world["ca"])],
    }
    for name, certs in expected.items():
        opened = open_file(world[name], ["wrong", STORE_PASSWORD], run_command=run_command,
                           find_tool=shutil.which)
        assert (opened.password, opened.problem) == (STORE_PASSWORD, None)
        assert summary(opened) == sorted(certs), name
        # the MAC tells a wrong password without running keytool
        opened = open_file(world[name], ["wrong"], run_command=None, find_tool=None)
        assert opened.problem.code == WRONG_PASSWORD


@needs_keytool
def test_pkcs12_without_cryptography_nor_keytool_says_what_to_install(world, monkeypatch):
    monkeypatch.setattr(_p12, "HAS_CRYPTOGRAPHY", False)
    for options in (dict(), dict(run_command=run_command, find_tool=no_tool)):
        opened = open_file(world["pkcs12"], [STORE_PASSWORD], **options)
        assert (opened.certificates, opened.password) == ([], None)
        assert opened.problem.code == TOOL_MISSING
        assert "install the Python library cryptography (>= 45) or keytool" in opened.problem.reason
    # certificates in clear are still read
    opened = open_file(world["clear.p12"], run_command=run_command, find_tool=no_tool)
    assert opened.problem is None and len(opened.certificates) == 2


# --------------------------------------------------------------------------- keytool's listing


@needs_keytool
def test_list_entries(world):
    entries = K.list_entries(world["pkcs12"], STORE_PASSWORD, run_command, shutil.which)
    assert sorted((e.alias, e.type, len(e.ders)) for e in entries) == [
        ("guichet-tls", "PrivateKeyEntry", 1), ("other", "trustedCertEntry", 1),
        ("sne-ac", "trustedCertEntry", 1)]
    with pytest.raises(StoreError) as caught:
        K.list_entries(world["pkcs12"], "wrong", run_command, shutil.which)
    assert caught.value.code == WRONG_PASSWORD and "keytool" in caught.value.reason
    with pytest.raises(StoreError) as caught:
        K.list_entries(world["pkcs12"], STORE_PASSWORD, run_command, no_tool)
    assert (caught.value.code, caught.value.reason) == (TOOL_MISSING, K.TOOL_MISSING_MESSAGE)
