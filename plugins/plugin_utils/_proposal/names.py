# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The names and places of a host_vars proposal: fingerprints, file and variable names, OS folders.

This API is private to the sne.guichet collection; it may change without notice.
Controller side; standard library only.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

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


def normalize_fingerprint(value: Any) -> str:
    """``AB:CD:...`` (upper case, colons), as sne.guichet.scan returns them."""
    text = re.sub(r"[\s:]", "", str(value or "")).upper()
    if not _FINGERPRINT.match(text):
        raise ProposalError("not a SHA-256 fingerprint: %r" % (value,))
    return ":".join(text[i:i + 2] for i in range(0, 64, 2))


def fingerprints(values: Any, what: str) -> List[str]:
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


def slug(text: str) -> str:
    """Lower-case ASCII letters, digits and ``_`` (what a variable name may hold)."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def vault_name(path: str, host: str, taken: Sequence[str]) -> str:
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


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> List[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []
