# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""From an audit's scan to the host's inventory: a proposed ``host_vars`` fragment.

This API is private to the sne.guichet collection; it may change without notice.
Controller side (the ``sne.guichet.host_vars_proposal`` and ``host_vars_proposal_yaml``
filters are thin shims over :func:`propose` and :func:`render_yaml`); standard library only,
PyYAML (an ansible-core dependency) for the rendering.

:func:`propose` takes what ``sne.guichet.scan`` returned for a host (run with ``sha256`` = the
current and retired fingerprints and ``references_of`` = the retired ones) and says which
stores the host should declare so that ``rotate.yml`` converges it:

- a Java keystore (JKS, JCEKS: type ``jks``; PKCS#12: ``pkcs12``) holding a current or retired
  certificate, or a PKCS#12 file the scan could not read without its password, is a store,
  with a password placeholder ``{{ vault_<host>_<file> }}``;
- a folder holding a found certificate under an OpenSSL hash name (``8f5dbf0c.0``) is one
  ``pem_dir`` store; files under ``.../usr/local/share/ca-certificates`` make one ``debian``
  store, under ``.../etc/pki/ca-trust/source/anchors`` one ``redhat`` store (matched as a
  suffix, so a host laid out under a test root works too);
- a PEM file of several certificates (a bundle) is a ``pem`` store;
- a single-certificate file holding the current generation is a store of its type;
- a single-certificate file holding only retired certificates is what the retire step
  quarantines: it is not a store, but when configuration files name it, a new file of the
  same type is proposed next to it (``create: true``; name: the old one with its generation
  label, ``V4``, replaced, else ``<stem>-<generation><ext>``), and each naming file gets a
  ``sne_guichet_config_files`` rewrite of the old name into the new one;
- folders generated from the trust anchors (``/etc/ssl/certs``...) are never stores.

The host's declared stores and configuration rewrites are kept (never their passwords: a
declared store gets a placeholder too, since the values Ansible passes are the real ones).
Everything is sorted; paths are kept exactly as the scan wrote them.
"""

from __future__ import annotations

import datetime
import posixpath
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.sne.guichet.plugins.plugin_utils._fleet import inside

# The variables of the fragment, in the order they are rendered.
VARIABLES = ("sne_guichet_stores", "sne_guichet_config_files", "sne_guichet_search_paths")

JAVA_TYPES = {"jks": "jks", "jceks": "jks", "pkcs12": "pkcs12"}
FOLDER_TYPES = ("pem_dir", "debian", "redhat")
PASSWORD_TYPES = ("jks", "pkcs12")
# Store options kept from a declared store, in this order (then any other key).
STORE_KEYS = ("path", "type", "password", "create", "names", "refresh", "owner", "group", "mode")

HASH_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
GENERATION_LABEL = re.compile(r"[Vv]\d+")
TRUST_ANCHORS = (("/usr/local/share/ca-certificates", "debian"),
                 ("/etc/pki/ca-trust/source/anchors", "redhat"))
# Built from the trust anchors by update-ca-certificates / update-ca-trust: never stores.
GENERATED_FOLDERS = ("/etc/ssl/certs", "/etc/pki/ca-trust/extracted", "/etc/pki/tls/certs",
                     "/etc/pki/java", "/var/lib/ca-certificates")
_FINGERPRINT = re.compile(r"^[0-9A-F]{64}$")


class ProposalError(ValueError):
    """The arguments of :func:`propose` cannot make a proposal."""


# --------------------------------------------------------------------------- small helpers


def normalize_fingerprint(value: Any) -> str:
    """``AB:CD:...`` (upper case, colons), as sne.guichet.scan returns them."""
    text = re.sub(r"[\s:]", "", str(value or "")).upper()
    if not _FINGERPRINT.match(text):
        raise ProposalError("not a SHA-256 fingerprint: %r" % (value,))
    return ":".join(text[i:i + 2] for i in range(0, 64, 2))


def slug(text: str) -> str:
    """Lower-case ASCII letters, digits and ``_`` (what a variable name may hold)."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def anchors_folder(path: str) -> Optional[Tuple[str, str]]:
    """(folder, ``debian``/``redhat``) when ``path`` is below an OS trust anchors folder."""
    for suffix, kind in TRUST_ANCHORS:
        at = path.find(suffix + "/")
        if at >= 0:
            return path[:at + len(suffix)], kind
    return None


def generated_folder(path: str) -> Optional[str]:
    """The folder built from the trust anchors that ``path`` is in, if any."""
    for suffix in GENERATED_FOLDERS:
        at = path.find(suffix + "/")
        if at >= 0:
            return path[:at + len(suffix)]
    return None


def new_name(basename: str, generation: str) -> str:
    """The name of the new generation's file next to ``basename``.

    The last generation label (``V4``, ``v4``) is replaced, keeping its case
    (``Chiffrement_SNEV4.cer`` -> ``Chiffrement_SNEV5.cer``, ``sne-v4.pem`` ->
    ``sne-v5.pem``); a name without one gets the generation before its extension
    (``sne.cer`` -> ``sne-v5.cer``).
    """
    digits = re.match(r"^[Vv]?(\d+)$", generation)
    labels = list(GENERATION_LABEL.finditer(basename))
    if labels:
        last = labels[-1]
        upper = last.group(0)[0] == "V"
        if digits:
            label = ("V" if upper else "v") + digits.group(1)
        else:
            label = generation if upper else generation.lower()
        return basename[:last.start()] + label + basename[last.end():]
    stem, ext = posixpath.splitext(basename)
    return "%s-%s%s" % (stem, generation.lower(), ext)


def templated_name(basename: str) -> Tuple[Optional[str], Optional[str]]:
    """``basename`` with its last generation label as a template, and a regexp for any generation.

    ``Chiffrement_SNEV4.cer`` -> (``Chiffrement_SNE{{ sne_generation }}.cer``,
    ``Chiffrement_SNEV[0-9]+\\.cer``); ``sne-v4.pem`` -> (``sne-{{ sne_generation | lower }}.pem``,
    ``sne\\-v[0-9]+\\.pem``); (None, None) when the name carries no label or holds braces.
    """
    labels = list(GENERATION_LABEL.finditer(basename))
    if not labels or "{" in basename or "}" in basename:
        return None, None
    last = labels[-1]
    upper = last.group(0)[0] == "V"
    template = "{{ sne_generation }}" if upper else "{{ sne_generation | lower }}"
    return (basename[:last.start()] + template + basename[last.end():],
            re.escape(basename[:last.start()]) + ("V" if upper else "v") + "[0-9]+"
            + re.escape(basename[last.end():]))


def _printable(text: str) -> str:
    """``text`` fit for one comment line (no line break, control or surrogate character)."""
    out = []
    for char in str(text):
        if char.isprintable() and not 0xD800 <= ord(char) <= 0xDFFF:
            out.append(char)
        else:
            out.append(ascii(char)[1:-1])
    return "".join(out)


def _fingerprints(values: Any, what: str) -> List[str]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = [values]
    out: List[str] = []
    for value in values:
        if value in (None, ""):
            continue
        try:
            fp = normalize_fingerprint(value)
        except ProposalError as exc:
            raise ProposalError("%s: %s" % (what, exc))
        if fp not in out:
            out.append(fp)
    return out


def plain(value: Any) -> Any:
    """``value`` with only the built-in types (dict, list, str, int, float, bool, None).

    Values coming from Ansible are subclasses of them (tagged strings, lazy containers) that
    ``yaml.safe_dump`` cannot represent.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, Mapping):
        return dict((plain(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return "%s" % (value,)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> List[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _verb(naming: Sequence[str]) -> str:
    return "name" if len(naming) > 1 else "names"


def _plural(count: int, word: str) -> str:
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


# --------------------------------------------------------------------------- the proposal


class _Builder:
    """One host's proposal, built path by path (see :func:`propose`)."""

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
        self.info = _mapping(scan.get("certificates"))
        self.files = _mapping(scan.get("files"))
        self.references = _mapping(scan.get("references"))
        self.searched_references = "references" in scan
        # path -> fingerprints (current or retired) it holds; links apart
        self.held: Dict[str, Set[str]] = {}
        self.aliases: Dict[str, Set[str]] = {}  # Java store -> aliases of retired entries
        self.place_format: Dict[str, str] = {}
        # folders with a found certificate under a hash name -> those certificates
        self.hashed: Dict[str, Set[str]] = {}
        for fingerprint, places in sorted(_mapping(scan.get("found")).items()):
            try:
                fingerprint = normalize_fingerprint(fingerprint)
            except ProposalError:
                continue
            if fingerprint not in self.current and fingerprint not in self.retired:
                continue
            for place in _list(places):
                place = _mapping(place)
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
        return bool(_mapping(self.info.get(fingerprint)).get("is_ca"))

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
            if path == store_path or (store.get("type") in FOLDER_TYPES and inside(path, store_path)):
                return store_path
        return None

    # ------------------------------------------------------------ declared
    def declared(self, stores: Sequence[Any], config_files: Sequence[Any]) -> None:
        for raw in stores:
            raw = _mapping(raw)
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
            raw = _mapping(raw)
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
            meta = _mapping(self.files.get(path))
            fmt = str(meta.get("format") or self.place_format.get(path))
            total = meta.get("certificates")
            if not isinstance(total, int):
                total = len(fps)
            what = self._generations(fps)
            if fmt in JAVA_TYPES:
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
        naming = sorted(str(r) for r in _list(self.references.get(path)))
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
        naming = sorted(str(r) for r in _list(self.references.get(path)))
        if not naming or path == owner:
            return
        self.note("%s: named by %s, but inside the store %s (%s), where the rotation removes it and "
                  "adds the new certificate under another name: rewrite those references by hand"
                  % (path, ", ".join(naming), owner, self.stores[owner].get("type")))

    # ------------------------------------------------------------ unreadable
    def unreadable(self) -> None:
        for raw in sorted((_mapping(u) for u in _list(self.scan.get("unreadable"))),
                          key=lambda u: (str(u.get("path")), str(u.get("reason")))):
            path = raw.get("path")
            if not isinstance(path, str) or not path:
                continue
            reason = str(raw.get("reason") or "unreadable")
            owner = self.covered(path)
            if raw.get("format") == "pkcs12" and owner is None and not generated_folder(path):
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

    # ------------------------------------------------------------ passwords
    def placeholders(self) -> List[str]:
        """Give every Java store (and declared store with a password) its vault placeholder."""
        host = slug(self.host or "")
        taken: List[str] = []
        for path in sorted(self.stores):
            store = self.stores[path]
            if "password" not in store and store.get("type") not in PASSWORD_TYPES:
                continue
            name = _vault_name(path, host, taken)
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


def _vault_name(path: str, host: str, taken: Sequence[str]) -> str:
    """``vault_<host>_<file>``; the folders above the file are added while it is taken."""
    parts = [part for part in (slug(p) for p in path.split("/")) if part] or ["store"]
    prefix = ["vault"] + ([host] if host else [])
    for depth in range(1, len(parts) + 1):
        name = "_".join(prefix + parts[-depth:])
        if name not in taken:
            return name
    base, counter = "_".join(prefix + parts), 2
    while "%s_%d" % (base, counter) in taken:
        counter += 1
    return "%s_%d" % (base, counter)


def propose(scan: Mapping[str, Any], current: Any, retired: Any, generation: str,
            host: Optional[str] = None, stores: Optional[Sequence[Any]] = None,
            search_paths: Optional[Sequence[Any]] = None,
            config_files: Optional[Sequence[Any]] = None,
            certificate_name: Optional[str] = None,
            authority_name: Optional[str] = None) -> Dict[str, Any]:
    """A proposed ``host_vars`` fragment from one host's ``sne.guichet.scan`` result.

    ``current`` and ``retired``: SHA-256 fingerprints (the new certificate and its authority;
    the retired ones). ``generation``: the new generation's label (``V5``), for new file
    names. ``host``: the inventory name (in the password placeholders). ``stores``,
    ``config_files``: what the host declares already (kept); ``search_paths``: the paths to
    keep searching for stray copies. ``certificate_name``, ``authority_name``: the names
    the deploy role gives the new certificates (default ``sne-chiffrement-<generation>``,
    ``sne-ac-<generation>``, its defaults), used in ``names`` of the single-certificate
    stores.

    Returns ``sne_guichet_stores``, ``sne_guichet_config_files``, ``sne_guichet_search_paths``
    (the variables, sorted), ``notes`` (what the operator must check or do, in words) and
    ``reasons`` (for each proposed store or rewritten file, why; :func:`render_yaml` writes
    them as comments).
    """
    if not isinstance(scan, Mapping):
        raise ProposalError("expects the result of sne.guichet.scan (a dict), got %s"
                            % type(scan).__name__)
    if not isinstance(generation, str) or not generation.strip() or "/" in generation:
        raise ProposalError("generation must be the new generation's label, such as V5")
    generation = generation.strip()
    current_fps = _fingerprints(current, "current")
    retired_fps = _fingerprints(retired, "retired")
    both = sorted(set(current_fps) & set(retired_fps))
    if both:
        raise ProposalError("current and retired both name %s" % ", ".join(both))
    builder = _Builder(scan, current_fps, retired_fps, generation, host,
                       certificate_name or "sne-chiffrement-{{ sne_generation | lower }}",
                       authority_name or "sne-ac-{{ sne_generation | lower }}")
    builder.declared(_list(stores), _list(config_files))
    builder.folders()
    builder.files_found()
    builder.unreadable()
    vault = builder.placeholders()
    if vault:
        builder.notes.insert(0, "define %s in the vault (ansible-vault encrypt_string) before "
                             "using this file: the passwords of the Java keystores" % ", ".join(vault))
    singles = sorted(p for p, s in builder.stores.items() if s.get("names"))
    if singles:
        builder.note("%s: given names (%s) so that each keeps one certificate; these are the deploy "
                     "role's default names: change them if deploy_certificate_name or "
                     "deploy_authority_name are set" % (", ".join(singles), ", ".join(
                         sorted(set(n for p in singles for n in builder.stores[p]["names"])))))

    paths: List[str] = []
    for value in _list(search_paths):
        if isinstance(value, str) and value and value not in paths:
            paths.append(value)
    missing = set(str(m) for m in _list(scan.get("missing")))
    for path in paths:
        if path in missing:
            builder.note("search path %s does not exist on this host" % path)
    for path, changes in builder.rewrites.items():
        builder.reasons.setdefault(path, "names a retired file: %s" % ", ".join(changes))

    return plain({
        "sne_guichet_stores": [builder.stores[p] for p in sorted(builder.stores)],
        "sne_guichet_config_files": sorted(builder.config_files,
                                           key=lambda e: (e["path"], e["regexp"], e["replace"])),
        "sne_guichet_search_paths": paths,
        "notes": list(builder.notes),
        "reasons": dict(sorted(builder.reasons.items())),
    })


def variables(proposal: Mapping[str, Any]) -> Dict[str, Any]:
    """The host variables of a proposal (what its YAML text loads back to)."""
    return dict((name, proposal.get(name) or []) for name in VARIABLES)


# --------------------------------------------------------------------------- the text


def _yaml() -> Any:
    import yaml  # PyYAML: an ansible-core dependency, imported only to render

    return yaml


def _dump(value: Any) -> str:
    return _yaml().safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True,
                             width=100000)


def _wrap(text: str, width: int) -> List[str]:
    """``text`` on lines of at most about ``width`` characters (long words kept whole)."""
    lines: List[str] = []
    line = ""
    for word in _printable(text).split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = word if not line else line + " " + word
    return lines + [line]


def _comment(text: str, indent: str = "") -> List[str]:
    return [("%s# %s" % (indent, line)).rstrip() for line in _wrap(text, 96 - len(indent))]


def render_yaml(proposal: Mapping[str, Any], host: Optional[str] = None,
                date: Optional[str] = None) -> str:
    """The proposal as a commented ``host_vars`` YAML text for an operator to review.

    ``yaml.safe_load`` of the text gives :func:`variables` of the proposal: the notes and
    reasons are comments. ``date`` defaults to now (UTC, ISO 8601).
    """
    if not isinstance(proposal, Mapping):
        raise ProposalError("expects the result of host_vars_proposal (a dict), got %s"
                            % type(proposal).__name__)
    if not date:
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    proposal = plain(proposal)
    reasons = _mapping(proposal.get("reasons"))
    lines = ["---"]
    lines.append(_printable("# Proposed host_vars for %s" % ("host %s" % host if host else "this host")))
    lines.append(_printable("# Generated by the sne.guichet audit on %s." % date))
    lines += _comment("REVIEW BEFORE USE: this is what the audit's scan found under the search "
                      "paths (nothing was changed on the host). Copy what is right into "
                      "host_vars/%s.yml and put the store passwords in the vault: every vault_* "
                      "variable below must be defined." % (host or "<host>"))
    notes = [str(n) for n in _list(proposal.get("notes"))]
    if notes:
        lines += ["#", "# Notes:"]
        for note in notes:
            wrapped = _wrap(note, 90)
            lines.append("#  - " + wrapped[0])
            lines += ["#    " + line for line in wrapped[1:]]
    data = variables(proposal)
    for name in VARIABLES:
        items = data[name]
        lines.append("")
        if not items:
            lines.append("%s: []" % name)
            continue
        lines.append("%s:" % name)
        commented: Set[str] = set()
        for item in items:
            path = item.get("path") if isinstance(item, Mapping) else None
            if name != "sne_guichet_search_paths" and isinstance(path, str) and path in reasons \
                    and path not in commented:
                commented.add(path)
                lines += _comment(str(reasons[path]), "  ")
            lines += ["  " + line for line in _dump([item]).splitlines()]
    return "\n".join(lines) + "\n"
