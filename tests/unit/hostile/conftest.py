"""Fixtures of the hostile-input tests: the seed corpus, made once per session."""

from __future__ import annotations

import os

import pytest
from hostile import corpus
from javatools import KEYTOOL


@pytest.fixture(scope="session")
def seeds(pki, tmp_path_factory):
    """Every seed of ``corpus.build`` (keytool makes the Java ones)."""
    if KEYTOOL is None:
        pytest.skip("keytool is needed to make the Java keystore seeds")
    return corpus.build(pki, str(tmp_path_factory.mktemp("seeds")))


@pytest.fixture
def opened(monkeypatch):
    """Every path the code under test gives ``os.open`` or ``open``, as text."""
    seen = []
    real_open, real_builtin = os.open, open

    def recording(real):
        def call(path, *args, **kwargs):
            seen.append(os.fsdecode(path) if isinstance(path, (str, bytes)) else path)
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", recording(real_open))
    monkeypatch.setattr("builtins.open", recording(real_builtin))
    return seen
