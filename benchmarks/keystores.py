"""Benchmark: one ``sne.guichet.keystores`` task against the same rotation "written the usual way".

A fixture guichet (JKS with a private key and 150 trusted certificates, a keytool-made PKCS#12
truststore with 150 trusted certificates, a hashed PEM folder with 150 certificates, V4 and its
authority in each under names of their own) is rotated V4 -> V5, on fresh copies, by:

* ``ours``:  ONE ``sne.guichet.keystores`` task holding the three stores;
* ``usual``: ``community.general.java_cert`` per certificate per keystore (add V5, add AC V5,
  remove V4 and AC V4 BY ALIAS), ``ansible.builtin.copy`` / ``ansible.builtin.file`` for the PEM
  folder and an ``openssl rehash`` handler.

Each approach runs twice on its copy (first run, idempotent re-run); the median wall time of N
repetitions is printed, and every run is checked with ``keytool -list`` / ``openssl verify``.

Usage (any Python >= 3.11; re-executes itself in the bench venv when ``cryptography`` is missing)::

    python3 benchmarks/keystores.py [--runs 3] [--fillers 150] [--workdir .build/bench-keystores]

``community.general`` comes from the ``ansible`` package, installed in ``.build/venv-bench`` (never
in ``.venv``). Exit status: 0 when both approaches produced the expected stores, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".build" / "venv-bench"
VENV_PY = BENCH_VENV / "bin" / "python"
ANSIBLE_PLAYBOOK = BENCH_VENV / "bin" / "ansible-playbook"
# ansible 12.x depends on ansible-core ~= 2.19, the line requirements.txt allows.
ANSIBLE_REQ = "ansible>=12,<13"
COLLECTIONS = ROOT / ".build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "sne" / "guichet"
PASSWORD = "changeit"
JOPTS = ["-J-Duser.language=en", "-J-Dfile.encoding=UTF-8"]
ENV_C = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")

# What the fixture holds besides the fillers: V4 and its authority under names an admin has to
# find out host by host (java_cert and ansible.builtin.file act on aliases and paths).
JKS_V4_ALIASES = ["old-ministry-cert-2014", "ac-sne-v4"]
P12_V4_ALIASES = ["sne-v4-2014", "autorite-sne"]
PEM_V4_FILES = ["sne-chiffrement-2014.pem", "ac-sne-v4.pem"]
KEY_ALIAS = "guichet-signing"
HASH_LINK = re.compile(r"^[0-9a-f]{8}\.\d+$")


def _ours_playbook() -> str:
    return """\
---
- name: Rotate the SNE certificate with sne.guichet.keystores
  hosts: guichet
  gather_facts: false
  tasks:
    - name: Install V5 and its authority, remove V4 and its authority, in every store
      sne.guichet.keystores:
        stores:
          - {path: "{{ guichet_root }}/conf/app.jks", type: jks, password: "{{ keystore_password }}"}
          - {path: "{{ guichet_root }}/conf/trust.p12", type: pkcs12, password: "{{ keystore_password }}"}
          - {path: "{{ guichet_root }}/certs", type: pem_dir}
        present:
          - {name: sne-chiffrement-v5, pem: "{{ lookup('ansible.builtin.file', sne_v5_pem) }}"}
          - {name: sne-ac-v5, pem: "{{ lookup('ansible.builtin.file', sne_ac_v5_pem) }}"}
        absent_sha256: "{{ sne_retired_sha256 }}"
        backup_dir: "{{ guichet_root }}/../backups"
"""


def _usual_playbook() -> str:
    # What a competent admin writes without sne.guichet: java_cert identifies entries by ALIAS,
    # so the V4 aliases of every keystore (and the V4 file names of the PEM folder) must be
    # known in advance, host by host (guichet_keystores[*].v4_aliases, guichet_pem_v4_files).
    return """\
---
- name: Rotate the SNE certificate the usual way
  hosts: guichet
  gather_facts: false
  tasks:
    - name: Keystores - add V5 and its authority (one java_cert per certificate per keystore)
      community.general.java_cert:
        keystore_path: "{{ item.0.path }}"
        keystore_type: "{{ item.0.type }}"
        keystore_pass: "{{ keystore_password }}"
        cert_alias: "{{ item.1.alias }}"
        cert_content: "{{ lookup('ansible.builtin.file', item.1.pem) }}"
        state: present
      loop: "{{ guichet_keystores | product(sne_new_certs) | list }}"
      loop_control:
        label: "{{ item.0.path | basename }} {{ item.1.alias }}"

    - name: Keystores - remove V4 and its authority, by alias
      community.general.java_cert:
        keystore_path: "{{ item.0.path }}"
        keystore_type: "{{ item.0.type }}"
        keystore_pass: "{{ keystore_password }}"
        cert_alias: "{{ item.1 }}"
        state: absent
      loop: "{{ guichet_keystores | subelements('v4_aliases') }}"
      loop_control:
        label: "{{ item.0.path | basename }} {{ item.1 }}"

    - name: PEM folder - copy V5 and its authority
      ansible.builtin.copy:
        src: "{{ item.pem }}"
        dest: "{{ guichet_pem_dir }}/{{ item.alias }}.pem"
        mode: "0644"
      loop: "{{ sne_new_certs }}"
      loop_control:
        label: "{{ item.alias }}"
      notify: Rehash the PEM folder

    - name: PEM folder - remove V4 and its authority, by file name
      ansible.builtin.file:
        path: "{{ guichet_pem_dir }}/{{ item }}"
        state: absent
      loop: "{{ guichet_pem_v4_files }}"
      notify: Rehash the PEM folder

  handlers:
    - name: Rehash the PEM folder
      ansible.builtin.command:
        argv: [openssl, rehash, "{{ guichet_pem_dir }}"]
      changed_when: true
"""


# --------------------------------------------------------------------------------------------
# Environment: bench venv with the ansible package, sne.guichet link
# --------------------------------------------------------------------------------------------

def run(cmd: Sequence[str], *, check: bool = True, env: Optional[Dict[str, str]] = None,
        cwd: Optional[Path] = None, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env or ENV_C, cwd=cwd,
                          input=stdin, check=False)
    if check and proc.returncode != 0:
        raise SystemExit("command failed (%d): %s\n%s%s"
                         % (proc.returncode, " ".join(cmd), proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def ensure_bench_venv() -> None:
    stamp = BENCH_VENV / (".stamp-" + hashlib.sha256(ANSIBLE_REQ.encode()).hexdigest()[:16])
    if ANSIBLE_PLAYBOOK.exists() and stamp.exists():
        return
    print("bench: installing %r into %s" % (ANSIBLE_REQ, BENCH_VENV.relative_to(ROOT)), flush=True)
    if not VENV_PY.exists():
        base = shutil.which("python3") or sys.executable
        run([base, "-m", "venv", str(BENCH_VENV)])
    run([str(VENV_PY), "-m", "pip", "install", "-q", ANSIBLE_REQ])
    stamp.touch()


def ensure_collection_link() -> None:
    """``.build/collections/ansible_collections/sne/guichet`` -> this repository (as bootstrap)."""
    if LINK.is_symlink() or LINK.exists():
        if LINK.resolve() != ROOT:
            raise SystemExit("%s points to %s, not to this repository" % (LINK, LINK.resolve()))
        return
    LINK.parent.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to(ROOT)


def bench_versions() -> str:
    code = ("import importlib.metadata as m, ansible_collections.community.general as g;"
            "print(m.version('ansible'), m.version('ansible-core'), list(g.__path__)[0])")
    out = run([str(VENV_PY), "-c", code]).stdout.split()
    cg = Path(out[2]) / "plugins" / "modules" / "java_cert.py"
    if not cg.exists():
        raise SystemExit("community.general.java_cert not found in the ansible package (%s)" % cg)
    if not out[1].startswith("2.19."):
        raise SystemExit("%s pulled ansible-core %s, expected 2.19.x" % (ANSIBLE_REQ, out[1]))
    return "ansible %s, ansible-core %s, community.general from %s" % (
        out[0], out[1], Path(out[2]).parent.parent.relative_to(ROOT))


# --------------------------------------------------------------------------------------------
# Fixture
# --------------------------------------------------------------------------------------------

def colon_sha256(der: bytes) -> str:
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


@dataclass
class Fixture:
    host: Path                      # folder holding conf/app.jks, conf/trust.p12, certs/
    pki: Path
    fillers: Set[str]               # SHA-256 of the filler certificates
    key_sha256: str                 # certificate of the JKS private key entry
    v4: Dict[str, str]              # leaf / authority -> SHA-256 (to remove)
    v5: Dict[str, str]              # leaf / authority -> SHA-256 (to add)
    v5_pem: Dict[str, Path] = field(default_factory=dict)
    v4_pem: Path = Path()


def keytool(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["keytool", *JOPTS, *args])


def build_fixture(work: Path, n_fillers: int) -> Fixture:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    pki = work / "pki"
    run([sys.executable, str(ROOT / "roles" / "simulate" / "files" / "make_pki.py"), str(pki),
         "--keys", str(ROOT / "tests" / "pki" / "keys")])
    certs = json.loads((pki / "manifest.json").read_text())["certificates"]
    v4 = {"leaf": certs["chiffrement-v4"], "ac": certs["ac-v4"]}
    v5 = {"leaf": certs["chiffrement-v5"], "ac": certs["ac-v5"]}

    # One self-signed EC CA signing the fillers: milliseconds, where keytool would take a JVM each.
    now = dt.datetime.now(dt.timezone.utc)

    def nm(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Partenaires (bench)"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = nm("Partenaires CA (bench)")
    fillers: List[x509.Certificate] = []
    for i in range(n_fillers):
        key = ec.generate_private_key(ec.SECP256R1())
        fillers.append(
            x509.CertificateBuilder().subject_name(nm("partenaire-%03d.example" % i)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    v4_certs = {k: x509.load_pem_x509_certificate((pki / v["path"]).read_bytes()) for k, v in v4.items()}

    host = work / "fixture" / "guichet"
    (host / "conf").mkdir(parents=True)
    (host / "certs").mkdir()

    # Java stores: one PKCS#12 truststore from cryptography, ONE keytool -importkeystore per store,
    # ONE keytool -genkeypair for the JKS private key.
    def truststore(v4_aliases: List[str]) -> Path:
        entries = [pkcs12.PKCS12Certificate(c, b"partner-%03d" % i) for i, c in enumerate(fillers)]
        entries += [pkcs12.PKCS12Certificate(v4_certs["leaf"], v4_aliases[0].encode()),
                    pkcs12.PKCS12Certificate(v4_certs["ac"], v4_aliases[1].encode())]
        src = work / ("src-%s.p12" % v4_aliases[0])
        src.write_bytes(pkcs12.serialize_java_truststore(
            entries, serialization.BestAvailableEncryption(PASSWORD.encode())))
        return src

    jks, p12 = host / "conf" / "app.jks", host / "conf" / "trust.p12"
    for dest, kind, aliases in ((jks, "JKS", JKS_V4_ALIASES), (p12, "PKCS12", P12_V4_ALIASES)):
        keytool("-importkeystore", "-noprompt", "-srckeystore", str(truststore(aliases)),
                "-srcstoretype", "PKCS12", "-srcstorepass", PASSWORD, "-destkeystore", str(dest),
                "-deststoretype", kind, "-deststorepass", PASSWORD)
    keytool("-genkeypair", "-keystore", str(jks), "-storetype", "JKS", "-storepass", PASSWORD,
            "-keypass", PASSWORD, "-alias", KEY_ALIAS, "-keyalg", "RSA", "-keysize", "2048",
            "-dname", "CN=guichet.example,O=Bailleur", "-validity", "3650")
    listing = keytool("-list", "-v", "-keystore", str(jks), "-storepass", PASSWORD,
                      "-alias", KEY_ALIAS).stdout
    match = re.search(r"SHA256: ([0-9A-F:]{95})", listing)
    if not match:
        raise SystemExit("no SHA-256 in keytool -list of the private key entry")

    # PEM folder as c_rehash / openssl rehash leaves it.
    for i, c in enumerate(fillers):
        (host / "certs" / ("partner-%03d.pem" % i)).write_bytes(c.public_bytes(serialization.Encoding.PEM))
    for name, which in zip(PEM_V4_FILES, ("leaf", "ac")):
        shutil.copyfile(pki / v4[which]["path"], host / "certs" / name)
    run(["openssl", "rehash", str(host / "certs")])

    return Fixture(
        host=host, pki=pki,
        fillers={colon_sha256(c.public_bytes(serialization.Encoding.DER)) for c in fillers},
        key_sha256=match.group(1),
        v4={k: v["sha256"] for k, v in v4.items()}, v5={k: v["sha256"] for k, v in v5.items()},
        v5_pem={k: pki / v["path"] for k, v in v5.items()}, v4_pem=pki / v4["leaf"]["path"])


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

def java_entries(path: Path, kind: str, password: str = PASSWORD) -> List[Dict[str, str]]:
    out = keytool("-list", "-v", "-keystore", str(path), "-storetype", kind, "-storepass", password).stdout
    entries = []
    for chunk in out.split("Alias name: ")[1:]:
        etype = re.search(r"Entry type: (\S+)", chunk)
        fp = re.search(r"SHA256: ([0-9A-F:]{95})", chunk)
        entries.append({"alias": chunk.splitlines()[0].strip(), "type": etype.group(1) if etype else "?",
                        "sha256": fp.group(1) if fp else "?"})
    return entries


def check_java(fx: Fixture, path: Path, kind: str, rotated: bool) -> List[str]:
    problems = []
    entries = java_entries(path, kind)
    held = [e["sha256"] for e in entries]
    want = set(fx.fillers) | set((fx.v5 if rotated else fx.v4).values())
    gone = set((fx.v4 if rotated else fx.v5).values())
    if kind == "JKS":
        want.add(fx.key_sha256)
        keys = [e for e in entries if e["type"] == "PrivateKeyEntry"]
        if [(e["alias"], e["sha256"]) for e in keys] != [(KEY_ALIAS, fx.key_sha256)]:
            problems.append("%s: private key entry changed or lost: %s" % (path.name, keys))
    if len(held) != len(set(held)):
        problems.append("%s: duplicate certificates (%d entries, %d distinct)"
                        % (path.name, len(held), len(set(held))))
    if want - set(held):
        problems.append("%s: %d expected certificates missing" % (path.name, len(want - set(held))))
    if gone & set(held):
        problems.append("%s: %d retired certificates still there" % (path.name, len(gone & set(held))))
    if set(held) - want - gone:
        problems.append("%s: %d unexpected entries" % (path.name, len(set(held) - want - gone)))
    return problems


def check_pem_dir(fx: Fixture, folder: Path, rotated: bool) -> List[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    problems: List[str] = []
    files: Dict[str, str] = {}
    linked: Set[str] = set()
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            if not HASH_LINK.match(p.name):
                continue
            if not p.exists():
                problems.append("certs: dangling hash link %s" % p.name)
                continue
            linked.add(p.resolve().name)
        elif p.is_file():
            for c in x509.load_pem_x509_certificates(p.read_bytes()):
                files[colon_sha256(c.public_bytes(serialization.Encoding.DER))] = p.name
    want = set(fx.fillers) | set((fx.v5 if rotated else fx.v4).values())
    gone = set((fx.v4 if rotated else fx.v5).values())
    if set(files) != want:
        problems.append("certs: %d missing, %d unexpected certificates"
                        % (len(want - set(files)), len(set(files) - want)))
    if set(files.values()) - linked:
        problems.append("certs: %d files without a hash link" % len(set(files.values()) - linked))
    if gone & set(files):
        problems.append("certs: certificates that must be gone are there")
    # -CApath lookups go through the hash links: V5 chains to AC V5 there; V4 no longer does.
    pv = ["openssl", "verify", "-partial_chain", "-CApath", str(folder)]
    if run(pv + [str(fx.v5_pem["leaf"])], check=False).returncode != (0 if rotated else 2):
        problems.append("certs: openssl verify -CApath of V5 gave an unexpected result")
    if rotated and run(pv + [str(fx.v4_pem)], check=False).returncode == 0:
        problems.append("certs: V4 still verifies through the folder's hash links")
    return problems


def check_host(fx: Fixture, host: Path, rotated: bool = True) -> List[str]:
    return (check_java(fx, host / "conf" / "app.jks", "JKS", rotated)
            + check_java(fx, host / "conf" / "trust.p12", "PKCS12", rotated)
            + check_pem_dir(fx, host / "certs", rotated))


# --------------------------------------------------------------------------------------------
# Playbook runs
# --------------------------------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    invocations: int                # module executions on the host (loop items count, skips don't)
    changed: int
    problems: List[str]


def ansible_env(work: Path) -> Dict[str, str]:
    env = {k: v for k, v in ENV_C.items() if not k.startswith("ANSIBLE_")}
    cfg = work / "ansible.cfg"
    cfg.write_text("# empty on purpose: no user or system ansible.cfg\n")
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        # sne.guichet from the repository link; community.general is found in the bench venv's
        # site-packages (the ansible package), which ansible-core scans after this path.
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_PIPELINING="True",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def run_playbook(work: Path, playbook: Path, host: Path, env: Dict[str, str]) -> Run:
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(work / "inventory.ini"), str(playbook),
           "-e", "@" + str(work / "vars.json"), "-e", "guichet_root=" + str(host)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, check=False)
    seconds = time.perf_counter() - start
    problems: List[str] = []
    invocations = changed = 0
    try:
        report: Dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        return Run(seconds, 0, 0, ["ansible-playbook rc=%d, no JSON: %s %s"
                                   % (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])])
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for res in task.get("hosts", {}).values():
                for item in res.get("results") or [res]:
                    if item.get("skipped"):
                        continue
                    invocations += 1
                    changed += bool(item.get("changed"))
                    if item.get("failed") or item.get("unreachable"):
                        problems.append("%s: %s" % (task["task"]["name"], item.get("msg", item)))
    if proc.returncode != 0 and not problems:
        problems.append("ansible-playbook rc=%d: %s" % (proc.returncode, proc.stderr[-1500:]))
    return Run(seconds, invocations, changed, problems)


def write_inputs(work: Path, fx: Fixture) -> Dict[str, Path]:
    (work / "tmp").mkdir(exist_ok=True)
    (work / "inventory.ini").write_text(
        "[guichet]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n" % VENV_PY)
    root = "{{ guichet_root }}"
    variables = {
        "keystore_password": PASSWORD,
        "sne_v5_pem": str(fx.v5_pem["leaf"]),
        "sne_ac_v5_pem": str(fx.v5_pem["ac"]),
        "sne_retired_sha256": [fx.v4["leaf"], fx.v4["ac"]],
        # What the usual playbook needs on top: aliases and file names, per host.
        "sne_new_certs": [{"alias": "sne-chiffrement-v5", "pem": str(fx.v5_pem["leaf"])},
                          {"alias": "sne-ac-v5", "pem": str(fx.v5_pem["ac"])}],
        "guichet_keystores": [
            {"path": root + "/conf/app.jks", "type": "JKS", "v4_aliases": JKS_V4_ALIASES},
            {"path": root + "/conf/trust.p12", "type": "PKCS12", "v4_aliases": P12_V4_ALIASES}],
        "guichet_pem_dir": root + "/certs",
        "guichet_pem_v4_files": PEM_V4_FILES,
    }
    (work / "vars.json").write_text(json.dumps(variables, indent=1))
    books = {"ours": work / "ours.yml", "usual": work / "usual.yml"}
    books["ours"].write_text(_ours_playbook())
    books["usual"].write_text(_usual_playbook())
    return books


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

LABELS = {"ours": "sne.guichet.keystores (1 task)",
          "usual": "usual: java_cert + copy + file + rehash"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--runs", type=int, default=3, help="repetitions; the median is printed (default 3)")
    ap.add_argument("--fillers", type=int, default=150, help="filler certificates per store (default 150)")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".build" / "bench-keystores",
                    help="scratch folder, emptied first (default .build/bench-keystores)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.fillers < 1:
        ap.error("--runs and --fillers must be >= 1")

    ensure_bench_venv()
    if importlib.util.find_spec("cryptography") is None:     # the bench venv has it (ansible-core)
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
    ensure_collection_link()
    for tool in ("keytool", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit("%s is needed (scripts/bootstrap.sh installs it)" % tool)
    print("bench: " + bench_versions(), flush=True)

    work: Path = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    fx = build_fixture(work, args.fillers)
    problems = ["fixture: " + p for p in check_host(fx, fx.host, rotated=False)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("bench: fixture (JKS %d+key+V4, PKCS12 %d+V4, PEM folder %d+V4, V4 authority in each) in %.1f s"
          % (args.fillers, args.fillers, args.fillers, time.perf_counter() - t0), flush=True)
    books = write_inputs(work, fx)
    env = ansible_env(work)

    results: Dict[str, Dict[str, List[Run]]] = {a: {"first": [], "rerun": []} for a in books}
    failures: List[str] = []
    for i in range(args.runs):
        order = list(books) if i % 2 == 0 else list(reversed(list(books)))
        for approach in order:
            host = work / "runs" / ("%s-%d" % (approach, i)) / "guichet"
            shutil.copytree(fx.host, host, symlinks=True)
            for phase in ("first", "rerun"):
                r = run_playbook(work, books[approach], host, env)
                r.problems += check_host(fx, host)
                if phase == "rerun" and approach == "ours" and r.changed:
                    r.problems.append("re-run reported %d changes (module claims idempotence)" % r.changed)
                results[approach][phase].append(r)
                failures += ["%s %s #%d: %s" % (approach, phase, i + 1, p) for p in r.problems]
                print("bench: %-5s run %d %-5s %6.2f s, %2d invocations, %2d changed%s"
                      % (approach, i + 1, phase, r.seconds, r.invocations, r.changed,
                         "" if not r.problems else ", PROBLEMS"), flush=True)

    def med(a: str, phase: str) -> float:
        return statistics.median(r.seconds for r in results[a][phase])

    def inv(a: str, phase: str) -> str:
        return "/".join(sorted({str(r.invocations) for r in results[a][phase]}))

    def chg(a: str, phase: str) -> str:
        return "/".join(sorted({str(r.changed) for r in results[a][phase]}))

    print()
    print("Rotation V4 -> V5 of 3 stores (%d fillers each), local connection, median of %d runs"
          % (args.fillers, args.runs))
    print("%-42s %9s %9s %13s %9s" % ("approach", "first s", "re-run s", "invocations", "changed"))
    for a in books:
        print("%-42s %9.2f %9.2f %13s %9s" % (
            LABELS[a], med(a, "first"), med(a, "rerun"),
            "%s / %s" % (inv(a, "first"), inv(a, "rerun")), "%s / %s" % (chg(a, "first"), chg(a, "rerun"))))
    print("%-42s %8.1fx %8.1fx" % ("ratio usual / ours", med("usual", "first") / med("ours", "first"),
                                   med("usual", "rerun") / med("ours", "rerun")))
    print("(invocations and changed: module executions on the host, first run / re-run)")
    print("verified after every run (keytool -list, openssl verify -CApath): %s"
          % ("OK" if not failures else "%d PROBLEMS" % len(failures)))
    for f in failures:
        print("  " + f, file=sys.stderr)
    print("total %.0f s; work folder %s" % (time.perf_counter() - t0, work))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
