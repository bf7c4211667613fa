"""Host classification and the fleet view: what the report says about every host is true."""

from __future__ import annotations

import pytest

from ansible_collections.sne.guichet.plugins.filter.fleet import FilterModule, host_status
from ansible_collections.sne.guichet.plugins.plugin_utils import _fleet

V5 = "AA:" * 31 + "AA"
AC5 = "BB:" * 31 + "BB"
V4 = "CC:" * 31 + "CC"
STORES = [{"path": "/opt/guichet/conf/app.jks", "type": "jks", "password": "secret"}]


def facts(**kw):
    base = {
        "stores": STORES,
        "generation": "V5",
        "certificate_sha256": V5,
        "authority_sha256": [AC5],
        "run_id": "r1",
        "seen_at": "2026-12-01T08:10:00Z",
        "backup_dir": "/var/backups/sne-guichet",
    }
    base.update(kw)
    return base


def store(**kw):
    base = {
        "path": "/opt/guichet/conf/app.jks",
        "type": "jks",
        "changed": False,
        "failed": False,
        "held": 3,
        "added": [],
        "removed": [],
    }
    base.update(kw)
    return base


ADDED = [
    {"name": "sne-chiffrement-v5", "sha256": V5, "subject": "CN=Chiffrement_SNEV5"},
    {"name": "sne-ac-v5", "sha256": AC5, "subject": "CN=AC SNE V5"},
]
REMOVED = [{"name": "old-ministry-cert-2014", "sha256": V4, "subject": "CN=Chiffrement_SNEV4,OU=SNE"}]


def test_no_store_declared_is_unconfigured_never_ok():
    for stores in ([], None):
        record = _fleet.rotation_record("g1", facts(stores=stores, deploy={"skipped": True}))
        assert record["status"] == "unconfigured"
        assert record["reason"] == "no sne_guichet_stores declared for this host"


def test_already_rotated_host_is_ok_and_says_what_it_holds():
    record = _fleet.rotation_record("g1", facts(deploy={"changed": False, "stores": [store()]}))
    assert record["status"] == "ok" and record["reason"] == ""
    assert record["stores"][0]["before"] == ["V5"] and record["stores"][0]["after"] == ["V5"]
    assert record["backup_dir"] == ""
    assert "secret" not in repr(record)


def test_rotated_host_is_changed_with_generations_and_backup():
    deploy = {
        "changed": True,
        "stores": [
            store(
                changed=True, added=ADDED, removed=REMOVED, backup="/var/backups/sne-guichet/r1/files/app.jks"
            )
        ],
    }
    retire = {
        "quarantined": ["/opt/guichet/conf/Chiffrement_SNEV4.cer"],
        "needs_attention": [],
        "config_rewritten": ["/opt/guichet/conf/guichet.properties"],
    }
    record = _fleet.rotation_record(
        "g1", facts(deploy=deploy, retire=retire, probe={"status": "passed", "elapsed": 1.23456})
    )
    assert record["status"] == "changed"
    assert record["stores"][0]["before"] == ["V4"] and record["stores"][0]["after"] == ["V5"]
    assert record["stores"][0]["added"][0]["sha256"] == V5
    assert record["backup_dir"] == "/var/backups/sne-guichet/r1"
    assert record["probe"] == {"status": "passed", "latency": 1.235, "msg": ""}
    assert record["quarantined"] == retire["quarantined"]


def test_retire_alone_changing_makes_the_host_changed():
    record = _fleet.rotation_record(
        "g1",
        facts(deploy={"changed": False, "stores": [store()]}, retire={"quarantined": ["/home/g/v4.pem"]}),
    )
    assert record["status"] == "changed"


def test_wrong_password_is_failed_with_the_store_message():
    msg = "/opt/guichet/conf/app.jks (jks): store password incorrect (integrity check failed)"
    deploy = {
        "failed": True,
        "changed": False,
        "msg": "1 store failed",
        "stores": [store(failed=True, code="wrong_password", msg=msg)],
    }
    record = _fleet.rotation_record(
        "g1", facts(deploy=deploy, failure={"task": "Converge", "msg": "1 store failed"})
    )
    assert record["status"] == "failed"
    assert record["reason"] == msg
    assert record["stores"][0]["after"] == record["stores"][0]["before"]


def test_failed_keystores_without_store_detail_uses_its_message():
    record = _fleet.rotation_record("g1", facts(deploy={"failed": True, "msg": "keytool not found"}))
    assert record["status"] == "failed" and record["reason"] == "keytool not found"


@pytest.mark.parametrize("status", ["timeout", "rejected", "error", "bogus"])
def test_probe_that_did_not_pass_fails_the_host(status):
    probe = {"status": status, "msg": "no return within 20 s", "anomaly": {"code": "A12", "label": "refus"}}
    record = _fleet.rotation_record(
        "g1", facts(deploy={"changed": True, "stores": [store(changed=True)]}, probe=probe)
    )
    assert record["status"] == "failed"
    assert record["reason"].startswith("asynchronous check %s" % status)
    assert "A12" in record["reason"]


def test_probe_not_run_is_not_a_failure():
    record = _fleet.rotation_record(
        "g1", facts(deploy={"changed": False, "stores": [store()]}, probe={"skipped": True, "changed": False})
    )
    assert record["status"] == "ok" and record["probe"]["status"] == "not run"


def test_failure_elsewhere_is_failed_with_task_and_message():
    record = _fleet.rotation_record(
        "g1",
        facts(
            deploy={"changed": True, "stores": [store(changed=True)]},
            failure={"task": "Rewrite configuration", "msg": "Permission denied"},
        ),
    )
    assert record["status"] == "failed"
    assert record["reason"] == "Rewrite configuration: Permission denied"


def test_attention_lists_the_places():
    places = ["/opt/other/app.jks", "/home/a.pem", "/home/b.pem", "/srv/c.pem"]
    record = _fleet.rotation_record(
        "g1",
        facts(deploy={"changed": True, "stores": [store(changed=True)]}, retire={"needs_attention": places}),
    )
    assert record["status"] == "attention"
    assert "/opt/other/app.jks" in record["reason"] and "1 more" in record["reason"]


def test_failed_wins_over_attention():
    deploy = {"failed": True, "stores": [store(failed=True, msg="corrupt")]}
    record = _fleet.rotation_record("g1", facts(deploy=deploy, retire={"needs_attention": ["/x"]}))
    assert record["status"] == "failed"


def test_quarantine_collision_fails_the_host_and_names_the_stray():
    # retire found the stray's place in this run's quarantine taken: the stray was left where it
    # is (never written over); the host is not done, whatever else converged.
    stray = "/opt/guichet/conf/Chiffrement_SNEV4.cer"
    retire = {"quarantined": ["/home/g/v4.pem"], "quarantine_taken": [stray], "needs_attention": []}
    record = _fleet.rotation_record(
        "g1", facts(deploy={"changed": True, "stores": [store(changed=True)]}, retire=retire,
                    probe={"status": "passed"})
    )
    assert record["status"] == "failed"
    assert record["reason"] == (
        "stray copy %s not quarantined: its place in the quarantine of run r1 is taken (never "
        "written over); run again with another sne_run_id" % stray)
    assert record["quarantined"] == ["/home/g/v4.pem"] and record["needs_attention"] == [stray]


def test_probe_timeout_in_the_playbook_is_failed_with_the_probe_reason():
    # What rotate.yml records for a host whose return never came: the probe result (fail_on_status
    # false) and the rescue of the role's "Fail the host" task; the reason is the probe's, once.
    msg = "no return for message SNEPROBE-g1-20261201T0800Z-1 within 2 s"
    probe = {"status": "timeout", "msg": msg, "elapsed": 2.0004, "message_id": "SNEPROBE-g1-20261201T0800Z-1"}
    failure = {"task": "Fail the host when the SNE did not accept the message",
               "msg": "asynchronous check timeout: " + msg}
    record = _fleet.rotation_record(
        "g1", facts(deploy={"changed": True, "stores": [store(changed=True)]}, probe=probe, failure=failure)
    )
    assert record["status"] == "failed"
    assert record["reason"] == "asynchronous check timeout: " + msg
    assert record["probe"] == {"status": "timeout", "latency": 2.0, "msg": msg}


def test_a_host_that_failed_after_a_write_reports_the_stores_it_changed():
    # A write refused mid-run (an immutable file): the stores written before it keep their new
    # version and say so; the failing one is named with its cause and unchanged.
    msg = "/opt/guichet/conf/sne.pem (pem): cannot replace /opt/guichet/conf/sne.pem: permission denied"
    deploy = {"failed": True, "changed": True, "msg": "1 of 2 stores could not be processed",
              "stores": [store(changed=True, added=ADDED, removed=REMOVED),
                         store(path="/opt/guichet/conf/sne.pem", type="pem", failed=True, code="io_error",
                               msg=msg, added=ADDED, removed=REMOVED)]}
    record = _fleet.rotation_record("g1", facts(deploy=deploy, failure={"task": "Converge", "msg": "x"}))
    assert record["status"] == "failed" and record["reason"] == msg
    jks, pem = record["stores"]
    assert (jks["changed"], jks["after"]) == (True, ["V5"])
    assert (pem["failed"], pem["before"], pem["after"]) == (True, ["V4"], ["V4"])


@pytest.mark.parametrize("status", ["attention", "not reached"])
def test_needing_a_person_is_not_failing_the_run_unless_unreachable(status):
    assert status in _fleet.NEEDS_ACTION
    assert (status in _fleet.FAILING) is (status == "not reached")


def test_unreachable_is_not_reached():
    record = _fleet.rotation_record(
        "g1", facts(deploy={"unreachable": True, "msg": "ssh: connect to host port 1"})
    )
    assert record["status"] == "not reached" and "connect to host" in record["reason"]


def test_generation_label():
    assert _fleet.generation_label("CN=Chiffrement_SNEV4,OU=SNE") == "V4"
    assert _fleet.generation_label("CN=AC SNE v6") == "V6"
    assert _fleet.generation_label("CN=Chiffrement SNE") == "retired"


def test_audit_statuses():
    found = {V4: [{"path": "/opt/app.jks"}], V5: [{"path": "/etc/guichet/certs/v5.pem"}]}
    base = {
        "stores": [{"path": "/opt/app.jks"}, {"path": "/etc/guichet/certs"}],
        "current": [V5, AC5],
        "retired": [V4],
        "run_id": "a1",
    }
    record = _fleet.audit_record("g1", dict(base, scan={"found": found}))
    assert record["status"] == "attention"
    assert record["audit"]["retired_places"] == ["/opt/app.jks"]
    assert record["audit"]["stores_without_current"] == ["/opt/app.jks"]
    clean = _fleet.audit_record(
        "g1",
        dict(base, scan={"found": {V5: [{"path": "/opt/app.jks"}, {"path": "/etc/guichet/certs/x.pem"}]}}),
    )
    assert clean["status"] == "ok"
    assert _fleet.audit_record("g1", dict(base, stores=[], scan={"found": found}))["status"] == "unconfigured"
    assert (
        _fleet.audit_record("g1", dict(base, scan={"unreachable": True, "msg": "x"}))["status"]
        == "not reached"
    )
    assert _fleet.audit_record("g1", dict(base, scan={"failed": True, "msg": "boom"}))["reason"] == "boom"


def test_fleet_view_accounts_for_every_host():
    state = {"hosts": {"g3": {"host": "g3", "status": "changed", "run_id": "r0", "seen_at": "t0"}}}
    records = {"g1": {"host": "g1", "status": "changed", "run_id": "r1"}}
    view = _fleet.fleet_view(
        scope=["g1", "g2", "g3", "g4", "g5"],
        in_run=["g1", "g2", "g5"],
        active=["g1", "g5"],
        records=records,
        state=state,
        kind="rotation",
        generation="V5",
        run_id="r1",
        now="t1",
    )
    by = {r["host"]: r for r in view}
    assert [r["host"] for r in view] == ["g1", "g2", "g3", "g4", "g5"]
    assert by["g1"]["status"] == "changed" and by["g1"]["in_this_run"]
    assert by["g2"]["status"] == "not reached" and by["g2"]["in_this_run"]  # left the play
    assert by["g3"]["status"] == "changed" and not by["g3"]["in_this_run"] and by["g3"]["run_id"] == "r0"
    assert by["g4"]["status"] == "not reached" and "not rotated to V5" in by["g4"]["reason"]
    assert by["g5"]["status"] == "pending"
    assert _fleet.totals(view)["not reached"] == 2


def test_merge_state_keeps_untouched_hosts_and_records_the_run():
    state = {
        "hosts": {
            "g1": {"host": "g1", "status": "failed", "run_id": "r1"},
            "g2": {"host": "g2", "status": "changed", "run_id": "r1"},
        },
        "runs": [{"run_id": "r1"}],
    }
    view = [
        {"host": "g1", "status": "changed", "run_id": "r2", "in_this_run": True},
        {"host": "g2", "status": "changed", "run_id": "r1", "in_this_run": False},
        {"host": "g3", "status": "pending", "run_id": "r2", "in_this_run": True},
    ]
    new = _fleet.merge_state(state, view, {"run_id": "r2", "ended": "t2"}, "V5", "guichets")
    assert new["hosts"]["g1"]["status"] == "changed" and new["hosts"]["g1"]["run_id"] == "r2"
    assert new["hosts"]["g2"]["run_id"] == "r1"
    assert "g3" not in new["hosts"]
    assert "in_this_run" not in new["hosts"]["g1"]
    assert [r["run_id"] for r in new["runs"]] == ["r1", "r2"]
    assert new["generation"] == "V5" and new["schema"] == _fleet.STATE_SCHEMA


def test_filter_shim():
    assert FilterModule().filters()["host_status"] is host_status
    assert host_status(facts(stores=[]), "g1")["status"] == "unconfigured"
    assert host_status({"stores": [], "scan": {}}, "g1", kind="audit")["status"] == "unconfigured"
    with pytest.raises(Exception, match="kind"):
        host_status({}, "g1", kind="other")
    with pytest.raises(Exception, match="dict"):
        host_status("nope", "g1")


def test_run_history_replaces_a_run_of_the_same_id_and_keeps_fifty():
    state = {"runs": [{"run_id": "r%d" % i} for i in range(60)]}
    history = _fleet.run_history(state, {"run_id": "r59", "ended": "t"})
    assert len(history) == 50 and history[-1] == {"run_id": "r59", "ended": "t"}
    assert [r["run_id"] for r in history].count("r59") == 1
    assert _fleet.run_history(None, {"run_id": "a"}) == [{"run_id": "a"}]


OUT = "/var/spool/guichet/out"
MESSAGES = [OUT + "/0001.p7m", OUT + "/0002.p7m", OUT + "/retry/0003.eml"]


def outbox(moved=(), **kw):
    base = {"folders": [OUT, "/var/spool/guichet/retry"], "retired_messages": len(MESSAGES),
            "oldest": "2016-01-06T18:02:11Z", "paths": MESSAGES, "moved": list(moved),
            "unreadable": [{"path": OUT + "/0004.p7m", "msg": "truncated"}]}
    base.update(kw)
    return base


def test_outbox_messages_to_the_retired_certificate_left_need_a_person():
    record = _fleet.rotation_record(
        "g1", facts(deploy={"changed": True, "stores": [store(changed=True)]}, retire={"outbox": outbox()}))
    assert record["status"] == "attention"
    assert record["reason"] == (
        "3 messages to the retired certificate in %s (oldest 2016-01-06T18:02Z): quarantine them "
        "(retire_outbox_quarantine) or let them leave before the revocation hour" % OUT)
    assert record["outbox"] == {"retired_messages": 3, "oldest": "2016-01-06T18:02:11Z", "moved": [],
                                "left": MESSAGES, "folders": [OUT, "/var/spool/guichet/retry"],
                                "unreadable": 1}


def test_outbox_messages_quarantined_make_the_host_changed_not_attention():
    record = _fleet.rotation_record(
        "g1", facts(deploy={"changed": False, "stores": [store()]}, retire={"outbox": outbox(MESSAGES)}))
    assert record["status"] == "changed" and record["reason"] == ""
    assert record["outbox"]["moved"] == MESSAGES and record["outbox"]["left"] == []
    assert record["backup_dir"] == "/var/backups/sne-guichet/r1"  # the run's folders to roll back


def test_one_message_left_among_moved_is_named_and_attention_joins_other_places():
    retire = {"outbox": outbox(MESSAGES[:2]), "needs_attention": ["/opt/other/app.jks"]}
    quiet = {"changed": False, "stores": [store()]}
    record = _fleet.rotation_record("g1", facts(deploy=quiet, retire=retire))
    assert record["status"] == "attention"
    assert "/opt/other/app.jks" in record["reason"]
    assert "; 1 message to the retired certificate in %s (oldest" % OUT in record["reason"]
    assert record["outbox"]["left"] == [MESSAGES[2]]


def test_an_empty_or_absent_outbox_changes_nothing():
    for retire in ({}, {"outbox": outbox(paths=[], retired_messages=0, oldest=None)}):
        quiet = {"changed": False, "stores": [store()]}
        record = _fleet.rotation_record("g1", facts(deploy=quiet, retire=retire))
        assert record["status"] == "ok" and record["outbox"]["retired_messages"] == 0
