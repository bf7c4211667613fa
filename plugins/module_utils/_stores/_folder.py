# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Folder keystores (hashed PEM folder, OS trust anchors): scan, plan helpers, journaled apply.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

The folders keep every file and link they do not need to change. Folder changes are
journaled (``_journal``): the whole final state is computed and checked first, each
step is backed up before it is made, and if a step fails the steps already made are
undone, so the folder is left as it was.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    NOT_FOUND,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups, _os_error
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import read_bytes
from ansible_collections.sne.guichet.plugins.module_utils._stores._files import (
    _TMP_SUFFIX,
    CERT_EXTENSIONS,
    _dedupe,
    _parse_cert_file,
    _safe_stem,
    _splice,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._journal import Journal
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import (
    CertEntry,
    Plan,
    Store,
    StoreSpec,
    changed_since_read,
    check_creatable,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import der_to_pem, subject_hash

# --------------------------------------------------------------------------- folders


class _Node:
    """One directory entry as scanned: a file, a link, or something else."""

    __slots__ = ("kind", "target", "digest", "certs", "blocks", "data", "mode")

    def __init__(self, kind: str, target: Optional[str] = None, digest: Optional[str] = None,
                 data: Optional[bytes] = None) -> None:
        self.kind = kind  # file | link | dir | other
        self.target = target  # readlink() of a link
        self.digest = digest  # SHA-256 of a regular file's content (or size/mtime)
        self.data = data  # content read (cert candidates only; through links)
        self.certs: Optional[List[bytes]] = None  # None: not a certificate holder
        self.blocks: List[Tuple[str, bytes, int, int]] = []
        self.mode = 0

    def signature(self) -> Tuple[str, Optional[str], Optional[str]]:
        return (self.kind, self.target, self.digest if self.kind == "file" else None)


def _hash_of(der: bytes) -> Optional[str]:
    """OpenSSL subject hash, or None for a name OpenSSL itself cannot read."""
    try:
        return subject_hash(der)
    except ValueError:
        return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _FolderStore(Store):
    """Common part of the folder backends: scan, journaled apply, rescan and compare."""

    RECURSIVE = False
    NEW_EXTENSION = ".pem"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._missing = False
        self._nodes: Dict[str, _Node] = {}

    # ---- scan

    def _is_candidate(self, name: str) -> bool:
        """Whether a regular file (or link to one) may hold certificates."""
        return name.lower().endswith(CERT_EXTENSIONS)

    def _scan(self) -> Dict[str, _Node]:
        root = self.spec.path
        nodes: Dict[str, _Node] = {}
        try:
            if not os.path.isdir(root):
                if os.path.lexists(root):
                    raise StoreError(UNKNOWN_FORMAT, "%s is not a folder" % root)
                raise StoreError(NOT_FOUND, "folder %s does not exist" % root)
            pending = [""]
            while pending:
                sub = pending.pop()
                for name in sorted(os.listdir(os.path.join(root, sub))):
                    rel = os.path.join(sub, name) if sub else name
                    if name.endswith(_TMP_SUFFIX):
                        continue
                    full = os.path.join(root, rel)
                    st = os.lstat(full)
                    if stat.S_ISLNK(st.st_mode):
                        node = _Node("link", target=os.readlink(full))
                    elif stat.S_ISREG(st.st_mode):  # a certificate file's: its content's, once read
                        node = _Node("file", digest="size=%d,mtime=%d" % (st.st_size, st.st_mtime_ns))
                        node.mode = stat.S_IMODE(st.st_mode)
                    elif stat.S_ISDIR(st.st_mode):
                        node = _Node("dir")
                        if self.RECURSIVE:
                            pending.append(rel)
                    else:
                        node = _Node("other")
                    nodes[rel] = node
        except OSError as exc:
            raise _os_error("read folder", root, exc)
        self._read_candidates(nodes)
        return nodes

    def _read_node(self, rel: str, node: _Node) -> None:
        """Read a certificate candidate (through a link). Not a holder, skipped: a dangling
        link, or one to a folder, FIFO, socket or device, or a file swapped for one since
        the scan (never opened for a blocking read). A file over 64 MiB: UNSUPPORTED, the
        store is not read (what it holds cannot be known)."""
        full = os.path.join(self.spec.path, rel)
        try:
            data = read_bytes(full)
        except StoreError as exc:
            if exc.code != UNKNOWN_FORMAT:  # UNKNOWN_FORMAT: not a file
                raise
            data = None
        if data is None:
            return
        node.data = data
        blocks = _parse_cert_file(node.data, full)
        node.blocks = blocks
        node.certs = [der for _l, der, _s, _e in blocks] if blocks else None
        if node.kind == "file":
            node.digest = _digest(node.data)

    def _read_candidates(self, nodes: Dict[str, _Node]) -> None:
        for rel, node in nodes.items():
            if node.kind in ("file", "link") and self._is_candidate(rel):
                self._read_node(rel, node)

    def _entries(self, nodes: Dict[str, _Node]) -> List[CertEntry]:
        entries = []
        for rel in sorted(nodes):
            certs = nodes[rel].certs
            if not certs:
                continue
            if len(certs) == 1:
                entries.append(CertEntry(rel, certs[0]))
            else:
                entries.extend(CertEntry("%s#%d" % (rel, i), der) for i, der in enumerate(certs))
        return entries

    def load(self) -> List[CertEntry]:
        self._loaded = True
        if not os.path.lexists(self.spec.path):
            check_creatable(self.spec)
            self._missing = True
            self._nodes = {}
            return []
        self._missing = False
        self._nodes = self._scan()
        return self._entries(self._nodes)

    # ---- plan helpers shared by the folder backends

    def _new_name(self, entry: CertEntry, taken: Set[str]) -> str:
        stem = _safe_stem(entry.name, entry.sha256)
        name = stem + self.NEW_EXTENSION
        count = 1
        while name in taken:
            name = "%s_%d%s" % (stem, count, self.NEW_EXTENSION)
            count += 1
        return name

    def _file_ops(self, plan: Plan, nodes: Dict[str, _Node]) -> Tuple[
            List[Tuple[str, str, Any]], Dict[str, _Node], Dict[str, str]]:
        """Operations on holder files: (op, name, arg), the expected nodes afterwards,
        and for each added certificate the file that will hold it."""
        remove = set(e.sha256 for e in plan.remove)
        ops: List[Tuple[str, str, Any]] = []
        expected = dict(nodes)
        for rel in sorted(nodes):
            node = nodes[rel]
            if not node.certs:
                continue
            gone = [der for der in node.certs if sha256_fingerprint(der) in remove]
            if not gone:
                continue
            if len(gone) == len(node.certs):
                ops.append(("remove", rel, None))
                del expected[rel]
                continue
            if node.kind == "link" or node.blocks[0][2] < 0:
                raise StoreError(UNSUPPORTED, "%s holds several certificates and only some "
                                 "are to be removed; it is a link or DER: edit it by hand"
                                 % os.path.join(self.spec.path, rel))
            if node.data is None:
                raise StoreError(UNSUPPORTED, "internal error: no content read for %s" % rel)
            data = _splice(node.data, node.blocks, remove, [])
            ops.append(("write", rel, data))
            expected[rel] = self._expected_file(data, os.path.join(self.spec.path, rel))
        placed: Dict[str, str] = {}
        taken = set(expected) | set(nodes)  # never reuse the name of a removed file
        for entry in _dedupe(plan.add):
            if entry.sha256 in remove:
                continue
            name = self._new_name(entry, taken)
            taken.add(name)
            data = der_to_pem(entry.der)
            ops.append(("write", name, data))
            expected[name] = self._expected_file(data, os.path.join(self.spec.path, name))
            placed[entry.sha256] = name
        return ops, expected, placed

    @staticmethod
    def _expected_file(data: bytes, where: str) -> _Node:
        node = _Node("file", digest=_digest(data), data=data)
        node.blocks = _parse_cert_file(data, where)
        node.certs = [der for _l, der, _s, _e in node.blocks] or None
        return node

    # ---- apply machinery

    def check_unchanged(self) -> None:
        """StoreError(IO_ERROR) when the folder is not what :meth:`load` scanned."""
        if self._missing:
            if os.path.lexists(self.spec.path):
                raise changed_since_read(self.spec.path, "appeared")
            return
        now = self._scan()
        if {k: v.signature() for k, v in now.items()} != \
                {k: v.signature() for k, v in self._nodes.items()}:
            raise changed_since_read(self.spec.path)

    def _check_model(self, nodes: Dict[str, _Node], plan: Plan) -> List[str]:
        """Problems of a (planned or re-read) folder state against the plan."""
        problems = []
        held = set()
        for node in nodes.values():
            for der in node.certs or []:
                held.add(sha256_fingerprint(der))
        for entry in plan.remove:
            if entry.sha256 in held:
                problems.append("retired certificate %s still present" % entry.sha256)
        for entry in plan.add:
            if entry.sha256 not in held and entry.sha256 not in set(e.sha256 for e in plan.remove):
                problems.append("certificate %s was not added" % entry.sha256)
        return problems

    def _run(self, ops: List[Tuple[str, str, Any]], expected: Dict[str, _Node], plan: Plan,
             backups: Backups) -> None:
        """Check the planned state, carry out ``ops`` journaled, re-read and compare."""
        problems = self._check_model(expected, plan) + self._check_links(expected, plan)
        if problems:
            raise StoreError(VERIFY_FAILED, "%s: planned change is inconsistent (%s); nothing "
                             "written" % (self.spec.path, "; ".join(problems)))
        journal = Journal(backups)
        root = self.spec.path
        try:
            if self._missing:
                journal.mkdir(root)
            for op, rel, arg in ops:
                full = os.path.join(root, rel)
                if op == "write":
                    journal.write(full, arg, _verify_bytes(arg), self.spec.file_attrs())
                elif op == "link":
                    journal.symlink(arg, full)
                elif op == "rename":
                    journal.rename(os.path.join(root, arg), full)
                elif op == "remove":
                    journal.remove(full)
                else:  # pragma: no cover
                    raise AssertionError(op)
            after = self._scan()
            want = {k: v.signature() for k, v in expected.items()}
            got = {k: v.signature() for k, v in after.items()}
            if got != want:
                diff = sorted(set(k for k in set(want) | set(got) if want.get(k) != got.get(k)))
                raise StoreError(VERIFY_FAILED, "%s: folder after the change differs from the "
                                 "plan at %s" % (root, ", ".join(diff[:5])))
            problems = self._check_model(after, plan) + self._check_links(after, plan)
            if problems:
                raise StoreError(VERIFY_FAILED, "%s: %s" % (root, "; ".join(problems)))
        except BaseException as exc:
            failed = journal.rollback()
            if not isinstance(exc, (StoreError, OSError)):
                raise
            reason = exc.reason if isinstance(exc, StoreError) else str(exc)
            code = exc.code if isinstance(exc, StoreError) else IO_ERROR
            if failed:
                raise StoreError(code, "%s; undoing the steps already made FAILED for: %s; "
                                 "restore them from the backup %s"
                                 % (reason, ", ".join(failed), backups.root or "(disabled)"))
            raise StoreError(code, "%s; the steps already made were undone, %s is as it was"
                             % (reason, root))
        self._missing = False
        self._nodes = after

    def _check_links(self, nodes: Dict[str, _Node], plan: Plan) -> List[str]:
        return []

    def _backup_path(self, backups: Backups) -> Optional[str]:
        if not backups.root:
            return None
        return os.path.join(backups.root, "files", os.path.abspath(self.spec.path).lstrip(os.sep))


def _verify_bytes(data: bytes) -> Callable[[str], None]:
    def verify(tmp: str) -> None:
        with open(tmp, "rb") as handle:
            if handle.read() != data:
                raise StoreError(VERIFY_FAILED, "%s: re-read content differs from what was "
                                 "written" % tmp)
    return verify
