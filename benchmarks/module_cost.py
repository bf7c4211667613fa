"""Benchmark: what one module run costs on a fleet, against ``ansible -m ping`` (the floor), for
this working tree and a baseline revision of the collection, in the same run.

On a fleet Ansible's cost is module runs per host; this measures the cost of ONE run of each of
our target-side modules, with nothing to do (``scan`` and ``retire`` of an empty folder,
``keystores`` with no store): what remains is the payload, Python start-up and imports on the
target, the task's controller-side work. Rounds alternate the variants (tree, baseline, ping)
so that a drift of the machine hits them alike; the median of the rounds is printed.

    python3 benchmarks/module_cost.py [--hosts 50] [--forks 10] [--rounds 3] [--baseline REV]

``--baseline`` (default 88091dd, the commit before cryptography's submodules were imported
lazily on the target) is checked out with ``git worktree`` under the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keystores as kb  # noqa: E402

ROOT = kb.ROOT
MODULES = {  # module -> its arguments (JSON): nothing to do, everything imported
    "ansible.builtin.ping": {},
    "sne.guichet.scan": {"paths": ["{{ sne_guichet_root }}/empty"], "sha256": []},
    "sne.guichet.retire": {"paths": ["{{ sne_guichet_root }}/empty"], "sha256": ["00" * 32],
                           "quarantine": False, "run_id": "bench"},
    "sne.guichet.keystores": {"stores": [], "present": []},
}


def make_inventory(work: Path, hosts: int) -> Path:
    """``hosts`` local hosts, each with its own empty root (what the modules are pointed at)."""
    lines = ["[guichets]"]
    for i in range(1, hosts + 1):
        root = work / "roots" / ("h%03d" % i)
        (root / "empty").mkdir(parents=True, exist_ok=True)
        lines.append("h%03d ansible_connection=local ansible_python_interpreter=%s sne_guichet_root=%s"
                     % (i, kb.VENV_PY, root))
    inventory = work / "inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    return inventory


def baseline_collections(work: Path, rev: str) -> Path:
    tree = work / "baseline"
    kb.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    kb.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev])
    link = work / "collections-baseline" / "ansible_collections" / "sne" / "guichet"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(tree)
    return work / "collections-baseline"


def one(env: Dict[str, str], inventory: Path, module: str, forks: int) -> float:
    cmd = [str(kb.ANSIBLE_PLAYBOOK.with_name("ansible")), "-i", str(inventory), "guichets", "-m", module,
           "--forks", str(forks)]
    if MODULES[module]:
        cmd += ["-a", json.dumps(MODULES[module])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-3000:]
        raise SystemExit("%s failed (%d):\n%s" % (module, proc.returncode, output))
    return seconds


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default="88091dd")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".build" / "bench-module-cost")
    args = ap.parse_args(argv)
    kb.ensure_bench_venv()
    kb.ensure_collection_link()
    work = args.workdir.resolve()
    if work.exists():
        kb.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "baseline")], check=False)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    inventory = make_inventory(work, args.hosts)
    env = kb.ansible_env(work)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.oneline"
    # Its own local temp: AnsiballZ payloads are cached there, and must not be shared.
    base_env = dict(env, ANSIBLE_COLLECTIONS_PATH=str(baseline_collections(work, args.baseline)),
                    ANSIBLE_LOCAL_TEMP=str(work / "tmp-baseline"))
    variants = {"tree": dict(env), "baseline %s" % args.baseline: base_env}
    times: Dict[str, Dict[str, List[float]]] = {v: {m: [] for m in MODULES} for v in variants}
    load = " ".join("%.1f" % x for x in os.getloadavg())
    print("bench: %s; %d hosts, --forks %d, %d rounds; load average %s"
          % (kb.bench_versions(), args.hosts, args.forks, args.rounds, load), flush=True)
    for rnd in range(args.rounds):
        for module in MODULES:
            for variant, venv in variants.items():
                if module.startswith("ansible.builtin") and variant != "tree":
                    continue
                times[variant][module].append(one(venv, inventory, module, args.forks))
        print("bench: round %d done" % (rnd + 1), flush=True)
    floor = statistics.median(times["tree"]["ansible.builtin.ping"])
    print()
    print("One module run on %d hosts (local connection, pipelining, --forks %d), median of %d rounds"
          % (args.hosts, args.forks, args.rounds))
    print("%-24s %-18s %8s %8s   %s" % ("module", "collection", "wall s", "x ping", "rounds"))
    for module in MODULES:
        for variant in variants:
            got = times[variant][module]
            if not got:
                continue
            med = statistics.median(got)
            label = variant if module.startswith("sne.") else "-"
            rounds = " ".join("%.1f" % t for t in got)
            print("%-24s %-18s %8.1f %8.2f   %s" % (module, label, med, med / floor, rounds))
    kb.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "baseline")], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
