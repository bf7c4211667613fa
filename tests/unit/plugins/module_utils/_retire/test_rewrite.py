"""_retire/rewrite: regexps applied as ansible.builtin.replace applies them, one backup and one
write per changed file (the keystores manifest line, byte for byte the same format), nothing
touched when nothing changes, owner/mode/links kept, only the changed lines shown."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest
from retire_tree import PASSWORD

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._retire.rewrite import (
    apply_rewrite,
    plan_rewrite,
    rules_by_file,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import converge

TEXT = (b"keystore.password=" + PASSWORD.encode() + b"\n"
        b"cert=Chiffrement_SNEV4.cer\n"
        b"cert.backup = /opt/Chiffrement_SNEV4.cer   # twice: Chiffrement_SNEV4.cer\n"
        b"name=\xe9t\xe9 not UTF-8\n"
        b"ac=AC_SNE_V4.der\n")


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "etc" / "guichet.properties"
    path.parent.mkdir()
    path.write_bytes(TEXT)
    os.chmod(str(path), 0o640)
    return str(path)


def rules(path, *pairs):
    return rules_by_file([{"path": path, "regexp": r, "replace": p} for r, p in pairs])[path]


def test_every_match_multiline_and_in_order(conf):
    plan = plan_rewrite(conf, rules(conf, (r"Chiffrement_SNEV4\.cer", "Chiffrement_SNEV5.cer"),
                                    (r"^ac=AC_SNE_V(\d)\.der$", r"ac=AC_SNE_V\g<1>-old.der"),
                                    (r"-old\.der", "5.der")))  # applies to what the rule before made
    assert plan.replacements == 3 + 1 + 1
    assert plan.new == (TEXT.replace(b"Chiffrement_SNEV4.cer", b"Chiffrement_SNEV5.cer")
                        .replace(b"ac=AC_SNE_V4.der", b"ac=AC_SNE_V45.der"))
    assert b"\xe9t\xe9" in plan.new  # bytes that are not UTF-8 kept as they are
    # what ansible.builtin.replace does: re.subn on the text, re.MULTILINE
    text = TEXT.decode("utf-8", "surrogateescape")
    expected, count = re.subn(re.compile(r"Chiffrement_SNEV4\.cer", re.MULTILINE), "X", text)
    assert plan_rewrite(conf, rules(conf, (r"Chiffrement_SNEV4\.cer", "X"))).new == \
        expected.encode("utf-8", "surrogateescape") and count == 3
    # without MULTILINE, ^ would only match at the start of the file
    assert plan_rewrite(conf, rules(conf, (r"^cert=", "crt="))).replacements == 1


def test_a_match_that_changes_nothing_is_no_change(conf):
    plan = plan_rewrite(conf, rules(conf, (r"(cert)=", r"\1="), (r"nowhere", "x")))
    assert not plan.changed and plan.replacements == 0


def test_bad_regexp_or_group_is_a_clear_error(conf):
    with pytest.raises(ArgumentError, match=r"config_files\[0\] \(%s\): regexp '\(': " % re.escape(conf)):
        rules(conf, ("(", "x"))
    with pytest.raises(StoreError, match="%s: cannot replace" % re.escape(conf)):
        plan_rewrite(conf, rules(conf, ("cert", r"\2")))
    with pytest.raises(StoreError, match="configuration file %s does not exist" % re.escape(conf + "x")):
        plan_rewrite(conf + "x", [])
    os.mkfifo(conf + ".fifo")
    with pytest.raises(StoreError, match="not a regular file"):  # never opened: it would block
        plan_rewrite(conf + ".fifo", [])


def test_backup_manifest_line_as_keystores_writes_it_and_mode_owner_kept(conf, tmp_path, pki):
    """Both modules back up through the same Backups: the manifest holds one format of line."""
    os.chown(conf, 4321, 4322)
    store = tmp_path / "etc" / "sne.pem"
    with open(os.path.join(pki["dir"], "chiffrement-v4.pem"), "rb") as handle:
        store.write_bytes(handle.read())
    backups = Backups(str(tmp_path / "backups"), "run-1")
    converge([StoreSpec(path=str(store), type="pem")], [], {pki["certificates"]["chiffrement-v4"]["sha256"]},
             False, backups, None, lambda name: None)
    plan = plan_rewrite(conf, rules(conf, (r"Chiffrement_SNEV4", "Chiffrement_SNEV5")))
    backup = apply_rewrite(plan, backups)
    with open(str(tmp_path / "backups" / "run-1" / "manifest.jsonl"), "rb") as handle:
        lines = handle.read().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    for line, path in zip(lines, (str(store), conf)):
        expected = {"action": "replaced", "path": path,
                    "backup": str(tmp_path / "backups" / "run-1" / "files") + path}
        assert line == json.dumps(expected, sort_keys=True).encode("utf-8")
    assert backup == str(tmp_path / "backups" / "run-1" / "files") + conf
    with open(backup, "rb") as handle:
        assert handle.read() == TEXT
    st = os.stat(conf)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 4321, 4322)
    with open(conf, "rb") as handle:
        assert handle.read() == plan.new


def test_a_linked_file_is_rewritten_as_its_real_file(conf, tmp_path):
    link = str(tmp_path / "guichet.properties")
    os.symlink(conf, link)
    backups = Backups(str(tmp_path / "backups"), "run-1")
    plan = plan_rewrite(link, rules(link, (r"Chiffrement_SNEV4", "Chiffrement_SNEV5")))
    assert apply_rewrite(plan, backups) == str(tmp_path / "backups" / "run-1" / "files") + conf
    assert os.readlink(link) == conf
    with open(conf, "rb") as handle:
        assert handle.read() == plan.new


def test_a_file_changed_since_it_was_read_is_not_written(conf, tmp_path):
    plan = plan_rewrite(conf, rules(conf, (r"Chiffrement_SNEV4", "Chiffrement_SNEV5")))
    with open(conf, "ab") as handle:
        handle.write(b"added=meanwhile\n")
    with pytest.raises(StoreError, match="changed since it was read"):
        apply_rewrite(plan, Backups(str(tmp_path / "backups"), "run-1"))
    assert not os.path.exists(str(tmp_path / "backups"))


def test_the_diff_holds_only_the_changed_lines(conf, tmp_path):
    plan = plan_rewrite(conf, rules(conf, (r"Chiffrement_SNEV4", "Chiffrement_SNEV5")))
    diff = plan.diff()
    assert diff["path"] == conf and diff["replacements"] == 3
    text = diff["prepared"]
    assert PASSWORD not in json.dumps(diff) and "name=" not in text and "ac=" not in text
    changed = [line for line in text.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-cert=Chiffrement_SNEV4.cer",
                       "-cert.backup = /opt/Chiffrement_SNEV4.cer   # twice: Chiffrement_SNEV4.cer",
                       "+cert=Chiffrement_SNEV5.cer",
                       "+cert.backup = /opt/Chiffrement_SNEV5.cer   # twice: Chiffrement_SNEV5.cer"]
    assert "(after: 3 replacements)" in text.splitlines()[1]
    # it is a real unified diff: patch applies it to the old file
    old = tmp_path / "old.properties"
    old.write_bytes(TEXT)
    done = subprocess.run(["patch", "-s", str(old)], input=text.encode("utf-8"), capture_output=True,
                          check=False)
    if done.returncode == 127:
        pytest.skip("no patch")
    assert done.returncode == 0, done.stderr
    assert old.read_bytes() == plan.new
