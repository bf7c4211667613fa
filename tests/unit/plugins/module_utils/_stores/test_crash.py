# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash safety: the keystores write path SIGKILLed at every write-side call, for every store type.

For each store type (jks with a private key, pkcs12 with a private key (keytool backend),
pkcs12 truststore (cryptography backend), pem, der, pem_dir, Debian and Red Hat trust
anchors, an NSS database with a key pair (certutil)) a child process
(``tests/unit/crash_child.py``) runs one real convergence (add V5 and AC V5, remove V4 and
AC V4, backups on, a fixed run_id, time frozen) and kills itself with SIGKILL at its k-th
write-side call, before or after the call. A first run
without a kill counts the calls (K) and gives the new version. After each kill:

- the store is the old version or the complete new one: the same bytes as the run that was
  not killed, or (PKCS#12, whose salts are random) the new set of certificates with the
  private key entry intact, read by cryptography and by ``keytool -list``; a folder store
  may be between the two (its steps are not one rename) but never broken: no file half
  written, every subject-hash link resolves, the links of each hash numbered without a
  gap, and ``openssl verify -CApath`` verifies V4 (old CA still there) or V5 (new one
  already there): never neither;
- every backup the manifest lists is complete (byte-identical to what it saved);
- the store password is in no file of the temporary folder, the host or the backups;
- a rerun (with the same run_id or a new one, alternately) succeeds and leaves the complete
  new version, nothing else of the host changed, every file the runs changed listed in a
  manifest with a complete backup, no temporary file (``*.sne-tmp``) and no keytool scratch
  folder left; a third run changes nothing.

The child is forked from the test process (no start-up cost; what the collection notes at
import as its process's start is reset) and works on a tmpfs when there is one: a SIGKILL
leaves there what it leaves on a disk, the page cache. Outcomes are judged once per distinct
result (the store's digest is the cache key), so the tools run only on what is new, and a
kill that leaves exactly what an earlier one left is not rerun. The default test command
kills at a deterministic sample of the calls (``kill_points``); ``scripts/test.sh fuzz`` (``-m
fuzz``) kills every type at every call, before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile

import crash_child
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from javatools import KEYTOOL, needs_keytool
from nsstools import add as nss_add
from nsstools import contents as nss_contents
from nsstools import keys as nss_keys
from nsstools import make_db, needs_certutil

from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry
from ansible_collections.sne.guichet.plugins.module_utils._x509 import subject_hash

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, *[os.pardir] * 5))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
PASSWORD = "crash-Pw-5b8e1f"  # distinctive: searched for in the temporary folder after kills
NOW = 1452153600.0  # 2016-01-07T08:00:00Z, frozen in the child
RUN_ID = "crash-run"
PRESENT = (("sne-chiffrement-v5", "chiffrement-v5"), ("sne-ac-v5", "ac-v5"))
RETIRED = ("chiffrement-v4", "ac-v4")
TMP_SUFFIX = ".sne-tmp"
OPENSSL = shutil.which("openssl")
KEYTOOL_ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8", SNE_CRASH_PW=PASSWORD)
KEYTOOL_OPTS = ["-J-Duser.language=en", "-J-Dfile.encoding=UTF-8", "-J-Dsun.stdout.encoding=UTF-8",
                "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"]


def digest(data):
    return hashlib.sha256(data).hexdigest()


def sha(der):
    return CertEntry("", der).sha256


def keytool(*args):
    done = subprocess.run([KEYTOOL] + KEYTOOL_OPTS + list(args), capture_output=True, text=True,
                          env=KEYTOOL_ENV, check=False, timeout=120)
    assert done.returncode == 0, "keytool %s: %s%s" % (args, done.stdout, done.stderr)
    return done.stdout


def keytool_view(path, storetype):
    """alias -> (entry type, tuple of the SHA-256 of its certificates), as keytool lists it."""
    out = keytool("-list", "-rfc", "-storetype", storetype, "-keystore", path,
                  "-storepass:env", "SNE_CRASH_PW")
    view = {}
    for chunk in out.split("Alias name: ")[1:]:
        alias = chunk.split("\n", 1)[0].strip()
        kind = chunk.split("Entry type: ", 1)[1].split("\n", 1)[0].strip()
        ders = []
        if "-----BEGIN CERTIFICATE-----" in chunk:
            ders = [c.public_bytes(serialization.Encoding.DER)
                    for c in x509.load_pem_x509_certificates(chunk.encode("utf-8"))]
        view[alias] = (kind, tuple(sha(d) for d in ders))
    return view


def walk(root):
    """rel -> ("file", sha256) | ("link", target) | ("dir",) below ``root``, leftovers apart."""
    found, leftovers = {}, []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            if name.endswith(TMP_SUFFIX):
                leftovers.append(rel)
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir",)
            else:
                with open(full, "rb") as handle:
                    found[rel] = ("file", digest(handle.read()))
    return found, leftovers


def tree_key(tree):
    return digest(json.dumps(sorted(tree.items())).encode("utf-8"))


# ----------------------------------------------------------------------------- the world


class World:
    """The test PKI's certificates and keytool-made seed keystores (with a private key)."""

    def __init__(self, pki, folder):
        self.folder = folder
        self.der, self.pem, self.files = {}, {}, {}
        for ident in ("root", "ac-v4", "ac-v5", "chiffrement-v4", "chiffrement-v5"):
            base = os.path.join(pki["dir"], ident)
            with open(base + ".der", "rb") as handle:
                self.der[ident] = handle.read()
            with open(base + ".pem", "rb") as handle:
                self.pem[ident] = handle.read()
            self.files[ident] = base + ".der"
        self.sha = {ident: sha(der) for ident, der in self.der.items()}
        self.absent = [self.sha[i] for i in RETIRED]
        self.present = [[name, self.files[ident]] for name, ident in PRESENT]
        self._seeds = {}

    def nss_seed(self):
        """An NSS sql: database with the password: a key pair, root (C,,), V4 under an odd
        nickname (P,,) and AC V4 (C,,)."""
        path = os.path.join(self.folder, "nssdb")
        if not os.path.isdir(path):
            make_db(path, PASSWORD)
            layout = (("root", "C,,", "root"), ("old ministry cert 2014", "P,,", "chiffrement-v4"),
                      ("AC SNE V4", "C,,", "ac-v4"))
            for nick, trust, ident in layout:
                nss_add(path, nick, trust, self.files[ident], PASSWORD)
        return path

    def seed(self, storetype, keys):
        """root, V4 and AC V4 as trusted certificates (+ the private key ``server``)."""
        name = "%s-%s" % (storetype, "keys" if keys else "trust")
        if name not in self._seeds:
            path = os.path.join(self.folder, name)
            common = ["-storetype", storetype, "-keystore", path, "-storepass:env", "SNE_CRASH_PW"]
            if keys:
                keytool("-genkeypair", "-alias", "server", "-keyalg", "EC", "-dname", "CN=server",
                        "-keypass:env", "SNE_CRASH_PW", *common)
            for alias, ident in (("root", "root"), ("old-ministry-cert-2014", "chiffrement-v4"),
                                 ("ac-sne-v4", "ac-v4")):
                keytool("-importcert", "-noprompt", "-alias", alias, "-file", self.files[ident],
                        *common)
            self._seeds[name] = path
        return self._seeds[name]


# ----------------------------------------------------------------------------- store types


class Kind:
    """One store type: how its old version is made and how an outcome is judged."""

    type = ""
    folder = False
    java = None
    keys = False
    no_cryptography = False
    file_name = "store"

    def __init__(self, name, world):
        self.name = name
        self.world = world
        self._verdicts = {}

    def path(self, host):
        return os.path.join(host, self.file_name)

    def spec(self, host, case):
        return {"path": self.path(host), "type": self.type,
                "password": PASSWORD if self.java else None}

    def make(self, host):
        raise NotImplementedError

    def state(self, host):
        """What the store is (bytes or folder tree), without leftover temporary files."""
        with open(self.path(host), "rb") as handle:
            return handle.read()

    def key(self, state):
        return digest(state) if isinstance(state, bytes) else tree_key(state)

    def judge(self, host, old, new):
        """"old", "new" or "between" (folders); AssertionError when the store is broken.
        Cached by the digest of what the store is."""
        now = self.state(host)
        if now == old:
            return "old"
        if now == new:
            return "new"
        cache = self.key(now)
        if cache not in self._verdicts:
            self._verdicts[cache] = self.judge_other(host, now)
        return self._verdicts[cache]

    def judge_other(self, host, now):
        raise AssertionError("%s: the store is neither the old nor the new version" % self.name)

    def check_new(self, host):
        """Independent check of the new version with the tools (once per kind)."""

    def refresh_pending(self, case):
        """Whether a refresh-pending mark is left (trust anchors only)."""
        return False

    def check_refreshed(self, case):
        """After a rerun: the last refresh saw the folder as it is (trust anchors only)."""


class Pem(Kind):
    type = "pem"
    file_name = "bundle.pem"

    def make(self, host):
        w = self.world
        with open(self.path(host), "wb") as handle:
            handle.write(b"# guichet bundle\n" + w.pem["root"] + w.pem["chiffrement-v4"]
                         + b"subject=unrelated text\n" + w.pem["ac-v4"])

    def check_new(self, host):
        with open(self.path(host), "rb") as handle:
            certs = x509.load_pem_x509_certificates(handle.read())
        got = sorted(sha(c.public_bytes(serialization.Encoding.DER)) for c in certs)
        assert got == sorted(self.world.sha[i] for i in ("root", "chiffrement-v5", "ac-v5"))


class Der(Kind):
    type = "der"
    file_name = "cert.der"

    def make(self, host):
        with open(self.path(host), "wb") as handle:
            handle.write(self.world.der["chiffrement-v4"])

    def check_new(self, host):
        with open(self.path(host), "rb") as handle:
            assert sha(handle.read()) == self.world.sha["chiffrement-v5"]


class Java(Kind):
    java = "JKS"

    def make(self, host):
        shutil.copy(self.world.seed(self.java, self.keys), self.path(host))

    def wanted(self):
        w = self.world
        view = {"root": ("trustedCertEntry", (w.sha["root"],)),
                "sne-chiffrement-v5": ("trustedCertEntry", (w.sha["chiffrement-v5"],)),
                "sne-ac-v5": ("trustedCertEntry", (w.sha["ac-v5"],))}
        if self.keys:
            server = keytool_view(self.world.seed(self.java, True), self.java)["server"]
            assert server[0] == "PrivateKeyEntry" and server[1]
            view["server"] = server
        return view

    def check_new(self, host):
        assert keytool_view(self.path(host), self.java) == self.wanted()


class Jks(Java):
    type = "jks"
    file_name = "app.jks"
    keys = True


class Pkcs12(Java):
    type = "pkcs12"
    java = "PKCS12"
    file_name = "app.p12"

    def _crypto_view(self, data):
        store = pkcs12.load_pkcs12(data, PASSWORD.encode("utf-8"))
        view = sorted((c.friendly_name, sha(c.certificate.public_bytes(serialization.Encoding.DER)))
                      for c in store.additional_certs)
        key = None
        if store.key is not None:
            key = (store.cert.friendly_name,
                   store.cert.certificate.public_bytes(serialization.Encoding.DER),
                   store.key.private_bytes(serialization.Encoding.DER,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return view, key

    def judge_other(self, host, now):
        """Random salts: a complete new version has other bytes than the reference run."""
        with open(self.world.seed(self.java, self.keys), "rb") as handle:
            _old_view, old_key = self._crypto_view(handle.read())
        view, key = self._crypto_view(now)
        w = self.world
        assert view == sorted([(b"root", w.sha["root"]),
                               (b"sne-chiffrement-v5", w.sha["chiffrement-v5"]),
                               (b"sne-ac-v5", w.sha["ac-v5"])]), view
        assert key == old_key, "the private key entry changed"
        self.check_new(host)  # keytool reads it, the PrivateKeyEntry with the same chain
        return "new"


class Pkcs12Keys(Pkcs12):
    keys = True  # keytool backend: cryptography cannot rewrite a private key entry


class Pkcs12Trust(Pkcs12):
    keys = False  # a pure Java truststore: the cryptography backend


class Nss(Kind):
    """An NSS database: the old or the new one as certutil sees it, its key pair intact. NSS
    writes salts and times: a rerun's bytes are not the reference's, its view is ("new"); a
    kill between the renames of key4.db and cert9.db leaves the old view ("between")."""

    type = "nss"
    folder = True
    file_name = "nssdb"

    def spec(self, host, case):
        return {"path": self.path(host), "type": "nss", "password": PASSWORD}

    def make(self, host):
        shutil.copytree(self.world.nss_seed(), self.path(host))

    def state(self, host):
        return walk(self.path(host))[0]

    def views(self):
        w = self.world
        seed = self.world.nss_seed()
        old = nss_contents(seed)
        new = dict((n, v) for n, v in old.items() if not set(v[1]) & {w.sha[i] for i in RETIRED})
        new.update({"sne-chiffrement-v5": ("P,,", [w.sha["chiffrement-v5"]]),
                    "sne-ac-v5": ("C,,", [w.sha["ac-v5"]])})
        return old, new, nss_keys(seed, PASSWORD)

    def judge_other(self, host, now):
        old, new, keys = self.views()
        view = nss_contents(self.path(host))
        assert view in (old, new), "%s: certutil -L shows neither version: %s" % (self.name, view)
        assert nss_keys(self.path(host), PASSWORD) == keys, "%s: the private keys changed" % self.name
        return "new" if view == new else "between"

    def check_new(self, host):
        _old, new, keys = self.views()
        assert nss_contents(self.path(host)) == new
        assert nss_keys(self.path(host), PASSWORD) == keys


class Folder(Kind):
    folder = True
    layout = {}
    holds = (".pem",)

    def make(self, host):
        root = self.path(host)
        os.makedirs(os.path.join(root, "sub"))
        for rel, ident in self.layout.items():
            with open(os.path.join(root, rel), "wb") as handle:
                handle.write(self.world.pem[ident])
        with open(os.path.join(root, "notes.txt"), "w") as handle:
            handle.write("not a certificate\n")
        with open(os.path.join(root, "sub", "keep.txt"), "w") as handle:
            handle.write("unrelated\n")

    def state(self, host):
        return walk(self.path(host))[0]

    def held(self, host):
        """SHA-256 of the certificates in the files the store reads."""
        root = self.path(host)
        found = set()
        for rel, what in self.state(host).items():
            if what[0] == "file" and rel.endswith(self.holds):
                with open(os.path.join(root, rel), "rb") as handle:
                    data = handle.read()
                for cert in x509.load_pem_x509_certificates(data):
                    found.add(sha(cert.public_bytes(serialization.Encoding.DER)))
        return found

    def judge_other(self, host, now):
        """Between the old and the new version: only whole files, make before break."""
        w = self.world
        pems = dict((digest(text), ident) for ident, text in w.pem.items())
        for rel, what in now.items():
            if what[0] == "file" and rel.endswith(self.holds):
                assert what[1] in pems, "%s: %s is not a whole certificate file" % (self.name, rel)
        held = self.held(host)
        assert w.sha["root"] in held
        assert held <= set(w.sha.values())
        assert w.sha["ac-v4"] in held or w.sha["ac-v5"] in held, "neither CA is there"
        return "between"


class PemDir(Folder):
    type = "pem_dir"
    # the retired holders sort before their hash links (4bb33873.0, 8f5dbf0c.0): removed in
    # name order, a kill between the file and its link would leave the link dangling
    layout = {"root.pem": "root", "2014-ac-v4.pem": "ac-v4",
              "2014-chiffrement-v4.pem": "chiffrement-v4"}

    def make(self, host):
        super().make(host)
        for rel, ident in self.layout.items():
            os.symlink(rel, os.path.join(self.path(host), "%s.0" % subject_hash(self.world.der[ident])))

    def verifies(self, host, ident):
        done = subprocess.run([OPENSSL, "verify", "-no_check_time", "-CApath", self.path(host),
                               self.world.files[ident].replace(".der", ".pem")],
                              capture_output=True, text=True, check=False, timeout=60)
        return done.returncode == 0

    def links_sound(self, host, now):
        """Every hash link resolves; the links of each hash are numbered 0..n-1."""
        buckets = {}
        for rel, what in now.items():
            name = os.path.basename(rel)
            if len(name) > 9 and name[8] == "." and name[9:].isdigit():
                buckets.setdefault(name[:8], []).append(int(name[9:]))
                if what[0] == "link":
                    assert os.path.isfile(os.path.join(self.path(host), rel)), \
                        "%s: dangling link %s -> %s" % (self.name, rel, what[1])
        for prefix, numbers in buckets.items():
            assert sorted(numbers) == list(range(len(numbers))), \
                "%s: links %s.* numbered %s" % (self.name, prefix, sorted(numbers))

    def judge_other(self, host, now):
        verdict = super().judge_other(host, now)
        self.links_sound(host, now)
        assert self.verifies(host, "chiffrement-v4") or self.verifies(host, "chiffrement-v5"), \
            "%s: neither V4 nor V5 verifies with -CApath" % self.name
        return verdict

    def check_new(self, host):
        now = self.state(host)
        self.links_sound(host, now)
        assert self.verifies(host, "chiffrement-v5"), "V5 does not verify with -CApath"
        assert not self.verifies(host, "chiffrement-v4"), "V4 still verifies"


class Anchors(Folder):
    def spec(self, host, case):
        spec = super().spec(host, case)
        spec["refresh"] = "%s %s %s" % (case["refresh_script"], self.path(host),
                                        case["refresh_marker"])
        return spec

    def check_new(self, host):
        w = self.world
        assert self.held(host) == {w.sha["root"], w.sha["ac-v5"]}

    def refresh_pending(self, case):
        return bool(pending_marks(case))

    def check_refreshed(self, case):
        assert not pending_marks(case), "a refresh-pending mark is left after the rerun"
        now = os.path.join(case["dir"], "now.txt")
        subprocess.run([case["refresh_script"], self.path(case["host"]), now], check=True, timeout=60)
        assert os.path.exists(case["refresh_marker"]), "the refresh command never ran"
        with open(case["refresh_marker"]) as seen, open(now) as there:
            assert seen.read() == there.read(), "the last refresh saw another folder"


class Debian(Anchors):
    type = "debian"
    holds = (".crt",)
    layout = {"root.crt": "root", "sub/ac-v4.crt": "ac-v4", "chiffrement-v4.crt": "chiffrement-v4",
              "ignored.pem": "ac-v4"}  # update-ca-certificates reads *.crt only


class Redhat(Anchors):
    type = "redhat"
    holds = (".pem", ".crt")
    layout = {"root.pem": "root", "ac-v4.pem": "ac-v4", "chiffrement-v4.pem": "chiffrement-v4"}


KINDS = {"jks": Jks, "pkcs12-keys": Pkcs12Keys, "pkcs12-trust": Pkcs12Trust, "pem": Pem,
         "der": Der, "pem_dir": PemDir, "debian": Debian, "redhat": Redhat, "nss": Nss}
# The default test command kills at a sample of the calls (see kill_points), the keytool
# kind (6 JVM starts a run) at one call of each phase: (call, n-th of that name or -1 for
# the last, side); the fuzz stage (-m fuzz) kills every kind at every call, on both sides.
# der and the PKCS#12 truststore make the same calls as pem and jks (one file replaced):
# every third of them is enough to check what they write.
SPARSE = {"der": 3, "pkcs12-trust": 3}
PHASES = {"pkcs12-keys": [
    ("run_command", 2, "after"),  # V4 deleted from the scratch copy
    ("sendfile", 1, "after"),  # the backup copied half
    ("run_command", 6, "before"),  # the new store in its temporary file, not yet verified
    ("rename", -1, "after"),  # the new store in place
    ("rmdir", -1, "before"),  # the scratch folder not yet removed
]}
REFRESH_SCRIPT = """#!/bin/sh
# what the folder was when the refresh ran: one line per file or link
cd "$1" && find . ! -name '*.sne-tmp' \\( -type f -o -type l \\) | LC_ALL=C sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(sha256sum < "$f")"; fi
done > "$2"
"""


# ----------------------------------------------------------------------------- the harness


def pending_marks(case):
    """The refresh-pending marks in the case's lock folder (``lock_base``: case["dir"])."""
    folder = os.path.join(case["dir"], "sne-guichet")
    return sorted(n for n in os.listdir(folder) if n.endswith(".refresh-pending")) \
        if os.path.isdir(folder) else []


def host_snapshot(host):
    """rel -> what is there (file digest or link target), for the backup checks."""
    return walk(host)[0]


def backup_view(path):
    if os.path.islink(path):
        return ("link", os.readlink(path))
    with open(path, "rb") as handle:
        return ("file", digest(handle.read()))


def manifest(case, run_id):
    """The manifest lines of ``run_id``: each one whole JSON."""
    path = os.path.join(case["backups"], run_id, "manifest.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as handle:
        lines = handle.read().splitlines()
    return [json.loads(line) for line in lines]


def check_listed_backups(case, run_id, before):
    """Every backup the manifest of ``run_id`` lists is complete: what the path held in
    ``before``; a ``created`` line names a path that was not there. Returns the paths."""
    listed = set()
    for line in manifest(case, run_id):
        rel = os.path.relpath(line["path"], case["host"])
        if line["action"] == "created":
            assert before.get(rel) is None, "%s listed as created but it was there" % rel
        else:
            assert line["backup"] and os.path.lexists(line["backup"]), line
            assert backup_view(line["backup"]) == before.get(rel), \
                "the backup of %s listed in the manifest is not complete" % rel
        listed.add(rel)
    return listed


def password_leaks(*folders):
    """Files below ``folders`` whose name or content holds the store password."""
    found = []
    needle = PASSWORD.encode("utf-8")
    for top in folders:
        for folder, _dirs, files in os.walk(top):
            for name in files:
                full = os.path.join(folder, name)
                if PASSWORD in name:
                    found.append(full)
                elif os.path.isfile(full) and not os.path.islink(full):
                    with open(full, "rb") as handle:
                        if needle in handle.read():
                            found.append(full)
    return found


class Harness:
    """Runs the child for one kind: the reference run, then one case per kill point."""

    def __init__(self, kind, base):
        self.kind = kind
        self.base = base
        self.counter = 0
        self.seen = set()  # what kills left, by state_key: each distinct one is rerun once
        with open(os.path.join(base, "refresh.sh"), "w") as handle:
            handle.write(REFRESH_SCRIPT)
        os.chmod(os.path.join(base, "refresh.sh"), 0o755)

    def new_case(self, label):
        folder = os.path.join(self.base, label)
        case = {"dir": folder, "host": os.path.join(folder, "host"),
                "backups": os.path.join(folder, "backups"), "tmp": os.path.join(folder, "tmp"),
                "refresh_script": os.path.join(self.base, "refresh.sh"),
                "refresh_marker": os.path.join(folder, "refreshed.txt")}
        for key in ("host", "backups", "tmp"):
            os.makedirs(case[key])
        with open(os.path.join(case["host"], "unrelated.conf"), "w") as handle:
            handle.write("listen 443\n")
        self.kind.make(case["host"])
        return case

    def run(self, case, run_id, kill_at=0, side="before", trace=None):
        """One child run; (return code, result or None)."""
        self.counter += 1
        result = os.path.join(case["dir"], "result-%d.json" % self.counter)
        config = {"collections": COLLECTIONS, "stores": [self.kind.spec(case["host"], case)],
                  "present": self.kind.world.present, "absent": self.kind.world.absent,
                  "backup_dir": case["backups"], "run_id": run_id, "now": NOW,
                  "lock_base": case["dir"],
                  "no_cryptography": self.kind.no_cryptography, "kill_at": kill_at,
                  "side": side, "trace": trace, "result": result}
        status, outcome = crash_child.run_forked(config, case["tmp"])
        if outcome is not None:
            return 0, outcome
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        return -signal.SIGKILL, None

    def reference(self):
        """The run that is not killed: the old and new versions and the calls it makes."""
        case = self.new_case("reference")
        old = self.kind.state(case["host"])
        trace = os.path.join(case["dir"], "trace.txt")
        rc, result = self.run(case, RUN_ID, trace=trace)
        assert rc == 0 and result["changed"] and not result["failed"], result
        new = self.kind.state(case["host"])
        assert new != old
        self.kind.check_new(case["host"])
        with open(trace) as handle:
            calls = handle.read().splitlines()
        assert len(calls) == result["calls"]
        rc, again = self.run(case, "crash-again")
        assert rc == 0 and not again["changed"] and not again["failed"], again
        return {"old": old, "new": new, "calls": calls, "result": result["stores"][0]}

    def kill_case(self, ref, kill_at, side):
        """Kill at call ``kill_at``; check the store, the backups, the rerun. Returns the
        verdict just after the kill (old, new or between) and whether it was rerun (not
        when an earlier kill left exactly the same)."""
        kind = self.kind
        case = self.new_case("%d-%s" % (kill_at, side))
        before = host_snapshot(case["host"])
        rc, _result = self.run(case, RUN_ID, kill_at=kill_at, side=side)
        assert rc == -signal.SIGKILL, "the child was not killed at call %d" % kill_at
        verdict = kind.judge(case["host"], ref["old"], ref["new"])
        killed = host_snapshot(case["host"])
        check_listed_backups(case, RUN_ID, before)
        leaks = password_leaks(case["tmp"], case["host"], case["backups"])
        assert not leaks, "the password is left in %s" % leaks
        # the rerun: the same run_id or a new one, alternately (a kill after call k leaves
        # what a kill before call k+1 leaves: both get the same one)
        rerun_id = RUN_ID if (kill_at + (side == "after")) % 2 else "crash-rerun"
        seen = self.state_key(case, rerun_id)
        if seen in self.seen:
            shutil.rmtree(case["dir"])
            return verdict, False
        self.seen.add(seen)
        pending = kind.refresh_pending(case)
        rc, again = self.run(case, rerun_id)
        assert rc == 0 and not again["failed"], again
        assert again["changed"] == (verdict != "new" or pending), (verdict, pending, again)
        assert kind.judge(case["host"], ref["old"], ref["new"]) == "new"
        kind.check_refreshed(case)
        final = host_snapshot(case["host"])
        listed = check_listed_backups(case, RUN_ID, before)
        if rerun_id != RUN_ID:
            listed |= check_listed_backups(case, rerun_id, killed)
        changed = set(rel for rel in set(before) | set(final)
                      if before.get(rel) != final.get(rel) and (final.get(rel) or before[rel])[0] != "dir")
        assert changed <= listed, "changed without a complete backup listed: %s" % sorted(changed - listed)
        store = os.path.relpath(kind.path(case["host"]), case["host"])
        assert all(rel == store or rel.startswith(store + os.sep) for rel in changed), \
            "changed outside the store: %s" % sorted(changed)
        leftovers = walk(case["host"])[1]
        assert leftovers == [], "temporary files left: %s" % leftovers
        scratch = [n for n in os.listdir(case["tmp"]) if n.startswith("sne-keytool-")]
        assert scratch == [], "keytool scratch folders left: %s" % scratch
        assert not password_leaks(case["tmp"], case["host"], case["backups"])
        rc, third = self.run(case, "crash-third")
        assert rc == 0 and not third["changed"] and not third["failed"], third
        shutil.rmtree(case["dir"])
        return verdict, True

    def state_key(self, case, rerun_id):
        """What a kill left (store, backups, and that there are leftovers: temporary files,
        scratch folders, which the rerun only removes), the case's own folder name left
        out: equal keys, equal reruns."""
        parts = [rerun_id, "refresh pending %s" % self.kind.refresh_pending(case)]
        for top in ("host", "backups", "tmp"):
            for folder, dirs, files in os.walk(case[top]):
                dirs.sort()
                for name in sorted(dirs + files):
                    full = os.path.join(folder, name)
                    rel = os.path.relpath(full, case[top])
                    if name.endswith(TMP_SUFFIX) or "sne-keytool-" in rel:
                        parts.append("%s %s/(temporary)" % (top, os.path.dirname(rel)))
                    elif os.path.islink(full):
                        parts.append("%s %s -> %s" % (top, rel, os.readlink(full)))
                    elif os.path.isfile(full):
                        with open(full, "rb") as handle:
                            data = handle.read().replace(case["dir"].encode(), b"{case}")
                        parts.append("%s %s %s" % (top, rel, digest(data)))
                    elif top != "backups":  # the backup folders made so far change nothing
                        parts.append("%s %s/" % (top, rel))
        return digest("\n".join(sorted(parts)).encode("utf-8"))


def kill_points(kind_name, calls, full):
    """(k, side): every call on both sides (``full``); else every call on one side (before
    for odd k, after for even k; every n-th call for the kinds of ``SPARSE``), always after
    a write or a sendfile (a torn write), but only every third folder creation (the backup
    folders: mkdir, makedirs and the fsync that follows); or, for the slowest kind, one call
    of each of its PHASES."""
    count = len(calls)
    if full:
        return [(k, side) for side in ("before", "after") for k in range(1, count + 1)]
    names = [line.split()[1] for line in calls]
    if kind_name in PHASES:
        points = []
        for name, nth, side in PHASES[kind_name]:
            found = [k for k, what in enumerate(names, 1) if what == name]
            if len(found) >= abs(nth):
                points.append((found[nth - 1 if nth > 0 else nth], side))
        assert len(points) >= len(PHASES[kind_name]) - 1, "the calls are not what PHASES expects"
        return points
    points = []
    folders = 0
    every = SPARSE.get(kind_name, 1)
    for k, name in enumerate(names, 1):
        if name in ("mkdir", "makedirs") or (name == "fsync" and names[k - 2] == "mkdir"):
            folders += 1
            if folders % 3 != 1:
                continue
        if (k - 1) % every:
            continue
        points.append((k, "before" if k % 2 else "after"))
        if name in ("write", "sendfile") and k % 2:
            points.append((k, "after"))
    return points


@pytest.fixture(scope="module")
def world(pki, tmp_path_factory):
    return World(pki, str(tmp_path_factory.mktemp("crash-seeds")))


NEEDS = {"jks": needs_keytool, "pkcs12-keys": needs_keytool, "pkcs12-trust": needs_keytool,
         "pem_dir": pytest.mark.skipif(OPENSSL is None, reason="openssl verifies the pem_dir"),
         "nss": needs_certutil}
PARAMS = [pytest.param(name, marks=[NEEDS[name]] if name in NEEDS else []) for name in KINDS]
FIGURES = {}


@pytest.fixture
def base(tmp_path):
    """Where the cases go: a tmpfs (/dev/shm) when there is one (fsync costs nothing there,
    and a SIGKILL leaves the same as on a disk: the page cache is what the next run reads)."""
    shm = "/dev/shm"
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK)):
        yield str(tmp_path)
        return
    folder = tempfile.mkdtemp(prefix="sne-crash-", dir=shm)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def crash_run(name, world, base, full):
    kind = KINDS[name](name, world)
    harness = Harness(kind, base)
    ref = harness.reference()
    points = kill_points(name, ref["calls"], full)
    verdicts = {}
    reruns = 0
    failures = []
    for kill_at, side in points:
        try:
            verdict, rerun = harness.kill_case(ref, kill_at, side)
        except AssertionError as exc:
            failures.append("killed %s call %s: %s"
                            % (side, ref["calls"][kill_at - 1], str(exc).split("\n", maxsplit=1)[0]))
            continue
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        reruns += rerun
    assert not failures, "%s: %d of %d kills failed:\n%s" \
        % (name, len(failures), len(points), "\n".join(failures[:40]))
    FIGURES[name] = {"calls": len(ref["calls"]), "kills": len(points), "reruns": reruns,
                     "verdicts": verdicts}
    artefacts = os.environ.get("SNE_ARTEFACTS")
    if artefacts:  # the figures of the last run, for docs/reliability.md
        os.makedirs(artefacts, exist_ok=True)
        with open(os.path.join(artefacts, "crash-kills.jsonl"), "a") as handle:
            handle.write(json.dumps(dict(FIGURES[name], kind=name, every_call=full)) + "\n")
    print("\ncrash %s: %d write-side calls, %d kills, %d distinct outcomes rerun, %s"
          % (name, len(ref["calls"]), len(points), reruns, verdicts))
    return ref, verdicts


@pytest.mark.parametrize("name", PARAMS)
def test_killed_at_sampled_calls(name, world, base):
    crash_run(name, world, base, full=False)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", PARAMS)
def test_killed_at_every_call(name, world, base):
    crash_run(name, world, base, full=True)


@pytest.mark.parametrize("name", ["debian", "redhat"])
def test_a_refresh_killed_before_it_ran_is_run_by_the_rerun(name, world, base):
    """Killed when the folder is already the new one and the refresh has not run: the rerun,
    which has no certificate to change, runs the refresh (the mark left pending says so),
    reports it as a change, leaves no mark; the run after it changes nothing."""
    kind = KINDS[name](name, world)
    harness = Harness(kind, base)
    ref = harness.reference()
    refresh = [k for k, line in enumerate(ref["calls"], 1) if line.split()[1] == "run_command"]
    assert len(refresh) == 1
    case = harness.new_case("refresh")
    rc, _result = harness.run(case, RUN_ID, kill_at=refresh[0], side="before")
    assert rc == -signal.SIGKILL and kind.judge(case["host"], ref["old"], ref["new"]) == "new"
    assert not os.path.exists(case["refresh_marker"]) and kind.refresh_pending(case)
    rc, again = harness.run(case, "crash-rerun")
    assert rc == 0 and not again["failed"] and again["changed"], again
    store = again["stores"][0]
    assert store["added"] == [] and store["removed"] == [], store
    assert store["refresh_pending"].startswith("refresh pending from an interrupted run (run %s, pid "
                                               % RUN_ID), store
    assert store["refresh_pending"].endswith(" run") and case["refresh_script"] in store["refresh_pending"]
    kind.check_refreshed(case)
    rc, third = harness.run(case, "crash-third")
    assert rc == 0 and not third["changed"] and not third["failed"], third
