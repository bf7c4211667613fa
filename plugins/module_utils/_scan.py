# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find certificates under given paths, whatever their format or file name.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only (``cryptography``, or ``keytool``, only to
open encrypted PKCS#12 files, when present; ``certutil``, when present, to list the
certificates of an NSS database, which needs no password).

How a file is examined (cheapest test first):

1. its first ``HEAD_SIZE`` bytes are read and :func:`~._formats.detect.classify` decides
   what it may be: JKS/JCEKS, PKCS#12, a DER certificate, text, or nothing;
2. binary files that are none of these are not read further (archives, libraries...);
3. candidates are read whole (they are at most ``max_file_size``) and parsed: text files
   only when they contain ``-----BEGIN``, keystores by :func:`~._formats.keystore.open_keystore`.

Walking: symbolic links are never followed. A link that resolves to a file, inside one of
the roots, in which certificates were found is reported as its own place (format ``link``,
``target`` the file it resolves to), so that hash links (``3a1b2c3d.0``) show up beside the
file they name; every other link is only counted (``symlink``, ``symlink_outside``,
``symlink_broken``). A root given as a link is followed (it was named explicitly). Devices,
FIFOs and sockets are never opened. A file reached twice (overlapping roots) is read once.

A path that is not UTF-8 is never returned (ansible-core refuses such a module result: "Refusing to
deserialize an invalid UTF8 string value", which failed the whole scan of the host; and an escaped path
must not name another file): a certificate sought in such a file is a problem in ``unreadable``, where
paths are shown with ``\\x`` escapes; such a text file is not searched.

References (``references_of``): after the walk, the text files met under the roots are
searched for the names of the files holding one of the given fingerprints (``_scan_refs``).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import os
import re
import stat
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    UNKNOWN_FORMAT,
    ScanError,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import module_tools
from ansible_collections.sne.guichet.plugins.module_utils._formats.certutil import Certutil
from ansible_collections.sne.guichet.plugins.module_utils._formats.detect import (
    DER,
    HEAD_SIZE,
    NSS,
    PEM,
    PKCS12,
    TEXT,
    classify,
    nss_database,
    text_kind,
)
from ansible_collections.sne.guichet.plugins.module_utils._formats.keystore import open_keystore
from ansible_collections.sne.guichet.plugins.module_utils._scan_options import (
    Passwords,
    PasswordTable,
    wanted_fingerprints,
)
from ansible_collections.sne.guichet.plugins.module_utils._scan_refs import (
    NOFOLLOW,
    REFERENCE_MAX_SIZE,
    escaped,
    find_references,
    named_like,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    CERTIFICATE_LABELS,
    cert_info,
    certificate_from_block,
    load_certificates,
    pem_blocks,
)

DEFAULT_MAX_DEPTH = 6
DEFAULT_MAX_FILE_SIZE = 5 * 1024 * 1024

# Formats of the places reported, besides those of _formats.detect (pem, der, jks, jceks, pkcs12).
BASE64 = "base64"
LINK = "link"

# Reasons a path was not examined; every key is always returned.
SKIP_REASONS = ("excluded", "max_depth", "too_large", "special", "symlink",
                "symlink_outside", "symlink_broken")

# A block may not contain another BEGIN: a truncated block does not swallow the next one.
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #._/-]*)-----(?:(?!-----BEGIN ).)*?-----END \1-----",
                        re.S)
_CERT_BEGIN = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----")
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]+$")

CommandRunner = Callable[..., Any]
# An NSS database is recognised by its cert9.db (or cert8.db); certutil, when the host has it,
# lists the certificates of a sql: one (as the places of its cert9.db, alias the nickname).
NSS_NOT_READ = {
    "sql": "an NSS database (sql: format), not read: certutil (Debian package libnss3-tools) is "
           "not on the host; declare the folder as a store of type nss",
    "legacy": "a legacy NSS database (cert8.db, dbm format): the scan does not read it and the nss "
              "store type refuses it; upgrade it to the sql: format (cert9.db) first",
}


# --------------------------------------------------------------------------- the scan


class Scanner:
    """One scan: walk the roots, read every candidate, collect the places found."""

    def __init__(self, sha256: Optional[Sequence[str]] = None, max_depth: int = DEFAULT_MAX_DEPTH,
                 exclude: Optional[Sequence[str]] = None,
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE, passwords: Passwords = None,
                 run_command: Optional[CommandRunner] = None,
                 find_tool: Optional[Callable[[str], Optional[str]]] = None,
                 references_of: Optional[Sequence[str]] = None) -> None:
        if max_depth < 1:
            raise ScanError("max_depth must be 1 or more (1 = the files directly in each folder given)")
        if max_file_size < 1:
            raise ScanError("max_file_size must be a positive number of bytes")
        self.wanted = wanted_fingerprints(sha256)
        # Fingerprints whose files are searched for in the text files (None: no search).
        self.references_of = wanted_fingerprints(references_of, "references_of")
        self.max_depth = max_depth
        self.exclude = [str(p) for p in exclude or []]
        self.max_file_size = max_file_size
        self.passwords = PasswordTable(passwords)
        self.run_command = run_command
        self.find_tool = find_tool
        self.found: Dict[str, List[Dict[str, Any]]] = {}
        self.certificates: Dict[str, Dict[str, Any]] = {}
        self.files_scanned = 0
        self.skipped: Dict[str, int] = dict.fromkeys(SKIP_REASONS, 0)
        self.unreadable: List[Dict[str, Optional[str]]] = []
        self.missing: List[str] = []
        self._real_roots: List[str] = []
        self._seen_files: Set[str] = set()
        self._dir_budget: Dict[str, int] = {}
        self._hits: Dict[str, Tuple[str, List[str]]] = {}  # real path -> (path, fingerprints)
        self._links: List[str] = []
        self._info_cache: Dict[str, Union[Dict[str, Any], str]] = {}
        # path -> [format, certificates held, wanted ones held]
        self._files: Dict[str, List[Any]] = {}
        # References: files holding one of references_of (path -> real path), the text files
        # to search (path, real path), and what was found (file -> files naming it).
        self._ref_targets: Dict[str, str] = {}
        self._ref_candidates: List[Tuple[str, str]] = []
        self.references: Dict[str, List[str]] = {}

    # ------------------------------------------------------------ results
    def result(self) -> Dict[str, Any]:
        def order(place: Dict[str, Any]) -> Tuple[str, str, int]:
            return (place["path"], place["alias"] or "",
                    -1 if place["index"] is None else place["index"])

        return dict(
            found=dict((fp, sorted(places, key=order)) for fp, places in sorted(self.found.items())),
            certificates=dict(sorted(self.certificates.items())),
            files_scanned=self.files_scanned,
            not_read=dict(self.skipped),
            unreadable=sorted(self.unreadable, key=lambda u: (u["path"], u["reason"] or "")),
            missing=list(self.missing),
            files=dict((path, {"format": fmt, "certificates": total, "matched": matched})
                       for path, (fmt, total, matched) in sorted(self._files.items()) if matched),
            references=dict((path, sorted(names)) for path, names in sorted(self.references.items())),
        )

    def _problem(self, path: str, reason: str, fmt: Optional[str] = None) -> None:
        """``fmt``: the format of the file when its structure was read but some of its
        certificates could not be (a PKCS#12 file whose certificates are encrypted)."""
        self.unreadable.append({"path": escaped(path), "reason": reason, "format": fmt})

    def _info(self, der: bytes, fingerprint: str) -> Union[Dict[str, Any], str]:
        """Subject and end of validity of a certificate, or why it cannot be read (cached)."""
        cached = self._info_cache.get(fingerprint)
        if cached is None:
            try:
                info = cert_info(der)
                cached = {"subject": info["subject"], "not_after": info["not_after"],
                          "is_ca": bool(info["is_ca"])}
            except ValueError as exc:
                cached = str(exc)
            self._info_cache[fingerprint] = cached
        return cached

    def _add(self, path: str, real: str, der: bytes, fmt: str, alias: Optional[str] = None,
             index: Optional[int] = None, what: str = "") -> None:
        fingerprint = sha256_fingerprint(der)
        info = self._info(der, fingerprint)
        if isinstance(info, str):
            self._problem(path, "%smalformed certificate: %s" % (what, info), fmt)
            return
        if escaped(path) != path:
            if self.wanted is None or fingerprint in self.wanted:
                self._problem(path, "%sa certificate sought, in a file whose name is not UTF-8 (shown "
                              "with \\x escapes): rename the file to handle it" % what, fmt)
            return
        counts = self._files.setdefault(path, [fmt, 0, 0])
        counts[1] += 1
        if self.references_of is not None and fingerprint in self.references_of:
            self._ref_targets[path] = real
        if self.wanted is not None and fingerprint not in self.wanted:
            return
        counts[2] += 1
        self.certificates[fingerprint] = info
        self.found.setdefault(fingerprint, []).append(
            {"path": path, "format": fmt, "alias": alias, "index": index, "target": None})
        hits = self._hits.setdefault(real, (path, []))[1]
        if fingerprint not in hits:
            hits.append(fingerprint)

    # ------------------------------------------------------------ walking
    def scan(self, paths: Sequence[str]) -> Dict[str, Any]:
        roots = [os.path.normpath(str(p)) for p in paths]
        self._real_roots = [os.path.realpath(p) for p in roots]
        for root, real in zip(roots, self._real_roots):
            try:
                info = os.stat(root)
            except FileNotFoundError:
                self.missing.append(root)
                continue
            except OSError as exc:
                self._problem(root, "cannot stat: %s" % (exc.strerror or exc))
                continue
            if stat.S_ISDIR(info.st_mode):
                self._walk(root, real)
            elif stat.S_ISREG(info.st_mode):
                self._file(root, real, info)
            else:
                self.skipped["special"] += 1
        self._resolve_links()
        if self.references_of is not None:  # which text files name the files holding them
            self.references = find_references(self._ref_targets, self._ref_candidates)
        return self.result()

    def _excluded(self, path: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)
                   for pattern in self.exclude)

    def _walk(self, root: str, real_root: str) -> None:
        # (folder as reported, its real path, depth of its entries); the real path of a
        # child is its parent's plus its name, since links are never followed below a root.
        stack = [(root, real_root, 1)]
        while stack:
            folder, real, depth = stack.pop()
            budget = self.max_depth - depth
            if self._dir_budget.get(real, -1) >= budget:
                continue  # already walked as deep from another root
            self._dir_budget[real] = budget
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self._problem(folder, "cannot list the folder: %s" % (exc.strerror or exc))
                continue
            folders = []
            for entry in entries:
                path = os.path.join(folder, entry.name)
                if self._excluded(path, entry.name):
                    self.skipped["excluded"] += 1
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self._problem(path, "cannot stat: %s" % (exc.strerror or exc))
                    continue
                mode = info.st_mode
                if stat.S_ISLNK(mode):
                    self._links.append(path)
                elif stat.S_ISDIR(mode):
                    if depth >= self.max_depth:
                        self.skipped["max_depth"] += 1
                    else:
                        folders.append((path, os.path.join(real, entry.name), depth + 1))
                elif stat.S_ISREG(mode):
                    self._file(path, os.path.join(real, entry.name), info)
                else:
                    self.skipped["special"] += 1
            stack.extend(reversed(folders))

    def _inside_roots(self, real: str) -> bool:
        for root in self._real_roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return True
        return False

    def _resolve_links(self) -> None:
        for link in self._links:
            try:
                info = os.stat(link)  # follows the link: ENOENT when dangling, ELOOP for loops
            except OSError:
                self.skipped["symlink_broken"] += 1
                continue
            target = os.path.realpath(link)
            if not self._inside_roots(target):
                self.skipped["symlink_outside"] += 1
                continue
            hit = self._hits.get(target) if stat.S_ISREG(info.st_mode) and escaped(link) == link else None
            if hit is None:
                self.skipped["symlink"] += 1
                continue
            reported, fingerprints = hit
            for fingerprint in fingerprints:
                self.found[fingerprint].append({"path": link, "format": LINK, "alias": None,
                                                "index": None, "target": reported})

    # ------------------------------------------------------------ one file
    def _file(self, path: str, real: str, info: os.stat_result) -> None:
        if real in self._seen_files:
            return
        self._seen_files.add(real)
        if info.st_size > self.max_file_size:
            self.skipped["too_large"] += 1
            return
        try:
            fd = os.open(real, os.O_RDONLY | NOFOLLOW)
        except OSError as exc:
            self._problem(path, "cannot open: %s" % (exc.strerror or exc))
            return
        with os.fdopen(fd, "rb") as handle:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):  # replaced since it was listed
                self.skipped["special"] += 1
                return
            self.files_scanned += 1
            try:
                head = handle.read(HEAD_SIZE)
                kind = classify(head)
                if kind is None:
                    nss = nss_database(path, head)
                    if nss is not None:
                        self._nss(path, real, nss)
                        return
                    self._nothing(path, head, binary=bool(head))
                    return
                data = head + handle.read(self.max_file_size + 1 - len(head))
            except OSError as exc:
                self._problem(path, "cannot read: %s" % (exc.strerror or exc))
                return
        if len(data) > self.max_file_size:  # grew since it was listed
            self.skipped["too_large"] += 1
            return
        if (kind == TEXT and self.references_of is not None and len(data) <= REFERENCE_MAX_SIZE
                and named_like(path, der_shaped=True) is None and escaped(path) == path):
            self._ref_candidates.append((path, real))
        if kind == TEXT:
            self._text(path, real, data)
        elif kind == DER:
            self._der(path, real, data)
        else:
            self._keystore(path, real, data, kind)

    def _nothing(self, path: str, data: bytes, binary: bool) -> None:
        """A file with no certificate: a problem only when it is named like one."""
        like = named_like(path)
        if like is None:
            return
        if not data:
            what = "it is empty"
        elif binary:
            what = "binary data in no known certificate or keystore format"
        else:
            what = "text without any PEM block"
        self._problem(path, "named like %s, but holds no certificate: %s" % (like, what))

    def _text(self, path: str, real: str, data: bytes) -> None:
        if text_kind(data) != PEM:
            if named_like(path) == "a certificate" and _BASE64_TEXT.match(data):
                # A certificate saved as bare base64, without BEGIN/END lines.
                try:
                    der = base64.b64decode(b"".join(data.split()), validate=True)
                except (binascii.Error, ValueError):
                    der = b""
                if classify(der[:HEAD_SIZE]) == DER:
                    self._der(path, real, der, BASE64)
                    return
            self._nothing(path, data, binary=False)
            return
        starts, line, counted = set(), 1, 0  # lines counted as the blocks come (not from 0 each)
        for index, match in enumerate(_PEM_BLOCK.finditer(data)):
            starts.add(match.start())
            label = match.group(1).decode("ascii")
            if label not in CERTIFICATE_LABELS:
                continue
            line, counted = line + data.count(b"\n", counted, match.start()), match.start()
            what = "PEM block #%d (line %d): " % (index, line)
            block = match.group(0)
            try:
                der = certificate_from_block(label, pem_blocks(block)[0][1])
            except ValueError as exc:
                if b"\\n" not in block:
                    self._problem(path, what + str(exc), PEM)
                    continue
                # PEM kept in a JSON or properties string, lines joined with "\n" escapes.
                try:
                    unescaped = block.replace(b"\\r", b"").replace(b"\\n", b"\n")
                    der = certificate_from_block(label, pem_blocks(unescaped)[0][1])
                except ValueError:
                    self._problem(path, what + str(exc), PEM)
                    continue
            self._add(path, real, der, PEM, index=index, what=what)
        line, counted = 1, 0
        for begin in _CERT_BEGIN.finditer(data):
            if begin.start() not in starts:  # e.g. a truncated copy
                line, counted = line + data.count(b"\n", counted, begin.start()), begin.start()
                self._problem(path, "line %d: %s without its END line"
                              % (line, begin.group(0).decode("ascii")), PEM)

    def _der(self, path: str, real: str, data: bytes, fmt: str = DER) -> None:
        try:
            ders = load_certificates(data)
        except ValueError as exc:
            if named_like(path, der_shaped=fmt == DER) is not None:
                self._problem(path, "not a readable DER certificate: %s" % exc)
            return
        for index, der in enumerate(ders):
            self._add(path, real, der, fmt, index=index if len(ders) > 1 else None)

    def _nss(self, path: str, real: str, nss: str) -> None:
        """The certificates of an NSS sql: database, listed by certutil (read only, no
        password needed), each once, under the nickname that shows it."""
        tool = self.find_tool("certutil") if self.find_tool and self.run_command else None
        if nss != "sql" or not tool:
            self._problem(path, NSS_NOT_READ[nss], NSS)
            return
        seen: Set[str] = set()
        try:
            with Certutil(os.path.dirname(real), None, self.run_command, self.find_tool) as certutil:
                for nickname, _trust in certutil.listing():
                    for der in certutil.ders(nickname):
                        fingerprint = sha256_fingerprint(der)
                        if fingerprint not in seen:
                            seen.add(fingerprint)
                            self._add(path, real, der, NSS, alias=nickname,
                                      what="nickname %r: " % nickname)
        except StoreError as exc:
            self._problem(path, "NSS database: %s" % exc.reason, NSS)

    def _keystore(self, path: str, real: str, data: bytes, kind: str) -> None:
        # JKS/JCEKS certificates are readable without the password: it is not asked for.
        passwords = self.passwords.for_file(path, real) if kind == PKCS12 else []
        try:
            opened = open_keystore(real, data, passwords, kind, self.run_command, self.find_tool,
                                   ask="its password in passwords")
        except StoreError as exc:
            if exc.code == UNKNOWN_FORMAT:  # a PFX header, and no PKCS#12 behind it
                self._nothing(path, data, binary=True)
            else:
                self._problem(path, exc.reason)
            return
        for cert in opened.certificates:
            # index: the position in a JKS/JCEKS key's chain (PKCS#12 bags have no order)
            self._add(path, real, cert.der, opened.format, alias=cert.alias,
                      index=None if opened.format == PKCS12 else cert.index,
                      what="entry %r: " % cert.alias if cert.alias else "")
        if opened.problem is not None:
            # The file is a keystore whatever its name: say so, it is a store to declare.
            self._problem(path, opened.problem.reason, opened.format)


def scan(paths: Sequence[str], **options: Any) -> Dict[str, Any]:
    """Scan ``paths``; see :class:`Scanner` for the options and ``result`` for the keys."""
    return Scanner(**options).scan(paths)


def run_scan(module: Any) -> None:
    """What the ``sne.guichet.scan`` module does once its arguments are parsed."""
    params = module.params
    run_command, find_tool = module_tools(module)
    try:
        scanner = Scanner(sha256=params["sha256"], max_depth=params["max_depth"],
                          exclude=params["exclude"], max_file_size=params["max_file_size"],
                          passwords=params["passwords"], run_command=run_command,
                          find_tool=find_tool, references_of=params.get("references_of"))
    except ScanError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **scanner.scan(params["paths"]))
