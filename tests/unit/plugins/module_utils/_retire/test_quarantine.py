"""_retire/quarantine: the layout rollback.yml reads, a taken place never written over, links
never followed nor moved, the move across file systems (os.rename refusing with EXDEV), and a
move that fails leaving the stray byte-identical."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import StoreError
from ansible_collections.sne.guichet.plugins.module_utils._retire import quarantine as _q
from ansible_collections.sne.guichet.plugins.module_utils._retire.quarantine import (
    FINISH,
    MOVE,
    STAGING,
    TAKEN,
    apply_move,
    plan_move,
)

RUN = "r1"


@pytest.fixture
def host(tmp_path):
    stray = tmp_path / "opt" / "app" / "lib" / "Chiffrement_SNEV4.cer"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"0\x82\x03 a DER certificate")
    os.chmod(str(stray), 0o640)
    os.utime(str(stray), ns=(1_000_000_000_123, 1_452_153_600_000_000_789))
    return {"stray": str(stray), "q": str(tmp_path / "var" / "quarantine"), "root": str(tmp_path)}


def facts(path):
    st = os.lstat(path)
    with open(path, "rb") as handle:
        return handle.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


def everything(top):
    found = []
    for folder, dirs, files in os.walk(top):
        found.extend(os.path.relpath(os.path.join(folder, n), top) for n in dirs + files)
    return sorted(found)


def test_layout_and_folders(host):
    before = facts(host["stray"])
    move = plan_move(host["stray"], host["q"], RUN)
    assert move.action == MOVE
    assert move.place == host["q"] + "/" + RUN + host["stray"]  # <quarantine_dir>/<run_id><path>
    apply_move(move)
    assert not os.path.lexists(host["stray"])
    assert facts(move.place) == before  # the same file: bytes, mode, owner, times
    folder = os.path.dirname(move.place)
    while folder != os.path.dirname(host["q"]):  # every folder it made: 0700
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
        folder = os.path.dirname(folder)


def test_a_taken_place_is_never_written_over(host):
    place = _q.quarantine_place(host["q"], RUN, host["stray"])
    os.makedirs(os.path.dirname(place))
    with open(place, "wb") as handle:
        handle.write(b"an earlier copy")
    before = facts(host["stray"])
    move = plan_move(host["stray"], host["q"], RUN)
    assert move.action == TAKEN and "already there" in move.why
    with open(place, "rb") as handle:
        assert handle.read() == b"an earlier copy"
    assert facts(host["stray"]) == before


def test_a_link_on_the_way_is_a_taken_place_never_followed(host, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = os.path.join(host["q"], RUN)
    os.makedirs(run)
    first = os.path.join(run, host["stray"].split(os.sep)[1])  # q/r1/tmp -> elsewhere
    os.symlink(str(elsewhere), first)
    move = plan_move(host["stray"], host["q"], RUN)
    assert move.action == TAKEN and "a link" in move.why
    assert os.listdir(str(elsewhere)) == []
    # and when the link appears between the plan and the move: refused, nothing moved
    os.unlink(first)
    move = plan_move(host["stray"], host["q"], RUN)
    assert move.action == MOVE
    os.symlink(str(elsewhere), first)
    with pytest.raises(StoreError, match="a link"):
        apply_move(move)
    assert os.listdir(str(elsewhere)) == [] and os.path.isfile(host["stray"])


def test_a_link_is_never_moved(host):
    link = os.path.join(host["root"], "current.cer")
    os.symlink(host["stray"], link)
    assert plan_move(link, host["q"], RUN) is None  # not a regular file: not a stray
    assert plan_move(os.path.join(host["root"], "gone.cer"), host["q"], RUN) is None


def exdev_for(source, monkeypatch):
    """os.rename refuses to move ``source`` (as between two file systems)."""
    real = os.rename
    calls = []

    def rename(src, dst, *args, **kwargs):
        calls.append((src, dst))
        if src == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(_q.os, "rename", rename)
    return calls


def test_across_file_systems_a_durable_copy_then_the_original_removed(host, monkeypatch):
    before = facts(host["stray"])
    calls = exdev_for(host["stray"], monkeypatch)
    fsynced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(fd) or real_fsync(fd))
    move = plan_move(host["stray"], host["q"], RUN)
    apply_move(move)
    assert calls[0] == (host["stray"], move.place)  # tried the rename first
    assert not os.path.lexists(host["stray"])
    assert facts(move.place) == before
    assert len(fsynced) >= 3  # the copy, its folder, the source's folder
    # the copy was made outside the run's folder (a rollback never sees half a copy)
    assert any(os.path.dirname(src) == os.path.join(host["q"], STAGING) for src, _dst in calls[1:])
    assert os.listdir(os.path.join(host["q"], STAGING)) == []
    assert everything(os.path.join(host["q"], RUN))[-1] == move.place.split(RUN + "/", 1)[1]


def test_across_file_systems_a_source_that_cannot_be_removed_stays_alone(host, monkeypatch):
    before = facts(host["stray"])
    exdev_for(host["stray"], monkeypatch)
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if path == host["stray"]:
            raise OSError(errno.EACCES, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    move = plan_move(host["stray"], host["q"], RUN)
    with pytest.raises(StoreError) as failure:
        apply_move(move)
    assert host["stray"] in failure.value.reason and "permission denied" in failure.value.reason
    assert facts(host["stray"]) == before
    assert not os.path.lexists(move.place)  # no copy left in the quarantine
    assert os.listdir(os.path.join(host["q"], STAGING)) == []


def test_an_interrupted_move_is_finished(host):
    """Killed between the copy at its place and the removal of the original: the place holds
    exactly the stray; the next run only removes the original."""
    move = plan_move(host["stray"], host["q"], RUN)
    os.makedirs(os.path.dirname(move.place))
    with open(host["stray"], "rb") as handle, open(move.place, "wb") as copy:
        copy.write(handle.read())
    st = os.stat(host["stray"])
    os.chmod(move.place, stat.S_IMODE(st.st_mode))
    before = facts(host["stray"])[:4]
    again = plan_move(host["stray"], host["q"], RUN)
    assert again.action == FINISH
    apply_move(again)
    assert not os.path.lexists(host["stray"]) and facts(move.place)[:4] == before
    # not the same bytes (or not the same mode): taken, never removed
    with open(host["stray"], "wb") as handle:
        handle.write(b"0\x82\x03 a DER certificate")
    os.chmod(host["stray"], 0o600)
    assert plan_move(host["stray"], host["q"], RUN).action == TAKEN


def test_a_failed_rename_leaves_the_stray(host, monkeypatch):
    before = facts(host["stray"])

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_q.os, "rename", refuse)
    move = plan_move(host["stray"], host["q"], RUN)
    with pytest.raises(StoreError) as failure:
        apply_move(move)
    assert failure.value.reason == "cannot move %s to %s: read-only file system" % (host["stray"], move.place)
    assert facts(host["stray"]) == before
