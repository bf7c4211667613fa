# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rewriting the configuration references to retired files: regexp and replace, backed up.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Each rule is applied as ``ansible.builtin.replace`` applies its ``regexp`` (Python ``re``,
MULTILINE, every match; the file read as UTF-8, bytes that are not kept as they are), in the
order given, several rules of one file on one read and one write. A file the rules do not
change is neither backed up nor written. One that they change is backed up through
``Backups.save`` (the run's manifest, a ``replaced`` line, as the keystores module writes it)
and replaced with ``atomic_write`` (owner, mode and SELinux context kept). A file reached
through a link is backed up and written as its real file, as the store backends do.

What is shown of a change is only the changed lines (a unified diff without context) and the
number of replacements: a guichet's configuration file holds its keystore passwords.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any, Dict, List, Optional, Pattern, Sequence, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    NOT_FOUND,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    ArgumentError,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    Backups,
    atomic_write,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import MAX_READ_SIZE, read_bytes

MAX_CONFIG_SIZE = MAX_READ_SIZE
ENCODING = "utf-8"
Rule = Tuple[Pattern[str], str]


def rules_by_file(config_files: Sequence[Dict[str, Any]]) -> Dict[str, List[Rule]]:
    """``config_files`` ([{path, regexp, replace}]) as compiled rules per file, files and rules
    in the order given; ArgumentError for a regexp Python cannot compile."""
    rules: Dict[str, List[Rule]] = {}
    for index, item in enumerate(config_files or []):
        path = os.path.abspath(str(item["path"]))
        try:
            pattern = re.compile(str(item["regexp"]), re.MULTILINE)
        except re.error as exc:
            raise ArgumentError("config_files[%d] (%s): regexp %r: %s" % (index, path, item["regexp"], exc))
        rules.setdefault(path, []).append((pattern, str(item.get("replace") or "")))
    return rules


class Rewrite:
    """One configuration file: its bytes as read (``old``), as rewritten (``new``), and how
    many replacements made the difference."""

    def __init__(self, path: str, real: str, old: bytes, new: bytes, replacements: int) -> None:
        self.path = path
        self.real = real
        self.old = old
        self.new = new
        self.replacements = replacements

    @property
    def changed(self) -> bool:
        return self.new != self.old

    def took_effect(self) -> bool:
        """Whether the file now holds the new bytes (a step after the rename, such as a folder
        fsync, may still have failed)."""
        try:
            return read_config(self.path) == self.new
        except StoreError:
            return False

    def diff(self) -> Dict[str, Any]:
        """The changed lines only, never the file (it may hold passwords)."""
        before = self.old.decode(ENCODING, "replace").splitlines(keepends=True)
        after = self.new.decode(ENCODING, "replace").splitlines(keepends=True)
        lines = difflib.unified_diff(before, after, "%s (before)" % self.path,
                                     "%s (after: %d replacement%s)" % (
                                         self.path, self.replacements,
                                         "" if self.replacements == 1 else "s"), n=0)
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        return {"path": self.path, "replacements": self.replacements, "prepared": text}


def read_config(path: str) -> bytes:
    """The bytes of a configuration file (through links), read as every store is
    (``_common/reading.py``: never a blocking open, bounded); StoreError naming it otherwise:
    NOT_FOUND when it does not exist, UNSUPPORTED when it is not a regular file or is over
    MAX_CONFIG_SIZE, IO_ERROR when it cannot be read."""
    try:
        data = read_bytes(path)
    except StoreError as exc:
        if exc.code == UNKNOWN_FORMAT:
            raise StoreError(UNSUPPORTED, "%s is not a regular file: not rewritten" % path)
        if exc.code == UNSUPPORTED:
            raise StoreError(UNSUPPORTED, "%s is larger than %d MiB: not rewritten"
                             % (path, MAX_CONFIG_SIZE // (1024 * 1024)))
        raise
    if data is None:
        raise StoreError(NOT_FOUND, "configuration file %s does not exist" % path)
    return data


def plan_rewrite(path: str, rules: Sequence[Rule]) -> Rewrite:
    """What ``rules`` make of the file ``path`` (nothing written); StoreError when it cannot
    be read or a replacement is not valid (a group the regexp does not have)."""
    real = os.path.realpath(path) if os.path.islink(path) else path
    old = read_config(path)
    text = old.decode(ENCODING, "surrogateescape")
    count = 0
    for pattern, replace in rules:
        try:
            rewritten, matches = pattern.subn(replace, text)
        except (re.error, IndexError) as exc:
            raise StoreError(IO_ERROR, "%s: cannot replace %r with %r: %s"
                             % (path, pattern.pattern, replace, exc))
        if matches and rewritten != text:  # as ansible.builtin.replace counts a change
            text, count = rewritten, count + matches
    return Rewrite(path, real, old, text.encode(ENCODING, "surrogateescape"), count)


def apply_rewrite(plan: Rewrite, backups: Backups) -> Optional[str]:
    """Back up and rewrite one changed file; the backup's path (None without backups).

    StoreError naming the file and the cause when it changed since it was read, cannot be
    backed up or cannot be written: the file is then left byte-identical.
    """
    if read_config(plan.path) != plan.old:
        raise StoreError(IO_ERROR, "%s changed since it was read: not rewritten, run again" % plan.path)
    backup = backups.save(plan.real)

    def verify(tmp: str) -> None:
        with open(tmp, "rb") as handle:
            if handle.read() != plan.new:
                raise StoreError(IO_ERROR, "cannot write %s: the new content did not read back "
                                 "the same" % plan.path)

    atomic_write(plan.real, plan.new, verify=verify)
    return backup
