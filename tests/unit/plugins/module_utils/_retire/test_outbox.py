"""_retire/outbox (through one retire run): the outbound messages encrypted by real ``openssl
cms -encrypt`` to V4 (DER, BER indefinite length, PEM with -keyid, S/MIME) are reported and,
with outbox_quarantine, moved into the run's quarantine; messages to V5, a cut message, a plain
file, a link and a file deeper than max_depth stay byte-identical; check mode moves nothing and
says what would move; a second run changes nothing; rollback.yml's steps put them back; a V5
certificate given as retired fails the run before anything is done."""

from __future__ import annotations

import os
import subprocess

import pytest
from retire_tree import RUN_ID

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError
from ansible_collections.sne.guichet.plugins.module_utils._retire.outbox import RetiredIds, scan_outboxes
from ansible_collections.sne.guichet.plugins.module_utils._retire.run import retire

OLD = 1452103331  # 2016-01-06T18:02:11Z: the oldest V4 message's modification time
OLD_ISO = "2016-01-06T18:02:11Z"


def encrypt(tree, recipient: str, *options: str) -> bytes:
    source = os.path.join(tree.root, "message.xml")
    with open(source, "wb") as handle:
        handle.write(b"<demande>registration</demande>\n")
    try:
        return subprocess.run(
            ["openssl", "cms", "-encrypt", "-binary", "-aes256", "-in", source, *options,
             "-recip", os.path.join(tree.pki["dir"], recipient + ".pem")],
            stdout=subprocess.PIPE, check=True).stdout
    finally:
        os.unlink(source)


class Outbox:
    """An outbound folder below the tree: what must move, what must stay."""

    def __init__(self, tree) -> None:
        self.folder = tree.p("var/spool/guichet/out")
        self.deep = tree.p("var/spool/guichet/out/a/b/c")  # below max_depth 3
        v4_der = encrypt(tree, "chiffrement-v4", "-outform", "DER")
        out = self.folder
        self.v4 = {
            os.path.join(out, "0001.p7m"): v4_der,
            os.path.join(out, "0002.ber"): encrypt(tree, "chiffrement-v4", "-outform", "DER", "-stream"),
            os.path.join(out, "0003.pem"): encrypt(tree, "chiffrement-v4", "-outform", "PEM", "-keyid"),
            os.path.join(out, "retry", "0004.eml"): encrypt(tree, "chiffrement-v4", "-outform", "SMIME"),
        }
        self.stay = {
            os.path.join(out, "0005.p7m"): encrypt(tree, "chiffrement-v5", "-outform", "DER"),
            os.path.join(out, "0006.p7m"): encrypt(tree, "chiffrement-v5", "-outform", "DER", "-keyid"),
            os.path.join(out, "0007.eml"): encrypt(tree, "chiffrement-v5", "-outform", "SMIME"),
            os.path.join(out, "0008.p7m"): v4_der[:len(v4_der) // 2],  # being written
            os.path.join(out, "notes.txt"): b"plain text, not a message\n",
            os.path.join(self.deep, "0009.p7m"): v4_der,  # deeper than max_depth
        }
        self.truncated = os.path.join(self.folder, "0008.p7m")
        self.link = os.path.join(self.folder, "0010.p7m")  # a link to a V4 message: never moved
        for path, data in list(self.v4.items()) + list(self.stay.items()):
            tree.write(path, data, 0o640)
        os.symlink("0001.p7m", self.link)
        os.utime(os.path.join(self.folder, "0002.ber"), (OLD, OLD))
        self.tree = tree

    def params(self, **changes):
        tree = self.tree
        with open(os.path.join(tree.pki["dir"], "chiffrement-v4.pem")) as handle:
            v4 = handle.read()
        with open(os.path.join(tree.pki["dir"], "ac-v4.pem")) as handle:
            ac_v4 = handle.read()
        params = tree.params(certificates=[v4 + ac_v4], outboxes=[self.folder], max_depth=3,
                             outbox_quarantine=True)
        params.update(changes)
        return params

    def contents(self, paths):
        found = {}
        for path in paths:
            with open(path, "rb") as handle:
                found[path] = handle.read()
        return found


@pytest.fixture
def outbox(tree):
    return Outbox(tree)


def test_reported_only_by_default_nothing_moves(outbox, tree):
    before = tree.snapshot(skip=(os.path.relpath(tree.quarantine_dir, tree.root),
                                 os.path.relpath(tree.backup_dir, tree.root)))
    result, error = retire(outbox.params(outbox_quarantine=False, quarantine=False, config_files=[]))
    assert error is None and not result["changed"]
    report = result["outbox"]
    assert report["folders"] == [outbox.folder] and report["folders_missing"] == []
    assert report["retired_messages"] == 4 and sorted(report["paths"]) == sorted(outbox.v4)
    assert report["messages"] == 7  # 4 to V4, 3 to V5 (the deep one is not read, the cut one unreadable)
    assert report["oldest"] == OLD_ISO and report["moved"] == [] and report["quarantine"] is False
    assert [u["path"] for u in report["unreadable"]] == [outbox.truncated]
    assert "truncated" in report["unreadable"][0]["msg"]
    assert tree.outside() == before


def test_quarantined_messages_and_what_stays(outbox, tree):
    result, error = retire(outbox.params())
    assert error is None and result["changed"]
    report = result["outbox"]
    assert sorted(report["moved"]) == sorted(outbox.v4) == sorted(report["paths"])
    for path, data in outbox.v4.items():
        assert not os.path.lexists(path)
        with open(tree.place(path), "rb") as handle:
            assert handle.read() == data
    assert outbox.contents(outbox.stay) == outbox.stay  # V5, cut, plain, too deep: byte-identical
    assert os.readlink(outbox.link) == "0001.p7m"  # a link is never moved
    assert all(not p.startswith(outbox.folder) for p in result["quarantined"])  # not strays


def test_check_mode_moves_nothing_and_says_what_would_move(outbox, tree):
    before = tree.snapshot()
    result, error = retire(outbox.params(), check_mode=True, diff=True)
    assert error is None and result["changed"]
    assert sorted(result["outbox"]["moved"]) == sorted(outbox.v4)
    assert tree.snapshot() == before
    moved = {d["path"]: d["quarantine"] for d in result["diff"] if d["path"] in outbox.v4}
    assert moved == {path: tree.place(path) for path in outbox.v4}


def test_second_run_changes_nothing_and_rollback_puts_them_back(outbox, tree):
    first, error = retire(outbox.params())
    assert error is None and sorted(first["outbox"]["moved"]) == sorted(outbox.v4)
    again, error = retire(outbox.params())
    assert error is None and not again["changed"]
    assert again["outbox"]["retired_messages"] == 0 and again["outbox"]["moved"] == []
    assert again["outbox"]["messages"] == 3
    tree.rollback(RUN_ID)
    assert outbox.contents(outbox.v4) == outbox.v4
    assert outbox.contents(outbox.stay) == outbox.stay
    for path in outbox.v4:
        assert oct(os.stat(path).st_mode & 0o777) == "0o640"
    assert os.path.getmtime(os.path.join(outbox.folder, "0002.ber")) == OLD


def test_a_taken_quarantine_place_is_never_written_over(outbox, tree):
    path = os.path.join(outbox.folder, "0001.p7m")
    tree.write(tree.place(path), b"an earlier copy\n")
    result, error = retire(outbox.params())
    assert error is None and result["outbox"]["quarantine_taken"] == [path]
    assert path not in result["outbox"]["moved"]
    assert outbox.contents([path])[path] == outbox.v4[path]
    with open(tree.place(path), "rb") as handle:
        assert handle.read() == b"an earlier copy\n"


def test_a_current_certificate_given_as_retired_fails_before_anything(outbox, tree):
    before = tree.snapshot()
    with open(os.path.join(tree.pki["dir"], "chiffrement-v5.pem")) as handle:
        v5 = handle.read()
    with pytest.raises(ArgumentError, match="not one of the retired fingerprints"):
        retire(outbox.params(certificates=[v5]))
    with pytest.raises(ArgumentError, match="no certificates"):
        retire(outbox.params(certificates=[]))
    with pytest.raises(ArgumentError, match="is not a certificate"):
        retire(outbox.params(certificates=["-----BEGIN CERTIFICATE-----\nAAAA\n"]))
    assert tree.snapshot() == before


def test_a_missing_folder_is_reported_not_an_error(tree, outbox):
    missing = tree.p("var/spool/guichet/nowhere")
    result, error = retire(outbox.params(outboxes=[missing], config_files=[], quarantine=False))
    assert error is None and not result["changed"]
    assert result["outbox"]["folders_missing"] == [missing] and result["outbox"]["retired_messages"] == 0


def test_only_the_messages_to_the_retired_certificate_match(tree, outbox):
    """A V5 message names V5's issuer and serial: V4's identifiers never match it."""
    with open(os.path.join(tree.pki["dir"], "chiffrement-v4.pem")) as handle:
        retired = RetiredIds([handle.read()], [tree.sha("chiffrement-v4")])
    scan = scan_outboxes([outbox.folder], retired, 3, [])
    assert sorted(m.path for m in scan.retired) == sorted(outbox.v4)
    assert {m.form for m in scan.retired} == {"der", "pem", "smime"}
