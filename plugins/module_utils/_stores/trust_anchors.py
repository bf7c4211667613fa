# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``trust_anchors``: the OS trust anchor folders (update-ca-certificates, update-ca-trust).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Its policy, built on the shared selection by ``names``: authorities only, unless
``names`` picks. The refresh command runs once, after the files are written.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Callable, List, Optional

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    TOOL_MISSING,
    UNSUPPORTED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores._folder import _FolderStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._x509 import cert_info


def _is_anchor(entry: CertEntry) -> bool:
    """A CA certificate, or a self-issued v1 certificate (an old-style root)."""
    info = cert_info(entry.der)
    return bool(info["is_ca"] or (info["version"] == 1 and info["self_issued"]))


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

    def select(self, present: List[CertEntry]) -> List[CertEntry]:
        """What ``names`` selects; without names, the authorities only."""
        chosen = super().select(present)
        if self.spec.names is not None:
            return chosen
        return [entry for entry in chosen if _is_anchor(entry)]

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

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        argv = self.refresh_argv()
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
