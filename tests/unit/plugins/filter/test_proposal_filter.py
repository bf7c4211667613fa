"""The host_vars_proposal and host_vars_proposal_yaml filters: shims over plugin_utils._proposal."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.sne.guichet.plugins.filter.proposal import (
    FilterModule,
    host_vars_proposal,
    host_vars_proposal_yaml,
)

V4, V5 = "AA:" * 31 + "04", "AA:" * 31 + "05"
SCAN = {
    "found": {V4: [{"path": "/opt/g/conf/app.jks", "format": "jks", "alias": "sne-v4", "index": None,
                    "target": None}]},
    "files": {"/opt/g/conf/app.jks": {"format": "jks", "certificates": 3, "matched": 1}},
    "certificates": {V4: {"subject": "CN=Chiffrement_SNEV4", "not_after": "2040-01-01T00:00:00Z",
                          "is_ca": False}},
    "unreadable": [], "missing": [], "references": {"/opt/g/conf/app.jks": []},
}


def test_registration():
    filters = FilterModule().filters()
    assert filters["host_vars_proposal"] is host_vars_proposal
    assert filters["host_vars_proposal_yaml"] is host_vars_proposal_yaml


def test_proposal_then_yaml():
    proposal = host_vars_proposal(SCAN, current=[V5], retired=[V4], generation="V5", host="g1",
                                  stores=[], search_paths=["/opt"])
    assert proposal["sne_guichet_stores"] == [
        {"path": "/opt/g/conf/app.jks", "type": "jks", "password": "{{ vault_g1_app_jks }}"}]
    text = host_vars_proposal_yaml(proposal, host="g1", date="2026-06-01T08:00:00Z")
    assert yaml.safe_load(text) == {"sne_guichet_stores": proposal["sne_guichet_stores"],
                                    "sne_guichet_config_files": [], "sne_guichet_search_paths": ["/opt"]}
    assert "# Proposed host_vars for host g1" in text
    # or in one step, from the scan result (as audit.yml does)
    assert host_vars_proposal_yaml(SCAN, current=[V5], retired=[V4], generation="V5", host="g1",
                                   search_paths=["/opt"], date="2026-06-01T08:00:00Z") == text


@pytest.mark.parametrize("call, message", [
    (lambda: host_vars_proposal(SCAN, current=[V4], retired=[V4], generation="V5"), "both name"),
    (lambda: host_vars_proposal(SCAN, current=[V5], retired=[V4]), "generation"),
    (lambda: host_vars_proposal("oops", current=[V5], retired=[V4], generation="V5"), "sne.guichet.scan"),
    (lambda: host_vars_proposal_yaml(["x"]), "host_vars_proposal"),
    (lambda: host_vars_proposal_yaml(SCAN, current=[V5], retired=[V4]), "generation"),
])
def test_errors_are_filter_errors(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()
