"""The store backends' ``load`` and the scan on hostile files: a named error or a clean
skip, no crash, no hang, and never a write.

Every example is written to a fresh folder; after ``load`` (pem, der, jks, pkcs12, pem_dir,
debian) or ``_scan.scan`` the folder must be exactly as it was (same names, same bytes, same
modes: nothing written, renamed or left behind), and the scan's result must go through
``json.dumps`` as AnsibleModule sends it. Two budgets, as in ``test_readers``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest
from hostile import corpus
from hypothesis import strategies as st
from javatools import PASSWORD

from ansible_collections.sne.guichet.plugins.module_utils import _scan
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import BACKENDS
from ansible_collections.sne.guichet.plugins.module_utils._x509 import subject_hash

# (default run, fuzz stage) examples per target.
EXAMPLES = {"store": (500, 20000), "scan": (300, 10000)}
MODES = corpus.MODES
# The names a scanned example is written under: each says another format, or none.
SCAN_NAMES = ("store.jks", "store.p12", "bundle.pem", "cert.der", "cert.cer", "noext", "app.conf")


def run_command(argv, data=None, environ_update=None):
    env = dict(os.environ, **(environ_update or {}))
    done = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False,
                          timeout=corpus.HANG_SECONDS)
    return done.returncode, done.stdout, done.stderr


def snapshot(root):
    """Everything below ``root``, links not followed: kind, bytes or target, mode."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            info = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", os.readlink(full))
            elif stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    found[rel] = ("file", handle.read(), info.st_mode)
            else:
                found[rel] = ("other", info.st_mode)
    return found


def fuzz(mode, name, strategy, target, base):
    """For each example, ``target(folder, example)`` fills a fresh folder under ``base`` and
    returns the call to check; the folder must be as it was after the call."""

    def check(example):
        folder = tempfile.mkdtemp(dir=base)
        try:
            call = target(folder, example)
            before = snapshot(folder)
            call()
            assert snapshot(folder) == before, "the folder changed"
        finally:
            shutil.rmtree(folder)

    corpus.explore(mode, name, EXAMPLES[name], strategy, check)


# ----------------------------------------------------------------------------- stores


def store_examples(seeds):
    """(store type, file bytes) pairs: each backend's own kind of file, broken."""
    der = st.one_of(corpus.hostile(seeds["der"]), corpus.hostile_pem(seeds))
    return st.one_of(
        st.tuples(st.just("pem"), corpus.hostile_pem(seeds)),
        st.tuples(st.just("der"), der),
        st.tuples(st.just("jks"), corpus.any_of(seeds, ("jks", "jceks"))),
        st.tuples(st.just("pkcs12"), corpus.any_of(seeds, ("p12_trust", "p12_keys", "p12_clear"))),
        st.tuples(st.sampled_from(("pem_dir", "debian")), corpus.hostile_pem(seeds)),
    )


def load_store(folder, example):
    kind, data = example
    if kind in ("pem_dir", "debian"):
        path = os.path.join(folder, "store")
        os.mkdir(path)
        name = "x.pem" if kind == "pem_dir" else "x.crt"
        with open(os.path.join(path, name), "wb") as handle:
            handle.write(data)
        os.symlink(name, os.path.join(path, "0a1b2c3d.0"))
    else:
        path = os.path.join(folder, "store")
        with open(path, "wb") as handle:
            handle.write(data)
    spec = StoreSpec(path=path, type=kind, password=PASSWORD)

    def check():
        store = BACKENDS[kind](spec, run_command, shutil.which)
        try:
            entries = store.load()
        except StoreError:
            return
        assert all(isinstance(entry, CertEntry) for entry in entries)

    return check


@pytest.mark.parametrize("mode", MODES)
def test_store_load(seeds, mode, tmp_path_factory):
    fuzz(mode, "store", store_examples(seeds), load_store, str(tmp_path_factory.mktemp("stores")))


# ----------------------------------------------------------------------------- scan


def scan_examples(seeds):
    return st.lists(st.one_of(corpus.any_of(seeds, seeds), corpus.hostile_pem(seeds)), min_size=1, max_size=3)


@pytest.mark.parametrize("mode", MODES)
def test_scan(seeds, mode, tmp_path_factory):
    """The examples under names of every kind, a hash link to one; the scan looks for
    everything and for the references to the leaf certificate."""
    leaf = sha256_fingerprint(seeds["der"].data)

    def scan_folder(folder, datas):
        for index, data in enumerate(datas):
            for name in SCAN_NAMES:
                with open(os.path.join(folder, "%d-%s" % (index, name)), "wb") as handle:
                    handle.write(data)
        os.symlink("0-bundle.pem", os.path.join(folder, "%s.0" % subject_hash(seeds["der"].data)))

        def check():
            result = _scan.scan([folder], passwords=[PASSWORD, "wrong"], references_of=[leaf])
            json.dumps(result)  # what exit_json does with it
            assert result["files_scanned"] == len(datas) * len(SCAN_NAMES)
            for problem in result["unreadable"]:
                assert problem["reason"]

        return check

    fuzz(mode, "scan", scan_examples(seeds), scan_folder, str(tmp_path_factory.mktemp("scans")))
