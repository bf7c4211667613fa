#!/usr/bin/python
# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: retire
short_description: Quarantine the stray copies of a retired certificate and rewrite the configuration that names them, in one run
version_added: 0.2.0
description:
  - In one run on the host - removes the certificates of O(sha256) from the declared stores
    given in O(stores) (as M(sne.guichet.keystores) with O(sne.guichet.keystores#module:absent_sha256)
    does), finds every copy of the certificates of O(sha256) under O(paths)
    (the engine of M(sne.guichet.scan), whatever the files are called), moves the stray copies
    into a quarantine folder (never deletes them), lists the places that need a person, and
    rewrites the configuration references of O(config_files), each changed file backed up and
    recorded in the run's manifest first.
  - A stray copy is a file outside the declared stores (O(declared)) that holds nothing but
    retired certificates, as a PEM, DER or base64 file; it is moved whole to
    C(<quarantine_dir>/<run_id><original path>), where C(rollback.yml) moves it back from. Any
    other file holding a retired certificate (a keystore nobody declared, a PEM bundle that also
    holds other certificates, a file of O(config_files)) is left as it is and listed in
    RV(needs_attention). Declared stores are cleaned through O(stores), never quarantined.
  - A quarantine place already taken (an earlier run of the same O(run_id) quarantined another
    file of that path) is never written over - the copy is left where it is and listed in
    RV(quarantine_taken).
  - Every file that is moved or rewritten is locked (as M(sne.guichet.keystores) locks its
    stores) from before it is read until the run ends, so two runs take turns. Each stray is
    scanned again under its lock and moved only if it still holds nothing but retired certificates.
  - The stores of O(stores) are converged first (each locked, read, planned, written, backed up
    and recorded in the manifest exactly as M(sne.guichet.keystores) does); a store that fails
    fails the run before the scan, with every store's outcome in RV(stores).
  - With O(outboxes), the guichet software's outbound folders are read as well - every
    regular file that is a CMS EnvelopedData message (DER or BER, PEM, S/MIME) has its
    recipients matched against the retired certificates of O(certificates), by issuer and serial
    number and by subject key identifier; nothing is decrypted. The messages to a retired
    certificate are reported in RV(outbox) and, with O(outbox_quarantine), moved into the same
    quarantine as the stray copies (C(rollback.yml) puts them back). Messages to other
    certificates and files that are not CMS are left alone.
  - Everything is read and planned before anything is written; the configuration files are
    rewritten first, then the copies are moved, then the outbound messages. The first write that fails stops the run,
    which fails naming the file and the cause and saying what was done before; the file that
    failed is left byte-identical.
author:
  - sne.guichet developers (@sne-guichet)
requirements:
  - Python 3.8 or newer on the target; standard library only.
  - To look inside PKCS#12 files whose certificates are encrypted, as M(sne.guichet.scan) does.
attributes:
  check_mode:
    support: full
    description: Nothing is written (no folder, no backup, no manifest line); the result and the diff say what a real run would do.
  diff_mode:
    support: full
    description:
      - For each copy moved, its path before and after; for each configuration file, only the
        changed lines (a unified diff without context) and the number of replacements, never
        the whole file (it may hold passwords).
  idempotent:
    support: full
    description: A second run with the same arguments reports no change.
options:
  sha256:
    description:
      - SHA-256 fingerprints of the retired certificates (certificate and authority); colons
        and case do not matter.
      - Empty - nothing is looked for nor quarantined (the configuration files are still rewritten).
    type: list
    elements: str
    required: true
  stores:
    description:
      - Declared stores to remove the certificates of O(sha256) from, whatever their alias or
        file name; the suboptions are those of O(sne.guichet.keystores#module:stores) (without
        C(create) and C(names) - nothing is added). Their paths count as O(declared).
      - Empty (the default, and what C(rotate.yml) passes - its deploy step removed them already)
        - no store is touched.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path of the store (the folder for V(pem_dir), V(debian), V(redhat), V(nss)).
        type: path
        required: true
      type:
        description: Store type, as in M(sne.guichet.keystores).
        type: str
        required: true
        choices: [debian, der, jks, nss, pem, pem_dir, pkcs12, redhat]
      password:
        description: Store password (V(jks), V(pkcs12)) or NSS database password (V(nss)). Never logged or returned.
        type: str
      owner:
        description: Owner of files the module rewrites (default - kept as it is).
        type: str
      group:
        description: Group of files the module rewrites (default - kept as it is).
        type: str
      mode:
        description: Mode of files the module rewrites, octal string (default - kept as it is).
        type: str
      refresh:
        description:
          - For V(debian) and V(redhat), the command that rebuilds the system bundle, run only
            when something changed (default V(update-ca-certificates) or V(update-ca-trust extract)).
        type: str
  paths:
    description:
      - Files and folders where stray copies may hide, absolute paths; a path that does not
        exist is skipped. Empty - no scan.
    type: list
    elements: path
    default: []
  exclude:
    description:
      - Shell glob patterns the scan skips (full path or name), as in M(sne.guichet.scan). The
        O(quarantine_dir) and O(backup_dir) folders are always skipped.
    type: list
    elements: str
    default: []
  max_depth:
    description: How deep the scan goes below each folder of O(paths) (V(1) - only the files directly in it).
    type: int
    default: 8
  passwords:
    description:
      - Passwords of PKCS#12 files for the scan, as in M(sne.guichet.scan) - a dictionary from a
        path or glob to its password, or a list of passwords. Never logged or returned.
    type: raw
  declared:
    description:
      - Paths of the host's declared stores (files or folders). They are never quarantined and
        copies found inside them are not strays.
    type: list
    elements: path
    default: []
  certificates:
    description:
      - The certificates of the retired generation (PEM text, one or several per item), from
        which the outbound messages encrypted to them are recognised - their issuer and serial
        number, and their subject key identifier (the extension, and RFC 5280 method 1 - the
        SHA-1 of the public key).
      - Each must have one of the fingerprints of O(sha256) - the run fails before anything is
        done otherwise, since a current certificate given by mistake would quarantine the live
        messages.
      - Required when O(outboxes) is given.
    type: list
    elements: str
    default: []
  outboxes:
    description:
      - Outbound folders of the guichet software - every regular file in them (down to
        O(max_depth), links not followed) that is a CMS EnvelopedData message to a certificate
        of O(certificates) is reported in RV(outbox). Empty - no outbox is read.
      - A message counts when any of its recipients is one of O(certificates), whatever its
        other recipients (typically the guichet's own certificate, which does not let the SNE
        read it).
    type: list
    elements: path
    default: []
  outbox_quarantine:
    description:
      - Move the outbound messages to a retired certificate into the quarantine (as the stray
        copies - C(<quarantine_dir>/<run_id><original path>)), so that the software can produce
        them again with the new certificate.
      - Off by default - they are only reported. Before the revocation hour a message to the
        retired certificate is still accepted, so moving it away would stop a message that
        would have gone through; after it, the SNE drops it with no answer. Turn it on for the
        run that follows the cutover, or let the messages leave first.
    type: bool
    default: false
  quarantine:
    description: Move the stray copies into the quarantine. When off, they are left where they are and not reported.
    type: bool
    default: true
  quarantine_dir:
    description:
      - Quarantine folder; copies go to C(<quarantine_dir>/<run_id><original absolute path>), in
        folders made mode V(0700). Copies moved across file systems are made in its
        C(.sne-staging) folder first.
    type: path
    default: /var/lib/sne-guichet/quarantine
  config_files:
    description:
      - Configuration references to rewrite. Each O(config_files[].regexp) is applied as
        M(ansible.builtin.replace) applies its C(regexp) - Python regular expression,
        multiline, every match - in the order given; a file listed several times is read and
        written once.
      - A file the rules do not change is neither backed up nor written. A file that does not
        exist fails the run before anything is written.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The configuration file (a link is followed; its real file is backed up and rewritten).
        type: path
        required: true
      regexp:
        description: Python regular expression to find; applied with C(re.MULTILINE) to the whole file.
        type: str
        required: true
      replace:
        description:
          - What each match becomes; may refer to groups (C(\1), C(\g<name>)). Templated by
            Ansible on the controller, for example V(Chiffrement_SNE{{ sne_generation }}.cer).
        type: str
        default: ''
  backup:
    description: Back up each configuration file before rewriting it, under O(backup_dir)/O(run_id).
    type: bool
    default: true
  backup_dir:
    description:
      - Folder for backups; the copies and the C(manifest.jsonl) that C(rollback.yml) reads are
        those M(sne.guichet.keystores) writes (C(replaced) lines).
    type: path
    default: /var/backups/sne-guichet
  run_id:
    description:
      - Name of this run's backup and quarantine folders (default - a timestamp). Give the run's
        id so that a rollback of the run finds both.
    type: str
  lock_timeout:
    description:
      - Seconds to wait, for all the files together, for another run that holds the lock of
        one of them. A file still locked then fails the run before anything is written, with a
        message naming the other run - C(pid), O(run_id), start time. V(0) tries once.
    type: int
    default: 60
notes:
  - Nothing is ever deleted - a stray copy is moved (one rename, or across file systems a
    durable copy then the removal of the original, finished by the next run if the run is
    killed in between); a rewritten file keeps its owner, mode and SELinux context. Links are
    never followed nor moved.
  - The quarantine itself is the record of the moves (C(rollback.yml) moves back what is under
    C(<quarantine_dir>/<run_id>)); the manifest lists the configuration files backed up.
  - Use M(sne.guichet.scan) for a read-only look (audit).
seealso:
  - module: sne.guichet.scan
  - module: sne.guichet.keystores
"""

EXAMPLES = r"""
- name: Quarantine the stray V4 copies and point the configuration at V5
  sne.guichet.retire:
    sha256: "{{ sne_retired_sha256 }}"
    paths: [/opt/guichet, /etc/guichet, /home/guichet]
    exclude: ["*/logs", "*.log"]
    declared: "{{ sne_guichet_stores | map(attribute='path') | list }}"
    passwords:
      /opt/guichet/conf/app.p12: "{{ vault_app_p12_password }}"
    config_files:
      - path: /opt/guichet/conf/guichet.properties
        regexp: 'Chiffrement_SNEV4\.cer'
        replace: "Chiffrement_SNE{{ sne_generation }}.cer"
    run_id: "{{ sne_run_id }}"
  register: sne_retired

- name: Fail when a retired copy is left that needs a person
  ansible.builtin.assert:
    that: (sne_retired.needs_attention + sne_retired.quarantine_taken) | length == 0
    fail_msg: "still there: {{ sne_retired.needs_attention + sne_retired.quarantine_taken }}"

- name: Report the queued messages still encrypted to V4, and quarantine them after the cutover
  sne.guichet.retire:
    sha256: "{{ sne_retired_sha256 }}"
    certificates: "{{ sne_retired_certificates }}"
    outboxes: [/var/spool/guichet/out]
    outbox_quarantine: true
    run_id: "{{ sne_run_id }}"
  register: sne_retired_outbox

- name: See what a run would move and rewrite, changed lines only
  sne.guichet.retire:
    sha256: "{{ sne_retired_sha256 }}"
    paths: [/opt/guichet]
    config_files: "{{ sne_guichet_config_files }}"
    run_id: "{{ sne_run_id }}"
  check_mode: true
  diff: true
"""

RETURN = r"""
found:
  description: What the scan found, as RV(sne.guichet.scan#module:found) - per retired fingerprint, the places that hold it.
  returned: always
  type: dict
  sample:
    "0D:F6:6B:29:...:9A":
      - {"path": "/opt/guichet/app/lib/Chiffrement_SNEV4.cer", "format": "der", "alias": null, "index": null, "target": null}
quarantined:
  description: The stray copies moved into the quarantine (would be, in check mode), by original path.
  returned: always
  type: list
  elements: str
  sample: [/opt/guichet/app/lib/Chiffrement_SNEV4.cer]
quarantine_taken:
  description: Stray copies left where they are because their quarantine place is taken.
  returned: always
  type: list
  elements: str
  sample: []
needs_attention:
  description:
    - Files holding a retired certificate that were not touched because moving them would lose
      something - undeclared keystores, bundles that also hold other certificates, files of
      O(config_files).
  returned: always
  type: list
  elements: str
  sample: [/srv/legacy/old-trust.jks]
config_rewritten:
  description: The configuration files rewritten (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/opt/guichet/conf/guichet.properties]
stores:
  description:
    - One result per store of O(stores), as RV(sne.guichet.keystores#module:stores) (path, type,
      changed, failed, msg, removed, backup...).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/opt/guichet/conf/app.jks", "type": "jks", "changed": true, "failed": false,
            "removed": [{"alias": "sne-chiffrement-v4", "sha256": "0D:F6:..."}]}]
stores_changed:
  description: Paths of the stores of O(stores) changed (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/opt/guichet/conf/app.jks]
failed_stores:
  description: Paths of the stores of O(stores) that could not be processed.
  returned: always
  type: list
  elements: str
  sample: []
outbox:
  description:
    - What the outbound folders of O(outboxes) hold - C(folders) (read), C(folders_missing)
      (given but not there), C(quarantine) (O(outbox_quarantine)), C(messages) (CMS
      EnvelopedData files read), C(retired_messages) (how many are to a retired certificate),
      C(oldest) (the oldest one's modification time, ISO 8601 UTC, or null), C(paths) (those
      messages), C(moved) (moved into the quarantine - would be, in check mode), C(quarantine_taken)
      (left because their quarantine place is taken), C(unreadable) (files that could not be
      read or are cut CMS messages, each C(path) and C(msg); never moved).
  returned: always
  type: dict
  sample:
    folders: [/var/spool/guichet/out]
    folders_missing: []
    quarantine: true
    messages: 4
    retired_messages: 3
    oldest: "2016-01-06T18:02:11Z"
    paths: [/var/spool/guichet/out/0001.p7m, /var/spool/guichet/out/0002.p7m, /var/spool/guichet/out/0003.eml]
    moved: [/var/spool/guichet/out/0001.p7m, /var/spool/guichet/out/0002.p7m, /var/spool/guichet/out/0003.eml]
    quarantine_taken: []
    unreadable: [{"path": "/var/spool/guichet/out/0004.p7m", "msg": "truncated at byte 0: ContentInfo: an element of 392 bytes runs past the end of the data"}]
run_id:
  description: Name of this run's backup and quarantine folders.
  returned: always
  type: str
  sample: 20160107T080512
diff:
  description:
    - In diff mode, first each changed store's entries before and after (as
      M(sne.guichet.keystores) shows them), then one entry per copy or outbound message moved (C(path), C(quarantine),
      before and after paths) and per configuration file rewritten (C(path), C(replacements), and C(prepared) - only the
      changed lines, a unified diff without context).
  returned: when diff mode is on
  type: list
  elements: dict
  sample:
    - path: /opt/guichet/conf/guichet.properties
      replacements: 1
      prepared: |
        --- /opt/guichet/conf/guichet.properties (before)
        +++ /opt/guichet/conf/guichet.properties (after: 1 replacement)
        @@ -4 +4 @@
        -sne.cert=Chiffrement_SNEV4.cer
        +sne.cert=Chiffrement_SNEV5.cer
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sne.guichet.plugins.module_utils._retire.run import run_retire
from ansible_collections.sne.guichet.plugins.module_utils._stores.options import store_options


def main() -> None:
    argument_spec = dict(
        sha256=dict(type="list", elements="str", required=True),
        stores=dict(type="list", elements="dict", default=[], options=store_options(adding=False)),
        paths=dict(type="list", elements="path", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        max_depth=dict(type="int", default=8),
        passwords=dict(type="raw", no_log=True),
        declared=dict(type="list", elements="path", default=[]),
        certificates=dict(type="list", elements="str", default=[]),
        outboxes=dict(type="list", elements="path", default=[]),
        outbox_quarantine=dict(type="bool", default=False),
        quarantine=dict(type="bool", default=True),
        quarantine_dir=dict(type="path", default="/var/lib/sne-guichet/quarantine"),
        config_files=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            regexp=dict(type="str", required=True),
            replace=dict(type="str", default=""),
        )),
        backup=dict(type="bool", default=True),
        backup_dir=dict(type="path", default="/var/backups/sne-guichet"),
        run_id=dict(type="str"),
        lock_timeout=dict(type="int", default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_retire(module)


if __name__ == "__main__":
    main()
