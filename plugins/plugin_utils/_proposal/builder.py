# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One host's proposal, built path by path from its scan (the rules: :mod:`propose`).

This API is private to the sne.guichet collection; it may change without notice.
Controller side; standard library only.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.sne.guichet.plugins.plugin_utils._fleet import inside
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.names import (
    HASH_NAME,
    ProposalError,
    anchors_folder,
    as_list,
    as_mapping,
    generated_folder,
    new_name,
    normalize_fingerprint,
    slug,
    templated_name,
    vault_name,
)

JAVA_TYPES = {"jks": "jks", "jceks": "jks", "pkcs12": "pkcs12"}
FOLDER_TYPES = ("pem_dir", "debian", "redhat")
HOLDING_TYPES = FOLDER_TYPES + ("nss",)  # stores that are a folder: the files in it are theirs
PASSWORD_TYPES = ("jks", "pkcs12")
# Store options kept from a declared store, in this order (then any other key).
STORE_KEYS = ("path", "type", "password", "create", "names", "refresh", "owner", "group", "mode")


def _verb(naming: Sequence[str]) -> str:
    return "name" if len(naming) > 1 else "names"


def _plural(count: int, word: str) -> str:
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


class Builder:
    """One host's proposal, built path by path (see :func:`propose.propose`)."""

    def __init__(self, scan: Mapping[str, Any], current: List[str], retired: List[str],
                 generation: str, host: Optional[str], certificate_name: str,
                 authority_name: str) -> None:
        self.scan = scan
        self.current = set(current)
        self.retired = set(retired)
        self.generation = generation
        self.host = host
        self.certificate_name = certificate_name
        self.authority_name = authority_name
        self.stores: Dict[str, Dict[str, Any]] = {}
        self.declared_paths: Set[str] = set()
        self.reasons: Dict[str, str] = {}
        self.rewrites: Dict[str, List[str]] = {}  # configuration file -> old names rewritten
        self.config_files: List[Dict[str, str]] = []
        self.notes: List[str] = []
        self.info = as_mapping(scan.get("certificates"))
        self.files = as_mapping(scan.get("files"))
        self.references = as_mapping(scan.get("references"))
        self.searched_references = "references" in scan
        # path -> fingerprints (current or retired) it holds; links apart
        self.held: Dict[str, Set[str]] = {}
        self.aliases: Dict[str, Set[str]] = {}  # Java store -> aliases of retired entries
        self.place_format: Dict[str, str] = {}
        # folders with a found certificate under a hash name -> those certificates
        self.hashed: Dict[str, Set[str]] = {}
        for fingerprint, places in sorted(as_mapping(scan.get("found")).items()):
            try:
                fingerprint = normalize_fingerprint(fingerprint)
            except ProposalError:
                continue
            if fingerprint not in self.current and fingerprint not in self.retired:
                continue
            for place in as_list(places):
                place = as_mapping(place)
                path = place.get("path")
                if not isinstance(path, str) or not path:
                    continue
                if HASH_NAME.match(posixpath.basename(path)):
                    self.hashed.setdefault(posixpath.dirname(path), set()).add(fingerprint)
                if place.get("format") == "link":
                    continue
                self.held.setdefault(path, set()).add(fingerprint)
                self.place_format.setdefault(path, str(place.get("format")))
                if place.get("alias") and fingerprint in self.retired:
                    self.aliases.setdefault(path, set()).add(str(place["alias"]))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _generations(self, fingerprints: Set[str]) -> str:
        has_current = bool(fingerprints & self.current)
        has_retired = bool(fingerprints & self.retired)
        if has_current and has_retired:
            return "both the retired and the current generation"
        return "the current generation" if has_current else "the retired generation"

    def _is_ca(self, fingerprint: str) -> bool:
        return bool(as_mapping(self.info.get(fingerprint)).get("is_ca"))

    def _name_for(self, fingerprints: Set[str]) -> str:
        """The deploy role's name of the certificate that replaces or matches these."""
        return self.authority_name if any(self._is_ca(f) for f in fingerprints) else self.certificate_name

    def add_store(self, store: Dict[str, Any], reason: str) -> None:
        path = store["path"]
        if path in self.stores:
            return
        self.stores[path] = store
        self.reasons[path] = reason

    def covered(self, path: str) -> Optional[str]:
        """The proposed store (file or folder) ``path`` belongs to, if any."""
        for store_path, store in self.stores.items():
            if path == store_path or (store.get("type") in HOLDING_TYPES and inside(path, store_path)):
                return store_path
        return None

    # ------------------------------------------------------------ declared
    def declared(self, stores: Sequence[Any], config_files: Sequence[Any]) -> None:
        for raw in stores:
            raw = as_mapping(raw)
            path = raw.get("path")
            if not isinstance(path, str) or not path:
                continue
            store: Dict[str, Any] = {}
            for key in STORE_KEYS + tuple(k for k in raw if k not in STORE_KEYS):
                if key == "password":
                    if raw.get("type") in PASSWORD_TYPES or raw.get("password") is not None:
                        store["password"] = None  # placeholder, named once every store is known
                elif key in raw and raw[key] is not None:
                    store[key] = raw[key]
            if path in self.stores:
                continue
            self.declared_paths.add(path)
            self.add_store(store, "declared in the host's variables")
        for raw in config_files:
            raw = as_mapping(raw)
            if raw.get("path") and raw.get("regexp") is not None:
                entry = {"path": str(raw["path"]), "regexp": str(raw["regexp"]),
                         "replace": str(raw.get("replace", ""))}
                if entry not in self.config_files:
                    self.config_files.append(entry)

    # ------------------------------------------------------------ folders
    def folders(self) -> None:
        for path in sorted(self.held):
            if self.covered(path) or generated_folder(path):
                continue
            anchors = anchors_folder(path)
            if anchors is not None:
                folder, kind = anchors
                self.add_store({"path": folder, "type": kind}, "%s trust anchors (%s)" % (
                    "Debian" if kind == "debian" else "Red Hat",
                    "update-ca-certificates" if kind == "debian" else "update-ca-trust"))
        # A folder whose hash links name certificates kept elsewhere is a pem_dir store too.
        for folder in sorted(self.hashed):
            probe = folder.rstrip("/") + "/"
            if self.covered(folder) or generated_folder(probe) or anchors_folder(probe):
                continue
            self.add_store({"path": folder, "type": "pem_dir"},
                           "folder of PEM files with OpenSSL hash links (openssl rehash, -CApath)")
        for folder in sorted(self.stores):
            if self.stores[folder].get("type") in FOLDER_TYPES and folder not in self.declared_paths:
                held: Set[str] = set(self.hashed.get(folder, ()))
                for path, fps in self.held.items():
                    if inside(path, folder):
                        held |= fps
                self.reasons[folder] += ", holding %s" % self._generations(held)

    # ------------------------------------------------------------ files
    def files_found(self) -> None:
        # Files holding only retired certificates last: a file of the new generation found
        # where a replacement would be proposed is a store as it is (not a file to create).
        retired_only: List[Tuple[str, str, Set[str]]] = []
        for path in sorted(self.held):
            fps = self.held[path]
            owner = self.covered(path)
            if owner is not None:
                self._referenced_inside(path, owner)
                continue
            generated = generated_folder(path)
            if generated is not None:
                self.note("%s: in %s, which update-ca-certificates or update-ca-trust builds from the "
                          "trust anchors: not a store (declare the anchors folder instead)"
                          % (path, generated))
                continue
            meta = as_mapping(self.files.get(path))
            fmt = str(meta.get("format") or self.place_format.get(path))
            total = meta.get("certificates")
            if not isinstance(total, int):
                total = len(fps)
            what = self._generations(fps)
            if fmt == "nss" and path.endswith("/cert9.db"):
                self.add_store({"path": path[:-len("/cert9.db")], "type": "nss"},
                               "NSS database of %s, holding %s (add its password if it has one)"
                               % (_plural(total, "certificate"), what))
            elif fmt in JAVA_TYPES:
                self.add_store({"path": path, "type": JAVA_TYPES[fmt], "password": None},
                               "%s keystore of %s, holding %s"
                               % (fmt.upper(), _plural(total, "certificate"), what))
                aliases = sorted(self.aliases.get(path, ()))
                if aliases:
                    self.note("%s: holds retired certificates under the alias%s %s, which the rotation "
                              "removes (the new ones are added as %s and %s): if a configuration file "
                              "names one, add a sne_guichet_config_files entry for it"
                              % (path, "es" if len(aliases) > 1 else "", ", ".join(aliases),
                                 self.certificate_name, self.authority_name))
            elif total > 1:
                if fmt == "pem":
                    self.add_store({"path": path, "type": "pem"},
                                   "PEM bundle of %d certificates, holding %s" % (total, what))
                else:
                    self.note("%s: a %s file of %d certificates holding %s: no store type holds it "
                              "(a der store holds one certificate); it needs a person"
                              % (path, fmt.upper(), total, what))
            elif fps & self.current:
                self._current_single(path, fmt, fps)
            else:
                retired_only.append((path, fmt, fps))
        for path, fmt, fps in retired_only:
            self._retired_single(path, fmt, fps)

    def _current_single(self, path: str, fmt: str, fps: Set[str]) -> None:
        if fmt == "pem":
            self.add_store({"path": path, "type": "pem", "names": [self._name_for(fps)]},
                           "single-certificate PEM file holding the current generation already")
        elif fmt == "der":
            self.add_store({"path": path, "type": "der"},
                           "single-certificate DER file holding the current generation already")
        else:
            self.note("%s: a %s certificate file holding the current generation: no store type "
                      "writes this format; it needs a person" % (path, fmt))

    def _retired_single(self, path: str, fmt: str, fps: Set[str]) -> None:
        if not self.searched_references or path not in self.references:
            self.note("%s: holds only retired certificates; the scan did not look for the files "
                      "naming it (references_of): the retire step quarantines it, check nothing "
                      "reads it" % path)
            return
        naming = sorted(str(r) for r in as_list(self.references.get(path)))
        if not naming:
            self.note("%s: holds only retired certificates and no configuration file names it: the "
                      "retire step quarantines it" % path)
            return
        if fmt not in ("pem", "der"):
            self.note("%s: holds only retired certificates, as bare %s, and %s %s it: no store type "
                      "writes this format; put the new certificate there by hand"
                      % (path, fmt, ", ".join(naming), _verb(naming)))
            return
        folder, old = posixpath.split(path)
        new = new_name(old, self.generation)
        # A name with a generation label is proposed templated (Chiffrement_SNE{{ sne_generation }}.cer,
        # references matched whatever the generation), so the next rotation needs no new host_vars.
        templated, pattern = templated_name(old)
        if new == old:
            # Already named after the new generation: the file itself is the store.
            in_place: Dict[str, Any] = {"path": path, "type": fmt}
            if fmt == "pem":
                in_place["names"] = [self._name_for(fps)]
            self.add_store(in_place, "named by %s; holds the retired generation, replaced in place"
                           % ", ".join(naming))
            return
        new_path = posixpath.join(folder, new)
        if templated and new_path not in self.stores:
            new_path = posixpath.join(folder, templated)
        store: Dict[str, Any] = {"path": new_path, "type": fmt, "create": True}
        if fmt == "pem" or any(self._is_ca(f) for f in fps):
            store["names"] = [self._name_for(fps)]
        self.add_store(store, "new file for %s, replacing %s (retired), which %s %s"
                       % (self.generation, old, ", ".join(naming), _verb(naming)))
        for ref in naming:
            entry = {"path": ref, "regexp": pattern or re.escape(old),
                     "replace": (templated or new).replace("\\", "\\\\")}
            if not any(e["path"] == ref and e["regexp"] == entry["regexp"] for e in self.config_files):
                self.config_files.append(entry)
                self.rewrites.setdefault(ref, []).append("%s -> %s" % (old, new))
        self.note("%s: holds only retired certificates and %s %s it: the new certificate goes "
                  "into %s (created) and the references are rewritten to name it; the retire step "
                  "quarantines the old file" % (path, ", ".join(naming), _verb(naming), new_path))

    def _referenced_inside(self, path: str, owner: str) -> None:
        naming = sorted(str(r) for r in as_list(self.references.get(path)))
        if not naming or path == owner:
            return
        self.note("%s: named by %s, but inside the store %s (%s), where the rotation removes it and "
                  "adds the new certificate under another name: rewrite those references by hand"
                  % (path, ", ".join(naming), owner, self.stores[owner].get("type")))

    # ------------------------------------------------------------ unreadable
    def unreadable(self) -> None:
        for raw in sorted((as_mapping(u) for u in as_list(self.scan.get("unreadable"))),
                          key=lambda u: (str(u.get("path")), str(u.get("reason")))):
            path = raw.get("path")
            if not isinstance(path, str) or not path:
                continue
            reason = str(raw.get("reason") or "unreadable")
            owner = self.covered(path)
            if raw.get("format") == "nss" and path.endswith("/cert9.db"):
                self.nss_database(path, owner, reason)
            elif raw.get("format") == "pkcs12" and owner is None and not generated_folder(path):
                self.add_store({"path": path, "type": "pkcs12", "password": None},
                               "PKCS#12 keystore NOT READ: its certificates are encrypted; check it "
                               "holds the SNE certificates, or remove this entry")
                self.note("%s: a PKCS#12 keystore the scan could not read without its password (%s): "
                          "proposed as a store because it may hold the SNE certificates; keep it if "
                          "it does (the deploy adds the new certificate and authority to every "
                          "declared store), remove it otherwise" % (path, reason))
            elif owner is not None and owner == path:
                self.note("%s: a declared or proposed store the scan could not read: %s" % (path, reason))
            else:
                self.note("%s: not read by the scan: %s" % (path, reason))

    def nss_database(self, path: str, owner: Optional[str], reason: str) -> None:
        """The cert9.db of an NSS database: its folder proposed as a store of type nss, unless
        a declared or proposed store holds it (certutil reads it there)."""
        if owner is not None:
            return
        folder = path[:-len("/cert9.db")]
        self.add_store({"path": folder, "type": "nss"},
                       "NSS database NOT READ by the scan: check with certutil -L -d sql:%s that it holds "
                       "the SNE certificates (add its password if it has one), or remove this entry" % folder)
        self.note("%s: %s; its folder is proposed as a store of type nss" % (path, reason))

    # ------------------------------------------------------------ passwords
    def placeholders(self) -> List[str]:
        """Give every Java store (and declared store with a password) its vault placeholder."""
        host = slug(self.host or "")
        taken: List[str] = []
        for path in sorted(self.stores):
            store = self.stores[path]
            if "password" not in store and store.get("type") not in PASSWORD_TYPES:
                continue
            name = vault_name(path, host, taken)
            taken.append(name)
            placeholder = "{{ %s }}" % name
            ordered: Dict[str, Any] = {}
            for key, value in store.items():  # the password right after the type
                if key != "password":
                    ordered[key] = value
                if key == "type":
                    ordered["password"] = placeholder
            ordered.setdefault("password", placeholder)
            self.stores[path] = ordered
        return taken
