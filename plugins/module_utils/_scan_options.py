# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The scan's options that need checking: fingerprints to look for, passwords to try.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

``passwords`` is either a dictionary from a file path, or a glob pattern matched against
the full path, to a password (an exact path is tried before the patterns), or a list of
passwords tried on every PKCS#12 file. Passwords are never logged nor returned.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Dict, List, Optional, Sequence, Set, Union

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ScanError
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import normalize_fingerprint

Passwords = Union[None, str, Sequence[Any], Dict[str, Any]]


def wanted_fingerprints(values: Optional[Sequence[str]], option: str = "sha256") -> Optional[Set[str]]:
    """Normalised fingerprints to look for; None (everything) when the list is empty."""
    wanted = set()
    for value in values or []:
        try:
            wanted.add(normalize_fingerprint(str(value)))
        except ValueError as exc:
            raise ScanError("%s: %s" % (option, exc))
    return wanted or None


class PasswordTable:
    """The ``passwords`` option, checked; :meth:`for_file` gives the ones to try on a file."""

    def __init__(self, passwords: Passwords) -> None:
        self.by_path: Optional[Dict[str, str]] = None  # a dictionary, else the list
        self.every: List[str] = []
        if isinstance(passwords, dict):
            self.by_path = {}
            for key, value in passwords.items():
                if value is None or isinstance(value, (dict, list)):
                    raise ScanError("passwords: the value for %s must be a string" % key)
                self.by_path[str(key)] = str(value)
        elif isinstance(passwords, str):
            self.every = [passwords]
        elif isinstance(passwords, (list, tuple)):
            for value in passwords:
                if value is None or isinstance(value, (dict, list)):
                    raise ScanError("passwords: a list of passwords must hold strings only")
                self.every.append(str(value))
        elif passwords is not None:
            raise ScanError("passwords: give a dict (path or glob pattern -> password) or a list of "
                            "passwords")

    def for_file(self, path: str, real: str) -> List[str]:
        """Passwords to try on ``path`` (``real``: the path with links resolved), in order."""
        if self.by_path is None:
            return list(self.every)
        exact = [v for k, v in self.by_path.items() if k in (path, real)]
        globbed = [v for k, v in self.by_path.items() if k not in (path, real)
                   and (fnmatch.fnmatchcase(path, k) or fnmatch.fnmatchcase(real, k))]
        out: List[str] = []
        for value in exact + globbed:
            if value not in out:
                out.append(value)
        return out
