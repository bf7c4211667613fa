# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""File and folder backends: convergence, bytes kept, real openssl lookups, failures."""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.sne.guichet.plugins.module_utils._common import io as _atomic
from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    TOOL_MISSING,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores import _files as _store_files
from ansible_collections.sne.guichet.plugins.module_utils._stores import _journal
from ansible_collections.sne.guichet.plugins.module_utils._stores import base as _store_base
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.der import DerStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.pem import PemStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.pem_dir import PemDirStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.trust_anchors import TrustAnchorStore
from ansible_collections.sne.guichet.plugins.module_utils._x509 import der_to_pem, subject_hash

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
UTC = datetime.timezone.utc


# ----------------------------------------------------------------------------- PKI


class Pki:
    """root -> AC SNE (V4 and V5: same subject, different keys) -> Chiffrement_SNEV4/V5."""

    def __init__(self):
        self.keys = {}
        self.certs = {}
        self._make("root", "Racine Test", None, ca=True)
        self._make("ca4", "AC SNE", "root", ca=True)
        self._make("ca5", "AC SNE", "root", ca=True)
        self._make("leaf4", "Chiffrement_SNEV4", "ca4", ca=False)
        self._make("leaf5", "Chiffrement_SNEV5", "ca5", ca=False)
        self._make("other", "Autre AC", None, ca=True)
        self._make("other_leaf", "Autre serveur", "other", ca=False)

    def _make(self, label, cn, issuer, ca):
        key = ec.generate_private_key(ec.SECP256R1())
        self.keys[label] = key
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test SNE"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        if issuer is None:
            issuer_name, issuer_key = subject, key
        else:
            issuer_name, issuer_key = self.certs[issuer].subject, self.keys[issuer]
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(datetime.datetime(2025, 1, 1, tzinfo=UTC))
                   .not_valid_after(datetime.datetime(2035, 1, 1, tzinfo=UTC))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                False, False, False, False, False, True, True, False, False), critical=True)
        else:
            builder = builder.add_extension(x509.KeyUsage(
                False, False, True, False, False, False, False, False, False), critical=True)
        self.certs[label] = builder.sign(issuer_key, hashes.SHA256())

    def der(self, label):
        return self.certs[label].public_bytes(serialization.Encoding.DER)

    def pem(self, label):
        return self.certs[label].public_bytes(serialization.Encoding.PEM)

    def entry(self, label, name=None):
        return CertEntry(name or label, self.der(label))

    def sha(self, label):
        return self.entry(label).sha256


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture
def present(pki):
    return [pki.entry("leaf5", "Chiffrement_SNEV5"), pki.entry("ca5", "AC_SNE_V5")]


@pytest.fixture
def absent(pki):
    return {pki.sha("leaf4"), pki.sha("ca4")}


@pytest.fixture
def backups(tmp_path):
    return Backups(str(tmp_path / "backups"), "run1")


def run_command(argv, data=None):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def make(cls, path, type_, **kw):
    return cls(StoreSpec(str(path), type_, **kw), run_command, shutil.which)


def converge(store, present, absent, backups):
    entries = store.load()
    plan = store.plan(entries, present, absent)
    store.apply(plan, backups)
    return plan


def tree(path):
    """Everything under ``path`` (not following links): kind, content digest, mode."""
    out = {}
    if not os.path.lexists(path):
        return out
    if not os.path.isdir(path) or os.path.islink(path):
        st = os.lstat(path)
        with open(path, "rb") as handle:
            return {"": ("file", hashlib.sha256(handle.read()).hexdigest(), st.st_mode)}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode)
            else:
                with open(full, "rb") as handle:
                    out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest(),
                                st.st_mode, st.st_uid, st.st_gid)
    return out


def eroFS(*_args, **_kwargs):
    raise OSError(errno.EROFS, "Read-only file system")


@pytest.fixture
def ro_mount(tmp_path):
    """A real tmpfs, filled by the test, then remounted read-only (root only)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                      capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")

    def make_ro():
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    yield mnt, make_ro
    subprocess.run(["umount", str(mnt)], check=True)


def openssl_verify(capath, pem_file):
    return subprocess.run([OPENSSL, "verify", "-CApath", str(capath), str(pem_file)],
                          capture_output=True, text=True, check=False)


# ----------------------------------------------------------------------------- pem


KEY_BLOCK = (b"-----BEGIN PRIVATE KEY-----\n"
             b"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
             b"-----END PRIVATE KEY-----\n")


def bundle(pki, newline=b"\n"):
    parts = [b"# bundle SNE" + newline, b"subject=CN=Chiffrement_SNEV4" + newline,
             pki.pem("leaf4").replace(b"\n", newline), KEY_BLOCK.replace(b"\n", newline),
             b"Bag Attributes: none" + newline, pki.pem("root").replace(b"\n", newline),
             pki.pem("ca4").replace(b"\n", newline), b"trailing text without newline"]
    return b"".join(parts)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_pem_rotation_keeps_every_other_byte(tmp_path, pki, present, absent, backups, newline):
    path = tmp_path / "bundle.pem"
    original = bundle(pki, newline)
    path.write_bytes(original)
    os.chmod(path, 0o640)
    store = make(PemStore, path, "pem")
    entries = store.load()
    assert [e.name.split(" ")[0] for e in entries] == ["#0", "#2", "#3"]
    assert entries[0].name == "#0 (line 3)"
    plan = store.plan(entries, present, absent)
    assert sorted(e.sha256 for e in plan.remove) == sorted(absent)
    assert [e.name for e in plan.add] == ["Chiffrement_SNEV5", "AC_SNE_V5"]
    backup = store.apply(plan, backups)
    new = path.read_bytes()
    leaf4 = pki.pem("leaf4").replace(b"\n", newline)
    ca4 = pki.pem("ca4").replace(b"\n", newline)
    expected = (original.replace(leaf4, b"").replace(ca4, b"") + newline
                + pki.pem("leaf5").replace(b"\n", newline) + pki.pem("ca5").replace(b"\n", newline))
    assert new == expected
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert backup and open(backup, "rb").read() == original
    # Second run: nothing to do, nothing written.
    store2 = make(PemStore, path, "pem")
    plan2 = store2.plan(store2.load(), present, absent)
    assert not plan2.changed
    assert store2.apply(plan2, backups) is None
    assert path.read_bytes() == new


def test_pem_line_numbers_of_many_blocks(tmp_path, pki):
    """Lines are counted as the blocks come (not from byte 0 for each: quadratic on a big
    bundle): each entry names the line its block starts on, as counting from 0 says; keys and
    text between the certificates (1 to 5 lines, some CRLF) count too; so does a malformed block's."""
    labels = ["root", "ca4", "ca5", "leaf4", "leaf5"]
    parts, expected = [], []
    for index in range(60):
        parts.append(b"# comment\n" * (index % 5) + (b"note\r\n" if index % 7 == 0 else b""))
        if index % 4 == 3:
            parts.append(KEY_BLOCK)
            continue
        start = len(b"".join(parts))
        parts.append(pki.pem(labels[index % len(labels)]))
        expected.append("#%d (line %d)" % (index, b"".join(parts).count(b"\n", 0, start) + 1))
    data = b"".join(parts)
    path = tmp_path / "big.pem"
    path.write_bytes(data)
    assert [e.name for e in make(PemStore, path, "pem").load()] == expected
    broken = der_to_pem(pki.der("root")[:-10] + b"\x00" * 10).replace(b"MII", b"MIJ", 1)
    path.write_bytes(data + b"# the last one\n" + broken)
    with pytest.raises(StoreError) as err:
        make(PemStore, path, "pem").load()
    line = (data + b"# the last one\n").count(b"\n") + 1
    assert err.value.code == CORRUPT and "certificate block #60 (line %d)" % line in err.value.reason


def test_pem_noop_and_names(tmp_path, pki, present, absent, backups):
    path = tmp_path / "b.pem"
    path.write_bytes(pki.pem("root"))
    store = make(PemStore, path, "pem", names=["AC_SNE_V5"])
    plan = converge(store, present, absent, backups)
    assert [e.name for e in plan.add] == ["AC_SNE_V5"]
    assert path.read_bytes() == pki.pem("root") + pki.pem("ca5")


def test_pem_create_and_missing(tmp_path, pki, present, absent, backups):
    path = tmp_path / "new.pem"
    with pytest.raises(StoreError) as err:
        make(PemStore, path, "pem").load()
    assert err.value.code == NOT_FOUND
    store = make(PemStore, path, "pem", create=True, mode="0600")
    assert store.load() == []
    converge(store, present, absent, backups)
    assert path.read_bytes() == pki.pem("leaf5") + pki.pem("ca5")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    manifest = (tmp_path / "backups" / "run1" / "manifest.jsonl").read_text().splitlines()
    assert json.loads(manifest[0])["action"] == "created"
    with pytest.raises(StoreError) as err:
        make(PemStore, tmp_path / "nodir" / "x.pem", "pem", create=True).load()
    assert err.value.code == NOT_FOUND


def test_pem_empty_and_comment_only_files(tmp_path, pki, present, absent, backups):
    for content in (b"", b"\n", b"# SNE bundle, filled by ansible\n"):
        path = tmp_path / "e.pem"
        path.write_bytes(content)
        converge(make(PemStore, path, "pem"), present, absent, backups)
        sep = b"\n" if content and not content.endswith(b"\n") else b""
        assert path.read_bytes() == content + sep + pki.pem("leaf5") + pki.pem("ca5")


def test_pem_symlinked_store(tmp_path, pki, present, absent, backups):
    real = tmp_path / "real.pem"
    real.write_bytes(pki.pem("leaf4"))
    link = tmp_path / "link.pem"
    link.symlink_to("real.pem")
    converge(make(PemStore, link, "pem"), present, absent, backups)
    assert os.readlink(link) == "real.pem"
    assert real.read_bytes() == pki.pem("leaf5") + pki.pem("ca5")
    saved = tmp_path / "backups" / "run1" / "files" / str(real).lstrip("/")
    assert saved.read_bytes() == pki.pem("leaf4")


@pytest.mark.parametrize("content, code", [
    (b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n", CORRUPT),
    (b"-----BEGIN CERTIFICATE-----\nnot base64 !\n-----END CERTIFICATE-----\n", CORRUPT),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n", CORRUPT),
    (b"\x00\x01\x02binary\xff\xfe garbage", UNKNOWN_FORMAT),
    (b"listen = 443\nssl = on\n", UNKNOWN_FORMAT),
])
def test_pem_unreadable_left_untouched(tmp_path, present, absent, backups, content, code):
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    before = tree(tmp_path)
    with pytest.raises(StoreError) as err:
        converge(make(PemStore, path, "pem"), present, absent, backups)
    assert err.value.code == code
    assert tree(tmp_path) == before


def test_pem_holding_der_is_unknown_format(tmp_path, pki, present, absent, backups):
    path = tmp_path / "x.pem"
    path.write_bytes(pki.der("leaf4"))
    with pytest.raises(StoreError) as err:
        make(PemStore, path, "pem").load()
    assert err.value.code == UNKNOWN_FORMAT and "type der" in err.value.reason


def test_pem_second_block_broken(tmp_path, pki, present, absent):
    path = tmp_path / "b.pem"
    broken = der_to_pem(pki.der("root")[:-10] + b"\x00" * 10).replace(b"MII", b"MIJ", 1)
    path.write_bytes(pki.pem("leaf4") + broken)
    with pytest.raises(StoreError) as err:
        make(PemStore, path, "pem").load()
    assert err.value.code == CORRUPT and "#1" in err.value.reason


def test_pem_read_only_monkeypatched(tmp_path, pki, present, absent, backups, monkeypatch):
    path = tmp_path / "b.pem"
    path.write_bytes(bundle(pki))
    store = make(PemStore, path, "pem")
    plan = store.plan(store.load(), present, absent)
    before = tree(path)
    monkeypatch.setattr(tempfile, "mkstemp", eroFS)
    with pytest.raises(StoreError) as err:
        store.apply(plan, Backups(None, None))
    assert err.value.code == IO_ERROR and "read-only" in err.value.reason
    assert tree(path) == before


def test_pem_read_only_mount(ro_mount, pki, present, absent, tmp_path):
    mnt, make_ro = ro_mount
    path = mnt / "b.pem"
    path.write_bytes(bundle(pki))
    make_ro()
    store = make(PemStore, path, "pem")
    plan = store.plan(store.load(), present, absent)
    before = tree(mnt)
    with pytest.raises(StoreError) as err:
        store.apply(plan, Backups(str(tmp_path / "bk"), "r"))
    assert err.value.code == IO_ERROR and "read-only" in err.value.reason
    assert tree(mnt) == before


def test_pem_verify_failure_leaves_file(tmp_path, pki, present, absent, backups, monkeypatch):
    path = tmp_path / "b.pem"
    path.write_bytes(bundle(pki))
    before = tree(tmp_path / "b.pem")
    real = _atomic.atomic_write

    def tampering(p, data, verify=None, **kw):
        def bad(tmp):
            with open(tmp, "ab") as handle:
                handle.write(b"x")
            verify(tmp)
        return real(p, data, verify=bad, **kw)

    monkeypatch.setattr(_store_base, "atomic_write", tampering)
    with pytest.raises(StoreError) as err:
        converge(make(PemStore, path, "pem"), present, absent, backups)
    assert err.value.code == VERIFY_FAILED
    assert tree(path) == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".sne-tmp")]


def test_pem_changed_between_load_and_apply(tmp_path, pki, present, absent, backups):
    path = tmp_path / "b.pem"
    path.write_bytes(pki.pem("leaf4"))
    store = make(PemStore, path, "pem")
    plan = store.plan(store.load(), present, absent)
    path.write_bytes(pki.pem("leaf4") + pki.pem("root"))
    with pytest.raises(StoreError) as err:
        store.apply(plan, backups)
    assert err.value.code == IO_ERROR and "changed" in err.value.reason


# ----------------------------------------------------------------------------- der


def test_der_replaces_retired_leaf(tmp_path, pki, present, absent, backups):
    path = tmp_path / "Chiffrement_SNE.cer"
    path.write_bytes(pki.der("leaf4"))
    store = make(DerStore, path, "der")
    plan = converge(store, present, absent, backups)
    assert [e.name for e in plan.add] == ["Chiffrement_SNEV5"]
    assert path.read_bytes() == pki.der("leaf5")
    store2 = make(DerStore, path, "der")
    assert not store2.plan(store2.load(), present, absent).changed


def test_der_replaces_retired_authority_with_authority(tmp_path, pki, present, absent, backups):
    path = tmp_path / "AC_SNE.cer"
    path.write_bytes(pki.der("ca4"))
    converge(make(DerStore, path, "der"), present, absent, backups)
    assert path.read_bytes() == pki.der("ca5")


def test_der_names_choose(tmp_path, pki, present, absent, backups):
    path = tmp_path / "x.cer"
    converge(make(DerStore, path, "der", create=True, names=["AC_SNE_V5"]), present, absent,
             backups)
    assert path.read_bytes() == pki.der("ca5")
    with pytest.raises(StoreError) as err:
        store = make(DerStore, path, "der", names=["AC_SNE_V5", "Chiffrement_SNEV5"])
        store.plan(store.load(), present, absent)
    assert err.value.code == UNSUPPORTED


def test_der_conflict_left_untouched(tmp_path, pki, present, absent, backups):
    path = tmp_path / "x.cer"
    path.write_bytes(pki.der("other_leaf"))
    before = tree(tmp_path)
    store = make(DerStore, path, "der")
    with pytest.raises(StoreError) as err:
        store.plan(store.load(), present, absent)
    assert err.value.code == UNSUPPORTED and "neither wanted nor retired" in err.value.reason
    assert tree(tmp_path) == before
    # Nothing to install: the other certificate is simply left alone.
    assert not store.plan(store.load(), [], absent).changed


def test_der_create_missing_and_pem_encoded(tmp_path, pki, present, absent, backups):
    with pytest.raises(StoreError) as err:
        make(DerStore, tmp_path / "none.cer", "der").load()
    assert err.value.code == NOT_FOUND
    path = tmp_path / "new.cer"
    converge(make(DerStore, path, "der", create=True), present, absent, backups)
    assert path.read_bytes() == pki.der("leaf5")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    pem_cer = tmp_path / "pem.cer"
    pem_cer.write_bytes(pki.pem("leaf4"))
    store = make(DerStore, pem_cer, "der")
    converge(store, present, absent, backups)
    assert pem_cer.read_bytes() == pki.pem("leaf5")
    assert store.details["encoding"] == "pem"


def test_der_retire_only_removes_file(tmp_path, pki, absent, backups):
    path = tmp_path / "v4.cer"
    path.write_bytes(pki.der("leaf4"))
    plan = converge(make(DerStore, path, "der"), [], absent, backups)
    assert [e.sha256 for e in plan.remove] == [pki.sha("leaf4")]
    assert not path.exists()
    saved = tmp_path / "backups" / "run1" / "files" / str(path).lstrip("/")
    assert saved.read_bytes() == pki.der("leaf4")


@pytest.mark.parametrize("content, code", [
    (b"hello world", UNKNOWN_FORMAT),
    (b"\x30\x82\x01\x00\x02", CORRUPT),
    ("two", UNSUPPORTED),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", UNKNOWN_FORMAT),
])
def test_der_unreadable(tmp_path, pki, present, absent, backups, content, code):
    path = tmp_path / "x.cer"
    path.write_bytes(pki.der("leaf4") + pki.der("root") if content == "two" else content)
    before = tree(tmp_path)
    with pytest.raises(StoreError) as err:
        converge(make(DerStore, path, "der"), present, absent, backups)
    assert err.value.code == code
    assert tree(tmp_path) == before


def test_der_read_only(tmp_path, pki, present, absent, monkeypatch):
    path = tmp_path / "x.cer"
    path.write_bytes(pki.der("leaf4"))
    store = make(DerStore, path, "der")
    plan = store.plan(store.load(), present, absent)
    before = tree(tmp_path)
    monkeypatch.setattr(tempfile, "mkstemp", eroFS)
    with pytest.raises(StoreError) as err:
        store.apply(plan, Backups(None, None))
    assert err.value.code == IO_ERROR
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------- pem_dir


def rehash_links(folder):
    """hash -> set of files, as `openssl rehash` would make them (on a copy)."""
    out = {}
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if _store_files._HASH_NAME.match(name):
            target = os.path.realpath(full)
            out.setdefault(name.split(".")[0], set()).add(
                hashlib.sha256(open(target, "rb").read()).hexdigest())
    return out


def capath(tmp_path, pki, labels=("root", "ca4", "other"), real_files=False):
    folder = tmp_path / "certs"
    folder.mkdir()
    for label in labels:
        (folder / ("%s.pem" % label)).write_bytes(pki.pem(label))
    (folder / "server.key.pem").write_bytes(KEY_BLOCK)
    (folder / "README").write_text("CA folder of the guichet\n")
    (folder / "sub").mkdir()
    subprocess.run([OPENSSL, "rehash", str(folder)], check=True, capture_output=True)
    if real_files:  # tools that copy instead of linking
        for name in os.listdir(folder):
            full = folder / name
            if _store_files._HASH_NAME.match(name):
                data = full.read_bytes()
                full.unlink()
                full.write_bytes(data)
        for label in labels:
            (folder / ("%s.pem" % label)).unlink()
    return folder


@pytest.fixture
def leaf_files(tmp_path, pki):
    files = {}
    for label in ("leaf4", "leaf5", "other_leaf"):
        files[label] = tmp_path / ("%s.pem" % label)
        files[label].write_bytes(pki.pem(label))
    return files


@needs_openssl
@pytest.mark.parametrize("real_files", [False, True])
def test_pem_dir_rotation(tmp_path, pki, present, absent, backups, leaf_files, real_files):
    folder = capath(tmp_path, pki, real_files=real_files)
    assert openssl_verify(folder, leaf_files["leaf4"]).returncode == 0
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode != 0
    untouched = {k: v for k, v in tree(folder).items()
                 if k in ("server.key.pem", "README", "sub", "other.pem")}
    store = make(PemDirStore, folder, "pem_dir")
    entries = store.load()
    assert sorted(e.sha256 for e in entries) == sorted(pki.sha(x) for x in ("root", "ca4", "other"))
    plan = store.plan(entries, present, absent)
    assert [e.sha256 for e in plan.remove] == [pki.sha("ca4")]
    # leaf5 is not a CA but pem_dir installs what it is given.
    assert [e.name for e in plan.add] == ["Chiffrement_SNEV5", "AC_SNE_V5"]
    store.apply(plan, backups)
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    assert openssl_verify(folder, leaf_files["leaf4"]).returncode != 0
    assert openssl_verify(folder, leaf_files["other_leaf"]).returncode == 0
    after = tree(folder)
    assert {k: v for k, v in after.items() if k in untouched} == untouched
    assert "AC_SNE_V5.pem" in after and "Chiffrement_SNEV5.pem" in after
    # Same links as openssl rehash makes (on a copy).
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=True)
    for name in os.listdir(copy):
        if _store_files._HASH_NAME.match(name) and (copy / name).is_symlink():
            (copy / name).unlink()
    subprocess.run([OPENSSL, "rehash", str(copy)], check=True, capture_output=True)
    assert rehash_links(folder) == rehash_links(copy)
    # Idempotent.
    store2 = make(PemDirStore, folder, "pem_dir")
    plan2 = store2.plan(store2.load(), present, absent)
    assert not plan2.changed
    assert store2.apply(plan2, backups) is None
    assert tree(folder) == after


@needs_openssl
def test_pem_dir_same_subject_renumbered(tmp_path, pki, absent, backups, leaf_files):
    """V4 and V5 authorities share a subject: removing .0 renumbers .1 down to .0."""
    folder = capath(tmp_path, pki, labels=("root", "ca4"))
    h = subject_hash(pki.der("ca5"))
    assert h == subject_hash(pki.der("ca4"))
    store = make(PemDirStore, folder, "pem_dir")
    converge(store, [pki.entry("ca5", "AC_SNE_V5")], set(), backups)
    assert os.readlink(folder / ("%s.0" % h)) == "ca4.pem"
    assert os.readlink(folder / ("%s.1" % h)) == "AC_SNE_V5.pem"
    assert openssl_verify(folder, leaf_files["leaf4"]).returncode == 0
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    store = make(PemDirStore, folder, "pem_dir")
    converge(store, [], absent, backups)
    assert os.readlink(folder / ("%s.0" % h)) == "AC_SNE_V5.pem"
    assert not os.path.lexists(folder / ("%s.1" % h))
    assert not (folder / "ca4.pem").exists()
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    assert openssl_verify(folder, leaf_files["leaf4"]).returncode != 0


@needs_openssl
def test_pem_dir_real_hash_files_renamed(tmp_path, pki, absent, backups, leaf_files):
    folder = tmp_path / "certs"
    folder.mkdir()
    h = subject_hash(pki.der("ca4"))
    (folder / ("%s.0" % h)).write_bytes(pki.pem("ca4"))
    (folder / ("%s.1" % h)).write_bytes(pki.pem("ca5"))
    (folder / ("%s.0" % subject_hash(pki.der("root")))).write_bytes(pki.pem("root"))
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    store = make(PemDirStore, folder, "pem_dir")
    entries = store.load()
    assert sorted(e.name for e in entries) == sorted(os.listdir(folder))
    converge(store, [pki.entry("ca5")], absent, backups)
    assert sorted(os.listdir(folder)) == sorted(["%s.0" % h, "%s.0" % subject_hash(pki.der("root"))])
    assert (folder / ("%s.0" % h)).read_bytes() == pki.pem("ca5")
    assert not (folder / ("%s.0" % h)).is_symlink()
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    saved = tmp_path / "backups" / "run1" / "files" / str(folder).lstrip("/") / ("%s.0" % h)
    assert saved.read_bytes() == pki.pem("ca4")


@needs_openssl
def test_pem_dir_repairs_missing_link(tmp_path, pki, backups, leaf_files):
    folder = capath(tmp_path, pki, labels=("root",))
    (folder / "ac_sne_v5.pem").write_bytes(pki.pem("ca5"))  # copied without rehash
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode != 0
    store = make(PemDirStore, folder, "pem_dir")
    entries = store.load()
    plan = store.plan(entries, [pki.entry("ca5")], set())
    assert plan.changed and not plan.add and not plan.remove
    assert [e.sha256 for e in plan.links] == [pki.sha("ca5")]
    store.apply(plan, backups)
    assert os.readlink(folder / ("%s.0" % subject_hash(pki.der("ca5")))) == "ac_sne_v5.pem"
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    store2 = make(PemDirStore, folder, "pem_dir")
    assert not store2.plan(store2.load(), [pki.entry("ca5")], set()).changed


def test_pem_dir_create_and_missing(tmp_path, pki, present, absent, backups):
    folder = tmp_path / "newdir"
    with pytest.raises(StoreError) as err:
        make(PemDirStore, folder, "pem_dir").load()
    assert err.value.code == NOT_FOUND
    store = make(PemDirStore, folder, "pem_dir", create=True)
    converge(store, present, absent, backups)
    names = sorted(os.listdir(folder))
    assert names == sorted(["AC_SNE_V5.pem", "Chiffrement_SNEV5.pem",
                            "%s.0" % subject_hash(pki.der("ca5")),
                            "%s.0" % subject_hash(pki.der("leaf5"))])


def test_pem_dir_corrupt_file(tmp_path, pki, present, absent, backups):
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "ok.pem").write_bytes(pki.pem("root"))
    (folder / "bad.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    before = tree(folder)
    with pytest.raises(StoreError) as err:
        converge(make(PemDirStore, folder, "pem_dir"), present, absent, backups)
    assert err.value.code == CORRUPT and "bad.crt" in err.value.reason
    assert tree(folder) == before


def _hook_journal_steps(monkeypatch):
    """Call ``hook[0](description)`` before each step of a folder apply (fault injection)."""
    hook = [None]

    def wrap(name, real):
        def step(self, *args, **kwargs):
            hook[0](" ".join([name] + [a for a in args[:2] if isinstance(a, str)]))
            return real(self, *args, **kwargs)
        return step

    for name in ("mkdir", "write", "symlink", "remove", "rename"):
        monkeypatch.setattr(_journal.Journal, name, wrap(name, getattr(_journal.Journal, name)))
    return hook


def _fail_at_step(index):
    """A fault hook that raises EROFS at the index-th write step."""
    seen = []

    def hook(what):
        seen.append(what)
        if len(seen) == index + 1:
            raise OSError(errno.EROFS, "Read-only file system")

    return hook


@needs_openssl
def test_pem_dir_failure_at_every_step_rolls_back(tmp_path, pki, present, absent, monkeypatch):
    """Fail each journal step in turn: the folder must come back byte-identical."""
    (tmp_path / "probe").mkdir()
    probe = capath(tmp_path / "probe", pki)
    steps = []
    hook = _hook_journal_steps(monkeypatch)
    store = make(PemDirStore, probe, "pem_dir")
    hook[0] = steps.append
    converge(store, present, absent, Backups(None, None))
    assert len(steps) >= 5  # 2 writes, links, a renumber, removals
    for index in range(len(steps)):
        base = tmp_path / ("case%d" % index)
        base.mkdir()
        folder = capath(base, pki)
        before = tree(folder)
        store = make(PemDirStore, folder, "pem_dir")
        hook[0] = _fail_at_step(index)
        with pytest.raises(StoreError) as err:
            converge(store, present, absent, Backups(str(base / "bk"), "r"))
        assert err.value.code == IO_ERROR, steps[index]
        assert "undone" in err.value.reason
        assert tree(folder) == before, steps[index]


@needs_openssl
def test_pem_dir_real_write_failure_midway(tmp_path, pki, present, absent, monkeypatch):
    """The second file write fails for real (mkstemp): the first one is undone."""
    folder = capath(tmp_path, pki)
    before = tree(folder)
    real = tempfile.mkstemp
    calls = []

    def flaky(*args, **kwargs):
        calls.append(kwargs.get("prefix"))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", flaky)
    with pytest.raises(StoreError) as err:
        converge(make(PemDirStore, folder, "pem_dir"), present, absent, Backups(None, None))
    assert err.value.code == IO_ERROR and "no space" in err.value.reason
    assert tree(folder) == before


@needs_openssl
def test_pem_dir_read_only_mount(ro_mount, pki, present, absent, tmp_path):
    mnt, make_ro = ro_mount
    folder = mnt / "certs"
    folder.mkdir()
    for label in ("root", "ca4"):
        (folder / ("%s.pem" % label)).write_bytes(pki.pem(label))
    subprocess.run([OPENSSL, "rehash", str(folder)], check=True, capture_output=True)
    make_ro()
    before = tree(folder)
    with pytest.raises(StoreError) as err:
        converge(make(PemDirStore, folder, "pem_dir"), present, absent,
                 Backups(str(tmp_path / "bk"), "r"))
    assert err.value.code == IO_ERROR and "read-only" in err.value.reason
    assert tree(folder) == before


@needs_openssl
def test_pem_dir_dangling_link_in_touched_bucket(tmp_path, pki, backups, leaf_files):
    folder = capath(tmp_path, pki, labels=("root",))
    h = subject_hash(pki.der("ca5"))
    os.symlink("gone.pem", folder / ("%s.0" % h))
    store = make(PemDirStore, folder, "pem_dir")
    converge(store, [pki.entry("ca5", "AC_SNE_V5")], set(), backups)
    assert os.readlink(folder / ("%s.0" % h)) == "AC_SNE_V5.pem"
    assert not os.path.lexists(folder / ("%s.1" % h))
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0


# ----------------------------------------------------------------------------- anchors


@pytest.fixture
def refresh(tmp_path):
    log = tmp_path / "refresh.log"
    script = tmp_path / "refresh.sh"
    script.write_text("#!/bin/sh\necho \"$@\" >> %s\nexit ${FAIL:-0}\n" % log)
    script.chmod(0o755)
    return script, log


@pytest.mark.parametrize("os_type, ext", [("debian", ".crt"), ("redhat", ".pem")])
def test_anchors_rotation_refresh_once(tmp_path, pki, present, absent, backups, refresh,
                                       os_type, ext):
    script, log = refresh
    folder = tmp_path / "anchors"
    (folder / "sub").mkdir(parents=True)
    (folder / ("sne_v4" + ext)).write_bytes(pki.pem("ca4"))
    (folder / ("other" + ext)).write_bytes(pki.pem("other"))
    (folder / "sub" / "root.crt").write_bytes(pki.pem("root"))
    (folder / "notes.txt").write_text("not a certificate\n")
    untouched = {k: v for k, v in tree(folder).items() if not k.startswith("sne_v4")}
    store = make(TrustAnchorStore, folder, os_type, refresh="%s --fresh" % script)
    entries = store.load()
    if os_type == "debian":
        assert sorted(e.name for e in entries) == ["other.crt", "sne_v4.crt", "sub/root.crt"]
    plan = store.plan(entries, present, absent)
    assert [e.name for e in plan.add] == ["AC_SNE_V5"]  # the leaf is not a CA
    assert [e.sha256 for e in plan.remove] == [pki.sha("ca4")]
    store.apply(plan, backups)
    assert log.read_text() == "--fresh\n"
    assert (folder / ("AC_SNE_V5" + ext)).read_bytes() == pki.pem("ca5")
    assert not (folder / ("sne_v4" + ext)).exists()
    after = tree(folder)
    assert {k: v for k, v in after.items() if k in untouched} == untouched
    store2 = make(TrustAnchorStore, folder, os_type, refresh="%s --fresh" % script)
    plan2 = store2.plan(store2.load(), present, absent)
    assert not plan2.changed
    store2.apply(plan2, backups)
    assert log.read_text() == "--fresh\n"
    assert tree(folder) == after


def test_anchors_names_install_leaf(tmp_path, pki, present, absent, backups, refresh):
    script, log = refresh
    folder = tmp_path / "anchors"
    folder.mkdir()
    store = make(TrustAnchorStore, folder, "debian", refresh=str(script),
                 names=["Chiffrement_SNEV5"])
    converge(store, present, absent, backups)
    assert sorted(os.listdir(folder)) == ["Chiffrement_SNEV5.crt"]


def test_anchors_default_tool_found_with_find_tool(tmp_path, pki, present, absent, backups,
                                                   refresh):
    script, log = refresh
    folder = tmp_path / "anchors"
    folder.mkdir()
    asked = []

    def find_tool(name):
        asked.append(name)
        return str(script)

    store = TrustAnchorStore(StoreSpec(str(folder), "redhat"), run_command, find_tool)
    converge(store, present, absent, backups)
    assert asked == ["update-ca-trust"]
    assert log.read_text() == "extract\n"


def test_anchors_tool_missing_writes_nothing(tmp_path, pki, present, absent, backups):
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "sne_v4.crt").write_bytes(pki.pem("ca4"))
    before = tree(folder)
    store = TrustAnchorStore(StoreSpec(str(folder), "debian"), run_command, lambda name: None)
    with pytest.raises(StoreError) as err:
        converge(store, present, absent, backups)
    assert err.value.code == TOOL_MISSING and "update-ca-certificates" in err.value.reason
    assert tree(folder) == before


def test_anchors_refresh_failure(tmp_path, pki, present, absent, backups, monkeypatch):
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "sne_v4.crt").write_bytes(pki.pem("ca4"))
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/sh\necho 'cannot write /etc/ssl/certs' >&2\nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(tmp_path),))  # its refresh stays pending there
    store = make(TrustAnchorStore, folder, "debian", refresh=str(script))
    with pytest.raises(StoreError) as err:
        converge(store, present, absent, backups)
    assert err.value.code == IO_ERROR
    assert str(script) in err.value.reason and "cannot write /etc/ssl/certs" in err.value.reason
    assert "stay written" in err.value.reason and "the refresh stays pending" in err.value.reason
    assert sorted(os.listdir(folder)) == ["AC_SNE_V5.crt"]


def test_anchors_missing_folder(tmp_path, pki, present, absent, backups, refresh):
    script, log = refresh
    folder = tmp_path / "anchors"
    with pytest.raises(StoreError) as err:
        make(TrustAnchorStore, folder, "debian", refresh=str(script)).load()
    assert err.value.code == NOT_FOUND
    converge(make(TrustAnchorStore, folder, "debian", refresh=str(script), create=True),
             present, absent, backups)
    assert os.listdir(folder) == ["AC_SNE_V5.crt"]
    assert log.read_text() == "\n"


def test_anchors_read_only_no_refresh(tmp_path, pki, present, absent, refresh, monkeypatch):
    script, log = refresh
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "sne_v4.crt").write_bytes(pki.pem("ca4"))
    before = tree(folder)
    monkeypatch.setattr(tempfile, "mkstemp", eroFS)
    with pytest.raises(StoreError) as err:
        converge(make(TrustAnchorStore, folder, "debian", refresh=str(script)), present,
                 absent, Backups(None, None))
    assert err.value.code == IO_ERROR
    assert tree(folder) == before
    assert not log.exists()


def test_pem_dir_certificate_openssl_cannot_hash(tmp_path, backups):
    """Written, not linked (OpenSSL cannot load it), and the store converges."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emoji 🙂",
                                         x509.name._ASN1Type.BMPString)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(datetime.datetime(2025, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime.datetime(2030, 1, 1, tzinfo=UTC))
            .sign(key, hashes.SHA256()))
    entry = CertEntry("odd", cert.public_bytes(serialization.Encoding.DER))
    folder = tmp_path / "certs"
    folder.mkdir()
    converge(make(PemDirStore, folder, "pem_dir"), [entry], set(), backups)
    assert os.listdir(folder) == ["odd.pem"]
    store = make(PemDirStore, folder, "pem_dir")
    assert not store.plan(store.load(), [entry], set()).changed


def test_anchors_bundle_file_partially_rewritten(tmp_path, pki, present, absent, backups,
                                                 refresh):
    script, log = refresh
    folder = tmp_path / "anchors"
    folder.mkdir()
    content = b"# local CAs\n" + pki.pem("other") + pki.pem("ca4") + b"# end\n"
    (folder / "local-bundle.pem").write_bytes(content)
    converge(make(TrustAnchorStore, folder, "redhat", refresh=str(script)), present, absent,
             backups)
    assert (folder / "local-bundle.pem").read_bytes() == \
        b"# local CAs\n" + pki.pem("other") + b"# end\n"
    assert (folder / "AC_SNE_V5.pem").read_bytes() == pki.pem("ca5")


@needs_openssl
def test_pem_dir_symlink_to_outside_file_removed_not_target(tmp_path, pki, absent, backups):
    outside = tmp_path / "shared" / "sne_v4.crt"
    outside.parent.mkdir()
    outside.write_bytes(pki.pem("ca4"))
    folder = capath(tmp_path, pki, labels=("root",))
    (folder / "sne_v4.pem").symlink_to(outside)
    subprocess.run([OPENSSL, "rehash", str(folder)], check=True, capture_output=True)
    store = make(PemDirStore, folder, "pem_dir")
    entries = store.load()
    assert "sne_v4.pem" in [e.name for e in entries]
    converge(store, [], absent, backups)
    assert not os.path.lexists(folder / "sne_v4.pem")
    assert not os.path.lexists(folder / ("%s.0" % subject_hash(pki.der("ca4"))))
    assert outside.read_bytes() == pki.pem("ca4")
    assert (tmp_path / "backups" / "run1" / "files" / str(folder).lstrip("/")
            / "sne_v4.pem").is_symlink()


@needs_openssl
def test_pem_dir_removes_a_hash_link_before_its_file(tmp_path, pki, absent, backups, monkeypatch):
    """A holder whose name sorts before its hash link ("2014-..." < "<hash>.0") is still
    removed after the link: a kill in between must not leave a dangling link."""
    folder = capath(tmp_path, pki, labels=("root",))
    for label in ("ca4", "leaf4"):
        (folder / ("2014-%s.pem" % label)).write_bytes(pki.pem(label))
    subprocess.run([OPENSSL, "rehash", str(folder)], check=True, capture_output=True)
    links = dict((name, os.readlink(folder / name)) for name in os.listdir(folder)
                 if os.path.islink(folder / name))
    assert sorted(links.values()) == ["2014-ca4.pem", "2014-leaf4.pem", "root.pem"]
    assert all(name > target for name, target in links.items() if target.startswith("2014-"))
    removed = []
    real_remove = _journal.Journal.remove

    def remove(journal, path):
        name = os.path.basename(path)
        pointing = [other for other in os.listdir(folder)
                    if os.path.islink(folder / other) and os.readlink(folder / other) == name]
        assert not pointing, "%s removed while %s still point to it" % (name, pointing)
        removed.append(name)
        real_remove(journal, path)

    monkeypatch.setattr(_journal.Journal, "remove", remove)
    converge(make(PemDirStore, folder, "pem_dir"), [], absent, backups)
    assert sorted(removed) == sorted(["2014-ca4.pem", "2014-leaf4.pem"]
                                     + [n for n, t in links.items() if t.startswith("2014-")])


@needs_openssl
@pytest.mark.parametrize("how", ["dangling", "gap"])
def test_pem_dir_repairs_broken_links_left_by_a_killed_run(tmp_path, pki, backups, leaf_files, how):
    """A dangling hash link (an older version removed a4.pem before its link), or links
    after a gap (a kill between two renames), in a bucket nothing else touches: repaired,
    reported as a change, and the next run changes nothing."""
    folder = capath(tmp_path, pki, labels=("root", "ca5"))
    h_root = subject_hash(pki.der("root"))
    h_ca = subject_hash(pki.der("ca5"))
    if how == "dangling":
        os.symlink("a4.pem", folder / "dc52c38b.0")
        broken, bucket = "dc52c38b.0", "dc52c38b"
    else:  # <hash of ca5>.0 renamed away, .1 not yet moved down
        os.rename(folder / ("%s.0" % h_ca), folder / ("%s.1" % h_ca))
        broken, bucket = "%s.1" % h_ca, h_ca
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode != 0 or how == "dangling"
    before = tree(folder)
    store = make(PemDirStore, folder, "pem_dir")
    plan = store.plan(store.load(), [], set())
    assert plan.changed and not plan.add and not plan.remove and plan.repair == [bucket]
    assert [b["name"] for b in store.details["broken_links"]] == [broken]
    store.apply(plan, backups)
    after = tree(folder)
    assert not os.path.lexists(folder / broken)
    if how == "gap":
        assert os.readlink(folder / ("%s.0" % h_ca)) == "ca5.pem"
    assert openssl_verify(folder, leaf_files["leaf5"]).returncode == 0
    assert {k: v for k, v in after.items() if k != "%s.0" % h_ca} == \
        {k: v for k, v in before.items() if k not in (broken, "%s.0" % h_ca)}
    assert os.readlink(folder / ("%s.0" % h_root)) == "root.pem"
    again = make(PemDirStore, folder, "pem_dir")
    assert not again.plan(again.load(), [], set()).changed
    assert "broken_links" not in again.details
