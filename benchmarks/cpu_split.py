"""Benchmark: where the CPU of a fleet rotation goes - the hosts' module processes or the controller.

On the simulated fleet every "host" runs its modules on this machine, so the hosts' own work
(Python start-up, the module's imports, reading and writing the stores) competes with the
controller for the same cores; on a real fleet it runs on the hosts, in parallel. This script
separates the two: the hosts' Python interpreter is a shell wrapper that runs the real one and
records its children's CPU time (``times``, one file per process), and the controller's share is
the whole run's CPU (``RUSAGE_CHILDREN`` of ansible-playbook and everything it waited for) minus
the hosts' (the module processes: the hosts', and the two that run on the controller - the
bundle check and the batch wait - which are a few in hundreds). Same fleet, same settings as
``fleet.py``; one fresh fleet of ``--hosts``:

* ``ansible -m ping`` (the floor), ``rotate.yml`` first run and re-run (asynchronous check on,
  returns awaited on the controller, the simulator's delay ``--delay``), ``audit.yml``, ping again.

Printed per run: wall time, total CPU, the hosts' module processes (count, CPU, CPU per process)
and the controller's CPU, each also per host and as a multiple of the ping's. No test checks
these figures.

Usage::

    python3 benchmarks/cpu_split.py [--hosts 50] [--forks 10] [--delay 5] [--workdir .build/bench-cpu]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet as fb  # noqa: E402

kb = fb.kb

WRAPPER = """#!/bin/sh
# the host's Python, its CPU recorded (benchmarks/cpu_split.py)
"%s" "$@"
rc=$?
times > "%s/$$"
exit $rc
"""


def _seconds(text: str) -> float:
    minutes, rest = text.split("m", 1)
    return float(minutes) * 60 + float(rest.rstrip("s"))


def hosts_cpu(folder: Path) -> List[float]:
    """CPU seconds (user + system) of each recorded module process; the files are emptied."""
    cpu = []
    for entry in folder.iterdir():
        lines = entry.read_text().split("\n")
        if len(lines) >= 2 and lines[1].strip():
            user, system = lines[1].split()
            cpu.append(_seconds(user) + _seconds(system))
        entry.unlink()
    return cpu


def measure(tag: str, cmd: Sequence[str], env: Dict[str, str], cwd: Path, log: Path, records: Path,
            hosts: int, base: Optional[Dict[str, float]]) -> Dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        rc = subprocess.call(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    procs = hosts_cpu(records)
    mine = sum(procs)
    row = {"wall": wall, "total": total, "procs": len(procs), "hosts": mine, "controller": total - mine}
    ratio = "" if base is None else "   x ping: wall %.1f, hosts %.1f, controller %.1f" % (
        wall / base["wall"], mine / base["hosts"], (total - mine) / base["controller"])
    print("%-22s rc %d  wall %6.1f s  cpu %6.1f s = hosts %6.1f s (%4d processes, %.2f s each) "
          "+ controller %6.1f s (%.2f s per host)%s"
          % (tag, rc, wall, total, mine, len(procs), mine / max(1, len(procs)), total - mine,
             (total - mine) / hosts, ratio), flush=True)
    return row


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--delay", type=float, default=5.0)
    ap.add_argument("--workdir", type=Path, default=fb.ROOT / ".build" / "bench-cpu")
    args = ap.parse_args(argv)
    work: Path = args.workdir.resolve()
    pki = fb.prepare(work, Path(__file__))
    records = work / "cpu"
    records.mkdir()
    wrapper = work / "python-cpu"
    wrapper.write_text(WRAPPER % (kb.VENV_PY, records))
    wrapper.chmod(0o755)
    env = kb.ansible_env(work)
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_HOST_KEY_CHECKING="False")
    url = fb.start_simulator(work, pki, args.delay)
    try:
        _fleet, outdir, _snap = fb.fresh_fleet(work / ("fleet-%d" % args.hosts), args.hosts, pki)
        fb.async_vars(outdir / "inventory", url, max(60.0, 4 * args.delay), "controller")
        inv = str(outdir / "inventory")
        interp = ["-e", "ansible_python_interpreter=%s" % wrapper]
        ping = fb.ping_command(outdir / "inventory", args.forks) + interp
        book = [str(kb.ANSIBLE_PLAYBOOK), "-i", inv, "--forks", str(args.forks),
                "-e", "sne_report_dir=%s" % (work / "reports")] + interp
        print("%d hosts, local connection, pipelining, --forks %d; CPU in seconds (user + system)"
              % (args.hosts, args.forks))
        base = measure("ping", ping, env, work, work / "ping.log", records, args.hosts, None)
        for tag, cmd in (("rotate.yml, first run", book + ["sne.guichet.rotate"]),
                         ("rotate.yml, re-run", book + ["sne.guichet.rotate"]),
                         ("audit.yml", book + ["sne.guichet.audit"])):
            slug = "".join(c if c.isalnum() else "-" for c in tag)
            measure(tag, cmd, env, work, work / (slug + ".log"), records, args.hosts, base)
        measure("ping again", ping, env, work, work / "ping-again.log", records, args.hosts, base)
    finally:
        fb.stop_simulator(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
