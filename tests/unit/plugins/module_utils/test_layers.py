"""The layering of plugins/module_utils (docs/architecture.md, "Layers"): imports only go down.

Each module_utils module belongs to a layer; it may import from its own package and from layers
below its own, never from a layer above nor from a sibling at its level (the store backends and
the readers of the scan and the probe are peers: neither may use the other).
"""

from __future__ import annotations

import ast
import os
from typing import List, Tuple

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..")
MODULE_UTILS = os.path.normpath(os.path.join(ROOT, "plugins", "module_utils"))
PREFIX = "ansible_collections.sne.guichet.plugins.module_utils."

# unit (the first dotted component under module_utils) -> layer; higher may import lower.
LAYERS = {
    "_common": 0,
    "_oids": 1,
    "_asn1": 1,
    "_x509": 2,
    "_formats": 3,
    "_bundle": 3,
    "_stores": 4,
    "_scan": 4,
    "_scan_options": 4,
    "_scan_refs": 4,
    "_probe": 4,
    "_retire": 5,  # the retire module: the scan and store engines, _common (not _probe, _bundle)
}
# Units that may use only some of the layers below theirs.
# _retire's outbox reads CMS messages (_formats/cms.py) and the retired certificates (_x509).
ONLY = {"_retire": {"_scan", "_stores", "_common", "_formats", "_x509"}}
# Units of one concern that may use each other although on the same layer.
FRIENDS = {frozenset(("_scan", "_scan_options")), frozenset(("_scan", "_scan_refs")),
           frozenset(("_oids", "_asn1"))}


def _modules() -> List[str]:
    found = []
    for folder, _dirs, files in os.walk(MODULE_UTILS):
        for name in files:
            if name.endswith(".py") and name != "__init__.py":
                found.append(os.path.relpath(os.path.join(folder, name), MODULE_UTILS))
    return sorted(found)


def _imports(path: str) -> List[Tuple[int, str]]:
    with open(os.path.join(MODULE_UTILS, path)) as handle:
        tree = ast.parse(handle.read())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX.rstrip(".")):
            rest = node.module[len(PREFIX):] if node.module.startswith(PREFIX) else ""
            if rest:
                out.append((node.lineno, rest.split(".")[0]))
            else:  # from ...module_utils import _x, _y
                out.extend((node.lineno, alias.name) for alias in node.names)
    return out


def test_every_unit_has_a_layer():
    units = set(path.split(os.sep)[0].replace(".py", "") for path in _modules())
    assert units == set(LAYERS), "a new module_utils unit needs its layer here and in docs/architecture.md"


@pytest.mark.parametrize("path", _modules())
def test_imports_only_go_down(path):
    own = path.split(os.sep)[0].replace(".py", "")
    wrong = []
    for line, unit in _imports(path):
        if unit == own or frozenset((own, unit)) in FRIENDS:
            continue
        if LAYERS[unit] >= LAYERS[own]:
            wrong.append("line %d imports %s (layer %d) from %s (layer %d)"
                         % (line, unit, LAYERS[unit], own, LAYERS[own]))
    assert not wrong, "%s: %s" % (path, "; ".join(wrong))


@pytest.mark.parametrize("path", [p for p in _modules() if p.split(os.sep)[0] in ONLY])
def test_units_use_only_what_they_may(path):
    own = path.split(os.sep)[0]
    wrong = ["line %d imports %s" % (line, unit) for line, unit in _imports(path)
             if unit != own and unit not in ONLY[own]]
    assert not wrong, "%s may use only %s: %s" % (path, ", ".join(sorted(ONLY[own])), "; ".join(wrong))


def test_target_side_code_does_not_need_cryptography_at_import():
    """Only the controller-side bundle intake imports cryptography unconditionally."""
    for path in _modules():
        if path.startswith("_bundle"):
            continue
        with open(os.path.join(MODULE_UTILS, path)) as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:  # module level, outside try/if
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any((n or "").startswith("cryptography") for n in names), path
