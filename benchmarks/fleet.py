"""Benchmark: the fleet rotation ``sne.guichet.rotate`` against its floor and the usual playbook.

For each fleet size N (default 50, 200 and 1,000), on fresh simulated fleets
(``tests/fleet/make_fleet.py``, local connection, pipelining, the same ``--forks``), in one run:

* the **floor**: ``ansible -m ansible.builtin.ping`` on the same hosts (one module run each);
* ``ours``, asynchronous check **on** (the SNE simulator over HTTP, returning after ``--delay``
  seconds): ``rotate.yml`` first run and re-run, then ``audit.yml`` on the rotated fleet;
* for N <= ``--usual-up-to`` (200): ``ours`` with the check **off** (first run, re-run) and
  ``usual``, one play as a competent admin writes it without this collection
  (``fleet_files/usual-rotate.yml``: ``community.general.java_cert`` per certificate per
  keystore BY ALIAS, ``copy``, ``file``, ``replace``, ``find`` + ``command mv``, handlers);
* for ``--usual-up-to`` < N <= ``--check-off-up-to``: ``ours`` with the check off alone (no
  usual play).

The usual play must be told the V4 aliases and file names: they are read on one reference host
(the first plain V4 host), as an admin would do. The fleet's ``odd_alias`` host keeps V4 under
an alias nobody wrote down, so the usual play MISSES it: that is reported as a correctness
difference, not hidden. Every rotation is verified with ``tests/fleet/check_fleet.py --expect
rotated --baseline`` (ours: every host; usual: every host but the odd-alias ones); with the
check on, the fleet report must say ``passed`` for every host but the ``broken`` one, which
must fail and stay byte-identical with both approaches. Ours must re-run with changed=0.

Printed per run: wall time, multiple of the floor, module runs per host (counted by the
callback ``fleet_files/callback_plugins/bench_tally.py``), tasks per host (the PLAY RECAP's
ok + skipped + failed), the issue's target (1.5 x floor x the budget of module runs: rotate 3
(4 awaiting on the hosts), 2 with the check off, audit 2; re-runs 1.2 x; + the SNE delay once
per batch), the controller's peak RSS and the highest load average seen during the run.

Usage (any Python >= 3.11; re-executes itself in the bench venv when ``cryptography`` is missing)::

    python3 benchmarks/fleet.py [--sizes 50,200,1000] [--forks 10] [--delay 5] [--usual-up-to 200]
                                [--check-off-up-to N] [--quick] [--workdir .build/bench-fleet]

Same venv, collection link and ``ansible.cfg``-free environment as ``benchmarks/keystores.py``.
Exit status: 0 when every run produced the expected fleet, 1 otherwise (a missed target is
printed, not an error: timings depend on the machine).
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keystores as kb  # noqa: E402

ROOT = kb.ROOT
MAKE_PKI = ROOT / "roles" / "simulate" / "files" / "make_pki.py"
TEST_KEYS = ROOT / "tests" / "pki" / "keys"
MAKE_FLEET = ROOT / "tests" / "fleet" / "make_fleet.py"
CHECK_FLEET = ROOT / "tests" / "fleet" / "check_fleet.py"
SIMULATOR = ROOT / "roles" / "simulate" / "files" / "sne_simulator"
GENERATION = "V5"
QUICK_SIZES = (10, 30)
DEFAULT_SIZES = (50, 200, 1000)
LABELS = {"ours-on": "ours: rotate.yml, check on, await on controller",
          "ours-on-host": "ours: rotate.yml, check on, await on hosts",
          "ours-off": "ours: rotate.yml, asynchronous check off",
          "usual": "usual: java_cert+copy+file+replace+find",
          "audit": "ours: audit.yml (after the rotation)"}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)")
MISSED = re.compile(r"^(\S+\.(jks|p12): v4 still there|V4 left in \S+\.(jks|p12) )")
RECAP_KEYS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
# Where the usual play puts the new certificates (the names the deploy role gives them too).
NEW_NAMES = {"leaf": "sne-chiffrement-v5", "ac": "sne-ac-v5"}

FILES = Path(__file__).resolve().parent / "fleet_files"
USUAL_BOOK = FILES / "usual-rotate.yml"     # the rotation as written without this collection
CALLBACKS = FILES / "callback_plugins"      # bench_tally: module executions per host


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
    peak_mib: float = 0.0                  # largest controller process (ru_maxrss of the children)
    load: float = 0.0                      # highest 1-min load average seen during the run


@dataclass
class Check:
    rc: int
    failing: Dict[str, List[str]]          # host -> problems (check_fleet --json)
    log: Path


@dataclass
class Result:
    tag: str                               # ours-on, ours-off, usual, audit
    label: str
    runs: List[PlayRun]                    # first run, re-run (audit: one run)
    checks: List[Check]
    async_on: bool = False
    audit: Optional[Result] = None       # ours: the audit of the rotated fleet
    floor: Optional[PlayRun] = None        # the floor, measured on this fleet before its first run
    problems: List[str] = field(default_factory=list)
    missed: Dict[str, List[str]] = field(default_factory=dict)   # usual: odd-alias hosts left with V4


# Run one command, report its wall time, the peak RSS of its largest process and the load.
_MEASURE = r"""
import json, os, resource, subprocess, sys, threading, time
out, cmd = sys.argv[1], sys.argv[2:]
loads, done = [os.getloadavg()[0]], threading.Event()
def sample():
    while not done.wait(2.0):
        loads.append(os.getloadavg()[0])
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
rc = subprocess.call(cmd)
seconds = time.perf_counter() - start
done.set()
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
json.dump({"rc": rc, "seconds": seconds, "peak_mib": peak, "load": max(loads)}, open(out, "w"))
"""


def parse_recap(text: str) -> Dict[str, Dict[str, int]]:
    recap: Dict[str, Dict[str, int]] = {}
    lines = text.split("PLAY RECAP", 1)[1].splitlines() if "PLAY RECAP" in text else []
    for line in lines:
        m = RECAP.match(line)
        if m:
            recap[m.group(1)] = dict(zip(RECAP_KEYS, map(int, m.groups()[1:])))
    return recap


def measured(cmd: Sequence[str], env: Dict[str, str], cwd: Path, log: Path) -> Dict[str, Any]:
    figures = log.with_suffix(".measure.json")
    with open(log, "w", encoding="utf-8") as out:
        subprocess.run([sys.executable, "-c", _MEASURE, str(figures), *cmd], stdout=out,
                       stderr=subprocess.STDOUT, cwd=cwd, env=env, check=False)
    return json.loads(figures.read_text())


def play(work: Path, env: Dict[str, str], inventory: Path, playbook: str, forks: int,
         log: Path, extra: Sequence[str] = ()) -> PlayRun:
    tally = log.with_suffix(".runs.json")
    cmd = [str(kb.ANSIBLE_PLAYBOOK), "-i", str(inventory), playbook, "--forks", str(forks), *extra]
    m = measured(cmd, dict(env, BENCH_TALLY_FILE=str(tally)), work, log)
    runs = json.loads(tally.read_text()) if tally.exists() else {}
    return PlayRun(m["seconds"], m["rc"], parse_recap(log.read_text()), runs, log, m["peak_mib"], m["load"])


def ping_command(inventory: Path, forks: int) -> List[str]:
    """``ansible -m ping`` of the fleet's guichets: the floor's command."""
    return [str(kb.ANSIBLE_PLAYBOOK.with_name("ansible")), "-i", str(inventory), "guichets",
            "-m", "ansible.builtin.ping", "--forks", str(forks)]


def floor(work: Path, env: Dict[str, str], inventory: Path, forks: int, log: Path) -> PlayRun:
    """``ansible -m ping`` of the same hosts, same forks and settings: the cost of one module run."""
    m = measured(ping_command(inventory, forks), dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.oneline"),
                 work, log)
    ok = {line.split(" | ", 1)[0]: 1 for line in log.read_text().splitlines() if " | SUCCESS" in line}
    return PlayRun(m["seconds"], m["rc"], {}, ok, log, m["peak_mib"], m["load"])


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
    for phase, run in zip(("first", "re-run"), res.runs):
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


def judge_probe(fleet: Dict[str, Any], res: Result, report_dir: Path) -> None:
    """With the asynchronous check on: every host but the broken one passed it (report.json)."""
    path = report_dir / GENERATION / "report.json"
    try:
        hosts = {h["host"]: h for h in json.loads(path.read_text())["hosts"]}
    except (OSError, ValueError, KeyError) as exc:
        res.problems.append("no fleet report %s: %s" % (path, exc))
        return
    for name, h in sorted(fleet["hosts"].items()):
        status = (hosts.get(name) or {}).get("probe", {}).get("status")
        if h["kind"] != "broken" and status != "passed":
            res.problems.append("asynchronous check of %s: %s, not passed" % (name, status))


def fresh_fleet(base: Path, n: int, pki: Path) -> Tuple[Dict[str, Any], Path, Path]:
    outdir = base / "fleet"
    fleet = build_fleet(outdir, n, pki)
    snap = base / "baseline.json"
    kb.run([sys.executable, str(CHECK_FLEET), str(outdir), "--snapshot", str(snap)])
    return fleet, outdir, snap


def async_vars(inventory: Path, url: Optional[str], timeout: float, await_from: str = "controller") -> None:
    """The asynchronous check's settings, as the integration test writes them (None: off)."""
    path = inventory / "group_vars" / "all" / "sne_async.yml"
    if url is None:
        path.write_text("---\nsne_async_check_enabled: false\n")
        return
    path.write_text("---\nsne_async_check_enabled: true\nsne_guichet_async_transport: http\n"
                    "sne_guichet_async_http: {url: \"%s\"}\n"
                    "sne_guichet_async_certificate: {path: \"{{ sne_guichet_root }}/opt/guichet/conf/"
                    "Chiffrement_SNE{{ sne_generation }}.cer\", type: der}\n"
                    "async_check_timeout: %s\nasync_check_poll_interval: 0.5\n"
                    "sne_async_check_await_from: %s\n" % (url, timeout, await_from))


def run_rotation(approach: str, n: int, work: Path, pki: Path, env: Dict[str, str], forks: int,
                 url: Optional[str], delay: float, with_floor: bool = False, rerun: bool = True,
                 await_from: str = "controller") -> Result:
    """A first run and a re-run on a fresh fleet; ``url``: the asynchronous check on, to the SNE
    there, its returns awaited ``await_from`` the controller (one run per batch) or the hosts."""
    check = "off" if not url else "on" if await_from == "controller" else "on-host"
    tag = approach if approach == "usual" else "ours-" + check
    base = work / ("n%d" % n) / tag
    t0 = time.perf_counter()
    fleet, outdir, snap = fresh_fleet(base, n, pki)
    extra: List[str] = ["-e", "sne_report_dir=" + str(base / "reports")]
    book = "sne.guichet.rotate"
    if approach == "usual":
        (base / "usual-vars.json").write_text(json.dumps(usual_inputs(fleet, base), indent=1))
        extra, book = ["-e", "@" + str(base / "usual-vars.json")], str(USUAL_BOOK)
    else:
        async_vars(outdir / "inventory", url, max(60.0, 4 * delay), await_from)
    print("bench: N=%d %-8s fleet built in %.1f s" % (n, tag, time.perf_counter() - t0), flush=True)
    res = Result(tag, LABELS[tag], [], [], async_on=bool(url))
    if with_floor:  # on this fleet before any run: the same hosts, the same settings
        res.floor = floor(work, env, outdir / "inventory", forks, work / ("n%d" % n) / "floor.log")
        print("bench: N=%d floor %.1f s (ping, %d hosts answered)"
              % (n, res.floor.seconds, len(res.floor.runs)), flush=True)
    for phase in ("first", "rerun") if rerun else ("first",):
        r = play(work, env, outdir / "inventory", book, forks, base / ("%s.log" % phase), extra)
        c = check_fleet(outdir, snap, base / ("check-%s.log" % phase))
        res.runs.append(r)
        res.checks.append(c)
        if url and approach == "ours":
            judge_probe(fleet, res, base / "reports")
        guichets = [h for h in r.recap if h in fleet["hosts"]]
        print("bench: N=%d %-8s %-5s %7.1f s  rc %d, changed on %d/%d hosts, check_fleet: %d mismatch, "
              "%.1f runs/host" % (n, tag, phase, r.seconds, r.rc,
                                  sum(1 for h in guichets if r.recap[h]["changed"]), len(fleet["hosts"]),
                                  len(c.failing), per_host(r, sorted(fleet["hosts"]))), flush=True)
    judge(approach, fleet, res)
    if approach == "ours" and url and await_from == "controller":   # audit the rotated fleet, once per size
        r = play(work, env, outdir / "inventory", "sne.guichet.audit", forks, base / "audit.log",
                 ["-e", "sne_report_dir=" + str(base / "reports")])
        audit = Result("audit", LABELS["audit"], [r], [])
        missing = set(fleet["hosts"]) - set(r.recap)
        if missing or r.rc not in (0, 2):
            audit.problems.append("audit: rc %d, %d hosts missing from the PLAY RECAP (see %s)"
                                  % (r.rc, len(missing), r.log))
        if any(x["changed"] for x in r.recap.values()):
            audit.problems.append("audit changed something (see %s)" % r.log)
        print("bench: N=%d %-8s audit %7.1f s  rc %d, %.1f runs/host" % (
            n, tag, r.seconds, r.rc, per_host(r, sorted(fleet["hosts"]))), flush=True)
        res.audit = audit
    return res


# --------------------------------------------------------------------------------------------
# The SNE simulator (asynchronous check on)
# --------------------------------------------------------------------------------------------

def start_simulator(work: Path, pki: Path, delay: float) -> str:
    state = work / "sne"
    config = work / "sne.json"
    config.write_text(json.dumps({
        "current": {"generation": "V5", "certificate": str(pki / "chiffrement-v5.pem"),
                    "key": str(pki / "chiffrement-v5.key")},
        "revoked": [{"generation": "V4", "certificate": str(pki / "chiffrement-v4.pem"),
                     "key": str(pki / "chiffrement-v4.key")}],
        "delay_seconds": delay, "transports": {"http": {"port": 0}}}))
    kb.run([sys.executable, str(SIMULATOR), "start", "--config", str(config), "--state-dir", str(state),
            "--lifetime", str(6 * 3600)])
    return json.loads((state / "simulator.json").read_text())["http"]["url"]


def stop_simulator(work: Path) -> None:
    kb.run([sys.executable, str(SIMULATOR), "stop", "--state-dir", str(work / "sne")], check=False)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def prepare(work: Path, script: Path) -> Path:
    """What every fleet benchmark does first: run in the bench venv (``script`` re-executed there
    when cryptography is missing), the collection linked, the tools there, the versions and the
    load printed, ``work`` emptied, the test PKI made in it; returns the PKI's folder."""
    kb.ensure_bench_venv()
    if importlib.util.find_spec("cryptography") is None:     # the bench venv has it (ansible-core)
        os.execv(str(kb.VENV_PY), [str(kb.VENV_PY), str(script.resolve()), *sys.argv[1:]])
    kb.ensure_collection_link()
    for tool in ("keytool", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit("%s is needed (scripts/bootstrap.sh installs it)" % tool)
    print("bench: " + kb.bench_versions(), flush=True)
    print("bench: %d cores, load average %s" % (os.cpu_count() or 0,
                                                " ".join("%.1f" % x for x in os.getloadavg())), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pki = work / "pki"
    kb.run([sys.executable, str(MAKE_PKI), str(pki), "--keys", str(TEST_KEYS)])
    return pki


def per_host(run: PlayRun, hosts: Sequence[str], what: str = "runs") -> float:
    if what == "runs":
        return statistics.mean(run.runs.get(h, 0) for h in hosts)
    # tasks: every task result of the host in the PLAY RECAP, skipped ones included (each costs
    # the controller a worker and the host's variables, module run or not)
    tasks = [sum(run.recap[h][k] for k in ("ok", "failed", "skipped", "ignored")) for h in hosts
             if h in run.recap]
    return statistics.mean(tasks or [0])


# The budget: module runs per host allowed, and the multiple of the floor per module run
# (first run and audit 1.5, re-run 1.2): rotate 3 runs (keystores, retire, send; the batch's
# returns awaited by one run on the controller), 4 with the split probe awaited on the hosts,
# 2 with the check off, audit 2.
BUDGET = {"ours-on": 3, "ours-on-host": 4, "ours-off": 2, "audit": 2}
FACTOR = {"first run": 1.5, "re-run": 1.2, "": 1.5}


def target(res: Result, phase: str, base: PlayRun, batches: int, delay: float) -> float:
    """Seconds the run may take: factor x floor x the budget of module runs per host, + the SNE's
    delay once per batch with the asynchronous check on."""
    return (FACTOR[phase] * base.seconds * BUDGET[res.tag]
            + (delay * batches if res.async_on else 0.0))


def parse_sizes(text: str) -> List[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated host counts, e.g. 50,200")
    if not sizes or min(sizes) < 5:
        raise argparse.ArgumentTypeError("at least 5 hosts per fleet (every kind of host)")
    return sizes


ROW = "%5s  %-64s %7s %7s %10s %7s %10s %7s %5s  %s"


def table_row(n: int, res: Result, phase: str, run: PlayRun, base: PlayRun, hosts: Sequence[str],
              delay: float, verdict: str) -> str:
    runs, goal, within = per_host(run, hosts), "", ""
    if res.tag in BUDGET:
        seconds = target(res, phase, base, 1, delay)
        goal = "%.0f %s" % (seconds, "<=" if run.seconds <= seconds else "MISS")
        within = " <=" if runs <= BUDGET[res.tag] + 0.05 else " MISS"
    return ROW % (n, "%s, %s" % (res.label, phase) if phase else res.label, "%.1f" % run.seconds,
                  "%.1f" % (run.seconds / base.seconds), "%.2f%s" % (runs, within),
                  "%.1f" % per_host(run, hosts, "tasks"), goal,
                  "%.0f" % run.peak_mib, "%.1f" % run.load, verdict)


def print_table(sizes: List[int], floors: Dict[int, PlayRun], floors_after: Dict[int, PlayRun],
                results: Dict[int, List[Result]], hosts_of: Dict[int, List[str]], forks: int,
                delay: float) -> List[str]:
    failures: List[str] = []
    print()
    print("Fleet rotation V4 -> V5, local connection, pipelining, --forks %d, fresh fleets, one run each;"
          % forks)
    print("asynchronous check on: SNE simulator over HTTP, returns after %g s" % delay)
    print(ROW % ("N", "run", "wall s", "x floor", "runs/h", "tasks/h", "target s", "peakMiB", "load",
                 "verified"))
    for n in sizes:
        hosts = hosts_of[n]
        pair = [floors[n]] + ([floors_after[n]] if n in floors_after else [])
        base = replace(floors[n], seconds=statistics.mean(f.seconds for f in pair))
        for when, one in zip(("before the runs", "after the runs"), pair):
            print(ROW % (n, "floor: ansible -m ping, " + when, "%.1f" % one.seconds,
                         "%.2f" % (one.seconds / base.seconds), "%.2f" % per_host(one, hosts), "1.0", "",
                         "%.0f" % one.peak_mib, "%.1f" % one.load, "ok" if one.rc == 0 else "rc %d" % one.rc))
        for res in results[n]:
            failures += ["N=%d %s: %s" % (n, res.label, p) for p in res.problems]
            verdict = ("PROBLEM" if res.problems else
                       "ok" if not res.missed else "%d host missed" % len(res.missed))
            for phase, run in zip(("first run", "re-run"), res.runs):
                print(table_row(n, res, phase, run, base, hosts, delay, verdict))
            if res.audit is not None:
                failures += ["N=%d %s: %s" % (n, res.audit.label, p) for p in res.audit.problems]
                print(table_row(n, res.audit, "", res.audit.runs[0], base, hosts, delay,
                                "PROBLEM" if res.audit.problems else "ok"))
        by = {r.tag: r for r in results[n]}
        ours, usual = by.get("ours-off"), by.get("usual")
        if ours and usual:
            print(ROW % ("", "ratio usual / ours (asynchronous check off)",
                         "%.1fx" % (usual.runs[0].seconds / ours.runs[0].seconds),
                         "%.1fx" % (usual.runs[1].seconds / ours.runs[1].seconds), "", "", "", "", "",
                         "first run, re-run"))
    print("(x floor: wall time / the floor's, the mean of the floor before and after the runs;")
    print(" runs/h: module executions per managed host, callback-counted")
    print(" (loop items count, controller-only tasks don't; the run-once report counts for one host);")
    print(" tasks/h: task results per host in the PLAY RECAP, skipped and controller-only ones included;")
    print(" runs/h <= budget: rotate 3 (4 awaiting on the hosts), 2 with the check off, audit 2;")
    print(" target: 1.5 x floor")
    print(" x budget (re-run 1.2 x), + the SNE delay once (one batch) with the asynchronous check on;")
    print(" peakMiB: largest controller process; load: highest 1-min load average during the run)")
    for n in sizes:
        for res in results[n]:
            for name, probs in sorted(res.missed.items()):
                print("N=%d usual MISSED %s (V4 under an alias the usual play was not told): %s"
                      % (n, name, "; ".join(probs)))
    return failures


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                    help="fleet sizes, comma-separated (default 50,200,1000)")
    ap.add_argument("--quick", action="store_true", help="smoke run: --sizes 10,30")
    ap.add_argument("--forks", type=int, default=10,
                    help="--forks of every run, the floor's included (default 10)")
    ap.add_argument("--usual-up-to", type=int, default=200,
                    help="run the usual playbook and ours with the check off up to this size (default 200)")
    ap.add_argument("--check-off-up-to", type=int, default=None,
                    help="run ours with the check off up to this size too, without the usual playbook "
                         "(default: --usual-up-to)")
    ap.add_argument("--rerun-up-to", type=int, default=None,
                    help="re-run ours only up to this size (default: every size); above it, first run "
                         "and audit only")
    ap.add_argument("--compare-await-up-to", type=int, default=50,
                    help="up to this size, also run ours with the returns awaited on the hosts (default 50)")
    ap.add_argument("--delay", type=float, default=5.0,
                    help="seconds the simulated SNE takes to return a message (default 5)")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".build" / "bench-fleet",
                    help="scratch folder, emptied first (default .build/bench-fleet)")
    args = ap.parse_args(argv)
    if args.forks < 1:
        ap.error("--forks must be >= 1")
    sizes = list(QUICK_SIZES) if args.quick else args.sizes

    work: Path = args.workdir.resolve()
    t0 = time.perf_counter()
    pki = prepare(work, Path(__file__))
    env = kb.ansible_env(work)
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_CALLBACKS_ENABLED="bench_tally", ANSIBLE_HOST_KEY_CHECKING="False")
    url = start_simulator(work, pki, args.delay)
    floors: Dict[int, PlayRun] = {}
    floors_after: Dict[int, PlayRun] = {}
    results: Dict[int, List[Result]] = {}
    hosts_of: Dict[int, List[str]] = {}
    try:
        for n in sizes:
            plan = [("ours", url, "controller")]
            if n <= args.compare_await_up_to:
                plan += [("ours", url, "host")]
            if n <= max(args.usual_up_to, args.check_off_up_to if args.check_off_up_to is not None else 0):
                plan += [("ours", None, "")]
            if n <= args.usual_up_to:
                plan += [("usual", None, "")]
            results[n] = []
            for i, (approach, on, await_from) in enumerate(plan):
                res = run_rotation(approach, n, work, pki, env, args.forks, on, args.delay, with_floor=i == 0,
                                   rerun=args.rerun_up_to is None or n <= args.rerun_up_to,
                                   await_from=await_from or "controller")
                results[n].append(res)
                if res.floor is not None:
                    floors[n] = res.floor
                    hosts_of[n] = sorted(json.loads((work / ("n%d" % n) / res.tag / "fleet" / "fleet.json")
                                                    .read_text())["hosts"])
            # The floor again, after the runs of this size, on the same hosts: the machine's speed
            # drifts (a shared host); the ratios use the mean of the two.
            size_dir = work / ("n%d" % n)
            after = floor(work, env, size_dir / results[n][0].tag / "fleet" / "inventory", args.forks,
                          size_dir / "floor-after.log")
            print("bench: N=%d floor again %.1f s (ping, %d hosts answered)"
                  % (n, after.seconds, len(after.runs)), flush=True)
            floors_after[n] = after
    finally:
        stop_simulator(work)
    failures = print_table(sizes, floors, floors_after, results, hosts_of, args.forks, args.delay)
    print("verified after every run: %s" % ("OK" if not failures else "%d PROBLEMS" % len(failures)))
    for f in failures:
        print("  " + f, file=sys.stderr)
    print("total %.0f s; work folder %s" % (time.perf_counter() - t0, work))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
