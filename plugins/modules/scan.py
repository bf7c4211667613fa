#!/usr/bin/python
# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scan
short_description: Find certificates under given paths, in every supported format, whatever the file is called
version_added: 0.1.0
description:
  - Walks the given files and folders of the host and reports every place that holds one of the
    certificates of O(sha256) (or every certificate when O(sha256) is empty) - to find every stray
    copy of a retired generation before and after a rotation.
  - Files are recognised by content, never by name - PEM text (any certificate block, also in
    configuration files), DER certificates, Java JKS and JCEKS keystores (trusted certificates
    and the chains of private key entries, read without the store password), and PKCS#12 files.
  - Only the first bytes of a file are read to classify it; binary files in no known format
    (archives, libraries, logs) are not read further, text files are parsed only when they hold
    a C(-----BEGIN) line.
  - Symbolic links are never followed below a given path. A link that resolves to a file inside
    one of the given paths in which certificates were found is reported as its own place with
    format V(link) (for example the hash links of an OpenSSL certificate folder); other links are
    only counted. Devices, FIFOs and sockets are never opened.
  - With O(references_of), also finds the configuration files that name the files holding those
    certificates (RV(references)) - for example the C(guichet.properties) that points at
    C(Chiffrement_SNEV4.cer), to rewrite when that file is replaced.
  - Nothing is ever changed on the host.
author:
  - sne.guichet developers (@sne-guichet)
requirements:
  - Python 3.8 or newer on the target; standard library only.
  - To read PKCS#12 files whose certificates are encrypted, the Python library C(cryptography)
    (>= 45) or C(keytool) on the target, and the file's password in O(passwords).
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode gives the same result.
  diff_mode:
    support: none
    description: Nothing is ever changed, so there is no difference to show.
  idempotent:
    support: full
    description: The module never changes anything.
options:
  paths:
    description:
      - Files and folders to examine, absolute paths. Folders are walked down to O(max_depth).
      - A path that does not exist is listed in RV(missing), not an error, so one list can
        serve a whole fleet.
    type: list
    elements: path
    required: true
  sha256:
    description:
      - SHA-256 fingerprints of the certificates to look for (colons and case do not matter).
      - Empty - report every certificate found.
    type: list
    elements: str
    default: []
  max_depth:
    description:
      - How deep to go below each folder of O(paths), as M(ansible.builtin.find) counts it -
        V(1) examines only the files directly in the folder.
    type: int
    default: 6
  exclude:
    description:
      - Shell glob patterns; a file or folder whose full path or name matches one is skipped (a
        folder with everything under it). They do not apply to O(paths) themselves.
    type: list
    elements: str
    default: []
  max_file_size:
    description: Files bigger than this many bytes are not read (counted in RV(not_read)).
    type: int
    default: 5242880
  passwords:
    description:
      - Passwords of PKCS#12 files, needed to read certificates that are encrypted in them
        (certificates stored in clear are read without). Never logged or returned.
      - Either a dictionary from a file path, or a glob pattern matched against the full path,
        to its password; or a list of passwords, each tried on every PKCS#12 file (the file's
        integrity MAC tells which one is right, without decrypting).
      - JKS and JCEKS certificates are readable without the store password; it is not used.
    type: raw
  references_of:
    description:
      - SHA-256 fingerprints (colons and case do not matter); for every regular file in which one
        of them is found (not a link; any format), list in RV(references) the text files under
        O(paths) that name that file.
      - After the walk, every text file met (not excluded, within O(max_depth), at most 1 MiB, no
        NUL byte in its first 4 KiB, not named like a certificate or keystore) is read again and
        searched for the file names, as bytes (names that are not UTF-8 are found too).
      - A name counts when it stands alone (V(Chiffrement_SNEV4.cer), not V(old-Chiffrement_SNEV4.cer)
        nor V(Chiffrement_SNEV4.cer.bak)) and the path written before it, followed back as far as
        it is plain (up to a space, quote, V(=), V(:), V(${VAR}), V(..)), ends the file's path - so
        V(/opt/a/X.cer) names V(/opt/a/X.cer) but not V(/opt/b/X.cer), while a bare V(X.cer) names
        every file called V(X.cer).
      - Empty - no search, RV(references) is empty.
      - The fingerprints need not be in O(sha256).
    type: list
    elements: str
    default: []
notes:
  - A file whose path is not UTF-8 is never returned as found, since Ansible refuses such a result; a
    certificate sought in it is listed in RV(unreadable), its path shown with C(\\x) escapes.
  - Certificates inside archives (C(.jar), C(.war), C(.zip)) are not searched.
  - A file named like a certificate or keystore (C(.cer), C(.crt), C(.cert), C(.pem), C(.jks),
    C(.jceks), C(.p12), C(.pfx), C(.keystore), C(.truststore); C(.der) when it starts like a
    certificate) that holds no readable certificate is listed in RV(unreadable) - it may be a
    damaged copy.
  - The certificates of an NSS database (C(sql:) format) are listed by C(certutil -L) when the host
    has it (Debian package C(libnss3-tools); no password needed, nothing written) - found at its
    C(cert9.db) with the format V(nss), the nickname as alias. Without certutil, or for a legacy
    C(cert8.db), the file is listed in RV(unreadable) with the format V(nss).
seealso:
  - module: sne.guichet.keystores
"""

EXAMPLES = r"""
- name: Find every copy of the retired V4 certificate and authority
  sne.guichet.scan:
    paths:
      - /opt/guichet
      - /etc/guichet
      - /etc/ssl/certs
      - /usr/local/share/ca-certificates
    sha256: "{{ sne_retired_sha256 }}"
    exclude: ["*/logs", "*.log", "*/tmp"]
    passwords:
      /opt/guichet/conf/app.p12: "{{ vault_app_p12_password }}"
      "/opt/guichet/*/trust*.p12": "{{ vault_trust_password }}"
  register: sne_v4_copies

- name: Fail when a V4 copy is left anywhere
  ansible.builtin.assert:
    that: sne_v4_copies.found | length == 0
    fail_msg: "V4 still at {{ sne_v4_copies.found.values() | flatten | map(attribute='path') | unique | list }}"

- name: Inventory every certificate of the guichet, trying the usual passwords on PKCS#12 files
  sne.guichet.scan:
    paths: [/opt/guichet]
    max_depth: 10
    passwords: ["{{ vault_app_p12_password }}", "{{ vault_trust_password }}"]
  register: sne_inventory

- name: Find the V4 copies and the configuration files that name them
  sne.guichet.scan:
    paths: [/opt/guichet, /etc/guichet]
    sha256: "{{ sne_retired_sha256 }}"
    references_of: "{{ sne_retired_sha256 }}"
  register: sne_v4_references
  # sne_v4_references.references:
  #   {"/opt/guichet/conf/Chiffrement_SNEV4.cer": ["/opt/guichet/conf/guichet.properties"]}
"""

RETURN = r"""
found:
  description:
    - For each fingerprint found (among O(sha256), or any), the list of places that hold it,
      sorted by path. A place is a dictionary with these keys.
    - C(path) - the file (or link) that holds the certificate.
    - C(format) - V(pem), V(der), V(base64) (a certificate in bare base64, without BEGIN/END
      lines), V(jks), V(jceks), V(pkcs12), V(nss) (in an NSS database - the path is its C(cert9.db)),
      or V(link) (a symbolic link to a file where it was found).
    - C(alias) - alias of the keystore entry (JKS, JCEKS; PKCS#12 friendly name; NSS nickname); null otherwise.
    - C(index) - for PEM, the position of the block in the file, counting every PEM block from 0
      (the keystores module names it C(#1)); for a JKS/JCEKS private key entry, the position in
      its certificate chain (0 is the key's own certificate); for a DER file of several
      certificates, the position in the file; null otherwise.
    - C(target) - for a V(link), the file it resolves to; null otherwise.
  returned: always
  type: dict
  sample:
    "0D:F6:6B:29:...:9A":
      - {"path": "/opt/guichet/certs/8f5dbf0c.0", "format": "link", "alias": null, "index": null, "target": "/opt/guichet/certs/sne-v4.pem"}
      - {"path": "/opt/guichet/certs/sne-v4.pem", "format": "pem", "alias": null, "index": 0, "target": null}
      - {"path": "/opt/guichet/conf/app.jks", "format": "jks", "alias": "old-ministry-cert-2014", "index": null, "target": null}
      - {"path": "/opt/guichet/conf/sne.pem", "format": "pem", "alias": null, "index": 1, "target": null}
certificates:
  description:
    - For each fingerprint of RV(found), what the certificate is - C(subject) (RFC 4514),
      C(not_after) (end of validity, ISO 8601 UTC) and C(is_ca) (an authority, per its
      basicConstraints).
  returned: always
  type: dict
  sample:
    "0D:F6:6B:29:...:9A": {"subject": "CN=Chiffrement_SNEV4,O=Ministere du Logement,C=FR", "not_after": "2016-03-01T00:00:00Z", "is_ca": false}
files_scanned:
  description: Number of regular files opened and classified.
  returned: always
  type: int
  sample: 1843
not_read:
  description:
    - Number of paths not examined, by reason - V(excluded) (O(exclude)), V(max_depth) (folders not
      entered), V(too_large) (O(max_file_size)), V(special) (devices, FIFOs, sockets),
      V(symlink) (links not reported - to folders, or to files without a certificate found),
      V(symlink_outside) (links out of the given paths, not followed), V(symlink_broken)
      (dangling links and loops).
  returned: always
  type: dict
  sample: {"excluded": 12, "max_depth": 0, "too_large": 3, "special": 1, "symlink": 40, "symlink_outside": 2, "symlink_broken": 0}
unreadable:
  description:
    - Files (or folders) that may hold certificates but could not be read, with the reason - a
      PKCS#12 file without its password, a damaged keystore, a malformed certificate, a file named
      like a certificate that holds none, a permission denied, an NSS database (format V(nss)).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /opt/guichet/conf/trust.p12
      format: pkcs12
      reason: "PKCS#12 file whose certificates are encrypted: give its password in passwords to read them"
  contains:
    path:
      description: The file or folder.
      type: str
      returned: always
      sample: /opt/guichet/conf/app.p12
    reason:
      description: Why it could not be read.
      type: str
      returned: always
      sample: "keystore truncated or garbled at byte 700: certificate 0 of 'guichet' runs past the end"
    format:
      description:
        - The format of the file when its structure was read but some of its certificates could
          not be - V(pkcs12) for a PKCS#12 keystore whose certificates are encrypted and that no
          password of O(passwords) opens (keytool encrypts them, even in a truststore; whatever
          the file is called), V(pem) for a malformed or truncated PEM block, the keystore's
          format for a malformed certificate in it; V(nss) for the C(cert9.db) (or legacy
          C(cert8.db)) of an NSS database, whose certificates the scan does not read.
        - Null when the file could not be read as any format (damaged, not a certificate,
          permission denied).
      type: str
      returned: always
      sample: pkcs12
missing:
  description: Paths of O(paths) that do not exist on the host.
  returned: always
  type: list
  elements: str
  sample: [/etc/guichet]
files:
  description:
    - For every file where a looked-for certificate was found, its format, how many certificates
      it holds in all and how many of them are looked for. A file whose certificates are all
      looked for can be moved away whole; one that also holds others cannot.
  returned: always
  type: dict
  sample: {"/opt/guichet/app/lib/Chiffrement_SNEV4.cer": {"format": "der", "certificates": 1, "matched": 1}}
references:
  description:
    - With O(references_of), for every regular file that holds one of those certificates, the
      sorted list of text files that name it (possibly empty). Empty without O(references_of).
  returned: always
  type: dict
  sample:
    "/opt/guichet/conf/Chiffrement_SNEV4.cer": ["/opt/guichet/conf/guichet.properties"]
    "/opt/guichet/conf/app.jks": ["/opt/guichet/conf/guichet.properties"]
    "/home/guichet/sne-v4-backup.pem": []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sne.guichet.plugins.module_utils._scan import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FILE_SIZE,
    run_scan,
)


def main() -> None:
    argument_spec = dict(
        paths=dict(type="list", elements="path", required=True),
        sha256=dict(type="list", elements="str", default=[]),
        max_depth=dict(type="int", default=DEFAULT_MAX_DEPTH),
        exclude=dict(type="list", elements="str", default=[]),
        max_file_size=dict(type="int", default=DEFAULT_MAX_FILE_SIZE),
        passwords=dict(type="raw", no_log=True),
        references_of=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_scan(module)


if __name__ == "__main__":
    main()
