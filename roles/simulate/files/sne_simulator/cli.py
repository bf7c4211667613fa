# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SNE simulator: the asynchronous side of the national registration system, on loopback.

Usage (run the package folder, or ``python -m sne_simulator`` with ``simulator/`` on PYTHONPATH)::

    python simulator/sne_simulator start --config CONFIG.json --state-dir DIR [--lifetime S]
    python simulator/sne_simulator stop --state-dir DIR
    python simulator/sne_simulator status --state-dir DIR
    python simulator/sne_simulator run --config CONFIG.json --state-dir DIR   # foreground

``start`` runs ``run`` in the background, detached, and returns once ``DIR/simulator.json``
says every transport listens; ``stop`` sends SIGTERM (SIGKILL after ``--timeout``); ``status``
exits 3 when it does not run. The server always stops by itself after ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Optional, Sequence

from .config import DEFAULT_LIFETIME, OUT_FILE, STATE_FILE, ConfigError, load_config
from .folder import atomic_write
from .server import Simulator, alive, read_state, state_path

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # ``start`` runs it: ``python PACKAGE_DIR run``


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print("sne_simulator: %s" % error, file=sys.stderr)
        return 2
    state = read_state(args.state_dir)
    if state and isinstance(state.get("pid"), int) and state["pid"] != os.getpid() and alive(state["pid"]):
        print("sne_simulator: already running (pid %d) in %s" % (state["pid"], args.state_dir),
              file=sys.stderr)
        return 1
    if args.lifetime <= 0:
        print("sne_simulator: --lifetime must be > 0", file=sys.stderr)
        return 2
    simulator = Simulator(config, args.state_dir, args.lifetime, os.path.abspath(args.config))
    reason = ["lifetime"]

    def on_signal(number: int, frame: Any) -> None:
        reason[0] = signal.Signals(number).name
        simulator.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = simulator.start()
    except Exception as error:
        print("sne_simulator: cannot start: %s: %s" % (type(error).__name__, error), file=sys.stderr)
        simulator.stop("start failed")
        return 1
    info["expires"] = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=args.lifetime)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    atomic_write(simulator.state_dir, STATE_FILE, (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    print(json.dumps(info), flush=True)
    try:
        simulator.stop_event.wait(args.lifetime)
    finally:
        simulator.stop(reason[0])
        state = read_state(args.state_dir)
        if state and state.get("pid") == os.getpid():
            os.unlink(state_path(args.state_dir))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    state = read_state(state_dir)
    if state and isinstance(state.get("pid"), int) and alive(state["pid"]):
        print("sne_simulator: already running (pid %d) in %s" % (state["pid"], state_dir), file=sys.stderr)
        return 1
    command = [sys.executable, PACKAGE_DIR, "run", "--config", os.path.abspath(args.config),
               "--state-dir", state_dir, "--lifetime", str(args.lifetime)]
    out_path = os.path.join(state_dir, OUT_FILE)
    with open(out_path, "ab") as out:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True, close_fds=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            with open(out_path, "rb") as handle:
                tail = handle.read()[-2000:].decode("utf-8", "replace")
            print("sne_simulator: the server exited with status %s:\n%s" % (child.returncode, tail),
                  file=sys.stderr)
            return 1
        state = read_state(state_dir)
        if state and state.get("pid") == child.pid:
            child.returncode = 0  # detached on purpose: no "still running" warning
            print(json.dumps(state, indent=2))
            return 0
        time.sleep(0.05)
    child.kill()
    child.wait()
    print("sne_simulator: not ready after %s s (see %s)" % (args.timeout, out_path), file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    state = read_state(args.state_dir)
    pid = state.get("pid") if state else None
    if not isinstance(pid, int) or not alive(pid):
        if state is not None:
            os.unlink(state_path(args.state_dir))
        print("sne_simulator: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            print("sne_simulator: stopped (pid %d)" % pid)
            return 0
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    if os.path.exists(state_path(args.state_dir)):
        os.unlink(state_path(args.state_dir))
    print("sne_simulator: killed (pid %d) after %s s" % (pid, args.timeout))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = read_state(args.state_dir)
    if state and isinstance(state.get("pid"), int) and alive(state["pid"]):
        print(json.dumps(state, indent=2))
        return 0
    print("sne_simulator: not running")
    return 3


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sne_simulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (("run", "run in the foreground"), ("start", "start in the background, wait until ready"),
                ("stop", "stop the background server"), ("status", "print simulator.json if running"))
    for name, helptext in commands:
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--state-dir", required=True, help="log, maildir and simulator.json go here")
        if name in ("run", "start"):
            cmd.add_argument("--config", required=True, help="JSON configuration (see README)")
            cmd.add_argument("--lifetime", type=float, default=DEFAULT_LIFETIME,
                             help="stop by itself after this many seconds (default %(default)s)")
        if name in ("start", "stop"):
            cmd.add_argument("--timeout", type=float, default=20.0,
                             help="seconds to wait (default %(default)s)")
    args = parser.parse_args(argv)
    handlers: Dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}
    return handlers[args.command](args)
