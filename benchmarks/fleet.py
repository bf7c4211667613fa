"""Benchmark: the fleet rotation ``sne.guichet.rotate`` against the same rotation "written the usual way".

For each fleet size N, on fresh simulated fleets (``tests/fleet/make_fleet.py``, local connection),
it times a first run and an idempotent re-run of:

* ``ours``:  ``ansible-playbook -i OUTDIR/inventory sne.guichet.rotate``;
* ``usual``: one play as a competent admin writes it without this collection:
  ``community.general.java_cert`` per certificate per keystore (add V5 and AC V5, remove V4 and
  AC V4 BY ALIAS), ``ansible.builtin.copy`` for the PEM bundle, the DER file, the hashed PEM folder
  and the trust anchors, ``ansible.builtin.file`` absent for the V4 files, ``replace`` for the
  configuration, ``find`` + ``command mv`` for stray copies, and ``openssl rehash``, the anchors'
  refresh script and the guichet's reload as handlers.

The usual play must be told the V4 aliases and file names: they are read on one reference host
(the first plain V4 host), as an admin would do. The fleet's ``odd_alias`` host keeps V4 under
an alias nobody wrote down, so the usual play MISSES it: that is reported as a correctness
difference, not hidden. Every run is verified with ``tests/fleet/check_fleet.py --expect
rotated --baseline`` (ours: every host; usual: every host but the odd-alias ones). The fleet's
``broken`` host (wrong JKS password in the inventory) must fail and stay byte-identical with
both approaches.

Usage (any Python >= 3.11; re-executes itself in the bench venv when ``cryptography`` is missing)::

    python3 benchmarks/fleet.py [--sizes 50,200] [--forks 10] [--quick] [--workdir .build/bench-fleet]

Same venv, collection link and ``ansible.cfg``-free environment as ``benchmarks/keystores.py``
(pipelining on). Exit status: 0 when both approaches produced the expected fleet (and ours
re-ran with changed=0 on every host), 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keystores as kb  # noqa: E402

ROOT = kb.ROOT
MAKE_PKI = ROOT / "tests" / "pki" / "make_pki.py"
MAKE_FLEET = ROOT / "tests" / "fleet" / "make_fleet.py"
CHECK_FLEET = ROOT / "tests" / "fleet" / "check_fleet.py"
QUICK_SIZES = (10, 30)
DEFAULT_SIZES = (50, 200)
APPROACHES = ("ours", "usual")
LABELS = {"ours": "ours: sne.guichet.rotate",
          "usual": "usual: java_cert+copy+file+replace+find"}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)")
MISSED = re.compile(r"^(\S+\.(jks|p12): v4 still there|V4 left in \S+\.(jks|p12) )")
RECAP_KEYS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
# Where the usual play puts the new certificates (the names the deploy role gives them too).
NEW_NAMES = {"leaf": "sne-chiffrement-v5", "ac": "sne-ac-v5"}

# Counts module executions per host (loop items count, skipped ones don't; tasks that only run
# on the controller don't); written next to the playbook runs, enabled by ANSIBLE_CALLBACKS_ENABLED.
TALLY_CALLBACK = '''\
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

CONTROLLER_ONLY = {"set_fact", "assert", "debug", "validate_argument_spec", "include_role",
                   "include_tasks", "import_role", "import_tasks", "meta", "fail", "add_host",
                   "group_by", "pause", "include_vars"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tally"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.runs = {}

    def _count(self, result):
        if result.task.action.rsplit(".", 1)[-1] in CONTROLLER_ONLY:
            return
        items = result.result.get("results")
        looped = result.task.loop is not None or result.task.loop_with
        n = sum(1 for i in items if not i.get("skipped")) if looped and isinstance(items, list) else 1
        name = result.host.get_name()
        self.runs[name] = self.runs.get(name, 0) + n

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_on_unreachable(self, result):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["BENCH_TALLY_FILE"], "w", encoding="utf-8") as fh:
            json.dump(self.runs, fh)
'''


def _usual_playbook() -> str:
    # Paths and passwords come from the fleet's inventory (sne_guichet_stores: path and type of
    # every store of the host, sne_guichet_config_files, sne_guichet_search_paths...), as an
    # admin's inventory would give them; what identifies V4 (aliases, file names) comes from
    # usual-vars.json, read on one reference host.
    return r"""---
# The fleet rotation V4 -> V5 as written without sne.guichet. java_cert finds entries by ALIAS
# and the files are named by hand: the V4 aliases and file names (usual_*) were read on ONE
# reference host; a host that holds V4 under another name keeps it.
- name: Rotate the SNE certificate the usual way
  hosts: guichets
  gather_facts: false
  vars:
    java_stores: "{{ sne_guichet_stores | selectattr('type', 'in', ['jks', 'pkcs12']) | list }}"
    pem_files: >-
      {{ sne_guichet_stores | selectattr('type', 'equalto', 'pem') | map(attribute='path') | list }}
    der_files: >-
      {{ sne_guichet_stores | selectattr('type', 'equalto', 'der') | map(attribute='path') | list }}
    pem_dirs: >-
      {{ sne_guichet_stores | selectattr('type', 'equalto', 'pem_dir') | map(attribute='path') | list }}
    anchors: "{{ sne_guichet_stores | selectattr('type', 'equalto', 'debian') | list }}"
  tasks:
    # Keystores first: a host whose keystore cannot be opened fails before any file is touched.
    - name: Keystores - add V5 and its authority (one java_cert per certificate per keystore)
      community.general.java_cert:
        keystore_path: "{{ item.0.path }}"
        keystore_type: "{{ item.0.type | upper }}"
        keystore_pass: "{{ item.0.password }}"
        cert_alias: "{{ item.1.alias }}"
        cert_content: "{{ lookup('ansible.builtin.file', item.1.pem) }}"
        state: present
      loop: "{{ java_stores | product(usual_new_certs) | list }}"
      loop_control:
        label: "{{ item.0.path | basename }} {{ item.1.alias }}"
      notify: Reload the guichet

    - name: Keystores - remove V4 and its authority, by alias
      community.general.java_cert:
        keystore_path: "{{ item.0.path }}"
        keystore_type: "{{ item.0.type | upper }}"
        keystore_pass: "{{ item.0.password }}"
        cert_alias: "{{ item.1 }}"
        state: absent
      loop: "{{ java_stores | product(usual_v4_aliases) | list }}"
      loop_control:
        label: "{{ item.0.path | basename }} {{ item.1 }}"
      notify: Reload the guichet

    - name: PEM bundle - the V5 bundle (comment line and partner authority kept)
      ansible.builtin.copy:
        src: "{{ usual_bundle_src }}"
        dest: "{{ item }}"
        mode: "0644"
      loop: "{{ pem_files }}"
      notify: Reload the guichet

    - name: DER certificate - V5
      ansible.builtin.copy:
        src: "{{ usual_der_src }}"
        dest: "{{ item }}"
        mode: "0644"
      loop: "{{ der_files }}"
      notify: Reload the guichet

    - name: PEM folder - copy V5 and its authority
      ansible.builtin.copy:
        src: "{{ item.1.pem }}"
        dest: "{{ item.0 }}/{{ item.1.alias }}.pem"
        mode: "0644"
      loop: "{{ pem_dirs | product(usual_new_certs) | list }}"
      loop_control:
        label: "{{ item.1.alias }}"
      notify: Rehash the PEM folder

    - name: PEM folder - remove V4 and its authority, by file name
      ansible.builtin.file:
        path: "{{ item.0 }}/{{ item.1 }}"
        state: absent
      loop: "{{ pem_dirs | product(usual_pem_dir_v4_files) | list }}"
      notify: Rehash the PEM folder

    - name: Trust anchors - copy AC V5
      ansible.builtin.copy:
        src: "{{ usual_anchor.pem }}"
        dest: "{{ item.path }}/{{ usual_anchor.file }}"
        mode: "0644"
      loop: "{{ anchors }}"
      loop_control:
        label: "{{ item.path }}"
      notify: Refresh the trust anchors

    - name: Trust anchors - remove AC V4, by file name
      ansible.builtin.file:
        path: "{{ item.0.path }}/{{ item.1 }}"
        state: absent
      loop: "{{ anchors | product(usual_anchors_v4_files) | list }}"
      loop_control:
        label: "{{ item.1 }}"
      notify: Refresh the trust anchors

    - name: Configuration - point at V5
      ansible.builtin.replace:
        path: "{{ item.path }}"
        regexp: "{{ item.regexp }}"
        replace: "{{ item.replace }}"
      loop: "{{ sne_guichet_config_files }}"
      loop_control:
        label: "{{ item.path | basename }} {{ item.regexp }}"
      notify: Reload the guichet

    - name: Stray copies - look for V4 files by name
      ansible.builtin.find:
        paths: "{{ sne_guichet_search_paths }}"
        patterns: "{{ usual_stray_patterns }}"
        file_type: file
        recurse: true
      register: usual_strays

    - name: Stray copies - make their quarantine folders
      ansible.builtin.file:
        path: "{{ (sne_guichet_quarantine_dir ~ item.path) | dirname }}"
        state: directory
        mode: "0700"
      loop: "{{ usual_strays.files }}"
      loop_control:
        label: "{{ item.path }}"

    - name: Stray copies - move them into quarantine (under their original path)
      ansible.builtin.command:
        argv: [mv, --no-clobber, --, "{{ item.path }}", "{{ sne_guichet_quarantine_dir }}{{ item.path }}"]
        removes: "{{ item.path }}"
      loop: "{{ usual_strays.files }}"
      loop_control:
        label: "{{ item.path }}"

  handlers:
    - name: Rehash the PEM folder
      ansible.builtin.command:
        argv: [openssl, rehash, "{{ item }}"]
      loop: "{{ pem_dirs }}"
      changed_when: true

    - name: Refresh the trust anchors
      ansible.builtin.command:
        argv: ["{{ item.refresh | default('update-ca-certificates') }}"]
      loop: "{{ anchors }}"
      loop_control:
        label: "{{ item.path }}"
      changed_when: true

    - name: Reload the guichet
      ansible.builtin.command:
        argv: "{{ item }}"
      loop: "{{ sne_guichet_reload_commands }}"
      changed_when: true
"""


# --------------------------------------------------------------------------------------------
# Fleet and what the usual play must be told
# --------------------------------------------------------------------------------------------

def build_fleet(outdir: Path, hosts: int, pki: Path) -> Dict[str, Any]:
    kb.run([sys.executable, str(MAKE_FLEET), str(outdir), "--hosts", str(hosts), "--pki", str(pki),
            "--python", str(kb.VENV_PY)])
    return json.loads((outdir / "fleet.json").read_text())


def _cert_names(folder: Path, wanted: Set[str]) -> List[str]:
    """Regular files of ``folder`` holding a certificate whose SHA-256 is in ``wanted``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    names = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or not p.is_file():
            continue
        for c in x509.load_pem_x509_certificates(p.read_bytes()):
            if kb.colon_sha256(c.public_bytes(serialization.Encoding.DER)) in wanted:
                names.append(p.name)
                break
    return names


def usual_inputs(fleet: Dict[str, Any], outdir: Path) -> Dict[str, Any]:
    """The usual play's extra vars, read on one reference host as an admin would."""
    manifest = json.loads((Path(fleet["pki"]) / "manifest.json").read_text())["certificates"]
    fps = {ident: fp.upper() for ident, fp in fleet["fingerprints"].items()}
    v4 = {fps["chiffrement-v4"], fps["ac-v4"]}
    ref = next(h for h in fleet["hosts"].values() if h["kind"] == "v4" and h["has_p12"])
    stores = {s["type"]: s for s in ref["stores"]}
    aliases: Set[str] = set()
    for kind in ("jks", "pkcs12"):
        entries = kb.java_entries(Path(stores[kind]["path"]), kind.upper(), stores[kind]["password"])
        aliases.update(e["alias"] for e in entries if e["sha256"] in v4)

    # sne.pem as the reference host has it, V4 blocks replaced by V5 ones: the file to copy.
    def pem(ident: str) -> str:
        return ssl.DER_cert_to_PEM_cert((Path(fleet["pki"]) / manifest[ident]["der"]).read_bytes())

    bundle = Path(stores["pem"]["path"]).read_text()
    for old, new in (("chiffrement-v4", "chiffrement-v5"), ("ac-v4", "ac-v5")):
        if pem(old) not in bundle:
            raise SystemExit("reference %s: no %s block to replace" % (stores["pem"]["path"], old))
        bundle = bundle.replace(pem(old), pem(new))
    bundle_src = outdir / "usual-files" / "sne.pem"
    bundle_src.parent.mkdir(parents=True, exist_ok=True)
    bundle_src.write_text(bundle)

    pki = Path(fleet["pki"])
    leaf_pem, ac_pem = (str(pki / manifest[i]["path"]) for i in ("chiffrement-v5", "ac-v5"))
    return {
        "usual_new_certs": [{"alias": NEW_NAMES["leaf"], "pem": leaf_pem},
                            {"alias": NEW_NAMES["ac"], "pem": ac_pem}],
        "usual_v4_aliases": sorted(aliases),
        "usual_bundle_src": str(bundle_src),
        "usual_der_src": str(pki / manifest["chiffrement-v5"]["der"]),
        "usual_pem_dir_v4_files": _cert_names(Path(stores["pem_dir"]["path"]), v4),
        "usual_anchor": {"pem": ac_pem, "file": NEW_NAMES["ac"] + ".crt"},
        "usual_anchors_v4_files": _cert_names(Path(stores["debian"]["path"]), v4),
        "usual_stray_patterns": ["*V4*", "*v4*"],
    }


# --------------------------------------------------------------------------------------------
# Runs and checks
# --------------------------------------------------------------------------------------------

@dataclass
class PlayRun:
    seconds: float
    rc: int
    recap: Dict[str, Dict[str, int]]       # PLAY RECAP, per host
    runs: Dict[str, int]                   # module executions per host (callback)
    log: Path


@dataclass
class Check:
    rc: int
    failing: Dict[str, List[str]]          # host -> problems (check_fleet --json)
    log: Path


@dataclass
class Result:
    first: PlayRun
    rerun: PlayRun
    checks: List[Check]
    problems: List[str] = field(default_factory=list)
    missed: Dict[str, List[str]] = field(default_factory=dict)   # usual: odd-alias hosts left with V4


def parse_recap(text: str) -> Dict[str, Dict[str, int]]:
    recap: Dict[str, Dict[str, int]] = {}
    lines = text.split("PLAY RECAP", 1)[1].splitlines() if "PLAY RECAP" in text else []
    for line in lines:
        m = RECAP.match(line)
        if m:
            recap[m.group(1)] = dict(zip(RECAP_KEYS, map(int, m.groups()[1:])))
    return recap


def play(work: Path, env: Dict[str, str], inventory: Path, playbook: str, forks: int,
         log: Path, extra: Sequence[str] = ()) -> PlayRun:
    tally = log.with_suffix(".runs.json")
    cmd = [str(kb.ANSIBLE_PLAYBOOK), "-i", str(inventory), playbook, "--forks", str(forks), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, check=False,
                          env=dict(env, BENCH_TALLY_FILE=str(tally)))
    seconds = time.perf_counter() - start
    log.write_text(proc.stdout + proc.stderr)
    runs = json.loads(tally.read_text()) if tally.exists() else {}
    return PlayRun(seconds, proc.returncode, parse_recap(proc.stdout), runs, log)


def check_fleet(outdir: Path, snap: Path, log: Path) -> Check:
    out = log.with_suffix(".json")
    proc = kb.run([sys.executable, str(CHECK_FLEET), str(outdir), "--expect", "rotated",
                   "--baseline", str(snap), "--json", str(out)], check=False)
    log.write_text(proc.stdout + proc.stderr)
    if not out.exists():
        return Check(proc.returncode, {"?": ["check_fleet gave no JSON: " + proc.stderr[-500:]]}, log)
    results = json.loads(out.read_text())["results"]
    return Check(proc.returncode, {r["host"]: r["problems"] for r in results if not r["ok"]}, log)


def judge(approach: str, fleet: Dict[str, Any], res: Result) -> None:
    """Fill res.problems (unexpected outcomes) and res.missed (the usual play's known miss)."""
    kinds = {name: h["kind"] for name, h in fleet["hosts"].items()}
    odd = {n for n, k in kinds.items() if k == "odd_alias"}
    for phase, run in (("first", res.first), ("re-run", res.rerun)):
        if set(kinds) - set(run.recap):
            res.problems.append("%s: hosts missing from the PLAY RECAP (rc %d, see %s)"
                                % (phase, run.rc, run.log))
            continue
        for name, kind in sorted(kinds.items()):
            r = run.recap[name]
            if kind == "broken":
                if not r["failed"]:
                    res.problems.append("%s: broken host %s did not fail" % (phase, name))
            elif r["failed"] or r["unreachable"]:
                res.problems.append("%s: %s failed (see %s)" % (phase, name, run.log))
        if approach == "ours" and phase == "re-run":
            changed = sorted(n for n, r in run.recap.items() if r["changed"])
            if changed:
                res.problems.append("re-run: changed>0 on %s" % ", ".join(changed))
    allowed = odd if approach == "usual" else set()
    for phase, chk in zip(("first", "re-run"), res.checks):
        for name, probs in sorted(chk.failing.items()):
            # The expected miss: V4 left in a keystore (under the alias the play wasn't told).
            if name in allowed and all(MISSED.search(p) for p in probs):
                res.missed[name] = probs
            else:
                res.problems.append("check_fleet after %s: %s: %s" % (phase, name, "; ".join(probs[:3])))


def run_approach(approach: str, n: int, work: Path, pki: Path, env: Dict[str, str], forks: int,
                 usual_book: Path) -> Result:
    base = work / ("n%d" % n) / approach
    outdir = base / "fleet"
    t0 = time.perf_counter()
    fleet = build_fleet(outdir, n, pki)
    snap = base / "baseline.json"
    kb.run([sys.executable, str(CHECK_FLEET), str(outdir), "--snapshot", str(snap)])
    extra: List[str] = []
    book = "sne.guichet.rotate"
    if approach == "usual":
        (base / "usual-vars.json").write_text(json.dumps(usual_inputs(fleet, base), indent=1))
        extra, book = ["-e", "@" + str(base / "usual-vars.json")], str(usual_book)
    print("bench: N=%d %-5s fleet built in %.1f s" % (n, approach, time.perf_counter() - t0), flush=True)
    inventory = outdir / "inventory"
    runs, checks = [], []
    for phase in ("first", "rerun"):
        r = play(work, env, inventory, book, forks, base / ("%s.log" % phase), extra)
        c = check_fleet(outdir, snap, base / ("check-%s.log" % phase))
        runs.append(r)
        checks.append(c)
        guichets = [h for h in r.recap if h in fleet["hosts"]]
        print("bench: N=%d %-5s %-5s %7.1f s  rc %d, changed on %d/%d hosts, check_fleet: %d mismatch"
              % (n, approach, phase, r.seconds, r.rc, sum(1 for h in guichets if r.recap[h]["changed"]),
                 len(fleet["hosts"]), len(c.failing)), flush=True)
    res = Result(runs[0], runs[1], checks)
    judge(approach, fleet, res)
    return res


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def per_host(run: PlayRun, hosts: Sequence[str], what: str) -> float:
    if what == "runs":
        return statistics.mean(run.runs.get(h, 0) for h in hosts)
    tasks = [run.recap[h]["ok"] + run.recap[h]["failed"] for h in hosts if h in run.recap]
    return statistics.mean(tasks or [0])


def pair(res: Result, hosts: Sequence[str], what: str) -> str:
    return "%.1f / %.1f" % (per_host(res.first, hosts, what), per_host(res.rerun, hosts, what))


def parse_sizes(text: str) -> List[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated host counts, e.g. 50,200")
    if not sizes or min(sizes) < 5:
        raise argparse.ArgumentTypeError("at least 5 hosts per fleet (every kind of host)")
    return sizes


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                    help="fleet sizes, comma-separated (default 50,200)")
    ap.add_argument("--quick", action="store_true", help="smoke run: --sizes 10,30")
    ap.add_argument("--forks", type=int, default=10,
                    help="ansible-playbook --forks, the same for both approaches (default 10)")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".build" / "bench-fleet",
                    help="scratch folder, emptied first (default .build/bench-fleet)")
    args = ap.parse_args(argv)
    if args.forks < 1:
        ap.error("--forks must be >= 1")
    sizes = list(QUICK_SIZES) if args.quick else args.sizes

    kb.ensure_bench_venv()
    if importlib.util.find_spec("cryptography") is None:     # the bench venv has it (ansible-core)
        os.execv(str(kb.VENV_PY), [str(kb.VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
    kb.ensure_collection_link()
    for tool in ("keytool", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit("%s is needed (scripts/bootstrap.sh installs it)" % tool)
    print("bench: " + kb.bench_versions(), flush=True)

    work: Path = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    pki = work / "pki"
    kb.run([sys.executable, str(MAKE_PKI), str(pki)])
    env = kb.ansible_env(work)
    callbacks = work / "callback_plugins"
    callbacks.mkdir()
    (callbacks / "bench_tally.py").write_text(TALLY_CALLBACK)
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_PLUGINS=str(callbacks),
               ANSIBLE_CALLBACKS_ENABLED="bench_tally", ANSIBLE_HOST_KEY_CHECKING="False")
    usual_book = work / "usual.yml"
    usual_book.write_text(_usual_playbook())

    results: Dict[int, Dict[str, Result]] = {}
    hosts_of: Dict[int, List[str]] = {}
    for i, n in enumerate(sizes):
        order = APPROACHES if i % 2 == 0 else tuple(reversed(APPROACHES))
        results[n] = {a: run_approach(a, n, work, pki, env, args.forks, usual_book) for a in order}
        hosts_of[n] = sorted(json.loads((work / ("n%d" % n) / "ours" / "fleet" / "fleet.json")
                                        .read_text())["hosts"])

    print()
    print("Fleet rotation V4 -> V5, local connection, pipelining, --forks %d, fresh fleets, one run each"
          % args.forks)
    row = "%5s  %-40s %8s %9s %18s %14s  %s"
    print(row % ("N", "approach", "first s", "re-run s", "module runs/host", "tasks/host", "verified"))
    failures: List[str] = []
    for n in sizes:
        hosts = hosts_of[n]
        for a in APPROACHES:
            r = results[n][a]
            failures += ["N=%d %s: %s" % (n, a, p) for p in r.problems]
            verdict = "ok" if not r.missed else "%d host missed" % len(r.missed)
            print(row % (n, LABELS[a], "%.1f" % r.first.seconds, "%.1f" % r.rerun.seconds,
                         pair(r, hosts, "runs"), pair(r, hosts, "tasks"),
                         "PROBLEM" if r.problems else verdict))
        o, u = results[n]["ours"], results[n]["usual"]
        print(row % ("", "ratio usual / ours", "%.1fx" % (u.first.seconds / o.first.seconds),
                     "%.1fx" % (u.rerun.seconds / o.rerun.seconds),
                     "%.1fx / %.1fx" % (per_host(u.first, hosts, "runs") / per_host(o.first, hosts, "runs"),
                                        per_host(u.rerun, hosts, "runs") / per_host(o.rerun, hosts, "runs")),
                     "", ""))
    print("(module runs/host: module executions on each managed host, loop items counted, controller-only")
    print(" tasks not; tasks/host: PLAY RECAP ok+failed (ok includes changed); first run / re-run, mean")
    print(" over all hosts; re-run of ours: changed=0 on every host of the PLAY RECAP)")
    print("verified: check_fleet.py --expect rotated --baseline after each run (the broken host must fail")
    print(" and stay byte-identical with both approaches; ours must pass on every other host)")
    for n in sizes:
        rerun_changed = sorted(h for h, r in results[n]["usual"].rerun.recap.items() if r["changed"])
        if rerun_changed:
            print("N=%d usual re-run: changed>0 on %s" % (n, ", ".join(rerun_changed)))
        for name, probs in sorted(results[n]["usual"].missed.items()):
            print("N=%d usual MISSED %s (V4 under an alias the usual play was not told): %s"
                  % (n, name, "; ".join(probs)))
    print("verified after every run: %s" % ("OK" if not failures else "%d PROBLEMS" % len(failures)))
    for f in failures:
        print("  " + f, file=sys.stderr)
    print("total %.0f s; work folder %s" % (time.perf_counter() - t0, work))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
