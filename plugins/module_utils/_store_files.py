# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""File and folder keystores: PEM bundle, single DER file, hashed PEM folder, OS trust anchors.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Every backend reads its store into CertEntry objects, plans, and applies the plan so
that nothing it was not asked to touch changes: the PEM bundle keeps every byte
outside the blocks it removes; the folders keep every file and link they do not need
to change. Folder changes are journaled: the whole final state is computed and checked
first, each step is backed up before it is made, and if a step fails the steps already
made are undone, so the folder is left as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shlex
import stat
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._atomic import (
    Backups,
    _os_error,
    atomic_write,
    remove_file,
)
from ansible_collections.sne.guichet.plugins.module_utils._certs import (
    CERTIFICATE_LABELS,
    cert_info,
    certificate_from_block,
    der_to_pem,
    load_certificates,
    looks_like_pem,
    pem_blocks,
    subject_hash,
)
from ansible_collections.sne.guichet.plugins.module_utils._store_base import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    TOOL_MISSING,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    CertEntry,
    Plan,
    Store,
    StoreError,
    StoreSpec,
    sha256_fingerprint,
)

CERT_EXTENSIONS = (".pem", ".crt", ".cer")
_HASH_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
_TMP_SUFFIX = ".sne-tmp"


# --------------------------------------------------------------------------- helpers


def _read(path: str, create: bool) -> Optional[bytes]:
    """Content of ``path``; None when it does not exist and ``create`` is set."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            if create:
                folder = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(folder):
                    raise StoreError(NOT_FOUND, "cannot create %s: folder %s does not exist"
                                     % (path, folder))
                return None
            raise StoreError(NOT_FOUND, "%s does not exist" % path)
        if exc.errno == errno.EISDIR:
            raise StoreError(UNKNOWN_FORMAT, "%s is a folder, not a file" % path)
        raise _os_error("read", path, exc)


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n\f\v" for ch in text.lstrip("\ufeff"))


def _only_comments(data: bytes) -> bool:
    """Empty, blank or only ``#`` comment lines: an empty PEM bundle."""
    return all(not line.strip() or line.lstrip().startswith(b"#")
               for line in data.splitlines())


def _newline(data: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in data else b"\n"


def _pem_text(der: bytes, newline: bytes) -> bytes:
    text = der_to_pem(der)
    return text.replace(b"\n", newline) if newline != b"\n" else text


def _wanted(present: List[CertEntry], names: Optional[List[str]]) -> List[CertEntry]:
    if names is None:
        return list(present)
    return [p for p in present if p.name in names]


def _safe_stem(name: str, sha256: str) -> str:
    """A file name stem from a present entry's name (never a hash-link name)."""
    stem = os.path.basename(name.replace("\\", "/"))
    for ext in CERT_EXTENSIONS + (".der",):
        if stem.lower().endswith(ext):
            stem = stem[:-len(ext)]
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", stem).strip("._")
    if not stem or _HASH_NAME.match(stem):
        stem = "cert-" + sha256.replace(":", "")[:16].lower()
    return stem


def _parse_cert_file(data: bytes, where: str) -> List[Tuple[str, bytes, int, int]]:
    """Certificates of a file in a folder store as PEM blocks or DER.

    Returns (label, certificate DER, start, end); start/end are -1 for DER. A file
    that is text without certificate blocks (a key, a README) holds none. A broken
    certificate raises StoreError(CORRUPT).
    """
    if looks_like_pem(data):
        try:
            blocks = pem_blocks(data)
        except ValueError as exc:
            raise StoreError(CORRUPT, "%s: %s" % (where, exc))
        found = []
        for label, der, start, end in blocks:
            if label not in CERTIFICATE_LABELS:
                continue
            try:
                cert = certificate_from_block(label, der)
                cert_info(cert)
            except ValueError as exc:
                raise StoreError(CORRUPT, "%s: certificate block at offset %d: %s"
                                 % (where, start, exc))
            found.append((label, cert, start, end))
        return found
    if not data.strip() or _is_text(data):
        return []
    try:
        certs = load_certificates(data)
        for cert in certs:
            cert_info(cert)
    except ValueError as exc:
        raise StoreError(CORRUPT, "%s: neither PEM nor a DER certificate (%s)" % (where, exc))
    return [("DER", cert, -1, -1) for cert in certs]


def _splice(data: bytes, blocks: List[Tuple[str, bytes, int, int]], remove: Set[str],
            add: List[bytes]) -> bytes:
    """``data`` without the certificate blocks whose SHA-256 is in ``remove`` (each with
    the line end that follows it), with ``add`` appended as PEM; all else unchanged."""
    out = []
    pos = 0
    for _label, der, start, end in blocks:
        if sha256_fingerprint(der) not in remove:
            continue
        out.append(data[pos:start])
        if data[end:end + 2] == b"\r\n":
            end += 2
        elif data[end:end + 1] == b"\n":
            end += 1
        pos = end
    out.append(data[pos:])
    result = b"".join(out)
    if add:
        newline = _newline(data)
        if result and not result.endswith(b"\n"):
            result += newline
        result += b"".join(_pem_text(der, newline) for der in add)
    return result


def _new_file_attrs(spec: StoreSpec) -> Dict[str, Optional[str]]:
    return {"owner": spec.owner, "group": spec.group, "mode": spec.mode}


def _dedupe(entries: List[CertEntry]) -> List[CertEntry]:
    seen: Set[str] = set()
    out = []
    for entry in entries:
        if entry.sha256 not in seen:
            seen.add(entry.sha256)
            out.append(entry)
    return out


# --------------------------------------------------------------------------- pem


class PemStore(Store):
    """A PEM file with one or more certificates, maybe keys, CRLs and text around them.

    Entries are named ``#<n> (line <l>)``: n counts every PEM block of the file from 0.
    Removing cuts the certificate block and the line end after it; adding appends at
    the end of the file. Every other byte is kept.
    """

    TYPE = "pem"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._loaded = False
        self._data: Optional[bytes] = None
        self._blocks: List[Tuple[str, bytes, int, int]] = []

    def _parse(self, data: bytes) -> Tuple[List[Tuple[str, bytes, int, int]], List[CertEntry]]:
        path = self.spec.path
        if not looks_like_pem(data):
            if _only_comments(data):
                return [], []
            if data[:1] == b"\x30":
                try:
                    load_certificates(data)
                    raise StoreError(UNKNOWN_FORMAT, "%s holds a DER certificate, not PEM; "
                                     "declare it with type der" % path)
                except ValueError:
                    pass
            if not _is_text(data):
                raise StoreError(UNKNOWN_FORMAT, "%s is not a PEM file (binary content)" % path)
            raise StoreError(UNKNOWN_FORMAT, "%s holds text but no PEM block: not a "
                             "certificate bundle, left untouched" % path)
        try:
            raw = pem_blocks(data)
        except ValueError as exc:
            raise StoreError(CORRUPT, "%s: %s" % (path, exc))
        blocks = []
        entries = []
        for index, (label, der, start, end) in enumerate(raw):
            if label in CERTIFICATE_LABELS:
                try:
                    der = certificate_from_block(label, der)
                    cert_info(der)
                except ValueError as exc:
                    line = data.count(b"\n", 0, start) + 1
                    raise StoreError(CORRUPT, "%s: certificate block #%d (line %d) is "
                                     "malformed: %s" % (path, index, line, exc))
                line = data.count(b"\n", 0, start) + 1
                entries.append(CertEntry("#%d (line %d)" % (index, line), der))
                blocks.append((label, der, start, end))
        return blocks, entries

    def load(self) -> List[CertEntry]:
        data = _read(self.spec.path, self.spec.create)
        self._data = data
        self._loaded = True
        if data is None:
            self._blocks = []
            return []
        self._blocks, entries = self._parse(data)
        return entries

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        return Store.plan(self, entries, _dedupe(_wanted(present, self.spec.names)), absent)

    def apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        if not self._loaded:
            self.load()
        if not plan.changed:
            return None
        path = self.spec.path
        before = self._data
        now = _read(path, self.spec.create)
        if now != before:
            raise StoreError(IO_ERROR, "%s changed while it was being updated; "
                             "nothing written, run again" % path)
        data = before or b""
        remove = set(e.sha256 for e in plan.remove)
        add = [e.der for e in _dedupe(plan.add) if e.sha256 not in remove]
        new = _splice(data, self._blocks, remove, add)
        kept = [sha256_fingerprint(der) for _l, der, _s, _e in self._blocks
                if sha256_fingerprint(der) not in remove]
        expected = kept + [sha256_fingerprint(der) for der in add]

        def verify(tmp: str) -> None:
            with open(tmp, "rb") as handle:
                written = handle.read()
            if written != new:
                raise StoreError(VERIFY_FAILED, "%s: re-read content differs from what was "
                                 "written" % path)
            blocks, _entries = self._parse(written)
            got = [sha256_fingerprint(der) for _l, der, _s, _e in blocks]
            if got != expected:
                raise StoreError(VERIFY_FAILED, "%s: certificates after the change are not "
                                 "the planned ones" % path)

        real = os.path.realpath(path) if os.path.islink(path) else path
        backup = backups.save(real)
        attrs = _new_file_attrs(self.spec) if before is None else {}
        atomic_write(path, new, verify=verify, **attrs)
        self._data = new
        self._blocks, _entries = self._parse(new)
        return backup


# --------------------------------------------------------------------------- der


class DerStore(Store):
    """A file holding exactly one certificate (e.g. ``Chiffrement_SNEV5.cer``).

    Written as DER; a file that was PEM (some ``.cer`` files are) stays PEM.
    Plan: see :meth:`plan`.
    """

    TYPE = "der"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._loaded = False
        self._data: Optional[bytes] = None
        self._pem = False

    def _parse(self, data: bytes) -> List[bytes]:
        path = self.spec.path
        if not data:
            return []
        if looks_like_pem(data):
            try:
                certs = load_certificates(data)
            except ValueError as exc:
                raise StoreError(CORRUPT, "%s: %s" % (path, exc))
            if not certs:
                raise StoreError(UNKNOWN_FORMAT, "%s is PEM without a certificate block"
                                 % path)
            self._pem = True
        else:
            if data[:1] != b"\x30":
                raise StoreError(UNKNOWN_FORMAT, "%s is not a DER certificate" % path)
            try:
                certs = load_certificates(data)
                for cert in certs:
                    cert_info(cert)
            except ValueError as exc:
                raise StoreError(CORRUPT, "%s: malformed DER certificate: %s" % (path, exc))
            self._pem = False
        if len(certs) != 1:
            raise StoreError(UNSUPPORTED, "%s holds %d certificates; a der store holds "
                             "exactly one (declare it with type pem)" % (path, len(certs)))
        return certs

    def load(self) -> List[CertEntry]:
        data = _read(self.spec.path, self.spec.create)
        self._data = data
        self._loaded = True
        self.details["encoding"] = "pem" if data and looks_like_pem(data) else "der"
        certs = self._parse(data) if data is not None else []
        return [CertEntry(os.path.basename(self.spec.path), der) for der in certs]

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        """One certificate fits: pick it, replace a retired one, refuse to overwrite others.

        The wanted certificate is the one named in ``spec.names``; otherwise the first
        present certificate of the same kind (CA or not) as the one the file holds;
        otherwise the first non-CA one; otherwise the first. If the file holds a
        certificate that is neither wanted nor retired, it is a conflict: overwriting it
        could lose something nobody asked to remove, so StoreError(UNSUPPORTED) is raised
        and the file is left alone.
        """
        candidates = [p for p in _wanted(present, self.spec.names) if p.sha256 not in absent]
        current = entries[0] if entries else None
        if self.spec.names is not None and len(_dedupe(candidates)) > 1:
            raise StoreError(UNSUPPORTED, "%s: a der store holds one certificate but names "
                             "%s select %d" % (self.spec.path, ", ".join(self.spec.names),
                                               len(_dedupe(candidates))))
        wanted = None
        if candidates:
            kinds = [(c, bool(cert_info(c.der)["is_ca"])) for c in candidates]
            if current is not None and self.spec.names is None:
                current_ca = bool(cert_info(current.der)["is_ca"])
                same = [c for c, ca in kinds if ca == current_ca]
                wanted = same[0] if same else None
            if wanted is None:
                leaves = [c for c, ca in kinds if not ca]
                wanted = leaves[0] if leaves else candidates[0]
        if current is None:
            return Plan(add=[wanted] if wanted else [], remove=[])
        if wanted is not None and current.sha256 == wanted.sha256:
            return Plan(add=[], remove=[])
        if current.sha256 in absent:
            return Plan(add=[wanted] if wanted else [], remove=[current])
        if wanted is None:
            return Plan(add=[], remove=[])
        raise StoreError(UNSUPPORTED, "%s holds another certificate (%s, SHA-256 %s) that "
                         "is neither wanted nor retired; left untouched (list its "
                         "fingerprint in absent to replace it, or point the store elsewhere)"
                         % (self.spec.path, cert_info(current.der)["subject"], current.sha256))

    def apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        if not self._loaded:
            self.load()
        if not plan.changed:
            return None
        path = self.spec.path
        now = _read(path, self.spec.create)
        if now != self._data:
            raise StoreError(IO_ERROR, "%s changed while it was being updated; "
                             "nothing written, run again" % path)
        adds = _dedupe(plan.add)
        if len(adds) > 1:
            raise StoreError(UNSUPPORTED, "%s: a der store holds one certificate, the plan "
                             "adds %d" % (path, len(adds)))
        real = os.path.realpath(path) if os.path.islink(path) else path
        if not adds:
            if self._data is None:
                return None
            backup = backups.save(real)
            remove_file(path)
            self._data = None
            return backup
        der = adds[0].der
        new = der_to_pem(der) if self._pem else der
        if self._pem and self._data:
            new = _pem_text(der, _newline(self._data))

        def verify(tmp: str) -> None:
            with open(tmp, "rb") as handle:
                written = handle.read()
            if written != new or self._parse(written) != [der]:
                raise StoreError(VERIFY_FAILED, "%s: re-read content is not the planned "
                                 "certificate" % path)

        backup = backups.save(real)
        attrs = _new_file_attrs(self.spec) if self._data is None else {}
        atomic_write(path, new, verify=verify, **attrs)
        self._data = new
        return backup


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


class _Journal:
    """Changes made to a folder, each backed up first and undoable in reverse order."""

    def __init__(self, backups: Backups, fail_hook: Optional[Callable[[str], None]] = None
                 ) -> None:
        self.backups = backups
        self.undo: List[Tuple[str, Callable[[], None]]] = []
        self._hook = fail_hook

    @staticmethod
    def _snapshot(path: str) -> Tuple[str, Any, Any]:
        if os.path.islink(path):
            return ("link", os.readlink(path), None)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                return ("file", handle.read(), os.stat(path))
        if os.path.isdir(path):
            return ("dir", None, None)
        return ("none", None, None)

    @staticmethod
    def _restore(path: str, snap: Tuple[str, Any, Any]) -> None:
        kind, value, st = snap
        if kind == "file":
            atomic_write(path, value, owner=str(st.st_uid), group=str(st.st_gid),
                         mode="%o" % stat.S_IMODE(st.st_mode))
        elif kind == "link":
            _symlink_atomic(value, path)
        elif kind == "none":
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            elif os.path.isdir(path):
                os.rmdir(path)

    def _step(self, what: str) -> None:
        if self._hook is not None:
            self._hook(what)

    def mkdir(self, path: str) -> None:
        self._step("mkdir " + path)
        self.backups.save(path)
        try:
            os.mkdir(path, 0o755)
        except OSError as exc:
            raise _os_error("create folder", path, exc)
        self.undo.append(("rmdir " + path, lambda: os.rmdir(path)))

    def write(self, path: str, data: bytes, verify: Callable[[str], None],
              attrs: Dict[str, Optional[str]]) -> None:
        self._step("write " + path)
        snap = self._snapshot(path)
        self.backups.save(path)
        atomic_write(path, data, verify=verify, **(attrs if snap[0] == "none" else {}))
        self.undo.append(("restore " + path, lambda: self._restore(path, snap)))

    def symlink(self, target: str, path: str) -> None:
        self._step("link " + path)
        snap = self._snapshot(path)
        self.backups.save(path)
        _symlink_atomic(target, path)
        self.undo.append(("restore " + path, lambda: self._restore(path, snap)))

    def remove(self, path: str) -> None:
        self._step("remove " + path)
        snap = self._snapshot(path)
        self.backups.save(path)
        remove_file(path)
        self.undo.append(("restore " + path, lambda: self._restore(path, snap)))

    def rename(self, src: str, dst: str) -> None:
        self._step("rename %s %s" % (src, dst))
        snap_src = self._snapshot(src)
        snap_dst = self._snapshot(dst)
        self.backups.save(src)
        self.backups.save(dst)
        try:
            os.rename(src, dst)
        except OSError as exc:
            raise _os_error("rename %s to" % src, dst, exc)

        def undo() -> None:
            self._restore(src, snap_src)
            self._restore(dst, snap_dst)

        self.undo.append(("restore %s and %s" % (src, dst), undo))

    def rollback(self) -> List[str]:
        """Undo every step, newest first; return the ones that could not be undone."""
        failed = []
        for what, undo in reversed(self.undo):
            try:
                undo()
            except (OSError, StoreError) as exc:
                failed.append("%s (%s)" % (what, exc))
        self.undo = []
        return failed


def _symlink_atomic(target: str, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, ".%s.%s%s"
                       % (os.path.basename(path), os.urandom(4).hex(), _TMP_SUFFIX))
    try:
        os.symlink(target, tmp)
    except OSError as exc:
        raise _os_error("create link in", folder, exc)
    try:
        os.rename(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _os_error("replace", path, exc)


class _FolderStore(Store):
    """Common part of the folder backends: scan, journaled apply, rescan and compare."""

    RECURSIVE = False
    NEW_EXTENSION = ".pem"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._loaded = False
        self._missing = False
        self._nodes: Dict[str, _Node] = {}
        # Test hook: called before each step of an apply with a description.
        self._fail_hook: Optional[Callable[[str], None]] = None

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
                    elif stat.S_ISREG(st.st_mode):
                        node = _Node("file")
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
        full = os.path.join(self.spec.path, rel)
        try:
            if node.kind == "link" and not os.path.isfile(full):
                return  # dangling, or a link to a folder
            with open(full, "rb") as handle:
                node.data = handle.read()
        except OSError as exc:
            raise _os_error("read", full, exc)
        blocks = _parse_cert_file(node.data, full)
        node.blocks = blocks
        node.certs = [der for _l, der, _s, _e in blocks] if blocks else None
        if node.kind == "file":
            node.digest = _digest(node.data)

    def _read_candidates(self, nodes: Dict[str, _Node]) -> None:
        for rel, node in nodes.items():
            if node.kind == "file":
                if self._is_candidate(rel):
                    self._read_node(rel, node)
                else:
                    st = os.stat(os.path.join(self.spec.path, rel))
                    node.digest = "size=%d,mtime=%d" % (st.st_size, st.st_mtime_ns)
            elif node.kind == "link" and self._is_candidate(rel):
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
        if not os.path.lexists(self.spec.path) and self.spec.create:
            parent = os.path.dirname(os.path.abspath(self.spec.path))
            if not os.path.isdir(parent):
                raise StoreError(NOT_FOUND, "cannot create %s: folder %s does not exist"
                                 % (self.spec.path, parent))
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

    def _check_unchanged(self) -> None:
        if self._missing:
            if os.path.lexists(self.spec.path):
                raise StoreError(IO_ERROR, "%s appeared while it was being updated; nothing "
                                 "written, run again" % self.spec.path)
            return
        now = self._scan()
        if {k: v.signature() for k, v in now.items()} != \
                {k: v.signature() for k, v in self._nodes.items()}:
            raise StoreError(IO_ERROR, "%s changed while it was being updated; nothing "
                             "written, run again" % self.spec.path)

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
        journal = _Journal(backups, self._fail_hook)
        root = self.spec.path
        try:
            if self._missing:
                journal.mkdir(root)
            for op, rel, arg in ops:
                full = os.path.join(root, rel)
                if op == "write":
                    journal.write(full, arg, _verify_bytes(arg), _new_file_attrs(self.spec))
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


def describe_link(entry: CertEntry) -> Dict[str, str]:
    return {"name": entry.name, "sha256": entry.sha256, "hash": _hash_of(entry.der) or ""}


class _DirPlan(Plan):
    """A plan that may also repair hash links (``links``: certificates to re-link)."""

    def __init__(self, add: List[CertEntry], remove: List[CertEntry],
                 links: List[CertEntry]) -> None:
        super().__init__(add, remove)
        self.links = links

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove or self.links)


# --------------------------------------------------------------------------- pem_dir


class PemDirStore(_FolderStore):
    """A folder of PEM files with OpenSSL subject-hash links (``openssl verify -CApath``).

    OpenSSL looks up ``<hash>.0``, ``<hash>.1``, ... and stops at the first missing
    number, so the links of a hash are kept contiguous. Adding writes ``<name>.pem``
    and links it as ``<hash>.<first free n>``; removing deletes the file and every hash
    link that resolves to the retired certificate, then renumbers the remaining
    links of that hash down to close the gap. Hash-named regular files (some tools
    write copies instead of links) are holders themselves and are moved by rename
    when renumbered. A wanted certificate held in the folder without a link gets one
    (``plan.links``).
    """

    TYPE = "pem_dir"

    def _is_candidate(self, name: str) -> bool:
        return name.lower().endswith(CERT_EXTENSIONS) or bool(_HASH_NAME.match(name))

    def _resolve(self, nodes: Dict[str, _Node], name: str) -> Optional[str]:
        """The node name a hash link points to inside the folder, or None (external)."""
        node = nodes.get(name)
        if node is None or node.kind != "link" or node.target is None:
            return None
        target = node.target
        if os.path.isabs(target):
            folder = os.path.realpath(self.spec.path)
            if os.path.dirname(os.path.normpath(target)) != folder and \
                    os.path.dirname(os.path.normpath(target)) != os.path.abspath(self.spec.path):
                return None
            target = os.path.basename(target)
        elif "/" in target:
            return None
        return target

    def _read_candidates(self, nodes: Dict[str, _Node]) -> None:
        super()._read_candidates(nodes)
        # A file without a certificate extension that a hash link points to holds a
        # certificate of the store too.
        for name in list(nodes):
            if _HASH_NAME.match(name) and nodes[name].kind == "link":
                target = self._resolve(nodes, name)
                if target and target in nodes and nodes[target].kind == "file" \
                        and nodes[target].data is None:
                    self._read_node(target, nodes[target])

    def _entries(self, nodes: Dict[str, _Node]) -> List[CertEntry]:
        # A hash link to a holder of this folder is not an entry of its own.
        view = {}
        for name, node in nodes.items():
            if _HASH_NAME.match(name) and node.kind == "link":
                target = self._resolve(nodes, name)
                if target is not None and target in nodes:
                    continue
            view[name] = node
        return _FolderStore._entries(self, view)

    def _slot_cert(self, nodes: Dict[str, _Node], name: str) -> Optional[List[bytes]]:
        """Certificates a hash slot gives OpenSSL (None: dangling/no certificate)."""
        node = nodes.get(name)
        if node is None:
            return None
        if node.kind == "link":
            target = self._resolve(nodes, name)
            if target is not None:
                if target not in nodes:
                    return None
                node = nodes[target]
                if node.kind == "link":
                    return node.certs
        return node.certs

    @staticmethod
    def _buckets(nodes: Dict[str, _Node]) -> Dict[str, Dict[int, str]]:
        buckets: Dict[str, Dict[int, str]] = {}
        for name, node in nodes.items():
            if _HASH_NAME.match(name) and node.kind in ("file", "link"):
                prefix, number = name.split(".")
                buckets.setdefault(prefix, {})[int(number)] = name
        return buckets

    def _linked(self, nodes: Dict[str, _Node]) -> Set[str]:
        """SHA-256 of every certificate OpenSSL can find by hash lookup."""
        found = set()
        for prefix, slots in self._buckets(nodes).items():
            number = 0
            while number in slots:
                for der in self._slot_cert(nodes, slots[number]) or []:
                    if _hash_of(der) == prefix:
                        found.add(sha256_fingerprint(der))
                number += 1
        return found

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        if not self._loaded:
            self.load()
        wanted = _dedupe(_wanted(present, self.spec.names))
        base = Store.plan(self, entries, wanted, absent)
        held = set(e.sha256 for e in entries)
        linked = self._linked(self._nodes)
        links = [w for w in wanted
                 if w.sha256 in held and w.sha256 not in absent and w.sha256 not in linked
                 and self._holder_of(self._nodes, w.sha256) is not None
                 and _hash_of(w.der) is not None]
        if links:
            self.details["links_repaired"] = [describe_link(w) for w in links]
        return _DirPlan(base.add, base.remove, links)

    def _holder_of(self, nodes: Dict[str, _Node], sha: str) -> Optional[str]:
        """Best file to link to for a certificate: a single-certificate holder."""
        best = None
        for name in sorted(nodes):
            node = nodes[name]
            if node.certs and len(node.certs) == 1 and sha256_fingerprint(node.certs[0]) == sha:
                if _HASH_NAME.match(name):
                    best = best or name
                else:
                    return name
        return best

    def apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        if not self._loaded:
            self.load()
        links = list(getattr(plan, "links", []))
        if not (plan.add or plan.remove or links):
            return None
        self._check_unchanged()
        ops, expected, placed = self._file_ops(plan, self._nodes)
        remove = set(e.sha256 for e in plan.remove)
        gone = set(name for name in self._nodes if name not in expected)
        # Links to certificates we add or repair.
        to_link: List[Tuple[str, str]] = []  # (hash, file name)
        for entry in _dedupe(list(plan.add) + links):
            if entry.sha256 in remove:
                continue
            name = placed.get(entry.sha256) or self._holder_of(expected, entry.sha256)
            if name is None:
                raise StoreError(UNSUPPORTED, "%s: no single-certificate file holds %s to link"
                                 % (self.spec.path, entry.sha256))
            link_hash = _hash_of(entry.der)
            if link_hash is not None:  # else OpenSSL cannot load it: nothing to link
                to_link.append((link_hash, name))
        # Buckets to rebuild: those losing a slot and those gaining one.
        buckets = self._buckets(self._nodes)
        touched = set(h for h, _n in to_link)
        touched.update(h for h in (_hash_of(e.der) for e in plan.remove) if h is not None)
        for prefix, slots in buckets.items():
            for name in slots.values():
                if name in gone:
                    touched.add(prefix)
                elif self._nodes[name].kind == "link":
                    target = self._resolve(self._nodes, name)
                    if target is not None and target in gone:
                        touched.add(prefix)
        link_ops: List[Tuple[str, str, Any]] = []
        late_removes: List[Tuple[str, str, Any]] = []
        for prefix in sorted(touched):
            slots = buckets.get(prefix, {})
            keep: List[Tuple[str, _Node]] = []  # (current name, node)
            for number in sorted(slots):
                name = slots[number]
                node = self._nodes[name]
                if name in gone:
                    continue  # a hash-named holder of a retired certificate
                if node.kind == "link":
                    target = self._resolve(self._nodes, name)
                    if target is not None and (target in gone or target not in self._nodes):
                        continue  # link to a removed file, or dangling
                    if target is None and not os.path.exists(os.path.join(self.spec.path, name)):
                        continue  # dangling link outside the folder
                keep.append((name, node))
            present_there = set()
            for name, _node in keep:
                for der in self._slot_cert(self._nodes, name) or []:
                    present_there.add(sha256_fingerprint(der))
            desired: List[Tuple[str, Any]] = [("keep", name) for name, _node in keep]
            for link_hash, file_name in to_link:
                if link_hash != prefix:
                    continue
                certs = expected[file_name].certs or []
                sha = sha256_fingerprint(certs[0])
                if sha in present_there:
                    continue
                present_there.add(sha)
                desired.append(("new", file_name))
            # Lay the slots out contiguously from 0, lowest numbers first.
            for number, (how, name) in enumerate(desired):
                slot = "%s.%d" % (prefix, number)
                if how == "keep" and name == slot:
                    continue
                if how == "new":
                    link_ops.append(("link", slot, name))
                    expected[slot] = _Node("link", target=name)
                    continue
                node = self._nodes[name]
                if node.kind == "link" and node.target is not None:
                    link_ops.append(("link", slot, node.target))
                    moved = _Node("link", target=node.target)
                    moved.certs = node.certs
                    expected[slot] = moved
                else:
                    link_ops.append(("rename", slot, name))
                    expected[slot] = expected[name]
                    if ("%s.%d" % (prefix, number)) != name:
                        expected.pop(name, None)
            used = set("%s.%d" % (prefix, n) for n in range(len(desired)))
            moved_files = set(arg for op, _s, arg in link_ops if op == "rename")
            for number in sorted(slots):
                name = slots[number]
                if name in used or name in moved_files or name in gone:
                    continue
                late_removes.append(("remove", name, None))
                expected.pop(name, None)
        # Removals of holders come last, after the links to them are gone; removals of
        # renamed-away slot names are dropped (rename already freed them).
        # A slot name reused by a link or rename is replaced atomically (and backed up
        # by that step): it must not be removed afterwards.
        reused = set(rel for op, rel, _arg in link_ops)
        holder_removes = [op for op in ops if op[0] == "remove" and op[1] not in reused]
        late_removes = [op for op in late_removes if op[1] not in reused]
        writes = [op for op in ops if op[0] != "remove"]
        all_ops = writes + link_ops + late_removes + holder_removes
        self._run(all_ops, expected, plan, backups)
        return self._backup_path(backups)

    def _check_links(self, nodes: Dict[str, _Node], plan: Plan) -> List[str]:
        problems = []
        linked = self._linked(nodes)
        remove = set(e.sha256 for e in plan.remove)
        for entry in list(plan.add) + list(getattr(plan, "links", [])):
            if entry.sha256 not in remove and entry.sha256 not in linked and \
                    _hash_of(entry.der) is not None:
                problems.append("certificate %s cannot be found by its hash link"
                                % entry.sha256)
        return problems

    def _check_model(self, nodes: Dict[str, _Node], plan: Plan) -> List[str]:
        problems = _FolderStore._check_model(self, nodes, plan)
        # The links of every hash we touched are numbered without a gap.
        touched = set(_hash_of(e.der) for e in
                      list(plan.add) + list(plan.remove) + list(getattr(plan, "links", [])))
        for prefix, slots in self._buckets(nodes).items():
            numbers = sorted(slots)
            if prefix in touched and numbers != list(range(len(numbers))):
                problems.append("links %s.* are not numbered 0..%d" % (prefix, len(numbers) - 1))
        return problems


# --------------------------------------------------------------------------- OS trust anchors


class TrustAnchorStore(_FolderStore):
    """The OS trust anchors folder (Debian ``update-ca-certificates``, RHEL
    ``update-ca-trust``).

    Only CA certificates from ``present`` are installed (a self-issued v1 certificate
    counts as a CA), unless ``spec.names`` picks them. After all files are written the
    refresh command runs, once, only if something changed; the tool is looked up
    before anything is written (TOOL_MISSING leaves the folder untouched).
    """

    TYPE = "debian"
    DEFAULTS = {
        "debian": ("/usr/local/share/ca-certificates", ".crt", "update-ca-certificates"),
        "redhat": ("/etc/pki/ca-trust/source/anchors", ".pem", "update-ca-trust extract"),
    }

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        if spec.type not in self.DEFAULTS:
            raise StoreError(UNSUPPORTED, "trust anchors of type %r: use debian or redhat"
                             % spec.type)
        if not spec.path:
            spec.path = self.DEFAULTS[spec.type][0]
        super().__init__(spec, run_command, find_tool)
        self.RECURSIVE = spec.type == "debian"  # update-ca-certificates reads subfolders
        self.NEW_EXTENSION = self.DEFAULTS[spec.type][1]

    def _is_candidate(self, name: str) -> bool:
        if self.spec.type == "debian":
            return name.endswith(".crt")
        return not os.path.basename(name).startswith(".")  # p11-kit reads any file

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        if self.spec.names is not None:
            wanted = _wanted(present, self.spec.names)
        else:
            wanted = []
            for entry in present:
                info = cert_info(entry.der)
                if info["is_ca"] or (info["version"] == 1 and info["self_issued"]):
                    wanted.append(entry)
        return Store.plan(self, entries, _dedupe(wanted), absent)

    def refresh_argv(self) -> List[str]:
        text = self.spec.refresh or self.DEFAULTS[self.spec.type][2]
        argv = shlex.split(text)
        if not argv:
            raise StoreError(UNSUPPORTED, "empty refresh command for %s" % self.spec.path)
        if not os.path.isabs(argv[0]):
            found = self.find_tool(argv[0])
            if not found:
                raise StoreError(TOOL_MISSING, "refresh command %s not found; nothing written "
                                 "to %s" % (argv[0], self.spec.path))
            argv[0] = found
        elif not os.access(argv[0], os.X_OK):
            raise StoreError(TOOL_MISSING, "refresh command %s is not executable; nothing "
                             "written to %s" % (argv[0], self.spec.path))
        return argv

    def apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        if not self._loaded:
            self.load()
        if not plan.changed:
            return None
        argv = self.refresh_argv()
        self._check_unchanged()
        ops, expected, _placed = self._file_ops(plan, self._nodes)
        writes = [op for op in ops if op[0] != "remove"]
        removes = [op for op in ops if op[0] == "remove"]
        self._run(writes + removes, expected, plan, backups)
        backup = self._backup_path(backups)
        rc, out, err = self.run_command(argv)
        self.details["refresh"] = {"command": " ".join(shlex.quote(a) for a in argv), "rc": rc}
        if rc != 0:
            raise StoreError(IO_ERROR, "%s: certificates were written but the refresh command "
                             "%s failed (rc=%s): %s; the files stay written (backup: %s), fix "
                             "the cause and run the command again"
                             % (self.spec.path, " ".join(argv), rc,
                                (err or out or "").strip()[:500], backup or "disabled"))
        return backup
