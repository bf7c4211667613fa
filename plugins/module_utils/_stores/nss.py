# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``nss``: an NSS database in the ``sql:`` format, through certutil.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only (and certutil, Debian package
libnss3-tools, on the host).

The store's ``path`` is the database folder (``cert9.db``, ``key4.db``, ``pkcs11.txt``).
Its entries are its certificates (name = nickname), each read with
``certutil -L -n NICK -a`` and known by the SHA-256 of its DER, so that the retired
generation is removed whatever its nickname. Private keys (``key4.db``) and the other
certificates are never touched: ``certutil -K`` must list the same keys afterwards.

Trust of an added certificate: ``C,,`` (a trusted authority for TLS) for an authority,
``P,,`` (a trusted peer) for any other certificate. An authority is what the OS trust
anchors take: a certificate whose basicConstraints say CA, or a self-issued version 1
certificate (an old-style root).

All or nothing: certutil works on a copy of the database files in a private folder beside
the database (same file system); the copy is re-read (listing, every certificate, keys)
and must be exactly the plan; then each file that changed is backed up (``Backups``) and
renamed over the original, ``cert9.db`` last (``INSTALL_ORDER``), the owner, mode and
SELinux context of the original kept. When a rename
fails, the files already replaced are put back byte for byte. A legacy database
(``cert8.db``, dbm format, no ``cert9.db``) is reported, never converted (NSS would upgrade
it when opened as ``sql:``, so it is not even read). The database password goes to
certutil on its standard input (``-f /dev/stdin``): never on its command line nor in a file.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    Backups,
    _os_error,
    _settle,
    fsync_folder,
    remove_stale_folders,
    selinux_context,
    set_selinux_context,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import read_bytes
from ansible_collections.sne.guichet.plugins.module_utils._formats.certutil import Certutil
from ansible_collections.sne.guichet.plugins.module_utils._stores._journal import restore, snapshot
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import (
    CertEntry,
    Plan,
    Store,
    StoreSpec,
    changed_since_read,
    check_creatable,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import cert_info

DB_FILES = ("cert9.db", "key4.db", "pkcs11.txt")
# The order of the renames: cert9.db last. NSS keeps the signatures of trust attributes in
# key4.db, so a new key4.db beside the old cert9.db (a run killed between two renames) only
# holds signatures of nothing yet, and the rerun, which sees the old certificates, does it
# again; an old key4.db beside the new cert9.db would leave the new trust unsigned.
INSTALL_ORDER = ("key4.db", "pkcs11.txt", "cert9.db")
LEGACY_FILES = ("cert8.db", "key3.db", "secmod.db")
AUTHORITY_TRUST = "C,,"
PEER_TRUST = "P,,"
SQLITE_MAGIC = b"SQLite format 3\x00"
_WORK = re.compile(r"\..+\.nss-(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}\.sne-tmp", re.DOTALL)

# What load() saw: [(nickname, trust)], {nickname: [sha256]}, keys
Listing = List[Tuple[str, str]]


def is_authority(der: bytes) -> bool:
    """A CA certificate, or a self-issued v1 certificate (as the OS trust anchors decide)."""
    info = cert_info(der)
    return bool(info["is_ca"] or (info["version"] == 1 and info["self_issued"]))


def trust_for(der: bytes) -> str:
    """The trust flags an added certificate gets: ``C,,`` an authority, ``P,,`` a peer."""
    return AUTHORITY_TRUST if is_authority(der) else PEER_TRUST


class _View:
    """A database as certutil shows it: nicknames and trust, certificates, keys."""

    def __init__(self, listing: Listing, by_nick: Dict[str, List[str]],
                 ders: Dict[str, bytes], keys: List[Tuple[str, str, str]]) -> None:
        self.listing = listing
        self.by_nick = by_nick  # nickname -> sha256 of what -L -n NICK shows
        self.ders = ders  # sha256 -> DER
        self.keys = keys

    def trust(self) -> Dict[str, str]:
        return dict(self.listing)


def read_view(tool: Certutil) -> _View:
    """Every certificate (by nickname), its trust, and the private keys."""
    listing = tool.listing()
    by_nick: Dict[str, List[str]] = {}
    ders: Dict[str, bytes] = {}
    for nick, _trust in listing:
        if nick in by_nick:
            continue
        shas = []
        for der in tool.ders(nick):
            fingerprint = sha256_fingerprint(der)
            ders.setdefault(fingerprint, der)
            shas.append(fingerprint)
        by_nick[nick] = sorted(set(shas))
    return _View(listing, by_nick, ders, tool.keys())


def _nickname_of(view: _View) -> Dict[str, str]:
    """sha256 -> the nickname it is listed under: the nickname showing it alone, else the
    first nickname showing it (several certificates with one subject)."""
    names: Dict[str, str] = {}
    for nick, shas in view.by_nick.items():
        if len(shas) == 1:
            names[shas[0]] = nick
    for nick, shas in view.by_nick.items():
        for fingerprint in shas:
            names.setdefault(fingerprint, nick)
    return names


class NssStore(Store):
    """An NSS ``sql:`` database folder."""

    TYPE = "nss"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._files: Dict[str, Optional[bytes]] = {}  # the database files load() read
        self._folder_exists = False
        self._view: Optional[_View] = None

    # ---------------------------------------------------------------- reading
    def _read_files(self) -> Dict[str, Optional[bytes]]:
        folder = self.spec.path
        return dict((name, read_bytes(os.path.join(folder, name))) for name in DB_FILES)

    def _tool(self, folder: str) -> Certutil:
        return Certutil(folder, self.spec.password, self.run_command, self.find_tool)

    def load(self) -> List[CertEntry]:
        folder = self.spec.path
        self._loaded = True
        self.details.update(backend="certutil")
        if not os.path.lexists(folder):
            check_creatable(self.spec)
            self._folder_exists, self._files, self._view = False, {}, None
            self.details.update(exists=False, private_keys=[])
            return []
        if not os.path.isdir(folder):
            raise StoreError(UNKNOWN_FORMAT, "%s is not a folder (an NSS database is the folder "
                             "holding cert9.db and key4.db)" % folder)
        self._folder_exists = True
        self._remove_stale_work()
        if not os.path.lexists(os.path.join(folder, "cert9.db")):
            legacy = [n for n in LEGACY_FILES if os.path.lexists(os.path.join(folder, n))]
            if legacy:
                raise StoreError(UNSUPPORTED, "%s is a legacy NSS database (%s, dbm format); it is "
                                 "not converted: upgrade it to the sql format (cert9.db, key4.db) "
                                 "first" % (folder, ", ".join(legacy)))
            partial = [n for n in DB_FILES[1:] if os.path.lexists(os.path.join(folder, n))]
            if partial:
                raise StoreError(CORRUPT, "%s holds %s but no cert9.db: an incomplete NSS "
                                 "database, left alone" % (folder, " and ".join(partial)))
            if not self.spec.create:
                raise StoreError(NOT_FOUND, "no NSS database (cert9.db) in %s" % folder)
            self._files, self._view = self._read_files(), None
            self.details.update(exists=False, private_keys=[])
            return []
        links = [n for n in DB_FILES if os.path.islink(os.path.join(folder, n))]
        if links:
            raise StoreError(UNSUPPORTED, "%s: %s is a symbolic link; the database files are "
                             "replaced by renames, which would replace the link: point the store "
                             "at the real folder" % (folder, ", ".join(links)))
        files = self._read_files()
        if files["cert9.db"] is not None and not files["cert9.db"].startswith(SQLITE_MAGIC):
            raise StoreError(CORRUPT, "%s/cert9.db is not an SQLite file: not an NSS sql "
                             "database, or damaged" % folder)
        with self._tool(folder) as tool:
            view = read_view(tool)
        if self._read_files() != files:
            raise changed_since_read(folder, "changed while it was read")
        self._files, self._view = files, view
        self.details.update(exists=True, private_keys=["%s %s %s" % k for k in view.keys])
        names = _nickname_of(view)
        return [CertEntry(names[fingerprint], der) for fingerprint, der in view.ders.items()]

    # ---------------------------------------------------------------- planning
    def policy(self, entries: List[CertEntry], wanted: List[CertEntry],
               absent: Set[str]) -> Plan:
        plan = super().policy(entries, wanted, absent)
        self.details["trust"] = dict((e.name, trust_for(e.der)) for e in plan.add)
        return plan

    # ---------------------------------------------------------------- writing
    def check_unchanged(self) -> None:
        folder = self.spec.path
        if not self._folder_exists:
            if os.path.lexists(folder):
                raise changed_since_read(folder, "appeared")
            return
        if self._read_files() != self._files:
            raise changed_since_read(folder)

    def _nicknames(self, plan: Plan) -> Tuple[List[str], List[Tuple[str, CertEntry, str]]]:
        """Nicknames to delete, and (nickname, certificate, trust) to add: a nickname already
        taken gets ``-2``, ``-3``..."""
        view = self._view
        deletes: List[str] = []
        removed = set(e.sha256 for e in plan.remove)
        if view is not None:
            for entry in plan.remove:
                shas = view.by_nick.get(entry.name)
                if shas is None or entry.sha256 not in shas:
                    raise StoreError(VERIFY_FAILED, "nickname %r does not hold the certificate %s "
                                     "planned for removal" % (entry.name, entry.sha256))
                if set(shas) - removed:
                    raise StoreError(UNSUPPORTED, "%s: the nickname %r finds several certificates "
                                     "(same subject) and only some are to be removed; certutil "
                                     "cannot tell them apart: remove it by hand"
                                     % (self.spec.path, entry.name))
                if entry.name not in deletes:
                    deletes.append(entry.name)
        taken = set(n.lower() for n in (view.by_nick if view else {})) - \
            set(n.lower() for n in deletes)
        adds = []
        for cert in plan.add:
            nick, count = cert.name, 2
            while nick.lower() in taken:
                nick = "%s-%d" % (cert.name, count)
                count += 1
            taken.add(nick.lower())
            adds.append((nick, cert, trust_for(cert.der)))
        return deletes, adds

    def _remove_stale_work(self) -> None:
        """Remove the working copies killed runs left beside the database: ours by name
        (with the pid of a process that no longer runs), older than this process, folders
        of this user, private (0700). A run killed after its last rename leaves one that no
        later change would remove, so load() calls this too. Best effort."""
        remove_stale_folders(os.path.dirname(os.path.abspath(self.spec.path)), _WORK)

    def _work_folder(self) -> str:
        """A private 0700 folder beside the database (same file system: renames)."""
        folder = os.path.abspath(self.spec.path)
        parent, base = os.path.dirname(folder), os.path.basename(folder)
        self._remove_stale_work()
        try:
            return tempfile.mkdtemp(prefix=".%s.nss-%d-" % (base[:200], os.getpid()),
                                    suffix=".sne-tmp", dir=parent)
        except OSError as exc:
            raise _os_error("prepare a working copy in", parent, exc)

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        deletes, adds = self._nicknames(plan)
        work = self._work_folder()
        try:
            with self._tool(work) as tool:
                written = self._build(tool, work, deletes, adds)
            return self._install(work, written, backups)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _build(self, tool: Certutil, work: str, deletes: List[str],
               adds: List[Tuple[str, CertEntry, str]]) -> Dict[str, bytes]:
        """Make the planned database in ``work`` and check it; its files' content."""
        created = self._view is None
        try:
            if created:
                tool.create()
            else:
                for name in DB_FILES:
                    if self._files.get(name) is not None:
                        target = os.path.join(work, name)
                        with open(target, "wb") as handle:
                            handle.write(self._files[name] or b"")
                        os.chmod(target, 0o600)
            for nick in deletes:
                tool.delete(nick)
            for number, (nick, cert, trust) in enumerate(adds):
                tool.add(nick, trust, cert.der, number)
            after = read_view(tool)
        except StoreError as exc:
            raise StoreError(exc.code, "%s: the change failed on a working copy, the database is "
                             "as it was (%s)" % (self.spec.path, exc.reason))
        except OSError as exc:
            raise _os_error("prepare a working copy of", self.spec.path, exc)
        self._verify(after, deletes, adds)
        written: Dict[str, bytes] = {}
        for name in DB_FILES:
            data = read_bytes(os.path.join(work, name))
            if data is not None:
                written[name] = data
        if "cert9.db" not in written or "key4.db" not in written:
            raise StoreError(VERIFY_FAILED, "%s: certutil left no database in the working copy"
                             % self.spec.path)
        for name in written:
            self._settle(os.path.join(work, name), name)
        return written

    def _verify(self, after: _View, deletes: List[str],
                adds: List[Tuple[str, CertEntry, str]]) -> None:
        """The working copy must be the plan: the rest byte-identical, keys unchanged."""
        before = self._view or _View([], {}, {}, [])
        problems = []
        added = dict((cert.sha256, (nick, trust)) for nick, cert, trust in adds)
        removed = set()
        for nick in deletes:
            removed.update(before.by_nick[nick])
        want = dict(before.trust())
        for nick in deletes:
            del want[nick]
        for nick, _cert, trust in adds:
            want[nick] = trust
        got = after.trust()
        if got != want:
            problems.append("nicknames and trust %s, planned %s"
                            % (sorted(got.items()), sorted(want.items())))
        for nick, shas in before.by_nick.items():
            if nick in deletes:
                continue
            now = set(after.by_nick.get(nick, [])) - set(added)
            if now != set(shas) - removed:
                problems.append("nickname %r does not hold the same certificates" % nick)
        for fingerprint, der in before.ders.items():
            if fingerprint not in removed and after.ders.get(fingerprint) != der:
                problems.append("certificate %s changed or missing" % fingerprint)
        for fingerprint in removed:
            if fingerprint in after.ders:
                problems.append("retired certificate %s still present" % fingerprint)
        for fingerprint, (nick, _trust) in added.items():
            if fingerprint not in after.by_nick.get(nick, []):
                problems.append("certificate %s not added as %r" % (fingerprint, nick))
        if after.keys != before.keys:
            problems.append("the private keys changed")
        if problems:
            raise StoreError(VERIFY_FAILED, "%s: the working copy is not the planned database "
                             "(%s); nothing written" % (self.spec.path, "; ".join(problems[:5])))

    def _settle(self, path: str, name: str) -> None:
        """Owner, mode and SELinux context of the file it replaces (or the spec's)."""
        original = os.path.join(self.spec.path, name)
        try:
            current: Optional[os.stat_result] = os.stat(original)
        except OSError:
            current = None
        try:
            _settle(path, current, self.spec.owner, self.spec.group,
                    self.spec.mode or (None if current else "0600"))
            if current is not None:
                set_selinux_context(path, selinux_context(original), tolerate_unsupported=True)
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        except (OSError, KeyError) as exc:
            raise StoreError(IO_ERROR, "%s: cannot give %s the owner and mode of the database "
                             "files: %s" % (self.spec.path, name, exc))

    def _install(self, work: str, written: Dict[str, bytes], backups: Backups) -> Optional[str]:
        """Back up and rename each file over the original; undone on any failure."""
        folder = self.spec.path
        self.check_unchanged()  # certutil ran meanwhile: still what was read?
        undo: List[Callable[[], None]] = []
        try:
            if not os.path.lexists(folder):
                backups.save(folder)
                try:
                    os.mkdir(folder, 0o755)
                except OSError as exc:
                    raise _os_error("create folder", folder, exc)
                undo.append(lambda: os.rmdir(folder))
            for name in INSTALL_ORDER:
                target = os.path.join(folder, name)
                if name not in written or written[name] == self._files.get(name):
                    continue  # a file certutil did not change is left as it is
                snap = snapshot(target)
                backups.save(target)
                try:
                    os.rename(os.path.join(work, name), target)
                except OSError as exc:
                    raise _os_error("replace", target, exc)
                undo.append(lambda t=target, s=snap: restore(t, s))  # type: ignore[misc]
            fsync_folder(folder)
            if dict((n, d) for n, d in self._read_files().items() if d is not None) != written:
                raise StoreError(VERIFY_FAILED, "%s: the database files are not what was "
                                 "checked" % folder)
        except BaseException as exc:
            failed = []
            for step in reversed(undo):
                try:
                    step()
                except (OSError, StoreError) as undo_exc:
                    failed.append(str(undo_exc))
            if not isinstance(exc, StoreError):
                raise
            if failed:
                raise StoreError(exc.code, "%s; putting the database back FAILED (%s): restore it "
                                 "from the backup %s" % (exc.reason, "; ".join(failed),
                                                         backups.root or "(disabled)"))
            raise StoreError(exc.code, "%s; %s is as it was" % (exc.reason, folder))
        self._files = dict((n, written.get(n)) for n in DB_FILES)
        self._folder_exists = True
        if not backups.root:
            return None
        return os.path.join(backups.root, "files", os.path.abspath(folder).lstrip(os.sep))
