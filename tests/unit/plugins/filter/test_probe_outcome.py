"""The probe_outcome filter: one asynchronous check result from the send and await phases."""

from __future__ import annotations

from ansible_collections.sne.guichet.plugins.filter.probe import FilterModule, probe_outcome, probe_pending

SKIPPED = {"skipped": True, "changed": False, "skip_reason": "Conditional result was False"}
SENT = {"changed": False, "status": "sent", "message_id": "SNEPROBE-g1-1", "sent_at": 1000.0,
        "certificate": {"sha256": "AB", "pem": "-----BEGIN CERTIFICATE-----"}, "msg": "sent",
        "invocation": {"module_args": {"phase": "send"}}}
PASSED = {"changed": False, "status": "passed", "message_id": "SNEPROBE-g1-1", "sent_at": 1000.0,
          "elapsed": 5.2, "return_xml": "<RetourAsynchrone/>", "msg": "accepted",
          "invocation": {"module_args": {"phase": "await"}}}


def test_the_wait_completes_the_send():
    outcome = probe_outcome(SENT, PASSED, SKIPPED, SKIPPED)
    assert outcome["status"] == "passed" and outcome["elapsed"] == 5.2
    assert outcome["certificate"]["sha256"] == "AB" and outcome["return_xml"]
    assert "invocation" not in outcome and "changed" not in outcome
    assert "probed_from" not in outcome


def test_a_send_that_did_not_send_is_the_outcome():
    error = {"status": "error", "code": "generation", "msg": "not V5", "changed": False}
    assert probe_outcome(error, SKIPPED, SKIPPED, SKIPPED) == {"status": "error", "code": "generation",
                                                               "msg": "not V5"}
    check = {"status": "skipped", "msg": "check mode: no probe message sent", "elapsed": 0.0}
    assert probe_outcome(check, SKIPPED, SKIPPED, SKIPPED)["status"] == "skipped"


def test_a_sent_message_never_waited_for_is_an_error_not_a_pass():
    for wait in (SKIPPED, {}, None, {"unreachable": True, "msg": "ssh: connect refused"},
                 {"failed": True, "msg": "MODULE FAILURE"}):
        outcome = probe_outcome(SENT, wait, SKIPPED, SKIPPED)
        assert outcome["status"] == "error" and outcome["code"] == "await", wait
        assert "SNEPROBE-g1-1" in outcome["msg"]
    unreachable = {"unreachable": True, "msg": "ssh: connect refused"}
    assert "connect refused" in probe_outcome(SENT, unreachable)["msg"]


def test_the_controller_s_phases_replace_the_host_s():
    no_backend = {"status": "error", "code": "no_backend", "certificate": {"pem": "P"}}
    by_controller = dict(SENT, message_id="SNEPROBE-g1-2")
    timeout = {"status": "timeout", "message_id": "SNEPROBE-g1-2", "elapsed": 30.0, "msg": "no return"}
    outcome = probe_outcome(no_backend, SKIPPED, by_controller, timeout)
    assert outcome["status"] == "timeout" and outcome["message_id"] == "SNEPROBE-g1-2"
    assert outcome["probed_from"] == "controller"
    assert probe_outcome(no_backend, SKIPPED, by_controller, SKIPPED)["code"] == "await"


def test_the_batch_wait_gives_each_host_its_own_return():
    other = dict(PASSED, message_id="SNEPROBE-g2-1", return_xml="<RetourAsynchrone other/>")
    batch = {"changed": False, "status": "passed",
             "awaited": {"SNEPROBE-g1-1": PASSED, "SNEPROBE-g2-1": other}}
    outcome = probe_outcome(SENT, SKIPPED, SKIPPED, SKIPPED, batch=batch)
    assert outcome["status"] == "passed" and outcome["return_xml"] == "<RetourAsynchrone/>"
    assert outcome["certificate"]["sha256"] == "AB"  # the send's part is kept
    # The batch did not return this host's message, or failed whole: an error, never a pass.
    lost = probe_outcome(SENT, SKIPPED, SKIPPED, SKIPPED, batch={"awaited": {"SNEPROBE-g2-1": other}})
    assert lost["status"] == "error" and lost["code"] == "await"
    refused = {"failed": True, "msg": "connection refused"}
    failed = probe_outcome(SENT, SKIPPED, SKIPPED, SKIPPED, batch=refused)
    assert failed["code"] == "await" and "connection refused" in failed["msg"]
    # The controller's send for a host is looked up the same way.
    no_backend = {"status": "error", "code": "no_backend"}
    by_controller = dict(SENT, message_id="SNEPROBE-g2-1")
    outcome = probe_outcome(no_backend, SKIPPED, by_controller, SKIPPED, batch=batch)
    assert outcome["return_xml"] == "<RetourAsynchrone other/>" and outcome["probed_from"] == "controller"
    # A skipped batch (waits on the hosts) changes nothing.
    assert probe_outcome(SENT, PASSED, SKIPPED, SKIPPED, batch=SKIPPED)["status"] == "passed"


def test_pending_lists_what_each_host_of_the_batch_sent():
    hostvars = {
        "g1": {"__async_check_sent": SENT, "__async_check_sent_by_controller": SKIPPED},
        "g2": {"__async_check_sent": {"status": "error", "code": "no_backend"},
               "__async_check_sent_by_controller": dict(SENT, message_id="SNEPROBE-g2-9", sent_at=1001.0)},
        "g3": {"__async_check_sent": {"status": "error", "code": "generation"}},
        "g4": {"__async_check_sent": {"unreachable": True, "msg": "ssh"}},
        "g5": {},
        "g6": {"__async_check_sent": dict(SENT, message_id="SNEPROBE-g6-1")},
    }
    assert probe_pending(hostvars, ["g1", "g2", "g3", "g4", "g5"]) == [
        {"message_id": "SNEPROBE-g1-1", "sent_at": 1000.0, "host": "g1"},
        {"message_id": "SNEPROBE-g2-9", "sent_at": 1001.0, "host": "g2"},
    ]  # g6 is not in this batch


def test_registered():
    assert FilterModule().filters() == {"probe_outcome": probe_outcome, "probe_pending": probe_pending}
