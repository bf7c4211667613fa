# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Converge all the declared stores of a host: what ``sne.guichet.keystores`` does.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

For each store: load, plan (certificates to add, fingerprints to remove), and unless in
check mode apply (backup, write, verify, rename). A store that fails is reported with its
reason and left as it was; the others are still processed. Every store is locked
(``_common/lock.py``) before it is read and until the run ends, check mode included, so a
concurrent run on the same store waits instead of writing between our read and our write.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Type

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import normalize_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import DEFAULT_TIMEOUT, StoreLocks
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import CommandRunner
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Store, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.der import DerStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.jks import JksStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.nss import NssStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.pem import PemStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.pem_dir import PemDirStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.pkcs12 import Pkcs12Store
from ansible_collections.sne.guichet.plugins.module_utils._stores.trust_anchors import TrustAnchorStore
from ansible_collections.sne.guichet.plugins.module_utils._x509 import cert_info, load_certificates

BACKENDS: Dict[str, Type[Store]] = {
    "pem": PemStore,
    "der": DerStore,
    "pem_dir": PemDirStore,
    "debian": TrustAnchorStore,
    "redhat": TrustAnchorStore,
    "jks": JksStore,
    "pkcs12": Pkcs12Store,
    "nss": NssStore,
}


def wanted_entries(present: List[Dict[str, str]]) -> List[CertEntry]:
    """``present`` items ({name, pem}) as CertEntry; each must hold one certificate."""
    entries: List[CertEntry] = []
    names: Set[str] = set()
    for item in present:
        name = item["name"]
        if not name or "/" in name or name in (".", ".."):
            raise ArgumentError("present: %r is not a usable name (used as alias and file "
                                "name)" % name)
        if name in names:
            raise ArgumentError("present: the name %r is given twice" % name)
        names.add(name)
        try:
            ders = load_certificates(item["pem"].encode("utf-8"))
        except ValueError as exc:
            raise ArgumentError("present[%s]: not a certificate: %s" % (name, exc))
        if len(ders) != 1:
            raise ArgumentError("present[%s]: expected exactly one certificate, found %d"
                                % (name, len(ders)))
        entries.append(CertEntry(name, ders[0]))
    return entries


def absent_set(values: List[str]) -> Set[str]:
    try:
        return set(normalize_fingerprint(v) for v in values)
    except ValueError as exc:
        raise ArgumentError("absent_sha256: %s" % exc)


def describe(entry: CertEntry) -> Dict[str, Any]:
    """Public facts about an entry, for results and diffs."""
    facts: Dict[str, Any] = {"name": entry.name, "sha256": entry.sha256}
    try:
        info = cert_info(entry.der)
        facts["subject"] = info["subject"]
        facts["not_after"] = info["not_after"]
    except ValueError:
        facts["subject"] = "(unparsable certificate)"
        facts["not_after"] = None
    return facts


def _listing(entries: List[CertEntry]) -> str:
    lines = []
    for entry in sorted(entries, key=lambda e: e.name):
        facts = describe(entry)
        lines.append("%s: %s sha256=%s not_after=%s\n"
                     % (entry.name, facts["subject"], entry.sha256, facts["not_after"]))
    return "".join(lines)


def _after(entries: List[CertEntry], add: List[CertEntry], remove: List[CertEntry]
           ) -> List[CertEntry]:
    gone = set(id(e) for e in remove)
    return [e for e in entries if id(e) not in gone] + list(add)


class Outcome:
    """What happened to one store."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self.result: Dict[str, Any] = {"path": spec.path, "type": spec.type, "changed": False,
                                       "failed": False}
        self.diff: Optional[Dict[str, str]] = None


def plan_store(store: Store, present: List[CertEntry], absent: Set[str],
               refused: Optional[StoreError] = None) -> Tuple[Outcome, Any]:
    """Load and plan one store; returns its outcome and the plan (None if it failed).
    ``refused``: why the store must not even be read (it could not be locked)."""
    outcome = Outcome(store.spec)
    if refused is not None:
        _failed(outcome, refused)
        return outcome, None
    result = outcome.result
    plan = None
    try:
        entries = store.load()
        plan = store.plan(entries, present, absent)
        result["added"] = [describe(e) for e in plan.add]
        result["removed"] = [describe(e) for e in plan.remove]
        result["held"] = len(entries)
        result["changed"] = plan.changed
        if plan.changed:
            outcome.diff = {
                "before_header": "%s (%s)" % (store.spec.path, store.spec.type),
                "after_header": "%s (%s)" % (store.spec.path, store.spec.type),
                "before": _listing(entries),
                "after": _listing(_after(entries, plan.add, plan.remove)),
            }
    except StoreError as exc:
        _failed(outcome, exc)
        plan = None
    return outcome, plan


def _failed(outcome: Outcome, exc: StoreError) -> None:
    spec = outcome.spec
    outcome.result.update(failed=True, changed=False, code=exc.code,
                          msg="%s (%s): %s" % (spec.path, spec.type, exc.reason))
    outcome.diff = None


def apply_store(store: Store, outcome: Outcome, plan: Any, backups: Backups) -> None:
    try:
        outcome.result["backup"] = store.apply(plan, backups)
    except StoreError as exc:
        _failed(outcome, exc)


def converge(specs: List[StoreSpec], present: List[CertEntry], absent: Set[str],
             check_mode: bool, backups: Backups, run_command: CommandRunner,
             find_tool: Callable[[str], Optional[str]], all_or_nothing: bool = False,
             lock_timeout: float = DEFAULT_TIMEOUT) -> Tuple[List[Outcome], bool, bool]:
    """Converge every store; returns (outcomes, changed, failed).

    Every store is locked, then read and planned before any is written; the locks are
    held until the last write. A store still locked by another run after
    ``lock_timeout`` seconds (for all the stores together) fails with code ``locked``,
    unread. With ``all_or_nothing``, a store that cannot be locked, read or planned stops
    the writes of all the others (the host is left exactly as it was); otherwise the
    others are still converged.
    """
    clash = [p.name for p in present if p.sha256 in absent]
    if clash:
        raise ArgumentError("present and absent_sha256 both name %s" % ", ".join(clash))
    paths = [s.path for s in specs]
    twice = sorted(set(p for p in paths if paths.count(p) > 1))
    if twice:
        raise ArgumentError("stores: declared more than once: %s" % ", ".join(twice))
    if math.isnan(lock_timeout) or lock_timeout < 0:
        raise ArgumentError("lock_timeout: %r is not a number of seconds (0 or more)"
                            % lock_timeout)
    stores = [BACKENDS[spec.type](spec, run_command, find_tool) for spec in specs]
    with StoreLocks(paths, lock_timeout, backups.run_id) as locks:
        planned = [plan_store(store, present, absent, locks.refused(store.spec.path))
                   for store in stores]
        blocked = all_or_nothing and any(o.result["failed"] for o, _plan in planned)
        for store, (outcome, plan) in zip(stores, planned):
            if plan is None or not plan.changed or check_mode:
                continue
            if blocked:
                outcome.result.update(changed=False, skipped=True,
                                      msg="not written: another store of this host failed "
                                          "(all_or_nothing)")
                continue
            apply_store(store, outcome, plan, backups)
    outcomes = [o for o, _plan in planned]
    for store, outcome in zip(stores, outcomes):
        for key, value in store.details.items():
            outcome.result.setdefault(key, value)
    changed = any(o.result["changed"] for o in outcomes)
    failed = any(o.result["failed"] for o in outcomes)
    return outcomes, changed, failed
