# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One interface for every keystore format the keystores module converges.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

A backend reads its store into a list of CertEntry (the trusted certificates it can
see, with a locator ``name``: alias, file name or block index) and applies a plan
(certificates to add, entries to remove) atomically, verifying the result before it
replaces the original. Identity is the SHA-256 of the certificate DER.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

# Error codes a backend reports; the module maps them to messages for the operator.
WRONG_PASSWORD = "wrong_password"
CORRUPT = "corrupt"
UNKNOWN_FORMAT = "unknown_format"
TOOL_MISSING = "tool_missing"
NOT_FOUND = "not_found"
IO_ERROR = "io_error"
VERIFY_FAILED = "verify_failed"
UNSUPPORTED = "unsupported"


class StoreError(Exception):
    """A store could not be read or written; it has been left as it was."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def sha256_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER blob, formatted as ``openssl x509 -fingerprint -sha256`` prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(value: str) -> str:
    """Accept AA:BB.., aabb.., 'sha256 Fingerprint=AA:..' and return the canonical form."""
    text = value.strip()
    if "=" in text:
        text = text.split("=", 1)[1]
    hexdigits = "".join(ch for ch in text if ch not in ": \t\r\n").upper()
    if len(hexdigits) != 64 or any(ch not in "0123456789ABCDEF" for ch in hexdigits):
        raise ValueError("not a SHA-256 fingerprint: %r" % value)
    return ":".join(hexdigits[i:i + 2] for i in range(0, 64, 2))


class CertEntry:
    """A certificate held in a store.

    ``name`` locates it inside the store (JKS alias, file name, ``#3`` for the fourth
    PEM block); ``der`` is the certificate; ``sha256`` its identity.
    """

    __slots__ = ("name", "der", "sha256")

    def __init__(self, name: str, der: bytes) -> None:
        self.name = name
        self.der = der
        self.sha256 = sha256_fingerprint(der)

    def __repr__(self) -> str:
        return "CertEntry(%r, %s)" % (self.name, self.sha256[:11])


class Plan:
    """What a store needs: certificates to add (name, der) and entries to remove."""

    def __init__(self, add: List[CertEntry], remove: List[CertEntry]) -> None:
        self.add = add
        self.remove = remove

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove)


class StoreSpec:
    """One declared store, as the module received it (password never printed)."""

    def __init__(self, path: str, type: str, password: Optional[str] = None,
                 owner: Optional[str] = None, group: Optional[str] = None,
                 mode: Optional[str] = None, refresh: Optional[str] = None,
                 create: bool = False, names: Optional[List[str]] = None) -> None:
        self.path = path
        self.type = type
        self.password = password
        self.owner = owner
        self.group = group
        self.mode = mode
        self.refresh = refresh
        self.create = create
        # Names (from the module's ``present`` list) this store should hold; None = all
        # the backend accepts (CA certificates only for OS trust anchors, one for der).
        self.names = names

    def __repr__(self) -> str:  # never shows the password
        return "StoreSpec(%r, %r)" % (self.path, self.type)


# run_command(argv, data=None) -> (rc, stdout, stderr); AnsibleModule.run_command fits.
CommandRunner = Callable[..., Any]


def module_tools(module: Any) -> Tuple[CommandRunner, Callable[[str], Optional[str]]]:
    """The ``run_command`` and ``find_tool`` the backends take, from an AnsibleModule.

    ``find_tool`` accepts a bare name (looked up like AnsibleModule.get_bin_path) or an
    absolute path (used if executable).
    """

    def run_command(argv: List[str], data: Optional[str] = None,
                    environ_update: Optional[dict] = None) -> Any:
        return module.run_command(argv, data=data, environ_update=environ_update,
                                  binary_data=False)

    def find_tool(name: str) -> Optional[str]:
        if os.path.isabs(name):
            return name if os.access(name, os.X_OK) else None
        return module.get_bin_path(name, required=False)

    return run_command, find_tool


class Store:
    """Base class of the backends.

    Subclasses implement :meth:`load` and :meth:`apply`. ``load`` must not modify
    anything; ``apply`` must back up, write to a temporary file in the same folder,
    fsync, re-read and check that every entry not in the plan is identical and that
    the plan is fulfilled, then rename (see ``_atomic``). On any failure the store is
    left byte-identical and StoreError is raised.
    """

    TYPE = ""

    def __init__(self, spec: StoreSpec, run_command: CommandRunner,
                 find_tool: Callable[[str], Optional[str]]) -> None:
        self.spec = spec
        self.run_command = run_command
        self.find_tool = find_tool
        self.details: Dict[str, Any] = {}  # e.g. {"backend": "keytool"}

    def load(self) -> List[CertEntry]:
        raise NotImplementedError

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: set[str]) -> Plan:
        """Default policy: add what is wanted and missing, remove every absent one."""
        held = set(e.sha256 for e in entries)
        add = [p for p in present if p.sha256 not in held and p.sha256 not in absent]
        remove = [e for e in entries if e.sha256 in absent]
        return Plan(add=add, remove=remove)

    def apply(self, plan: Plan, backups: Any) -> Optional[str]:
        """Carry out the plan, saving every file first with ``backups.save(path)``
        (an ``_atomic.Backups``); return the backup path (or None when no backup)."""
        raise NotImplementedError
