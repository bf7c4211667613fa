"""Independent verification of a simulated fleet (tests/fleet/make_fleet.py) after a rotation.

Usage::

    python tests/fleet/check_fleet.py OUTDIR --snapshot FILE                 # before the run
    python tests/fleet/check_fleet.py OUTDIR --expect rotated [--baseline FILE]
    python tests/fleet/check_fleet.py OUTDIR --expect untouched --baseline FILE   # --check runs
        [--host NAME]... [--ignore RELPATH]... [--jobs N] [--json FILE] [-v]

Nothing of the collection is used: stores are read with the real tools (``keytool -list -v``
for JKS and PKCS#12, one JVM per store; ``openssl x509`` for PEM and DER; ``openssl verify
-partial_chain -CApath`` for the hashed folder), the search paths are grepped for the bytes of
the V4 certificates (DER, and base64 whatever the line breaks), and file trees are compared by
SHA-256. Expectations come from ``OUTDIR/fleet.json`` and the PKI's ``manifest.json``.

``--expect rotated``: every healthy host (kinds v4, odd_alias, stray, v5) holds V5 and AC V5 in
every store, keeps the partner authority and the private key, has no V4 byte left under its
search paths, its stray copies moved (not deleted) into quarantine, its configuration pointing
at V5, and was reloaded (hosts that changed); with ``--baseline``, the broken host and the hosts
already on V5 are byte-identical to it, and the other hosts changed nothing outside their
stores, configuration, logs, backups and quarantine. ``--expect untouched``: every host tree is
byte-identical to the baseline (``--ignore var/log`` and the like leave paths of every host root
out of the comparisons, for example after a rollback). Prints a table, one line per host, and
exits 1 on any mismatch.
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
SNAPSHOT_SCHEMA = 2


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
        for role, ident in (("v4", "chiffrement-v4"), ("ac_v4", "ac-v4"), ("v5", "chiffrement-v5"),
                            ("ac_v5", "ac-v5"), ("partner", "ac-v6")):
            with open(os.path.join(pki, certs[ident]["der"]), "rb") as fh:
                self.der[role] = fh.read()
            self.pem_path[role] = os.path.join(pki, certs[ident]["path"])
            self.fp[role] = certs[ident]["sha256"].upper()
            if colon(hashlib.sha256(self.der[role]).hexdigest()) != self.fp[role]:
                raise SystemExit("check_fleet: %s does not match its manifest fingerprint" % ident)
        self.name_of = {fp: role for role, fp in self.fp.items()}
        self.key_fp: Optional[str] = (self.data.get("private_key") or {}).get("private_key_sha256")
        self.key_alias: str = (self.data.get("private_key") or {}).get("private_key_alias", "guichet")
        # What betrays a V4 copy in any file: its DER, or its base64 with line breaks removed.
        self.v4_needles = []
        for role in ("v4", "ac_v4"):
            self.v4_needles.append((role, "der", self.der[role]))
            self.v4_needles.append((role, "base64", base64.b64encode(self.der[role])))


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


def store_fingerprints(fleet: Fleet, store: Dict[str, Any]) -> Tuple[Set[str], List[str], Dict[str, Any]]:
    """(fingerprints held, problems specific to the format, extra facts) of one store."""
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
            for role in ("v5", "v4"):
                rc, _out, _err = run(["openssl", "verify", "-partial_chain", "-CApath", path,
                                      fleet.pem_path[role]])
                facts["verify_" + role] = rc == 0
    else:
        problems.append("unknown store type %s" % kind)
    return fps, problems, facts


def wanted_in(kind: str, gen: str) -> List[str]:
    """Roles a store of ``kind`` must hold when the host is on generation ``gen`` (v4/v5)."""
    leaf, ac = gen, "ac_" + gen
    if kind == "der":
        return [leaf]
    if kind in ("debian", "redhat"):
        return [ac, "partner"]
    return [leaf, ac, "partner"]


def check_stores(fleet: Fleet, host: Dict[str, Any], gen: str) -> List[str]:
    """Every store holds generation ``gen`` (and the partner) and nothing of the other one."""
    other = "v4" if gen == "v5" else "v5"
    problems: List[str] = []
    for store in host["stores"]:
        label = os.path.relpath(store["path"], host["root"])
        try:
            fps, extra, facts = store_fingerprints(fleet, store)
        except (OSError, RuntimeError) as exc:
            problems.append("%s: unreadable: %s" % (label, exc))
            continue
        problems.extend("%s: %s" % (label, p) for p in extra)
        for role in wanted_in(store["type"], gen):
            if fleet.fp[role] not in fps:
                problems.append("%s: %s missing" % (label, role))
        for role in (other, "ac_" + other):
            if fleet.fp[role] in fps:
                problems.append("%s: %s still there" % (label, role))
        if store["type"] == "pem_dir":
            if gen == "v5" and not facts.get("verify_v5"):
                problems.append("%s: openssl verify -CApath fails for V5" % label)
            if gen == "v5" and facts.get("verify_v4"):
                problems.append("%s: openssl verify -CApath still accepts V4" % label)
            if gen == "v4" and not facts.get("verify_v4"):
                problems.append("%s: openssl verify -CApath fails for V4" % label)
    return problems


def grep_v4(fleet: Fleet, host: Dict[str, Any]) -> List[str]:
    """Files under the search paths holding V4 bytes (quarantine and backups excluded)."""
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
                for role, form, needle in fleet.v4_needles:
                    if needle in (data if form == "der" else flat):
                        found.append("%s (%s %s)" % (os.path.relpath(full, host["root"]), role, form))
                        break
    return found


def check_strays(host: Dict[str, Any]) -> List[str]:
    problems: List[str] = []
    qdir = host["quarantine_dir"]
    quarantined: Dict[str, List[str]] = {}
    for dirpath, _dirnames, filenames in os.walk(qdir):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                quarantined.setdefault(hashlib.sha256(read_file(full)).hexdigest(), []).append(full)
    for path in host["strays"]:
        rel = os.path.relpath(path, host["root"])
        if os.path.lexists(path):
            problems.append("stray %s not moved" % rel)
        want = host["stray_sha256"][path]
        if not any(q.endswith(path) or os.path.basename(q) == os.path.basename(path)
                   for q in quarantined.get(want, [])):
            problems.append("stray %s not in quarantine with its original content" % rel)
    return problems


def check_config(host: Dict[str, Any], gen: str) -> List[str]:
    problems: List[str] = []
    old = "v4" if gen == "v5" else "v5"
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
        for token in ("Chiffrement_SNE%s.cer" % old.upper(), "sne-chiffrement-%s" % old):
            if token in text:
                problems.append("%s: still %s" % (rel, token))
    return problems


def check_reload(host: Dict[str, Any]) -> List[str]:
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


def allowed_change(host: Dict[str, Any], rel: str) -> bool:
    """Whether a rotation may change ``rel`` (relative to the host root)."""
    full = os.path.join(host["root"], rel)
    places = [s["path"] for s in host["stores"]] + list(host["config_files"]) + list(host["strays"])
    places += [host["backup_dir"], host["quarantine_dir"], host["reload_log"], host["refresh_log"]]
    created = [host["backup_dir"], host["quarantine_dir"]] + list(host["strays"])
    parents = [os.path.dirname(p) for p in created]
    for place in places:
        if full == place or full.startswith(place.rstrip("/") + "/"):
            return True
    # Parent folders of the backup and quarantine folders may be created.
    return any(place == full or place.startswith(full + "/") for place in parents)


def check_collateral(host: Dict[str, Any], before: Dict[str, List[Any]],
                     after: Dict[str, List[Any]]) -> List[str]:
    diff = tree_diff(before, after)
    problems = []
    outside = [(rel, how) for rel, how in diff if not allowed_change(host, rel)]
    if outside:
        problems.append("changed outside stores/config/logs/backups/quarantine: %s" % _short(outside))
    modes = [(rel, how) for rel, how in diff if "mode" in how or "owner" in how]
    if modes:
        problems.append("mode or owner changed: %s" % _short(modes))
    return problems


# --------------------------------------------------------------------------- per host


def check_host(fleet: Fleet, name: str, expect: str, baseline: Optional[Dict[str, Any]],
               ignore: Optional[List[str]] = None) -> Dict[str, Any]:
    host = fleet.hosts[name]
    kind = host["kind"]
    problems: List[str] = []
    notes: List[str] = []
    before = (baseline or {}).get("hosts", {}).get(name)
    if baseline is not None and before is None:
        problems.append("not in the baseline")
    after = tree_digest(host["root"]) if baseline is not None else None
    before, after = filter_tree(before, ignore or []), filter_tree(after, ignore or [])

    if expect == "untouched":
        if before is not None and after is not None:
            diff = tree_diff(before, after)
            if diff:
                problems.append("changed: %s" % _short(diff))
    elif kind == "broken":
        if before is not None and after is not None:
            diff = tree_diff(before, after)
            if diff:
                problems.append("broken host changed: %s" % _short(diff))
        else:
            notes.append("no baseline: byte identity not checked")
            problems.extend(check_stores(fleet, host, "v4"))
    else:
        problems.extend(check_stores(fleet, host, "v5"))
        problems.extend("V4 left in %s" % f for f in grep_v4(fleet, host))
        problems.extend(check_strays(host))
        problems.extend(check_config(host, "v5"))
        if kind in CHANGING_KINDS:
            problems.extend(check_reload(host))
        if before is not None and after is not None:
            if kind in IDENTICAL_KINDS:
                diff = tree_diff(before, after)
                if diff:
                    problems.append("host already on V5 changed: %s" % _short(diff))
            else:
                problems.extend(check_collateral(host, before, after))
        elif kind == "v5":
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
    print("%-*s  %-9s  %-3s  %-6s  %s" % (width, "host", "kind", "ssh", "result", "details"))
    for r in results:
        details = r["problems"] + ["note: " + n for n in r["notes"]]
        if limit is not None and len(details) > limit:
            details = details[:limit] + ["... %d more (-v or --json for all)" % (len(details) - limit)]
        first = details[0] if details else ""
        print("%-*s  %-9s  %-3s  %-6s  %s" % (width, r["host"], r["kind"], "yes" if r["ssh"] else "no",
                                              "ok" if r["ok"] else "FAIL", first))
        for more in details[1:]:
            print("%-*s  %s" % (width + 26, "", more))


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
    names = sorted(fleet.hosts)
    unknown = [n for n in args.host if n not in fleet.hosts]
    if unknown:
        parser.error("unknown host(s): %s" % ", ".join(unknown))
    if args.host:
        names = [n for n in names if n in args.host]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(
            lambda n: check_host(fleet, n, args.expect, baseline, args.ignore), names))
    print_table(results, None if args.verbose else 10)
    failed = [r for r in results if not r["ok"]]
    print("%d host(s) checked (expect %s): %d ok, %d mismatch (%.1f s)" % (
        len(results), args.expect, len(results) - len(failed), len(failed), time.monotonic() - started))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"expect": args.expect, "results": results}, fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
