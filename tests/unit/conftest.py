"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "roles", "simulate", "files"))  # make_pki
TEST_KEYS = os.path.join(ROOT, "tests", "pki", "keys")  # the committed test keys
sys.path.insert(0, HERE)  # test helpers such as javatools

import make_pki  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The deterministic test PKI; the manifest plus ``dir``, the folder it is in."""
    folder = str(tmp_path_factory.mktemp("pki"))
    manifest = make_pki.build(folder, TEST_KEYS)
    return dict(manifest, dir=folder)
