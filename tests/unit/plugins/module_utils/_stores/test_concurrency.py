# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two keystores runs on the same store at once take turns (the store lock of the engine).

Real processes (fork), started together by a barrier, converge the same JKS, pem_dir or NSS
database (certutil),
run A adding V5 and run B adding AC V5, both retiring V4 and AC V4. Both must succeed
with results that match the final store: whatever a run reports added is there, each
retired certificate is reported removed by exactly one run, the store holds V5 and AC V5,
no V4, every unrelated entry byte for byte. Without the lock they fail with "changed
since it was read" or "cannot remove", or one's write replaces the other's (lost update);
``SNE_PROVE_NO_LOCK=1`` runs the rounds with the lock made a no-op to see it.

The forced schedule stops run A between two steps of its pem_dir journal (a monkeypatch
in the child) and starts run B then: without the lock, A's undo deletes the file B relied
on (test_forced_schedule_without_the_lock_loses_the_file shows it every time).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import subprocess
import time
import traceback
import types

import pytest
from javatools import PASSWORD, keytool
from nsstools import CERTUTIL, NSS_PASSWORD, contents, keys, make_db
from nsstools import add as nss_add

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import LOCKED
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import StoreLocks
from ansible_collections.sne.guichet.plugins.module_utils._formats.jks import TAG_TRUSTED_CERT, parse
from ansible_collections.sne.guichet.plugins.module_utils._stores import _journal
from ansible_collections.sne.guichet.plugins.module_utils._stores import engine as _engine
from ansible_collections.sne.guichet.plugins.module_utils._stores import run as _run
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import converge
from ansible_collections.sne.guichet.plugins.module_utils._x509 import load_certificates, subject_hash

FORK = multiprocessing.get_context("fork")
ROUNDS = 20
BOUND = 60  # seconds: only so that a broken test cannot hang
NO_LOCK = os.environ.get("SNE_PROVE_NO_LOCK") == "1"
IDS = ("root", "ac-v4", "ac-v5", "chiffrement-v4", "chiffrement-v5")
SEED = {"root.pem": "root", "ac-v4.pem": "ac-v4", "chiffrement-v4.pem": "chiffrement-v4"}


def run_command(argv, data=None, environ_update=None):
    done = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


class World:
    def __init__(self, pki):
        self.der, self.pem, self.sha = {}, {}, {}
        for ident in IDS:
            base = os.path.join(pki["dir"], ident)
            with open(base + ".der", "rb") as handle:
                self.der[ident] = handle.read()
            with open(base + ".pem", "rb") as handle:
                self.pem[ident] = handle.read()
            self.sha[ident] = CertEntry(ident, self.der[ident]).sha256
        self.v5 = CertEntry("sne-chiffrement-v5", self.der["chiffrement-v5"])
        self.ac5 = CertEntry("sne-ac-v5", self.der["ac-v5"])
        self.absent = {self.sha["chiffrement-v4"], self.sha["ac-v4"]}
        self.runs = (("A", [self.v5]), ("B", [self.ac5]))  # each run adds its own certificate
        self.wanted = {self.v5.sha256, self.ac5.sha256}


@pytest.fixture(scope="module")
def world(pki):
    return World(pki)


@pytest.fixture(autouse=True)
def lock_folder(tmp_path, monkeypatch):
    """The engine's lock folder under tmp_path (the children inherit it): never /run/lock."""
    base = tmp_path / "run-lock"
    base.mkdir()
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(base),))
    monkeypatch.setattr(_lock.tempfile, "gettempdir", lambda: str(base))
    if NO_LOCK:
        _without_lock(monkeypatch)


def _without_lock(monkeypatch=None):
    """The lock made a no-op: what the engine did before it had one."""
    class NoLocks(StoreLocks):
        def acquire(self):
            return self

    if monkeypatch is None:
        _engine.StoreLocks = NoLocks
    else:
        monkeypatch.setattr(_engine, "StoreLocks", NoLocks)


# ----------------------------------------------------------------------------- stores


@pytest.fixture(scope="module")
def jks_seed(tmp_path_factory, world):
    """A keytool JKS: private key ``server``, trusted root, V4 under an odd alias, AC V4."""
    if shutil.which("keytool") is None:
        pytest.skip("keytool is needed to make the JKS")
    folder = tmp_path_factory.mktemp("concurrency-jks")
    path = str(folder / "app.jks")
    common = ["-storetype", "JKS", "-keystore", path, "-storepass", PASSWORD]
    keytool("-genkeypair", "-alias", "server", "-keyalg", "EC", "-dname", "CN=server",
            "-keypass", PASSWORD, *common)
    for alias, ident in (("root", "root"), ("old-ministry-cert-2014", "chiffrement-v4"),
                         ("ac-sne-v4", "ac-v4")):
        (folder / (ident + ".der")).write_bytes(world.der[ident])
        keytool("-importcert", "-noprompt", "-alias", alias, "-file", str(folder / (ident + ".der")),
                *common)
    with open(path, "rb") as handle:
        return handle.read()


class JksCase:
    type = "jks"

    def __init__(self, world, seed):
        self.world, self.seed = world, seed
        keep = [e for e in parse(seed, PASSWORD).entries if e.alias in ("server", "root")]
        self.unrelated = sorted(e.raw for e in keep)

    def make(self, folder):
        path = os.path.join(folder, "app.jks")
        with open(path, "wb") as handle:
            handle.write(self.seed)
        return StoreSpec(path, "jks", password=PASSWORD)

    def held(self, path):
        """SHA-256 of the trusted certificates; AssertionError if an unrelated entry changed."""
        with open(path, "rb") as handle:
            store = parse(handle.read(), PASSWORD)
        assert sorted(e.raw for e in store.entries if e.alias in ("server", "root")) == self.unrelated
        return set(e.sha256 for e in store.entries if e.tag == TAG_TRUSTED_CERT)


class PemDirCase:
    type = "pem_dir"

    def __init__(self, world):
        self.world = world

    def make(self, folder):
        path = os.path.join(folder, "certs")
        os.mkdir(path)
        for name, ident in SEED.items():
            with open(os.path.join(path, name), "wb") as handle:
                handle.write(self.world.pem[ident])
            os.symlink(name, os.path.join(path, subject_hash(self.world.der[ident]) + ".0"))
        with open(os.path.join(path, "notes.txt"), "w") as handle:
            handle.write("not a certificate\n")
        return StoreSpec(path, "pem_dir")

    def held(self, path):
        """SHA-256 of the certificates in the folder; AssertionError unless every holder is
        found by a contiguous hash link, no link dangles, and the unrelated files are intact."""
        names = sorted(os.listdir(path))
        with open(os.path.join(path, "notes.txt")) as handle:
            assert handle.read() == "not a certificate\n"
        with open(os.path.join(path, "root.pem"), "rb") as handle:
            assert handle.read() == self.world.pem["root"]
        holders, slots, targets = {}, {}, set()
        for name in names:
            full = os.path.join(path, name)
            if os.path.islink(full):
                assert os.path.exists(full), "dangling link %s -> %s" % (name, os.readlink(full))
                prefix, number = name.split(".")
                slots.setdefault(prefix, []).append(int(number))
                targets.add(os.path.basename(os.readlink(full)))
                with open(full, "rb") as handle:
                    assert subject_hash(load_certificates(handle.read())[0]) == prefix, name
            elif name.endswith(".pem"):
                with open(full, "rb") as handle:
                    (der,) = load_certificates(handle.read())
                holders[name] = der
        for prefix, numbers in slots.items():
            assert sorted(numbers) == list(range(len(numbers))), (prefix, numbers)
        assert sorted(targets) == sorted(holders), ("a holder without its hash link", names)
        return set(CertEntry(n, d).sha256 for n, d in holders.items())

    def verify(self, path):
        """openssl finds V5's chain (AC V5, root) in the folder by hash lookup."""
        leaf = os.path.join(path, "sne-chiffrement-v5.pem")
        done = subprocess.run(["openssl", "verify", "-CApath", path, leaf],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def nss_seed(tmp_path_factory, world):
    """An NSS sql: database with a password: a key pair, root, V4 under an odd nickname, AC V4."""
    if CERTUTIL is None:
        pytest.skip("certutil (libnss3-tools) is needed to make the NSS database")
    folder = tmp_path_factory.mktemp("concurrency-nss")
    path = str(folder / "nssdb")
    make_db(path, NSS_PASSWORD)
    for nick, ident in (("root", "root"), ("old ministry cert 2014", "chiffrement-v4"),
                        ("AC SNE V4", "ac-v4")):
        (folder / (ident + ".der")).write_bytes(world.der[ident])
        nss_add(path, nick, "C,," if nick != "old ministry cert 2014" else "P,,",
                str(folder / (ident + ".der")), NSS_PASSWORD)
    return path


class NssCase:
    type = "nss"

    def __init__(self, world, seed):
        self.world, self.seed = world, seed
        seen = contents(seed)
        self.unrelated = {n: seen[n] for n in ("root", "mykey")}
        self.keys = keys(seed, NSS_PASSWORD)

    def make(self, folder):
        path = os.path.join(folder, "nssdb")
        shutil.copytree(self.seed, path)
        return StoreSpec(path, "nss", password=NSS_PASSWORD)

    def held(self, path):
        """SHA-256 of the certificates (certutil -L); AssertionError if the key pair or the
        root changed."""
        seen = contents(path)
        assert {n: seen.get(n) for n in self.unrelated} == self.unrelated
        assert keys(path, NSS_PASSWORD) == self.keys
        return set(s for _trust, shas in seen.values() for s in shas)


@pytest.fixture(params=["jks", "pem_dir", "nss"])
def case(request, world):
    if request.param == "jks":
        return JksCase(world, request.getfixturevalue("jks_seed"))
    if request.param == "nss":
        return NssCase(world, request.getfixturevalue("nss_seed"))
    return PemDirCase(world)


# ----------------------------------------------------------------------------- two runs


def _child(spec, present, absent, run_id, backup_dir, start, results, patch):
    """One keystores run in a child process; puts (run_id, result) on ``results``."""
    try:
        if patch is not None:
            patch()
        start()
        outcomes, _changed, _failed = converge([spec], present, absent, False,
                                               Backups(backup_dir, run_id), run_command,
                                               shutil.which)
        results.put((run_id, outcomes[0].result))
    except BaseException:
        results.put((run_id, {"failed": True, "msg": traceback.format_exc()}))


def _start(world, spec, runs, folder, start, patches=None):
    results = FORK.Queue()
    children = []
    for run_id, present in runs:
        patch = (patches or {}).get(run_id)
        child = FORK.Process(target=_child, args=(spec, present, world.absent, run_id,
                                                  os.path.join(folder, "backups"), start,
                                                  results, patch))
        child.start()
        children.append(child)
    return results, children


def _collect(results, children, count=2):
    got = dict(results.get(timeout=BOUND) for _round in range(count))
    for child in children:
        child.join(BOUND)
    return got


def check_consistent(case, path, results):
    """Both runs succeeded, and what each says it did is what the store now holds."""
    world = case.world
    problems = ["%s failed: %s" % (r, res["msg"]) for r, res in sorted(results.items())
                if res["failed"]]
    try:
        held = case.held(path)
    except AssertionError as exc:
        return problems + ["the store is damaged: %s" % exc]
    for run_id, result in sorted(results.items()):
        if result["failed"]:
            continue  # its "added" is what it planned
        for done in result.get("added", []) + result.get("links_repaired", []):
            if done["sha256"] not in held:
                problems.append("%s reports %s done but the store lacks it (lost update)"
                                % (run_id, done["name"]))
    if not problems:
        removed = [r["sha256"] for res in results.values() for r in res.get("removed", [])]
        if sorted(removed) != sorted(world.absent):
            problems.append("retired certificates reported removed: %s" % removed)
        if held & world.absent or not world.wanted <= held:
            problems.append("the store does not hold V5 and AC V5 without V4")
    return problems


def test_two_runs_at_once_take_turns(case, world, tmp_path):
    """ROUNDS rounds, each with two runs released together by a barrier."""
    problems = []
    for number in range(ROUNDS):
        folder = str(tmp_path / ("round-%02d" % number))
        os.mkdir(folder)
        spec = case.make(folder)
        barrier = FORK.Barrier(2)
        runs = [("%s-%02d" % (r, number), p) for r, p in world.runs]
        results, children = _start(world, spec, runs, folder, lambda b=barrier: b.wait(BOUND))
        got = _collect(results, children)
        problems += ["round %d: %s" % (number, p) for p in check_consistent(case, spec.path, got)]
        if not problems and case.type == "pem_dir":
            case.verify(spec.path)
    assert not problems, "%d problems in %d rounds:\n%s" % (len(problems), ROUNDS, "\n".join(problems))
    if case.type == "jks":  # the real keytool reads the last store, the key entry intact
        listing = keytool("-list", "-storetype", "JKS", "-keystore", spec.path,
                          "-storepass", PASSWORD).stdout
        assert "server, " in listing and "PrivateKeyEntry" in listing
        assert listing.count("trustedCertEntry") == 3  # root, V5, AC V5


# ----------------------------------------------------------------------------- forced schedule


def _pause_after_first_step(paused, go_on):
    """Child patch: run A stops right after the first step of its folder journal."""
    real_write = _journal.Journal.write

    def write(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        if not paused.is_set():
            paused.set()
            go_on.wait(BOUND)

    _journal.Journal.write = write


def _say_when_waiting(progress):
    """Child patch: run B says when it has to wait for a lock."""
    def sleep(seconds):
        progress.set()
        time.sleep(seconds)

    _lock.time = types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep)


def _forced_schedule(world, tmp_path, locked):
    """Run A stops between two journal steps; run B starts, and runs to its end (no lock) or
    until it waits for A's lock; then A goes on. Same arguments for both runs."""
    case = PemDirCase(world)
    folder = str(tmp_path)
    spec = case.make(folder)
    paused, go_on, progress = FORK.Event(), FORK.Event(), FORK.Event()
    both = [world.v5, world.ac5]

    def patch_a():
        _pause_after_first_step(paused, go_on)
        if not locked:
            _without_lock()

    def patch_b():
        _say_when_waiting(progress)
        if not locked:
            _without_lock()

    results_a, children_a = _start(world, spec, [("A", both)], folder, lambda: None, {"A": patch_a})
    assert paused.wait(BOUND), "run A never reached its journal"
    results_b, children_b = _start(world, spec, [("B", both)], folder, lambda: None, {"B": patch_b})
    if locked:
        deadline = time.monotonic() + BOUND
        while not progress.wait(0.05):  # B waits for A's lock (or, broken, ends without)
            if not results_b.empty():
                break
            assert time.monotonic() < deadline, "run B neither waited nor ended"
        results = {}
    else:  # B runs to its end while A is stopped
        results = dict([results_b.get(timeout=BOUND)])
    go_on.set()
    results.update(_collect(results_a, children_a, 1))
    if locked:
        results.update(_collect(results_b, children_b, 1))
    else:
        for child in children_b:
            child.join(BOUND)
    return case, spec.path, results


def test_forced_schedule_keeps_the_file_of_the_run_that_went_first(world, tmp_path):
    case, path, results = _forced_schedule(world, tmp_path, locked=True)
    assert not results["A"]["failed"] and not results["B"]["failed"], results
    assert results["A"]["changed"] and not results["B"]["changed"]  # B found it done
    assert case.held(path) == (set(world.sha[i] for i in ("root",)) | world.wanted)
    assert os.path.isfile(os.path.join(path, "sne-chiffrement-v5.pem"))
    case.verify(path)


def test_forced_schedule_without_the_lock_loses_the_file(world, tmp_path):
    """What the lock prevents, shown every time: this test proves the one above can fail.

    Seen today: A wrote sne-chiffrement-v5.pem and stopped; B found it, linked it and
    reported success; A went on, could not remove what B had removed, and its undo deleted
    sne-chiffrement-v5.pem (B's link now dangles) while saying the folder "is as it was"."""
    if NO_LOCK:
        pytest.skip("already without the lock")
    case, path, results = _forced_schedule(world, tmp_path, locked=False)
    problems = check_consistent(case, path, results)
    assert problems, "two runs without a lock went right: the forced schedule proves nothing"


# ----------------------------------------------------------------------------- held too long


def _tree(path):
    """Every name of a folder with its content or link target."""
    found = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.islink(full):
            found.append((name, os.readlink(full)))
        else:
            with open(full, "rb") as handle:
                found.append((name, handle.read()))
    return found


def _hold(path, held, release):
    with StoreLocks([path], 0, "other-run"):
        held.set()
        release.wait(BOUND)


@contextlib.contextmanager
def _held_by_another_process(path):
    held, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold, args=(path, held, release))
    child.start()
    try:
        assert held.wait(BOUND)
        yield child.pid
    finally:
        release.set()
        child.join(BOUND)


@pytest.mark.parametrize("check_mode,all_or_nothing", [(False, False), (True, False), (False, True)])
def test_a_store_locked_past_the_timeout_fails_clearly_and_is_not_touched(
        world, tmp_path, check_mode, all_or_nothing):
    case = PemDirCase(world)
    locked = case.make(str(tmp_path))
    other = tmp_path / "bundle.pem"
    other.write_bytes(world.pem["chiffrement-v4"])
    before = _tree(locked.path)
    with _held_by_another_process(locked.path) as pid:
        outcomes, changed, failed = converge(
            [locked, StoreSpec(str(other), "pem")], [world.v5], world.absent, check_mode,
            Backups(str(tmp_path / "backups"), "waiting-run"), run_command, shutil.which,
            all_or_nothing=all_or_nothing, lock_timeout=0.2)
    first, second = (o.result for o in outcomes)
    assert failed and first["failed"] and first["code"] == LOCKED
    assert "%s is locked by pid %d (run other-run) since " % (locked.path, pid) in first["msg"]
    assert "; waited 0." in first["msg"] and "added" not in first  # it was not even read
    assert _tree(locked.path) == before
    assert not second["failed"] and second["added"]  # the other store went on (or would) ...
    assert second.get("skipped", False) == all_or_nothing  # ... unless all_or_nothing
    wrote = world.pem["chiffrement-v5"] in other.read_bytes()
    assert wrote == (not check_mode and not all_or_nothing)


class FakeModule:
    """What run_keystores uses of an AnsibleModule."""

    def __init__(self, params):
        self.params, self.check_mode, self._diff = params, False, False

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs)

    def exit_json(self, **kwargs):
        raise SystemExit(kwargs)

    def run_command(self, argv, data=None, environ_update=None, binary_data=False):
        return run_command(argv, data, environ_update)

    def get_bin_path(self, name, required=False):
        return shutil.which(name)


def test_the_module_option_reaches_the_lock(world, tmp_path):
    store = tmp_path / "bundle.pem"
    store.write_bytes(world.pem["chiffrement-v4"])
    params = dict(stores=[dict(path=str(store), type="pem")], absent_sha256=sorted(world.absent),
                  present=[dict(name="sne-chiffrement-v5", pem=world.pem["chiffrement-v5"].decode())],
                  backup=False, backup_dir=str(tmp_path / "b"), run_id="module-run",
                  all_or_nothing=False, lock_timeout=0)
    with _held_by_another_process(str(store)) as pid, pytest.raises(RuntimeError) as failed:
        _run.run_keystores(FakeModule(params))
    (result,) = failed.value.args[0]["stores"]
    assert result["code"] == LOCKED and "locked by pid %d" % pid in result["msg"]
    params["lock_timeout"] = -1
    with pytest.raises(RuntimeError, match="lock_timeout"):
        _run.run_keystores(FakeModule(params))
    params["lock_timeout"] = 5
    with pytest.raises(SystemExit) as done:
        _run.run_keystores(FakeModule(params))
    assert done.value.args[0]["changed"]
