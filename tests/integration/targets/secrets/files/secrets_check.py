"""The secrets target's helper: distinctive store passwords on a small fleet, a sampler of the
processes' command lines and environments, and the judge that reads every byte a run produced.

    secrets_check.py setup WORK            passwords.json, the stores re-passworded, host_vars
    secrets_check.py wrong WORK on|off     guichet-001's Java stores get wrong passwords (or back)
    secrets_check.py sample WORK           until WORK/sampler.stop exists: /proc/*/cmdline, environ
    secrets_check.py judge WORK ...        every password, in every form, in every output: none

The fleet is tests/fleet/make_fleet.py's (two local hosts: guichet-001 plain V4 with a PKCS#12
truststore, guichet-002 with stray copies). Each host gets, besides: a PKCS#12 keystore with a
private key (only keytool can rewrite it: the keytool backend), a JCEKS store, and the JKS's
password in guichet.properties next to the lines the rotation rewrites (as Java software keeps
it); guichet-002 a stray PKCS#12 holding only V4, opened by the scan with its own password.
Every password is distinctive (``S3cr3t-<random>-<store>``), so a hit is never a coincidence.

Nothing here prints a password: hits name the password by its role and the form it took.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Tuple

import yaml

JOPTS = ["-J-Duser.language=en", "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"]
JAVA_ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
CONF = "opt/guichet/conf"
# The passwords, by role: the stores' (JKS, PKCS#12 truststore, PKCS#12 with a private key,
# JCEKS, the stray PKCS#12 the scan opens), and the wrong ones given for the JKS and keytool stores.
STORE_ROLES = ("jks", "p12", "keyp12", "jceks", "scan")
WRONG_ROLES = ("jks", "keyp12")
MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
TEMP_PREFIXES = ("sne-keytool-", "sne-probe-", "ansible_", "ansible-")


def keytool(*args: str) -> None:
    proc = subprocess.run(["keytool"] + JOPTS + list(args), capture_output=True, text=True,
                          env=JAVA_ENV, check=False)
    if proc.returncode != 0:
        raise SystemExit("keytool %s: %s%s" % (args[0], proc.stdout, proc.stderr))


def load(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)


def dump(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        if path.endswith(".json"):
            json.dump(data, handle, indent=2, sort_keys=True)
        else:
            handle.write("---\n")
            yaml.safe_dump(data, handle, sort_keys=False, default_flow_style=False, width=1000)


# --------------------------------------------------------------------------------- setup

def setup(work: str) -> None:
    fleet = load(os.path.join(work, "fleet", "fleet.json"))
    pki = os.path.join(work, "pki")
    pw = {role: "S3cr3t-%s-%s" % (secrets.token_hex(6), role.upper()) for role in STORE_ROLES}
    pw.update(("wrong_" + role, "Wr0ng-%s-%s" % (secrets.token_hex(6), role.upper())) for role in WRONG_ROLES)
    dump(os.path.join(work, "passwords.json"), pw)
    templates = os.path.join(work, "templates")
    os.makedirs(templates)
    client, jceks, stray = (os.path.join(templates, n)
                            for n in ("client.p12", "legacy.jceks", "old-trust.p12"))
    v4, ac4 = os.path.join(pki, "chiffrement-v4.pem"), os.path.join(pki, "ac-v4.pem")

    def client_p12() -> None:  # a private key: the cryptography backend cannot rewrite it
        keytool("-genkeypair", "-keystore", client, "-storetype", "PKCS12", "-storepass", pw["keyp12"],
                "-alias", "client-tls", "-keyalg", "RSA", "-keysize", "2048", "-validity", "7300",
                "-dname", "CN=guichet-client.example.test, O=Guichet (test), C=FR")
        for alias, pem in (("sne-chiffrement-v4", v4), ("sne-ac-v4", ac4)):
            keytool("-importcert", "-noprompt", "-keystore", client, "-storetype", "PKCS12",
                    "-storepass", pw["keyp12"], "-alias", alias, "-file", pem)

    def legacy_jceks() -> None:
        for alias, pem in (("sne-chiffrement-v4", v4), ("sne-ac-v4", ac4)):
            keytool("-importcert", "-noprompt", "-keystore", jceks, "-storetype", "JCEKS",
                    "-storepass", pw["jceks"], "-alias", alias, "-file", pem)

    def stray_p12() -> None:
        keytool("-importcert", "-noprompt", "-keystore", stray, "-storetype", "PKCS12",
                "-storepass", pw["scan"], "-alias", "old-sne", "-file", v4)

    def repassword(path: str, storetype: str, old: str, new: str) -> None:
        keytool("-storepasswd", "-keystore", path, "-storetype", storetype, "-storepass", old, "-new", new)

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(job) for job in (client_p12, legacy_jceks, stray_p12)]
        for entry in fleet["hosts"].values():
            for store in entry["stores"]:
                if store["type"] in ("jks", "pkcs12"):
                    new = pw["jks" if store["type"] == "jks" else "p12"]
                    jobs.append(pool.submit(repassword, store["path"], store["type"].upper(),
                                            store["password"], new))
        for job in jobs:
            job.result()

    for name, entry in sorted(fleet["hosts"].items()):
        root = entry["root"]
        conf = os.path.join(root, CONF)
        shutil.copyfile(client, os.path.join(conf, "client.p12"))
        shutil.copyfile(jceks, os.path.join(conf, "legacy.jceks"))
        with open(entry["config_files"][0], "a", encoding="utf-8") as handle:  # as Java software keeps it
            handle.write("sne.truststore.password=%s\n" % pw["jks"])
        hv_path = os.path.join(work, "fleet", "inventory", "host_vars", name + ".yml")
        hv = load(hv_path)
        for store in hv["sne_guichet_stores"]:
            if store["type"] in ("jks", "pkcs12"):
                store["password"] = pw["jks"] if store["type"] == "jks" else pw["p12"]
        hv["sne_guichet_stores"] += [
            {"path": os.path.join(conf, "client.p12"), "type": "pkcs12", "password": pw["keyp12"]},
            {"path": os.path.join(conf, "legacy.jceks"), "type": "jks", "password": pw["jceks"]},
        ]
        # the asynchronous check reads the certificate in the JKS, with its password
        hv["sne_guichet_async_certificate"] = {
            "path": os.path.join(conf, "app.jks"), "type": "jks", "password": pw["jks"],
            "alias": "sne-chiffrement-{{ sne_generation | lower }}"}
        if entry["kind"] == "stray":
            shutil.copyfile(stray, os.path.join(root, "home/guichet/old-trust.p12"))
            hv["retire_scan_passwords"] = {os.path.join(root, "home/guichet/*.p12"): pw["scan"]}
        dump(hv_path, hv)

    direct = os.path.join(work, "direct")  # copies for the direct keystores/scan/async_probe calls
    os.makedirs(direct)
    first = fleet["hosts"]["guichet-001"]
    for rel in ("app.jks", "trust.p12", "client.p12", "legacy.jceks"):
        shutil.copyfile(os.path.join(first["root"], CONF, rel), os.path.join(direct, rel))
    shutil.copyfile(stray, os.path.join(direct, "old-trust.p12"))
    with open(os.path.join(pki, "chiffrement-v5.pem"), encoding="ascii") as handle:
        v5_pem = handle.read()
    dump(os.path.join(work, "direct.json"), {"direct_dir": direct, "pw": pw, "v5_pem": v5_pem,
                                             "v4_sha256": fleet["fingerprints"]["chiffrement-v4"]})
    shutil.rmtree(templates)


def wrong(work: str, state: str) -> None:
    """guichet-001's JKS and keytool PKCS#12 get wrong passwords (on) or their own (off)."""
    pw = load(os.path.join(work, "passwords.json"))
    hv_path = os.path.join(work, "fleet", "inventory", "host_vars", "guichet-001.yml")
    hv = load(hv_path)
    for store in hv["sne_guichet_stores"]:
        if store["path"].endswith("/app.jks"):
            store["password"] = pw["wrong_jks" if state == "on" else "jks"]
        elif store["path"].endswith("/client.p12"):
            store["password"] = pw["wrong_keyp12" if state == "on" else "keyp12"]
    dump(hv_path, hv)


# --------------------------------------------------------------------------------- the forms

def forms(password: str) -> List[Tuple[str, bytes]]:
    """Every form in which a password could be written: UTF-8, UTF-16 (keytool, PKCS#12
    BMPString), hex, and base64 at each of the three alignments inside a longer base64 text
    (standard and URL-safe), of the UTF-8 and UTF-16 bytes."""
    out: List[Tuple[str, bytes]] = []
    for enc in ("utf-8", "utf-16-le", "utf-16-be"):
        raw = password.encode(enc)
        out.append((enc, raw))
        if enc == "utf-8":
            out += [("hex", binascii.hexlify(raw)), ("HEX", binascii.hexlify(raw).upper())]
        for shift in range(3):
            text = base64.b64encode(b"\0" * shift + raw)
            head = 4 if shift else 0
            tail = len(text) - (4 if (shift + len(raw)) % 3 else 0)
            core = text[head:tail]
            out.append(("base64/%s/%d" % (enc, shift), core))
            out.append(("base64url/%s/%d" % (enc, shift), core.replace(b"+", b"-").replace(b"/", b"_")))
    return out


def needles(work: str) -> List[Tuple[str, str, bytes]]:
    pw = load(os.path.join(work, "passwords.json"))
    return [(role, form, data) for role, value in sorted(pw.items()) for form, data in forms(value)]


# --------------------------------------------------------------------------------- sampler

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


MARKER = "SNE_SECRETS_RUN"  # runme.sh exports it: every process of this test has it


class _Process:
    __slots__ = ("ours", "cmdline")

    def __init__(self) -> None:
        self.ours = False
        self.cmdline = b""


def sample(work: str) -> None:
    """Until WORK/sampler.stop: the command line (and environment) of every process of this
    test (its environment holds MARKER) against every password; every other process's command
    line once. Writes WORK/sampler.json: samples, processes and keytool calls seen, how
    keytool got its password, the hits (by password role, never the password)."""
    passwords = load(os.path.join(work, "passwords.json"))
    raw = [(role, value.encode()) for role, value in sorted(passwords.items())]
    marker = ("%s=%s" % (MARKER, work)).encode()
    stop = os.path.join(work, "sampler.stop")
    me = str(os.getpid())
    tmp = os.environ.get("TMPDIR", "/tmp")
    report: Dict[str, Any] = {"samples": 0, "processes_seen": 0, "ours": 0, "keytool_calls": 0,
                              "keytool_argv": [], "cmdline_hits": [], "environ_hits": [],
                              "scratch_seen": 0, "keytool_password_channels": []}
    procs: Dict[str, _Process] = {}

    def check(pid: str, proc: _Process, cmdline: bytes) -> None:
        argv = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
        program = os.path.basename(argv[0]) if argv else ""
        is_keytool = program == "keytool" or "sun.security.tools.keytool.Main" in argv
        for role, value in raw:
            if value in cmdline:
                report["cmdline_hits"].append({"pid": pid, "password": role, "keytool": is_keytool,
                                               "program": program})
        if not proc.ours:
            return
        if is_keytool:
            report["keytool_calls"] += 1
            channels = set(a for a in argv if a.startswith(("-storepass", "-srcstorepass", "-deststorepass",
                                                            "-keypass", "-srckeypass", "-destkeypass")))
            report["keytool_password_channels"] = sorted(set(report["keytool_password_channels"]) | channels)
            if len(report["keytool_argv"]) < 5:
                report["keytool_argv"].append([a for a in argv if not a.startswith("-J")][1:])
        environ = _read("/proc/%s/environ" % pid)
        after = _read("/proc/%s/cmdline" % pid)
        if after and after != cmdline:
            # It exec'd between the two reads (a fork of the module becoming keytool): the
            # environment read is the new program's; judge it as that program. A password in
            # the parent's own environment would still be caught on the parent's process.
            argv = [a.decode("utf-8", "replace") for a in after.split(b"\0") if a]
            program = os.path.basename(argv[0]) if argv else ""
            is_keytool = program == "keytool" or "sun.security.tools.keytool.Main" in argv
        for role, value in raw:
            if value in environ:
                hit = {"pid": pid, "password": role, "keytool": is_keytool, "program": program}
                if hit not in report["environ_hits"]:
                    report["environ_hits"].append(hit)

    with open(os.path.join(work, "sampler.ready"), "w"):
        pass
    while not os.path.exists(stop):
        report["samples"] += 1
        alive = set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            alive.add(pid)
            proc = procs.get(pid)
            if proc is None:
                proc = procs[pid] = _Process()
                proc.ours = marker in _read("/proc/%s/environ" % pid)
                report["processes_seen"] += 1
                report["ours"] += proc.ours
            elif not proc.ours:
                continue  # another process's command line is read once
            cmdline = _read("/proc/%s/cmdline" % pid)
            if cmdline and cmdline != proc.cmdline:  # new, or it exec'd another program
                proc.cmdline = cmdline
                check(pid, proc, cmdline)
        for pid in set(procs) - alive:
            del procs[pid]
        try:
            if any(n.startswith("sne-keytool-") for n in os.listdir(tmp)):
                report["scratch_seen"] += 1
        except OSError:
            pass
        time.sleep(0.01)
    times = os.times()
    report["cpu_seconds"] = round(times.user + times.system, 1)
    dump(os.path.join(work, "sampler.json"), report)


# --------------------------------------------------------------------------------- judge

def _walk(top: str) -> Iterator[str]:
    """Every path under ``top`` (files, folders, links), ``top`` included; links not followed."""
    yield top
    for dirpath, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            yield os.path.join(dirpath, name)


class Judge:
    def __init__(self, work: str) -> None:
        self.needles = needles(work)
        self.hits: List[str] = []
        self.files = 0
        self.bytes = 0
        self.names = 0

    def data(self, where: str, data: bytes) -> None:
        self.bytes += len(data)
        for role, form, needle in self.needles:
            at = data.find(needle)
            if at >= 0:
                self.hits.append("%s: password %s as %s at byte %d" % (where, role, form, at))

    def name(self, path: str) -> None:
        self.names += 1
        self.data("name of " + path, os.fsencode(path))
        try:
            for attr in os.listxattr(path, follow_symlinks=False):
                self.data("xattr %s of %s" % (attr, path),
                          os.fsencode(attr) + b"=" + os.getxattr(path, attr, follow_symlinks=False))
        except OSError:
            pass

    def contents(self, path: str) -> None:
        if os.path.isfile(path) and not os.path.islink(path):
            self.files += 1
            self.data(path, _read(path))
        elif os.path.islink(path):
            self.data("link " + path, os.fsencode(os.readlink(path)))

    def tree(self, top: str, contents: bool = True, skip_contents: Tuple[str, ...] = ()) -> None:
        if not os.path.lexists(top):
            return
        for path in _walk(top):
            self.name(path)
            if contents and not any(part in path for part in skip_contents):
                self.contents(path)


def self_check(j: Judge, work: str) -> List[str]:
    """The matcher finds every form of every password inside other bytes, at every offset."""
    problems = []
    pw = load(os.path.join(work, "passwords.json"))
    for role, value in sorted(pw.items()):
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            for shift in range(3):
                raw = os.urandom(7 + shift) + value.encode(enc) + os.urandom(5)
                for text in (raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
                    if not any(n[0] == role and n[2] in text for n in j.needles):
                        problems.append("self-check: password %s in %s at shift %d not found"
                                        % (role, enc, shift))
    return problems


def judge(work: str, args: argparse.Namespace) -> int:
    j = Judge(work)
    problems: List[str] = self_check(j, work)
    # everything the runs wrote for people or machines: logs, the Ansible log, the dumps of the
    # registered results, the reports (JSON, HTML, JUnit, fleet state, audit proposals), the
    # simulator's state, Ansible's and the modules' temporary folders, the direct calls' backups
    for top in args.everything:
        j.tree(top)
    # the hosts, their backups and quarantine included: every name and extended attribute, every
    # content but guichet.properties (and its backup copies), which holds the JKS password by design
    for top in args.hosts:
        j.tree(top, skip_contents=("guichet.properties",))
    problems += j.hits
    # ... where the matcher does find it (the judge can see a password where there is one)
    for top in args.hosts:
        canary = Judge(work)
        for path in _walk(top):
            if path.endswith("/" + CONF + "/guichet.properties"):
                canary.contents(path)
        if not any(": password jks as utf-8 " in hit for hit in canary.hits):
            problems.append("canary: the JKS password was not found in %s's guichet.properties" % top)

    # nothing left behind in the temporary folders
    for top in args.temp:
        for path in _walk(top) if os.path.isdir(top) else ():
            base = os.path.basename(path)
            if path != top and (base.startswith(TEMP_PREFIXES) or base == "storepass"):
                problems.append("left behind: %s" % path)
    for top in args.hosts:
        for path in _walk(top):
            if path.endswith(".sne-tmp"):
                problems.append("temporary file left behind: %s" % path)

    # the judge must have had something to judge
    sampler = load(os.path.join(work, "sampler.json"))
    logs = b"".join(_read(os.path.join(args.logs, n)) for n in sorted(os.listdir(args.logs)))
    if MASK.encode() not in logs:
        problems.append("no %s in the logs: the module arguments were never shown, the test proves nothing"
                        % MASK)
    if sampler["keytool_calls"] < args.min_keytool:
        problems.append("the sampler saw %d keytool calls (at least %d expected)"
                        % (sampler["keytool_calls"], args.min_keytool))
    for hit in sampler["cmdline_hits"]:
        problems.append("command line of pid %s (%s%s) holds password %s" % (
            hit["pid"], hit["program"], ", keytool" if hit["keytool"] else "", hit["password"]))
    for hit in sampler["environ_hits"]:
        if not hit["keytool"]:
            problems.append("environment of pid %s (%s) holds password %s"
                            % (hit["pid"], hit["program"], hit["password"]))

    count = len(STORE_ROLES) + len(WRONG_ROLES)
    print("secrets: %d passwords x %d forms; %d files, %d bytes, %d names and their extended attributes read"
          % (count, len(j.needles) // count, j.files, j.bytes, j.names))
    print("secrets: sampler: %d samples of /proc (%.1f s of CPU), %d processes (%d of this test), %d keytool "
          "calls seen (password given by %s); scratch folder seen in %d samples; password in a command line: "
          "%d, in an environment: %d (%s)"
          % (sampler["samples"], sampler["cpu_seconds"], sampler["processes_seen"], sampler["ours"],
             sampler["keytool_calls"],
             ", ".join(sampler["keytool_password_channels"]) or "nothing", sampler["scratch_seen"],
             len(sampler["cmdline_hits"]), len(sampler["environ_hits"]),
             ", ".join(sorted(set("%s of %s" % (h["password"], h["program"])
                                  for h in sampler["environ_hits"]))) or "none"))
    for argv in sampler["keytool_argv"][:2]:
        print("secrets: keytool argv seen: %s" % " ".join(argv))
    for problem in problems:
        print("LEAK: %s" % problem)
    return 1 if problems else 0


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup").add_argument("work")
    w = sub.add_parser("wrong")
    w.add_argument("work")
    w.add_argument("state", choices=("on", "off"))
    sub.add_parser("sample").add_argument("work")
    j = sub.add_parser("judge")
    j.add_argument("work")
    j.add_argument("--logs", required=True, help="folder of the runs' stdout/stderr")
    j.add_argument("--everything", nargs="*", default=[], help="names and contents")
    j.add_argument("--hosts", nargs="*", default=[],
                   help="host roots: names, contents but guichet.properties")
    j.add_argument("--temp", nargs="*", default=[], help="folders that must hold no temporary file")
    j.add_argument("--min-keytool", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args.work)
    elif args.command == "wrong":
        wrong(args.work, args.state)
    elif args.command == "sample":
        sample(args.work)
    else:
        return judge(args.work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
