"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "pki"))
sys.path.insert(0, HERE)  # test helpers such as javatools

import make_pki  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The deterministic test PKI; the manifest plus ``dir``, the folder it is in."""
    folder = str(tmp_path_factory.mktemp("pki"))
    manifest = make_pki.build(folder)
    return dict(manifest, dir=folder)
