"""Independent verification of a simulated fleet (tests/fleet/make_fleet.py) after a rotation.

Usage::

    python tests/fleet/check_fleet.py OUTDIR --snapshot FILE                 # before the run
    python tests/fleet/check_fleet.py OUTDIR --expect rotated [--baseline FILE] [--generation V6]
        [--repaired HOST]... [--configured HOST]...
    python tests/fleet/check_fleet.py OUTDIR --expect untouched --baseline FILE   # --check runs
        [--host NAME]... [--ignore RELPATH]... [--jobs N] [--json FILE] [-v]

Nothing of the collection is used: stores are read with the real tools (``keytool -list -v``
for JKS and PKCS#12, one JVM per store; ``openssl x509`` for PEM and DER; ``openssl verify
-partial_chain -CApath`` for the hashed folder; ``certutil -L`` and ``-K`` for an NSS database:
trust C,, for an authority, P,, for the encryption certificate, its key pair as it was made),
the search paths are grepped for the bytes of
the retired certificates (DER, and base64 whatever the line breaks), and file trees are compared
by SHA-256. Expectations come from ``OUTDIR/fleet.json`` and the PKI's ``manifest.json``.

``--expect rotated`` (``--generation V5``, the default): every healthy host (kinds v4,
odd_alias, stray, v5) holds V5 and AC V5 in every store, keeps the partner authority and the
private key, has no V4 byte left under its search paths, its stray copies moved (not deleted)
into quarantine, its configuration pointing at V5, and was reloaded (hosts that changed); with
``--baseline``, the broken host, the unconfigured hosts and the hosts already on V5 are
byte-identical to it, and the other hosts changed nothing outside their stores, configuration,
logs, backups and quarantine. ``--repaired HOST`` (the broken host, its inventory password
fixed) and ``--configured HOST`` (an unconfigured host since given host_vars, e.g. from an
audit proposal) are expected rotated like a v4 host.

``--expect rotated --generation V6``: the fleet was rotated V4 -> V5, then V5 -> V6 (retired:
V5 and V4, certificates and authorities). Every healthy host, the v5 ones included, holds V6
and AC V6 in every store (the partner authority is AC V6 in the test PKI), no V5 nor V4
certificate or authority, no V5/V4 byte under its search paths; its DER store is
``Chiffrement_SNEV6.cer`` and ``Chiffrement_SNEV5.cer`` is in quarantine with its original
content; its configuration names V6 only; its hashed folder verifies V6 and no longer V5/V4.
The DER store path and the strays of a generation are derived from fleet.json (written for V5).
``--baseline`` is then a snapshot taken after the V5 rotation: hosts left on V4 (broken,
unconfigured) must be byte-identical to it, the others changed only their stores,
configuration, logs, backups and quarantine, and ran their reload commands again.

A host with an outbound folder (fleet.json ``outbox``): after a rotation to VN its messages to a
retired generation are gone from the folder and in the quarantine with their bytes, and
``openssl cms -decrypt`` with that generation's private key opens the quarantined copy; its
other messages and files are in place, byte-identical, and a message to VN still opens with
VN's key. ``--expect untouched``: the outbound messages of the baseline are back in the folder.

``--expect untouched``: every host tree is byte-identical to the baseline (``--ignore var/log``
and the like leave paths of every host root out of the comparisons, for example after a
rollback). Prints a table, one line per host, and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Set, Tuple

JAVA_ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
JOPTS = ["-J-Duser.language=en", "-J-Dfile.encoding=UTF-8", "-J-Dsun.stdout.encoding=UTF-8",
         # A short-lived JVM: quick JIT only, one compiler thread, serial GC (a third less CPU).
         "-J-XX:TieredStopAtLevel=1", "-J-XX:CICompilerCount=1", "-J-XX:+UseSerialGC"]
PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
SHA256_LINE = re.compile(r"^\s*SHA256:\s*([0-9A-F]{2}(?::[0-9A-F]{2}){31})\s*$")
MAX_GREP = 16 * 1024 * 1024
CHANGING_KINDS = ("v4", "odd_alias", "stray")
IDENTICAL_KINDS = ("broken", "v5")
# Hosts a rotation must not reach (they stay on V4): the broken one (unless --repaired) and the
# unconfigured ones (unless --configured).
HELD_KINDS = ("broken", "unconfigured")
SNAPSHOT_SCHEMA = 2
# Generations: the fleet is made on V4 (V5 for the v5 hosts); ac-v6 of the PKI plays the partner
# authority every rotation must leave in place.
FIRST_GENERATION = 4
DEFAULT_GENERATION = "V5"
PARTNER_IDENT = "ac-v6"
GENERATION_RE = re.compile(r"^[Vv]([0-9]+)$")
DER_NAME_RE = re.compile(r"Chiffrement_SNEV[0-9]+\.cer$")


class Fleet:
    """fleet.json plus the certificates of the PKI (DER, PEM path) by role."""

    def __init__(self, outdir: str) -> None:
        self.outdir = os.path.abspath(outdir)
        with open(os.path.join(self.outdir, "fleet.json"), encoding="utf-8") as fh:
            self.data = json.load(fh)
        self.hosts: Dict[str, Dict[str, Any]] = self.data["hosts"]
        pki = self.data["pki"]
        with open(os.path.join(pki, "manifest.json"), encoding="utf-8") as fh:
            certs = json.load(fh)["certificates"]
        self.der: Dict[str, bytes] = {}
        self.pem_path: Dict[str, str] = {}
        self.fp: Dict[str, str] = {}
        # Roles: v4, ac_v4, v5, ac_v5, v6, ac_v6... (every generation of the PKI from V4 on),
        # and partner.
        roles: List[Tuple[str, str]] = []
        number = FIRST_GENERATION
        while "chiffrement-v%d" % number in certs and "ac-v%d" % number in certs:
            roles += [("v%d" % number, "chiffrement-v%d" % number), ("ac_v%d" % number, "ac-v%d" % number)]
            number += 1
        self.generations: List[int] = list(range(FIRST_GENERATION, number))
        if len(self.generations) < 2 or PARTNER_IDENT not in certs:
            raise SystemExit("check_fleet: the PKI has no V4 and V5 or no partner authority")
        roles.append(("partner", PARTNER_IDENT))
        for role, ident in roles:
            with open(os.path.join(pki, certs[ident]["der"]), "rb") as fh:
                self.der[role] = fh.read()
            self.pem_path[role] = os.path.join(pki, certs[ident]["path"])
            self.fp[role] = certs[ident]["sha256"].upper()
            if colon(hashlib.sha256(self.der[role]).hexdigest()) != self.fp[role]:
                raise SystemExit("check_fleet: %s does not match its manifest fingerprint" % ident)
        self.key_fp: Optional[str] = (self.data.get("private_key") or {}).get("private_key_sha256")
        self.key_alias: str = (self.data.get("private_key") or {}).get("private_key_alias", "guichet")
        self.v4_needles = self.needles(["v4", "ac_v4"])

    def needles(self, roles: List[str]) -> List[Tuple[str, str, bytes]]:
        """What betrays a copy of ``roles`` in any file: its DER, or its base64 with line breaks
        removed."""
        out: List[Tuple[str, str, bytes]] = []
        for role in roles:
            out.append((role, "der", self.der[role]))
            out.append((role, "base64", base64.b64encode(self.der[role])))
        return out


def generation_number(gen: str) -> int:
    """5 for "V5" or "v5"; ValueError otherwise."""
    match = GENERATION_RE.match(gen.strip())
    if not match:
        raise ValueError("a generation is V<number>, e.g. V6: %r" % gen)
    return int(match.group(1))


def retired_generations(number: int) -> List[int]:
    """Generations a rotation to ``number`` has retired, newest first: [5, 4] for V6."""
    return list(range(number - 1, FIRST_GENERATION - 1, -1))


def forbidden_roles(number: int) -> List[str]:
    """Roles no store may hold on a host on generation ``number``: every retired certificate
    and authority; on a host still on V4, V5 and AC V5 (not AC V6: the partner)."""
    gens = retired_generations(number) if number > FIRST_GENERATION else [FIRST_GENERATION + 1]
    return [r for g in gens for r in ("v%d" % g, "ac_v%d" % g)]


def der_path(path: str, number: int) -> str:
    """The path of the ``Chiffrement_SNEV<n>.cer`` DER store for generation ``number``."""
    return DER_NAME_RE.sub("Chiffrement_SNEV%d.cer" % number, path)


def stores_at(host: Dict[str, Any], number: int) -> List[Dict[str, Any]]:
    """The host's declared stores (fleet.json, written for V5) for generation ``number``: the
    DER store is the file named after that generation."""
    return [dict(s, path=der_path(s["path"], number)) if s["type"] == "der" else s
            for s in host["stores"]]


def start_generation(host: Dict[str, Any]) -> int:
    """The generation a host held when the fleet was made."""
    return 5 if host["kind"] == "v5" else FIRST_GENERATION


def strays_at(fleet: Fleet, host: Dict[str, Any], number: int) -> Dict[str, str]:
    """path -> sha256 hex of every stray copy a rotation to ``number`` must have quarantined:
    the host's strays (fleet.json) and the DER files of the generations it went through
    (Chiffrement_SNEV4.cer of a repaired broken host, Chiffrement_SNEV5.cer after V6)."""
    out = {path: host["stray_sha256"][path] for path in host["strays"]}
    out.update(outbox_at(host, number)[0])  # the outbound messages to a retired generation
    for gen in range(start_generation(host), number):
        leaf = hashlib.sha256(fleet.der["v%d" % gen]).hexdigest()
        for store in host["stores"]:
            if store["type"] == "der":
                out.setdefault(der_path(store["path"], gen), leaf)
    return out


def outbox_at(host: Dict[str, Any], number: int) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The host's outbound messages (path -> sha256 hex): (those a rotation to ``number`` must
    have quarantined - to a retired generation, those it must leave in place)."""
    retired = {"v%d" % g for g in retired_generations(number)}
    moved: Dict[str, str] = {}
    kept: Dict[str, str] = {}
    for path, message in sorted(((host.get("outbox") or {}).get("messages") or {}).items()):
        (moved if message["to"] in retired else kept)[path] = message["sha256"]
    return moved, kept


def opens_with(fleet: Fleet, path: str, role: str) -> bool:
    """Whether ``openssl cms -decrypt`` opens the message at ``path`` with ``role``'s private key
    (the PKI's ``chiffrement-vN.key``, next to its PEM)."""
    key = os.path.splitext(fleet.pem_path[role])[0] + ".key"
    inform = "SMIME" if read_file(path).startswith(b"MIME-Version") else "DER"
    done = subprocess.run(["openssl", "cms", "-decrypt", "-inform", inform, "-in", path, "-inkey", key,
                           "-recip", fleet.pem_path[role]], capture_output=True, check=False)
    return done.returncode == 0 and done.stdout.startswith(b"<demande")


def check_outbox(fleet: Fleet, host: Dict[str, Any], number: int) -> List[str]:
    """After a rotation to ``number``: each message to a retired generation opens (openssl) with
    its key in the quarantine (its move is judged with the strays); the others are in place."""
    problems: List[str] = []
    moved, kept = outbox_at(host, number)
    messages = host["outbox"]["messages"] if moved or kept else {}
    quarantined = {}
    for dirpath, _dirs, files in os.walk(host["quarantine_dir"]):
        for name in files:
            full = os.path.join(dirpath, name)
            quarantined.setdefault(hashlib.sha256(read_file(full)).hexdigest(), full)
    for path, want in moved.items():
        copy = quarantined.get(want)
        if copy and not opens_with(fleet, copy, messages[path]["to"]):
            problems.append("outbox %s: the quarantined copy does not open with %s's key"
                            % (os.path.relpath(path, host["root"]), messages[path]["to"].upper()))
    for path, want in kept.items():
        rel = os.path.relpath(path, host["root"])
        if not os.path.isfile(path) or hashlib.sha256(read_file(path)).hexdigest() != want:
            problems.append("outbox %s (to %s) moved or changed" % (rel, messages[path]["to"] or "nobody"))
        elif messages[path]["to"] and not opens_with(fleet, path, messages[path]["to"]):
            problems.append("outbox %s does not open with %s's key" % (rel, messages[path]["to"].upper()))
    return problems


def check_outbox_back(host: Dict[str, Any], before: Optional[Dict[str, List[Any]]]) -> List[str]:
    """Every outbound message the baseline has in the folder there again with its original bytes
    (after a rollback)."""
    problems = []
    for path, message in sorted(((host.get("outbox") or {}).get("messages") or {}).items()):
        if before is None or os.path.relpath(path, host["root"]) not in before:
            continue
        if not os.path.isfile(path) or hashlib.sha256(read_file(path)).hexdigest() != message["sha256"]:
            problems.append("outbox %s not back" % os.path.relpath(path, host["root"]))
    return problems


def colon(hexdigest: str) -> str:
    h = hexdigest.upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def run(argv: List[str], data: Optional[bytes] = None, env: Optional[Dict[str, str]] = None,
        ) -> Tuple[int, str, str]:
    proc = subprocess.run(argv, input=data, capture_output=True, env=env, check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------------- reading stores


def keytool_entries(path: str, storetype: str, password: str) -> List[Dict[str, Any]]:
    """[{alias, type, sha256: [chain fingerprints]}] from one ``keytool -list -v``."""
    tool = shutil.which("keytool")
    if tool is None:
        raise RuntimeError("keytool not found")
    rc, out, err = run([tool] + JOPTS + ["-list", "-v", "-keystore", path, "-storetype", storetype,
                                         "-storepass", password], env=JAVA_ENV)
    if rc != 0:
        raise RuntimeError("keytool -list failed: %s" % (out + err).strip().splitlines()[-1:])
    entries: List[Dict[str, Any]] = []
    for line in out.splitlines():
        if line.startswith("Alias name:"):
            entries.append({"alias": line.split(":", 1)[1].strip(), "type": None, "sha256": []})
        elif line.startswith("Entry type:") and entries:
            entries[-1]["type"] = line.split(":", 1)[1].strip()
        else:
            match = SHA256_LINE.match(line)
            if match and entries:
                entries[-1]["sha256"].append(match.group(1))
    return entries


def openssl_fp(data: bytes, inform: str) -> str:
    rc, out, err = run(["openssl", "x509", "-inform", inform, "-noout", "-fingerprint", "-sha256"], data)
    if rc != 0:
        raise RuntimeError("openssl x509 cannot read it: %s" % err.strip()[:200])
    return out.strip().split("=", 1)[1].upper()


def pem_fps(data: bytes) -> List[str]:
    return [openssl_fp(block, "PEM") for block in PEM_RE.findall(data)]


def read_file(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def store_fingerprints(fleet: Fleet, store: Dict[str, Any], verify: Tuple[str, ...] = ("v5", "v4"),
                       ) -> Tuple[Set[str], List[str], Dict[str, Any]]:
    """(fingerprints held, problems specific to the format, extra facts) of one store; for a
    hashed folder, facts ``verify_<role>``: whether ``openssl verify -CApath`` accepts each
    certificate of ``verify``."""
    path, kind = store["path"], store["type"]
    problems: List[str] = []
    facts: Dict[str, Any] = {}
    fps: Set[str] = set()
    if kind in ("jks", "pkcs12"):
        entries = keytool_entries(path, "JKS" if kind == "jks" else "PKCS12", store.get("password") or "")
        facts["entries"] = entries
        for entry in entries:
            fps.update(entry["sha256"][:1] if entry["type"] == "PrivateKeyEntry" else entry["sha256"])
        if kind == "jks" and fleet.key_fp:
            keys = [e for e in entries if e["type"] == "PrivateKeyEntry"]
            if not any(e["sha256"][:1] == [fleet.key_fp] and e["alias"] == fleet.key_alias for e in keys):
                problems.append("private key entry %r lost or changed" % fleet.key_alias)
            fps.discard(fleet.key_fp)
    elif kind == "pem":
        data = read_file(path)
        fps.update(pem_fps(data))
        if not data.startswith(b"#"):
            problems.append("leading comment line lost")
    elif kind == "der":
        fps.add(openssl_fp(read_file(path), "DER"))
    elif kind in ("pem_dir", "debian", "redhat"):
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    if not os.path.exists(full):
                        problems.append("dangling link %s" % os.path.relpath(full, path))
                    continue
                if kind == "debian" and not name.endswith(".crt"):
                    continue
                fps.update(pem_fps(read_file(full)))
        if kind == "pem_dir":
            for role in verify:
                rc, _out, _err = run(["openssl", "verify", "-partial_chain", "-CApath", path,
                                      fleet.pem_path[role]])
                facts["verify_" + role] = rc == 0
    elif kind == "nss":
        fps, problems, facts = nss_fingerprints(fleet, store)
    else:
        problems.append("unknown store type %s" % kind)
    return fps, problems, facts


def certutil(folder: str, password: str, *args: str) -> str:
    """``certutil -d sql:folder ARGS`` (the password from a file); RuntimeError if it fails."""
    fd, pwfile = tempfile.mkstemp(prefix="check-fleet-nss-")
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    try:
        rc, out, err = run(["certutil", "-d", "sql:" + folder, "-f", pwfile] + list(args),
                           env=dict(os.environ, LC_ALL="C", NSS_SDB_USE_CACHE="no"))
    finally:
        os.unlink(pwfile)
    if rc != 0 and args[:1] == ("-K",) and "no keys found" in out + err and "SEC_ERROR" not in out + err:
        return ""  # a database without private keys
    if rc != 0:
        raise RuntimeError("certutil %s: %s" % (" ".join(args), (err or out).strip()[-300:]))
    return out


def nss_fingerprints(fleet: Fleet, store: Dict[str, Any]) -> Tuple[Set[str], List[str], Dict[str, Any]]:
    """An NSS database read with ``certutil -L`` (nickname: the first 60 columns, trust: the
    rest; each nickname's certificates with ``-L -n NICK -a``) and ``certutil -K``: an
    authority must have the trust C,,, the encryption certificate P,,; the key pair intact."""
    password = store.get("password") or ""
    problems: List[str] = []
    fps: Set[str] = set()
    trust: Dict[str, str] = {}
    lines = certutil(store["path"], password, "-L").splitlines()
    for line in lines[4:]:
        if not line.strip():
            continue
        nick, flags = line[:60].rstrip(), line[60:].strip()
        pem = certutil(store["path"], password, "-L", "-n", nick, "-a").encode("ascii")
        for fp in pem_fps(pem):
            fps.add(fp)
            trust[fp] = flags
    for role, fp in fleet.fp.items():
        if fp in trust:
            want = "P,," if role.startswith("v") else "C,,"
            if trust[fp] != want:
                problems.append("%s has the trust %r, not %r" % (role, trust[fp], want))
    host = [h for h in fleet.hosts.values() if (h.get("nss") or {}).get("path") == store["path"]]
    keys = sorted(" ".join(line.split(">", 1)[1].split())
                  for line in certutil(store["path"], password, "-K").splitlines() if line.startswith("<"))
    if host and keys != host[0]["nss"]["keys"]:
        problems.append("private keys changed: %s (made with %s)" % (keys, host[0]["nss"]["keys"]))
    return fps, problems, {"trust": trust, "keys": keys}


def wanted_in(kind: str, gen: str, fleet: Optional[Fleet] = None) -> List[str]:
    """Roles a store of ``kind`` must hold when the host is on generation ``gen`` (v4, v5, v6...).

    The partner authority is wanted too, unless (``fleet`` given) it is the generation's own
    authority: in the test PKI the partner is AC V6, so for V6 its check is the authority's.
    """
    leaf, ac = gen, "ac_" + gen
    partner = [] if fleet is not None and fleet.fp.get(ac) == fleet.fp["partner"] else ["partner"]
    if kind == "der":
        return [leaf]
    if kind in ("debian", "redhat"):
        return [ac] + partner
    return [leaf, ac] + partner


def check_stores(fleet: Fleet, host: Dict[str, Any], gen: str) -> List[str]:
    """Every store holds generation ``gen`` (and the partner) and nothing of the others: the
    retired generations (V4 for V5; V5 and V4 for V6), or V5 for a host still on V4. The DER
    store is the file of generation ``gen``."""
    number = generation_number(gen)
    retired = retired_generations(number)
    verify = tuple("v%d" % g for g in [number] + retired)
    problems: List[str] = []
    for store in stores_at(host, number):
        label = os.path.relpath(store["path"], host["root"])
        try:
            fps, extra, facts = store_fingerprints(fleet, store, verify)
        except (OSError, RuntimeError) as exc:
            problems.append("%s: unreadable: %s" % (label, exc))
            continue
        problems.extend("%s: %s" % (label, p) for p in extra)
        for role in wanted_in(store["type"], "v%d" % number, fleet):
            if fleet.fp[role] not in fps:
                problems.append("%s: %s missing" % (label, role))
        for role in forbidden_roles(number):
            if fleet.fp[role] in fps:
                problems.append("%s: %s still there" % (label, role))
        if store["type"] == "pem_dir":
            if not facts.get("verify_v%d" % number):
                problems.append("%s: openssl verify -CApath fails for V%d" % (label, number))
            for old in retired:
                if facts.get("verify_v%d" % old):
                    problems.append("%s: openssl verify -CApath still accepts V%d" % (label, old))
    return problems


def grep_v4(fleet: Fleet, host: Dict[str, Any]) -> List[str]:
    """Files under the search paths holding V4 bytes (quarantine and backups excluded)."""
    return grep_retired(fleet, host, ["v4", "ac_v4"])


def grep_retired(fleet: Fleet, host: Dict[str, Any], roles: List[str]) -> List[str]:
    """Files under the search paths holding bytes of ``roles`` (quarantine and backups excluded)."""
    needles = fleet.needles(roles)
    skip = tuple(os.path.join(host[k], "") for k in ("quarantine_dir", "backup_dir"))
    found: List[str] = []
    for top in host["search_paths"]:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not os.path.join(dirpath, d, "").startswith(skip))
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_GREP:
                        continue
                    data = read_file(full)
                except OSError:
                    continue
                flat = re.sub(rb"\s+", b"", data)
                for role, form, needle in needles:
                    if needle in (data if form == "der" else flat):
                        found.append("%s (%s %s)" % (os.path.relpath(full, host["root"]), role, form))
                        break
    return found


def check_strays(host: Dict[str, Any], strays: Optional[Dict[str, str]] = None) -> List[str]:
    """Each stray (path -> sha256 hex; default the host's) gone from its place and in the
    quarantine with its original content."""
    if strays is None:
        strays = {path: host["stray_sha256"][path] for path in host["strays"]}
    problems: List[str] = []
    qdir = host["quarantine_dir"]
    quarantined: Dict[str, List[str]] = {}
    for dirpath, _dirnames, filenames in os.walk(qdir):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                quarantined.setdefault(hashlib.sha256(read_file(full)).hexdigest(), []).append(full)
    for path, want in strays.items():
        rel = os.path.relpath(path, host["root"])
        if os.path.lexists(path):
            problems.append("stray %s not moved" % rel)
        if not any(q.endswith(path) or os.path.basename(q) == os.path.basename(path)
                   for q in quarantined.get(want, [])):
            problems.append("stray %s not in quarantine with its original content" % rel)
    return problems


def check_config(host: Dict[str, Any], gen: str) -> List[str]:
    """The configuration names generation ``gen`` (v5, v6...) and none it retired."""
    problems: List[str] = []
    number = generation_number(gen)
    olds = ["v%d" % g for g in retired_generations(number)] if number > FIRST_GENERATION else ["v5"]
    for path in host["config_files"]:
        rel = os.path.relpath(path, host["root"])
        try:
            text = read_file(path).decode("utf-8", "replace")
        except OSError as exc:
            problems.append("%s: %s" % (rel, exc))
            continue
        for token in ("Chiffrement_SNE%s.cer" % gen.upper(), "sne-chiffrement-%s" % gen):
            if token not in text:
                problems.append("%s: no %s" % (rel, token))
        for old in olds:
            for token in ("Chiffrement_SNE%s.cer" % old.upper(), "sne-chiffrement-%s" % old):
                if token in text:
                    problems.append("%s: still %s" % (rel, token))
    return problems


def check_reload(host: Dict[str, Any], before: Optional[Dict[str, List[Any]]] = None,
                 after: Optional[Dict[str, List[Any]]] = None) -> List[str]:
    """The reload commands and the trust anchors refresh ran; with the trees of the baseline and
    now, they ran since the baseline (their logs changed)."""
    problems: List[str] = []
    try:
        if "reloaded" not in read_file(host["reload_log"]).decode("utf-8", "replace"):
            problems.append("reload command did not run")
    except OSError:
        problems.append("reload command did not run (no %s)"
                        % os.path.relpath(host["reload_log"], host["root"]))
    try:
        if not read_file(host["refresh_log"]).strip():
            problems.append("trust anchors refresh did not run")
    except OSError:
        problems.append("trust anchors refresh did not run")
    if before is not None and after is not None and not problems:
        for key, what in (("reload_log", "reload command"), ("refresh_log", "trust anchors refresh")):
            rel = os.path.relpath(host[key], host["root"])
            if before.get(rel) == after.get(rel):
                problems.append("%s did not run again since the baseline (%s unchanged)" % (what, rel))
    return problems


# --------------------------------------------------------------------------- trees


def tree_digest(root: str) -> Dict[str, List[Any]]:
    """relative path -> [type, content sha256 or link target, mode, owner] for everything under root."""
    out: Dict[str, List[Any]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            mode = "%04o" % stat.S_IMODE(st.st_mode)
            owner = "%d:%d" % (st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ["l", os.readlink(full), None, owner]
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ["d", None, mode, owner]
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ["f", hashlib.sha256(read_file(full)).hexdigest(), mode, owner]
            else:
                out[rel] = ["o", None, mode, owner]
    return out


def tree_diff(before: Dict[str, List[Any]], after: Dict[str, List[Any]]) -> List[Tuple[str, str]]:
    """[(path, how)] sorted by path; how is added, removed, or what changed (content, mode, owner)."""
    diff = []
    for rel in sorted(set(before) | set(after)):
        a, b = before.get(rel), after.get(rel)
        if a == b:
            continue
        if a is None:
            diff.append((rel, "added"))
        elif b is None:
            diff.append((rel, "removed"))
        else:
            hows = []
            if a[:2] != b[:2]:
                hows.append("changed")
            if a[2] != b[2]:
                hows.append("mode %s->%s" % (a[2], b[2]))
            if a[3:] != b[3:]:
                hows.append("owner %s->%s" % ((a[3:] or ["?"])[0], (b[3:] or ["?"])[0]))
            diff.append((rel, " ".join(hows)))
    return diff


def filter_tree(tree: Optional[Dict[str, List[Any]]], ignore: List[str]) -> Optional[Dict[str, List[Any]]]:
    """``tree`` without the paths under an ``ignore`` prefix (relative to the host root), nor
    the folders that lead to one (creating var/lib for var/lib/sne-guichet is no change)."""
    if tree is None or not ignore:
        return tree
    prefixes = [p.strip("/") for p in ignore if p.strip("/")]

    def ignored(rel: str, entry: List[Any]) -> bool:
        for p in prefixes:
            if rel == p or rel.startswith(p + "/") or (entry[0] == "d" and p.startswith(rel + "/")):
                return True
        return False

    return {rel: entry for rel, entry in tree.items() if not ignored(rel, entry)}


def _short(diff: List[Tuple[str, str]], limit: int = 6) -> str:
    text = ", ".join("%s %s" % (how, rel) for rel, how in diff[:limit])
    return text + (" (+%d more)" % (len(diff) - limit) if len(diff) > limit else "")


def allowed_change(host: Dict[str, Any], rel: str, stores: Optional[List[Dict[str, Any]]] = None,
                   strays: Optional[List[str]] = None) -> bool:
    """Whether a rotation may change ``rel`` (relative to the host root); ``stores`` and
    ``strays`` default to the host's (fleet.json)."""
    full = os.path.join(host["root"], rel)
    stores = host["stores"] if stores is None else stores
    strays = list(host["strays"]) if strays is None else strays
    places = [s["path"] for s in stores] + list(host["config_files"]) + strays
    places += [host["backup_dir"], host["quarantine_dir"], host["reload_log"], host["refresh_log"]]
    created = [host["backup_dir"], host["quarantine_dir"]] + strays
    parents = [os.path.dirname(p) for p in created]
    for place in places:
        if full == place or full.startswith(place.rstrip("/") + "/"):
            return True
    # Parent folders of the backup and quarantine folders may be created.
    return any(place == full or place.startswith(full + "/") for place in parents)


def check_collateral(host: Dict[str, Any], before: Dict[str, List[Any]],
                     after: Dict[str, List[Any]], stores: Optional[List[Dict[str, Any]]] = None,
                     strays: Optional[List[str]] = None) -> List[str]:
    diff = tree_diff(before, after)
    problems = []
    outside = [(rel, how) for rel, how in diff if not allowed_change(host, rel, stores, strays)]
    if outside:
        problems.append("changed outside stores/config/logs/backups/quarantine: %s" % _short(outside))
    modes = [(rel, how) for rel, how in diff if "mode" in how or "owner" in how]
    if modes:
        problems.append("mode or owner changed: %s" % _short(modes))
    return problems


# --------------------------------------------------------------------------- per host


def check_host(fleet: Fleet, name: str, expect: str, baseline: Optional[Dict[str, Any]],
               ignore: Optional[List[str]] = None, generation: str = DEFAULT_GENERATION,
               repaired: Optional[List[str]] = None, configured: Optional[List[str]] = None,
               ) -> Dict[str, Any]:
    """Check one host; ``repaired`` and ``configured`` name the broken and unconfigured hosts to
    expect rotated like a v4 host."""
    host = fleet.hosts[name]
    kind = host["kind"]
    problems: List[str] = []
    notes: List[str] = []
    raw_before = (baseline or {}).get("hosts", {}).get(name)
    if baseline is not None and raw_before is None:
        problems.append("not in the baseline")
    raw_after = tree_digest(host["root"]) if baseline is not None else None
    before, after = filter_tree(raw_before, ignore or []), filter_tree(raw_after, ignore or [])
    number = generation_number(generation)
    held = kind in HELD_KINDS
    if kind == "broken" and name in (repaired or []):
        held = False
        notes.append("repaired: checked as a v4 host")
    if kind == "unconfigured" and name in (configured or []):
        held = False
        notes.append("configured: checked as a v4 host")

    if expect == "untouched":
        problems.extend(check_outbox_back(host, before))
        if before is not None and after is not None:
            diff = tree_diff(before, after)
            if diff:
                problems.append("changed: %s" % _short(diff))
    elif held:
        if before is not None and after is not None:
            diff = tree_diff(before, after)
            if diff:
                problems.append("%s host changed: %s" % (kind, _short(diff)))
        else:
            notes.append("no baseline: byte identity not checked")
            problems.extend(check_stores(fleet, host, "v%d" % FIRST_GENERATION))
    else:
        retired = retired_generations(number)
        # Already on this generation when the fleet was made (v5 hosts, V5): nothing may change.
        identical = start_generation(host) >= number
        strays = strays_at(fleet, host, number)
        problems.extend(check_stores(fleet, host, "v%d" % number))
        problems.extend("%s left in %s" % ("/".join("V%d" % g for g in retired), f)
                        for f in grep_retired(fleet, host, forbidden_roles(number)))
        problems.extend(check_strays(host, strays))
        if host.get("outbox"):
            problems.extend(check_outbox(fleet, host, number))
        problems.extend(check_config(host, "v%d" % number))
        if not identical:
            problems.extend(check_reload(host, raw_before, raw_after))
        if before is not None and after is not None:
            if identical:
                diff = tree_diff(before, after)
                if diff:
                    problems.append("host already on V%d changed: %s" % (number, _short(diff)))
            else:
                problems.extend(check_collateral(host, before, after, stores_at(host, number),
                                                 list(strays)))
                if number - 1 > start_generation(host) and raw_before is not None:
                    # A host that went through V(n-1) has its DER file in a snapshot taken after.
                    for store in host["stores"]:
                        previous = os.path.relpath(der_path(store["path"], number - 1), host["root"])
                        if store["type"] == "der" and previous not in raw_before:
                            problems.append("the baseline is not a snapshot taken after the V%d "
                                            "rotation (no %s in it)" % (number - 1, previous))
        elif identical:
            notes.append("no baseline: byte identity not checked")
    return {"host": name, "kind": kind, "ssh": bool(host.get("ssh")), "ok": not problems,
            "problems": problems, "notes": notes}


def snapshot(fleet: Fleet, path: str) -> None:
    data = {"schema": SNAPSHOT_SCHEMA, "outdir": fleet.outdir,
            "hosts": {name: tree_digest(h["root"]) for name, h in sorted(fleet.hosts.items())}}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
    print("snapshot of %d hosts written to %s" % (len(data["hosts"]), path))


def print_table(results: List[Dict[str, Any]], limit: Optional[int] = 10) -> None:
    width = max([len(r["host"]) for r in results] + [4])
    kwidth = max([len(r["kind"]) for r in results] + [9])
    print("%-*s  %-*s  %-3s  %-6s  %s" % (width, "host", kwidth, "kind", "ssh", "result", "details"))
    for r in results:
        details = r["problems"] + ["note: " + n for n in r["notes"]]
        if limit is not None and len(details) > limit:
            details = details[:limit] + ["... %d more (-v or --json for all)" % (len(details) - limit)]
        first = details[0] if details else ""
        ssh, result = "yes" if r["ssh"] else "no", "ok" if r["ok"] else "FAIL"
        print("%-*s  %-*s  %-3s  %-6s  %s" % (width, r["host"], kwidth, r["kind"], ssh, result, first))
        for more in details[1:]:
            print("%-*s  %s" % (width + kwidth + 17, "", more))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("outdir", help="the folder make_fleet.py wrote")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--expect", choices=["rotated", "untouched"])
    mode.add_argument("--snapshot", metavar="FILE", help="write the digest of every host tree and exit")
    parser.add_argument("--baseline", metavar="FILE", help="a --snapshot taken before the run")
    parser.add_argument("--ignore", action="append", default=[], metavar="RELPATH",
                        help="leave this path of every host root (e.g. var/log) out of the byte "
                             "comparisons with the baseline (repeatable)")
    parser.add_argument("--host", action="append", default=[], help="check only this host (repeatable)")
    parser.add_argument("--generation", default=DEFAULT_GENERATION, metavar="VN",
                        help="with --expect rotated: the generation the fleet was rotated to, V5 "
                             "(from V4, the default) or V6 (V4 -> V5, then V5 -> V6: retired V5 and "
                             "V4; --baseline is then a snapshot taken after the V5 rotation)")
    parser.add_argument("--repaired", action="append", default=[], metavar="HOST",
                        help="this broken host had its inventory password fixed: expect it rotated "
                             "like a v4 host (repeatable)")
    parser.add_argument("--configured", action="append", default=[], metavar="HOST",
                        help="this unconfigured host has since been given host_vars (e.g. from an "
                             "audit proposal): expect it rotated like a v4 host (repeatable)")
    parser.add_argument("--jobs", type=int, default=max(2, min(8, 2 * (os.cpu_count() or 1))))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="every problem of every host")
    args = parser.parse_args(argv)
    started = time.monotonic()
    fleet = Fleet(args.outdir)
    if args.snapshot:
        snapshot(fleet, args.snapshot)
        return 0
    if args.expect == "untouched" and not args.baseline:
        parser.error("--expect untouched needs --baseline")
    baseline = None
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as fh:
            baseline = json.load(fh)
        if baseline.get("schema") != SNAPSHOT_SCHEMA:
            parser.error("%s is not a snapshot of this version of check_fleet.py" % args.baseline)
    try:
        number = generation_number(args.generation)
    except ValueError as exc:
        parser.error(str(exc))
    if number <= FIRST_GENERATION or number not in fleet.generations:
        parser.error("--generation: V%d is not a generation to rotate to with this PKI (V%d to V%d)"
                     % (number, FIRST_GENERATION + 1, fleet.generations[-1]))
    generation = "V%d" % number
    names = sorted(fleet.hosts)
    unknown = [n for n in args.host + args.repaired + args.configured if n not in fleet.hosts]
    if unknown:
        parser.error("unknown host(s): %s" % ", ".join(unknown))
    for option, wanted in (("--repaired", "broken"), ("--configured", "unconfigured")):
        wrong = [n for n in getattr(args, option[2:]) if fleet.hosts[n]["kind"] != wanted]
        if wrong:
            parser.error("%s: not %s host(s): %s" % (option, wanted, ", ".join(wrong)))
    if args.host:
        names = [n for n in names if n in args.host]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(
            lambda n: check_host(fleet, n, args.expect, baseline, args.ignore, generation,
                                 args.repaired, args.configured), names))
    print_table(results, None if args.verbose else 10)
    failed = [r for r in results if not r["ok"]]
    expect = args.expect
    if expect == "rotated" and generation != DEFAULT_GENERATION:
        expect += " to " + generation
    print("%d host(s) checked (expect %s): %d ok, %d mismatch (%.1f s)" % (
        len(results), expect, len(results) - len(failed), len(failed), time.monotonic() - started))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"expect": args.expect, "generation": generation, "results": results}, fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
