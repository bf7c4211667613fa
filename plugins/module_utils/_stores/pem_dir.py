# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``pem_dir``: a folder of PEM files and their subject-hash links (c_rehash layout).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

OpenSSL finds a certificate of the folder by its subject-hash link ``<hash>.<n>`` and
stops at the first missing number, so the links of each hash are kept contiguous.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    UNSUPPORTED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    Backups,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._files import (
    _HASH_NAME,
    CERT_EXTENSIONS,
    _dedupe,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._folder import _FolderStore, _hash_of, _Node
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan


def describe_link(entry: CertEntry) -> Dict[str, str]:
    return {"name": entry.name, "sha256": entry.sha256, "hash": _hash_of(entry.der) or ""}


class _DirPlan(Plan):
    """A plan that may also repair hash links (``links``: certificates to re-link;
    ``repair``: hashes whose links are renumbered, dropping the dangling ones)."""

    def __init__(self, add: List[CertEntry], remove: List[CertEntry],
                 links: List[CertEntry], repair: Optional[List[str]] = None) -> None:
        super().__init__(add, remove)
        self.links = links
        self.repair = repair or []

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove or self.links or self.repair)


class PemDirStore(_FolderStore):
    """A folder of PEM files with OpenSSL subject-hash links (``openssl verify -CApath``).

    OpenSSL looks up ``<hash>.0``, ``<hash>.1``, ... and stops at the first missing
    number, so the links of a hash are kept contiguous. Adding writes ``<name>.pem``
    and links it as ``<hash>.<first free n>``; removing deletes every hash link that
    resolves to the retired certificate, then the file (never the file first: a kill in
    between would leave a dangling link), and renumbers the remaining links of that hash
    down to close the gap. Hash-named regular files (some tools write copies instead of
    links) are holders themselves and are moved by rename when renumbered. A wanted
    certificate held in the folder without a link gets one (``plan.links``). A dangling
    hash link, or links numbered after a gap (left by a killed run, or by hand), are
    repaired: the links of that hash are renumbered without them (``plan.repair``,
    ``details["broken_links"]``), reported as a change.
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

    def policy(self, entries: List[CertEntry], wanted: List[CertEntry],
               absent: Set[str]) -> Plan:
        """The default plan, plus a hash link for every wanted certificate held without one."""
        if not self._loaded:
            self.load()
        base = super().policy(entries, wanted, absent)
        held = set(e.sha256 for e in entries)
        linked = self._linked(self._nodes)
        links = [w for w in wanted
                 if w.sha256 in held and w.sha256 not in absent and w.sha256 not in linked
                 and self._holder_of(self._nodes, w.sha256) is not None
                 and _hash_of(w.der) is not None]
        if links:
            self.details["links_repaired"] = [describe_link(w) for w in links]
        broken = self._broken_links(self._nodes)
        if broken:
            self.details["broken_links"] = broken
        return _DirPlan(base.add, base.remove, links,
                        sorted(set(b["name"].split(".")[0] for b in broken)))

    def _broken_links(self, nodes: Dict[str, _Node]) -> List[Dict[str, str]]:
        """Hash links OpenSSL cannot use: dangling, or numbered after a gap."""
        broken = []
        for prefix, slots in sorted(self._buckets(nodes).items()):
            for number in sorted(slots):
                name = slots[number]
                node = nodes[name]
                if node.kind == "link" and not os.path.isfile(os.path.join(self.spec.path, name)):
                    broken.append({"name": name, "target": node.target or "",
                                   "problem": "dangling"})
                elif any(n not in slots for n in range(number)):
                    broken.append({"name": name, "target": node.target or "",
                                   "problem": "after a gap: %s.%d is missing"
                                   % (prefix, min(n for n in range(number) if n not in slots))})
        return broken

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

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        links = list(getattr(plan, "links", []))
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
        touched = set(h for h, _n in to_link) | set(getattr(plan, "repair", []))
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
        # Removals of holders come last, after the links to them are gone, and among them
        # the hash links before the files (a kill in between must not leave a link to a
        # removed file); removals of renamed-away slot names are dropped (rename already
        # freed them). A slot name reused by a link or rename is replaced atomically (and
        # backed up by that step): it must not be removed afterwards.
        reused = set(rel for op, rel, _arg in link_ops)
        holder_removes = [op for op in ops if op[0] == "remove" and op[1] not in reused]
        holder_removes.sort(key=lambda op: self._nodes[op[1]].kind != "link")
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
        touched.update(getattr(plan, "repair", []))
        for prefix, slots in self._buckets(nodes).items():
            numbers = sorted(slots)
            if prefix in touched and numbers != list(range(len(numbers))):
                problems.append("links %s.* are not numbered 0..%d" % (prefix, len(numbers) - 1))
        return problems
