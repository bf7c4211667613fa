"""Benchmark: how long ``roles/simulate/files/make_pki.py`` takes to build the test PKI.

Every unit test session, integration target and fleet benchmark builds the PKI first, so its
build time is worth watching; no test asserts it (tests/unit/test_make_pki.py only checks that
two builds are byte-identical). Each run builds into a fresh folder, in this process, as the
``pki`` fixture of tests/unit/conftest.py does.

Usage::

    python3 benchmarks/make_pki.py [--runs 5] [--workdir .build/bench-make-pki]

Prints every run's wall time, then the median, the fastest and the slowest (each run's folder
is removed after it). Exit status 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "roles", "simulate", "files"))
TEST_KEYS = os.path.join(ROOT, "tests", "pki", "keys")

import make_pki  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5, help="builds to time (default 5)")
    parser.add_argument("--workdir", default=os.path.join(ROOT, ".build", "bench-make-pki"))
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    times: List[float] = []
    for run in range(args.runs):
        folder = os.path.join(args.workdir, "run-%d" % run)
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        manifest = make_pki.build(folder, TEST_KEYS)
        times.append(time.perf_counter() - started)
        shutil.rmtree(folder)
        print("run %d: %.2f s (%d certificates, %d bundles)" % (
            run + 1, times[-1], len(manifest["certificates"]), len(manifest["bundles"])))
    print("make_pki.build: median %.2f s, fastest %.2f s, slowest %.2f s over %d runs (load average %s)" % (
        statistics.median(times), min(times), max(times), len(times),
        " ".join("%.1f" % x for x in os.getloadavg())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
