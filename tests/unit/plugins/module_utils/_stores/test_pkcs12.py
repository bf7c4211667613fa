"""Pkcs12Store with both backends (cryptography, keytool), checked with the real keytool."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import example, given, settings
from hypothesis import strategies as st
from javatools import PASSWORD, keytool, needs_keytool
from javatools import make_cert_and_key as make_cert

from ansible_collections.sne.guichet.plugins.module_utils import _oids as O
from ansible_collections.sne.guichet.plugins.module_utils._common import io as _atomic
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    TOOL_MISSING,
    UNKNOWN_FORMAT,
    VERIFY_FAILED,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._formats import keytool as K
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as F
from ansible_collections.sne.guichet.plugins.module_utils._stores import pkcs12 as P
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec

pytestmark = needs_keytool


class Runner:
    """run_command as AnsibleModule has it; records every argv."""

    def __init__(self):
        self.calls = []
        self.environs = []

    def __call__(self, argv, data=None, environ_update=None):
        self.calls.append(list(argv))
        self.environs.append(dict(environ_update or {}))
        env = dict(os.environ)
        env.update(environ_update or {})
        proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def find_tool(name):
    return shutil.which(name)


def no_tool(name):
    return None


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """keytool-made PKCS12 stores: a truststore, and a keystore with a key and a secret."""
    root = tmp_path_factory.mktemp("store_p12")
    pw = root / "pw"
    pw.write_text(PASSWORD + "\n")
    certs = {name: make_cert("p12 test " + name)[0] for name in ("ca1", "ca2", "v4", "spare")}
    certs["authority"], authority = make_cert("p12 test authority")
    certs["v5"], _key = make_cert("p12 test v5 (encryption, issued by the authority)", authority)
    for name, der in certs.items():
        (root / (name + ".der")).write_bytes(der)
    trust = str(root / "trust.p12")
    keys = str(root / "keys.p12")
    for path, aliases in ((trust, (("CA1", "ca1"), ("Old-Ministry-Cert-2014", "v4"))),
                          (keys, (("ca1", "ca1"), ("old-ministry-cert-2014", "v4"), ("ca2", "ca2")))):
        for alias, name in aliases:
            keytool("-importcert", "-noprompt", "-alias", alias, "-file", str(root / (name + ".der")),
                    "-storetype", "PKCS12", "-keystore", path, "-storepass:file", str(pw))
    common = ["-storetype", "PKCS12", "-keystore", keys, "-storepass:file", str(pw)]
    keytool("-genkeypair", "-alias", "Server", "-keyalg", "EC", "-dname", "CN=server", *common)
    keytool("-genseckey", "-alias", "hmac", "-keyalg", "AES", "-keysize", "128", *common)
    server_fp = keytool("-list", *common).stdout.split("PrivateKeyEntry")[1].split("): ")[1].split()[0]
    return {"root": root, "pw": str(pw), "certs": certs, "trust": trust, "keys": keys,
            "server_fp": server_fp}


@pytest.fixture
def copy_of(world, tmp_path):
    def copy(name):
        folder = tmp_path / "etc"
        folder.mkdir(exist_ok=True)
        path = folder / (name + ".p12")
        shutil.copy(world[name], path)
        return str(path)
    return copy


def make_store(path, password=PASSWORD, runner=None, tool=find_tool, **kwargs):
    return P.Pkcs12Store(StoreSpec(path, "pkcs12", password=password, **kwargs),
                         runner or Runner(), tool)


def entry(world, name, label=None):
    return CertEntry(label or name, world["certs"][name])


def listing(world, path, *extra):
    return keytool("-list", *extra, "-storetype", "PKCS12", "-keystore", path,
                   "-storepass:file", world["pw"]).stdout


def rotate(world, path, **kwargs):
    store = make_store(path, **kwargs)
    entries = store.load()
    plan = store.plan(entries, [entry(world, "v5", "SNE-Chiffrement-V5"), entry(world, "authority")],
                      {entry(world, "v4").sha256})
    assert [e.name for e in plan.remove] == ["old-ministry-cert-2014"]
    backup = store.apply(plan, None)
    return store, backup


def assert_rotated(world, path, total):
    verbose = listing(world, path, "-v")
    assert "Your keystore contains %d entr" % total in verbose
    assert entry(world, "v5").sha256 in verbose and entry(world, "authority").sha256 in verbose
    assert entry(world, "v4").sha256 not in verbose
    assert "Alias name: sne-chiffrement-v5" in verbose  # keytool lists PKCS12 aliases lowercased
    rfc = listing(world, path, "-rfc")
    assert "Entry type: trustedCertEntry" in rfc
    return verbose


# ------------------------------------------------------------------ cryptography backend

def test_truststore_uses_cryptography(world, copy_of):
    path = copy_of("trust")
    runner = Runner()
    store = make_store(path, runner=runner, tool=no_tool)  # no keytool needed at all
    entries = store.load()
    assert store.details["backend"] == "cryptography"
    assert sorted(e.name for e in entries) == ["ca1", "old-ministry-cert-2014"]
    plan = store.plan(entries, [entry(world, "v5", "SNE-Chiffrement-V5"), entry(world, "authority")],
                      {entry(world, "v4").sha256})
    store.apply(plan, None)
    assert runner.calls == []
    verbose = assert_rotated(world, path, 3)
    assert "Alias name: ca1" in verbose
    # serialize_java_truststore keeps the friendlyName case and the Java trust attribute
    loaded = pkcs12.load_pkcs12(open(path, "rb").read(), PASSWORD.encode())
    assert sorted(c.friendly_name for c in loaded.additional_certs) == [
        b"CA1", b"SNE-Chiffrement-V5", b"authority"]


def test_truststore_create_with_cryptography(world, tmp_path):
    path = str(tmp_path / "new.p12")
    store = make_store(path, create=True, tool=no_tool)
    assert store.load() == []
    store.apply(store.plan([], [entry(world, "v5", "V5")], set()), Backups(str(tmp_path / "b"), "r"))
    assert entry(world, "v5").sha256 in listing(world, path, "-v")


def test_removing_the_last_certificate_falls_back_to_keytool(world, copy_of):
    path = copy_of("trust")
    store = make_store(path)
    entries = store.load()
    plan = store.plan(entries, [], set(e.sha256 for e in entries))
    store.apply(plan, None)
    assert store.details["backend"] == "keytool"
    assert "Your keystore contains 0 entries" in listing(world, path)


# ------------------------------------------------------------------ keytool backend

def test_keystore_with_private_key_uses_keytool(world, copy_of):
    path = copy_of("keys")
    runner = Runner()
    store, _backup = rotate(world, path, runner=runner)
    assert store.details["backend"] == "keytool"
    assert store.details["private_keys"] == [{"alias": "server", "chain": [world["server_fp"]]}]
    assert store.details["secret_keys"] == ["hmac"]
    verbose = assert_rotated(world, path, 6)
    assert world["server_fp"] in verbose
    rfc = listing(world, path, "-rfc")
    assert rfc.count("Entry type: PrivateKeyEntry") == 1 and rfc.count("Entry type: SecretKeyEntry") == 1
    # the private key still works
    keytool("-exportcert", "-rfc", "-alias", "server", "-storetype", "PKCS12", "-keystore", path,
            "-storepass:file", world["pw"])
    csr = keytool("-certreq", "-alias", "server", "-storetype", "PKCS12", "-keystore", path,
                  "-storepass:file", world["pw"]).stdout
    assert "BEGIN NEW CERTIFICATE REQUEST" in csr
    # the password is never on a command line nor in a file: only in keytool's environment
    for argv, environ in zip(runner.calls, runner.environs):
        assert not any(PASSWORD in arg for arg in argv)
        assert argv[argv.index("-storepass:env") + 1] == K.PASSWORD_VARIABLE
        assert environ[K.PASSWORD_VARIABLE] == PASSWORD
        assert not any(":file" in arg for arg in argv)
    assert K.PASSWORD_VARIABLE not in os.environ
    assert all("-J-Duser.language=en" in argv for argv in runner.calls)


def test_truststore_without_cryptography_uses_keytool(world, copy_of, monkeypatch):
    monkeypatch.setattr(P, "HAS_CRYPTOGRAPHY", False)
    path = copy_of("trust")
    store, _backup = rotate(world, path)
    assert store.details["backend"] == "keytool"
    assert_rotated(world, path, 3)


def test_keytool_present_under_another_alias_is_a_no_op(world, copy_of):
    path = copy_of("keys")
    before = sha(path)
    store = make_store(path)
    plan = store.plan(store.load(), [entry(world, "ca2", "renamed")], set())
    assert not plan.changed and store.apply(plan, None) is None
    assert sha(path) == before


def test_keytool_alias_collision_and_backup(world, copy_of, tmp_path):
    path = copy_of("keys")
    before = open(path, "rb").read()
    store = make_store(path)
    plan = store.plan(store.load(), [entry(world, "spare", "CA1")], set())
    copy = store.apply(plan, Backups(str(tmp_path / "bk"), "run"))
    assert open(copy, "rb").read() == before
    assert "Alias name: ca1-2" in listing(world, path, "-v")


def test_retired_in_a_private_key_chain_is_reported(world, copy_of):
    path = copy_of("keys")
    store = make_store(path)
    plan = store.plan(store.load(), [], {world["server_fp"]})
    assert not plan.changed
    assert store.details["retired_in_private_keys"][0]["alias"] == "server"


def test_odd_password_and_non_ascii_alias(world, tmp_path, monkeypatch):
    # JDK 17 refuses non-ASCII PKCS12 passwords ("Password is not ASCII"): shell-hostile ASCII
    password = "p@ss w0rd\"'$(id);-storepass"
    pw = tmp_path / "pw"
    pw.write_text(password + "\n", encoding="utf-8")
    path = str(tmp_path / "u.p12")
    keytool("-importcert", "-noprompt", "-alias", "Été", "-file", str(world["root"] / "v4.der"),
            "-storetype", "PKCS12", "-keystore", path, "-storepass:file", str(pw))
    for crypto in (True, False):
        monkeypatch.setattr(P, "HAS_CRYPTOGRAPHY", crypto)
        store = make_store(path, password=password)
        entries = store.load()
        assert "été" in [e.name for e in entries]
        plan = store.plan(entries, [entry(world, "v5" if crypto else "authority", "Clé-%s" % crypto)],
                          set())
        store.apply(plan, None)
        assert store.details["backend"] == ("cryptography" if crypto else "keytool")
    out = keytool("-list", "-storetype", "PKCS12", "-keystore", path, "-storepass:file", str(pw)).stdout
    assert "Your keystore contains 3 entries" in out
    assert "clé-true" in out and "clé-false" in out and "été" in out


# ------------------------------------------------------------------ failures leave the file as it was

def _expect_failure(path, code, action):
    before = sha(path)
    with pytest.raises(StoreError) as err:
        action()
    assert err.value.code == code, err.value.reason
    assert sha(path) == before
    assert [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".sne-tmp")] == []
    return err.value


@pytest.mark.parametrize("name", ["trust", "keys"])
def test_wrong_password(copy_of, name):
    path = copy_of(name)
    err = _expect_failure(path, WRONG_PASSWORD, make_store(path, password="wrong").load)
    assert err.reason == "store password incorrect or store damaged (integrity check failed)"


def test_wrong_password_reported_by_keytool_itself(copy_of, monkeypatch):
    monkeypatch.setattr(P, "mac_matches", lambda info, password: None)  # skip the stdlib check
    path = copy_of("keys")
    err = _expect_failure(path, WRONG_PASSWORD, make_store(path, password="wrong").load)
    assert "keystore password was incorrect" in err.reason
    assert err.reason.startswith("store password incorrect or store damaged (keytool: ")


def test_no_password(copy_of):
    path = copy_of("trust")
    _expect_failure(path, WRONG_PASSWORD, make_store(path, password=None).load)


@pytest.mark.parametrize("cut", [2, 11, 40, 500, -1])  # 11: just before the authSafe OID tag
def test_truncated(copy_of, cut):
    path = copy_of("keys")
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:cut])
    err = _expect_failure(path, CORRUPT, make_store(path).load)
    assert "truncated" in err.reason


def test_truncated_reported_by_keytool_itself(copy_of, monkeypatch):
    monkeypatch.setattr(P, "outline", lambda data: F.Outline([], b"", None))
    path = copy_of("keys")
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:500])
    _expect_failure(path, CORRUPT, make_store(path).load)


# ------------------------------------------------------------------ truncation at every byte

def _tlv(tag, body, indefinite=False):
    if indefinite:
        return bytes([tag, 0x80]) + body + b"\0\0"
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


_OID_DATA = bytes.fromhex("06092a864886f70d010701")
_OID_SHA256 = bytes.fromhex("0609608648016503040201")


def _hand_made_pfx(salt_size=None, indefinite=False):
    """A PFX holding no bag: short lengths, one-octet long lengths (with a big MAC salt)
    or BER indefinite lengths and a constructed OCTET STRING."""
    if indefinite:
        auth_safe = _tlv(0xA0, _tlv(0x24, _tlv(0x04, b"\x30\x00"), True), True)
    else:
        auth_safe = _tlv(0xA0, _tlv(0x04, b"\x30\x00"))
    fields = _tlv(0x02, b"\x03") + _tlv(0x30, _OID_DATA + auth_safe, indefinite)
    if salt_size is not None:
        digest = _tlv(0x30, _tlv(0x30, _OID_SHA256 + b"\x05\x00") + _tlv(0x04, b"\x11" * 32))
        fields += _tlv(0x30, digest + _tlv(0x04, b"\x22" * salt_size) + _tlv(0x02, b"\x27\x10"))
    return _tlv(0x30, fields, indefinite)


@pytest.fixture(scope="session")
def p12_samples(world):
    """PKCS#12 files whose outer lengths take every form: keytool's and cryptography's
    (two-octet lengths), a big truststore (three octets) and hand-made ones."""
    ca1 = x509.load_der_x509_certificate(world["certs"]["ca1"])
    protection = serialization.BestAvailableEncryption(b"secret")
    owner_der, (_name, key) = make_cert("p12 test key owner")
    owner = x509.load_der_x509_certificate(owner_der)
    many = [pkcs12.PKCS12Certificate(x509.load_der_x509_certificate(make_cert("p12 bulk %d" % n)[0]),
                                     b"bulk-%d" % n) for n in range(160)]
    samples = {
        "keytool-trust": open(world["trust"], "rb").read(),
        "keytool-keys": open(world["keys"], "rb").read(),
        "cryptography-truststore": pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(ca1, b"ca1")], protection),
        "cryptography-key": pkcs12.serialize_key_and_certificates(b"k", key, owner, [ca1], protection),
        "cryptography-big-truststore": pkcs12.serialize_java_truststore(many, protection),
        "hand-made-short": _hand_made_pfx(),
        "hand-made-81": _hand_made_pfx(salt_size=120),
        "hand-made-ber": _hand_made_pfx(indefinite=True),
    }
    forms = dict((name, data[1]) for name, data in samples.items())
    assert forms["keytool-keys"] == forms["cryptography-key"] == 0x82
    assert (forms["cryptography-big-truststore"], forms["hand-made-short"], forms["hand-made-81"],
            forms["hand-made-ber"]) == (0x83, len(samples["hand-made-short"]) - 2, 0x81, 0x80)
    for data in samples.values():
        F.outline(data)  # every sample is whole and readable
    return samples


@pytest.mark.parametrize("name", ["keytool-trust", "keytool-keys", "cryptography-truststore",
                                  "cryptography-key", "cryptography-big-truststore",
                                  "hand-made-short", "hand-made-81", "hand-made-ber"])
def test_every_truncation_is_corrupt(p12_samples, name):
    raw = p12_samples[name]
    wrong = {}
    for cut in range(1, len(raw)):  # every cut point: well under a second, even for 67 KiB
        try:
            F.outline(raw[:cut])
            wrong[cut] = "read as a whole PKCS#12"
        except StoreError as exc:
            if exc.code != CORRUPT or "truncated" not in exc.reason:
                wrong[cut] = "%s: %s" % (exc.code, exc.reason)
    assert wrong == {}


def test_every_truncation_of_a_store_file_is_corrupt_and_left_alone(world, tmp_path):
    raw = open(world["keys"], "rb").read()
    folder = tmp_path / "etc"
    folder.mkdir()
    path = str(folder / "keys.p12")
    for cut in range(1, len(raw)):
        with open(path, "wb") as handle:
            handle.write(raw[:cut])
        err = _expect_failure(path, CORRUPT, make_store(path).load)
        assert "truncated" in err.reason, (cut, err.reason)
        with open(path, "rb") as handle:
            assert handle.read() == raw[:cut]


@pytest.mark.parametrize("head", [
    b"\x30\x82\x03\xc6\x05",  # no INTEGER where the version is
    b"\x30\x82\x03\xc6\x02\x01\x02\x30",  # version 2
    b"\x30\x82\x03\xc6\x02\x02\x00",  # 3 is 02 01 03, never padded (BER neither)
    b"\x30\x82\x03\xc6\x02\x01\x03\x02",  # no ContentInfo after the version
    b"\x30\x82\x03\xc6\x02\x01\x03\x30\x82\x03\x70\x04",  # no content type OID
    b"\x30\x85",  # a length of five octets
])
def test_short_non_pfx_is_unknown_format(head):
    """A byte present that does not fit decides, even when the data ends right after it."""
    with pytest.raises(StoreError) as err:
        F.outline(head)
    assert err.value.code == UNKNOWN_FORMAT


def test_deeply_nested_octet_string_is_corrupt_not_a_crash():
    inner = _tlv(0x04, b"\x30\x00")
    for _n in range(3000):
        inner = _tlv(0x24, inner)
    data = _tlv(0x30, _tlv(0x02, b"\x03") + _tlv(0x30, _OID_DATA + _tlv(0xA0, inner)))
    with pytest.raises(StoreError) as err:
        F.outline(data)
    assert err.value.code == CORRUPT and "nested too deeply" in err.value.reason


@pytest.mark.parametrize("content, hint", [
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM"),
    (b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x00" + b"\x00" * 20, "JKS"),
    ("der-cert", "not a PFX"),
])
def test_not_pkcs12(world, copy_of, content, hint):
    path = copy_of("trust")
    if content == "der-cert":
        content = world["certs"]["ca1"]
    with open(path, "wb") as handle:
        handle.write(content)
    err = _expect_failure(path, UNKNOWN_FORMAT, make_store(path).load)
    assert hint in err.reason


def test_keytool_missing(world, copy_of, monkeypatch):
    path = copy_of("keys")
    err = _expect_failure(path, TOOL_MISSING, make_store(path, tool=no_tool).load)
    assert err.reason == "keytool not found on the host; install a JRE or give keytool's path"
    monkeypatch.setattr(P, "HAS_CRYPTOGRAPHY", False)
    path = copy_of("trust")
    _expect_failure(path, TOOL_MISSING, make_store(path, tool=no_tool).load)


def test_keytool_missing_at_apply_when_cryptography_cannot_write(world, copy_of):
    path = copy_of("trust")
    store = make_store(path, tool=no_tool)
    entries = store.load()
    plan = store.plan(entries, [], set(e.sha256 for e in entries))  # would empty the store
    _expect_failure(path, TOOL_MISSING, lambda: store.apply(plan, None))


def test_missing_store(tmp_path):
    with pytest.raises(StoreError) as err:
        make_store(str(tmp_path / "none.p12")).load()
    assert err.value.code == NOT_FOUND


@pytest.mark.parametrize("crypto", [True, False])
def test_read_only_folder_simulated(world, copy_of, monkeypatch, crypto):
    """Tests run as root, which ignores chmod 0555: simulate EROFS on rename instead."""
    monkeypatch.setattr(P, "HAS_CRYPTOGRAPHY", crypto)
    path = copy_of("trust")
    store = make_store(path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_atomic.os, "rename", refuse)
    err = _expect_failure(path, IO_ERROR, lambda: store.apply(plan, None))
    assert "read-only file system" in err.reason


def test_read_only_folder_real_mount(world, tmp_path):
    point = tmp_path / "ro"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(point)], capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = str(point / "keys.p12")
        shutil.copy(world["keys"], path)
        remount = ["mount", "-o", "remount,ro", str(point)]
        if subprocess.run(remount, capture_output=True, check=False).returncode:
            pytest.skip("cannot remount read-only")
        store = make_store(path)
        plan = store.plan(store.load(), [entry(world, "v5")], set())
        err = _expect_failure(path, IO_ERROR, lambda: store.apply(plan, None))
        assert "read-only file system" in err.reason
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


@pytest.mark.parametrize("crypto", [True, False])
def test_verify_catches_a_lossy_write(world, copy_of, monkeypatch, crypto):
    monkeypatch.setattr(P, "HAS_CRYPTOGRAPHY", crypto)
    path = copy_of("trust")
    store = make_store(path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())
    # drop one entry in the planned expectation's source: the written file then differs
    store._listing.append(K.ListedEntry("ghost", "trustedCertEntry", [world["certs"]["spare"]]))
    _expect_failure(path, VERIFY_FAILED, lambda: store.apply(plan, None))


def test_store_changed_since_load(world, copy_of):
    path = copy_of("trust")
    store = make_store(path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())
    other = make_store(path)
    other.apply(other.plan(other.load(), [entry(world, "spare")], set()), None)
    _expect_failure(path, IO_ERROR, lambda: store.apply(plan, None))


# ------------------------------------------------------------------ pieces

def test_keytool_error_mapping():
    cases = {
        "keytool error: java.io.IOException: keystore password was incorrect": WRONG_PASSWORD,
        "keytool error: java.io.EOFException": CORRUPT,
        "keytool error: java.io.IOException: toDerInputStream rejects tag type 45": UNKNOWN_FORMAT,
        "keytool error: java.lang.Exception: Keystore file does not exist: x": NOT_FOUND,
        "keytool error: java.lang.Exception: Alias <a> does not exist": IO_ERROR,
    }
    for text, code in cases.items():
        assert K.keytool_error(text, "/x").code == code, text


def test_mac_check_matches_java_and_openssl(world, tmp_path):
    info = F.outline(open(world["keys"], "rb").read())
    assert F.mac_matches(info, PASSWORD) is True and F.mac_matches(info, "x") is False
    assert {O.OID_SHROUDED_KEY_BAG, O.OID_SECRET_BAG} <= info.clear_bag_types()
    # OpenSSL-style MAC (SHA-1 here) from cryptography's own writer
    data = pkcs12.serialize_key_and_certificates(
        b"n", None, x509.load_der_x509_certificate(world["certs"]["ca1"]), None,
        serialization.BestAvailableEncryption(b"secret"))
    assert F.mac_matches(F.outline(data), "secret") is True
    assert F.mac_matches(F.outline(data), "secreT") is False


def test_parse_keytool_list_refuses_unknown_output():
    with pytest.raises(StoreError) as err:
        K.parse_keytool_list("something else entirely")
    assert err.value.code == VERIFY_FAILED


def test_scratch_folders_left_by_killed_runs_are_removed(tmp_path, monkeypatch):
    """A new scratch folder is named after its process; making one removes the stale ones:
    ours (name, folder, this user, 0700), changed before this process started, and of a
    process that no longer runs (any age for the old naming, which held the password)."""
    monkeypatch.setattr(K.tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])  # its pid: a process that no longer runs
    gone.wait()
    old = _atomic._STARTED - 3600

    def folder(name, mode=0o700, age=old):
        path = tmp_path / name
        path.mkdir()
        (path / "storepass").write_text("changeit\n")
        path.chmod(mode)
        os.utime(path, (age, age))
        return path

    stale = [folder("sne-keytool-ab_cd123"), folder("sne-keytool-%d-ab_cd123" % gone.pid)]
    kept = [folder("sne-keytool-%d-ab_cd123" % os.getpid()),  # a live process
            folder("sne-keytool-%d-zz_cd123" % gone.pid, age=_atomic._STARTED + 1),  # new
            folder("sne-keytool-%d-yy_cd123" % gone.pid, mode=0o755),  # not private
            folder("sne-keytool-notes")]  # not our name
    (tmp_path / "sne-keytool-xx_cd123").symlink_to(kept[0])  # a link: never followed
    with K._Scratch(PASSWORD) as scratch:
        assert os.path.basename(scratch.folder).startswith("sne-keytool-%d-" % os.getpid())
        assert stat.S_IMODE(os.stat(scratch.folder).st_mode) == 0o700
        assert os.listdir(scratch.folder) == []  # no password file
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept) and (tmp_path / "sne-keytool-xx_cd123").is_symlink()
    assert not os.path.exists(scratch.folder)


@given(how=st.sampled_from(["cut", "flip", "random"]), where=st.integers(0, 1 << 16),
       mask=st.integers(1, 255), noise=st.binary(max_size=200))
@example(how="cut", where=11, mask=1, noise=b"")  # once read as unknown_format (see above)
@example(how="cut", where=0, mask=1, noise=b"")
@settings(max_examples=200, deadline=None)
def test_outline_never_crashes(world, how, where, mask, noise):
    raw = open(world["keys"], "rb").read()
    where %= len(raw)
    if how == "cut":
        blob = raw[:where]
    elif how == "flip":
        blob = raw[:where] + bytes([raw[where] ^ mask]) + raw[where + 1:]
    else:
        blob = noise
    try:
        info = F.outline(blob)
    except StoreError as exc:
        assert exc.code in (CORRUPT, UNKNOWN_FORMAT, "unsupported")
        if how == "cut":
            assert exc.code == CORRUPT
        return
    assert F.mac_matches(info, PASSWORD) in (True, False, None)
