"""Fixtures of the retire tests: a host tree (``retire_tree.Tree``) and a private lock folder."""

from __future__ import annotations

import os

import pytest
from retire_tree import Tree

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock


@pytest.fixture
def lock_base(tmp_path, monkeypatch):
    """The store locks go under tmp_path (outside the host tree), never /run/lock."""
    base = tmp_path / "run-lock"
    base.mkdir()
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(base),))
    monkeypatch.setattr(_lock.tempfile, "gettempdir", lambda: str(base))
    return str(base)


@pytest.fixture
def tree(tmp_path, pki, lock_base):
    return Tree(os.path.join(str(tmp_path), "host"), pki).make()
