#!/usr/bin/python
# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the fleet report (HTML, JSON, JUnit) and keep the fleet state of a rotation
version_added: 0.2.0
description:
  - Runs on the controller only (an action plugin; nothing is sent to any host), once per batch
    (C(run_once)), at the end of C(sne.guichet.rotate) and C(sne.guichet.audit) through the
    C(sne.guichet.report) role.
  - Reads each host's record (the fact named by O(record_var), made by the
    C(sne.guichet.host_status) filter) and lists B(every host of O(scope)) - the target group,
    whatever C(--limit) - with this run's status, or else the latest status the fleet state
    holds (which run saw it, when), or else V(not reached).
  - Writes, under O(report_dir), for a rotation C(fleet-<generation>.json) (the fleet state,
    updated by real runs only), C(<generation>/report.html), C(report.json) and C(junit.xml)
    (the fleet as it now stands) and the same three under C(<generation>/runs/<run_id>/) (a
    check-mode run writes only these, marked DRY RUN); for an audit C(<generation>/audit/) with
    the proposed C(host_vars/<host>.yml) fragments.
  - The schema of C(report.json) and of the fleet state is in the collection's C(docs/report.md).
  - Never reports a change (the fleet is not changed by a report), so a second rotation run
    still shows C(changed=0).
author:
  - sne.guichet developers (@sne-guichet)
attributes:
  check_mode:
    support: full
    description: In check mode the run's own report is written (marked DRY RUN); the fleet state
      and the fleet report are left as they are.
  diff_mode:
    support: none
    description: Reports are not a change of the fleet.
  idempotent:
    support: full
    description: The fleet is never changed.
options:
  kind:
    description: What ran - a rotation or an audit.
    type: str
    choices: [rotation, audit]
    default: rotation
  generation:
    description: The generation deployed or audited (C(V5)); names the state file and the folder.
    type: str
    required: true
  run_id:
    description: The run's name; only host records of this run are taken as this run's.
    type: str
    required: true
  started:
    description: When the run started (ISO 8601 UTC).
    type: str
    default: ""
  target:
    description: The host pattern the run targets (shown in the report).
    type: str
    default: ""
  limit:
    description: The run's C(--limit), if any (shown in the report).
    type: str
    default: ""
  scope:
    description: Every host of the target group, whatever C(--limit).
    type: list
    elements: str
    required: true
  play_hosts_all:
    description: The hosts this run targets (C(ansible_play_hosts_all)).
    type: list
    elements: str
    default: []
  play_hosts:
    description: The hosts still in the play (C(ansible_play_hosts)); a host of O(play_hosts_all)
      that is not among them and has no record was not reached.
    type: list
    elements: str
    default: []
  record_var:
    description: Name of the per-host fact holding the host's record.
    type: str
    default: sne_host_report
  report_dir:
    description: Folder of the reports on the controller (relative paths are relative to the
      directory C(ansible-playbook) runs in).
    type: path
    required: true
  revocation_time:
    description: The hour the ministry revokes the retired generation (ISO 8601); the report shows
      the time left before it, or since when it is revoked.
    type: str
  deployed:
    description: What was deployed - C(certificate) and C(authority), for example the
      C(sne.guichet.bundle) result's; only their C(sha256), C(subject) and C(not_after) are reported.
    type: dict
    default: {}
  revocation:
    description:
      - What the CRLs proved, the C(sne.guichet.bundle) result's C(revocation) (one entry per
        generation's certificate); the report shows one line per entry, for example for V4
        C(revoked by the CRL of AC SNE V4 since 2016-01-07 08:00:00 UTC).
    type: list
    elements: dict
    default: []
  update_state:
    description: Whether a real rotation run updates the fleet state.
    type: bool
    default: true
  dry_run:
    description: Whether the run is a check-mode run (DRY RUN); default the play's check mode.
    type: bool
notes:
  - Use the C(sne.guichet.report) role rather than this action directly.
"""

EXAMPLES = r"""
- name: Write the fleet report
  sne.guichet.fleet_report:
    generation: V5
    run_id: "{{ sne_run_id }}"
    scope: "{{ query('ansible.builtin.inventory_hostnames', 'guichets') }}"
    play_hosts_all: "{{ ansible_play_hosts_all }}"
    play_hosts: "{{ ansible_play_hosts }}"
    report_dir: sne-reports
  run_once: true
  register: fleet_report
"""

RETURN = r"""
totals:
  description: Number of hosts of the fleet in each status.
  returned: success
  type: dict
  sample: {"ok": 40, "changed": 250, "attention": 2, "failed": 5, "unconfigured": 1, "not reached": 2, "pending": 0}
paths:
  description: Files written - C(html), C(json), C(junit), and C(state) for a real rotation run.
  returned: success
  type: dict
  sample: {"html": "/srv/ops/sne-reports/V5/report.html", "state": "/srv/ops/sne-reports/fleet-V5.json"}
summary:
  description: The short text summary - totals and the hosts needing action.
  returned: success
  type: list
  elements: str
  sample: ["SNE rotation 20261201T0805Z to V5: 300 hosts", "ok 40, changed 250, failed 5 ..."]
failing_hosts:
  description: Hosts of this run whose status fails the run (V(failed), V(unconfigured), V(not reached)).
  returned: success
  type: list
  elements: str
  sample: ["guichet-042"]
needs_action:
  description: Hosts of the fleet needing a person (those failing and those in V(attention)).
  returned: success
  type: list
  elements: str
  sample: ["guichet-042", "guichet-107"]
"""
