"""The convergence engine (plugins/module_utils/_keystores.py): several stores in one run,
failures isolated, check mode writes nothing, diffs and results carry public data only."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import (
    ArgumentError,
    absent_set,
    converge,
    wanted_entries,
)


def _text(pki, cert_id):
    with open(os.path.join(pki["dir"], pki["certificates"][cert_id]["path"])) as handle:
        return handle.read()


def _run(argv, data=None, environ_update=None):
    done = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def _find(name):
    return None


def _digest(folder):
    result = {}
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return result


@pytest.fixture
def world(tmp_path, pki):
    host = tmp_path / "host"
    host.mkdir()
    (host / "sne.pem").write_text("# guichet\n" + _text(pki, "chiffrement-v4") + _text(pki, "ac-v6"))
    (host / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                     "-----END CERTIFICATE-----\n")
    present = wanted_entries([
        {"name": "sne-chiffrement-v5", "pem": _text(pki, "chiffrement-v5")},
        {"name": "sne-ac-v5", "pem": _text(pki, "ac-v5")},
    ])
    absent = absent_set([pki["certificates"]["chiffrement-v4"]["sha256"],
                         pki["certificates"]["ac-v4"]["sha256"].replace(":", "").lower()])
    specs = [StoreSpec(str(host / "broken.pem"), "pem"), StoreSpec(str(host / "sne.pem"), "pem"),
             StoreSpec(str(host / "missing.jks"), "jks", password="secret-pw")]
    return dict(host=host, present=present, absent=absent, specs=specs,
                backups=Backups(str(tmp_path / "backups"), "run-1"))


def test_failures_are_isolated_and_reported(world, pki):
    before_broken = (world["host"] / "broken.pem").read_bytes()
    outcomes, changed, failed = converge(world["specs"], world["present"], world["absent"], False,
                                         world["backups"], _run, _find)
    broken, good, missing = (o.result for o in outcomes)
    assert changed and failed
    assert broken["failed"] and broken["code"] == "corrupt"
    assert (world["host"] / "broken.pem").read_bytes() == before_broken
    assert missing["failed"] and missing["code"] == "not_found"
    assert good["changed"] and not good["failed"]
    assert [a["name"] for a in good["added"]] == ["sne-chiffrement-v5", "sne-ac-v5"]
    assert [r["subject"] for r in good["removed"]] == [pki["certificates"]["chiffrement-v4"]["subject"]]
    assert good["backup"] and os.path.exists(good["backup"])
    text = (world["host"] / "sne.pem").read_text()
    assert text.startswith("# guichet\n")
    assert _text(pki, "chiffrement-v5") in text and _text(pki, "chiffrement-v4") not in text
    assert "secret-pw" not in repr([o.result for o in outcomes])


def test_check_mode_writes_nothing_and_diffs(world, pki, tmp_path):
    before = _digest(str(tmp_path))
    outcomes, changed, failed = converge(world["specs"], world["present"], world["absent"], True,
                                         world["backups"], _run, _find)
    assert changed and failed
    assert _digest(str(tmp_path)) == before
    diff = outcomes[1].diff
    v4, v5 = pki["certificates"]["chiffrement-v4"], pki["certificates"]["chiffrement-v5"]
    assert v4["sha256"] in diff["before"] and v4["sha256"] not in diff["after"]
    assert "sne-chiffrement-v5: %s sha256=%s not_after=%s" % (
        v5["subject"], v5["sha256"], v5["not_after"]) in diff["after"]
    assert outcomes[0].diff is None and outcomes[2].diff is None


def test_second_run_changes_nothing(world):
    converge(world["specs"][1:2], world["present"], world["absent"], False, world["backups"], _run, _find)
    outcomes, changed, failed = converge(world["specs"][1:2], world["present"], world["absent"], False,
                                         world["backups"], _run, _find)
    assert not changed and not failed
    assert outcomes[0].result["added"] == [] and outcomes[0].result["removed"] == []


def test_wanted_and_retired_together_is_refused(world, pki):
    clash = absent_set([pki["certificates"]["chiffrement-v5"]["sha256"]])
    with pytest.raises(ArgumentError, match="sne-chiffrement-v5"):
        converge(world["specs"], world["present"], clash, False, world["backups"], _run, _find)


def test_same_store_twice_is_refused(world):
    specs = [world["specs"][1], StoreSpec(world["specs"][1].path, "pem")]
    with pytest.raises(ArgumentError, match="more than once"):
        converge(specs, world["present"], world["absent"], False, world["backups"], _run, _find)


@pytest.mark.parametrize("items,message", [
    ([{"name": "a", "pem": "garbage"}], "not a certificate|exactly one"),
    ([{"name": "../x", "pem": ""}], "not a usable name"),
    ([{"name": "", "pem": ""}], "not a usable name"),
])
def test_wanted_entries_errors(items, message):
    with pytest.raises(ArgumentError, match=message):
        wanted_entries(items)


def test_wanted_entries_duplicates_and_bundles(pki):
    one = _text(pki, "chiffrement-v5")
    with pytest.raises(ArgumentError, match="given twice"):
        wanted_entries([{"name": "a", "pem": one}, {"name": "a", "pem": one}])
    with pytest.raises(ArgumentError, match="exactly one certificate, found 2"):
        wanted_entries([{"name": "a", "pem": one + _text(pki, "ac-v5")}])


def test_absent_set_rejects_non_fingerprints():
    with pytest.raises(ArgumentError, match="absent_sha256"):
        absent_set(["V4"])


def test_all_or_nothing_leaves_the_host_unchanged(world, tmp_path):
    before = _digest(str(world["host"]))
    outcomes, changed, failed = converge(world["specs"], world["present"], world["absent"], False,
                                         world["backups"], _run, _find, all_or_nothing=True)
    assert failed and not changed
    assert _digest(str(world["host"])) == before
    good = outcomes[1].result
    assert good["skipped"] and "all_or_nothing" in good["msg"]
    assert [a["name"] for a in good["added"]] == ["sne-chiffrement-v5", "sne-ac-v5"]
    assert not os.path.exists(str(tmp_path / "backups"))
