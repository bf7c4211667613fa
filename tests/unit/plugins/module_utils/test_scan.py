"""The scan engine: classification, walking (links, depth, exclude, size, FIFOs) and every
format, on trees made with the test PKI and stores made by the real keytool."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12
from javatools import keytool, needs_keytool
from nsstools import add, make_db, needs_certutil

from ansible_collections.sne.guichet.plugins.module_utils import _scan
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as _p12
from ansible_collections.sne.guichet.plugins.module_utils._formats.detect import (
    DER,
    JCEKS,
    JKS,
    PKCS12,
    TEXT,
    classify,
)
from ansible_collections.sne.guichet.plugins.module_utils._scan import ScanError, scan
from ansible_collections.sne.guichet.plugins.module_utils._x509 import cert_info

P12_PASSWORD = "p12-Secret!"
TRUST_PASSWORD = "trust-Secret!"
NOTHING_SKIPPED = dict.fromkeys(_scan.SKIP_REASONS, 0)


# --------------------------------------------------------------------------- helpers


def cert(pki, name, kind="der"):
    """Bytes of a PKI certificate: kind der or pem."""
    entry = pki["certificates"][name]
    with open(os.path.join(pki["dir"], entry["der" if kind == "der" else "path"]), "rb") as handle:
        return handle.read()


def fp(pki, name):
    return pki["certificates"][name]["sha256"]


def place(path, fmt, alias=None, index=None, target=None):
    return {"path": str(path), "format": fmt, "alias": alias, "index": index, "target": target}


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_command(argv, data=None, environ_update=None):
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def java(pki, tmp_path_factory):
    """Stores made by keytool: a JKS (private key + V4 under an odd alias + AC V4), a JCEKS,
    a PKCS12 keystore with a private key and V4, a trust-only PKCS12; all password-protected."""
    if shutil.which("keytool") is None:
        pytest.skip("keytool is needed")
    root = tmp_path_factory.mktemp("scan_java")
    v4 = os.path.join(pki["dir"], pki["certificates"]["chiffrement-v4"]["path"])
    ac4 = os.path.join(pki["dir"], pki["certificates"]["ac-v4"]["path"])
    out = {name: str(root / name) for name in ("app.jks", "app.jceks", "app.p12", "trust.p12")}

    def store(path, kind, password):
        return ["-keystore", path, "-storetype", kind, "-storepass", password]

    keytool("-genkeypair", *store(out["app.jks"], "JKS", "changeit"), "-keypass", "changeit",
            "-alias", "guichet-signing", "-keyalg", "EC", "-dname", "CN=guichet.example", "-validity", "365")
    keytool("-importcert", "-noprompt", *store(out["app.jks"], "JKS", "changeit"),
            "-alias", "Old-Ministry-Cert-2014", "-file", v4)
    keytool("-importcert", "-noprompt", *store(out["app.jks"], "JKS", "changeit"),
            "-alias", "ac-sne-v4", "-file", ac4)
    keytool("-importcert", "-noprompt", *store(out["app.jceks"], "JCEKS", "changeit"),
            "-alias", "sne", "-file", v4)
    keytool("-genkeypair", *store(out["app.p12"], "PKCS12", P12_PASSWORD), "-alias", "guichet-tls",
            "-keyalg", "EC", "-dname", "CN=guichet-tls.example", "-validity", "365")
    keytool("-importcert", "-noprompt", *store(out["app.p12"], "PKCS12", P12_PASSWORD),
            "-alias", "sne-v4", "-file", v4)
    keytool("-importcert", "-noprompt", *store(out["trust.p12"], "PKCS12", TRUST_PASSWORD),
            "-alias", "sne-chiffrement", "-file", v4)
    with open(out["app.jks"], "rb") as handle:
        out["key_fp"] = [e for e in _jks.parse(handle.read(), None).entries
                         if e.alias == "guichet-signing"][0].chain_fingerprints()[0]
    return out


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("head, kind", [
    (b"\xfe\xed\xfe\xed\x00\x00\x00\x02", JKS),
    (b"\xce\xce\xce\xce\x00\x00\x00\x02", JCEKS),
    (b"\x30\x82\x0a\x1c\x02\x01\x03\x30\x82\x09\xd6\x06\x09", PKCS12),
    (b"\x30\x80\x02\x01\x03\x30\x80\x06\x09", PKCS12),  # BER, indefinite lengths
    (b"\x30\x82\x04\xe3\x30\x82\x03\xcb\xa0\x03\x02\x01\x02", DER),  # v3 certificate
    (b"\x30\x82\x01\x10\x30\x81\xbb\x02\x01\x01", DER),  # v1 certificate, short tbs
    (b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01", None),  # RSA private key
    (b"\x30\x82\x05\x10\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02", None),  # PKCS#7
    (b"\x30\x82\x01", None),  # truncated header
    (b"\x30\x0a\x30\x08", TEXT),  # short lengths: no certificate, and no NUL byte
    (b"PK\x03\x04\x14\x00\x00\x00", None),  # zip / jar
    (b"\x7fELF\x02\x01\x01\x00", None),
    (b"", None),
    (b"# comment\n-----BEGIN CERTIFICATE-----\nMIIB", TEXT),
    (b"0 * * * * /usr/bin/true\n", TEXT),
    ("d\u00e9j\u00e0 vu\n".encode("utf-8"), TEXT),
])
def test_classify(head, kind):
    assert classify(head) == kind


def test_classify_real_files(pki, java):
    assert classify(cert(pki, "chiffrement-v4")[:64]) == DER
    assert classify(cert(pki, "chiffrement-v4", "pem")[:64]) == TEXT
    for name, kind in (("app.jks", JKS), ("app.jceks", JCEKS), ("app.p12", PKCS12), ("trust.p12", PKCS12)):
        with open(java[name], "rb") as handle:
            assert classify(handle.read(_scan.HEAD_SIZE)) == kind, name


def test_non_candidates_are_not_read_past_their_head(pki, tmp_path, monkeypatch):
    """A binary file is read up to HEAD_SIZE bytes, even when a PEM certificate hides
    further in; no parser runs on a file that is not a candidate."""
    pem = cert(pki, "chiffrement-v4", "pem")
    write(tmp_path / "lib" / "libguichet.so", b"\x7fELF\x02\x01\x01\x00" + b"\0" * 100000 + pem)
    write(tmp_path / "lib" / "app.jar", b"PK\x03\x04" + os.urandom(200000))
    write(tmp_path / "readme.txt", b"no certificate here\n" * 1000)
    write(tmp_path / "key.der", b"\x30\x82\x04\xa4\x02\x01\x00" + b"\1" * 1188)
    reads = {}
    real_fdopen = os.fdopen

    class Counting:
        def __init__(self, handle):
            self.handle = handle
            self.name = os.readlink("/proc/self/fd/%d" % handle.fileno())
            reads[self.name] = 0

        def read(self, size=-1):
            data = self.handle.read(size)
            reads[self.name] += len(data)
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def forbidden(*args, **kwargs):
        raise AssertionError("a parser ran on a file that is not a candidate")

    monkeypatch.setattr(_scan.os, "fdopen", lambda fd, mode: Counting(real_fdopen(fd, mode)))
    for name in ("load_certificates", "pem_blocks"):
        monkeypatch.setattr(_scan, name, forbidden)
    monkeypatch.setattr(_jks, "parse", forbidden)
    monkeypatch.setattr(_p12, "outline", forbidden)
    result = scan([str(tmp_path)])
    assert result["found"] == {}
    assert result["unreadable"] == []
    assert result["files_scanned"] == 4
    assert reads[str(tmp_path / "lib" / "libguichet.so")] == _scan.HEAD_SIZE
    assert reads[str(tmp_path / "lib" / "app.jar")] == _scan.HEAD_SIZE
    assert reads[str(tmp_path / "key.der")] == 1195  # whole file, smaller than the head
    assert reads[str(tmp_path / "readme.txt")] == 20000  # text: searched for BEGIN lines


# --------------------------------------------------------------------------- the full tree


@pytest.fixture
def tree(pki, java, tmp_path):
    """A guichet with V4 copies everywhere, links, a FIFO and traps; and a folder outside it."""
    root = tmp_path / "guichet"
    outside = tmp_path / "elsewhere"
    v4_der, v4_pem = cert(pki, "chiffrement-v4"), cert(pki, "chiffrement-v4", "pem")
    write(outside / "v4.pem", v4_pem)
    write(root / "app" / "lib" / "Chiffrement_SNEV4.cer", v4_der)
    write(root / "app" / "lib" / "guichet.jar", b"PK\x03\x04" + b"\0" * 5000)
    for name in ("app.jks", "app.jceks", "app.p12", "trust.p12"):
        write(root / "app" / "conf" / name, open(java[name], "rb").read())
    write(root / "app" / "conf" / "sne.pem", b"# certificates read by the guichet\n"
          + cert(pki, "ac-v6", "pem") + v4_pem + cert(pki, "ac-v5", "pem"))
    escaped = v4_pem.decode("ascii").strip().replace("\n", "\\n")
    write(root / "app" / "conf" / "settings.json",
          json.dumps({"sne": {"url": "https://sne.example"}}).encode() + b'\n{"cert": "' + escaped.encode()
          + b'"}\n')
    write(root / "certs" / "chiffrement-v4.pem", v4_pem)
    write(root / "certs" / "ac-v4.crt", cert(pki, "ac-v4", "pem"))
    write(root / "certs" / "ac-v5.pem", cert(pki, "ac-v5", "pem"))
    v4_hash = cert_info(v4_der)["subject_hash"]
    os.symlink("chiffrement-v4.pem", str(root / "certs" / (v4_hash + ".0")))
    os.symlink("ac-v5.pem", str(root / "certs" / "ac5-link.pem"))  # a file without V4: not reported
    os.symlink(str(root / "certs" / (v4_hash + ".0")), str(root / "app" / "sne-current.pem"))  # chain
    write(root / "garbage.cer", b"this is not a certificate\n")
    write(root / "backup" / "v4-copy.pem.bak", v4_pem)
    os.mkfifo(str(root / "app" / "guichet.fifo"))
    os.symlink(str(outside), str(root / "out"))  # folder outside: never followed
    os.symlink(str(outside / "v4.pem"), str(root / "certs" / "outside.pem"))  # file outside
    os.symlink("loop-b", str(root / "loop-a"))
    os.symlink("loop-a", str(root / "loop-b"))
    os.symlink(".", str(root / "app" / "again"))  # a folder link into itself
    os.symlink("missing.pem", str(root / "dangling.pem"))
    return root


def test_tree_finds_exactly_the_v4_places(pki, java, tree):
    v4, ac4 = fp(pki, "chiffrement-v4"), fp(pki, "ac-v4")
    v4_hash = cert_info(cert(pki, "chiffrement-v4"))["subject_hash"] + ".0"
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the scan hung (FIFO opened?)"))
    signal.alarm(30)
    try:
        result = scan([str(tree)], sha256=[v4.lower().replace(":", ""), ac4],
                      passwords={str(tree / "app" / "conf" / "app.p12"): P12_PASSWORD,
                                 "*/trust.p12": TRUST_PASSWORD})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    conf = tree / "app" / "conf"
    v4_file = str(tree / "certs" / "chiffrement-v4.pem")
    assert result["found"] == {
        v4: [
            place(tree / "app" / "conf" / "app.jceks", "jceks", alias="sne"),
            place(conf / "app.jks", "jks", alias="old-ministry-cert-2014"),
            place(conf / "app.p12", "pkcs12", alias="sne-v4"),
            place(conf / "settings.json", "pem", index=0),
            place(conf / "sne.pem", "pem", index=1),
            place(conf / "trust.p12", "pkcs12", alias="sne-chiffrement"),
            place(tree / "app" / "lib" / "Chiffrement_SNEV4.cer", "der"),
            place(tree / "app" / "sne-current.pem", "link", target=v4_file),
            place(tree / "backup" / "v4-copy.pem.bak", "pem", index=0),
            place(tree / "certs" / v4_hash, "link", target=v4_file),
            place(tree / "certs" / "chiffrement-v4.pem", "pem", index=0),
        ],
        ac4: [
            place(conf / "app.jks", "jks", alias="ac-sne-v4"),
            place(tree / "certs" / "ac-v4.crt", "pem", index=0),
        ],
    }
    assert result["certificates"] == {
        name_fp: {"subject": pki["certificates"][name]["subject"],
                  "not_after": pki["certificates"][name]["not_after"], "is_ca": name == "ac-v4"}
        for name, name_fp in (("chiffrement-v4", v4), ("ac-v4", ac4))}
    assert result["unreadable"] == [{"path": str(tree / "garbage.cer"), "reason":
                                     "named like a certificate, but holds no certificate: "
                                     "text without any PEM block", "format": None}]
    assert result["references"] == {}  # not asked for
    assert result["not_read"] == dict(NOTHING_SKIPPED, special=1, symlink=2, symlink_outside=2,
                                      symlink_broken=3)
    assert result["files_scanned"] == 13
    assert result["missing"] == []
    text = json.dumps(result)
    assert P12_PASSWORD not in text and TRUST_PASSWORD not in text


def test_tree_reports_every_certificate_when_no_fingerprint_given(pki, java, tree):
    result = scan([str(tree)])
    found = result["found"]
    everything = {fp(pki, n) for n in ("chiffrement-v4", "ac-v4", "ac-v5", "ac-v6")}
    assert set(found) == everything | {java["key_fp"]}
    assert [p["path"] for p in found[fp(pki, "ac-v5")]] == [
        str(tree / "app" / "conf" / "sne.pem"), str(tree / "certs" / "ac-v5.pem"),
        str(tree / "certs" / "ac5-link.pem")]
    assert found[java["key_fp"]] == [place(tree / "app" / "conf" / "app.jks", "jks",
                                           alias="guichet-signing", index=0)]
    assert result["certificates"][java["key_fp"]]["subject"] == "CN=guichet.example"
    # without passwords the PKCS#12 files are unreadable, and said so
    assert [u["path"] for u in result["unreadable"]] == [
        str(tree / "app" / "conf" / "app.p12"), str(tree / "app" / "conf" / "trust.p12"),
        str(tree / "garbage.cer")]
    assert "give its password in passwords" in result["unreadable"][0]["reason"]
    # ... as PKCS#12 keystores, whatever they are called: stores to declare
    assert [u["format"] for u in result["unreadable"]] == ["pkcs12", "pkcs12", None]
    assert not any(p["format"] == "pkcs12" for places in found.values() for p in places)


def test_symlinks_out_of_the_root_are_not_followed(pki, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "deep" / "v4.pem", cert(pki, "chiffrement-v4", "pem"))
    root.mkdir()
    os.symlink(str(outside), str(root / "to-outside"))
    os.symlink(str(outside / "deep" / "v4.pem"), str(root / "v4.pem"))
    os.symlink("../outside/deep", str(root / "relative"))
    result = scan([str(root)])
    assert result["found"] == {}
    assert result["files_scanned"] == 0
    assert result["not_read"] == dict(NOTHING_SKIPPED, symlink_outside=3)
    # the same target is found when its folder is a root too; the link is then reported
    result = scan([str(root), str(outside)])
    assert result["found"] == {fp(pki, "chiffrement-v4"): [
        place(outside / "deep" / "v4.pem", "pem", index=0),
        place(root / "v4.pem", "link", target=str(outside / "deep" / "v4.pem"))]}
    assert result["not_read"] == dict(NOTHING_SKIPPED, symlink=2)  # folder links


def test_symlink_loops_and_a_root_given_as_a_link(pki, tmp_path):
    real = tmp_path / "guichet-2.3"
    write(real / "conf" / "v4.der", cert(pki, "chiffrement-v4"))
    os.symlink("..", str(real / "conf" / "parent"))
    os.symlink(str(real), str(real / "conf" / "self"))
    os.symlink("x", str(real / "y"))
    os.symlink("y", str(real / "x"))
    os.symlink(str(real), str(tmp_path / "guichet"))
    result = scan([str(tmp_path / "guichet")])  # the root link is followed, paths keep its name
    assert result["found"] == {fp(pki, "chiffrement-v4"): [
        place(tmp_path / "guichet" / "conf" / "v4.der", "der")]}
    assert result["not_read"] == dict(NOTHING_SKIPPED, symlink=2, symlink_broken=2)


def test_overlapping_roots_report_each_place_once(pki, tmp_path):
    write(tmp_path / "a" / "b" / "v4.pem", cert(pki, "chiffrement-v4", "pem"))
    result = scan([str(tmp_path / "a" / "b"), str(tmp_path), str(tmp_path / "a"), str(tmp_path)])
    assert result["found"] == {fp(pki, "chiffrement-v4"): [
        place(tmp_path / "a" / "b" / "v4.pem", "pem", index=0)]}
    assert result["files_scanned"] == 1


def test_depth_limit(pki, tmp_path):
    write(tmp_path / "top.der", cert(pki, "ac-v4"))
    write(tmp_path / "a" / "b" / "c" / "d" / "v4.pem", cert(pki, "chiffrement-v4", "pem"))  # depth 5
    assert fp(pki, "chiffrement-v4") in scan([str(tmp_path)], max_depth=5)["found"]
    result = scan([str(tmp_path)], max_depth=4)
    assert set(result["found"]) == {fp(pki, "ac-v4")}
    assert result["not_read"] == dict(NOTHING_SKIPPED, max_depth=1)
    result = scan([str(tmp_path)], max_depth=1)  # only the files directly in the folder
    assert set(result["found"]) == {fp(pki, "ac-v4")}
    assert result["not_read"]["max_depth"] == 1
    deep = tmp_path
    for level in range(12):
        deep = deep / ("l%d" % level)
    write(deep / "v5.pem", cert(pki, "chiffrement-v5", "pem"))
    assert fp(pki, "chiffrement-v5") not in scan([str(tmp_path)])["found"]  # default 6
    assert fp(pki, "chiffrement-v5") in scan([str(tmp_path)], max_depth=13)["found"]


def test_exclude_by_full_path_and_by_name(pki, tmp_path):
    v4 = cert(pki, "chiffrement-v4", "pem")
    write(tmp_path / "keep" / "v4.pem", v4)
    write(tmp_path / "logs" / "v4.pem", v4)
    write(tmp_path / "keep" / "v4.pem.bak", v4)
    write(tmp_path / "keep" / "tmp" / "v4.pem", v4)
    result = scan([str(tmp_path)], exclude=["*.bak", str(tmp_path / "logs"), "*/keep/tmp"])
    assert result["found"] == {fp(pki, "chiffrement-v4"): [
        place(tmp_path / "keep" / "v4.pem", "pem", index=0)]}
    assert result["not_read"] == dict(NOTHING_SKIPPED, excluded=3)
    # a path given explicitly is examined even when it matches a pattern
    result = scan([str(tmp_path / "logs")], exclude=["logs", "*/logs"])
    assert fp(pki, "chiffrement-v4") in result["found"]


def test_size_limit(pki, tmp_path):
    pem = cert(pki, "chiffrement-v4", "pem")
    write(tmp_path / "big.pem", pem + b"#" * 1000)
    write(tmp_path / "exact.pem", pem)
    result = scan([str(tmp_path)], max_file_size=len(pem))
    assert result["found"] == {fp(pki, "chiffrement-v4"): [place(tmp_path / "exact.pem", "pem", index=0)]}
    assert result["not_read"] == dict(NOTHING_SKIPPED, too_large=1)
    assert result["files_scanned"] == 1
    result = scan([str(tmp_path / "big.pem")], max_file_size=len(pem))  # a file given as a root too
    assert result["found"] == {} and result["not_read"]["too_large"] == 1


def test_fifos_and_devices_are_never_opened(tmp_path):
    os.mkfifo(str(tmp_path / "pipe.pem"))
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the scan opened a FIFO"))
    signal.alarm(20)
    try:
        result = scan([str(tmp_path), str(tmp_path / "pipe.pem"), "/dev/null"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert result["not_read"] == dict(NOTHING_SKIPPED, special=3)
    assert result["files_scanned"] == 0


def test_damaged_copies_are_reported(pki, tmp_path):
    der = cert(pki, "chiffrement-v4")
    pem = cert(pki, "chiffrement-v4", "pem")
    write(tmp_path / "garbage.cer", b"\x01\x02\x03garbage\x00")
    write(tmp_path / "empty.crt", b"")
    write(tmp_path / "truncated.cer", der[:700])
    write(tmp_path / "truncated.der", der[:700])
    write(tmp_path / "notes.txt", b"-----BEGIN CERTIFICATE-----\nnot base64 !\n-----END CERTIFICATE-----\n")
    write(tmp_path / "two.pem", pem[:300] + b"\n" + pem)  # a truncated copy, then a good one
    write(tmp_path / "broken.jks", b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x05")
    write(tmp_path / "fake.p12", b"not a keystore at all\n")
    write(tmp_path / "data.bin", der[:700])  # DER-like, not named like a certificate: ignored
    write(tmp_path / "bad-der.txt", b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n")
    result = scan([str(tmp_path)])
    assert result["found"] == {fp(pki, "chiffrement-v4"): [place(tmp_path / "two.pem", "pem", index=0)]}
    reasons = dict((os.path.basename(u["path"]), u["reason"]) for u in result["unreadable"])
    assert sorted(reasons) == ["bad-der.txt", "broken.jks", "empty.crt", "fake.p12", "garbage.cer",
                               "notes.txt", "truncated.cer", "truncated.der", "two.pem"]
    assert reasons["garbage.cer"].startswith("named like a certificate, but holds no certificate: binary")
    assert reasons["empty.crt"].endswith("it is empty")
    assert reasons["fake.p12"].startswith("named like a keystore")
    assert reasons["truncated.cer"].startswith("not a readable DER certificate")
    assert reasons["notes.txt"].startswith("PEM block #0 (line 1): ")
    assert reasons["bad-der.txt"].startswith("PEM block #0 (line 1): malformed certificate: ")
    assert reasons["two.pem"] == "line 1: -----BEGIN CERTIFICATE----- without its END line"
    assert "truncated" in reasons["broken.jks"]


def test_other_text_forms(pki, tmp_path):
    der = cert(pki, "chiffrement-v4")
    b64 = base64.b64encode(der)
    write(tmp_path / "bare.cer", b"\n".join(b64[i:i + 76] for i in range(0, len(b64), 76)) + b"\n")
    write(tmp_path / "bare.txt", b64 + b"\n")  # not named like a certificate: not decoded
    write(tmp_path / "trusted.pem", b"-----BEGIN TRUSTED CERTIFICATE-----\n"
          + base64.encodebytes(der + b"\x30\x00") + b"-----END TRUSTED CERTIFICATE-----\n")
    write(tmp_path / "key-and-cert.pem", b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n"
          b"-----END PRIVATE KEY-----\n" + cert(pki, "chiffrement-v4", "pem"))
    write(tmp_path / "two.der", der + cert(pki, "ac-v4"))
    result = scan([str(tmp_path)], sha256=[fp(pki, "chiffrement-v4")])
    assert result["found"] == {fp(pki, "chiffrement-v4"): [
        place(tmp_path / "bare.cer", "base64"),
        place(tmp_path / "key-and-cert.pem", "pem", index=1),
        place(tmp_path / "trusted.pem", "pem", index=0),
        place(tmp_path / "two.der", "der", index=0)]}
    assert result["unreadable"] == []


# --------------------------------------------------------------------------- PKCS#12


@needs_keytool
def test_pkcs12_passwords(pki, java, tmp_path):
    v4 = fp(pki, "chiffrement-v4")
    p12 = write(tmp_path / "conf" / "store.p12", open(java["app.p12"], "rb").read())
    expect = [place(p12, "pkcs12", alias="sne-v4")]
    for passwords in ([P12_PASSWORD], ["wrong", P12_PASSWORD], {str(p12): P12_PASSWORD},
                      {"*/conf/*.p12": P12_PASSWORD, "/nowhere": "x"}, P12_PASSWORD):
        result = scan([str(tmp_path)], sha256=[v4], passwords=passwords)
        assert result["found"] == {v4: expect}, passwords
        assert result["unreadable"] == []
    result = scan([str(tmp_path)], sha256=[v4], passwords={str(p12): "wrong", "*.jks": P12_PASSWORD})
    assert result["found"] == {}
    assert result["unreadable"] == [{"path": str(p12), "reason": "none of the 1 password(s) given for "
                                     "this PKCS#12 file opens it (integrity check failed)",
                                     "format": "pkcs12"}]


@needs_keytool
def test_truncated_pkcs12_is_reported_at_every_cut(java, tmp_path):
    """Never found, never a crash, never skipped in silence: reported as truncated as soon
    as the header (30 len 02 01 03 30) is there, before that as a keystore holding nothing."""
    raw = open(java["app.p12"], "rb").read()
    header = 8  # 30 82 xx xx 02 01 03 30
    assert classify(raw[:header]) == PKCS12 and classify(raw[:header - 1]) is None
    path = tmp_path / "store.p12"
    wrong = {}
    for cut in range(1, len(raw)):
        write(path, raw[:cut])
        result = scan([str(path)], passwords=[P12_PASSWORD])
        reasons = [u["reason"] for u in result["unreadable"]]
        expected = "keystore truncated" if cut >= header else "named like a keystore, but holds no"
        if result["found"] or len(reasons) != 1 or not reasons[0].startswith(expected):
            wrong[cut] = (result["found"], reasons)
        assert path.read_bytes() == raw[:cut]
    assert wrong == {}


@needs_keytool
def test_pkcs12_without_cryptography_uses_keytool_or_says_why(pki, java, tmp_path, monkeypatch):
    monkeypatch.setattr(_p12, "HAS_CRYPTOGRAPHY", False)
    v4 = fp(pki, "chiffrement-v4")
    p12 = write(tmp_path / "store.p12", open(java["app.p12"], "rb").read())
    result = scan([str(tmp_path)], sha256=[v4], passwords=[P12_PASSWORD], run_command=run_command,
                  find_tool=shutil.which)
    assert result["found"] == {v4: [place(p12, "pkcs12", alias="sne-v4")]}
    result = scan([str(tmp_path)], sha256=[v4], passwords=[P12_PASSWORD], run_command=run_command,
                  find_tool=lambda name: None)
    assert result["found"] == {}
    assert "install the Python library cryptography" in result["unreadable"][0]["reason"]


def test_pkcs12_certificates_in_clear_need_no_password(pki, tmp_path):
    ca = x509.load_der_x509_certificate(cert(pki, "chiffrement-v4"))
    data = pkcs12.serialize_key_and_certificates(
        b"x", None, None, [pkcs12.PKCS12Certificate(ca, b"old-sne")], NoEncryption())
    path = write(tmp_path / "noext", data)
    result = scan([str(tmp_path)])
    assert result["found"] == {fp(pki, "chiffrement-v4"): [place(path, "pkcs12", alias="old-sne")]}
    assert result["unreadable"] == []


# --------------------------------------------------------------------------- options and module


def test_missing_paths_and_bad_options(tmp_path):
    result = scan([str(tmp_path / "nope"), str(tmp_path)])
    assert result["missing"] == [str(tmp_path / "nope")]
    for options, message in ((dict(max_depth=0), "max_depth"), (dict(max_file_size=0), "max_file_size"),
                             (dict(sha256=["AB:CD"]), "sha256"), (dict(passwords=5), "passwords"),
                             (dict(passwords={"a": ["x"]}), "passwords"),
                             (dict(passwords=[{}]), "passwords")):
        with pytest.raises(ScanError, match=message):
            scan([str(tmp_path)], **options)


def test_permission_denied_is_unreadable(pki, tmp_path, monkeypatch):
    locked = write(tmp_path / "locked" / "v4.pem", cert(pki, "chiffrement-v4", "pem")).parent
    secret = write(tmp_path / "secret.pem", cert(pki, "chiffrement-v4", "pem"))
    real_scandir, real_open = os.scandir, os.open

    def scandir(path):  # what an unprivileged user meets (the tests may run as root)
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def os_open(path, flags, *args):
        if str(path) == str(secret):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(_scan.os, "scandir", scandir)
    monkeypatch.setattr(_scan.os, "open", os_open)
    result = scan([str(tmp_path)])
    assert result["found"] == {}
    assert result["unreadable"] == [
        {"path": str(locked), "reason": "cannot list the folder: Permission denied", "format": None},
        {"path": str(secret), "reason": "cannot open: Permission denied", "format": None}]


class Exit(Exception):
    """What the fake module raises where AnsibleModule would exit."""


class Module:
    """Just what run_scan uses of AnsibleModule; ``tools=False``: no command may run."""

    def __init__(self, params, check_mode=False, tools=True):
        self.params, self.check_mode, self.tools = params, check_mode, tools

    def exit_json(self, **kwargs):
        self.result = kwargs
        raise Exit()

    def fail_json(self, **kwargs):
        self.result = dict(kwargs, failed=True)
        raise Exit()

    def get_bin_path(self, name, required=False):
        return shutil.which(name) if self.tools else None

    def run_command(self, argv, data=None, environ_update=None, binary_data=False):
        if not self.tools:
            raise AssertionError("no command expected")
        return run_command(argv, data, environ_update)


def test_run_scan_never_changes_anything(pki, tmp_path):
    write(tmp_path / "v4.pem", cert(pki, "chiffrement-v4", "pem"))
    params = dict(paths=[str(tmp_path)], sha256=[fp(pki, "chiffrement-v4")], max_depth=6, exclude=[],
                  max_file_size=_scan.DEFAULT_MAX_FILE_SIZE, passwords=None)
    module = Module(params)
    with pytest.raises(Exit):
        _scan.run_scan(module)
    assert module.result["changed"] is False
    assert list(module.result["found"]) == [fp(pki, "chiffrement-v4")]
    module = Module(dict(params, sha256=["nope"]))
    with pytest.raises(Exit):
        _scan.run_scan(module)
    assert module.result["failed"] and "sha256" in module.result["msg"]


def test_files_summary_counts_all_and_matched(tmp_path, pki):
    from ansible_collections.sne.guichet.plugins.module_utils._scan import scan as run

    def pem(cert_id):
        with open(os.path.join(pki["dir"], pki["certificates"][cert_id]["path"])) as handle:
            return handle.read()

    (tmp_path / "only-v4.pem").write_text(pem("chiffrement-v4"))
    (tmp_path / "mixed.pem").write_text(pem("chiffrement-v4") + pem("ac-v6"))
    (tmp_path / "other.pem").write_text(pem("ac-v6"))
    result = run([str(tmp_path)], sha256=[pki["certificates"]["chiffrement-v4"]["sha256"]])
    assert result["files"] == {
        str(tmp_path / "mixed.pem"): {"format": "pem", "certificates": 2, "matched": 1},
        str(tmp_path / "only-v4.pem"): {"format": "pem", "certificates": 1, "matched": 1},
    }


# --------------------------------------------------------------------------- references


@pytest.fixture
def referenced(pki, tmp_path):
    """Two V4 files of the same name, a PEM V4, a V5 file, and text files naming them."""
    root = tmp_path / "guichet"
    v4_der, v4_pem = cert(pki, "chiffrement-v4"), cert(pki, "chiffrement-v4", "pem")
    conf_v4 = write(root / "conf" / "Chiffrement_SNEV4.cer", v4_der)
    lib_v4 = write(root / "lib" / "Chiffrement_SNEV4.cer", v4_der)
    pem_v4 = write(root / "certs" / "sne-v4.pem", v4_pem)
    write(root / "conf" / "Chiffrement_SNEV5.cer", cert(pki, "chiffrement-v5"))
    odd = os.fsdecode(os.fsencode(str(root / "certs")) + b"/sne-\xe9t\xe9.cer")  # Latin-1 name
    with open(odd, "wb") as handle:
        handle.write(v4_der)
    files = {
        # the full path names the conf copy only, not the lib one of the same name
        "conf/guichet.properties": b"sne.certificat=%s\nsne.v5=%s/conf/Chiffrement_SNEV5.cer\n"
                                   % (os.fsencode(str(conf_v4)), os.fsencode(str(root))),
        # a variable, then folders: the end of the path decides
        "conf/app.xml": b"<cert>${GUICHET_HOME}/lib/Chiffrement_SNEV4.cer</cert>\n",
        # a bare name names every file of that name; a sentence's final dot is not the name's
        "readme.txt": b"The guichet reads Chiffrement_SNEV4.cer.\n",
        # a URL, and a name that is not UTF-8
        "conf/legacy.conf": b"ca=file://%s\nold=certs/sne-\xe9t\xe9.cer\n" % os.fsencode(str(pem_v4)),
        # longer names are other files
        "notes.txt": b"old-Chiffrement_SNEV4.cer Chiffrement_SNEV4.cer.bak XChiffrement_SNEV4.cer "
                     b"Chiffrement_SNEV4.cers /other/conf/Chiffrement_SNEV4.cer\n",
        # not searched: binary, named like a certificate, too large, excluded, too deep
        "bin/guichet.bin": b"\0\x01Chiffrement_SNEV4.cer\n",
        "certs/bundle.pem": b"# was Chiffrement_SNEV4.cer\n" + cert(pki, "ac-v6", "pem"),
        "big.txt": b"Chiffrement_SNEV4.cer\n" + b"x" * _scan.REFERENCE_MAX_SIZE,
        "logs/guichet.log": b"loaded Chiffrement_SNEV4.cer\n",
        "a/b/c/d/e/f/deep.conf": b"Chiffrement_SNEV4.cer\n",
    }
    for rel, data in files.items():
        write(root / rel, data)
    os.symlink("readme.txt", str(root / "readme-link.txt"))  # links are never followed
    return root, {"conf": str(conf_v4), "lib": str(lib_v4), "pem": str(pem_v4), "odd": odd}


def test_references_name_the_files_holding_the_fingerprints(pki, referenced):
    root, v4 = referenced
    result = scan([str(root)], sha256=[fp(pki, "chiffrement-v4"), fp(pki, "chiffrement-v5")],
                  references_of=[fp(pki, "chiffrement-v4").replace(":", "").lower()],
                  exclude=["*/logs"], max_depth=5)

    def text(rel):
        return str(root / rel)

    # A file whose name is not UTF-8 is not returned as found (ansible-core refuses such a module
    # result): it is a problem to rename, and nothing refers to it.
    assert any(u["path"] == v4["odd"].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
               for u in result["unreadable"])
    assert result["references"] == {
        v4["pem"]: [text("conf/legacy.conf")],
        v4["conf"]: [text("conf/guichet.properties"), text("readme.txt")],
        v4["lib"]: [text("conf/app.xml"), text("readme.txt")],
    }
    # the V5 file is found (sha256) but is not searched for (references_of)
    assert str(root / "conf" / "Chiffrement_SNEV5.cer") in result["files"]
    assert [u for u in result["unreadable"] if "not UTF-8" not in u["reason"]] == []


def test_references_without_targets_or_option(pki, referenced):
    root, _v4 = referenced
    result = scan([str(root)], sha256=[fp(pki, "chiffrement-v4")])
    assert result["references"] == {}
    result = scan([str(root)], references_of=[fp(pki, "ac-v5")])  # held nowhere
    assert result["references"] == {}
    with pytest.raises(ScanError, match="references_of"):
        scan([str(root)], references_of=["AB:CD"])


def test_references_read_text_files_once_more_only(pki, referenced, monkeypatch):
    """Only the small text files are read again, after the walk; nothing else is opened."""
    root, v4 = referenced
    opened = []
    real_open = _scan.os.open

    def os_open(path, flags, *args):
        opened.append(os.fsdecode(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(_scan.os, "open", os_open)
    scan([str(root)], references_of=[fp(pki, "chiffrement-v4")], max_depth=5)
    twice = sorted(os.path.relpath(p, str(root)) for p in set(opened) if opened.count(p) == 2)
    assert twice == ["conf/app.xml", "conf/guichet.properties", "conf/legacy.conf", "logs/guichet.log",
                     "notes.txt", "readme.txt"]
    assert max(opened.count(p) for p in opened) == 2


def test_unreadable_says_the_format_when_the_structure_was_read(pki, tmp_path):
    pem = cert(pki, "chiffrement-v4", "pem")
    write(tmp_path / "two.pem", pem[:300] + b"\n" + pem)
    write(tmp_path / "broken.jks", b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x05")
    write(tmp_path / "empty.crt", b"")
    result = scan([str(tmp_path)])
    assert dict((os.path.basename(u["path"]), u["format"]) for u in result["unreadable"]) == {
        "two.pem": "pem", "broken.jks": None, "empty.crt": None}


def test_run_scan_passes_references_of(pki, referenced):
    root, v4 = referenced
    module = Module(dict(paths=[str(root / "conf")], sha256=[], max_depth=6, exclude=[],
                         max_file_size=_scan.DEFAULT_MAX_FILE_SIZE, passwords=None,
                         references_of=[fp(pki, "chiffrement-v4")]), check_mode=True, tools=False)
    with pytest.raises(Exit):
        _scan.run_scan(module)
    assert module.result["references"] == {v4["conf"]: [str(root / "conf" / "guichet.properties")]}


def nss_run(argv, data=None, environ_update=None):
    done = subprocess.run(argv, input=data, capture_output=True, text=True, check=False,
                          env=dict(os.environ, **(environ_update or {})))
    return done.returncode, done.stdout, done.stderr


@needs_certutil
def test_nss_database_read_with_certutil(pki, tmp_path):
    """With certutil, the certificates of a real sql: database (with a password: none is
    needed to list them) are found at its cert9.db, nickname as alias; nothing is written."""
    make_db(tmp_path / "nssdb", "nss-secret")
    for nick, ident in (("Chiffrement SNE (ancien)", "chiffrement-v4"), ("AC SNE V4", "ac-v4")):
        add(tmp_path / "nssdb", nick, "P,,", os.path.join(pki["dir"], ident + ".der"), "nss-secret")
    before = {n: (tmp_path / "nssdb" / n).read_bytes() for n in os.listdir(str(tmp_path / "nssdb"))}
    result = scan([str(tmp_path)], sha256=[fp(pki, "chiffrement-v4"), fp(pki, "ac-v4")],
                  run_command=nss_run, find_tool=shutil.which)
    cert9 = str(tmp_path / "nssdb" / "cert9.db")
    assert result["found"] == {
        fp(pki, "chiffrement-v4"): [{"path": cert9, "format": "nss", "alias": "Chiffrement SNE (ancien)",
                                     "index": None, "target": None}],
        fp(pki, "ac-v4"): [{"path": cert9, "format": "nss", "alias": "AC SNE V4", "index": None,
                            "target": None}]}
    assert result["files"][cert9] == {"format": "nss", "certificates": 3, "matched": 2}  # + mykey
    assert result["unreadable"] == []
    assert {n: (tmp_path / "nssdb" / n).read_bytes() for n in os.listdir(str(tmp_path / "nssdb"))} == before


@needs_certutil
def test_nss_database_is_recognised_without_certutil(pki, tmp_path):
    """Without the tools, a real sql: database (certutil -N, V4 added): its cert9.db is listed
    as an NSS database, its other files are nothing; a legacy cert8.db is named as such; a
    cert9.db that is not SQLite is just a binary file."""
    make_db(tmp_path / "nssdb", None, with_key=False)
    add(tmp_path / "nssdb", "V4", "P,,", os.path.join(pki["dir"], "chiffrement-v4.der"))
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    write(legacy / "cert8.db", b"\x00\x06\x15\x61" + b"\x00" * 60)
    other = tmp_path / "other"
    other.mkdir()
    write(other / "cert9.db", b"\x00\x01binary")
    result = scan([str(tmp_path)], sha256=[fp(pki, "chiffrement-v4")])
    got = dict((os.path.relpath(u["path"], str(tmp_path)), (u["format"], u["reason"]))
               for u in result["unreadable"])
    assert set(got) == {"nssdb/cert9.db", "legacy/cert8.db"}, got
    assert got["nssdb/cert9.db"][0] == "nss" and "certutil (Debian package libnss3-tools) is not " \
        "on the host" in got["nssdb/cert9.db"][1]
    assert got["legacy/cert8.db"][0] == "nss" and "legacy NSS database" in got["legacy/cert8.db"][1]
    assert result["found"] == {}
