"""JksStore: load, plan, apply; checked with the real keytool."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from javatools import PASSWORD, keytool, make_cert, needs_keytool

from ansible_collections.sne.guichet.plugins.module_utils._common import io as _atomic
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    UNKNOWN_FORMAT,
    VERIFY_FAILED,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
from ansible_collections.sne.guichet.plugins.module_utils._stores import jks as _store_jks
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.jks import JksStore

pytestmark = needs_keytool


def no_command(*args, **kwargs):
    raise AssertionError("the JKS backend must not run commands")


def no_tool(name):
    return None


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A keytool JKS: private key 'server' + ca1, ca2 and V4 under an odd alias."""
    root = tmp_path_factory.mktemp("store_jks")
    pw = root / "pw"
    pw.write_text(PASSWORD + "\n")
    certs = {name: make_cert("store test " + name)
             for name in ("ca1", "ca2", "v4", "v5", "authority", "spare1", "spare2")}
    jks = str(root / "base.jks")
    common = ["-storetype", "JKS", "-keystore", jks, "-storepass:file", str(pw)]
    keytool("-genkeypair", "-alias", "server", "-keyalg", "EC", "-dname", "CN=server",
            "-keypass:file", str(pw), *common)
    for alias, name in (("ca1", "ca1"), ("ca2", "ca2"), ("old-ministry-cert-2014", "v4")):
        (root / (name + ".der")).write_bytes(certs[name])
        keytool("-importcert", "-noprompt", "-alias", alias, "-file", str(root / (name + ".der")),
                *common)
    server_fp = keytool("-list", *common).stdout.split("PrivateKeyEntry")[1].split("): ")[1].split()[0]
    return {"root": root, "pw": str(pw), "certs": certs, "jks": jks, "server_fp": server_fp}


@pytest.fixture
def store_path(world, tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "truststore.jks"
    shutil.copy(world["jks"], path)
    os.chmod(path, 0o640)
    return str(path)


def make_store(path, password=PASSWORD, **kwargs):
    return JksStore(StoreSpec(path, "jks", password=password, **kwargs), no_command, no_tool)


def entry(world, name, label=None):
    return CertEntry(label or name, world["certs"][name])


def keytool_list(world, path, verbose="-v"):
    return keytool("-list", verbose, "-storetype", "JKS", "-keystore", path,
                   "-storepass:file", world["pw"]).stdout


# ------------------------------------------------------------------ load

def test_load_lists_trusted_and_reports_private_keys(world, store_path):
    store = make_store(store_path)
    entries = store.load()
    assert sorted(e.name for e in entries) == ["ca1", "ca2", "old-ministry-cert-2014"]
    assert store.details["backend"] == "stdlib" and store.details["format"] == "jks"
    (key,) = store.details["private_keys"]
    assert key["alias"] == "server" and key["chain"] == [world["server_fp"]]


def test_rotation_v4_to_v5(world, store_path):
    original = _jks.parse(open(store_path, "rb").read(), PASSWORD)
    store = make_store(store_path)
    entries = store.load()
    v4 = entry(world, "v4")
    plan = store.plan(entries, [entry(world, "v5", "SNE-Chiffrement-V5"), entry(world, "authority")],
                      {v4.sha256})
    # V4 is found by fingerprint under its odd alias
    assert [e.name for e in plan.remove] == ["old-ministry-cert-2014"]
    assert [e.name for e in plan.add] == ["SNE-Chiffrement-V5", "authority"]
    assert store.apply(plan, None) is None  # no backup folder given
    assert oct(os.stat(store_path).st_mode & 0o777) == "0o640"

    written = _jks.parse(open(store_path, "rb").read(), PASSWORD)
    kept = {e.alias: e.raw for e in written.entries}
    for old in original.entries:
        if old.alias != "old-ministry-cert-2014":
            assert kept[old.alias] == old.raw  # untouched entries byte for byte
    verbose = keytool_list(world, store_path)
    assert "Your keystore contains 5 entries" in verbose
    assert "Alias name: sne-chiffrement-v5" in verbose  # lowercased like keytool does
    assert entry(world, "v5").sha256 in verbose and entry(world, "authority").sha256 in verbose
    assert v4.sha256 not in verbose and "old-ministry-cert-2014" not in verbose
    rfc = keytool_list(world, store_path, "-rfc")
    assert rfc.count("Entry type: trustedCertEntry") == 4
    assert rfc.count("Entry type: PrivateKeyEntry") == 1
    # the private key is still there, same certificate, and usable
    assert world["server_fp"] in keytool_list(world, store_path)
    keytool("-exportcert", "-rfc", "-alias", "server", "-storetype", "JKS", "-keystore", store_path,
            "-storepass:file", world["pw"])
    csr = keytool("-certreq", "-alias", "server", "-storetype", "JKS", "-keystore", store_path,
                  "-storepass:file", world["pw"], "-keypass:file", world["pw"]).stdout
    assert "BEGIN NEW CERTIFICATE REQUEST" in csr
    # converged: a second run plans nothing
    again = make_store(store_path)
    assert not again.plan(again.load(), [entry(world, "v5"), entry(world, "authority")],
                          {v4.sha256}).changed


def test_present_under_another_alias_is_a_no_op(world, store_path):
    before = sha(store_path)
    store = make_store(store_path)
    plan = store.plan(store.load(), [entry(world, "ca1", "a-brand-new-name")], set())
    assert not plan.changed
    assert store.apply(plan, "/nonexistent/backups") is None
    assert sha(store_path) == before


def test_new_alias_taken_gets_a_suffix(world, store_path):
    store = make_store(store_path)
    entries = store.load()
    plan = store.plan(entries, [entry(world, "spare1", "CA1"), entry(world, "spare2", "ca1")], set())
    store.apply(plan, None)
    aliases = [e.alias for e in _jks.parse(open(store_path, "rb").read(), PASSWORD).entries]
    assert aliases[-2:] == ["ca1-2", "ca1-3"]
    assert "Alias name: ca1-2" in keytool_list(world, store_path)


def test_alias_freed_by_a_removal_is_reused(world, store_path):
    store = make_store(store_path)
    entries = store.load()
    plan = store.plan(entries, [entry(world, "v5", "old-ministry-cert-2014")], {entry(world, "v4").sha256})
    store.apply(plan, None)
    written = _jks.parse(open(store_path, "rb").read(), PASSWORD)
    assert written.find("old-ministry-cert-2014").der == world["certs"]["v5"]


def test_retired_cert_only_in_a_private_key_chain_is_reported_not_touched(world, store_path):
    before = sha(store_path)
    store = make_store(store_path)
    entries = store.load()
    plan = store.plan(entries, [], {world["server_fp"]})
    assert not plan.changed
    assert store.details["retired_in_private_keys"] == [
        {"alias": "server", "sha256": world["server_fp"], "position": "0"}]
    store.apply(plan, None)
    assert sha(store_path) == before


def test_backup_is_taken_before_writing(world, store_path, tmp_path):
    before = open(store_path, "rb").read()
    backups = Backups(str(tmp_path / "backups"), "run1")
    store = make_store(store_path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())
    copy = store.apply(plan, backups)
    assert copy and open(copy, "rb").read() == before
    manifest = [json.loads(line) for line in open(tmp_path / "backups" / "run1" / "manifest.jsonl")]
    assert manifest == [{"action": "replaced", "backup": copy, "path": store_path}]
    # a backup folder given as a string works too
    store2 = make_store(store_path)
    copy2 = store2.apply(store2.plan(store2.load(), [entry(world, "authority")], set()),
                         str(tmp_path / "b2"))
    assert copy2 and open(copy2, "rb").read() != before


# ------------------------------------------------------------------ missing / create

def test_missing_store(tmp_path):
    with pytest.raises(StoreError) as err:
        make_store(str(tmp_path / "nope.jks")).load()
    assert err.value.code == NOT_FOUND


def test_create_missing_store(world, tmp_path):
    path = str(tmp_path / "new.jks")
    store = make_store(path, create=True, mode="0600")
    assert store.load() == []
    backups = Backups(str(tmp_path / "bk"), "r")
    assert store.apply(store.plan([], [entry(world, "v5", "V5")], set()), backups) is None
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    listing = keytool_list(world, path)
    assert "Your keystore contains 1 entry" in listing and entry(world, "v5").sha256 in listing
    manifest = open(tmp_path / "bk" / "r" / "manifest.jsonl").read()
    assert '"action": "created"' in manifest


def test_create_needs_a_password(world, tmp_path):
    path = str(tmp_path / "new.jks")
    store = make_store(path, password=None, create=True)
    store.load()
    with pytest.raises(StoreError) as err:
        store.apply(store.plan([], [entry(world, "v5")], set()), None)
    assert err.value.code == WRONG_PASSWORD
    assert not os.path.exists(path)


def test_no_password_reads_for_reporting_only(world, store_path):
    before = sha(store_path)
    store = make_store(store_path, password=None)
    entries = store.load()
    assert len(entries) == 3 and store.details["integrity_checked"] is False
    with pytest.raises(StoreError) as err:
        store.apply(store.plan(entries, [entry(world, "v5")], set()), None)
    assert err.value.code == WRONG_PASSWORD
    assert sha(store_path) == before


# ------------------------------------------------------------------ failures leave the file as it was

def _expect_failure(store_path, code, action):
    before = sha(store_path)
    with pytest.raises(StoreError) as err:
        action()
    assert err.value.code == code
    assert sha(store_path) == before
    leftovers = [n for n in os.listdir(os.path.dirname(store_path)) if n.endswith(".sne-tmp")]
    assert leftovers == []
    return err.value


def test_wrong_password(store_path):
    err = _expect_failure(store_path, WRONG_PASSWORD, make_store(store_path, password="nope").load)
    assert err.reason == "store password incorrect or store damaged (integrity check failed)"


def test_truncated(store_path):
    data = open(store_path, "rb").read()
    with open(store_path, "wb") as handle:
        handle.write(data[:len(data) // 2])
    err = _expect_failure(store_path, CORRUPT, make_store(store_path).load)
    assert "byte" in err.reason


def test_truncation_at_every_byte_is_corrupt_and_left_alone(store_path):
    raw = open(store_path, "rb").read()
    for cut in range(1, len(raw)):
        with open(store_path, "wb") as handle:
            handle.write(raw[:cut])
        err = _expect_failure(store_path, CORRUPT, make_store(store_path).load)
        assert "truncated" in err.reason, (cut, err.reason)
        with open(store_path, "rb") as handle:
            assert handle.read() == raw[:cut]


def test_not_a_keystore(world, store_path):
    with open(store_path, "w") as handle:
        handle.write("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    err = _expect_failure(store_path, UNKNOWN_FORMAT, make_store(store_path).load)
    assert "PEM" in err.reason


def test_read_only_folder_simulated(world, store_path, monkeypatch):
    """Tests run as root, which ignores chmod 0555: simulate EROFS on rename instead."""
    store = make_store(store_path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_atomic.os, "rename", refuse)
    err = _expect_failure(store_path, IO_ERROR, lambda: store.apply(plan, None))
    assert "read-only file system" in err.reason


def test_read_only_folder_simulated_at_mkstemp(world, store_path, monkeypatch):
    store = make_store(store_path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", refuse)
    _expect_failure(store_path, IO_ERROR, lambda: store.apply(plan, None))


@pytest.fixture
def readonly_mount(tmp_path):
    """A real read-only tmpfs (needs mount rights; skipped elsewhere)."""
    point = tmp_path / "ro"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(point)], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield str(point)
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def test_read_only_folder_real_mount(world, readonly_mount):
    path = os.path.join(readonly_mount, "truststore.jks")
    shutil.copy(world["jks"], path)
    remount = ["mount", "-o", "remount,ro", readonly_mount]
    if subprocess.run(remount, capture_output=True, check=False).returncode:
        pytest.skip("cannot remount read-only")
    store = make_store(path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())
    err = _expect_failure(path, IO_ERROR, lambda: store.apply(plan, None))
    assert "read-only file system" in err.reason


def test_verify_catches_a_bad_write(world, store_path, monkeypatch):
    store = make_store(store_path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())
    real = _jks.serialize

    def lossy(keystore, password):
        copy = keystore.copy()
        copy.entries = [e for e in copy.entries if e.alias != "server"]
        return real(copy, password)

    monkeypatch.setattr(_store_jks, "serialize", lossy)
    _expect_failure(store_path, VERIFY_FAILED, lambda: store.apply(plan, None))


def test_store_changed_since_load(world, store_path):
    store = make_store(store_path)
    plan = store.plan(store.load(), [entry(world, "v5")], set())
    other = make_store(store_path)
    other.apply(other.plan(other.load(), [entry(world, "spare1")], set()), None)
    _expect_failure(store_path, IO_ERROR, lambda: store.apply(plan, None))


def test_plan_naming_a_wrong_entry_is_refused(world, store_path):
    store = make_store(store_path)
    store.load()
    bogus = Plan(add=[], remove=[CertEntry("ca1", world["certs"]["ca2"])])
    _expect_failure(store_path, VERIFY_FAILED, lambda: store.apply(bogus, None))
    server = Plan(add=[], remove=[CertEntry("server", world["certs"]["ca2"])])
    _expect_failure(store_path, VERIFY_FAILED, lambda: store.apply(server, None))


# ------------------------------------------------------------------ property

_POOL = ["ca1", "ca2", "v4", "v5", "authority", "spare1", "spare2"]
_steps = st.lists(
    st.tuples(st.sets(st.sampled_from(_POOL)),                       # fingerprints to retire
              st.lists(st.tuples(st.sampled_from(_POOL),             # certs wanted present
                                 st.sampled_from(["ca1", "CA2", "v5", "x", "Server"])),
                       max_size=3)),
    min_size=1, max_size=4)


def test_random_plans_never_touch_other_entries(world):
    base = open(world["jks"], "rb").read()
    original = {e.alias: e.raw for e in _jks.parse(base, PASSWORD).entries}
    fp = {name: CertEntry(name, der).sha256 for name, der in world["certs"].items()}
    samples = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_steps)
    def run(steps):
        folder = tempfile.mkdtemp()
        try:
            path = os.path.join(folder, "s.jks")
            with open(path, "wb") as handle:
                handle.write(base)
            touched = set()  # aliases of entries removed at some point
            for absent_names, wanted in steps:
                absent = set(fp[n] for n in absent_names)
                present = [CertEntry(label, world["certs"][n]) for n, label in wanted]
                store = make_store(path)
                entries = store.load()
                plan = store.plan(entries, present, absent)
                touched.update(e.name for e in plan.remove)
                store.apply(plan, None)
                written = _jks.parse(open(path, "rb").read(), PASSWORD)
                held = set(e.sha256 for e in written.trusted())
                assert not held & absent
                assert set(c.sha256 for c in present) - absent <= held
                for e in written.entries:
                    if e.alias in original and e.alias not in touched:
                        assert e.raw == original[e.alias]
                assert written.find("server").raw == original["server"]
                assert len(set(e.alias for e in written.entries)) == len(written.entries)
            samples.append(open(path, "rb").read())
        finally:
            shutil.rmtree(folder)

    run()
    # keytool reads a few of the results (one JVM each; the codec checked them all)
    rng = random.Random(1)
    for data in rng.sample(samples, min(3, len(samples))):
        with tempfile.NamedTemporaryFile(suffix=".jks") as handle:
            handle.write(data)
            handle.flush()
            listing = keytool_list(world, handle.name, "-rfc")
            assert listing.count("Entry type: PrivateKeyEntry") == 1
            count = len(_jks.parse(data, PASSWORD).entries)
            assert ("contains %d entr" % count) in listing
