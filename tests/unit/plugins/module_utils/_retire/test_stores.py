"""retire with ``stores``: the declared stores cleaned of the retired fingerprints in the same
run (the keystores engine: backup, manifest, locks), then the scan, quarantine and rewrite; a
store that fails stops the run before anything else is done."""

from __future__ import annotations

import os

from retire_tree import RUN_ID

from ansible_collections.sne.guichet.plugins.module_utils._retire.run import retire
from ansible_collections.sne.guichet.plugins.module_utils._stores import engine
from ansible_collections.sne.guichet.plugins.module_utils._stores.options import STORE_TYPES, store_options


def store(tree):
    """A declared PEM store: the root (kept), V4 and its authority (to remove)."""
    path = tree.p("opt/guichet/conf/sne.pem")
    tree.write(path, original(tree))
    return path


def original(tree):
    """What the store holds before the run."""
    return tree.cert("root", "pem") + tree.cert("chiffrement-v4", "pem") + tree.cert("ac-v4", "pem")


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_the_store_types_are_the_engines():
    assert STORE_TYPES == sorted(engine.BACKENDS)
    assert "create" not in store_options(adding=False) and "names" in store_options()


def test_the_stores_are_cleaned_then_the_strays_moved_in_one_run(tree):
    path = store(tree)
    result, error = retire(tree.params(stores=[{"path": path, "type": "pem"}]))
    assert error is None and result["changed"]
    assert result["stores_changed"] == [path] and result["failed_stores"] == []
    assert read(path) == tree.cert("root", "pem")  # the other entry kept, V4 and its authority gone
    removed = {e["sha256"] for e in result["stores"][0]["removed"]}
    assert removed == {tree.sha("chiffrement-v4"), tree.sha("ac-v4")}
    assert path not in result["quarantined"] and path not in result["needs_attention"]  # declared by stores
    assert sorted(result["quarantined"]) == sorted(tree.strays)
    backups = {e["path"]: e["backup"] for e in tree.manifest() if e["action"] == "replaced"}
    assert set(backups) == {path, tree.config}  # one manifest for the store and the configuration
    assert read(backups[path]) == original(tree)


def test_check_mode_and_diff_say_what_the_run_does_to_the_stores_and_write_nothing(tree):
    path = store(tree)
    params = tree.params(stores=[{"path": path, "type": "pem"}])
    before = tree.snapshot(times=True)
    checked, error = retire(params, check_mode=True, diff=True)
    assert error is None and checked["changed"] and checked["stores_changed"] == [path]
    assert tree.snapshot(times=True) == before
    first = checked["diff"][0]  # the store's entries before and after come first
    assert first["before_header"] == "%s (pem)" % path
    assert tree.sha("chiffrement-v4") in first["before"] and tree.sha("chiffrement-v4") not in first["after"]
    assert tree.sha("root") in first["after"]
    assert [d for d in checked["diff"][1:] if d.get("path") == tree.config]  # then the rewrite
    real, error = retire(params, diff=True)
    assert error is None and real["stores_changed"] == checked["stores_changed"]
    for key in ("quarantined", "config_rewritten"):
        assert real[key] == checked[key]


def test_a_second_run_changes_nothing_and_rollback_restores_the_store(tree):
    path = store(tree)
    params = tree.params(stores=[{"path": path, "type": "pem"}])
    original = tree.outside()
    first, error = retire(params)
    assert error is None and first["changed"]
    second, error = retire(params)
    assert error is None and not second["changed"] and second["stores_changed"] == []
    tree.rollback()
    assert tree.outside() == original


def test_a_store_that_fails_stops_the_run_before_anything_else(tree):
    good = store(tree)
    bad = tree.p("opt/guichet/conf/app.jks")
    tree.write(bad, b"\xfe\xed\xfe\xed\x00\x00\x00\x02 cut here")
    before = tree.snapshot(times=True)
    result, error = retire(tree.params(stores=[{"path": bad, "type": "jks", "password": "changeit"},
                                               {"path": good, "type": "pem"}]))
    assert error is not None and "stores could not be processed" in error and bad in error
    assert error.endswith("nothing else was done")
    assert result["failed_stores"] == [bad]
    assert result["quarantined"] == [] and result["config_rewritten"] == []  # no scan, no rewrite
    after = tree.snapshot(times=True)
    assert after[os.path.relpath(bad, tree.root)] == before[os.path.relpath(bad, tree.root)]  # byte-identical
    for stray in tree.strays:
        assert os.path.isfile(stray)
    assert "changeit" not in str(result) and "changeit" not in error


def test_no_fingerprint_touches_no_store(tree):
    path = store(tree)
    data = read(path)
    result, error = retire(tree.params(sha256=[], stores=[{"path": path, "type": "pem"}]))
    assert error is None and result["stores"] == [] and read(path) == data
    assert RUN_ID == result["run_id"]
