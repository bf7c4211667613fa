"""A guichet host tree for the retire tests: strays, a taken quarantine place, places needing a
person, a declared store, a link, configuration files (one holding a password), all real files.

Test code only. Used by ``tests/unit/plugins/module_utils/_retire/`` (the tests and the forked
children of the crash test) through :class:`Tree`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess

RETIRED = ("chiffrement-v4", "ac-v4")
RUN_ID = "r1"
PASSWORD = "Pw-5f3c9a-never-shown"  # planted in the configuration file: never in a result
CONFIG = (b"# guichet\n"
          b"keystore.password=" + PASSWORD.encode() + b"\n"
          b"sne.cert=/opt/guichet/conf/Chiffrement_SNEV4.cer\n"
          b"sne.ac=AC_SNE_V4.der\n"
          b"other=unchanged line\n"
          b"backup.cert=Chiffrement_SNEV4.cer\n")
REWRITES = [(r"Chiffrement_SNEV4\.cer", "Chiffrement_SNEV5.cer"),
            (r"^sne\.ac=AC_SNE_V4\.der$", "sne.ac=AC_SNE_V5.der")]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Tree:
    """The tree below ``root`` (the host's ``/``), with ``der``/``pem`` of the test PKI."""

    def __init__(self, root: str, pki: dict) -> None:
        self.root = root
        self.pki = pki
        self.quarantine_dir = self.p("var/lib/sne-guichet/quarantine")
        self.backup_dir = self.p("var/backups/sne-guichet")
        self.strays = [self.p("opt/guichet/lib/Chiffrement_SNEV4.cer"),
                       self.p("opt/guichet/ac/ac-v4.pem"),
                       self.p("home/guichet/old/sne-v4.pem")]
        self.taken = self.p("srv/copy/Chiffrement_SNEV4.cer")  # its place is taken
        self.attention = [self.p("home/guichet/bundle.pem")]  # root + V4: not movable
        self.declared = self.p("etc/guichet/certs")  # a declared pem_dir holding V4
        self.link = self.p("opt/guichet/current.cer")  # a link to a stray: never moved
        self.config = self.p("opt/guichet/conf/guichet.properties")
        self.quiet_config = self.p("opt/guichet/conf/logging.properties")  # nothing to change

    def p(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def cert(self, ident: str, kind: str = "der") -> bytes:
        with open(os.path.join(self.pki["dir"], ident + "." + kind), "rb") as handle:
            return handle.read()

    def sha(self, ident: str) -> str:
        return self.pki["certificates"][ident]["sha256"]

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)

    def make(self) -> Tree:
        self.write(self.strays[0], self.cert("chiffrement-v4"), 0o640)
        self.write(self.strays[1], self.cert("ac-v4", "pem"))
        self.write(self.strays[2], self.cert("chiffrement-v4", "pem") + self.cert("ac-v4", "pem"), 0o600)
        self.write(self.taken, self.cert("chiffrement-v4"))
        self.write(self.place(self.taken), b"an earlier quarantined copy: never written over\n")
        for folder in self._between(self.quarantine_dir, os.path.dirname(self.place(self.taken))):
            os.chmod(folder, 0o700)
        self.write(self.attention[0], self.cert("root", "pem") + self.cert("chiffrement-v4", "pem"))
        self.write(os.path.join(self.declared, "v4.pem"), self.cert("chiffrement-v4", "pem"))
        os.symlink(os.path.relpath(self.strays[0], os.path.dirname(self.link)), self.link)
        os.makedirs(os.path.dirname(self.backup_dir))  # /var/backups is there on a host
        self.write(self.config, CONFIG, 0o640)
        self.write(self.quiet_config, b"level=INFO\n", 0o600)
        self.write(self.p("opt/guichet/conf/README"), b"unrelated\n")
        return self

    @staticmethod
    def _between(top: str, folder: str) -> list:
        found = []
        while folder != top and folder.startswith(top):
            found.append(folder)
            folder = os.path.dirname(folder)
        return found

    def place(self, path: str, run_id: str = RUN_ID) -> str:
        return os.path.join(self.quarantine_dir, run_id, path.lstrip(os.sep))

    def params(self, run_id: str = RUN_ID, **changes: object) -> dict:
        params = dict(
            sha256=[self.sha(i) for i in RETIRED], paths=[self.root], exclude=[], max_depth=12,
            passwords=None, declared=[self.declared], quarantine=True,
            quarantine_dir=self.quarantine_dir,
            config_files=[{"path": path, "regexp": regexp, "replace": replace}
                          for path in (self.config, self.quiet_config) for regexp, replace in REWRITES],
            backup=True, backup_dir=self.backup_dir, run_id=run_id, lock_timeout=5)
        params.update(changes)
        return params

    def new_config(self) -> bytes:
        return (CONFIG.replace(b"Chiffrement_SNEV4.cer", b"Chiffrement_SNEV5.cer")
                .replace(b"AC_SNE_V4.der", b"AC_SNE_V5.der"))

    def snapshot(self, times: bool = False, skip: tuple = ()) -> dict:
        """rel -> what it is (kind, mode, owner, content digest or link target; ``times``: the
        modification times too, folders included), for everything below the root."""
        found = {}
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, self.root)
                if any(rel == s or rel.startswith(s + os.sep) for s in skip):
                    continue
                st = os.lstat(full)
                what = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
                if stat.S_ISLNK(st.st_mode):
                    what.append(os.readlink(full))
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as handle:
                        what.append(digest(handle.read()))
                if times and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    what.append(st.st_mtime_ns)
                found[rel] = tuple(what)
        return found

    def outside(self) -> dict:
        """The snapshot without the quarantine and backup folders."""
        return self.snapshot(skip=(os.path.relpath(self.quarantine_dir, self.root),
                                   os.path.relpath(self.backup_dir, self.root)))

    def manifest(self, run_id: str = RUN_ID) -> list:
        path = os.path.join(self.backup_dir, run_id, "manifest.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, "rb") as handle:
            return [json.loads(line) for line in handle.read().splitlines()]

    def rollback(self, run_id: str = RUN_ID) -> None:
        """What playbooks/rollback.yml does on the host, with the same commands: each
        ``replaced`` backup put back with ``cp -a --remove-destination`` (unless identical),
        each ``created`` file removed, each quarantined copy moved back with ``mv
        --no-clobber`` to its path without the quarantine prefix."""
        for entry in self.manifest(run_id):
            if entry["action"] == "replaced":
                same = subprocess.run(["cmp", "-s", entry["backup"], entry["path"]], check=False)
                if same.returncode != 0 or os.path.islink(entry["backup"]):
                    subprocess.run(["cp", "-a", "--remove-destination", "--", entry["backup"],
                                    entry["path"]], check=True)
            elif entry["action"] == "created" and os.path.lexists(entry["path"]):
                os.unlink(entry["path"])
        top = os.path.join(self.quarantine_dir, run_id)
        for folder, _dirs, files in os.walk(top):
            for name in files:
                source = os.path.join(folder, name)
                dest = source[len(top):]
                if not os.path.lexists(dest):
                    subprocess.run(["mv", "--no-clobber", "--", source, dest], check=True)


def copy_tree(source: str, dest: str) -> None:
    """A copy of a tree, links as links, modes kept."""
    shutil.copytree(source, dest, symlinks=True)
