# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""File names in the scan: what a name promises, how a path is shown, and the search for the
configuration files that name the files the scan found.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

After the walk, the text files met under the roots (at most ``REFERENCE_MAX_SIZE`` bytes,
no NUL byte in their first ``HEAD_SIZE`` bytes, not named like a certificate or keystore)
are read again and searched for the file names of the files that hold one of the given
fingerprints. A name counts when it stands alone (not part of a longer file name) and the
path written around it, as far as it can be followed (``/opt/guichet/conf/X.cer``,
``conf/X.cer``, ``${HOME}/conf/X.cer``, ``X.cer``), is the end of the file's path: a
configuration naming ``/opt/a/X.cer`` does not name ``/opt/b/X.cer``.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._formats.detect import HEAD_SIZE

# Text files bigger than this are not searched for references (configuration files are small).
REFERENCE_MAX_SIZE = 1024 * 1024
# Files are opened without following a link, blocking on a FIFO or taking a terminal.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
# A file name standing alone (not inside a longer name such as old-X.cer or X.cer.bak);
# bytes that end the path written around it; segments that stop following it.
_NAME_BYTE = b"A-Za-z0-9_\\-"
_TOKEN_STOPS = frozenset(b" \t\r\n\"'`=,;:<>()[]|&\\")
_SEGMENT_STOPS = frozenset(b"${}%~*?")
_TOKEN_LOOKBACK = 4096
# A file named like this that holds no certificate is reported in ``unreadable``.
CERT_SUFFIXES = (".cer", ".crt", ".cert")
STORE_SUFFIXES = (".jks", ".jceks", ".p12", ".pfx", ".keystore", ".truststore")


def named_like(path: str, der_shaped: bool = False) -> Optional[str]:
    """What the file name promises, if a certificate or keystore; None otherwise.

    ``.der`` alone promises nothing (keys are DER too) unless the content starts like a
    certificate.
    """
    low = path.lower()
    if low.endswith(CERT_SUFFIXES) or (der_shaped and low.endswith(".der")):
        return "a certificate"
    if low.endswith(".pem"):
        return "a PEM file"
    if low.endswith(STORE_SUFFIXES):
        return "a keystore"
    return None


def escaped(path: str) -> str:
    """``path`` as UTF-8 text, bytes that are not UTF-8 (surrogates in a str) as ``\\x`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def find_references(targets: Dict[str, str], candidates: Sequence[Tuple[str, str]]) -> Dict[str, List[str]]:
    """For each file of ``targets`` (path -> real path), the ``candidates`` (path, real path)
    that name it, in the order they were met."""
    references: Dict[str, List[str]] = dict((path, []) for path in targets)
    by_name: Dict[bytes, List[Tuple[bytes, str]]] = {}
    for path in targets:
        encoded = os.fsencode(path)  # file names as the bytes on disk, UTF-8 or not
        by_name.setdefault(os.path.basename(encoded), []).append((encoded, path))
    if not by_name:
        return references
    names = b"|".join(re.escape(name) for name in sorted(by_name, key=lambda n: (-len(n), n)))
    pattern = re.compile(b"(?<![" + _NAME_BYTE + b".])(?:" + names + b")(?![" + _NAME_BYTE
                         + b"]|\\.[" + _NAME_BYTE + b"])")
    for path, real in candidates:
        data = _read_text(real)
        if data is None:
            continue
        for match in pattern.finditer(data):
            tail = b"/" + _written_tail(data, match.start(), match.end())
            for encoded, target in by_name[match.group(0)]:
                if target == path or path in references[target]:
                    continue
                if encoded == tail or encoded.endswith(tail):
                    references[target].append(path)
    return references


def _read_text(real: str) -> Optional[bytes]:
    """A text file to search for references, read again after the walk (None: skip it)."""
    try:
        fd = os.open(real, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = handle.read(REFERENCE_MAX_SIZE + 1)
        except OSError:
            return None
    if len(data) > REFERENCE_MAX_SIZE or b"\0" in data[:HEAD_SIZE]:
        return None  # changed since the walk
    return data


def _written_tail(data: bytes, start: int, end: int) -> bytes:
    """The path written around the file name at ``data[start:end]``, as far as it can be
    followed back: ``conf/X.cer`` for ``${HOME}/conf/X.cer``, ``opt/X.cer`` for
    ``file:///opt/X.cer``, ``X.cer`` for ``../X.cer`` (no leading slash)."""
    begin = start
    floor = max(0, start - _TOKEN_LOOKBACK)
    while begin > floor and data[begin - 1] not in _TOKEN_STOPS:
        begin -= 1
    segments = data[begin:start].split(b"/")[:-1]  # the folders written before the name
    kept = [data[start:end]]
    for segment in reversed(segments):
        if segment in (b"", b".", b"..") or any(byte in _SEGMENT_STOPS for byte in segment):
            break
        kept.append(segment)
    return b"/".join(reversed(kept))
