# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running keytool: its options, listing, error messages and scratch folder.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

keytool runs with English messages whatever the host's locale (its errors are matched on
their text). The store password is never on its command line nor in a file: keytool reads
it from a variable of its own environment (``-storepass:env``), given to that process only,
so nothing of it outlives the process, even a killed run. Working copies go to a private
0700 scratch folder named after the process; the folders a killed run left are removed
when the next one is made.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    TOOL_MISSING,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import _os_error, remove_stale_folders

# Messages in English whatever the host locale; aliases and passwords in UTF-8.
KEYTOOL_JAVA_OPTIONS = ["-J-Duser.language=en", "-J-Duser.country=US", "-J-Dfile.encoding=UTF-8",
                        "-J-Dsun.stdout.encoding=UTF-8", "-J-Dsun.stderr.encoding=UTF-8"]
KEYTOOL_ENV = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
TOOL_MISSING_MESSAGE = "keytool not found on the host; install a JRE or give keytool's path"
# keytool reads the store password from this variable of its environment (-storepass:env).
PASSWORD_VARIABLE = "SNE_KEYTOOL_STOREPASS"
STOREPASS = ["-storepass:env", PASSWORD_VARIABLE]
# Scratch folders: "sne-keytool-<pid>-<8 random>" (before, "sne-keytool-<8 random>", which
# held the password in a file "storepass").
_SCRATCH_PREFIX = "sne-keytool-"
_SCRATCH = re.compile(r"sne-keytool-(?:(?P<pid>[0-9]{1,10})-)?[a-z0-9_]{8}")
# When this process started (an Ansible module is a new process for each task).
_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


# (lowercased alias, entry type, fingerprints of its certificates)
EntryKey = Tuple[str, str, Tuple[str, ...]]


class ListedEntry:
    """One entry of ``keytool -list -rfc``: alias, type and certificate fingerprints."""

    __slots__ = ("alias", "type", "ders")

    def __init__(self, alias: str, type: str, ders: List[bytes]) -> None:
        self.alias = alias
        self.type = type
        self.ders = ders

    def key(self) -> EntryKey:
        return (self.alias.lower(), self.type,
                tuple(sha256_fingerprint(der) for der in self.ders))

    def __repr__(self) -> str:
        return "ListedEntry(%r, %r, %d certs)" % (self.alias, self.type, len(self.ders))


def parse_keytool_list(text: str) -> List[ListedEntry]:
    """Entries of ``keytool -list -rfc`` output (English messages)."""
    import base64
    import binascii

    entries: List[ListedEntry] = []
    count = None
    blocks = re.split(r"^Alias name: ", text, flags=re.M)
    found = re.search(r"^Your keystore contains (\d+) entr", blocks[0], re.M)
    if found:
        count = int(found.group(1))
    for block in blocks[1:]:
        alias, _sep, rest = block.partition("\n")
        kind = re.search(r"^Entry type: (\S+)", rest, re.M)
        ders = []
        for pem in _PEM_RE.findall(rest):
            try:
                ders.append(base64.b64decode("".join(pem.split()), validate=True))
            except (binascii.Error, ValueError):
                raise StoreError(VERIFY_FAILED, "keytool printed an unreadable certificate")
        entries.append(ListedEntry(alias.rstrip("\r"), kind.group(1) if kind else "unknown", ders))
    if count is None or count != len(entries):
        raise StoreError(VERIFY_FAILED, "cannot understand keytool's listing")
    return entries


def keytool_error(text: str, path: str) -> StoreError:
    """Map a keytool failure message to an error code."""
    line = ""
    for candidate in text.splitlines():
        if candidate.startswith("keytool error"):
            line = candidate
            break
    if not line:
        line = (text.strip().splitlines() or ["(no message)"])[-1]
    low = line.lower()
    if "password was incorrect" in low or "tampered" in low or "final block not properly padded" in low:
        return StoreError(WRONG_PASSWORD, "store password incorrect or store damaged (keytool: %s)"
                          % line)
    if "does not exist" in low and "alias" not in low:
        return StoreError(NOT_FOUND, "keytool: %s" % line)
    if "eofexception" in low or "short read" in low or "getlength" in low or "truncated" in low:
        return StoreError(CORRUPT, "keystore %s is truncated or garbled (keytool: %s)" % (path, line))
    if "rejects tag" in low or "invalid keystore format" in low or "unrecognized keystore" in low:
        return StoreError(UNKNOWN_FORMAT, "%s is not a PKCS#12 keystore (keytool: %s)" % (path, line))
    return StoreError(IO_ERROR, "keytool failed on %s: %s" % (path, line))


def remove_stale_scratch(folder: str) -> List[str]:
    """Remove the scratch folders that killed runs left in ``folder``; their names.

    Only ours: our names (``_SCRATCH``), a folder (not a link) of this user, private
    (0700); and only stale ones: changed before this process started and, when the name
    has the pid of the process that made it, no such process runs. Folders of the older
    naming (which held the password) are removed on age alone. Best effort.
    """
    return remove_stale_folders(folder, _SCRATCH)


class _Scratch:
    """A private 0700 folder for keytool's working copies, and the password keytool gets
    through its environment (never written anywhere)."""

    def __init__(self, password: str) -> None:
        if "\0" in password:
            raise StoreError(UNSUPPORTED, "a store password with a NUL character cannot be given "
                             "to keytool")
        self.password = password
        top = tempfile.gettempdir()
        remove_stale_scratch(top)
        try:
            self.folder = tempfile.mkdtemp(prefix="%s%d-" % (_SCRATCH_PREFIX, os.getpid()))
        except OSError as exc:
            raise _os_error("prepare a scratch folder in", top, exc)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def environ(self) -> Dict[str, str]:
        """What keytool's environment gets: English messages, and the password."""
        return dict(KEYTOOL_ENV, **{PASSWORD_VARIABLE: self.password})

    def close(self) -> None:
        folder = getattr(self, "folder", None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------

def keytool_path(find_tool: Callable[[str], Optional[str]]) -> str:
    """Where keytool is; StoreError TOOL_MISSING when it is not on the host."""
    tool = find_tool("keytool")
    if not tool:
        raise StoreError(TOOL_MISSING, TOOL_MISSING_MESSAGE)
    return tool


def run_keytool(args: List[str], path: str, run_command: Callable[..., Any],
                find_tool: Callable[[str], Optional[str]], scratch: Optional[_Scratch] = None) -> str:
    """keytool's standard output; StoreError (:func:`keytool_error`) when it fails on ``path``.

    With ``scratch``, keytool's environment holds its password (``STOREPASS`` in ``args``)."""
    argv = [keytool_path(find_tool)] + KEYTOOL_JAVA_OPTIONS + args
    environ = scratch.environ() if scratch is not None else dict(KEYTOOL_ENV)
    rc, out, err = run_command(argv, environ_update=environ)
    out = out.decode("utf-8", "replace") if isinstance(out, bytes) else (out or "")
    err = err.decode("utf-8", "replace") if isinstance(err, bytes) else (err or "")
    if rc != 0:
        raise keytool_error(out + "\n" + err, path)
    return out


def list_with(scratch: _Scratch, path: str, run_command: Callable[..., Any],
              find_tool: Callable[[str], Optional[str]]) -> List[ListedEntry]:
    """Every entry of the PKCS#12 keystore ``path``, listed with the password of ``scratch``."""
    out = run_keytool(["-list", "-rfc", "-storetype", "PKCS12", "-keystore", path] + STOREPASS,
                      path, run_command, find_tool, scratch)
    return parse_keytool_list(out)


def list_entries(path: str, password: str, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> List[ListedEntry]:
    """Every entry (alias, type, certificates) of the PKCS#12 keystore ``path``."""
    keytool_path(find_tool)  # before the scratch folder: TOOL_MISSING first
    with _Scratch(password) as scratch:
        return list_with(scratch, path, run_command, find_tool)
