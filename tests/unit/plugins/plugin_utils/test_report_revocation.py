"""The fleet-level revocation lines of the report (plugins/plugin_utils/_report/revocation.py).

The ``revocation`` shown is the one the bundle intake proves from the test PKI's CRLs (not a
hand-written list): V4 revoked by the CRL of AC SNE V4 since 2016-01-07 08:00 UTC, V5 not
revoked. Text summary, JSON and HTML all say it, one line per generation.
"""

from __future__ import annotations

import datetime
import json
import os
from html.parser import HTMLParser

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._bundle.policy import Policy, verify_bundle
from ansible_collections.sne.guichet.plugins.plugin_utils._report.html_page import render_html
from ansible_collections.sne.guichet.plugins.plugin_utils._report.revocation import (
    revocation_entries,
    revocation_lines,
    revocation_words,
)
from ansible_collections.sne.guichet.plugins.plugin_utils._report.text import render_json, render_summary

VALID_AT = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
V4_LINE = "V4: revoked by the CRL of AC SNE V4 (test) since 2016-01-07 08:00:00 UTC (superseded)"


def _read(pki, rel):
    with open(os.path.join(pki["dir"], rel), "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def proven(pki):
    """The bundle module's revocation for the good V5 bundle, V4 retired and required revoked."""
    certs = pki["certificates"]
    crls = [(pki["crls"][n]["der"], _read(pki, pki["crls"][n]["der"])) for n in ("ac-v5", "ac-v4")]
    policy = Policy(trust_anchors=[_read(pki, certs["root"]["path"])], generation="V5", valid_at=VALID_AT,
                    crls=crls,
                    retired_certificates=[_read(pki, certs[c]["path"]) for c in ("chiffrement-v4", "ac-v4")],
                    retired_generation="V4", require_retired_revoked=True)
    return verify_bundle(_read(pki, pki["bundles"]["good-v5"]["file"]), policy)["revocation"]


def _report(revocation):
    return {"schema": 1, "kind": "rotation", "generation": "V5", "run_id": "r1", "check_mode": False,
            "totals": {"ok": 1}, "hosts": [{"host": "g1", "status": "ok"}],
            "revocation": revocation_entries(revocation)}


def test_one_line_per_generation_in_the_summary(proven):
    lines = render_summary(_report(proven))
    assert lines[2:4] == [
        "V5: not revoked by the CRL of AC SNE V5 (test) (CRL current until 2040-01-01 00:00:00 UTC)",
        "V4: revoked by the CRL of AC SNE V4 (test) since 2016-01-07 08:00:00 UTC (superseded)",
    ]


def test_json_keeps_the_facts(proven, pki):
    data = json.loads(render_json(_report(proven)))
    v5, v4 = data["revocation"]
    assert (v4["generation"], v4["revoked"], v4["revoked_at"]) == ("V4", True, "2016-01-07T08:00:00+00:00")
    assert v4["authority"] == "AC SNE V4 (test)" and v4["crl"] == pki["crls"]["ac-v4"]["der"]
    assert v4["sha256"] == pki["certificates"]["chiffrement-v4"]["sha256"]
    assert (v5["generation"], v5["revoked"]) == ("V5", False)


class _Items(HTMLParser):
    def __init__(self):
        super().__init__()
        self.items, self._in = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "li" and "data-revoked" in dict(attrs):
            self._in = dict(attrs)
            self.items.append([self._in, ""])

    def handle_endtag(self, tag):
        if tag == "li":
            self._in = None

    def handle_data(self, data):
        if self._in is not None:
            self.items[-1][1] += data


def test_html_shows_the_same_lines(proven):
    parser = _Items()
    parser.feed(render_html(_report(proven)))
    assert [(a["data-generation"], a["data-revoked"], text) for a, text in parser.items] == [
        ("V5", "false", revocation_lines(_report(proven))[0]),
        ("V4", "true", V4_LINE),
    ]


def test_no_revocation_no_line():
    report = _report([])
    assert render_summary(report)[2:3] == ["No host needs action."]
    assert 'id="crl"' not in render_html(report)
    assert json.loads(render_json(report))["revocation"] == []


def test_unknown_and_hostile_entries():
    assert revocation_words({"generation": "V4", "authority": "AC V4", "revoked": None}) == \
        "V4: revocation not known (no CRL of AC V4 given)"
    evil = [{"generation": "<b>V4</b>", "authority": "AC\n<script>", "revoked": True,
             "revoked_at": "2016-01-07T08:00:00+00:00", "pem": "-----BEGIN CERTIFICATE-----"}, "junk"]
    kept = revocation_entries(evil)
    assert len(kept) == 1 and "pem" not in kept[0]
    page = render_html(_report(evil))
    assert "<script>" not in page.split('id="crl"')[1].split("</ul>")[0]
    assert render_summary(_report(evil))[2] == \
        "<b>V4</b>: revoked by the CRL of AC <script> since 2016-01-07 08:00:00 UTC"
