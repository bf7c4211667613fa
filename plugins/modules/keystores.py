#!/usr/bin/python
# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: keystores
short_description: Make every keystore of a host hold the wanted certificates and none of the retired ones
version_added: 0.1.0
description:
  - Converges all the declared stores of a host in one run - PEM files, single-certificate DER
    files, hashed PEM folders, Debian and Red Hat trust anchors, Java JKS and PKCS#12 stores -
    so that each holds the certificates of O(present) and none of O(absent_sha256).
  - Identity is the SHA-256 of the certificate DER, never the alias or file name. A
    certificate already held under another alias or file name is present (no duplicate is
    added); a retired one is removed under whatever alias it hides.
  - Entries the module was not asked to touch (private keys, other trusted certificates,
    other PEM blocks) are kept byte for byte.
  - Every change is backed up, written to a temporary file in the same folder, synced, read
    back and checked (untouched entries identical, plan fulfilled) before it replaces the
    store, keeping its owner, group and mode.
  - A store that cannot be read or written (wrong password, corrupt, unknown format, missing
    tool, read-only file system) is reported with its reason and left byte-identical; the
    other stores are still processed, and the task fails at the end.
author:
  - sne.guichet developers (@sne-guichet)
requirements:
  - Python 3.8 or newer on the target; standard library only.
  - C(keytool) on the target for PKCS#12 stores that hold private keys, or when the Python
    library C(cryptography) (>= 45) is not importable there.
attributes:
  check_mode:
    support: full
    description: Nothing is written; the result and the diff say what would change.
  diff_mode:
    support: full
    description: Per store, the entries (alias or file, subject, SHA-256, end of validity) before and after.
  idempotent:
    support: full
    description: A second run with the same arguments reports no change.
options:
  stores:
    description: The host's stores.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description:
          - Path of the store. For V(pem_dir), V(debian) and V(redhat), the folder
            (V(/usr/local/share/ca-certificates), V(/etc/pki/ca-trust/source/anchors) on
            standard systems). For V(nss), the database folder (the one holding C(cert9.db)).
        type: path
        required: true
      type:
        description:
          - V(pem) a file of one or more PEM certificates (other blocks and text kept);
            V(der) a single-certificate file such as C(Chiffrement_SNEV5.cer);
            V(pem_dir) a folder of PEM files with OpenSSL subject-hash links;
            V(debian), V(redhat) OS trust anchors (authorities only);
            V(jks) a Java KeyStore; V(pkcs12) a Java PKCS#12 keystore;
            V(nss) an NSS database in the C(sql:) format (C(cert9.db), C(key4.db)), changed
            through C(certutil) (Debian package C(libnss3-tools)) - authorities added with
            trust C(C,,), other certificates with C(P,,), private keys never touched; a
            legacy C(cert8.db) database is refused, not converted.
        type: str
        required: true
        choices: [der, debian, jks, nss, pem, pem_dir, pkcs12, redhat]
      password:
        description:
          - Store password (V(jks), V(pkcs12)), or the NSS database password (V(nss), given
            to C(certutil) on its standard input, never on its command line nor in a file). Never logged or returned.
        type: str
      owner:
        description: Owner of files the module creates or rewrites (default - kept as it is).
        type: str
      group:
        description: Group of files the module creates or rewrites (default - kept as it is).
        type: str
      mode:
        description: Mode of files the module creates or rewrites, octal string (default - kept as it is, V(0644) for new files).
        type: str
      refresh:
        description:
          - For V(debian) and V(redhat), the command that rebuilds the system bundle, run only
            when something changed (default V(update-ca-certificates) or V(update-ca-trust extract)).
        type: str
      create:
        description: Create the store (file or folder) when it does not exist; otherwise a missing store is an error.
        type: bool
        default: false
      names:
        description:
          - Names from O(present) this store holds; default all of them, except for V(debian)
            and V(redhat) (authorities only) and V(der) (the one encryption certificate).
        type: list
        elements: str
  present:
    description: Certificates the stores must hold.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Alias or file name to use when the certificate is added, for example V(sne-chiffrement-v5).
        type: str
        required: true
      pem:
        description: The certificate, PEM.
        type: str
        required: true
  absent_sha256:
    description:
      - SHA-256 fingerprints to remove from every store, wherever and under whatever name they
        are (the retired generation). Colons and case do not matter.
    type: list
    elements: str
    default: []
  backup:
    description: Save every file before changing it, under O(backup_dir)/O(run_id).
    type: bool
    default: true
  backup_dir:
    description: Folder for backups; each run writes a C(manifest.jsonl) that C(rollback.yml) reads.
    type: path
    default: /var/backups/sne-guichet
  run_id:
    description: Name of this run's backup folder (default - a timestamp).
    type: str
  all_or_nothing:
    description:
      - Every store is read and planned before any is written. When this is on, a store that
        cannot be read stops the writes to all the other stores of the host, so a host with a
        problem is left exactly as it was; when off, the other stores are still converged.
      - In both cases the task fails and lists the stores that failed.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait, for all the stores together, for another run that holds the lock
        of one of them (see the notes). A store still locked then is not read nor written
        and fails with code V(locked) and a message naming the other run - C(pid), O(run_id),
        start time - and how long this one waited. V(0) tries once without waiting.
    type: int
    default: 60
  reload_commands:
    description:
      - Commands (each an argv list, no shell) that make the guichet software read its stores
        again, run in order on the host, in this same run, after at least one store changed
        and none failed - what a handler would do, without one more module run per host.
      - A command that is not found or exits non-zero fails the task (the stores stay
        converged; RV(reloaded) shows what ran). In check mode they are listed, not run.
    type: list
    elements: list
    default: []
    version_added: 0.2.0
notes:
  - A store that is a FIFO, a device or a socket is refused without being opened; a store file over 64 MiB
    is refused (V(unsupported)).
  - Run it once per host with all the host's stores; loops of one task per store are what make
    fleet runs slow.
  - Two runs on the same store (two playbooks, or a deploy and a retire at the same time) take
    turns. Each run locks every one of its stores, by real path (a store reached through a
    link is the same store), from before it reads it until its last write; check mode too, so
    it never reports a folder halfway through another run's change. The locks live in
    C(/run/lock/sne-guichet/) (C(/var/lock) or the temporary folder where there is no
    C(/run/lock); a C(sne-guichet-<uid>) folder for a user other than root), never in the
    stores' folders; they are C(flock) locks, released by the kernel when a run ends, even
    when it is killed. Runs on several hosts writing one store on a network share are not
    serialised.
seealso:
  - module: sne.guichet.bundle
"""

EXAMPLES = r"""
- name: Install V5 and its authority, remove V4, in every store of the guichet
  sne.guichet.keystores:
    stores:
      - {path: /opt/guichet/conf/app.jks, type: jks, password: "{{ vault_app_jks }}"}
      - {path: /etc/guichet/certs, type: pem_dir}
      - {path: /usr/local/share/ca-certificates, type: debian}
    present:
      - {name: sne-chiffrement-v5, pem: "{{ sne_bundle.certificate.pem }}"}
      - {name: sne-ac-v5, pem: "{{ sne_bundle.authority[0].pem }}"}
    absent_sha256: "{{ sne_retired_sha256 }}"
  register: sne_keystores

- name: Show which stores changed
  ansible.builtin.debug:
    msg: "{{ sne_keystores.stores | selectattr('changed') | map(attribute='path') | list }}"
"""

RETURN = r"""
stores:
  description: One result per declared store, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The store.
      type: str
      returned: always
      sample: /opt/guichet/conf/app.jks
    type:
      description: Its type.
      type: str
      returned: always
      sample: jks
    changed:
      description: Whether the store changed (or would, in check mode).
      type: bool
      returned: always
      sample: true
    failed:
      description: Whether the store could not be processed; it was left as it was.
      type: bool
      returned: always
      sample: false
    msg:
      description: Why the store failed.
      type: str
      returned: when failed
      sample: "/opt/guichet/conf/app.jks (jks): store password incorrect or store damaged (integrity check failed)"
    links_repaired:
      description: O(stores[].type=pem_dir) only - subject-hash links made again for certificates already held.
      type: list
      elements: dict
      returned: when some were repaired
    broken_links:
      description:
        - O(stores[].type=pem_dir) only - subject-hash links that were dangling or numbered after a gap (left
          by a killed run or by hand), removed or renumbered by this run; counted as a change.
      type: list
      elements: dict
      returned: when some were found
    code:
      description:
        - Kind of failure - V(wrong_password), V(corrupt), V(unknown_format), V(tool_missing),
          V(not_found), V(io_error), V(verify_failed), V(unsupported), V(locked) (another
          run held the store's lock for longer than O(lock_timeout)).
      type: str
      returned: when failed
      sample: wrong_password
    added:
      description: Certificates added (name, sha256, subject, not_after).
      type: list
      elements: dict
      returned: when the store could be read
      sample: [{"name": "sne-chiffrement-v5", "sha256": "3A:...", "subject": "CN=Chiffrement_SNEV5", "not_after": "2019-01-01T00:00:00Z"}]
    removed:
      description: Entries removed, under the name they had.
      type: list
      elements: dict
      returned: when the store could be read
      sample: [{"name": "old-ministry-2014", "sha256": "0D:...", "subject": "CN=Chiffrement_SNEV4", "not_after": "2016-03-01T00:00:00Z"}]
    refresh:
      description: For V(debian) and V(redhat) stores whose folder changed, the refresh command run and its return code.
      type: dict
      returned: when a refresh ran
      sample: {"command": ["update-ca-certificates"], "rc": 0}
    refresh_pending:
      description:
        - For V(debian) and V(redhat) stores, a refresh an interrupted run left undone (its files written,
          its refresh command never run), found by this run and run now (check mode - to be run). A change.
      type: str
      returned: when such a refresh was found
      sample: "refresh pending from an interrupted run (run 20160107T0805Z, pid 4242, since 2016-01-07T08:05:12Z): update-ca-certificates run"
    skipped:
      description: True when the store was not written because another store failed and O(all_or_nothing) is on.
      type: bool
      returned: when skipped
      sample: true
    held:
      description: Number of certificate entries the store held before.
      type: int
      returned: when the store could be read
      sample: 151
    backup:
      description: Path of the backup copy.
      type: str
      returned: when changed and O(backup) is on
      sample: /var/backups/sne-guichet/20160107T0805/files/opt/guichet/conf/app.jks
    backend:
      description: For V(pkcs12) (and V(jks)), what read and wrote the store - V(cryptography), V(keytool) or V(stdlib); V(certutil) for V(nss).
      type: str
      returned: when relevant
      sample: keytool
    trust:
      description: For V(nss) stores, the trust flags each added certificate gets, by nickname (V(C,,) an authority, V(P,,) another certificate).
      type: dict
      returned: for nss stores
      sample: {"sne-ac-v5": "C,,", "sne-chiffrement-v5": "P,,"}
    private_keys:
      description: For V(jks), V(pkcs12) and V(nss) stores, the private keys they hold (left untouched).
      type: list
      elements: raw
      returned: for keystores and NSS databases
failed_stores:
  description: Paths of the stores that could not be processed.
  returned: always
  type: list
  elements: str
  sample: []
reloaded:
  description: The O(reload_commands) run after a change - C(argv), C(rc) (null in check mode), the end of C(stdout) and C(stderr).
  returned: when a store changed and O(reload_commands) is set
  type: list
  elements: dict
  sample: [{"argv": ["systemctl", "reload", "guichet"], "rc": 0, "stdout": "", "stderr": ""}]
run_id:
  description: Name of this run's backup folder.
  returned: always
  type: str
  sample: 20160107T080512
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sne.guichet.plugins.module_utils._stores.options import store_options
from ansible_collections.sne.guichet.plugins.module_utils._stores.run import run_keystores


def main() -> None:
    argument_spec = dict(
        stores=dict(type="list", elements="dict", required=True, options=store_options()),
        present=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            pem=dict(type="str", required=True),
        )),
        absent_sha256=dict(type="list", elements="str", default=[]),
        backup=dict(type="bool", default=True),
        backup_dir=dict(type="path", default="/var/backups/sne-guichet"),
        run_id=dict(type="str"),
        all_or_nothing=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=60),
        reload_commands=dict(type="list", elements="list", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_keystores(module)


if __name__ == "__main__":
    main()
