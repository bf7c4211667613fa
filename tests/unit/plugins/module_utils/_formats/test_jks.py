"""The pure-Python JKS/JCEKS codec against files made by the real keytool."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from javatools import PASSWORD, keytool, make_cert, needs_keytool

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNKNOWN_FORMAT,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._formats import _java
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks

pytestmark = needs_keytool


@pytest.fixture(scope="session")
def jks_world(tmp_path_factory):
    """keytool-made stores: JKS (key + 3 certs), JCEKS (secret + key + cert), odd alias."""
    root = tmp_path_factory.mktemp("jks")
    pw = root / "pw"
    pw.write_text(PASSWORD + "\n")
    certs = {}
    for name in ("ca1", "ca2", "old"):
        der = make_cert("JKS test " + name)
        (root / (name + ".der")).write_bytes(der)
        certs[name] = der
    jks = str(root / "base.jks")
    common = ["-storetype", "JKS", "-keystore", jks, "-storepass:file", str(pw)]
    keytool("-genkeypair", "-alias", "Server", "-keyalg", "EC", "-dname", "CN=server",
            "-keypass:file", str(pw), *common)
    for alias, name in (("CA1", "ca1"), ("ca2", "ca2"), ("Old-Ministry-Cert-2014", "old")):
        keytool("-importcert", "-noprompt", "-alias", alias, "-file", str(root / (name + ".der")),
                *common)
    jceks = str(root / "base.jceks")
    common = ["-storetype", "JCEKS", "-keystore", jceks, "-storepass:file", str(pw)]
    keytool("-genseckey", "-alias", "Secret", "-keyalg", "AES", "-keysize", "128",
            "-keypass:file", str(pw), *common)
    keytool("-importcert", "-noprompt", "-alias", "ca1", "-file", str(root / "ca1.der"), *common)
    keytool("-genkeypair", "-alias", "pk", "-keyalg", "EC", "-dname", "CN=pk", "-keypass:file",
            str(pw), *common)
    # Aliases Java writes with modified UTF-8 (2-, 3- and 6-byte forms).
    odd = str(root / "odd.jks")
    keytool("-importcert", "-noprompt", "-alias", "Été€😀", "-file", str(root / "ca2.der"),
            "-storetype", "JKS", "-keystore", odd, "-storepass:file", str(pw))
    listing = keytool("-list", "-storetype", "JKS", "-keystore", jks, "-storepass:file", str(pw)).stdout
    return {"root": root, "pw": str(pw), "certs": certs, "jks": jks, "jceks": jceks, "odd": odd,
            "listing": listing}


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


# ------------------------------------------------------------------ round trip

@pytest.mark.parametrize("name", ["jks", "jceks", "odd"])
def test_keytool_files_round_trip_byte_identical(jks_world, name):
    data = read(jks_world[name])
    store = _jks.parse(data, PASSWORD)
    assert store.integrity_checked
    assert _jks.serialize(store, PASSWORD) == data
    again = _jks.parse(_jks.serialize(store, PASSWORD), PASSWORD)
    assert [e.raw for e in again.entries] == [e.raw for e in store.entries]
    assert b"".join(e.raw for e in store.entries) == data[12:-20]


def test_jks_entries_decoded(jks_world):
    store = _jks.parse(read(jks_world["jks"]), PASSWORD)
    assert store.format == "jks" and store.version == 2
    kinds = sorted((e.alias, e.kind) for e in store.entries)
    # keytool stores JKS aliases lowercased
    assert kinds == [("ca1", "trusted_cert"), ("ca2", "trusted_cert"),
                     ("old-ministry-cert-2014", "trusted_cert"), ("server", "private_key")]
    by_alias = {e.alias: e for e in store.entries}
    assert by_alias["old-ministry-cert-2014"].der == jks_world["certs"]["old"]
    assert by_alias["ca1"].cert_type == "X.509"
    server = by_alias["server"]
    assert server.der is None and len(server.chain) == 1
    # the chain fingerprint is the one keytool reports
    assert server.chain_fingerprints()[0] in jks_world["listing"]
    assert abs(server.timestamp / 1000 - __import__("time").time()) < 3600


def test_jceks_secret_key_carried_opaque(jks_world):
    data = read(jks_world["jceks"])
    store = _jks.parse(data, PASSWORD)
    assert store.format == "jceks"
    kinds = sorted((e.alias, e.kind) for e in store.entries)
    assert kinds == [("ca1", "trusted_cert"), ("pk", "private_key"), ("secret", "secret_key")]
    secret = store.find("SECRET")
    assert secret.raw[4 + 2 + len("secret") + 8:][:2] == b"\xac\xed"  # Java serialization
    assert _jks.serialize(store, PASSWORD) == data


def test_modified_utf8_aliases_from_java(jks_world):
    store = _jks.parse(read(jks_world["odd"]), PASSWORD)
    (entry,) = store.entries
    assert entry.alias == "été€😀"
    # 😀 is a surrogate pair in Java: two 3-byte sequences, not one 4-byte UTF-8 one
    assert "😀".encode() not in entry.raw
    assert b"\xed\xa0\xbd\xed\xb8\x80" in entry.raw


@pytest.mark.parametrize("text, encoded", [
    ("", b""), ("a", b"a"), ("\x00", b"\xc0\x80"), ("é", b"\xc3\xa9"), ("€", b"\xe2\x82\xac"),
    ("😀", b"\xed\xa0\xbd\xed\xb8\x80"), ("\u07ff\u0800\uffff", b"\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"),
])
def test_modified_utf8_vectors(text, encoded):
    assert _java.encode_modified_utf8(text) == encoded
    assert _java.decode_modified_utf8(encoded) == text
    assert _jks.write_utf(text) == struct.pack(">H", len(encoded)) + encoded


@given(st.text())
def test_modified_utf8_round_trip(text):
    encoded = _java.encode_modified_utf8(text)
    assert b"\x00" not in encoded
    assert _java.decode_modified_utf8(encoded) == text
    if "\x00" not in text and all(ord(ch) < 0x10000 for ch in text):
        assert encoded == text.encode("utf-8")  # same as UTF-8 on the BMP without NUL


@pytest.mark.parametrize("bad", [b"\x00", b"\xc3", b"\xe2\x82", b"\xff", b"\x80"])
def test_modified_utf8_rejects_garbage(bad):
    with pytest.raises(ValueError):
        _java.decode_modified_utf8(bad)


# ------------------------------------------------------------------ edits

def test_add_and_remove_keep_raw_bytes_and_keytool_reads(jks_world, tmp_path):
    data = read(jks_world["jks"])
    store = _jks.parse(data, PASSWORD)
    before = {e.alias: e.raw for e in store.entries}
    store.remove("OLD-MINISTRY-CERT-2014")
    new_der = make_cert("new one")
    added = store.add_trusted("CA1", new_der, 1700000000000)  # alias taken: suffixed
    assert added.alias == "ca1-2"
    assert store.add_trusted("Ca1", new_der, 1700000000000).alias == "ca1-3"
    out = tmp_path / "edited.jks"
    out.write_bytes(_jks.serialize(store, PASSWORD))
    again = _jks.parse(out.read_bytes(), PASSWORD)
    for entry in again.entries:
        if entry.alias in before:
            assert entry.raw == before[entry.alias]
    listing = keytool("-list", "-v", "-storetype", "JKS", "-keystore", str(out),
                      "-storepass:file", jks_world["pw"]).stdout
    assert "Your keystore contains 5 entries" in listing
    assert "Alias name: ca1-2" in listing and "Alias name: ca1-3" in listing
    assert "old-ministry-cert-2014" not in listing
    assert sha256_fingerprint(new_der) in listing
    assert listing.count("PrivateKeyEntry") == 1


def test_version1_entries_have_no_cert_type():
    der = make_cert("v1")
    store = _jks.JksFile(_jks.JKS_MAGIC, 1, [])
    store.add_trusted("a", der, 5)
    data = _jks.serialize(store, "")
    again = _jks.parse(data, "")
    assert again.version == 1 and again.entries[0].der == der
    assert again.entries[0].raw == struct.pack(">I", 2) + _jks.write_utf("a") + struct.pack(">q", 5) \
        + struct.pack(">I", len(der)) + der


def test_unique_alias():
    store = _jks.JksFile()
    assert store.unique_alias("V5") == "v5"
    store.add_trusted("v5", b"x", 0)
    store.add_trusted("v5-2", b"y", 0)
    assert store.unique_alias("V5") == "v5-3"


# ------------------------------------------------------------------ errors

def test_wrong_password(jks_world):
    with pytest.raises(StoreError) as err:
        _jks.parse(read(jks_world["jks"]), "wrong")
    assert err.value.code == WRONG_PASSWORD
    assert str(err.value) == "store password incorrect or store damaged (integrity check failed)"


def test_flipped_byte_is_reported_like_a_wrong_password(jks_world):
    data = bytearray(read(jks_world["jks"]))
    data[-100] ^= 1  # inside a certificate: the structure still parses
    with pytest.raises(StoreError) as err:
        _jks.parse(bytes(data), PASSWORD)
    assert err.value.code == WRONG_PASSWORD
    assert "store damaged" in str(err.value)  # the digest cannot tell which: say both


def test_no_password_reads_but_cannot_write(jks_world):
    data = read(jks_world["jks"])
    store = _jks.parse(data, None)
    assert not store.integrity_checked and len(store.entries) == 4
    with pytest.raises(StoreError) as err:
        _jks.serialize(store, None)
    assert err.value.code == WRONG_PASSWORD


@pytest.mark.parametrize("cut", [1, 3, 8, 13, 40, 300, -21, -1])
def test_truncated(jks_world, cut):
    data = read(jks_world["jks"])
    with pytest.raises(StoreError) as err:
        _jks.parse(data[:cut], PASSWORD)
    assert err.value.code == CORRUPT
    assert "truncated" in err.value.reason


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_every_truncation_is_corrupt(jks_world, data):
    raw = read(jks_world["jceks"])
    cut = data.draw(st.integers(min_value=1, max_value=len(raw) - 1))
    with pytest.raises(StoreError) as err:
        _jks.parse(raw[:cut], PASSWORD)
    assert err.value.code == CORRUPT


@pytest.mark.parametrize("name", ["jks", "jceks", "odd"])
@pytest.mark.parametrize("password", [PASSWORD, None])
def test_truncation_at_every_byte_is_corrupt(jks_world, name, password):
    """Deterministic: every cut point, with and without the integrity check."""
    raw = read(jks_world[name])
    wrong = {}
    for cut in range(1, len(raw)):
        try:
            _jks.parse(raw[:cut], password)
            wrong[cut] = "read as a whole keystore"
        except StoreError as exc:
            if exc.code != CORRUPT or "truncated" not in exc.reason:
                wrong[cut] = "%s: %s" % (exc.code, exc.reason)
    assert wrong == {}


def test_garbled_tag_reports_offset(jks_world):
    data = bytearray(read(jks_world["jks"]))
    data[12:16] = struct.pack(">I", 9)
    with pytest.raises(StoreError) as err:
        _jks.parse(bytes(data), PASSWORD)
    assert err.value.code == CORRUPT
    assert "byte 12" in err.value.reason and "unknown tag 9" in err.value.reason


def test_trailing_bytes_are_corrupt(jks_world):
    data = read(jks_world["jks"])
    body = data[:-20] + b"junk"
    forged = body + hashlib.sha1(PASSWORD.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()
    with pytest.raises(StoreError) as err:
        _jks.parse(forged, PASSWORD)
    assert err.value.code == CORRUPT


def test_secret_entry_refused_in_jks(jks_world):
    data = bytearray(read(jks_world["jceks"]))
    data[0:4] = struct.pack(">I", _jks.JKS_MAGIC)
    with pytest.raises(StoreError) as err:
        _jks.parse(bytes(data), None)
    assert err.value.code == CORRUPT


@pytest.mark.parametrize("content, hint", [
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM"),
    (b"\x30\x82\x01\x00" + b"\x00" * 300, "PKCS#12"),
    (b"hello world, this is not a keystore", ""),
])
def test_not_a_keystore(content, hint):
    with pytest.raises(StoreError) as err:
        _jks.parse(content, PASSWORD)
    assert err.value.code == UNKNOWN_FORMAT
    assert hint in err.value.reason


def test_empty_file_is_corrupt():
    with pytest.raises(StoreError) as err:
        _jks.parse(b"", PASSWORD)
    assert err.value.code == CORRUPT


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_damaged_files_only_raise_store_errors(jks_world, data):
    raw = read(jks_world[data.draw(st.sampled_from(["jks", "jceks"]))])
    if data.draw(st.booleans()):
        where = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:where] + bytes([raw[where] ^ data.draw(st.integers(1, 255))]) + raw[where + 1:]
    else:
        raw = data.draw(st.binary(max_size=300))
    try:
        _jks.parse(raw, PASSWORD)
    except StoreError as exc:
        assert exc.code in (CORRUPT, UNKNOWN_FORMAT, WRONG_PASSWORD)
    try:
        _jks.parse(raw, None)
    except StoreError as exc:
        assert exc.code in (CORRUPT, UNKNOWN_FORMAT)
