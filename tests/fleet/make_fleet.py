"""Simulated fleet of guichet servers for the rotation tests, the demo and editors' CI.

Usage::

    python tests/fleet/make_fleet.py OUTDIR --hosts N --pki PKIDIR \
        [--ssh-hosts K --ssh-port PORT --ssh-key KEYFILE] [--python PATH] [--unconfigured N]

``PKIDIR`` is the output of ``tests/pki/make_pki.py``. Written into ``OUTDIR``:

- ``roots/<host>/`` one folder per host standing for its ``/``: a JKS with a private key entry,
  a PKCS#12 truststore (every other host), a PEM bundle, the single DER certificate, a hashed PEM
  folder, Debian trust anchors with a harmless ``usr/sbin/update-ca-certificates``, the
  guichet's ``guichet.properties``, ``var/log`` and ``var/backups``;
- ``inventory/hosts.yml`` (group ``guichets``; local connection, or SSH to 127.0.0.1 for the
  first K hosts), ``inventory/host_vars/<host>.yml`` (the variables the roles read) and
  ``inventory/group_vars/all/sne_rotation.yml`` (the rotation's values, V4 -> V5);
- ``templates/`` the Java stores made once with ``keytool`` and copied to every host;
- ``fleet.json`` what each host is and what ``check_fleet.py`` must find after a rotation.

The kind of each host depends only on its index (see ``kind_of``): most hold V4, every fifth
already holds V5 (a rotation must change nothing there), one hides V4 under an odd JKS alias,
one has forgotten V4 copies outside the declared stores, one has a wrong JKS password in the
inventory (the store is fine: the host must be reported and left byte-identical). Healthy hosts
of index 5, 15, 25... also have an outbound folder (``var/spool/guichet/out``) holding messages
made by ``openssl cms -encrypt``: to V4 (DER, and S/MIME by subject key identifier), to V5, and
a plain file; their host_vars turn ``retire_outbox_quarantine`` on.

``--unconfigured N`` (default 0) makes the LAST N hosts ``unconfigured``: laid out on disk
exactly like a ``v4`` host, but their host_vars declare no ``sne_guichet_stores`` and no
``sne_guichet_config_files`` (the guichet nobody described yet; a rotation must leave it
byte-identical, an audit must find its stores); their search paths also cover ``usr/local``,
so that an audit finds the Debian trust anchors. fleet.json records their real stores (with
the real passwords), what an audit proposal should find.

Host variables do not name a generation: the DER store is
``.../Chiffrement_SNE{{ sne_generation }}.cer`` and the configuration rewrites match any
generation, so the next rotation (V5 -> V6) needs new rotation values only. fleet.json keeps
the real paths of the V5 rotation; ``check_fleet.py --generation`` derives the others.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import yaml

JKS_PASSWORD = "changeit"
P12_PASSWORD = "trustpass"
BROKEN_PASSWORD = "not-the-password"
ODD_ALIAS = "old-ministry-cert-2014"
KEY_ALIAS = "guichet"
GENERATION = "V5"
VALID_AT = "2026-06-01T00:00:00Z"
KINDS = ("v4", "v5", "odd_alias", "stray", "broken", "unconfigured")
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"

# Certificates of the PKI (make_pki.py identifiers) used by the fleet; ac-v6 plays a partner
# authority that every rotation must leave in place.
CERTS = ("chiffrement-v4", "ac-v4", "chiffrement-v5", "ac-v5", "ac-v6")
JAVA_ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
JOPTS = ["-J-Duser.language=en", "-J-Dfile.encoding=UTF-8",
         "-J-XX:TieredStopAtLevel=1", "-J-XX:CICompilerCount=1", "-J-XX:+UseSerialGC"]  # short-lived JVMs

# Paths inside a host root.
CONF = "opt/guichet/conf"
APP_JKS = CONF + "/app.jks"
TRUST_P12 = CONF + "/trust.p12"
SNE_PEM = CONF + "/sne.pem"
# The DER certificate the guichet software reads, named after its generation, as the
# ministry ships it; the properties file points at it. The declared store is the file of the
# generation being deployed (created by the rotation: Chiffrement_SNEV5.cer in fleet.json,
# templated in host_vars); a V4 host's Chiffrement_SNEV4.cer is a stray to quarantine.
SNE_DER = CONF + "/Chiffrement_SNE%s.cer"
SNE_DER_TEMPLATE = SNE_DER % "{{ sne_generation }}"
# Configuration rewrites (regexp, templated replacement) that match any generation: a replace
# giving the same text is no change, so a second run stays changed=0.
CONFIG_REWRITES = (
    (r"Chiffrement_SNEV[0-9]+\.cer", "Chiffrement_SNE{{ sne_generation }}.cer"),
    (r"sne-chiffrement-v[0-9]+", "sne-chiffrement-{{ sne_generation | lower }}"),
)
PROPERTIES = CONF + "/guichet.properties"
# An NSS database (sql: format) on one healthy host, outside the search paths (sqlite may keep
# a deleted row's bytes in a free page): a key pair, the encryption certificate under an odd
# nickname (trust P,,), its authority and the partner's (trust C,,).
NSS_DB = "etc/pki/nssdb"
NSS_PASSWORD = "nsspass"
NSS_KEY = "guichet-tls"
NSS_ODD_NICK = "Ministere - chiffrement (ancien)"
PEM_DIR = "etc/guichet/certs"
ANCHORS = "usr/local/share/ca-certificates"
REFRESH = "usr/sbin/update-ca-certificates"
REFRESH_LOG = "var/log/update-ca-certificates.log"
RELOAD_LOG = "var/log/guichet-reload.log"
BACKUP_DIR = "var/backups/sne-guichet"
QUARANTINE_DIR = "var/lib/sne-guichet/quarantine"
STRAYS = ("opt/guichet/app/lib/Chiffrement_SNEV4.cer", "home/guichet/sne-v4-backup.pem")
SEARCH_PATHS = ("opt", "home", "etc/guichet")
# An unconfigured host's search paths also cover usr/local (its Debian trust anchors).
UNCONFIGURED_SEARCH_PATHS = SEARCH_PATHS + ("usr/local",)
# The guichet software's outbound folder (outside the search paths: the certificate scan never
# reads it, only retire's outbox step does), and the messages it still holds when the fleet is
# made: (file name, recipient generation or None for a plain file, openssl cms options).
OUTBOX = "var/spool/guichet/out"
OUTBOX_MESSAGES = (
    ("0001-demande.p7m", "v4", ("-outform", "DER")),
    ("0002-demande.eml", "v4", ("-outform", "SMIME", "-keyid")),
    ("0003-demande.p7m", "v5", ("-outform", "DER")),
    ("LISEZMOI.txt", None, ()),
)
OUTBOX_MTIME = 1452103331  # 2016-01-06T18:02:11Z: queued before the cutover
OUTBOX_PLAINTEXT = b"<demande numero='0001'>registration request</demande>\n"


def host_name(index: int) -> str:
    """Name of the host of 0-based ``index``: guichet-001, guichet-002, ..."""
    return "guichet-%03d" % (index + 1)


def kind_of(index: int) -> str:
    """Kind of the host of 0-based ``index`` (deterministic, whatever the fleet size).

    0 v4, 1 stray, 2 odd_alias, 3 broken, then every fifth host (4, 9, 14...) v5, the rest v4;
    with the first hosts as SSH hosts, SSH carries a plain, a stray and an odd-alias host.
    """
    special = {1: "stray", 2: "odd_alias", 3: "broken"}
    if index in special:
        return special[index]
    return "v5" if index % 5 == 4 else "v4"


def fleet_kind(index: int, hosts: int, unconfigured: int = 0) -> str:
    """Kind of the host of 0-based ``index`` in a fleet of ``hosts`` whose last ``unconfigured``
    hosts are ``unconfigured``; otherwise ``kind_of(index)``."""
    if index >= hosts - unconfigured:
        return "unconfigured"
    return kind_of(index)


def has_p12(index: int) -> bool:
    """Every other host (0, 2, 4...) has a PKCS#12 truststore besides its JKS."""
    return index % 2 == 0


def has_outbox(index: int, kind: str) -> bool:
    """Healthy hosts of index 5, 15, 25... (never an SSH host of the first three) have an outbox."""
    return index % 10 == 5 and kind in ("v4", "stray", "odd_alias")


def has_nss(index: int, kind: str) -> bool:
    """Healthy v4 hosts of index 6, 16, 26... (never an SSH host) have an NSS database."""
    return index % 10 == 6 and kind == "v4"


def certutil(folder: str, *args: str) -> str:
    """certutil on ``sql:folder`` with the fleet's NSS password (from a file); its output."""
    pwfile = folder + ".pw"
    _write(pwfile, (NSS_PASSWORD + "\n").encode(), 0o600)
    try:
        proc = subprocess.run(["certutil", "-d", "sql:" + folder, "-f", pwfile] + list(args),
                              capture_output=True, text=True, check=False,
                              env=dict(os.environ, LC_ALL="C", NSS_SDB_USE_CACHE="no"))
    finally:
        os.unlink(pwfile)
    if proc.returncode != 0:
        raise SystemExit("make_fleet: certutil %s failed: %s%s" % (args, proc.stdout, proc.stderr))
    return proc.stdout


def _make_nss(folder: str, gen: str, pki: Dict[str, Dict[str, Any]], tdir: str) -> None:
    """The NSS database of a host on ``gen``: a key pair, the certificate, the authorities."""
    os.makedirs(folder)
    certutil(folder, "-N")
    noise = folder + ".noise"
    _write(noise, hashlib.sha256(folder.encode()).digest() * 4)
    try:
        certutil(folder, "-S", "-x", "-n", NSS_KEY, "-s", "CN=guichet", "-t", "u,u,u", "-z", noise,
                 "-k", "ec", "-q", "nistp256")
    finally:
        os.unlink(noise)
    entries = ((NSS_ODD_NICK, "P,,", "chiffrement-%s" % gen), ("AC SNE", "C,,", "ac-%s" % gen),
               ("partenaire", "C,,", "ac-v6"))
    for nick, trust, ident in entries:
        der = os.path.join(tdir, "nss-%s.der" % ident)
        if not os.path.exists(der):
            _write(der, pki[ident]["der"])
        certutil(folder, "-A", "-n", nick, "-t", trust, "-i", der)


def nss_keys(listing: str) -> List[str]:
    """The private keys of ``certutil -K`` output, one ``type id nickname`` line each."""
    return sorted(" ".join(line.split(">", 1)[1].split()) for line in listing.splitlines()
                  if line.startswith("<"))


def generation_of(kind: str) -> str:
    """Generation a host of ``kind`` holds when the fleet is made (unconfigured: like v4)."""
    return "v5" if kind == "v5" else "v4"


# --------------------------------------------------------------------------- PKI material


def load_pki(pki_dir: str) -> Dict[str, Dict[str, Any]]:
    """The fleet's certificates from the PKI manifest: pem (bytes), der, sha256 (colon hex)."""
    with open(os.path.join(pki_dir, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    out: Dict[str, Dict[str, Any]] = {}
    for ident in CERTS:
        entry = manifest["certificates"][ident]
        with open(os.path.join(pki_dir, entry["der"]), "rb") as fh:
            der = fh.read()
        out[ident] = {
            "der": der,
            "pem": pem_of(der),
            "sha256": entry["sha256"],
            "pem_path": os.path.join(pki_dir, entry["path"]),
            "subject": entry["subject"],
        }
    bundle = os.path.join(pki_dir, manifest["bundles"]["good-v5"]["file"])
    out["_bundle"] = {"path": bundle}
    # The CRLs that prove V5 not revoked and V4 revoked (by path on the controller, DER and PEM).
    out["_crls"] = {"paths": [os.path.join(pki_dir, manifest["crls"]["ac-v5"]["der"]),
                              os.path.join(pki_dir, manifest["crls"]["ac-v4"]["pem"])]}
    return out


def pem_of(der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def colon_sha256(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


# --------------------------------------------------------------------------- templates


def keytool(*args: str) -> None:
    tool = shutil.which("keytool")
    if tool is None:
        raise SystemExit("make_fleet: keytool is needed (openjdk-17-jre-headless)")
    proc = subprocess.run([tool] + JOPTS + list(args), capture_output=True, text=True,
                          env=JAVA_ENV, check=False)
    if proc.returncode != 0:
        raise RuntimeError("keytool %s failed: %s%s" % (" ".join(args), proc.stdout, proc.stderr))


def _import(store: str, storetype: str, password: str, alias: str, pem_path: str) -> None:
    keytool("-importcert", "-noprompt", "-keystore", store, "-storetype", storetype,
            "-storepass", password, "-alias", alias, "-file", pem_path)


def build_templates(tdir: str, pki: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The Java stores, made once with keytool (a JVM per call), in parallel chains.

    app-{v4,v5,odd}.jks: the private key entry ``guichet`` (the same key, genkeypair once) plus
    the ministry's certificate, its authority and the partner authority; trust-{v4,v5}.p12:
    the same three certificates, no key. Returns facts about them (private key certificate).
    """
    os.makedirs(tdir)
    base = os.path.join(tdir, "base.jks")

    def certs_for(gen: str, odd: bool = False) -> List[tuple]:
        leaf_alias = ODD_ALIAS if odd else "sne-chiffrement-%s" % gen
        return [(leaf_alias, pki["chiffrement-%s" % gen]["pem_path"]),
                ("sne-ac-%s" % gen, pki["ac-%s" % gen]["pem_path"]),
                ("partner-ca", pki["ac-v6"]["pem_path"])]

    def jks_chain(name: str, gen: str, odd: bool) -> None:
        path = os.path.join(tdir, name)
        shutil.copyfile(base, path)
        for alias, pem in certs_for(gen, odd):
            _import(path, "JKS", JKS_PASSWORD, alias, pem)

    def p12_chain(name: str, gen: str) -> None:
        path = os.path.join(tdir, name)
        for alias, pem in certs_for(gen):
            _import(path, "PKCS12", P12_PASSWORD, alias, pem)

    def key_cert() -> str:
        keytool("-exportcert", "-keystore", base, "-storetype", "JKS", "-storepass", JKS_PASSWORD,
                "-alias", KEY_ALIAS, "-file", os.path.join(tdir, "guichet-key.der"))
        with open(os.path.join(tdir, "guichet-key.der"), "rb") as fh:
            return colon_sha256(fh.read())

    with ThreadPoolExecutor(max_workers=4) as pool:
        p12s = [pool.submit(p12_chain, "trust-v4.p12", "v4"), pool.submit(p12_chain, "trust-v5.p12", "v5")]
        keytool("-genkeypair", "-keystore", base, "-storetype", "JKS", "-storepass", JKS_PASSWORD,
                "-keypass", JKS_PASSWORD, "-alias", KEY_ALIAS, "-keyalg", "RSA", "-keysize", "2048",
                "-validity", "7300", "-dname", "CN=guichet.example.test, O=Guichet (test), C=FR")
        jobs = p12s + [pool.submit(jks_chain, "app-v4.jks", "v4", False),
                       pool.submit(jks_chain, "app-v5.jks", "v5", False),
                       pool.submit(jks_chain, "app-odd.jks", "v4", True)]
        key_sha = pool.submit(key_cert)
        for job in jobs:
            job.result()
        key_sha256 = key_sha.result()

    # Hashed PEM folders (openssl rehash once per template), copied with their links.
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("make_fleet: openssl is needed")
    for gen in ("v4", "v5"):
        folder = os.path.join(tdir, "certs-%s" % gen)
        os.makedirs(folder)
        for alias, pem in certs_for(gen):
            shutil.copyfile(pem, os.path.join(folder, alias + ".pem"))
        subprocess.run([openssl, "rehash", folder], check=True, capture_output=True)
    return {"private_key_alias": KEY_ALIAS, "private_key_sha256": key_sha256}


# --------------------------------------------------------------------------- hosts


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def _properties(name: str, root: str, gen: str) -> bytes:
    return (
        "# Guichet %s - configuration (simulated fleet)\n"
        "guichet.id=%s\n"
        "sne.async.url=https://sne.example.test/async\n"
        "sne.chiffrement.certificat=%s/%s/Chiffrement_SNE%s.cer\n"
        "sne.chiffrement.alias=sne-chiffrement-%s\n"
        "sne.truststore=%s/%s\n"
        "sne.truststore.type=JKS\n"
        % (name, name, root, CONF, gen.upper(), gen, root, APP_JKS)
    ).encode()


def _tiny_jar() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("META-INF/MANIFEST.MF", date_time=(2015, 6, 1, 0, 0, 0))
        zf.writestr(info, "Manifest-Version: 1.0\nImplementation-Title: guichet-core\n")
    return buf.getvalue()


def make_host(outdir: str, index: int, pki: Dict[str, Dict[str, Any]], jar: bytes,
              kind: Optional[str] = None) -> Dict[str, Any]:
    """Lay out one host root; return its fleet.json entry (with the real store passwords).

    ``kind`` defaults to ``kind_of(index)``; an ``unconfigured`` host is laid out as a ``v4`` one.
    """
    name = host_name(index)
    kind = kind or kind_of(index)
    gen = generation_of(kind)
    root = os.path.join(outdir, "roots", name)
    tdir = os.path.join(outdir, "templates")
    leaf, ac, partner = pki["chiffrement-%s" % gen], pki["ac-%s" % gen], pki["ac-v6"]

    def p(rel: str) -> str:
        return os.path.join(root, rel)

    jks_template = {"v5": "app-v5.jks", "odd_alias": "app-odd.jks"}.get(kind, "app-v4.jks")
    os.makedirs(p(CONF))
    shutil.copyfile(os.path.join(tdir, jks_template), p(APP_JKS))
    os.chmod(p(APP_JKS), 0o640)
    stores: List[Dict[str, Any]] = [{"path": p(APP_JKS), "type": "jks", "password": JKS_PASSWORD}]
    if has_p12(index):
        shutil.copyfile(os.path.join(tdir, "trust-%s.p12" % gen), p(TRUST_P12))
        os.chmod(p(TRUST_P12), 0o640)
        stores.append({"path": p(TRUST_P12), "type": "pkcs12", "password": P12_PASSWORD})

    _write(p(SNE_PEM), b"# SNE encryption certificate, its authority, and our partner's authority\n"
           + leaf["pem"] + ac["pem"] + partner["pem"])
    stores.append({"path": p(SNE_PEM), "type": "pem"})
    _write(p(SNE_DER % gen.upper()), leaf["der"])
    stores.append({"path": p(SNE_DER % "V5"), "type": "der", "create": True})
    _write(p(PROPERTIES), _properties(name, root, gen), 0o640)

    shutil.copytree(os.path.join(tdir, "certs-%s" % gen), p(PEM_DIR), symlinks=True)
    stores.append({"path": p(PEM_DIR), "type": "pem_dir"})

    _write(p(ANCHORS + "/sne-ac-%s.crt" % gen), ac["pem"])
    _write(p(ANCHORS + "/partner-ca.crt"), partner["pem"])
    _write(p(REFRESH), (
        "#!/bin/sh\n"
        "# Simulated update-ca-certificates of the test fleet: only records that it ran.\n"
        "echo \"$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) update-ca-certificates $*\" >> '%s'\n"
        % p(REFRESH_LOG)).encode(), 0o755)
    stores.append({"path": p(ANCHORS), "type": "debian", "refresh": p(REFRESH)})

    # Things that are not certificates, for a realistic scan.
    _write(p("opt/guichet/app/lib/guichet-core.jar"), jar)
    _write(p("opt/guichet/app/bin/guichet.sh"), b"#!/bin/sh\nexec java -jar ../lib/guichet-core.jar \"$@\"\n",
           0o755)
    _write(p("opt/guichet/logs/guichet.log"), b"2016-01-06 18:00:00 INFO started\n")
    _write(p("home/guichet/.profile"), b"export GUICHET_HOME=/opt/guichet\n")
    for folder in ("var/log", "var/backups"):
        os.makedirs(p(folder), exist_ok=True)

    strays: List[str] = []
    stray_sha256: Dict[str, str] = {}
    if gen != "v5" and kind != "broken":
        strays.append(p(SNE_DER % gen.upper()))
        stray_sha256[p(SNE_DER % gen.upper())] = hashlib.sha256(leaf["der"]).hexdigest()
    if kind == "stray":
        v4 = pki["chiffrement-v4"]
        for rel, data in zip(STRAYS, (v4["der"], b"# copy made before the 2014 migration\n" + v4["pem"])):
            _write(p(rel), data)
            strays.append(p(rel))
            stray_sha256[p(rel)] = hashlib.sha256(data).hexdigest()

    outbox = _make_outbox(p(OUTBOX), pki) if has_outbox(index, kind) else {}
    nss: Dict[str, Any] = {}
    if has_nss(index, kind):
        _make_nss(p(NSS_DB), gen, pki, tdir)
        stores.append({"path": p(NSS_DB), "type": "nss", "password": NSS_PASSWORD})
        nss = {"path": p(NSS_DB), "key": NSS_KEY, "keys": nss_keys(certutil(p(NSS_DB), "-K"))}

    entry: Dict[str, Any] = {
        "kind": kind,
        "index": index,
        "ssh": False,
        "root": root,
        "stores": stores,
        "strays": strays,
        "stray_sha256": stray_sha256,
        "has_p12": has_p12(index),
        "config_files": [p(PROPERTIES)],
        "search_paths": [p(s) for s in (UNCONFIGURED_SEARCH_PATHS if kind == "unconfigured"
                                        else SEARCH_PATHS)],
        "backup_dir": p(BACKUP_DIR),
        "quarantine_dir": p(QUARANTINE_DIR),
        "refresh_log": p(REFRESH_LOG),
        "reload_log": p(RELOAD_LOG),
        "outbox": outbox,
        "nss": nss,
    }
    if kind == "broken":
        entry["inventory_password"] = {p(APP_JKS): BROKEN_PASSWORD}
    return entry


def _make_outbox(folder: str, pki: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The outbound folder's messages, each made by ``openssl cms -encrypt``; its fleet.json
    entry: ``folder`` and ``messages`` (path -> ``to`` (v4, v5 or None), ``sha256``)."""
    os.makedirs(folder)
    plain = os.path.join(folder, ".plaintext")
    _write(plain, OUTBOX_PLAINTEXT)
    messages: Dict[str, Dict[str, Any]] = {}
    try:
        for name, gen, options in OUTBOX_MESSAGES:
            if gen is None:
                data = b"Dossier d'envoi du guichet: ne pas modifier.\n"
            else:
                data = subprocess.run(
                    ["openssl", "cms", "-encrypt", "-binary", "-aes256", "-in", plain, *options,
                     "-recip", pki["chiffrement-%s" % gen]["pem_path"]],
                    check=True, capture_output=True).stdout
            path = os.path.join(folder, name)
            _write(path, data, 0o640)
            os.utime(path, (OUTBOX_MTIME, OUTBOX_MTIME))
            messages[path] = {"to": gen, "sha256": hashlib.sha256(data).hexdigest()}
    finally:
        os.remove(plain)
    return {"folder": folder, "messages": messages}


def host_vars(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The variables of host_vars/<host>.yml, exactly those the roles read.

    Nothing in them names a generation (Ansible templates host variables where they are used):
    the DER store is ``Chiffrement_SNE{{ sne_generation }}.cer`` and the configuration rewrites
    match any generation. An ``unconfigured`` host declares no stores and no configuration files.
    """
    root = entry["root"]
    stores = []
    for store in entry["stores"]:
        store = dict(store)
        store["password"] = entry.get("inventory_password", {}).get(store["path"], store.get("password"))
        if store["type"] == "der" and store["path"] == os.path.join(root, SNE_DER % GENERATION):
            store["path"] = os.path.join(root, SNE_DER_TEMPLATE)
        stores.append({k: v for k, v in store.items() if v is not None})
    out: Dict[str, Any] = {
        "sne_guichet_stores": stores,
        "sne_guichet_search_paths": list(entry["search_paths"]),
        "sne_guichet_config_files": [
            {"path": os.path.join(root, PROPERTIES), "regexp": regexp, "replace": replace}
            for regexp, replace in CONFIG_REWRITES
        ],
        "sne_guichet_backup_dir": entry["backup_dir"],
        "sne_guichet_quarantine_dir": entry["quarantine_dir"],
        "sne_guichet_reload_commands": [["sh", "-c", "echo reloaded >> %s" % entry["reload_log"]]],
        "sne_guichet_root": root,
    }
    if entry.get("outbox"):
        out["sne_guichet_outboxes"] = [entry["outbox"]["folder"]]
        out["retire_outbox_quarantine"] = True  # the run after the cutover: quarantine them
    if entry["kind"] == "unconfigured":
        del out["sne_guichet_stores"], out["sne_guichet_config_files"]
    return out


def connection_vars(index: int, ssh_hosts: int, ssh_port: Optional[int], ssh_key: Optional[str],
                    python: str) -> Dict[str, Any]:
    if index < ssh_hosts:
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": ssh_port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": ssh_key,
            "ansible_ssh_common_args": SSH_COMMON_ARGS,
            "ansible_python_interpreter": python,
        }
    return {"ansible_connection": "local", "ansible_python_interpreter": python}


def rotation_vars(pki: Dict[str, Dict[str, Any]]) -> str:
    """group_vars/all/sne_rotation.yml: the rotation's values, and only them."""
    return (
        "---\n"
        "# The rotation's values, in one place: V4 -> V5 for this fleet.\n"
        "# The next rotation (V5 -> V6) only changes these values (generation, bundle, pins,\n"
        "# retired fingerprints): no role, playbook or host variable changes.\n"
        "sne_generation: %s\n"
        "sne_bundle_src: %s\n"
        "sne_certificate_sha256: \"%s\"  # %s\n"
        "sne_authority_sha256:\n"
        "  - \"%s\"  # %s\n"
        "sne_retired_sha256:\n"
        "  - \"%s\"  # %s\n"
        "  - \"%s\"  # %s\n"
        "# Fixed instant of the validity checks, so that tests do not depend on today's date.\n"
        "sne_valid_at: \"%s\"\n"
        % (GENERATION, pki["_bundle"]["path"],
           pki["chiffrement-v5"]["sha256"], pki["chiffrement-v5"]["subject"],
           pki["ac-v5"]["sha256"], pki["ac-v5"]["subject"],
           pki["chiffrement-v4"]["sha256"], pki["chiffrement-v4"]["subject"],
           pki["ac-v4"]["sha256"], pki["ac-v4"]["subject"],
           VALID_AT)
        + "# The retired certificates (PEM), by which retire recognises the queued messages to them.\n"
        "sne_retired_certificates:\n  - |\n"
        + "".join("    %s\n" % line for line in pki["chiffrement-v4"]["pem"].decode("ascii").splitlines())
        + "  - |  # its authority: verifies the signature of the V4 CRL\n"
        + "".join("    %s\n" % line for line in pki["ac-v4"]["pem"].decode("ascii").splitlines())
        + "# Revocation proven by the authorities' CRLs: V5 not revoked, V4 revoked.\n"
        "sne_bundle_crls:\n" + "".join("  - %s\n" % path for path in pki["_crls"]["paths"])
        + "sne_retired_generation: V4\nsne_require_retired_revoked: true\n"
    )


def _dump(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("---\n")
        yaml.safe_dump(data, fh, sort_keys=False, default_flow_style=False, width=1000)


def build(outdir: str, hosts: int, pki_dir: str, ssh_hosts: int = 0, ssh_port: Optional[int] = None,
          ssh_key: Optional[str] = None, python: Optional[str] = None,
          unconfigured: int = 0) -> Dict[str, Any]:
    """Write the fleet into ``outdir``; return (and write) the content of fleet.json.

    The last ``unconfigured`` hosts are of kind ``unconfigured`` (see ``fleet_kind``).
    """
    if hosts < 1:
        raise ValueError("at least one host")
    if unconfigured < 0 or unconfigured > hosts:
        raise ValueError("--unconfigured must be between 0 and --hosts")
    if ssh_hosts < 0 or ssh_hosts > hosts:
        raise ValueError("--ssh-hosts must be between 0 and --hosts")
    if ssh_hosts and (not ssh_port or not ssh_key):
        raise ValueError("--ssh-hosts needs --ssh-port and --ssh-key")
    outdir = os.path.abspath(outdir)
    pki_dir = os.path.abspath(pki_dir)
    python = python or sys.executable
    ssh_key = os.path.abspath(ssh_key) if ssh_key else None
    pki = load_pki(pki_dir)

    os.makedirs(outdir, exist_ok=True)
    for sub in ("roots", "inventory", "templates"):  # only what this script writes
        shutil.rmtree(os.path.join(outdir, sub), ignore_errors=True)
    facts = build_templates(os.path.join(outdir, "templates"), pki)

    jar = _tiny_jar()
    inv_hosts: Dict[str, Any] = {}
    fleet_hosts: Dict[str, Any] = {}
    for index in range(hosts):
        name = host_name(index)
        entry = make_host(outdir, index, pki, jar, fleet_kind(index, hosts, unconfigured))
        entry["ssh"] = index < ssh_hosts
        fleet_hosts[name] = entry
        inv_hosts[name] = connection_vars(index, ssh_hosts, ssh_port, ssh_key, python)
        _dump(os.path.join(outdir, "inventory", "host_vars", name + ".yml"), host_vars(entry))

    _dump(os.path.join(outdir, "inventory", "hosts.yml"),
          {"all": {"children": {"guichets": {"hosts": inv_hosts}}}})
    rotation = os.path.join(outdir, "inventory", "group_vars", "all", "sne_rotation.yml")
    os.makedirs(os.path.dirname(rotation), exist_ok=True)
    with open(rotation, "w", encoding="utf-8") as fh:
        fh.write(rotation_vars(pki))

    fleet = {
        "schema": 1,
        "generator": "tests/fleet/make_fleet.py",
        "pki": pki_dir,
        "generation": GENERATION,
        "fingerprints": {ident: pki[ident]["sha256"] for ident in CERTS},
        "private_key": facts,
        "ssh": {"hosts": ssh_hosts, "port": ssh_port, "key": ssh_key},
        "hosts": fleet_hosts,
    }
    with open(os.path.join(outdir, "fleet.json"), "w", encoding="utf-8") as fh:
        json.dump(fleet, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return fleet


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("outdir")
    parser.add_argument("--hosts", type=int, required=True, help="number of hosts")
    parser.add_argument("--pki", required=True, help="output folder of tests/pki/make_pki.py")
    parser.add_argument("--ssh-hosts", type=int, default=0, help="the first K hosts are reached by SSH")
    parser.add_argument("--ssh-port", type=int)
    parser.add_argument("--ssh-key", help="client private key (tests/fleet/sshd.sh start prints it)")
    parser.add_argument("--python", help="ansible_python_interpreter (default: this Python)")
    parser.add_argument("--unconfigured", type=int, default=0, metavar="N",
                        help="the last N hosts are 'unconfigured': laid out like a v4 host, but no "
                             "stores nor configuration files in their host_vars (default 0)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        fleet = build(args.outdir, args.hosts, args.pki, args.ssh_hosts, args.ssh_port, args.ssh_key,
                      args.python, args.unconfigured)
    except ValueError as exc:
        parser.error(str(exc))
    counts: Dict[str, int] = {}
    for entry in fleet["hosts"].values():
        counts[entry["kind"]] = counts.get(entry["kind"], 0) + 1
    print("fleet: %d hosts (%s; %d by SSH) in %s (%.1f s)" % (
        len(fleet["hosts"]), ", ".join("%s %d" % (k, counts[k]) for k in KINDS if k in counts),
        args.ssh_hosts, os.path.abspath(args.outdir), time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
