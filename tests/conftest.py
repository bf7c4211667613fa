"""Make the repository importable as ``ansible_collections.sne.guichet``.

The tests import the collection's code by its real name. A link
``.build/collections/ansible_collections/sne/guichet`` -> repository root is made once
and its parent put on sys.path (ansible-test does the same with a copy).
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "sne", "guichet")

if not os.path.islink(LINK) and not os.path.isdir(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(ROOT, LINK)
    except FileExistsError:
        pass
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
