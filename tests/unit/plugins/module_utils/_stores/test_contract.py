# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The store contract, one suite for every backend.

pem, der, pem_dir, the OS trust anchors (Debian and Red Hat layouts), jks, pkcs12 with
the cryptography backend and with the keytool backend, and nss, each through the engine the module
uses: ``names`` honoured; wrong password, corrupt file, unknown format, missing file and a
store changed since it was read give the same error code everywhere; check mode writes
nothing; what the plan does not name is byte-identical afterwards; a second plan is empty;
a store that fails is left byte-identical. What a store holds is read back independently
(cryptography for files, ``keytool -list`` for Java keystores, ``certutil -L`` for NSS).
"""

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
from javatools import PASSWORD, keytool, needs_keytool
from nsstools import NSS_PASSWORD, certutil, contents, keys, make_db, needs_certutil
from nsstools import add as nss_add

from ansible_collections.sne.guichet.plugins.module_utils._common import io as _io
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    UNKNOWN_FORMAT,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks_format
from ansible_collections.sne.guichet.plugins.module_utils._stores import pkcs12 as _pkcs12_store
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import BACKENDS, converge
from ansible_collections.sne.guichet.plugins.module_utils._x509 import subject_hash

LEAF, AUTHORITY = "sne-chiffrement-v5", "sne-ac-v5"
RETIRED = ("chiffrement-v4", "ac-v4")
PASSWORD_INCORRECT = "store password incorrect or store damaged (integrity check failed)"


def run_command(argv, data=None, environ_update=None):
    env = dict(os.environ, **(environ_update or {}))
    done = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


def sha(der):
    return CertEntry("", der).sha256


def pem_shas(data):
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return set()
    return set(sha(c.public_bytes(serialization.Encoding.DER))
               for c in x509.load_pem_x509_certificates(data))


def tree(root, skip=()):
    """Everything below ``root`` (links not followed): kind, content digest or target, mode."""
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            if any(rel == s or rel.startswith(s + os.sep) for s in skip):
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode)
            else:
                with open(full, "rb") as handle:
                    out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest(), st.st_mode)
    return out


def keytool_entries(path, storetype):
    """alias -> (entry type, [sha256 of each certificate]) as ``keytool -list -rfc`` shows."""
    out = keytool("-list", "-rfc", "-storetype", storetype, "-keystore", path,
                  "-storepass", PASSWORD).stdout
    entries = {}
    for chunk in out.split("Alias name: ")[1:]:
        alias = chunk.split("\n", 1)[0].strip()
        kind = chunk.split("Entry type: ", 1)[1].split("\n", 1)[0].strip()
        entries[alias] = (kind, sorted(pem_shas(chunk.encode("utf-8"))))
    return entries


# ----------------------------------------------------------------------------- the backends


class Backend:
    """How one backend's store is made, read back independently, damaged and changed."""

    type = ""
    password = None
    folder = False  # a folder store (else one file)
    takes = "all"  # all | authorities | one: what it installs from present without names
    java = None  # keytool -storetype of a Java keystore
    crypto = True  # cryptography available to the pkcs12 backend

    def __init__(self, name, world):
        self.name = name
        self.world = world

    def path(self, host):
        return str(host / ("store" if self.folder else "store." + self.name))

    def spec(self, path, **kw):
        extra = {"refresh": shutil.which("true")} if self.type in ("debian", "redhat") else {}
        extra.update(kw)
        return StoreSpec(path, self.type, password=self.password, **extra)

    def make(self, path):
        raise NotImplementedError

    def held(self, path):
        raise NotImplementedError

    def untouched(self, path, planned):
        """What must be byte-identical after a plan touching only ``planned`` fingerprints."""
        raise NotImplementedError

    def corrupt(self, path):
        raise NotImplementedError

    def foreign(self, path):
        """Replace the store with something of another format."""
        with open(path, "wb") as handle:
            handle.write(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                         if self.java else b"\x00\x01\x02binary\xff\xfe garbage")

    def touch(self, path):
        """A change by someone else between load and apply."""
        with open(path, "ab") as handle:
            handle.write(b"\n# edited meanwhile\n")


class PemBackend(Backend):
    type = "pem"

    def make(self, path):
        w = self.world
        with open(path, "wb") as handle:
            handle.write(b"# guichet bundle\n" + w.pem["root"] + w.pem["chiffrement-v4"]
                         + b"subject=unrelated text\n" + w.pem["ac-v4"])

    def held(self, path):
        with open(path, "rb") as handle:
            return pem_shas(handle.read())

    def untouched(self, path, planned):
        with open(path, "rb") as handle:
            data = handle.read()
        for ident, text in self.world.pem.items():
            if self.world.sha[ident] in planned:
                data = data.replace(text, b"")
        return data

    def corrupt(self, path):
        with open(path, "wb") as handle:
            handle.write(self.world.pem["root"]
                         + b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n")


class DerBackend(Backend):
    type = "der"
    takes = "one"

    def make(self, path):
        with open(path, "wb") as handle:
            handle.write(self.world.der["chiffrement-v4"])

    def held(self, path):
        with open(path, "rb") as handle:
            return {sha(handle.read())}

    def untouched(self, path, planned):
        return None  # one certificate: nothing else in the file

    def corrupt(self, path):
        with open(path, "wb") as handle:
            handle.write(b"\x30\x82\x01\x00\x02")

    def touch(self, path):
        with open(path, "wb") as handle:
            handle.write(self.world.pem["chiffrement-v4"])


class FolderBackend(Backend):
    folder = True
    layout = {"root.pem": "root", "ac-v4.pem": "ac-v4", "chiffrement-v4.pem": "chiffrement-v4"}

    def holds(self, rel):
        return rel.endswith((".pem", ".crt", ".cer"))

    def make(self, path):
        os.makedirs(os.path.join(path, "sub"))
        for rel, ident in self.layout.items():
            os.makedirs(os.path.dirname(os.path.join(path, rel)), exist_ok=True)
            with open(os.path.join(path, rel), "wb") as handle:
                handle.write(self.world.pem[ident])
        with open(os.path.join(path, "notes.txt"), "w") as handle:
            handle.write("not a certificate\n")
        with open(os.path.join(path, "sub", "keep.txt"), "w") as handle:
            handle.write("unrelated\n")

    def _holders(self, path):
        for rel, entry in tree(path).items():
            if entry[0] == "file" and self.holds(rel) and not os.path.basename(rel).startswith("."):
                with open(os.path.join(path, rel), "rb") as handle:
                    yield rel, pem_shas(handle.read())

    def held(self, path):
        found = set()
        for _rel, shas in self._holders(path):
            found |= shas
        return found

    def untouched(self, path, planned):
        everything = tree(path)
        gone = set(rel for rel, shas in self._holders(path) if shas & planned)
        kept = {}
        for rel, entry in everything.items():
            if rel in gone:
                continue
            if entry[0] == "link":
                target = os.path.normpath(os.path.join(os.path.dirname(rel), entry[1]))
                if target in gone or target not in everything:
                    continue
            kept[rel] = entry
        return kept

    def corrupt(self, path):
        with open(os.path.join(path, "broken.crt"), "wb") as handle:
            handle.write(b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n")

    def foreign(self, path):
        shutil.rmtree(path)
        with open(path, "wb") as handle:
            handle.write(self.world.pem["root"])  # a file where a folder is expected

    def touch(self, path):
        with open(os.path.join(path, "late.txt"), "w") as handle:
            handle.write("written meanwhile\n")


class PemDirBackend(FolderBackend):
    type = "pem_dir"

    def make(self, path):
        super().make(path)
        for rel, ident in self.layout.items():
            os.symlink(rel, os.path.join(path, "%s.0" % subject_hash(self.world.der[ident])))


class DebianBackend(FolderBackend):
    type = "debian"
    takes = "authorities"
    layout = {"root.crt": "root", "sub/ac-v4.crt": "ac-v4", "chiffrement-v4.crt": "chiffrement-v4",
              "ignored.pem": "ac-v4"}  # update-ca-certificates reads *.crt only

    def holds(self, rel):
        return rel.endswith(".crt")


class RedhatBackend(FolderBackend):
    type = "redhat"
    takes = "authorities"

    def holds(self, rel):
        return True  # p11-kit reads every file


class JavaBackend(Backend):
    password = PASSWORD
    keys = True  # a private key entry next to the trusted certificates

    def make(self, path):
        shutil.copy(self.world.seed(self.java, self.keys), path)

    def held(self, path):
        return set(s for kind, shas in keytool_entries(path, self.java).values()
                   if kind == "trustedCertEntry" for s in shas)

    def corrupt(self, path):
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:
            handle.write(data[:len(data) // 2])

    def touch(self, path):
        keytool("-importcert", "-noprompt", "-alias", "late", "-file", self.world.files["ac-v6"],
                "-storetype", self.java, "-keystore", path, "-storepass", PASSWORD)


class JksBackend(JavaBackend):
    type = "jks"
    java = "JKS"

    def untouched(self, path, planned):
        with open(path, "rb") as handle:
            store = _jks_format.parse(handle.read(), PASSWORD)
        return {e.alias: e.raw for e in store.entries
                if not (e.tag == _jks_format.TAG_TRUSTED_CERT and e.sha256 in planned)}


class Pkcs12Backend(JavaBackend):
    type = "pkcs12"
    java = "PKCS12"

    def untouched(self, path, planned):
        with open(path, "rb") as handle:
            store = pkcs12.load_pkcs12(handle.read(), PASSWORD.encode())
        kept = {}
        for cert in store.additional_certs:
            der = cert.certificate.public_bytes(serialization.Encoding.DER)
            if sha(der) not in planned:
                kept[cert.friendly_name] = der
        if store.key is not None:
            kept["key"] = (store.cert.friendly_name,
                           store.cert.certificate.public_bytes(serialization.Encoding.DER),
                           store.key.private_bytes(serialization.Encoding.DER,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        return kept


class Pkcs12CryptographyBackend(Pkcs12Backend):
    keys = False  # a pure truststore: what the cryptography backend rewrites


class Pkcs12KeytoolBackend(Pkcs12Backend):
    crypto = False


class NssBackend(Backend):
    """An NSS sql: database with a password: a key pair, the root, V4 under an odd nickname."""

    type = "nss"
    password = NSS_PASSWORD
    folder = True

    def make(self, path):
        make_db(path, NSS_PASSWORD)
        layout = (("root", "C,,", "root"), ("old ministry cert (2014)", "P,,", "chiffrement-v4"),
                  ("AC SNE V4", "C,,", "ac-v4"))
        for nick, trust, ident in layout:
            nss_add(path, nick, trust, self.world.files[ident], NSS_PASSWORD)

    def held(self, path):
        return set(s for _trust, shas in contents(path).values() for s in shas)

    def untouched(self, path, planned):
        kept = dict((nick, entry) for nick, entry in contents(path).items()
                    if not set(entry[1]) & planned)
        kept["(keys)"] = keys(path, NSS_PASSWORD)
        return kept

    def corrupt(self, path):
        with open(os.path.join(path, "cert9.db"), "rb") as handle:
            data = handle.read()
        with open(os.path.join(path, "cert9.db"), "wb") as handle:
            handle.write(data[:len(data) // 3])

    def foreign(self, path):
        shutil.rmtree(path)
        with open(path, "wb") as handle:
            handle.write(self.world.pem["root"])  # a file where the database folder is expected

    def touch(self, path):
        certutil(path, "-A", "-n", "late", "-t", "C,,", "-i", self.world.files["ac-v6"],
                 password=NSS_PASSWORD)


KINDS = {
    "pem": PemBackend, "der": DerBackend, "pem_dir": PemDirBackend, "debian": DebianBackend,
    "redhat": RedhatBackend, "jks": JksBackend, "pkcs12-cryptography": Pkcs12CryptographyBackend,
    "pkcs12-keytool": Pkcs12KeytoolBackend, "nss": NssBackend,
}
JAVA = ("jks", "pkcs12-cryptography", "pkcs12-keytool")
TOOL = dict([(name, needs_keytool) for name in JAVA] + [("nss", needs_certutil)])
ALL = [pytest.param(name, marks=TOOL[name]) if name in TOOL else name for name in KINDS]
ONLY_JAVA = [pytest.param(name, marks=needs_keytool) for name in JAVA]
ONE_FILE = [p for p in ALL if not KINDS[getattr(p, "values", [p])[0]].folder]


class World:
    """Certificates of the test PKI as the stores need them, and keytool-made seeds."""

    def __init__(self, pki, folder):
        self.folder = folder
        self.der, self.pem, self.sha, self.files = {}, {}, {}, {}
        for ident in ("root", "ac-v4", "ac-v5", "ac-v6", "chiffrement-v4", "chiffrement-v5"):
            base = os.path.join(pki["dir"], ident)
            with open(base + ".der", "rb") as handle:
                self.der[ident] = handle.read()
            with open(base + ".pem", "rb") as handle:
                self.pem[ident] = handle.read()
            self.sha[ident] = sha(self.der[ident])
            self.files[ident] = base + ".der"
        self.present = [CertEntry(LEAF, self.der["chiffrement-v5"]),
                        CertEntry(AUTHORITY, self.der["ac-v5"])]
        self.absent = set(self.sha[i] for i in RETIRED)
        self._seeds = {}

    def seed(self, storetype, keys):
        """A keystore: trusted root and the two retired certificates (+ a private key)."""
        name = "%s-%s" % (storetype, "keys" if keys else "trust")
        if name not in self._seeds:
            path = os.path.join(self.folder, name)
            common = ["-storetype", storetype, "-keystore", path, "-storepass", PASSWORD]
            if keys:
                keytool("-genkeypair", "-alias", "server", "-keyalg", "EC", "-dname", "CN=server",
                        "-keypass", PASSWORD, *common)
            for alias, ident in (("root", "root"), ("old-ministry-cert-2014", "chiffrement-v4"),
                                 ("ac-sne-v4", "ac-v4")):
                keytool("-importcert", "-noprompt", "-alias", alias, "-file", self.files[ident],
                        *common)
            self._seeds[name] = path
        return self._seeds[name]


@pytest.fixture(scope="session")
def world(pki, tmp_path_factory):
    return World(pki, str(tmp_path_factory.mktemp("contract")))


def choose(name, world, monkeypatch):
    """The backend ``name``; the pkcs12 keytool case runs as on a host without cryptography."""
    chosen = KINDS[name](name, world)
    monkeypatch.setattr(_pkcs12_store, "HAS_CRYPTOGRAPHY",
                        chosen.crypto and _pkcs12_store.HAS_CRYPTOGRAPHY)
    return chosen


@pytest.fixture(params=ALL)
def backend(request, world, monkeypatch):
    return choose(request.param, world, monkeypatch)


@pytest.fixture
def host(tmp_path):
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "unrelated.conf").write_text("listen 443\n")
    return folder


def run(world, tmp_path, specs, check_mode=False):
    """One keystores run over ``specs``: (result of the first store, changed)."""
    outcomes, changed, _failed = converge(specs, world.present, world.absent, check_mode,
                                          Backups(str(tmp_path / "backups"), "run"), run_command,
                                          shutil.which)
    return outcomes[0].result, changed


def expected_after(backend, before, names=None):
    """What the store must hold after a converge: the retired gone, the wanted added."""
    world = backend.world
    if names is not None:
        wanted = set(e.sha256 for e in world.present if e.name in names)
    elif backend.takes == "authorities":
        wanted = {world.sha["ac-v5"]}
    elif backend.takes == "one":
        wanted = {world.sha["chiffrement-v5"]}
    else:
        wanted = set(e.sha256 for e in world.present)
    return (before - world.absent) | wanted


def planned(world):
    return world.absent | set(e.sha256 for e in world.present)


def make_store(backend, host):
    path = backend.path(host)
    backend.make(path)
    return path


# ----------------------------------------------------------------------------- the contract


def test_converges_and_keeps_what_the_plan_does_not_name(backend, host, tmp_path):
    path = make_store(backend, host)
    before = backend.held(path)
    kept = backend.untouched(path, planned(backend.world))
    assert kept or backend.type == "der"  # der: one certificate, nothing else in the file
    if backend.java and backend.keys:
        assert "server" in kept or "key" in kept  # the private key entry is compared too
    siblings = tree(str(host), skip=(os.path.basename(path),))
    result, changed = run(backend.world, tmp_path, [backend.spec(path)])
    assert changed and not result["failed"], result.get("msg")
    assert backend.held(path) == expected_after(backend, before)
    assert backend.untouched(path, planned(backend.world)) == kept
    assert tree(str(host), skip=(os.path.basename(path),)) == siblings
    if backend.type == "pkcs12":
        assert result["backend"] == ("cryptography" if backend.crypto and not backend.keys
                                     else "keytool")
    after = tree(str(host))
    again, changed = run(backend.world, tmp_path, [backend.spec(path)])
    assert not changed and again["added"] == [] and again["removed"] == []
    assert tree(str(host)) == after


@pytest.mark.parametrize("name", [LEAF, AUTHORITY])
def test_names_honoured(backend, host, tmp_path, name):
    path = make_store(backend, host)
    before = backend.held(path)
    result, changed = run(backend.world, tmp_path, [backend.spec(path, names=[name])])
    assert changed and not result["failed"], result.get("msg")
    assert [a["name"] for a in result["added"]] == [name]
    assert backend.held(path) == expected_after(backend, before, names=[name])
    again, changed = run(backend.world, tmp_path, [backend.spec(path, names=[name])])
    assert not changed and again["added"] == []


def test_check_mode_writes_nothing(backend, host, tmp_path):
    path = make_store(backend, host)
    everything = tree(str(tmp_path))
    result, changed = run(backend.world, tmp_path, [backend.spec(path)], check_mode=True)
    assert changed and not result["failed"] and result["added"]
    assert tree(str(tmp_path)) == everything


def _fails_alike(backend, host, tmp_path, code, spec=None):
    """A run on the damaged store fails with ``code`` and leaves everything as it was."""
    everything = tree(str(host))
    result, changed = run(backend.world, tmp_path, [spec or backend.spec(backend.path(host))])
    assert result["failed"] and not changed
    assert result["code"] == code, result["msg"]
    assert tree(str(host)) == everything
    return result


@pytest.mark.parametrize("damage, code", [("corrupt", CORRUPT), ("foreign", UNKNOWN_FORMAT)])
def test_damaged_store_same_code_everywhere(backend, host, tmp_path, damage, code):
    path = make_store(backend, host)
    getattr(backend, damage)(path)
    _fails_alike(backend, host, tmp_path, code)


@pytest.mark.parametrize("backend", ONE_FILE, indirect=True)
def test_folder_where_a_file_is_expected_is_unknown_format(backend, host, tmp_path):
    os.mkdir(backend.path(host))
    _fails_alike(backend, host, tmp_path, UNKNOWN_FORMAT)


@pytest.mark.parametrize("name", ONLY_JAVA)
def test_wrong_password_same_code_and_message(world, host, tmp_path, monkeypatch, name):
    chosen = choose(name, world, monkeypatch)
    path = make_store(chosen, host)
    spec = StoreSpec(path, chosen.type, password="not-the-password")
    result = _fails_alike(chosen, host, tmp_path, WRONG_PASSWORD, spec)
    assert result["msg"].endswith(PASSWORD_INCORRECT)


def test_missing_store(backend, host, tmp_path):
    path = backend.path(host)
    _fails_alike(backend, host, tmp_path, NOT_FOUND)
    nowhere = str(host / "no-such-folder" / os.path.basename(path))
    _fails_alike(backend, host, tmp_path, NOT_FOUND, backend.spec(nowhere, create=True))
    result, changed = run(backend.world, tmp_path, [backend.spec(path, create=True)])
    assert changed and not result["failed"], result.get("msg")
    assert backend.held(path) == expected_after(backend, set())
    again, changed = run(backend.world, tmp_path, [backend.spec(path, create=True)])
    assert not changed and again["added"] == []


def _plan_then(backend, host, change, create=False):
    """Load and plan, let ``change`` happen, then apply: the StoreError and the tree after."""
    path = backend.path(host)
    store = BACKENDS[backend.type](backend.spec(path, create=create), run_command, shutil.which)
    plan = store.plan(store.load(), backend.world.present, backend.world.absent)
    assert plan.changed
    change(path)
    everything = tree(str(host))
    with pytest.raises(StoreError) as err:
        store.apply(plan, Backups(None, None))
    assert tree(str(host)) == everything
    return err.value


def test_changed_since_read_is_io_error_everywhere(backend, host, tmp_path):
    make_store(backend, host)
    err = _plan_then(backend, host, backend.touch)
    assert err.code == IO_ERROR and backend.path(host) in err.reason, err.reason


def test_appeared_since_read_is_io_error_everywhere(backend, host, tmp_path):
    err = _plan_then(backend, host, backend.make, create=True)
    assert err.code == IO_ERROR and backend.path(host) in err.reason, err.reason


def test_failed_write_leaves_the_store_as_it_was(backend, host, tmp_path, monkeypatch):
    make_store(backend, host)

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    def change(path):
        monkeypatch.setattr(_io.os, "rename", refuse)

    err = _plan_then(backend, host, change)
    assert err.code == IO_ERROR and "read-only file system" in err.reason
    assert [n for n in os.listdir(str(host)) if n.endswith(".sne-tmp")] == []


# ----------------------------------------------------------------------------- regression


@pytest.mark.parametrize("name", ONLY_JAVA)
def test_names_on_java_stores_add_only_the_named_certificate(world, host, tmp_path,
                                                             monkeypatch, name):
    """``names: [sne-chiffrement-v5]`` on a JKS or PKCS#12 store once added the authority too."""
    chosen = choose(name, world, monkeypatch)
    path = make_store(chosen, host)
    before = keytool_entries(path, chosen.java)
    result, changed = run(world, tmp_path, [chosen.spec(path, names=[LEAF])])
    assert changed and not result["failed"], result.get("msg")
    after = keytool_entries(path, chosen.java)
    gone = set(a for a, (_kind, shas) in before.items() if set(shas) & world.absent)
    assert set(after) == (set(before) - gone) | {LEAF}
    assert after[LEAF] == ("trustedCertEntry", [world.sha["chiffrement-v5"]])
    listed = set(s for _kind, shas in after.values() for s in shas)
    assert world.sha["ac-v5"] not in listed
