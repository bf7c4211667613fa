"""The retire module over hostile trees: names with a newline, a space or bytes that are not
UTF-8, links out of the search roots, a link loop, a FIFO named like a certificate, a FIFO or a
huge file where a configuration file is expected.

What must hold for each: the run ends (bounded), nothing outside the roots is moved or
followed, no FIFO is opened, a name is moved as it is (rollback can put it back), a result
Ansible can serialise (no path that is not UTF-8), and a refused configuration file stops the
run before anything is written.
"""

from __future__ import annotations

import json
import os

import pytest
from hostile import corpus

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._retire.run import retire

RUN_ID = "hostile-1"


@pytest.fixture(autouse=True)
def lock_base(tmp_path, monkeypatch):
    base = tmp_path / "run-lock"
    base.mkdir()
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(base),))
    monkeypatch.setattr(_lock.tempfile, "gettempdir", lambda: str(base))


@pytest.fixture(scope="module")
def v4(pki):
    with open(os.path.join(pki["dir"], "chiffrement-v4.der"), "rb") as handle:
        return handle.read(), pki["certificates"]["chiffrement-v4"]["sha256"]


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def params(root, sha, **changes):
    base = dict(sha256=[sha], paths=[os.path.join(root, "opt")], exclude=[], max_depth=12, passwords=None,
                declared=[], quarantine=True, quarantine_dir=os.path.join(root, "q"), config_files=[],
                backup=True, backup_dir=os.path.join(root, "b"), run_id=RUN_ID, lock_timeout=5)
    base.update(changes)
    return base


def tree_of(root):
    """rel -> (kind, content) of everything below root (bytes paths: any name)."""
    seen = {}
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, os.fsencode(root))
            if os.path.islink(full):
                seen[rel] = ("link", os.readlink(full))
            elif os.path.isfile(full):
                with open(full, "rb") as handle:
                    seen[rel] = ("file", handle.read())
            else:
                seen[rel] = ("other", b"")
    return seen


def test_names_with_a_newline_or_a_space_are_moved_as_they_are(tmp_path, v4):
    der, sha = v4
    root = str(tmp_path / "host")
    odd = os.path.join(root, "opt", "app", "old cert\nV4.cer")
    put(odd, der)
    result, error = retire(params(root, sha))
    assert error is None and result["quarantined"] == [odd]
    place = os.path.join(root, "q", RUN_ID) + odd
    assert not os.path.lexists(odd) and open(place, "rb").read() == der
    json.dumps(result).encode("utf-8")  # what Ansible sends back


def test_a_name_that_is_not_utf8_is_never_moved_nor_returned(tmp_path, v4):
    der, sha = v4
    root = str(tmp_path / "host")
    raw = os.path.join(os.fsencode(root), b"opt", b"app", b"Chiffrement_SNEV4-\xff.cer")
    os.makedirs(os.path.dirname(raw))
    with open(raw, "wb") as handle:
        handle.write(der)
    before = tree_of(root)
    result, error = retire(params(root, sha))
    assert error is None and not result["changed"] and result["quarantined"] == []
    json.dumps(result).encode("utf-8")  # no surrogate escapes: ansible-core would refuse the result
    assert tree_of(root) == before


def test_links_out_of_the_roots_and_loops_are_never_followed_nor_moved(tmp_path, v4):
    der, sha = v4
    root = str(tmp_path / "host")
    outside = os.path.join(root, "elsewhere", "Chiffrement_SNEV4.cer")
    put(outside, der)
    os.makedirs(os.path.join(root, "opt", "app"))
    os.symlink(outside, os.path.join(root, "opt", "app", "current.cer"))
    os.symlink(os.path.join(root, "elsewhere"), os.path.join(root, "opt", "shared"))
    os.symlink("..", os.path.join(root, "opt", "app", "loop"))
    before = tree_of(root)
    result, error = retire(params(root, sha))
    assert error is None and result["quarantined"] == [] and not result["changed"]
    assert tree_of(root) == before
    found = {p["path"] for places in result["found"].values() for p in places}
    assert not any(p.startswith(os.path.join(root, "elsewhere")) for p in found)


def test_a_fifo_named_like_a_certificate_is_never_opened(tmp_path, v4):
    der, sha = v4
    root = str(tmp_path / "host")
    fifo = os.path.join(root, "opt", "app", "Chiffrement_SNEV4.cer")
    os.makedirs(os.path.dirname(fifo))
    os.mkfifo(fifo)
    stray = os.path.join(root, "opt", "app", "sne-v4.der")
    put(stray, der)
    result, error = corpus.in_thread(lambda: retire(params(root, sha)), fifo)
    assert error is None and result["quarantined"] == [stray]
    assert os.path.exists(fifo) and not os.path.isfile(fifo)  # left as it is


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_configuration_file_that_is_a_fifo_or_huge_stops_the_run_first(tmp_path, v4, kind):
    der, sha = v4
    root = str(tmp_path / "host")
    stray = os.path.join(root, "opt", "app", "sne-v4.der")
    put(stray, der)
    config = os.path.join(root, "opt", "conf", "guichet.properties")
    os.makedirs(os.path.dirname(config))
    if kind == "fifo":
        os.mkfifo(config)
    else:
        with open(config, "wb") as handle:
            handle.truncate(64 * 1024 * 1024 + 1)  # sparse: costs no disk
    before = tree_of(root) if kind == "fifo" else None
    rules = [{"path": config, "regexp": "Chiffrement_SNEV4", "replace": "Chiffrement_SNEV5"}]
    result, error = corpus.in_thread(lambda: retire(params(root, sha, config_files=rules)),
                                     config if kind == "fifo" else stray)
    assert error is not None and config in error and "nothing was changed" in error
    assert ("not a regular file" if kind == "fifo" else "larger than 64 MiB") in error
    assert not result["changed"] and os.path.isfile(stray)  # the stray was not moved either
    if before is not None:
        assert tree_of(root) == before
