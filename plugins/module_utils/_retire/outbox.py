# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The messages still queued for a retired certificate in a guichet's outbound folders.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

After the revocation hour the SNE drops a message encrypted to the retired certificate with
no answer: the messages the guichet's software encrypted before the rotation and still holds in
its outbound folders would be lost silently. :func:`scan_outboxes` reads every regular file of
the folders (bounded depth, links never followed, each file read with ``read_bytes``), keeps the
CMS EnvelopedData messages (``_formats/cms.py``: DER/BER, PEM, S/MIME) and matches each of their
recipients against the retired certificates (:class:`RetiredIds`), by issuer and serial number
**and** by subject key identifier. Nothing is decrypted. A message with a recipient that is a
retired certificate is a *retired message*; a message only to others (V5), and every file that
is not CMS, is left alone; a file that says it is CMS and is cut (still being written) is
listed as unreadable, never moved.

``run.py`` moves the retired messages into the run's quarantine with the strays' own
``quarantine.py`` (same ``<quarantine_dir>/<run_id><path>`` layout, so ``rollback.yml`` puts
them back) when ``outbox_quarantine`` is on.
"""

from __future__ import annotations

import datetime
import os
import stat
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError, SneError
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import read_bytes
from ansible_collections.sne.guichet.plugins.module_utils._formats.cms import (
    ISSUER_SERIAL,
    SKI,
    Envelope,
    read_envelope,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    load_certificates,
    recipient_identifiers,
)


def _norm(sha: str) -> str:
    return str(sha).replace(":", "").strip().upper()


class RetiredIds:
    """How CMS names the retired certificates: (issuer DER, serial) pairs and subject key
    identifiers, from their PEM (or DER) text. Each certificate must be one of ``sha256`` (the
    retired fingerprints): a current certificate given by mistake would quarantine every live
    message, so it is an ArgumentError."""

    def __init__(self, certificates: List[str], sha256: List[str]) -> None:
        self.issuer_serials: Set[Tuple[bytes, int]] = set()
        self.skis: Set[bytes] = set()
        self.fingerprints: List[str] = []
        retired = {_norm(s) for s in sha256 or []}
        for index, text in enumerate(certificates or []):
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            try:
                ders = load_certificates(data)
            except ValueError as exc:
                raise ArgumentError("certificates[%d] is not a certificate: %s" % (index, exc))
            if not ders:
                raise ArgumentError("certificates[%d] holds no certificate (PEM expected)" % index)
            for der in ders:
                self.add(der, retired, "certificates[%d]" % index)

    def add(self, der: bytes, retired: Set[str], where: str) -> None:
        fingerprint = sha256_fingerprint(der)
        if _norm(fingerprint) not in retired:
            raise ArgumentError(
                "%s (SHA-256 %s) is not one of the retired fingerprints (sha256): refusing to "
                "look for its messages - a current certificate given here would quarantine every "
                "live message" % (where, fingerprint))
        ids = recipient_identifiers(der)
        self.issuer_serials.add((ids["issuer"], ids["serial"]))
        self.skis.update(ids["subject_key_identifiers"])
        self.fingerprints.append(fingerprint)

    def __bool__(self) -> bool:
        return bool(self.fingerprints)

    def matches(self, envelope: Envelope) -> bool:
        """Whether a recipient of ``envelope`` is a retired certificate."""
        for recipient in envelope.recipients:
            pair = (recipient.issuer, recipient.serial)
            if recipient.kind == ISSUER_SERIAL and pair in self.issuer_serials:
                return True
            if recipient.kind == SKI and recipient.ski in self.skis:
                return True
        return False


class Message(NamedTuple):
    path: str
    mtime: float
    form: str


class OutboxScan:
    """What the outbound folders hold: ``folders`` read, ``missing`` (given, not there),
    ``messages`` (CMS EnvelopedData files read), ``retired`` (those to a retired certificate,
    by path), ``unreadable`` ([{path, msg}])."""

    def __init__(self) -> None:
        self.folders: List[str] = []
        self.missing: List[str] = []
        self.messages = 0
        self.retired: List[Message] = []
        self.unreadable: List[Dict[str, str]] = []

    def oldest(self) -> Optional[str]:
        if not self.retired:
            return None
        return iso_utc(min(m.mtime for m in self.retired))


def iso_utc(timestamp: float) -> str:
    when = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _inside(path: str, roots: List[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def read_message(path: str, retired: RetiredIds) -> Tuple[Optional[Envelope], bool]:
    """(the envelope ``path`` holds or None when it is not CMS, whether it is to a retired
    certificate). ``SneError`` when it cannot be read or is a cut CMS."""
    data = read_bytes(path)
    if data is None:
        return None, False
    envelope = read_envelope(data)
    return envelope, envelope is not None and retired.matches(envelope)


def _walk(folder: str, max_depth: int, skip: List[str]) -> List[str]:
    """The regular files below ``folder`` at most ``max_depth`` levels down (1: only those in
    it), sorted; links are neither followed nor listed; folders of ``skip`` left out."""
    found: List[str] = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        relative = os.path.relpath(current, folder)
        depth = 1 if relative == os.curdir else relative.count(os.sep) + 2
        dirs[:] = sorted(d for d in dirs if depth < max_depth
                         and not _inside(os.path.join(current, d), skip))
        for name in sorted(files):
            path = os.path.join(current, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                continue  # gone meanwhile (sent)
    return found


def scan_outboxes(folders: List[str], retired: RetiredIds, max_depth: int, skip: List[str]) -> OutboxScan:
    """Every file of ``folders`` read, its CMS messages matched against ``retired``."""
    scan = OutboxScan()
    skip = [os.path.normpath(s) for s in skip]
    for folder in dict.fromkeys(os.path.normpath(f) for f in folders):
        if not os.path.isdir(folder):
            scan.missing.append(folder)
            continue
        scan.folders.append(folder)
        for path in _walk(folder, max_depth, skip):
            try:
                mtime = os.lstat(path).st_mtime
                envelope, to_retired = read_message(path, retired)
            except FileNotFoundError:
                continue
            except SneError as exc:
                scan.unreadable.append({"path": path, "msg": exc.reason})
                continue
            if envelope is None:
                continue
            scan.messages += 1
            if to_retired:
                scan.retired.append(Message(path, mtime, envelope.form))
    return scan


def still_retired(path: str, retired: RetiredIds) -> bool:
    """Read again (under its lock, before the move): still a message to a retired certificate."""
    try:
        return read_message(path, retired)[1]
    except SneError:
        return False


def outbox_result(scan: OutboxScan, quarantine: bool) -> Dict[str, Any]:
    """The ``outbox`` key of the result, before the moves."""
    return {
        "folders": scan.folders,
        "folders_missing": scan.missing,
        "quarantine": quarantine,
        "messages": scan.messages,
        "retired_messages": len(scan.retired),
        "oldest": scan.oldest(),
        "paths": [m.path for m in scan.retired],
        "moved": [],
        "quarantine_taken": [],
        "unreadable": scan.unreadable,
    }
