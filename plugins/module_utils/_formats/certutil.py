# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running NSS's certutil on a ``sql:`` database: listing, keys, error messages, the password.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

certutil runs with ``LC_ALL=C`` (its errors are matched on their ``SEC_ERROR_*`` names) and
``NSS_SDB_USE_CACHE=no`` (no access-speed probe files written into the database folder).
The database password is never on its command line, in its environment nor in any file:
certutil reads its password file from its standard input (``-f /dev/stdin``), which gets the
password line, so nothing of it outlives the process, even a killed run. The certificates to
import go to a private 0700 scratch folder, removed when the run ends; the scratch folders a
killed run left are removed when the next one is made.

``certutil -L`` prints one line per nickname, the trust flags last (``SSL,S/MIME,JAR/XPI``,
e.g. ``CT,C,C``); nicknames may hold spaces, so a line is cut at its last field.
``certutil -L -n NICK -a`` prints the certificates NSS finds for that nickname (all the
certificates with its subject) as PEM: the same DER as ``-r`` prints, as text, so that it
passes through the text-mode command runner of a module unharmed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Callable, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    TOOL_MISSING,
    UNSUPPORTED,
    WRONG_PASSWORD,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import _os_error, remove_stale_folders
from ansible_collections.sne.guichet.plugins.module_utils._x509 import load_certificates

TOOL_MISSING_MESSAGE = ("certutil not found on the host; install the NSS tools (Debian/Ubuntu "
                        "package libnss3-tools, RHEL nss-tools)")
CERTUTIL_ENV = {"LC_ALL": "C", "LANG": "C", "NSS_SDB_USE_CACHE": "no"}
_SCRATCH_PREFIX = "sne-certutil-"
_SCRATCH = re.compile(r"sne-certutil-(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}")
# "nickname<spaces>trust": trust is three comma-separated flag sets, maybe empty (",,").
_LISTING_LINE = re.compile(r"^(?P<nick>.*?\S)\s+(?P<trust>[A-Za-z]*,[A-Za-z]*,[A-Za-z]*)\s*$")
# "< 0> rsa      0dc672bc...   NSS Certificate DB:mykey"
_KEY_LINE = re.compile(r"^<\s*\d+>\s+(?P<type>\S+)\s+(?P<id>[0-9a-fA-F]+)\s+(?P<nick>.*?)\s*$")


def parse_listing(text: str) -> List[Tuple[str, str]]:
    """(nickname, trust) of each certificate line of ``certutil -L`` output, in order."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("Certificate Nickname") or \
                line.strip() == "SSL,S/MIME,JAR/XPI":
            continue
        match = _LISTING_LINE.match(line)
        if match is None:
            raise StoreError(IO_ERROR, "cannot understand certutil's listing line %r" % line)
        found.append((match.group("nick"), match.group("trust")))
    return found


def parse_keys(text: str) -> List[Tuple[str, str, str]]:
    """(key type, key id, nickname or ``(orphan)``) of each line of ``certutil -K``, sorted
    (the leading ``< n>`` index is left out: it is only a position)."""
    found = []
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if match is not None:
            found.append((match.group("type"), match.group("id").lower(), match.group("nick")))
    return sorted(found)


def certutil_error(text: str, path: str) -> StoreError:
    """Map a certutil failure message to an error code."""
    lines = [line for line in text.strip().splitlines()
             if line.strip() and not line.startswith("certutil: Checking token")]
    line = lines[-1] if lines else "(no message)"
    for candidate in lines:
        if "SEC_ERROR" in candidate or "PR_" in candidate:
            line = candidate
            break
    if line.startswith("certutil: "):
        line = line[len("certutil: "):]
    if "SEC_ERROR_BAD_PASSWORD" in text or "password file contains no data" in text:
        return StoreError(WRONG_PASSWORD, "database password incorrect, or none given for a "
                          "database that has one (certutil: %s)" % line)
    if "SEC_ERROR_BAD_DATABASE" in text or "SEC_ERROR_LEGACY_DATABASE" in text:
        return StoreError(CORRUPT, "%s is not a readable NSS database: damaged or not an NSS "
                          "file (certutil: %s)" % (path, line))
    if "SEC_ERROR_READ_ONLY" in text or "PR_NO_ACCESS_RIGHTS_ERROR" in text or \
            "PR_READ_ONLY_FILESYSTEM_ERROR" in text:
        return StoreError(IO_ERROR, "%s cannot be written (certutil: %s)" % (path, line))
    return StoreError(IO_ERROR, "certutil failed on %s: %s" % (path, line))


def remove_stale_scratch(folder: str) -> List[str]:
    """Remove the scratch folders (certificates to import) that killed runs left in ``folder``:
    ours by name, folders of this user, private (0700), stale (:func:`stale_leftovers`)."""
    return remove_stale_folders(folder, _SCRATCH)


def certutil_path(find_tool: Callable[[str], Optional[str]]) -> str:
    """Where certutil is; StoreError TOOL_MISSING (naming libnss3-tools) when it is not there."""
    tool = find_tool("certutil")
    if not tool:
        raise StoreError(TOOL_MISSING, TOOL_MISSING_MESSAGE)
    return tool


class Certutil:
    """certutil on one database folder, the password on its standard input (``-f /dev/stdin``).

    A context manager: the scratch folder (certificates to import) is
    removed on exit. ``folder`` may be changed to run the same commands on a working copy.
    """

    def __init__(self, folder: str, password: Optional[str], run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        self.tool = certutil_path(find_tool)
        if password is not None and ("\0" in password or "\n" in password):
            raise StoreError(UNSUPPORTED, "a database password with a NUL or newline character "
                             "cannot be given to certutil")
        self.folder = folder
        self.run_command = run_command
        # What certutil reads as its password file: one line (an empty one: no password).
        self._password_line = (password or "") + "\n"
        top = tempfile.gettempdir()
        remove_stale_scratch(top)
        try:
            self.scratch = tempfile.mkdtemp(prefix="%s%d-" % (_SCRATCH_PREFIX, os.getpid()))
        except OSError as exc:
            self.close()
            raise _os_error("prepare a scratch folder in", top, exc)

    def close(self) -> None:
        scratch = getattr(self, "scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def __enter__(self) -> Certutil:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(self, args: List[str], empty: str = "", password: bool = False) -> str:
        """certutil's standard output; StoreError (:func:`certutil_error`) when it fails
        (a failure whose message holds ``empty`` is an empty output). With ``password``,
        certutil reads the password from its standard input."""
        argv = [self.tool, "-d", "sql:" + self.folder] + args
        if password:
            argv += ["-f", "/dev/stdin"]
            rc, out, err = self.run_command(argv, data=self._password_line,
                                            environ_update=dict(CERTUTIL_ENV))
        else:
            rc, out, err = self.run_command(argv, environ_update=dict(CERTUTIL_ENV))
        out = out.decode("utf-8", "replace") if isinstance(out, bytes) else (out or "")
        err = err.decode("utf-8", "replace") if isinstance(err, bytes) else (err or "")
        if rc != 0 and empty and empty in out + err and "SEC_ERROR" not in out + err:
            return ""
        if rc != 0:
            raise certutil_error(out + "\n" + err, self.folder)
        return out

    def listing(self) -> List[Tuple[str, str]]:
        """(nickname, trust) of every certificate of the database."""
        return parse_listing(self.run(["-L"]))

    def ders(self, nickname: str) -> List[bytes]:
        """The DER certificates NSS finds for ``nickname`` (``certutil -L -n NICK -a``)."""
        out = self.run(["-L", "-n", nickname, "-a"])
        try:
            return load_certificates(out.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise StoreError(CORRUPT, "%s: certutil printed an unreadable certificate for %r (%s)"
                             % (self.folder, nickname, exc))

    def keys(self) -> List[Tuple[str, str, str]]:
        """The private keys (``certutil -K``); needs the password when the database has one."""
        return parse_keys(self.run(["-K"], empty="no keys found", password=True))

    def add(self, nickname: str, trust: str, der: bytes, number: int) -> None:
        """``certutil -A``: import a certificate with its trust flags."""
        path = os.path.join(self.scratch, "add-%d.der" % number)
        with open(path, "wb") as handle:
            handle.write(der)
        self.run(["-A", "-n", nickname, "-t", trust, "-i", path], password=True)

    def delete(self, nickname: str) -> None:
        """``certutil -D``: remove the certificate of ``nickname`` (its key, if any, stays)."""
        self.run(["-D", "-n", nickname], password=True)

    def create(self) -> None:
        """``certutil -N``: a new empty database, with the password (or none)."""
        if self._password_line != "\n":
            self.run(["-N"], password=True)
        else:
            self.run(["-N", "--empty-password"])
