"""The fleet report's renderers: HTML (checked in headless Chromium too), JUnit, JSON, summary."""

from __future__ import annotations

import copy
import json
import os
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from html.parser import HTMLParser

import junitparser
import pytest

from ansible_collections.sne.guichet.plugins.plugin_utils._report.common import (
    ACTION_STATUSES,
    STATUS_ORDER,
    span,
)
from ansible_collections.sne.guichet.plugins.plugin_utils._report.html_cells import safe_href
from ansible_collections.sne.guichet.plugins.plugin_utils._report.html_page import render_html
from ansible_collections.sne.guichet.plugins.plugin_utils._report.junit import render_junit
from ansible_collections.sne.guichet.plugins.plugin_utils._report.text import render_json, render_summary

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "report"))
SCREENSHOTS = os.path.join(ROOT, ".build", "report-screenshots")

import chromium_check  # noqa: E402

V5 = "5A:1F:9C:03:7E:44:B2:D8:61:0C:AF:93:28:E5:7B:16:C4:0D:9A:F2:35:88:6E:B1:47:D9:0A:63:FE:12:C7:5B"
AC5 = "C3:77:0E:91:4A:BD:26:F8:15:6C:E0:39:A4:52:DB:87:1E:F6:03:9D:68:C1:2A:B5:70:4E:93:DA:0F:86:3B:E2"
V4 = "9E:02:B6:41:D8:7C:35:AA:F1:60:2B:C9:04:E7:58:93:1D:A6:7F:C0:24:BB:8E:51:F3:06:9A:6D:E2:47:B1:38"
NOW_BEFORE = datetime(2026, 12, 1, 6, 46, tzinfo=timezone.utc)
NOW_AFTER = datetime(2026, 12, 1, 9, 38, tzinfo=timezone.utc)
EVIL = '<script>alert("x")</script> & "quotes"'


def _store(path, kind="jks", changed=True, failed=False, msg="", before=("V4",), after=("V5",)):
    return {
        "path": path, "type": kind, "changed": changed, "failed": failed, "msg": msg,
        "before": list(before), "after": list(after) if not failed else list(before),
        "added": [{"name": "sne-chiffrement-v5", "sha256": V5, "subject": "CN=Chiffrement_SNEV5,O=MTE,C=FR"},
                  {"name": "sne-ac-v5", "sha256": AC5, "subject": "CN=AC SNE V5,O=MTE,C=FR"}]
        if changed else [],
        "removed": [{"name": "old-sne", "sha256": V4, "subject": "CN=Chiffrement_SNEV4,O=MTE,C=FR"}]
        if changed else [],
        "backup": "/var/backups/sne-guichet/20261201T080512Z%s" % path if changed else "",
    }


def _host(name, status, reason="", **extra):
    host = {
        "host": name, "status": status, "reason": reason, "run_id": "20261201T080512Z",
        "seen_at": "2026-12-01T08:07:00Z", "in_this_run": True, "stores": [], "quarantined": [],
        "needs_attention": [], "config_rewritten": [],
        "probe": {"status": "not run", "latency": None, "msg": ""}, "backup_dir": "", "proposal": "",
    }
    host.update(extra)
    return host


def sample_report(check_mode=False):
    """A rotation report of 12 hosts, every status present, one hostile reason."""
    backup = "/var/backups/sne-guichet/20261201T080512Z"
    hosts = [
        _host("guichet-001", "changed",
              stores=[_store("/opt/guichet/conf/app.jks"), _store("/etc/guichet/certs", "pem_dir")],
              quarantined=["/opt/guichet/app/lib/Chiffrement_SNEV4.cer"],
              config_rewritten=["/opt/guichet/conf/guichet.properties"],
              probe={"status": "passed", "latency": 1.8, "msg": ""}, backup_dir=backup),
        _host("guichet-002", "ok",
              stores=[_store("/opt/guichet/conf/app.jks", changed=False, before=["V5"])],
              probe={"status": "passed", "latency": 2.4, "msg": ""}),
        _host("guichet-003", "changed",
              stores=[_store("/opt/guichet/conf/Chiffrement_SNEV5.cer", "der", before=[])],
              probe={"status": "passed", "latency": 0.9, "msg": ""}, backup_dir=backup),
        _host("guichet-004", "failed", "store password incorrect: /opt/guichet/conf/app.jks",
              stores=[_store("/opt/guichet/conf/app.jks", failed=True, changed=False,
                             msg="store password incorrect: /opt/guichet/conf/app.jks")]),
        _host("guichet-005", "attention",
              "retired certificate still in /opt/other/app.jks (not touched: needs a person)",
              stores=[_store("/opt/guichet/conf/app.jks")], needs_attention=["/opt/other/app.jks"],
              probe={"status": "passed", "latency": 1.2, "msg": ""}, backup_dir=backup),
        _host("guichet-006", "unconfigured", "no sne_guichet_stores declared for this host",
              proposal="host_vars/guichet-006.yml"),
        _host("guichet-007", "not reached",
              "unreachable: ssh: connect to host guichet-007 port 22: Connection timed out",
              seen_at="", run_id="20261201T080512Z"),
        _host("guichet-008", "pending", "not yet run (a later batch)", seen_at=""),
        _host("guichet-009", "failed", "asynchronous check timeout: no return from the SNE after 300 s",
              stores=[_store("/opt/guichet/conf/app.jks")],
              probe={"status": "timeout", "latency": None, "msg": "no return from the SNE after 300 s"},
              backup_dir=backup),
        _host("guichet-010", "changed", stores=[_store("/usr/local/share/ca-certificates", "debian")],
              run_id="it-1", seen_at="2026-11-30T17:12:00Z", in_this_run=False),
        _host("guichet-011", "failed", EVIL,
              stores=[_store("/opt/g/<b>odd</b>.jks", failed=True, changed=False, msg=EVIL)]),
        _host("guichet-012", "not reached", "not rotated to V5 by any run yet", run_id="", seen_at="",
              in_this_run=False),
    ]
    totals = {s: 0 for s in STATUS_ORDER}
    for host in hosts:
        totals[host["status"]] += 1
    return {
        "schema": 1, "kind": "rotation", "generation": "V5", "run_id": "20261201T080512Z",
        "started": "2026-12-01T08:05:12Z", "ended": "2026-12-01T08:21:40Z", "check_mode": check_mode,
        "target": "guichets", "limit": "", "revocation_time": "2026-12-01T09:00:00Z",
        "deployed": {
            "certificate": {"sha256": V5, "subject": "CN=Chiffrement_SNEV5,OU=SNE,O=MTE,C=FR",
                            "not_after": "2029-11-15T23:59:59Z"},
            "authority": {"sha256": AC5, "subject": "CN=AC SNE V5,O=MTE,C=FR",
                          "not_after": "2034-11-15T23:59:59Z"},
        },
        "totals": totals, "hosts": hosts,
        "history": [
            {"run_id": "it-1", "started": "2026-11-30T17:10:00Z", "ended": "2026-11-30T17:14:00Z",
             "check_mode": False, "hosts": 1, "limit": "guichet-010"},
            {"run_id": "20261201T080512Z", "started": "2026-12-01T08:05:12Z", "ended": "2026-12-01T08:21:40Z",
             "check_mode": check_mode, "hosts": 10, "limit": ""},
        ],
    }


def audit_report():
    """An audit: which generation is where, with proposals for the hosts without stores."""
    def audit(retired=(), current=(), without=()):
        return {"retired_places": list(retired), "current_places": list(current),
                "stores_without_current": list(without), "unreadable": []}

    hosts = [
        _host("guichet-101", "ok",
              audit=audit(current=["/opt/guichet/conf/app.jks", "/etc/guichet/certs/sne.pem"])),
        _host("guichet-102", "attention", "retired certificate in /home/g/bundle.pem, /opt/other/app.jks",
              needs_attention=["/home/g/bundle.pem", "/opt/other/app.jks"],
              audit=audit(["/home/g/bundle.pem", "/opt/other/app.jks"], ["/opt/guichet/conf/app.jks"])),
        _host("guichet-103", "attention", "current generation missing in /opt/guichet/conf/app.jks",
              audit=audit([], [], ["/opt/guichet/conf/app.jks"])),
        _host("guichet-104", "unconfigured", "no sne_guichet_stores declared for this host",
              proposal="host_vars/guichet-104.yml",
              audit=audit(["/opt/guichet/conf/app.jks"], [], [])),
        _host("guichet-105", "not reached", "unreachable: Permission denied (publickey)"),
        _host("guichet-106", "failed", "scan failed: /opt: Permission denied"),
        _host("guichet-107", "ok", audit=audit(current=["/usr/local/share/ca-certificates/sne-v5.crt"])),
    ]
    totals = {s: 0 for s in STATUS_ORDER}
    for host in hosts:
        totals[host["status"]] += 1
    report = sample_report()
    report.update(kind="audit", run_id="20261201T071500Z", started="2026-12-01T07:15:00Z",
                  ended="2026-12-01T07:18:31Z", hosts=hosts, totals=totals, history=[], deployed={},
                  limit="guichet-1*")
    return report


class _Collect(HTMLParser):
    """Elements and text of a page, as Python's parser sees it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.text = []
        self.in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.in_title = tag == "title"

    def handle_endtag(self, tag):
        self.in_title = False

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        self.text.append(data)


def parse(page):
    parser = _Collect()
    parser.feed(page)
    parser.close()
    return parser


# ---------------------------------------------------------------- HTML


def test_html_every_host_and_totals():
    report = sample_report()
    page = render_html(report, now=NOW_BEFORE)
    doc = parse(page)
    rows = [a for t, a in doc.tags if t == "tr" and "data-host" in a]
    assert [r["data-host"] for r in rows] == [h["host"] for h in report["hosts"]]
    statuses = {h["host"]: h["status"] for h in report["hosts"]}
    assert {r["data-host"]: r["data-status"] for r in rows} == statuses
    tiles = {a["data-status"]: a for t, a in doc.tags if t == "div" and "total" in a.get("class", "").split()
             and "data-status" in a}
    assert set(tiles) == set(STATUS_ORDER)
    for status, count in report["totals"].items():
        assert tiles[status]["data-count"] == str(count)
    assert '<div class="total" id="total-failed" data-status="failed" data-count="3"' in page
    assert '<span class="n">3</span> failed</div>' in page
    assert 'id="total-not-reached"' in page
    # the hosts needing action come first, grouped failed, unconfigured, not reached, attention
    action = [a["data-action-host"] for t, a in doc.tags if "data-action-host" in a]
    assert action == ["guichet-004", "guichet-009", "guichet-011", "guichet-006", "guichet-007",
                      "guichet-012", "guichet-005"]
    assert page.index('id="action"') < page.index('id="hosts-table"')
    assert "7 of 12 hosts need action" in page
    # the rerun hint for the hosts that can just be run again
    assert "--limit &#x27;guichet-004,guichet-009,guichet-011&#x27;" in page


def test_html_self_contained():
    page = render_html(sample_report(), now=NOW_BEFORE)
    doc = parse(page)
    for tag, attrs in doc.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        if tag == "script":
            assert "src" not in attrs
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)
    assert "@import" not in page and "url(http" not in page and "@font-face" not in page


def test_html_escapes_everything():
    report = sample_report()
    report["hosts"].append(_host('evil"><script>alert(1)</script>', "failed", EVIL,
                                 proposal="javascript:alert(1)",
                                 backup_dir="/tmp/<img src=x onerror=alert(1)>",
                                 quarantined=["</td></tr></table><script>alert(2)</script>"]))
    report["target"] = "<script>t</script>"
    report["run_id"] = "<b>run</b>"
    page = render_html(report, now=NOW_BEFORE)
    doc = parse(page)
    scripts = [t for t, _attrs in doc.tags if t == "script"]
    assert len(scripts) == 1  # only the page's own, at the end
    assert page.count("<script>") == 1
    assert not [t for t, _attrs in doc.tags if t in ("img", "b")]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/<wbr>script&gt; &amp; &quot;quotes&quot;" in page
    assert EVIL in "".join(doc.text)
    assert 'href="javascript' not in page.lower()
    hosts = [a["data-host"] for t, a in doc.tags if t == "tr" and "data-host" in a]
    assert 'evil"><script>alert(1)</script>' in hosts  # the attribute round-trips, escaped
    assert "javascript:alert(1)" in "".join(doc.text)  # shown as text, not linked


def test_html_proposal_is_a_relative_link():
    page = render_html(sample_report(), now=NOW_BEFORE)
    assert '<a href="host_vars/guichet-006.yml">' in page
    assert safe_href("host_vars/a b.yml") == "host_vars/a%20b.yml"
    bad_links = ("javascript:alert(1)", "https://evil/x", "//evil/x", "/etc/passwd", "data:text/html,x",
                 " JaVa:x")
    for bad in bad_links:
        assert safe_href(bad) is None, bad


def test_html_dry_run():
    report = sample_report(check_mode=True)
    page = render_html(report, now=NOW_BEFORE)
    doc = parse(page)
    assert doc.title.startswith("DRY RUN")
    assert any(t == "div" and a.get("id") == "dry-run" for t, a in doc.tags)
    assert "would change" in page
    real = render_html(sample_report(), now=NOW_BEFORE)
    assert "DRY RUN" not in real and 'id="dry-run"' not in real


def test_html_revocation_before_and_after():
    report = sample_report()
    before = render_html(report, now=NOW_BEFORE)
    assert "2 h 14 min before revocation at 09:00 UTC" in before
    assert 'data-state="before"' in before
    soon = render_html(report, now=datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc))
    assert "30 min before revocation at 09:00 UTC" in soon and 'data-state="soon"' in soon
    after = render_html(report, now=NOW_AFTER)
    assert "revoked since 09:00 UTC (38 min ago)" in after and 'data-state="after"' in after
    other_day = render_html(report, now=datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    assert "1 d before revocation at 2026-12-01 09:00 UTC" in other_day
    report["revocation_time"] = None
    assert 'id="revocation"' not in render_html(report, now=NOW_BEFORE)


def test_html_naive_now_is_utc():
    naive = datetime(2026, 12, 1, 6, 46)
    assert "2 h 14 min before revocation" in render_html(sample_report(), now=naive)


def test_html_details():
    page = render_html(sample_report(), now=NOW_BEFORE)
    assert "V4 \u2192 V5" in page
    assert 'title="%s"' % V5 in page  # full fingerprint in the title, short one shown
    assert "5A:1F:9C:03\u2026C7:5B" in page
    assert ">certificate V5<" in page and ">authority V5<" in page
    assert "Chiffrement_SNEV4.cer" in page and "guichet.properties" in page
    assert "1.8 s" in page and ">timeout<" in page
    assert "/<wbr>var/<wbr>backups/<wbr>sne-guichet/<wbr>20261201T080512Z" in page
    assert "earlier run" in page
    assert "SHA-256 " + V5.replace(":", ":<wbr>") in page  # the deployed fingerprint in full at the top
    assert "16 min 28 s" in page
    assert 'id="history"' in page


def test_html_audit():
    page = render_html(audit_report(), now=NOW_BEFORE)
    assert "Audit V5" in page
    assert "stores without the current" in page and "current certificate in" in page
    assert '<a href="host_vars/guichet-104.yml">' in page
    assert "Stores: before" not in page  # no store column when no host has stores
    assert "Async check" not in page


def test_html_tolerates_partial_reports():
    page = render_html({"hosts": [{"host": "h1"}, "junk", {"status": "weird"}]}, now=NOW_BEFORE)
    doc = parse(page)
    rows = [a for t, a in doc.tags if t == "tr" and "data-host" in a]
    assert [r["data-status"] for r in rows] == ["unknown", "weird"]
    assert "2 of 2 hosts need action" in page
    assert render_html({}, now=NOW_BEFORE).count("<tr data-host") == 0


def test_html_control_characters():
    report = sample_report()
    report["hosts"][0]["reason"] = "bad\x00byte\x1b[31m"
    page = render_html(report, now=NOW_BEFORE)
    assert "\x00" not in page and "\x1b" not in page and "bad\\x00byte\\x1b[31m" in page


# ---------------------------------------------------------------- JUnit


def test_junit_parses_one_case_per_host():
    report = sample_report()
    xml = render_junit(report)
    parsed = junitparser.JUnitXml.fromstring(xml)
    suites = list(parsed) if isinstance(parsed, junitparser.JUnitXml) else [parsed]
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "sne.guichet rotation V5"
    assert suite.tests == 12 and suite.failures == 7 and suite.skipped == 1 and suite.errors == 0
    assert suite.timestamp == "2026-12-01T08:05:12"
    props = {p.name: p.value for p in suite.properties()}
    assert props["run_id"] == "20261201T080512Z" and props["check_mode"] == "false"
    cases = {c.name: c for c in suite}
    assert list(cases) == [h["host"] for h in report["hosts"]]
    for host in report["hosts"]:
        case = cases[host["host"]]
        assert case.classname == "sne.guichet.rotation.V5"
        kinds = [type(r).__name__ for r in case.result]
        if host["status"] in ACTION_STATUSES:
            assert kinds == ["Failure"], host["host"]
            assert case.result[0].message.startswith(host["status"] + ": ")
            assert case.result[0].type == host["status"]
        elif host["status"] == "pending":
            assert kinds == ["Skipped"]
        else:
            assert kinds == [] and case.is_passed
            assert "status: " + host["status"] in case.system_out
    message = "failed: store password incorrect: /opt/guichet/conf/app.jks"
    assert cases["guichet-004"].result[0].message == message
    assert "proposal: host_vars/guichet-006.yml" in cases["guichet-006"].result[0].message
    assert "/opt/other/app.jks" in cases["guichet-005"].result[0].text


def test_junit_escaping_and_dry_run():
    report = sample_report(check_mode=True)
    report["hosts"][0]["reason"] = "ctl\x01char"
    xml = render_junit(report)
    root = ET.fromstring(xml)  # well formed despite EVIL and the control character
    case = root.find(".//testcase[@name='guichet-011']")
    assert case.find("failure").get("message") == "failed: " + EVIL
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["check_mode"] == "true"
    assert xml.startswith("<?xml") and xml.endswith("\n")


def test_junit_empty():
    root = ET.fromstring(render_junit({}))
    suite = root.find("testsuite")
    assert suite.get("tests") == "0" and suite.get("name") == "sne.guichet report unknown"


# ---------------------------------------------------------------- JSON


def test_json_stable():
    report = sample_report()
    text = render_json(report)
    assert text.endswith("}\n") and json.loads(text) == report
    shuffled = dict(reversed(list(copy.deepcopy(report).items())))
    assert render_json(shuffled) == text
    assert text.splitlines()[1] == '  "check_mode": false,'
    assert render_json({"when": datetime(2026, 12, 1, tzinfo=timezone.utc)}) == (
        '{\n  "when": "2026-12-01 00:00:00+00:00"\n}\n')


# ---------------------------------------------------------------- summary


def test_summary():
    lines = render_summary(sample_report(), now=NOW_BEFORE,
                           paths={"html": "reports/report.html", "json": "reports/report.json"})
    assert lines[0] == ("sne.guichet rotation V5 - run 20261201T080512Z - 2 h 14 min before revocation at "
                        "09:00 UTC")
    assert lines[1] == ("12 hosts: 3 failed, 1 unconfigured, 2 not reached, 1 attention, 1 pending, "
                        "3 changed, 1 ok")
    assert lines[2] == "Needs action (7):"
    assert lines[3] == "  guichet-004: failed - store password incorrect: /opt/guichet/conf/app.jks"
    assert lines[6].startswith("  guichet-006: unconfigured - no sne_guichet_stores declared for this host; "
                               "proposal: host_vars/guichet-006.yml")
    hosts = [line.split(":")[0].strip() for line in lines[3:10]]
    assert hosts == ["guichet-004", "guichet-009", "guichet-011", "guichet-006", "guichet-007", "guichet-012",
                     "guichet-005"]
    assert lines[-1] == "Reports: html reports/report.html, json reports/report.json"
    assert len(lines) == 11
    assert not any("guichet-001" in line or "guichet-008" in line for line in lines)


def test_summary_dry_run_and_after_revocation():
    lines = render_summary(sample_report(check_mode=True), now=NOW_AFTER)
    assert "DRY RUN" in lines[0] and "revoked since 09:00 UTC (38 min ago)" in lines[0]


def test_summary_truncates_and_one_line_per_host():
    report = sample_report()
    report["hosts"] = [_host("g-%03d" % i, "failed", "line one\nline two " + "x" * 400) for i in range(55)]
    report["totals"] = {"failed": 55}
    lines = render_summary(report, now=NOW_BEFORE, paths={"html": "out/report.html"})
    host_lines = [line for line in lines if line.startswith("  g-")]
    assert len(host_lines) == 40
    assert all("\n" not in line and len(line) < 230 for line in lines)
    assert "  ... and 15 more, see out/report.html" in lines
    assert "line one line two" in host_lines[0]


def test_summary_nothing_to_do():
    report = {"kind": "audit", "generation": "V5", "run_id": "r", "hosts": [_host("a", "ok")],
              "totals": {"ok": 1}}
    lines = render_summary(report)
    assert lines[-1] == "No host needs action."
    assert lines[0] == "sne.guichet audit V5 - run r"


def test_span():
    assert span(0) == "less than 1 min"
    assert span(59) == "less than 1 min"
    assert span(60) == "1 min"
    assert span(3600) == "1 h"
    assert span(2 * 3600 + 14 * 60 + 59) == "2 h 14 min"
    assert span(26 * 3600 + 120) == "1 d 2 h"


# ---------------------------------------------------------------- headless Chromium


def _chromium_or_skip():
    if chromium_check.find_chromium() is None:
        message = "chromium is not installed (Debian package 'chromium'; bash scripts/bootstrap.sh --test)"
        if os.environ.get("CI"):
            pytest.fail(message + " - required when CI is set")
        pytest.skip(message)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, report, texts",
    [
        ("rotation", sample_report(),
         ["need action", "before revocation at 09:00 UTC", "store password incorrect"]),
        ("dry-run", sample_report(check_mode=True), ["DRY RUN", "nothing was written", "would change"]),
        ("audit", audit_report(), ["Audit V5", "stores without the current", "host_vars/guichet-104.yml"]),
    ],
)
def test_chromium_renders_the_report(tmp_path, name, report, texts):
    _chromium_or_skip()
    page = tmp_path / ("report-%s.html" % name)
    page.write_text(render_html(report, now=NOW_BEFORE), encoding="utf-8")
    shot = os.path.join(SCREENSHOTS, "report-%s.png" % name)
    totals = {s: report["totals"][s] for s in STATUS_ORDER}
    found = chromium_check.check(str(page), shot, [h["host"] for h in report["hosts"]], totals, texts)
    assert found["hosts"] == [h["host"] for h in report["hosts"]]
    assert found["totals"] == totals
    assert found["js"]
    assert os.path.getsize(shot) > 5000
    if name == "dry-run":
        assert "DRY RUN" in found["title"]


@pytest.mark.slow
def test_chromium_status_filter(tmp_path):
    """The page's script filters the host table; a #status= fragment presets the filter."""
    _chromium_or_skip()
    report = sample_report()
    page = tmp_path / "report.html"
    page.write_text(render_html(report, now=NOW_BEFORE), encoding="utf-8")
    hosts = [h["host"] for h in report["hosts"]]
    found = chromium_check.check(str(page), str(tmp_path / "shot.png"), hosts, {}, ["2 of 12 hosts shown"],
                                 fragment="status=not%20reached")
    assert found["visible"] == ["guichet-007", "guichet-012"]
    assert found["hosts"] == hosts  # hidden rows stay in the page


@pytest.mark.slow
def test_chromium_check_reports_problems(tmp_path):
    _chromium_or_skip()
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report(), now=NOW_BEFORE), encoding="utf-8")
    with pytest.raises(chromium_check.CheckFailed) as info:
        chromium_check.check(str(page), str(tmp_path / "shot.png"), ["guichet-001", "guichet-999"],
                             {"failed": 4, "ok": 1}, ["DRY RUN"])
    problems = "\n".join(info.value.problems)
    assert "guichet-999" in problems and "'failed' shows '3'" in problems and "'DRY RUN'" in problems
    assert "unexpected host rows" in problems  # the 11 others were not listed
    assert "ok" not in [p.split("'")[1] for p in info.value.problems if p.startswith("totals tile")]


def test_chromium_check_dom_parser():
    dom = ('<html data-js="ready"><head><title>T</title><style>x{}</style></head><body>'
           '<div class="total" data-status="failed" data-count="2"><span class="n">2</span> failed<br></div>'
           '<div class="total zero" data-status="ok" data-count="0"><span class="n">0</span> ok</div>'
           '<table><tr data-host="a" data-status="failed"><td>a<wbr>b</td></tr></table>'
           '<img src="https://cdn.example/x.png"><script src="//cdn/x.js"></script></body></html>')
    parsed = chromium_check.parse_dom(dom)
    assert {k: v["n"] for k, v in parsed.tiles.items()} == {"failed": "2", "ok": "0"}
    assert [r["data-host"] for r in parsed.rows] == ["a"]
    assert parsed.title == "T" and "x{}" not in parsed.text
    assert len(parsed.external) == 2
    problems = chromium_check._problems(parsed, ["a"], {"failed": 2, "ok": 0}, ["failed"], True)
    assert problems == ["external resources: <img src=https://cdn.example/x.png>, <script src=//cdn/x.js>"]


# ---------------------------------------------------------------- outbound messages (issue 10)


def _outbox_report(check_mode=False):
    out = "/var/spool/guichet/out"
    moved = _host("guichet-020", "changed", outbox={
        "retired_messages": 2, "oldest": "2016-01-06T18:02:11Z", "moved": [out + "/1.p7m", out + "/2.eml"],
        "left": [], "folders": [out], "unreadable": 0})
    left = _host("guichet-021", "attention", "3 messages to the retired certificate in %s" % out, outbox={
        "retired_messages": 3, "oldest": "2016-01-05T07:00:00Z", "moved": [],
        "left": [out + "/a.p7m", out + "/b.p7m", out + "/c.p7m"], "folders": [out], "unreadable": 0})
    quiet = _host("guichet-022", "ok")  # no outbox key at all (a record of an earlier version)
    return {"kind": "rotation", "generation": "V5", "run_id": "r", "check_mode": check_mode,
            "hosts": [moved, left, quiet], "totals": {"changed": 1, "attention": 1, "ok": 1}}


def test_every_format_shows_the_outbound_messages_found_and_moved():
    report = _outbox_report()
    lines = render_summary(report)
    start = lines.index("Outbound messages to the retired certificate (2 hosts):")
    assert lines[start + 1:start + 3] == [
        "  guichet-020: 2 found (oldest 2016-01-06T18:02:11Z), 2 moved to the quarantine",
        "  guichet-021: 3 found (oldest 2016-01-05T07:00:00Z), 0 moved to the quarantine"]
    assert not any("guichet-022:" in line for line in lines[start:])
    root = ET.fromstring(render_junit(report))
    moved_out = root.find(".//testcase[@name='guichet-020']").find("system-out").text
    assert "outbound messages to the retired certificate: 2 found" in moved_out
    assert "  moved: /var/spool/guichet/out/2.eml" in moved_out
    left_text = root.find(".//testcase[@name='guichet-021']").find("failure").text
    assert "  left: /var/spool/guichet/out/c.p7m" in left_text and "0 moved" in left_text
    html = render_html(report, now=NOW_BEFORE)
    assert "messages to the retired certificate quarantined (2)" in html
    assert "messages to the retired certificate left (3)" in html
    assert json.loads(render_json(report))["hosts"][0]["outbox"]["moved"][1].endswith("2.eml")


def test_a_dry_run_says_the_messages_would_be_moved():
    lines = render_summary(_outbox_report(check_mode=True))
    assert "  guichet-020: 2 found (oldest 2016-01-06T18:02:11Z), 2 would be moved to the quarantine" in lines
