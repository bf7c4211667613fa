"""The keystores module's failure message says which stores were written before the failure."""

from __future__ import annotations

from ansible_collections.sne.guichet.plugins.module_utils._stores.run import _written_note


class FakeModule:
    def __init__(self, check_mode: bool = False) -> None:
        self.check_mode = check_mode


def results(*changed_failed):
    return [{"path": "/s%d" % i, "changed": c, "failed": f} for i, (c, f) in enumerate(changed_failed)]


def test_a_write_failing_after_others_names_them():
    # all_or_nothing cannot hold once writing has begun: the message must not claim it did.
    note = _written_note(results((True, False), (False, True), (True, False)), {"all_or_nothing": True},
                         FakeModule())
    assert note == "; written before the failure: /s0, /s2"


def test_a_failure_before_any_write():
    assert _written_note(results((False, False), (False, True)), {"all_or_nothing": True},
                         FakeModule()) == "; no store was written (all_or_nothing)"
    assert _written_note(results((False, True)), {"all_or_nothing": False}, FakeModule()) == ""


def test_check_mode_writes_nothing_and_says_nothing_of_it():
    assert _written_note(results((True, False), (False, True)), {"all_or_nothing": True},
                         FakeModule(check_mode=True)) == ""
