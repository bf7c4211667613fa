"""The child process of the crash tests: one keystores convergence, SIGKILLed at a chosen call.

Used by ``tests/unit/plugins/module_utils/_stores/test_crash.py`` through
:func:`run_forked` (a forked child of the test process, the collection already imported),
or by hand as ``python crash_child.py CONFIG.json`` (to replay one kill). Test code only:
the fault is injected here, never in the collection.

The child converges the stores of CONFIG through the real engine
(``_stores/engine.converge``, backups on, a fixed run_id, time frozen so that what it
writes is the same every run) and counts the write-side calls it makes: ``os.rename``,
``os.replace``, ``os.unlink``, ``os.remove``, ``os.rmdir``, ``os.symlink``,
``os.fsync``, ``os.write``, ``os.open`` (for writing), ``os.mkdir``, ``os.makedirs``,
``os.sendfile``, ``shutil.copy2``, ``shutil.copyfile``, ``os.chown``, ``os.chmod``,
``os.utime``, ``os.setxattr``, ``os.truncate``, ``os.ftruncate``, ``open()`` for
writing, and the ``run_command`` calls (keytool, the trust anchors' refresh). At call
``kill_at`` it sends itself SIGKILL, ``before`` the real call or ``after`` it; "after" an
``os.write`` or an ``os.sendfile`` means after half of it (a torn write: a backup cut in
the middle).

CONFIG (JSON): collections (sys.path entry of ``ansible_collections``), stores (StoreSpec
keyword arguments), present ([name, DER file]), absent (SHA-256 list), backup_dir, run_id,
no_cryptography, lock_base (where the store locks go instead of /run/lock), now (the
frozen time.time()), kill_at (0: no kill), side, trace (a file that gets one line per
counted call, or null), result (where the outcome is written).
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

_REAL_OPEN = builtins.open
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# keytool (a JVM) starts in half the CPU time with these; the test runner adds them.
_QUICK_JVM = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"]


class Killer:
    """Counts the write-side calls; SIGKILLs the process at call ``kill_at``."""

    def __init__(self, kill_at: int, side: str, trace: str | None) -> None:
        self.kill_at = kill_at
        self.side = side
        self.count = 0
        self.paused = 0
        self.trace = _REAL_OPEN(trace, "a") if trace else None
        self.saved = []

    def _die(self) -> None:
        if self.trace:
            self.trace.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def call(self, name, real, args, kwargs, what=None, torn=None):
        if self.paused:
            return real(*args, **kwargs)
        self.count += 1
        number = self.count
        if self.trace:
            if what is None:
                what = args[0] if args else ""
            self.trace.write("%d %s %s\n" % (number, name, what))
        if number == self.kill_at and self.side == "before":
            self._die()
        if number == self.kill_at and torn is not None:
            real(*torn(args), **kwargs)  # half of it, then the kill: a torn write
            self._die()
        self.paused += name == "run_command"  # the subprocess module's own calls do not count
        try:
            return real(*args, **kwargs)
        finally:  # "after" a call that raised (an existing folder...) too
            self.paused -= name == "run_command"
            if number == self.kill_at and self.side == "after":
                self._die()

    def wrap(self, owner, name, counted=None, torn=None):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if counted is not None and not counted(*args, **kwargs):
                return real(*args, **kwargs)
            return self.call(name, real, args, kwargs,
                             torn=torn if self.side == "after" else None)

        self.saved.append((owner, name, real))
        setattr(owner, name, wrapper)

    def install(self) -> None:
        for name in ("rename", "replace", "unlink", "remove", "rmdir", "symlink", "fsync",
                     "mkdir", "makedirs", "chown", "chmod", "utime", "setxattr", "truncate",
                     "ftruncate"):
            if hasattr(os, name):
                self.wrap(os, name)
        self.wrap(os, "open", counted=lambda path, flags, *a, **k: bool(flags & _WRITE_FLAGS))
        # killed "after" a write or a sendfile: half of it is written first (a torn write)
        self.wrap(os, "write", torn=lambda a: (a[0], bytes(a[1])[:len(a[1]) // 2]))
        self.wrap(os, "sendfile", torn=lambda a: a[:3] + (max(1, a[3] // 2),))
        self.wrap(shutil, "copy2")
        self.wrap(shutil, "copyfile")
        self.wrap(builtins, "open", counted=lambda file, mode="r", *a, **k:
                  any(c in mode for c in "wax+"))

    def uninstall(self) -> None:
        for owner, name, real in reversed(self.saved):
            setattr(owner, name, real)
        self.saved = []


def converge(config: dict) -> dict:
    """One convergence of CONFIG's stores, killed at call ``kill_at`` (none when 0)."""
    from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
    from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
    from ansible_collections.sne.guichet.plugins.module_utils._stores import engine
    from ansible_collections.sne.guichet.plugins.module_utils._stores import pkcs12 as _pkcs12
    from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec

    if config.get("no_cryptography"):
        _pkcs12.HAS_CRYPTOGRAPHY = False
    if config.get("lock_base"):  # the store locks in the case's folder, not the host's
        _lock.LOCK_BASES = (config["lock_base"],)
    present = []
    for name, der_file in config["present"]:
        with _REAL_OPEN(der_file, "rb") as handle:
            present.append(CertEntry(name, handle.read()))
    specs = [StoreSpec(**store) for store in config["stores"]]
    killer = Killer(config.get("kill_at", 0), config.get("side", "before"), config.get("trace"))

    def run_command(argv, data=None, environ_update=None):
        def real(argv, data, environ_update):
            env = dict(os.environ, **(environ_update or {}))
            if os.path.basename(argv[0]) == "keytool":  # a quicker JVM start, same arguments
                argv = argv[:1] + _QUICK_JVM + argv[1:]
            done = subprocess.run(argv, input=data, capture_output=True, text=True, env=env,
                                  check=False)
            return done.returncode, done.stdout, done.stderr
        return killer.call("run_command", real, (argv, data, environ_update), {},
                           what=os.path.basename(argv[0]) + " " + " ".join(
                               a for a in argv[1:] if a.startswith("-") and not a.startswith("-J")))

    backups = Backups(config["backup_dir"], config["run_id"])
    frozen = float(config["now"])
    real_time = time.time
    time.time = lambda: frozen
    killer.install()
    try:
        outcomes, changed, failed = engine.converge(specs, present, set(config["absent"]), False,
                                                    backups, run_command, shutil.which)
    finally:
        killer.uninstall()
        time.time = real_time
    return {"changed": changed, "failed": failed, "calls": killer.count,
            "stores": [o.result for o in outcomes]}


def _new_process() -> None:
    """A forked child is a new process for the collection: what its modules noted at import
    as the time the process started (``_STARTED``: older leftovers are stale) is now."""
    for name, module in list(sys.modules.items()):
        if name.startswith("ansible_collections.sne.guichet.") and \
                isinstance(getattr(module, "_STARTED", None), float):
            module._STARTED = time.time()


def run_forked(config: dict, tmpdir: str, timeout: float = 600.0) -> tuple:
    """Run :func:`converge` in a forked child (the modules are already imported: no start-up
    cost) whose temporary folder is ``tmpdir``; (wait status, result or None)."""
    result_file = config["result"]
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.environ["TMPDIR"] = tmpdir
            tempfile.tempdir = None
            _new_process()
            outcome = converge(config)
            with _REAL_OPEN(result_file, "w") as handle:
                json.dump(outcome, handle, default=str)
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
            with _REAL_OPEN(result_file + ".error", "w") as handle:
                handle.write(traceback.format_exc())
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the crash child did not end within %d s" % timeout)
        time.sleep(0.002)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        with _REAL_OPEN(result_file) as handle:
            return status, json.load(handle)
    if os.path.exists(result_file + ".error"):
        with _REAL_OPEN(result_file + ".error") as handle:
            raise AssertionError("the crash child failed:\n" + handle.read())
    return status, None


def main() -> None:
    with _REAL_OPEN(sys.argv[1]) as handle:
        config = json.load(handle)
    sys.path.insert(0, config["collections"])
    outcome = converge(config)
    with _REAL_OPEN(config["result"], "w") as handle:
        json.dump(outcome, handle, default=str)


if __name__ == "__main__":
    main()
